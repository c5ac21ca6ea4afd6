#!/bin/bash
# Failing and hanging storage, through a real mount: the daemon built with
# the fault driver (tests/fault/vstorfs_fault.c) serves domains whose
# stores are fault stores over local directories, and rules come in
# through its control FIFO.
#   - every data request completes from a thread of the driver's, after
#     the FUSE thread went back for more (as with libnfs and libiscsi);
#   - fio --verify through short transfers on every request: completes,
#     every block verifies (the generic layer completes short transfers);
#   - EIO and ETIMEDOUT on a read, EIO on a write: fio gets the error,
#     never wrong data, and everything verifies once the storage is well;
#   - one domain whose storage hangs (every request held) under a writer:
#     the other domain is fully usable (ls, stat, mkdir, write, fsync,
#     read), the hung domain's tree still lists and stats; when the hang
#     ends the held writer finishes and its fsync'ed bytes read back.  (A
#     namespace change inside the hung domain still blocks the others: a
#     SKIP below says so.)
. "$(dirname "$0")/lib.sh"
requires fio timeout mkfifo getfattr

if [ -z "${VSTORFS_FAULT:-}" ]; then
    VSTORFS_FAULT=$(dirname "$(dirname "$VSTORFS")")/tests/fault/vstorfs-fault
fi
[ -x "$VSTORFS_FAULT" ] || bail "no vstorfs-fault binary: set VSTORFS_FAULT"
VSTORFS=$VSTORFS_FAULT
CTL=$T/control
mkfifo "$CTL" || bail "mkfifo"
export VSTORFS_FAULT_CONTROL=$CTL
mkdir -p "$T/domains"

# fault COMMAND...: send one control command, print the daemon's answer.
fault() {
    local before after i
    before=$(cat "$CTL.out" 2>/dev/null | wc -l)
    echo "$*" >"$CTL"
    for ((i = 0; i < 150; i++)); do
        after=$(cat "$CTL.out" 2>/dev/null | wc -l)
        if [ "$after" -gt "$before" ]; then
            tail -n 1 "$CTL.out"
            return 0
        fi
        sleep 0.1
    done
    echo "error: no answer"
}
# fault_id COMMAND...: the id an add answered, or bail.
fault_id() {
    local a
    a=$(fault "$@")
    [ "${a%% *}" == ok ] || bail "fault control: '$*' answered '$a'"
    echo "${a#ok }"
}

start_vstorfs "$DATA" --domain-root="fault:dir:$T/domains"
check "the fault daemon serves domains on fault stores" mkdir "$MNT/a" "$MNT/b"
mkdir -p "$MNT/a/img/v" "$MNT/b/img/w" || bail "cannot make volumes"
truncate -s 64M "$MNT/a/img/v/data" "$MNT/b/img/w/data" || bail "truncate"
A_UUID=$(basename "$(getfattr -n user.vstor.backend --only-values "$MNT/a")")
assert_match "fault:dir:$T/domains/" "$(getfattr -n user.vstor.backend --only-values "$MNT/a")" \
    "domain a's store is a fault store"
V=$MNT/a/img/v/data

# fio_job NAME ARGS...: a verified fio job on volume v; its output in
# $T/NAME.out, its exit status returned.
fio_job() {
    local name=$1
    shift
    fio --name="$name" --filename="$V" --size=16M --bs=64k --direct=1 \
        --ioengine=libaio --iodepth=8 --verify=crc32c --verify_fatal=1 \
        --randrepeat=1 "$@" >"$T/$name.out" 2>&1
}
# no_bad_data NAME: fio saw no block with the wrong contents.
no_bad_data() {
    ! grep -Eiq "verify.*(fail|bad)|bad magic|bad header|crc32c.*wanted" "$T/$1.out"
}

# ---- short transfers on every read and write ----
id=$(fault_id add "store=$A_UUID" ops=read,write mode=short)
check "short transfers: fio writes and verifies 16 MiB" fio_job short --rw=randwrite --do_verify=1
check "short transfers: no block read back wrong" no_bad_data short
assert_match "^ok [1-9]" "$(fault hits "$id")" "short transfers: the rule cut requests short"
assert_match "^ok [1-9]" "$(fault completed)" \
    "the driver completed requests from its own threads (asynchronously)"
fault clear >/dev/null

