#!/bin/bash
# Live snapshots: `setfattr -n user.vstor.snapshot -v NAME VOLUME` (or its
# data) freezes the volume's contents as a new read-only volume NAME and puts
# an empty layer on top of the live volume, which keeps its name, its inode
# and its open files.  Snapshots are taken while fio writes through the
# volume with crc32c verification; an fd opened before them keeps working;
# each snapshot holds the volume's bytes at the time it was taken; the
# chain's links, the read-only snapshots and the refused names; on the
# backend every qcow2 layer passes `qemu-img check` and the chain, opened by
# qemu-img, equals the data on the mount.  Then kill -9: right after a
# snapshot returns, and while snapshots are taken in a loop under a writer;
# after a mount every snapshot whose setfattr returned is there with its
# bytes, every fsynced write is in the live volume, every layer passes
# `qemu-img check` and the catalog passes SQLite's integrity check.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/layers.sh"
requires fio qemu-img qemu-io jq getfattr setfattr sqlite3 sync

M=$((1024 * 1024))
K64=65536

start_vstorfs

D=$MNT/dom
I=$D/img
V=$I/vol
W=$I/pat
mkdir -p "$V" "$W" || bail "cannot create the tree"
domain_backend

# chain_of VOLUME: the names down the volume's backing links, top first.
chain_of() {
    local v=$1 link n=0
    while link=$(readlink "$v/backing" 2>/dev/null) && [ $n -lt 300 ]; do
        v=$(cd "$v/$link" && pwd) || break
        basename "$v"
        n=$((n + 1))
    done | xargs
}

# qcow2_check WHAT FILE: qemu-img check finds nothing.  After a kill -9
# (WHAT starts with "crash") leaked clusters are allowed, as in the
# crash-simulation tests: they waste space and harm no data; corruption
# is not.
qcow2_check() {
    local what=$1 f=$2 out rc=0
    out=$(qemu-img check -f qcow2 "$f" 2>&1) || rc=$?
    echo "$out"
    if [ $rc -eq 0 ]; then
        ok "$what is clean"
    elif [ $rc -eq 3 ] && [ "${what#crash}" != "$what" ]; then
        ok "$what finds no corruption"
        diag "$what: $(grep -E 'leaked clusters were found' <<<"$out") (after kill -9)"
    else
        not_ok "$what is clean" "qemu-img check -f qcow2 $f: status $rc" "$out"
    fi
}

# check_chain_layers WHAT VOLUME: qemu-img check of every qcow2 layer of
# the volume's chain (the raw base has nothing to check).
check_chain_layers() {
    local what=$1 v=$2 link fmt
    while :; do
        fmt=$(xget "$v" user.vstor.format)
        if [ "$fmt" == qcow2 ]; then
            qcow2_check "$what: qemu-img check of ${v#"$I"/}'s layer" \
                "$(layer_file "$v")"
        else
            assert_eq raw "$fmt" "$what: ${v#"$I"/} is the chain's raw base"
        fi
        link=$(readlink "$v/backing" 2>/dev/null) || break
        v=$(cd "$v/$link" && pwd) || break
    done
}

# 1. Snapshots while fio writes and verifies through the volume.
truncate -s 64M "$V/data" || bail "cannot grow the volume"
ino_data=$(stat -c %i "$V/data")
ino_vol=$(stat -c %i "$V")
exec 5<>"$V/data"
HELD_FDS+=(5)
# fio covers the first 60M; the last 4M are for the fd test below.
FIO_JOB=(fio --name=snapverify --filename="$V/data" --size=60M --rw=randwrite
    --bs=4k --ioengine=libaio --direct=1 --iodepth=16 --numjobs=1
    --verify=crc32c --verify_fatal=1 --randseed=5150 --fallocate=none
    --verify_state_save=0)
bg "${FIO_JOB[@]}" --output="$T/fio.out"
FIO=$BG_PID
nsnap=0
while [ $nsnap -lt 8 ]; do
    sleep 0.3
    kill -0 "$FIO" 2>/dev/null || break
    # alternately on the volume and on its data file
    target=$V
    [ $((nsnap % 2)) -eq 1 ] && target=$V/data
    if ! snap "$target" "fio-$nsnap"; then
        fail "setfattr user.vstor.snapshot fio-$nsnap on $target while fio runs"
        break
    fi
    nsnap=$((nsnap + 1))
