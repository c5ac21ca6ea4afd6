#!/bin/bash
# End-to-end data check with fio: random O_DIRECT writes through the mount
# with libaio at queue depth 16, each block carrying a crc32c that fio
# checks on read-back; then, after an unmount and a fresh mount, a
# verify-only pass over the same blocks.
. "$(dirname "$0")/lib.sh"
requires fio

start_vstorfs
V=$MNT/dom/img/vol
mkdir -p "$V" || bail "cannot create the tree"
truncate -s 256M "$V/data" || bail "cannot grow the volume"

job() {
    fio --name=verify --filename="$V/data" --size=256M --rw=randwrite \
        --bs=4k --ioengine=libaio --direct=1 --iodepth=16 --numjobs=1 \
        --verify=crc32c --verify_fatal=1 --randseed=4242 --fallocate=none --verify_state_save=0 \
        --output="$T/fio-$1.out" "${@:2}"
}

check "fio randwrite 256M, libaio, direct, iodepth 16, verify=crc32c" job write
grep -E 'IOPS=|err=' "$T/fio-write.out" | head -n 4 | while read -r l; do diag "$l"; done
if grep -q 'err= 0' "$T/fio-write.out"; then
    ok "fio reports no error in the write pass"
else
    not_ok "fio reports no error in the write pass" "$(cat "$T/fio-write.out")"
fi
assert_eq $((256 * 1024 * 1024)) "$(fsize "$V/data")" "the volume kept its size"

stop_vstorfs
start_vstorfs

check "fio verify-only pass after remount" job verify --verify_only
if grep -q 'err= 0' "$T/fio-verify.out"; then
    ok "fio reports no error in the verify pass"
else
    not_ok "fio reports no error in the verify pass" "$(cat "$T/fio-verify.out")"
fi

stop_vstorfs
