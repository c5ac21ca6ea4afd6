#!/bin/bash
# The whole user session on a fresh mount: make a domain, an image and a
# volume, grow the volume thin, fill it with qemu-img from a qcow2 image and
# compare, look at it with ls/stat/du/df/getfattr, copy in and out (sparse),
# preallocate and punch, rename at every level, remove, unmount.
. "$(dirname "$0")/lib.sh"
requires qemu-img qemu-io jq getfattr fallocate truncate du df cp mv setpriv

G=$((1024 * 1024 * 1024))
M=$((1024 * 1024))

start_vstorfs

D=$MNT/dom1
I=$D/img1
V=$I/vol1
check "mkdir a domain" mkdir "$D"
check "mkdir an image" mkdir "$I"
check "mkdir a volume" mkdir "$V"
check "the volume's data file exists at once" test -f "$V/data"
assert_eq "0 600 root" "$(stat -c '%s %a %U' "$V/data")" "data is empty, 0600, root"
assert_eq "755 755 755" "$(stat -c %a "$D" "$I" "$V" | xargs)" "directories are 0755"
assert_eq "data map" "$(ls "$V" | xargs)" "a volume holds exactly data and its map"

# Thin growth.
check "truncate -s 20G data" truncate -s 20G "$V/data"
assert_eq $((20 * G)) "$(fsize "$V/data")" "stat size is 20G"
assert_num "$(du_bytes "$V/data")" lt $M "du of the thin 20G volume is small"
alloc=$(xget "$V" user.vstor.allocated)
assert_num "${alloc:-x}" lt $M "user.vstor.allocated of the thin volume is small"
assert_eq $((20 * G)) "$(xget "$V" user.vstor.size)" "user.vstor.size is 20G"

# qemu-img writes the volume from a qcow2 source.
SRC=$T/src.qcow2
check "qemu-img create -f qcow2" qemu-img create -q -f qcow2 "$SRC" 20G
check "qemu-io writes the source patterns" \
    qemu-io -f qcow2 -c 'write -P 0xab 0 4M' -c 'write -P 0xcd 1G 4M' "$SRC"
check "qemu-img convert -n -O raw into data" \
    qemu-img convert -n -f qcow2 -O raw "$SRC" "$V/data"
check "qemu-img compare source and data: equal" \
    qemu-img compare -f qcow2 -F raw "$SRC" "$V/data"
assert_eq $((20 * G)) "$(fsize "$V/data")" "convert -n kept the size"

map=$(qemu-img map --output=json -f raw "$V/data")
holes=$(jq '[.[] | select(.data == false)] | length' <<<"$map")
mapped=$(jq '[.[] | select(.data == true) | .length] | add // 0' <<<"$map")
assert_num "${holes:-0}" gt 0 "qemu-img map shows holes"
assert_num "${mapped:-x}" lt $((64 * M)) "qemu-img map: data extents are small (not fully allocated)"

# lseek reports the allocation.
assert_eq "OK 0" "$(vsys seek "$V/data" SEEK_DATA 0)" "SEEK_DATA from 0 finds the data at 0"
hole=$(vsys_value seek "$V/data" SEEK_HOLE 0)
assert_num "${hole:-x}" ge $((4 * M)) "SEEK_HOLE from 0 is at or after 4M"
assert_num "${hole:-x}" le $G "SEEK_HOLE from 0 is before 1G"
next=$(vsys_value seek "$V/data" SEEK_DATA $((8 * M)))
assert_num "${next:-x}" le $G "SEEK_DATA from 8M is at or before 1G"
assert_num "${next:-x}" gt $((4 * M)) "SEEK_DATA from 8M is after 4M"

# ls, stat, du, df.
lsl=$(ls -l "$V")
assert_match "^-rw------- 1 root root $((20 * G)) .* data$" "$(grep ' data$' <<<"$lsl")" \
    "ls -l shows data 0600 root 20G"
assert_eq "regular file" "$(stat -c %F "$V/data")" "stat: data is a regular file"
assert_eq "directory" "$(stat -c %F "$V")" "stat: a volume is a directory"
assert_num "$(du_bytes "$V/data")" lt $((64 * M)) "du of data after convert is small"
assert_num "$(du_bytes "$V/data")" ge $((8 * M)) "du of data after convert counts the 8M written"
mnt_size=$(df -B1 --output=size "$MNT" | tail -n 1 | tr -d ' ')
dir_size=$(df -B1 --output=size "$DATA" | tail -n 1 | tr -d ' ')
if within_pct "${mnt_size:-0}" "${dir_size:-1}" 1; then
    ok "df on the mount reports the data dir's file system size"