done
if wait_child "$FIO" 120; then
    assert_eq 0 "$WAIT_STATUS" "fio randwrite with verify=crc32c exits 0"
else
    not_ok "fio finishes within 120 s"
fi
grep -E 'IOPS=|err=' "$T/fio.out" | head -n 4 | while read -r l; do diag "$l"; done
if grep -q 'err= 0' "$T/fio.out"; then
    ok "fio reports err=0 (writes and crc32c verification)"
else
    not_ok "fio reports err=0 (writes and crc32c verification)" "$(cat "$T/fio.out")"
fi
assert_num $nsnap ge 3 "at least 3 snapshots were taken while fio ran ($nsnap)"
assert_eq "$ino_data" "$(stat -c %i "$V/data")" "the data file kept its inode"
assert_eq "$ino_vol" "$(stat -c %i "$V")" "the volume kept its inode"
expected=$(for ((n = nsnap - 1; n >= 0; n--)); do echo "fio-$n"; done | xargs)
assert_eq "$expected" "$(chain_of "$V")" "the chain under the volume lists the snapshots, newest first"
assert_eq "../fio-$((nsnap - 1))" "$(readlink "$V/backing")" "readlink vol/backing names the last snapshot"

# The fd opened before the first snapshot: write, fsync and read back
# through it (python's pwrite/pread on the inherited fd 5).
head -c $K64 /dev/urandom >"$T/fd.bin"
check "write 64k through the fd opened before the snapshots, fsync it" \
    "$PY" -c 'import os, sys
