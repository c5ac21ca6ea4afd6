#!/bin/bash
# Mounting the way an administrator does: mount -t fuse.vstorfs through
# fuse3's mount.fuse3 (which runs `vstorfs SOURCE MOUNTPOINT -o OPTS` and
# lets it daemonize), umount; the signals that unmount cleanly; start-up
# errors; --help and --version.

# Private mount namespace: the build's vstorfs can stand in for an installed
# one (tools/setup.sh installs it) without touching the host.
if [ -z "${VSTORFS_TEST_NS:-}" ]; then
    export VSTORFS_TEST_NS=1
    exec unshare --mount --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
requires mount umount mount.fuse3 pgrep unshare

# mount(8) runs mount.fuse3 without PATH in its environment, so its /bin/sh
# finds vstorfs only in the shell's default PATH: in this namespace only,
# /usr/local/sbin (where `meson install` puts vstorfs) is a directory holding
# a symlink to the build.
SBIN=/usr/local/sbin
mkdir -p "$T/sbin" "$SBIN"
ln -s "$VSTORFS" "$T/sbin/vstorfs" || bail "cannot link $T/sbin/vstorfs"
mount --bind "$T/sbin" "$SBIN" || bail "cannot bind $T/sbin on $SBIN"

# The daemonized vstorfs serving $MNT (its PID, for waiting and cleanup).
daemon_pid() {
    pgrep -f -x -- ".*vstorfs $DATA $MNT.*" | head -n 1
}

cleanup_extra() {
    local p
    p=$(daemon_pid)
    if [ -n "$p" ]; then
        umount "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"
        sleep 0.5
        kill -9 "$p" 2>/dev/null
    fi
    umount "$SBIN" 2>/dev/null
}

check "mount -t fuse.vstorfs DATA_DIR MNT" \
    mount -t fuse.vstorfs -o noatime,_netdev "$DATA" "$MNT"
for ((i = 0; i < 50; i++)); do
    is_mounted && break
    sleep 0.1
done
is_mounted || bail "mount -t fuse.vstorfs did not mount $MNT"
ok "findmnt: the mount is there"
line=$(findmnt -n -o FSTYPE,SOURCE,OPTIONS --mountpoint "$MNT")
diag "findmnt: $line"
read -r fstype source options <<<"$line"
assert_eq fuse.vstorfs "$fstype" "findmnt: fstype fuse.vstorfs"
assert_eq "$DATA" "$source" "findmnt: source is the data dir"
assert_match '(^|,)nosuid(,|$)' "$options" "findmnt: nosuid"
assert_match '(^|,)nodev(,|$)' "$options" "findmnt: nodev"
assert_match '(^|,)allow_other(,|$)' "$options" "findmnt: allow_other"
assert_match '(^|,)default_permissions(,|$)' "$options" "findmnt: default_permissions"
pid=$(daemon_pid)
check "the daemon runs in the background" test -n "$pid"

V=$MNT/dom/img/vol
check "mkdir a volume on the helper's mount" mkdir -p "$V"
head -c 1048576 /dev/urandom >"$T/r.bin"
check "cp into it" cp "$T/r.bin" "$V/data"
check "read it back with O_DIRECT" \
    cmp <(dd if="$V/data" bs=64k iflag=direct status=none) "$T/r.bin"
check "umount MNT" umount "$MNT"
check_fails "the mount is gone" any_mount
if [ -n "$pid" ]; then
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    check_fails "the daemon exited after umount" kill -0 "$pid"
fi

# Mount again (fstab style options) and check what was written.
check "mount -t fuse.vstorfs -o defaults,_netdev again" \
    mount -t fuse.vstorfs -o defaults,_netdev "$DATA" "$MNT"
is_mounted || bail "the second mount -t fuse.vstorfs did not mount $MNT"
check "the data is there after the second mount" cmp "$V/data" "$T/r.bin"
check "umount again" umount "$MNT"
for ((i = 0; i < 50; i++)); do
    [ -z "$(daemon_pid)" ] && break
    sleep 0.1
done

# SIGTERM, SIGINT and SIGHUP unmount cleanly with exit status 0.
for sig in TERM INT HUP; do
    start_vstorfs
    check "SIG$sig: the tree is served" cmp "$V/data" "$T/r.bin"
    kill -"$sig" "$VSTORFS_PID"
    if wait_child "$VSTORFS_PID" 10; then
        assert_eq 0 "$WAIT_STATUS" "SIG$sig: vstorfs exits with status 0"
    else
        not_ok "SIG$sig: vstorfs exits within 10 s"
        kill -9 "$VSTORFS_PID"
        wait "$VSTORFS_PID"
    fi
    VSTORFS_PID=
    check_fails "SIG$sig: the mount is gone" any_mount
    any_mount && fusermount3 -u -z "$MNT"
done

# Options may come after the positionals, and in -o form.
start_vstorfs "$DATA" -o threads=4,max_write=1048576,log_level=info
check "options after the positionals (-o threads=4,max_write=1048576,log_level=info)" is_mounted
check "the tree is served" cmp "$V/data" "$T/r.bin"
stop_vstorfs
start_vstorfs "$DATA" --threads=3 --max-write=262144 --max-background=32 --log-level=warning
check "long options (--threads --max-write --max-background --log-level)" is_mounted
stop_vstorfs

# Start-up errors: exit status 1 and a message on stderr, no mount.
: >"$T/a-file"
"$VSTORFS" -f "$T/a-file" "$MNT" >"$T/err1.out" 2>&1
assert_eq 1 $? "a data dir that is a file: exit status 1"
check "... with a message on stderr" test -s "$T/err1.out"
diag "$(head -n 3 "$T/err1.out")"
check_fails "... and no mount" any_mount
"$VSTORFS" -f --no-such-option "$DATA" "$MNT" >"$T/err2.out" 2>&1
rc=$?
assert_num $rc ge 1 "an unknown option fails"
check_fails "... and no mount" any_mount
"$VSTORFS" -f "$DATA" "$T/no-such-mountpoint" >"$T/err3.out" 2>&1
assert_eq 1 $? "a missing mount point: exit status 1"
check "... with a message on stderr" test -s "$T/err3.out"

check "vstorfs --help exits 0" "$VSTORFS" --help
check "vstorfs --version exits 0" "$VSTORFS" --version
assert_match '[0-9]+\.[0-9]+' "$("$VSTORFS" --version 2>&1)" "--version prints a version"
