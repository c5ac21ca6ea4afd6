#!/bin/bash
# A volume whose chain cannot be opened (its qcow2 header overwritten) does
# not pretend to be empty: stat of its data fails with EIO, the log names it
# once (not at every stat), user.vstor.status says "unavailable: why" (and
# "ok" on healthy volumes), `vstor ls` and `vstor info` show it, and the
# other volumes go on working.
. "$(dirname "$0")/lib.sh"
requires getfattr setfattr jq
[ -n "$VSTOR" ] && [ -x "$VSTOR" ] || _skip_all "no vstor tool: set VSTOR"

M=$((1024 * 1024))

# vsys with a stat op.
vsys() {
    if [ "$1" == stat ]; then
        "$PY" -c 'import errno, os, sys
try:
    os.stat(sys.argv[1])
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))' "$2"
    else
        "$PY" -c "$VSYS_PY" "$@"
    fi
}

start_vstorfs
D=$MNT/dom
I=$D/img
mkdir "$D" "$I" "$I/good" "$I/bad" || bail "cannot create the tree"
BACKEND_DIR=$(xget "$D" user.vstor.backend | sed s/^dir://)
head -c $((4 * M)) /dev/urandom >"$T/good.bin"
cp "$T/good.bin" "$I/good/data" && cp "$T/good.bin" "$I/bad/data" &&
    setfattr -n user.vstor.snapshot -v bad-base "$I/bad" &&
    dd if=/dev/urandom of="$I/bad/data" bs=1M count=1 conv=notrunc,fsync status=none ||
    bail "cannot build the volumes"
assert_eq ok "$(xget "$I/bad" user.vstor.status)" "a healthy volume: user.vstor.status is ok"
assert_eq ok "$(xget "$I/bad/data" user.vstor.status)" "on its data too"
expect_errno ENODATA getxattr "$I" user.vstor.status
BAD_OBJ=$(xget "$I/bad" user.vstor.object)
stop_vstorfs

printf 'XXXX' | dd of="$BACKEND_DIR/$BAD_OBJ" bs=1 conv=notrunc status=none ||
    bail "cannot damage the header"
log_mark
start_vstorfs

for i in 1 2 3; do
    expect_errno EIO stat "$I/bad/data"
done
check_fails "stat(1) of the data fails" stat "$I/bad/data"
check "the volume directory still lists" ls "$I/bad"
status=$(xget "$I/bad" user.vstor.status)
assert_match '^unavailable: .+' "$status" "user.vstor.status says unavailable, with the reason"
assert_eq ok "$(xget "$I/good" user.vstor.status)" "the healthy volume says ok"
assert_eq ok "$(xget "$I/bad-base" user.vstor.status)" "the snapshot below the damaged layer says ok"

out=$("$VSTOR" ls "$MNT")
assert_match "dom/img/bad +\\(unavailable: [^)]+\\)" "$out" "vstor ls shows the volume unavailable, with the reason"
assert_match "(^|$(printf '\n'))dom/img/good($(printf '\n')|$)" "$out" "vstor ls shows the healthy volume plainly"
out=$("$VSTOR" ls -l "$MNT")
assert_match "volume .* dom/img/bad +\\(unavailable" "$out" "vstor ls -l shows it unavailable"
assert_match '^unavailable: ' "$("$VSTOR" ls --json "$MNT" | jq -r '.[] | select(.name == "bad") | .status')" \
    "vstor ls --json has its status"
assert_match "status: unavailable: " "$("$VSTOR" info "$I/bad")" "vstor info shows the status"
assert_eq ok "$("$VSTOR" info "$I/good" --json | jq -r .status)" "vstor info --json: status ok"

n=$(log_new_lines | grep -ac "volume 'dom/img/bad'.*cannot be opened")
assert_eq 1 "$n" "the damaged volume is logged once, not at every stat"
assert_eq "" "$(log_new_lines | grep -ai 'refused getxattr')" "vstor ls logs no refused getxattr"

check "the healthy volume reads its bytes" cmp "$I/good/data" "$T/good.bin"
check "the healthy volume takes writes" dd if=/dev/zero of="$I/good/data" bs=1M count=1 conv=notrunc status=none
check "a new volume can be made" mkdir "$I/new"
stop_vstorfs