os.pwrite(5, open(sys.argv[1], "rb").read(), int(sys.argv[2]))
os.fsync(5)' "$T/fd.bin" $((1000 * K64))
check "read it back through the same fd" \
    cmp <("$PY" -c 'import os, sys
sys.stdout.buffer.write(os.pread(5, 65536, int(sys.argv[1])))' $((1000 * K64))) "$T/fd.bin"
check "a fresh O_DIRECT open reads what the old fd wrote" \
    cmp <(dd if="$V/data" bs=64k skip=1000 count=1 iflag=direct status=none) "$T/fd.bin"
check_fails "the last snapshot does not have it" \
    cmp -s <(dd if="$I/fio-$((nsnap - 1))/data" bs=64k skip=1000 count=1 status=none) "$T/fd.bin"
exec 5>&-

check "fio verify-only pass over the live volume after the snapshots" \
    "${FIO_JOB[@]}" --verify_only --output="$T/fio-verify.out"

# 2. A snapshot holds the bytes of its time; later writes go to the live
# volume only.
truncate -s 16M "$W/data" || bail "cannot grow $W"
head -c $((16 * M)) /dev/urandom >"$T/ref0"
check "write a random pattern into pat (fsync)" \
    dd if="$T/ref0" of="$W/data" bs=1M conv=notrunc,fsync status=none
ino_w=$(stat -c %i "$W/data")
check "snapshot pat/data as w-1" snap "$W/data" w-1
cp "$T/ref0" "$T/ref1"
head -c $((8 * M)) /dev/urandom >"$T/p1"
check "overwrite 8M at 4M of pat" \
    dd if="$T/p1" of="$W/data" bs=1M seek=4 conv=notrunc,fsync status=none
dd if="$T/p1" of="$T/ref1" bs=1M seek=4 conv=notrunc status=none
check "cmp: the snapshot w-1 holds the old pattern" cmp "$T/ref0" "$I/w-1/data"
check "cmp: pat holds the new bytes" cmp "$T/ref1" "$W/data"
check "snapshot pat as w-2" snap "$W" w-2
cp "$T/ref1" "$T/ref2"
check "qemu-io: unaligned and O_DIRECT writes into pat" \
    bash -c "qemu-io -f raw -c 'write -P 0x3d 1234567 70001' '$W/data' &&
        qemu-io -f raw -n -c 'write -P 0x4e 12M 64k' '$W/data' &&
        qemu-io -f raw -c 'write -P 0x3d 1234567 70001' -c 'write -P 0x4e 12M 64k' '$T/ref2'"
check "snapshot pat as w-3" snap "$W/data" w-3
cp "$T/ref2" "$T/ref3"
head -c $M /dev/urandom >"$T/p3"
check "write 1M at 15M of pat with O_DIRECT" \
    dd if="$T/p3" of="$W/data" bs=1M seek=15 oflag=direct conv=notrunc,fsync status=none
dd if="$T/p3" of="$T/ref3" bs=1M seek=15 conv=notrunc status=none
check "cmp: w-1 still holds the first pattern" cmp "$T/ref0" "$I/w-1/data"
check "cmp: w-2 holds pat at its time" cmp "$T/ref1" "$I/w-2/data"
check "cmp: w-3 holds pat at its time" cmp "$T/ref2" "$I/w-3/data"
check "cmp: pat holds everything written" cmp "$T/ref3" "$W/data"
assert_eq "$ino_w" "$(stat -c %i "$W/data")" "pat/data kept its inode over three snapshots"
assert_eq "../w-3" "$(readlink "$W/backing")" "readlink pat/backing is ../w-3"
assert_eq "../w-2" "$(readlink "$I/w-3/backing")" "readlink w-3/backing is ../w-2"
assert_eq "../w-1" "$(readlink "$I/w-2/backing")" "readlink w-2/backing is ../w-1"
check_fails "w-1 (the old raw volume) has no backing" test -L "$I/w-1/backing"
assert_eq "w-3 w-2 w-1" "$(chain_of "$W")" "the chain under pat is w-3 w-2 w-1"
assert_eq "16777216 16777216 16777216" \
    "$(stat -c %s "$I/w-1/data" "$I/w-2/data" "$I/w-3/data" | xargs)" \
    "every snapshot has the volume's size"

# Snapshots are read-only.
refused EROFS open "$I/w-1/data" O_WRONLY
refused EROFS open "$I/w-3/data" O_RDWR
refused EROFS truncate "$I/w-2/data" $((32 * M))
refused EROFS setxattr "$I/w-3" user.vstor.shrink-to 4096
check_fails "dd into a snapshot fails" \
    dd if=/dev/zero of="$I/w-3/data" bs=4k count=1 conv=notrunc status=none

# Refused snapshot names and targets.
refused EEXIST setxattr "$W" user.vstor.snapshot w-1
refused EEXIST setxattr "$W/data" user.vstor.snapshot vol
refused EINVAL setxattr "$W" user.vstor.snapshot .x
refused EINVAL setxattr "$W" user.vstor.snapshot ""
refused EINVAL setxattr "$W" user.vstor.snapshot a/b
refused EINVAL setxattr "$W" user.vstor.snapshot $'bad\nname'
refused EINVAL setxattr "$I/w-2" user.vstor.snapshot w-x
refused EINVAL setxattr "$I/w-3/data" user.vstor.snapshot w-y
refused EINVAL setxattr "$I/fio-0" user.vstor.snapshot w-z

# 3. The layer files on the backend, opened by qemu-img itself.
check "fsync the live volumes" sync "$V/data" "$W/data"
check_chain_layers "pat's chain" "$W"
check_chain_layers "vol's chain" "$V"
info=$(qemu-img info --backing-chain --output=json -f qcow2 "$(layer_file "$W")")
assert_eq "$(for v in "$W" "$I/w-3" "$I/w-2" "$I/w-1"; do layer_file "$v"; done | xargs)" \
    "$(jq -r '.[].filename' <<<"$info" | xargs)" \
    "qemu-img info --backing-chain on pat's file lists pat, w-3, w-2, w-1"
check "qemu-img compare: pat's backend chain equals its data on the mount" \
    qemu-img compare -f qcow2 -F raw "$(layer_file "$W")" "$W/data"
check "qemu-img compare: pat's backend chain equals the reference" \
    qemu-img compare -f qcow2 -F raw "$(layer_file "$W")" "$T/ref3"
check "qemu-img compare: w-2's backend chain equals its reference" \
    qemu-img compare -f qcow2 -F raw "$(layer_file "$I/w-2")" "$T/ref1"
check "qemu-img compare: vol's backend chain equals its data on the mount" \
    qemu-img compare -f qcow2 -F raw "$(layer_file "$V")" "$V/data"

# 4. kill -9 right after a snapshot returns.
X=$I/crashvol
mkdir "$X" || bail "cannot create $X"
truncate -s 16M "$X/data" || bail "cannot grow $X"
head -c $((16 * M)) /dev/urandom >"$T/xa"
check "crash 1: write 16M into crashvol (fsync)" \
    dd if="$T/xa" of="$X/data" bs=1M conv=notrunc,fsync status=none
check "crash 1: snapshot c-1" snap "$X" c-1
cp "$T/xa" "$T/xb"
head -c $((4 * M)) /dev/urandom >"$T/p4"
check "crash 1: overwrite 4M at 2M (fsync)" \
    dd if="$T/p4" of="$X/data" bs=1M seek=2 conv=notrunc,fsync status=none
dd if="$T/p4" of="$T/xb" bs=1M seek=2 conv=notrunc status=none
# shellcheck disable=SC2016 # expanded by the inner shell
check "crash 1: snapshot c-2, then kill -9 the daemon at once" \
    bash -c 'setfattr -n user.vstor.snapshot -v c-2 "$1" && kill -9 "$2"' _ "$X" "$VSTORFS_PID"
check "crash 1: clear the dead mount" kill9_vstorfs
catalog_ok "crash 1"
start_vstorfs
check "crash 1: the snapshot c-1 is there" test -f "$I/c-1/data"
check "crash 1: the snapshot c-2 is there" test -f "$I/c-2/data"
assert_eq "c-2 c-1" "$(chain_of "$X")" "crash 1: the chain under crashvol is c-2 c-1"
check "crash 1: cmp c-1 with the first pattern" cmp "$T/xa" "$I/c-1/data"
check "crash 1: cmp c-2 with the overwritten pattern" cmp "$T/xb" "$I/c-2/data"
check "crash 1: cmp crashvol with the overwritten pattern" cmp "$T/xb" "$X/data"
check "crash 1: cmp pat with its reference" cmp "$T/ref3" "$W/data"
check "crash 1: cmp w-2 with its reference" cmp "$T/ref1" "$I/w-2/data"
check_chain_layers "crash 1" "$X"
expect_errno EROFS open "$I/c-2/data" O_WRONLY
check "crash 1: crashvol is writable" \
    dd if="$T/p4" of="$X/data" bs=1M seek=8 count=1 conv=notrunc,fsync status=none

# 5. kill -9 while snapshots are taken in a loop under a writer.  The
# writer puts region i of rand.bin (64k) at region i, O_DIRECT and fsync,
# logging "W i" before and "w i" after; the snapper logs "b NAME" before
# and "s NAME" after each setfattr.  One file, appended with O_APPEND, keeps
# the order.
Y=$I/loopvol
mkdir "$Y" || bail "cannot create $Y"
truncate -s 64M "$Y/data" || bail "cannot grow $Y"
head -c $((64 * M)) /dev/urandom >"$T/rand.bin"
: >"$T/events"
writer() {
    local i
    for ((i = 0; i < 1024; i++)); do
        echo "W $i" >>"$T/events"
        dd if="$T/rand.bin" of="$Y/data" bs=64k skip=$i seek=$i count=1 \
            oflag=direct conv=notrunc,fsync status=none 2>/dev/null || break
        echo "w $i" >>"$T/events"
    done
}
snapper() {
    local k
    for ((k = 0; k < 40; k++)); do
        echo "b y-$k" >>"$T/events"
        setfattr -n user.vstor.snapshot -v "y-$k" "$Y" 2>/dev/null || break
        echo "s y-$k" >>"$T/events"
        sleep 0.05
    done
}
bg writer
WRITER=$BG_PID
bg snapper
SNAPPER=$BG_PID
sleep 1.5
check "crash 2: the writer and the snapper run when the daemon is killed" \
    kill -0 "$WRITER" "$SNAPPER"
check "crash 2: kill -9 the daemon and clear the dead mount" kill9_vstorfs
wait_child "$WRITER" 10 || { kill -9 "$WRITER"; wait "$WRITER"; }
wait_child "$SNAPPER" 10 || { kill -9 "$SNAPPER"; wait "$SNAPPER"; }
returned=$(sed -n 's/^s //p' "$T/events" | xargs)
inflight=$(tail -n 1 < <(grep '^[bs] ' "$T/events") | sed -n 's/^b //p')
diag "crash 2: $(grep -c '^w ' "$T/events") writes and $(wc -w <<<"$returned") snapshots returned before the kill; in flight: ${inflight:-none}"
assert_num "$(wc -w <<<"$returned")" ge 2 "crash 2: at least 2 snapshots returned before the kill"
catalog_ok "crash 2"
start_vstorfs
missing=$(for s in $returned; do [ -f "$I/$s/data" ] || echo "$s"; done | xargs)
assert_eq "" "$missing" "crash 2: every snapshot whose setfattr returned is there"
want=$(for s in $returned; do echo "$s"; done | tac | xargs)
got=$(chain_of "$Y")
if [ "$got" == "$want" ] || { [ -n "$inflight" ] && [ "$got" == "$inflight $want" ]; }; then
    ok "crash 2: the chain under loopvol is the returned snapshots, newest first"
else
    not_ok "crash 2: the chain under loopvol is the returned snapshots, newest first" \
        "expected: ${inflight:+[$inflight] }$want" "got:      $got"
fi

# Every fsynced write is in the live volume, regions never written read
# zeros; each snapshot has every write that returned before its setfattr
# began, and none of the writes begun after its setfattr returned.
IFS= read -r -d '' CHECK_PY <<'EOF'
import sys
events, rand, live = sys.argv[1], sys.argv[2], sys.argv[3]
snaps = [a.split('=', 1) for a in sys.argv[4:]]
R = 65536
ev = [tuple(line.split()) for line in open(events) if line.strip()]
rnd = open(rand, 'rb').read()
zero = bytes(R)
bad = []

def region(f, i):
    f.seek(i * R)
    return f.read(R)

def done(evs):
    return [int(x) for k, x in evs if k == 'w']

def begun(evs):
    return [int(x) for k, x in evs if k == 'W']

with open(live, 'rb') as f:
    for i in done(ev):
        if region(f, i) != rnd[i * R:(i + 1) * R]:
            bad.append('live volume: fsynced region %d lost' % i)
    started = set(begun(ev))
    for i in range(len(rnd) // R):
        if i not in started and region(f, i) != zero:
            bad.append('live volume: region %d never written, not zeros' % i)
for name, path in snaps:
    b = ev.index(('b', name))
    s = ev.index(('s', name)) if ('s', name) in ev else len(ev)
    with open(path, 'rb') as f:
        for i in done(ev[:b]):
            if region(f, i) != rnd[i * R:(i + 1) * R]:
                bad.append('%s: region %d written before it, missing' % (name, i))
        for i in begun(ev[s + 1:]):
            if region(f, i) != zero:
                bad.append('%s: region %d written after it, present' % (name, i))
print('\n'.join(bad[:20]))
sys.exit(1 if bad else 0)
EOF
snap_args=()
for s in $returned $inflight; do
    [ -f "$I/$s/data" ] && snap_args+=("$s=$I/$s/data")
done
check "crash 2: the live volume and every snapshot hold the right regions" \
    "$PY" -c "$CHECK_PY" "$T/events" "$T/rand.bin" "$Y/data" "${snap_args[@]}"
check_chain_layers "crash 2" "$Y"
check "crash 2: loopvol is writable" \
    dd if="$T/rand.bin" of="$Y/data" bs=64k count=1 seek=1023 oflag=direct conv=notrunc,fsync status=none
check "crash 2: cmp pat with its reference" cmp "$T/ref3" "$W/data"

stop_vstorfs
catalog_ok "final"