else
    not_ok "df on the mount reports the data dir's file system size" \
        "mount: $mnt_size bytes, data dir: $dir_size bytes"
fi
assert_eq fuse.vstorfs "$(findmnt -n -o FSTYPE --mountpoint "$MNT")" "findmnt: fstype fuse.vstorfs"
assert_eq "$DATA" "$(findmnt -n -o SOURCE --mountpoint "$MNT")" "findmnt: source is the data dir"

# cp in and out.
V2=$I/vol2
check "mkdir a second volume" mkdir "$V2"
head -c $((8 * M + 12345)) /dev/urandom >"$T/rand.bin"
check "cp a file into data" cp "$T/rand.bin" "$V2/data"
check "cmp: data equals the source file" cmp "$T/rand.bin" "$V2/data"
assert_eq $((8 * M + 12345)) "$(fsize "$V2/data")" "cp set the size"
check "cp data out" cp "$V2/data" "$T/out.bin"
check "cmp: the copy out equals the source file" cmp "$T/rand.bin" "$T/out.bin"
head -c $M /dev/urandom >"$T/small.bin"
check "cp a 1M file over the 8M data" cp "$T/small.bin" "$V2/data"
assert_eq $M "$(fsize "$V2/data")" "data now has the small file's size"
check "cmp: data equals the small file" cmp "$T/small.bin" "$V2/data"

# Another user (QEMU runs as libvirt-qemu): allow_other and
# default_permissions let the owner in and keep others out.
check "chown the data to uid 64055" chown 64055:64055 "$V2/data"
assert_eq "64055:64055" "$(stat -c %u:%g "$V2/data")" "stat shows the new owner"
as_user() {
    setpriv --reuid="$1" --regid="$1" --clear-groups "${@:2}"
}
# ($T is root's 0700: the user gets its input and output through pipes.)
check "the owner (uid 64055) reads the data" \
    cmp <(as_user 64055 cat "$V2/data") "$T/small.bin"
check "the owner (uid 64055) writes the data with O_DIRECT" \
    as_user 64055 dd of="$V2/data" bs=64k oflag=direct conv=notrunc status=none <"$T/small.bin"
check_fails "another user (uid 64056) cannot read the 0600 data" \
    as_user 64056 head -c 1 "$V2/data"
check "chown it back to root" chown 0:0 "$V2/data"

check "cp --sparse=always data out" cp --sparse=always "$V/data" "$T/sparse.raw"
assert_eq $((20 * G)) "$(fsize "$T/sparse.raw")" "the sparse copy has the full size"
assert_num "$(du_bytes "$T/sparse.raw")" lt $((64 * M)) "the sparse copy keeps the holes (du small)"
check "qemu-img compare source and the sparse copy: equal" \
    qemu-img compare -f qcow2 -F raw "$SRC" "$T/sparse.raw"

# Preallocate and punch.
a0=$(xget "$V" user.vstor.allocated)
check "fallocate -o 2G -l 64M preallocates" fallocate -o $((2 * G)) -l 64M "$V/data"
a1=$(xget "$V" user.vstor.allocated)
assert_num "${a1:-0}" ge $((${a0:-0} + 60 * M)) "user.vstor.allocated grew by the 64M"
assert_num "$(du_bytes "$V/data")" ge $((64 * M)) "du grew by the 64M"
assert_eq $((20 * G)) "$(fsize "$V/data")" "preallocating inside the file keeps its size"
check "fallocate -p -o 2G -l 64M punches" fallocate -p -o $((2 * G)) -l 64M "$V/data"
a2=$(xget "$V" user.vstor.allocated)
assert_num "${a2:-x}" le $((${a0:-0} + M)) "user.vstor.allocated shrank back"
check "fallocate -p -o 0 -l 4M punches the 0xab pattern" fallocate -p -o 0 -l 4M "$V/data"
check "the punched range reads zeros" cmp -n $((4 * M)) "$V/data" /dev/zero
a3=$(xget "$V" user.vstor.allocated)
assert_num "${a3:-x}" le $((${a2:-0} - 3 * M)) "user.vstor.allocated shrank by the 4M punched"
assert_eq $((20 * G)) "$(fsize "$V/data")" "punching keeps the size"
pattern 0xcd 4 >"$T/cd.bin"
check "the 0xcd pattern at 1G is intact" same_region "$V/data" 1024 4 "$T/cd.bin"
check "fallocate -l 16M grows the 1M volume" fallocate -l 16M "$V2/data"
assert_eq $((16 * M)) "$(fsize "$V2/data")" "fallocate grew data to 16M"
check "growing kept the first 1M" cmp -n $M "$T/small.bin" "$V2/data"
check "fallocate -n (KEEP_SIZE) past the end" fallocate -n -o $((16 * M)) -l 8M "$V2/data"
assert_eq $((16 * M)) "$(fsize "$V2/data")" "KEEP_SIZE kept the size"
pattern 0x77 2 >"$T/77.bin"
check "write a pattern at 4M" dd if="$T/77.bin" of="$V2/data" bs=1M seek=4 conv=notrunc,fsync status=none
check "fallocate -z (ZERO_RANGE) over it" fallocate -z -o $((4 * M)) -l $M "$V2/data"
check "the zeroed range reads zeros" same_region "$V2/data" 4 1 <(head -c $M /dev/zero)
check "the rest of the pattern is kept" same_region "$V2/data" 5 1 <(pattern 0x77 1)
assert_eq $((16 * M)) "$(fsize "$V2/data")" "ZERO_RANGE inside the file kept the size"
check "a write past the end grows data" \
    dd if="$T/77.bin" of="$V2/data" bs=1M seek=20 conv=notrunc status=none
