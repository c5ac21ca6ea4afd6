#!/bin/bash
# Preallocation never eats the host's space for good: on a small
# loop-mounted ext4 data dir (64 MiB, so ENOSPC is real), a KEEP_SIZE
# fallocate of [0, 2^62) on a 1 TiB volume is clamped to the volume, fails
# with ENOSPC, and gives back exactly what it took (df is what it was,
# the data written before is intact, SEEK_DATA/SEEK_HOLE unchanged); a
# mode 0 fallocate that fails does not grow the volume either; sizes past
# the largest volume size (1 PiB) are refused with EFBIG and a log line.
. "$(dirname "$0")/lib.sh"
requires mkfs.ext4 mount umount losetup sync

MIB=1048576
TIB=$((1 << 40))
MAXSIZE=$((1 << 50))

cleanup_extra() {
    if findmnt -n --mountpoint "$DATA" >/dev/null 2>&1; then
        if any_mount; then
            fusermount3 -u -z "$MNT" 2>/dev/null
        fi
        umount "$DATA" || umount -l "$DATA"
    fi
}

truncate -s 64M "$T/fs.img"
mkfs.ext4 -q -F "$T/fs.img" || bail "mkfs.ext4"
mount -o loop "$T/fs.img" "$DATA" || bail "cannot loop-mount $T/fs.img"
start_vstorfs

# Free bytes of the data dir's file system, after the writes settled.
avail() {
    sync -f "$DATA"
    stat -f -c '%a %S' "$DATA" | awk '{ print $1 * $2 }'
}

# same_space BEFORE AFTER DESC: the free space is what it was, but for
# what ext4 keeps of a file's extent tree after the punches (it does not
# shrink the tree back): at most 16 KiB, here 1 KiB blocks.
same_space() {
    local d=$(($1 - $2))
    diag "$3: free space changed by $d bytes"
    assert_num "${d#-}" le 16384 "$3"
}

V=$MNT/dom/img/vol
check "mkdir a volume" mkdir -p "$V"
assert_eq OK "$(vsys truncate "$V/data" $TIB)" "truncate it to 1 TiB"
pattern 0x5a 1 >"$T/p.bin"
check "write 1 MiB at 4 MiB" \
    dd if="$T/p.bin" of="$V/data" bs=1M seek=4 conv=notrunc,fsync status=none
before=$(avail)
used=$(du_bytes "$V/data")
diag "free before: $before bytes"

expect_errno ENOSPC fallocate "$V/data" keep 0 $((1 << 62))
after=$(avail)
diag "free after the failed fallocate: $after bytes"
same_space "$before" "$after" "a failed KEEP_SIZE fallocate gives back all it took"
assert_eq $TIB "$(fsize "$V/data")" "... the size is still 1 TiB"
check "... the data written before is intact" same_region "$V/data" 4 1 "$T/p.bin"
assert_eq "OK $((4 * MIB))" "$(vsys seek "$V/data" SEEK_DATA 0)" \
    "... SEEK_DATA from 0 still finds it at 4 MiB"
assert_eq "OK $((5 * MIB))" "$(vsys seek "$V/data" SEEK_HOLE $((4 * MIB)))" \
    "... and SEEK_HOLE its end at 5 MiB"
assert_num "$(du_bytes "$V/data")" le $((used + 16384)) \
    "... and its allocation is what it was (but for extent-tree blocks)"

# A preallocation that fits still works, and stays.
check "a KEEP_SIZE fallocate of 8 MiB at 16 MiB works" \
    test "$(vsys fallocate "$V/data" keep $((16 * MIB)) $((8 * MIB)))" == OK
small=$(avail)
assert_num $((before - small)) ge $((8 * MIB)) "... and takes 8 MiB"

# A mode 0 fallocate that fails: no space taken and no growth either.
W=$MNT/dom/img/vol2
check "mkdir a second volume" mkdir "$W"
before=$(avail)
expect_errno ENOSPC fallocate "$W/data" 0 0 $TIB
after=$(avail)
same_space "$before" "$after" "a failed mode 0 fallocate gives back all it took"
assert_eq 0 "$(fsize "$W/data")" "... and the volume did not grow"

# A KEEP_SIZE range past the end preallocates nothing past it.
before=$(avail)
check "KEEP_SIZE fallocate past the end of an empty volume" \
    test "$(vsys fallocate "$W/data" keep 0 $((1 << 62)))" == OK
same_space "$before" "$(avail)" "... takes no space"
assert_eq 0 "$(fsize "$W/data")" "... and keeps the size"

# The largest volume size.
refused EFBIG fallocate "$W/data" 0 0 $((1 << 62))
refused EFBIG fallocate "$W/data" 0 $MAXSIZE 1
refused EFBIG truncate "$W/data" $((1 << 62))
refused EFBIG truncate "$W/data" $((MAXSIZE + 1))
assert_eq 0 "$(fsize "$W/data")" "the refused requests did not grow it"
check "a write past the largest size fails" \
    test "$("$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.pwrite(fd, b"x", int(sys.argv[2]))
    print("OK")
except OSError as e:
    print(e.errno)' "$W/data" $MAXSIZE)" == 27

stop_vstorfs
start_vstorfs
assert_eq $TIB "$(fsize "$V/data")" "after a restart: the 1 TiB volume"
assert_eq 0 "$(fsize "$W/data")" "... the empty one"
check "... and the data" same_region "$V/data" 4 1 "$T/p.bin"
stop_vstorfs
