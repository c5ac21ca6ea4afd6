#!/bin/bash
# Bad input on the backend: damaged qcow2 layer files.  With the daemon
# stopped, one layer file at a time is damaged (docs/interop/qcow2.txt in
# QEMU: the magic "QFI\xfb" at byte 0, l1_table_offset as 8 bytes big-endian
# at byte 40, the L1 table's entries as 8 bytes big-endian holding an L2
# table's offset):
#   1. the magic of a volume's top layer overwritten,
#   2. the L1 table offset of a middle layer (a snapshot) set past the end
#      of its file,
#   3. a top layer truncated to a few bytes,
#   4. the first L1 entry of a top layer pointing past the end of its file.
# After each start: reading the damaged volume fails with EIO (open or
# read, as python's os.read sees it), the log has a line naming the layer
# (its volume's name or its object), the other volumes of the domain (raw,
# and a qcow2 chain) still read their bytes and take writes, a new volume
# can be made, and the daemon stays up.
. "$(dirname "$0")/lib.sh"
requires getfattr setfattr od

M=$((1024 * 1024))

start_vstorfs
D=$MNT/dom
I=$D/img
mkdir -p "$I" || bail "cannot create the tree"
BACKEND_DIR=$(getfattr --only-values -n user.vstor.backend "$D" | sed s/^dir://)
[ -d "$BACKEND_DIR" ] || bail "no backend directory for $D ('$BACKEND_DIR')"

snap() {
    setfattr -n user.vstor.snapshot -v "$2" "$1"
}

layer_file() {
    echo "$BACKEND_DIR/$(xget "$1" user.vstor.object)"
}

# put VOLUME OFFSET_MIB FILE: write FILE into the volume at OFFSET_MIB.
put() {
    dd if="$3" of="$1/data" bs=1M seek="$2" conv=notrunc,fsync status=none
}

# dcmp FILE REF: FILE read with O_DIRECT equals REF.
dcmp() {
    cmp <(dd if="$1" bs=1M iflag=direct status=none) "$2"
}

# layered NAME: a volume of 4M whose top layer is qcow2 and owns its first
# 1M: 4M written, snapshotted as NAME-base, 1M written at 0.
layered() {
    local v=$I/$1
    mkdir "$v" && head -c $((4 * M)) /dev/urandom >"$T/$1.a" &&
        head -c $M /dev/urandom >"$T/$1.b" &&
        put "$v" 0 "$T/$1.a" && snap "$v" "$1-base" && put "$v" 0 "$T/$1.b"
}

# The healthy volumes: a raw one, and a qcow2 chain (with its reference).
mkdir "$I/good-raw" || bail "cannot create good-raw"
head -c $((4 * M)) /dev/urandom >"$T/good-raw.ref"
put "$I/good-raw" 0 "$T/good-raw.ref" || bail "cannot write good-raw"
layered good-top || bail "cannot build good-top"
cp "$T/good-top.a" "$T/good-top.ref"
dd if="$T/good-top.b" of="$T/good-top.ref" bs=1M conv=notrunc status=none

# The victims.
layered bad-magic || bail "cannot build the volume 'bad-magic'"
layered bad-l1off || bail "cannot build the volume 'bad-l1off'"
# bad-l1off's layer that owns 1M becomes the middle layer bad-l1off-mid.
snap "$I/bad-l1off" bad-l1off-mid && head -c $M /dev/urandom >"$T/bad-l1off.c" &&
    put "$I/bad-l1off" 2 "$T/bad-l1off.c" || bail "cannot snapshot bad-l1off"
layered bad-cut || bail "cannot build the volume 'bad-cut'"
layered bad-l1entry || bail "cannot build the volume 'bad-l1entry'"

for v in good-top bad-magic bad-l1off-mid bad-cut bad-l1entry; do
    assert_eq qcow2 "$(xget "$I/$v" user.vstor.format)" "$v's layer is qcow2"
done
check "good-top reads its reference" dcmp "$I/good-top/data" "$T/good-top.ref"
declare -A OBJ
for v in good-raw good-top bad-magic bad-l1off bad-l1off-mid bad-cut bad-l1entry; do
    OBJ[$v]=$(xget "$I/$v" user.vstor.object)
done
sync "$I/good-top/data" "$I/bad-magic/data" "$I/bad-l1off/data" "$I/bad-cut/data" \
    "$I/bad-l1entry/data"
stop_vstorfs

IFS= read -r -d '' READ_PY <<'EOF'
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
except OSError as e:
    print('open', errno.errorcode.get(e.errno, str(e.errno)))
    sys.exit(0)
try:
    os.pread(fd, 65536, int(sys.argv[2]))
    print('read OK')
except OSError as e:
    print('read', errno.errorcode.get(e.errno, str(e.errno)))
EOF

# read_result PATH OFFSET: "open ERRNO", "read ERRNO" or "read OK".
read_result() {
    "$PY" -c "$READ_PY" "$1" "$2"
}

serial=0
# after_damage WHAT VOLUME LAYER: start the daemon on the damaged store
# and check everything; LAYER is the damaged layer's volume.
after_damage() {
    local what=$1 vol=$2 layer=$3 got rc=0 re
    log_mark
    try_start_vstorfs || rc=$?
    if [ $rc -ne 0 ]; then
        not_ok "$what: the daemon starts on a store with a damaged layer" \
            "start status $rc (exit status ${VSTORFS_STATUS:-none})" \
            "$(log_new_lines | tail -n 5)"
        bail "$what: the daemon did not start"
    fi
    ok "$what: the daemon starts on a store with a damaged layer"
    got=$(read_result "$I/$vol/data" 0)
    if [[ $got == *EIO ]]; then
        ok "$what: reading $vol/data fails with EIO ($got)"
    else
        not_ok "$what: reading $vol/data fails with EIO" "got: $got"
    fi
    re="'?$layer'?([^-a-z0-9]|\$)|${OBJ[$layer]}"
    if log_gained "$re"; then
        ok "$what: the log has a line naming the layer ($layer)"
        diag "$(log_new_lines | grep -Ei -- "$re" | head -n 3)"
    else
        not_ok "$what: the log has a line naming the layer ($layer or ${OBJ[$layer]})" \
            "new log lines: $(log_new_lines | xargs -d '\n')"
    fi
    check "$what: good-raw still reads its bytes" dcmp "$I/good-raw/data" "$T/good-raw.ref"
    check "$what: good-top (a qcow2 chain) still reads its bytes" \
        dcmp "$I/good-top/data" "$T/good-top.ref"
    serial=$((serial + 1))
    head -c $M /dev/urandom >"$T/w.$serial"
    dd if="$T/w.$serial" of="$T/good-top.ref" bs=1M seek=3 conv=notrunc status=none
    check "$what: good-top takes a write (O_DIRECT, fsync)" \
        dd if="$T/w.$serial" of="$I/good-top/data" bs=1M seek=3 oflag=direct \
        conv=notrunc,fsync status=none
    check "$what: good-top reads it back" dcmp "$I/good-top/data" "$T/good-top.ref"
    check "$what: good-raw takes a write" \
        dd if="$T/w.$serial" of="$I/good-raw/data" bs=1M seek=1 oflag=direct \
        conv=notrunc,fsync status=none
    dd if="$T/w.$serial" of="$T/good-raw.ref" bs=1M seek=1 conv=notrunc status=none
    check "$what: good-raw reads it back" dcmp "$I/good-raw/data" "$T/good-raw.ref"
    check "$what: mkdir of a new volume works" mkdir "$I/new-$serial"
    check "$what: the new volume takes a write" \
        dd if="$T/w.$serial" of="$I/new-$serial/data" bs=1M conv=fsync status=none
    check "$what: the daemon is still running" kill -0 "$VSTORFS_PID"
    check "$what: the mount still answers" is_mounted
    stop_vstorfs
}

# 1. The magic of bad-magic's top layer.
f=$BACKEND_DIR/${OBJ[bad-magic]}
check "1: the layer file starts with the qcow2 magic" \
    test "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" == 514649fb
printf 'XXXX' | dd of="$f" bs=1 seek=0 conv=notrunc status=none
after_damage "1 (magic overwritten)" bad-magic bad-magic

# 2. The L1 table offset of bad-l1off's middle layer, set to 1 TiB.
f=$BACKEND_DIR/${OBJ[bad-l1off-mid]}
diag "2: l1_table_offset was $(od -An -tu8 --endian=big -j 40 -N 8 "$f" | tr -d ' '), the file has $(stat -c %s "$f") bytes"
printf '\x00\x00\x01\x00\x00\x00\x00\x00' | dd of="$f" bs=1 seek=40 conv=notrunc status=none
after_damage "2 (L1 table offset of a middle layer past the end)" bad-l1off bad-l1off-mid

# 3. bad-cut's top layer cut to 7 bytes.
truncate -s 7 "$BACKEND_DIR/${OBJ[bad-cut]}"
after_damage "3 (layer truncated to 7 bytes)" bad-cut bad-cut

# 4. The first L1 entry of bad-l1entry's top layer: an L2 table at 1 TiB
# (with the COPIED flag, as a live entry has).
f=$BACKEND_DIR/${OBJ[bad-l1entry]}
l1=$(od -An -tu8 --endian=big -j 40 -N 8 "$f" | tr -d ' ')
diag "4: l1_table_offset $l1, first entry was $(od -An -tx8 --endian=big -j "$l1" -N 8 "$f" | tr -d ' ')"
printf '\x80\x00\x01\x00\x00\x00\x00\x00' | dd of="$f" bs=1 seek="$l1" conv=notrunc status=none
after_damage "4 (an L1 entry past the end of the file)" bad-l1entry bad-l1entry