assert_eq $((22 * M)) "$(fsize "$V2/data")" "data grew to 22M by the write"
check "the bytes between the old end and the write read zeros" \
    same_region "$V2/data" 16 4 <(head -c $((4 * M)) /dev/zero)
check "the bytes written past the end read back" same_region "$V2/data" 20 2 "$T/77.bin"
check "cp data back out and compare" bash -c "cp '$V2/data' '$T/v2.out' && cmp '$V2/data' '$T/v2.out'"

# Extended attributes.
names=$(getfattr --absolute-names -d -m user.vstor "$V/data" | sed -n 's/^\(user\.vstor\.[a-z-]*\)=.*/\1/p' | sort | xargs)
for n in uuid kind size allocated format backend created caps; do
    assert_match "(^| )user\\.vstor\\.$n( |$)" "$names" "getfattr -d -m user.vstor lists user.vstor.$n"
done
assert_eq raw "$(xget "$V/data" user.vstor.format)" "user.vstor.format is raw"
assert_eq data "$(xget "$V/data" user.vstor.kind)" "user.vstor.kind of data is data"
vuuid=$(xget "$V" user.vstor.uuid)
assert_match "$UUID_RE" "$vuuid" "the volume has a uuid"
duuid=$(xget "$D" user.vstor.uuid)
object=$(xget "$V" user.vstor.object)
backend_file=$DATA/domains/$duuid/$object
check "the volume's backend file is in the domain's directory" test -f "$backend_file"

# Renames within the parent keep the contents.
check "mv renames a volume" mv "$V" "$I/vol1b"
V=$I/vol1b
check "mv renames an image" mv "$I" "$D/img1b"
I=$D/img1b
V=$I/vol1b
V2=$I/vol2
check "mv renames a domain" mv "$D" "$MNT/dom1b"
D=$MNT/dom1b
I=$D/img1b
V=$I/vol1b
V2=$I/vol2
assert_eq "dom1b" "$(ls "$MNT" | xargs)" "the root lists the renamed domain only"
assert_eq "vol1b vol2" "$(ls "$I" | xargs)" "the renamed image lists both volumes"
assert_eq "$vuuid" "$(xget "$V" user.vstor.uuid)" "the renamed volume kept its uuid"
assert_eq "$duuid" "$(xget "$D" user.vstor.uuid)" "the renamed domain kept its uuid"
check "the renamed volume kept the 0xcd pattern" same_region "$V/data" 1024 4 "$T/cd.bin"
check "the other volume kept its bytes" cmp -n $M "$T/small.bin" "$V2/data"

# Removal.
check "rmdir a volume" rmdir "$V"
check_fails "the removed volume's backend file is gone" test -e "$backend_file"
check_fails "the removed volume is gone from the tree" test -e "$V"
check "rmdir the other volume" rmdir "$V2"
check "rmdir the image" rmdir "$I"
check "rmdir the domain" rmdir "$D"
assert_eq "" "$(ls -A "$MNT")" "the root is empty"

stop_vstorfs
check_fails "the mount is gone" any_mount
