#!/bin/bash
# A base volume in qcow2: raw is the format of a volume with no parent
# unless the user asks, with `setfattr -n user.vstor.format -v qcow2 VOL`
# while the volume is empty and closed.  The volume then takes data,
# snapshots and clones like any other; its backend file is a qcow2 image
# without a backing file that qemu-img reads (info, check, compare), and it
# survives a restart.  Refused: another format (EINVAL), a volume with data
# (ENOTEMPTY), a clone (EINVAL: a layer over a parent is qcow2), an open
# volume (EBUSY), a domain (EPERM); each changes nothing.
. "$(dirname "$0")/lib.sh"
requires qemu-img getfattr setfattr

M=$((1024 * 1024))

start_vstorfs
I=$MNT/dom/img
V=$I/q
mkdir -p "$V" "$I/other" || bail "cannot create the tree"
BACKEND_DIR=$(getfattr --only-values -n user.vstor.backend "$MNT/dom" | sed s/^dir://)

assert_eq raw "$(xget "$V" user.vstor.format)" "a new volume is raw"
check "setfattr user.vstor.format qcow2 on the empty volume" \
    setfattr -n user.vstor.format -v qcow2 "$V"
assert_eq qcow2 "$(xget "$V" user.vstor.format)" "it is qcow2 now"
check "setting the format it has already is accepted" \
    setfattr -n user.vstor.format -v qcow2 "$V"
assert_eq 0 "$(stat -c %s "$V/data")" "it is still empty"

head -c $((8 * M)) /dev/urandom >"$T/ref"
check "fill it (8M), fsync" \
    dd if="$T/ref" of="$V/data" bs=1M oflag=direct conv=fsync status=none
check "it reads what was written" cmp "$V/data" "$T/ref"
F=$BACKEND_DIR/$(xget "$V" user.vstor.object)
info=$(qemu-img info --output=json "$F")
assert_eq qcow2 "$(jq -r .format <<<"$info")" "qemu-img info: the backend file is qcow2"
assert_eq null "$(jq -r '."backing-filename"' <<<"$info")" "qemu-img info: no backing file"
check "qemu-img check is clean" qemu-img check -q "$F"
check "qemu-img compare: the backend file equals the reference" \
    qemu-img compare -q -f qcow2 -F raw "$F" "$T/ref"

# A snapshot and a clone of a qcow2 base.
check "snapshot it" setfattr -n user.vstor.snapshot -v s1 "$V"
assert_eq qcow2 "$(xget "$I/s1" user.vstor.format)" "the snapshot keeps the qcow2 layer"
check "ln -s a clone onto the snapshot" ln -s ../s1 "$I/other/backing"
check "the clone reads the base's bytes" cmp "$I/other/data" "$T/ref"
check "qemu-img compare through the clone's backend chain" \
    qemu-img compare -q -f qcow2 -F raw \
    "$BACKEND_DIR/$(xget "$I/other" user.vstor.object)" "$T/ref"

# Refusals.
mkdir -p "$I/e" || bail "cannot create e"
refused EINVAL setxattr "$I/e" user.vstor.format vmdk
refused EINVAL setxattr "$I/e" user.vstor.format ""
mkdir -p "$I/full" && echo data >"$I/full/data" || bail "cannot write full"
refused ENOTEMPTY setxattr "$I/full" user.vstor.format qcow2
refused EINVAL setxattr "$V" user.vstor.format raw
refused EINVAL setxattr "$I/other" user.vstor.format raw
refused EPERM setxattr "$MNT/dom" user.vstor.format qcow2
hold_open "$I/e/data" || bail "cannot hold e open"
refused EBUSY setxattr "$I/e" user.vstor.format qcow2
release_hold
assert_eq raw "$(xget "$I/e" user.vstor.format)" "the refused volume is still raw"
check "qcow2 back to raw while empty" sh -c \
    "setfattr -n user.vstor.format -v qcow2 '$I/e' && setfattr -n user.vstor.format -v raw '$I/e'"
assert_eq raw "$(xget "$I/e" user.vstor.format)" "e is raw again"
assert_eq "$(find "$BACKEND_DIR" -type f | wc -l)" \
    "$(($(ls "$I" | wc -l) + 1))" "one object per volume and the metadata: none left behind"

stop_vstorfs
start_vstorfs
assert_eq qcow2 "$(xget "$V" user.vstor.format)" "after a restart: still qcow2"
check "after a restart: it reads what was written" cmp "$V/data" "$T/ref"