# ---- a read that fails: EIO, then ETIMEDOUT ----
for err in EIO ETIMEDOUT; do
    id=$(fault_id add "store=$A_UUID" ops=read mode=fail err=$err nth=40)
    check_fails "$err on the 40th read: fio's verify pass fails" fio_job "r$err" --rw=read --verify_only
    check "$err on a read: fio was told of an I/O error" grep -Eq "err=|error" "$T/r$err.out"
    check "$err on a read: no block read back wrong" no_bad_data "r$err"
    fault clear >/dev/null
    check "$err: once the storage answers, every block verifies" fio_job "ok$err" --rw=read --verify_only
done

# ---- a write that fails ----
id=$(fault_id add "store=$A_UUID" ops=write mode=fail err=EIO nth=30)
check_fails "EIO on the 30th write: fio fails" fio_job wEIO --rw=randwrite --do_verify=1
check "EIO on a write: fio was told" grep -Eq "err=|error" "$T/wEIO.out"
check "EIO on a write: no block read back wrong" no_bad_data wEIO
fault clear >/dev/null
check "after the write error: the volume takes a verified fio run again" \
    fio_job again --rw=randwrite --do_verify=1

# ---- domain a hangs; domain b does not ----
dd if=/dev/urandom of="$T/held.bin" bs=64k count=16 status=none
dd if=/dev/urandom of="$T/other.bin" bs=64k count=16 status=none
hang=$(fault_id add "store=$A_UUID" ops=all mode=hang)
dd if="$T/held.bin" of="$V" bs=64k oflag=direct conv=fsync,notrunc status=none &
held_pid=$!
assert_eq ok "$(fault hung "$hang" 1)" "hang: the writer's request is held by the storage"
# Not yet: a namespace change in the hung domain (a mkdir there) writes
# its record while holding the tree's lock, and then every other domain's
# ls and mkdir wait for the hung storage too.  Per-domain locking is the
# next step of issue 8.
skip_check "hang: a mkdir in the hung domain leaves the other domain usable" \
    "namespace changes still write their records under the tree lock"
W=$MNT/b/img/w/data
check "hang: ls of the mount answers" timeout 10 ls "$MNT"
check "hang: ls of the other domain answers" timeout 10 ls "$MNT/b/img"
check "hang: stat of the other domain's volume answers" timeout 10 stat "$W"
check "hang: mkdir in the other domain works" timeout 10 mkdir "$MNT/b/img/w2"
check "hang: a write and fsync on the other domain's volume complete" \
    timeout 20 dd if="$T/other.bin" of="$W" bs=64k oflag=direct conv=fsync,notrunc status=none
check "hang: ... and read back" timeout 10 cmp -n $((1024 * 1024)) "$W" "$T/other.bin"
check "hang: the hung domain's image lists (from the catalog)" timeout 10 ls "$MNT/a/img"
check "hang: the hung domain's volume stats" timeout 10 stat "$V"
check "hang: the held writer is still waiting" kill -0 "$held_pid"
fault release "$hang" >/dev/null
if wait_child "$held_pid" 30; then
    assert_eq 0 "$WAIT_STATUS" "hang over: the held writer's write and fsync complete"
else
    not_ok "hang over: the held writer finishes within 30 s"
fi
fault clear >/dev/null
check "hang over: what it wrote and fsync'ed reads back" cmp -n $((1024 * 1024)) "$V" "$T/held.bin"
stop_vstorfs

# ---- the idle-chain reaper and a domain that hangs ----
# One idle layer allowed: v's chain, idle once read, is closed when w's
# goes idle too.  From now on the second flush of domain a hangs: the
# reaper's flush before the close is the first; one under the namespace
# lock would be the second and would stall every domain.
start_vstorfs "$DATA" --domain-root="fault:dir:$T/domains" --max-idle-layers=1
check "reaper: v reads back (its chain opened, then idle)" cmp -n $((1024 * 1024)) "$V" "$T/held.bin"
flush2=$(fault_id add "store=$A_UUID" ops=flush mode=hang nth=2)
check "reaper: w reads back (v's idle chain is closed for it)" timeout 10 cmp -n $((1024 * 1024)) "$W" "$T/other.bin"
sleep 1.5 # the reaper's pass
check "reaper: ls of the other domain answers" timeout 10 ls "$MNT/b/img"
check "reaper: stat of the other domain's volume answers" timeout 10 stat "$W"
check "reaper: ls of domain a answers" timeout 10 ls "$MNT/a/img"
assert_eq "ok 0" "$(fault hits "$flush2")" "reaper: no second flush of domain a (none under the namespace lock)"
fault clear >/dev/null
check "reaper: v reads back after its chain was closed and reopened" cmp -n $((1024 * 1024)) "$V" "$T/held.bin"
stop_vstorfs
