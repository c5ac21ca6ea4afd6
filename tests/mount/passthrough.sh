#!/bin/bash
# Kernel FUSE passthrough (-o passthrough=on): the kernel reads and writes a
# raw local volume's object itself.  Bytes written through a passthrough
# open are on the object and read back through the daemon (a mount with
# passthrough=off); fio --verify and qemu-io through it; O_DIRECT writes;
# fsync; fallocate punch-hole and SEEK_HOLE/SEEK_DATA (still the daemon's);
# flock; root writing past the end grows the volume and the daemon learns
# the size; the security.capability probe is asked once, not per write;
# a snapshot while a passthrough open exists is refused (EBUSY) and works
# after the close, after which the volume (now layered) opens through the
# daemon; a clone over a volume read by passthrough reads its bytes; a
# chmod/chown that would let others write is refused (EBUSY) while it is
# open and makes later opens go through the daemon; setuid bits are refused;
# after the last close the backing id is gone: the volume is removed and
# the unmount is clean; with passthrough=off nothing is passthrough.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/layers.sh"
requires fio qemu-io getfattr setfattr flock

M=$((1024 * 1024))

rc=0
out=$("$VSTORFS" -f -o passthrough=maybe "$DATA" "$MNT" 2>&1) || rc=$?
assert_eq 2 "$rc" "passthrough=maybe is refused (exit 2)"
assert_match "passthrough: 'maybe' is not off, auto or on" "$out" \
    "... saying which values it takes"

start_vstorfs -o passthrough=on -d fuse
if ! log_has 'kernel FUSE passthrough is on'; then
    stop_vstorfs
    _skip_all "the kernel does not offer FUSE passthrough (Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH)"
fi
ok "the kernel took passthrough at INIT"

D=$MNT/dom
I=$D/img
V=$I/vol
mkdir -p "$V" || bail "cannot create the tree"
truncate -s 64M "$V/data" || bail "cannot size the volume"
domain_backend
OBJ=$(layer_file "$V")

pt() {
    xget "$1" user.vstor.passthrough
}

# wait_pt VOLUME VALUE: the attribute reaches VALUE within 5 s (a RELEASE
# reaches the daemon after close returned).
wait_pt() {
    local i
    for ((i = 0; i < 50; i++)); do
        [ "$(pt "$1")" == "$2" ] && return 0
        sleep 0.1
    done
    echo "user.vstor.passthrough of $1 is '$(pt "$1")', not '$2'"
    return 1
}

# --- open, bytes on the object ----------------------------------------------
hold_open "$V/data" || bail "cannot hold the volume open"
check "an open of a raw local volume is passthrough" wait_pt "$V" "on 1"
release_hold
check "the last close ends it" wait_pt "$V" off

pattern 0x5a 4 >"$T/p5a"
check "dd 4 MiB at 8 MiB through passthrough" \
    dd if="$T/p5a" of="$V/data" bs=1M seek=8 conv=notrunc,fsync status=none
check "the bytes are on the object itself" same_region "$OBJ" 8 4 "$T/p5a"
check "and read back through the mount" same_region "$V/data" 8 4 "$T/p5a"

pattern 0xc3 1 >"$T/pc3"
check "O_DIRECT write through passthrough" \
    dd if="$T/pc3" of="$V/data" bs=4k seek=$((20 * 256)) oflag=direct \
    conv=notrunc status=none
check "O_DIRECT bytes on the object" same_region "$OBJ" 20 1 "$T/pc3"
check "O_DIRECT read back" cmp -s \
    <(dd if="$V/data" bs=4k skip=$((20 * 256)) count=256 iflag=direct \
        status=none) "$T/pc3"

# --- the security.capability probe ------------------------------------------
log_mark
dd if=/dev/zero of="$V/data" bs=4k count=2000 seek=$((12 * 256)) \
    conv=notrunc status=none
n=$(log_new_lines | grep -ac "security.capability" || true)
assert_num "$n" le 4 "2000 writes asked security.capability at most once per open ($n lines)"

# --- fio and qemu-io ---------------------------------------------------------
check "fio randwrite 24 MiB, libaio, direct, iodepth 16, verify=crc32c" \
    fio --name=pt --filename="$V/data" --size=24M --offset=24M --rw=randwrite \
    --bs=4k --ioengine=libaio --direct=1 --iodepth=16 --verify=crc32c \
    --verify_fatal=1 --randseed=77 --fallocate=none --verify_state_save=0 \
    --output="$T/fio.out"
grep -q 'err= 0' "$T/fio.out" && ok "fio reports no error" ||
    not_ok "fio reports no error" "$(cat "$T/fio.out")"
check "qemu-io write and read back a pattern, cache=none" \
    qemu-io -f raw -t none -c "write -P 0x6b 1M 192k" \
    -c "read -P 0x6b 1M 192k" "$V/data"

