#!/bin/bash
# The set-up installs what the README uses: tools/setup.sh runs `meson
# install`, after which vstorfs and vstor are on PATH, `man -w` finds both
# pages, the systemd unit starts the installed daemon, and
# `mount -t fuse.vstorfs DATA MNT` mounts through fuse3's mount.fuse helper.
#
# The host stays untouched: setup.sh installs into a staging root
# (DESTDIR), and the test runs in a private mount namespace where the
# staged prefix is bind-mounted over the real one (/usr/local), so PATH,
# man and mount(8) find the installed files exactly where an install puts
# them.  The systemd unit is checked in the staging root (its directory is
# outside the prefix).
if [ -z "${VSTORFS_TEST_NS:-}" ]; then
    export VSTORFS_TEST_NS=1
    exec unshare --mount --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
requires meson jq mount umount mount.fuse3 man pgrep

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD_DIR:-$(dirname "$(dirname "$VSTORFS")")}
ROOT=$T/root

cleanup_extra() {
    local p
    p=$(pgrep -f -x -- ".*vstorfs $DATA $MNT.*" | head -n 1)
    if any_mount; then
        umount "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"
    fi
    [ -n "$p" ] && sleep 0.5 && kill -9 "$p" 2>/dev/null
    [ -n "${PREFIX:-}" ] && umount "$PREFIX" 2>/dev/null
}

DESTDIR=$ROOT "$SRC/tools/setup.sh" --no-install --build-dir "$BUILD" \
    >"$T/setup.out" 2>&1
assert_eq 0 $? "DESTDIR=ROOT tools/setup.sh --no-install installs" ||
    diag "$(tail -n 5 "$T/setup.out")"

PREFIX=$(meson introspect --buildoptions "$BUILD" |
    jq -r '.[] | select(.name == "prefix") | .value')
mapfile -t installed < <(meson introspect --installed "$BUILD" | jq -r '.[]')
assert_num "${#installed[@]}" ge 5 "meson installs at least 5 files"
for f in "${installed[@]}"; do
    check "installed: $f" test -f "$ROOT$f"
done
unit=$(printf '%s\n' "${installed[@]}" | grep '/vstorfs\.service$')
sbin=$(printf '%s\n' "${installed[@]}" | grep '/sbin/vstorfs$')
check "the systemd unit is installed" test -n "$unit"
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$ROOT$unit")
assert_eq "$sbin" "$exec_start" "the unit starts the installed daemon"
check "... which is there" test -x "$ROOT$exec_start"

# What a user of the installed system sees (only in this namespace).
mount --bind "$ROOT$PREFIX" "$PREFIX" || bail "cannot bind $ROOT$PREFIX on $PREFIX"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
assert_eq "$PREFIX/bin/vstor" "$(command -v vstor)" "command -v vstor"
assert_eq "$PREFIX/sbin/vstorfs" "$(command -v vstorfs)" "command -v vstorfs"
assert_match "^$PREFIX/share/man/man8/vstorfs\.8" "$(man -w vstorfs 2>&1)" \
    "man -w vstorfs"
assert_match "^$PREFIX/share/man/man1/vstor\.1" "$(man -w vstor 2>&1)" \
    "man -w vstor"

check "mount -t fuse.vstorfs DATA MNT (the README's command)" \
    mount -t fuse.vstorfs "$DATA" "$MNT"
for ((i = 0; i < 50; i++)); do
    is_mounted && break
    sleep 0.1
done
is_mounted || bail "mount -t fuse.vstorfs did not mount $MNT"
ok "findmnt: fuse.vstorfs on MNT"
pid=$(pgrep -f -x -- ".*vstorfs $DATA $MNT.*" | head -n 1)
assert_eq "$PREFIX/sbin/vstorfs" "$(readlink "/proc/$pid/exe")" \
    "the mount runs the installed daemon"
check "mkdir a volume" mkdir -p "$MNT/dom/img/vol"
check "vstor ls (installed) lists it" \
    bash -c "vstor ls '$MNT' --json | jq -e '.[] | select(.path == \"$MNT/dom/img/vol\")'"
check "umount MNT" umount "$MNT"
for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
check_fails "the daemon exited after umount" kill -0 "$pid"