# --- fsync, fallocate, lseek and flock (the daemon's requests) ---------------
fsync_out=$("$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"x" * 4096, 4096)
os.fsync(fd)
os.fdatasync(fd)
os.close(fd)
print("OK")' "$V/data" 2>&1)
assert_eq OK "$fsync_out" "fsync and fdatasync of a passthrough open"

pattern 0x11 4 >"$T/p11"
dd if="$T/p11" of="$V/data" bs=1M seek=48 conv=notrunc status=none
assert_eq OK "$(vsys fallocate "$V/data" punch $((49 * M)) $M)" \
    "fallocate punch-hole through passthrough"
assert_eq "OK $((49 * M))" "$(vsys seek "$V/data" SEEK_HOLE $((48 * M)))" \
    "SEEK_HOLE finds the punched hole"
assert_eq "OK $((50 * M))" "$(vsys seek "$V/data" SEEK_DATA $((49 * M)))" \
    "SEEK_DATA finds the data after it"
check "the hole reads as zeros on the object" \
    cmp -s <(region "$OBJ" 49 1) <(head -c $M /dev/zero)
check "the bytes around the hole are kept" \
    cmp -s <(region "$V/data" 50 2) <(region "$T/p11" 2 2)

# the subshell takes the lock and becomes the sleep that holds it
(
    exec 7<"$V/data"
    flock -x 7
    exec sleep 30
) &
LOCK_PID=$!
BG_PIDS+=("$LOCK_PID")
sleep 0.5
check_fails "flock: a second exclusive lock is refused" \
    flock -x -n "$V/data" true
kill "$LOCK_PID" 2>/dev/null
wait "$LOCK_PID" 2>/dev/null
check "flock: free again after the holder ends" flock -x -n "$V/data" true

# --- root writes past the end -------------------------------------------------
dd if="$T/pc3" of="$V/data" bs=1M seek=64 conv=notrunc status=none
assert_eq $((65 * M)) "$(fsize "$V/data")" "a write past the end grows it"
check "the daemon knows the new size after the close" \
    test "$(xget "$V" user.vstor.size)" == $((65 * M))
check "the grown bytes read back" same_region "$V/data" 64 1 "$T/pc3"

# --- snapshot and clone ------------------------------------------------------
hold_open "$V/data" || bail "cannot hold the volume open"
wait_pt "$V" "on 1" >/dev/null
expect_errno EBUSY setxattr "$V" user.vstor.snapshot snap1
check "the refusal is logged" log_has "refused snapshot of 'dom/img/vol'.*passthrough"

mkdir "$I/clone"
check "a clone over a volume read by passthrough" \
    ln -s ../vol "$I/clone/backing"
check "the clone reads the volume's bytes" \
    cmp -s <(region "$I/clone/data" 8 4) "$T/p5a"
check "the volume is read-only now (layers above)" \
    test "$(vsys open "$V/data" O_WRONLY)" == EROFS
assert_eq "on 1" "$(pt "$V")" "its read-only passthrough open is kept"
release_hold
wait_pt "$V" off >/dev/null
check "clone removed" rmdir "$I/clone"

check "the snapshot works once it is closed" \
    setfattr -n user.vstor.snapshot -v snap1 "$V"
hold_open "$V/data"
sleep 0.5
assert_eq off "$(pt "$V")" "a layered volume opens through the daemon"
release_hold
check "the snapshot holds the bytes" same_region "$I/snap1/data" 8 4 "$T/p5a"

# --- chmod/chown, setuid ------------------------------------------------------
W=$I/w
mkdir "$W" && truncate -s 8M "$W/data"
hold_open "$W/data"
wait_pt "$W" "on 1" >/dev/null
expect_errno EBUSY chmod "$W/data" 0606
check "the refusal is logged" log_has "refused chmod/chown of 'dom/img/w'"
release_hold
wait_pt "$W" off >/dev/null
expect_errno EPERM chmod "$W/data" 4600
check "chmod o+w when closed" chmod 0606 "$W/data"
hold_open "$W/data"
sleep 0.5
assert_eq off "$(pt "$W")" "a volume others may write opens through the daemon"
release_hold

# --- the backing id is released ---------------------------------------------
sleep 0.5
check "a volume once opened by passthrough is removed" rmdir "$W"
X=$I/x
mkdir "$X" && truncate -s 4M "$X/data"
hold_open "$X/data"
wait_pt "$X" "on 1" >/dev/null
check "a volume open by passthrough is removed" rmdir "$X"
release_hold
sleep 0.5
check "no backing id failed to close" \
    bash -c "! grep -aq 'closing backing' '$LOG'"
stop_vstorfs

# --- passthrough=off: the daemon's path reads the same bytes -----------------
log_mark
start_vstorfs -o passthrough=off
if log_new_lines | grep -aq 'passthrough is on'; then
    not_ok "passthrough=off: not asked at INIT"
else
    ok "passthrough=off: not asked at INIT"
fi
hold_open "$V/data"
sleep 0.5
assert_eq off "$(pt "$V")" "passthrough=off: the open is the daemon's"
release_hold
check "the daemon reads what passthrough wrote" \
    same_region "$V/data" 8 4 "$T/p5a"
check "and the O_DIRECT bytes" same_region "$V/data" 20 1 "$T/pc3"
check "fio verify-only pass through the daemon" \
    fio --name=pt --filename="$V/data" --size=24M --offset=24M \
    --rw=randwrite --bs=4k --ioengine=libaio --direct=1 --iodepth=16 \
    --verify=crc32c --verify_fatal=1 --randseed=77 --fallocate=none \
    --verify_state_save=0 --verify_only --output="$T/fio2.out"
stop_vstorfs
