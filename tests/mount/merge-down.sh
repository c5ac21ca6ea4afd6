#!/bin/bash
# The "down" route of a merge (fs/merge.c): rmdir of a layer V whose one
# child C owns little copies C's own layer down into V's object, and C
# takes that object over (C's record names it, with V's format and
# backing); the layers based on C name it in their qcow2 headers; V's
# record and C's old object go.  plan() takes it when down < up (ties go
# to the child).
#
# 1. raw: a raw base with 256M of random data, snapshotted; a small delta
#    in the live volume; rmdir of the snapshot goes down (log line and, when
#    seen, the job).  Then: the snapshot is gone, the live volume reads its
#    reference, its object is the snapshot's old one and it is raw, it has
#    no `backing` (readlink: ENOENT), no orphan object is left, and
#    `qemu-img compare` finds its backend file equal to the reference.
# 2. qcow2: s0 (raw) <- s1 <- s2 <- s3 <- vol, s1 owning 32M and s2 1M
#    (and s2 grown past s1): rmdir s1 goes down into s1's qcow2 object,
#    which s2 takes over (grown to s2's size); s3's header names that
#    object (`qemu-img info`), `qemu-img check` is clean on every qcow2
#    file, `qemu-img compare` finds vol's backend chain equal to the
#    reference and every volume reads what it read before.
# 3. fio: `fio --verify=crc32c` writes into the live volume while a merge
#    copies its 48M delta down into a 256M snapshot's object; fio's verify
#    passes, a second verify-only run too, the rest of the volume reads its
#    reference and the backend file equals the volume.
# 4. EBUSY: while a down merge runs, opening V's data fails with EBUSY (and
#    the daemon logs why), shrinking C and a snapshot of C fail with EBUSY.
# 5. kill -9 in the middle of a down merge: at the restart the merge resumes
#    and ends with the same bytes, a clean `qemu-img check` and no orphan;
#    after a stop and a start the catalog has no merge flag left and C's row
#    names V's old object.  Then two snapshots with no write in between
#    (the first one's metadata still in memory) and a merge of the first.
# 6. a tie (C's delta is exactly what V owns and C lacks) goes into the
#    child, and so does a layer that a reader has open.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/layers.sh"
requires fio qemu-img jq getfattr setfattr sqlite3 sync truncate

M=$((1024 * 1024))

start_vstorfs

D=$MNT/dom
mkdir -p "$D/x/seed" || bail "cannot create the tree"
domain_backend

# ---------------------------------------------------------------------------
# Helpers (layers.sh has those merge.sh uses too)

# spread VOLUME REF FIRST STEP END: 1M of new random bytes at every STEP
# MiB from FIRST to END (exclusive), in direct writes, into the volume and
# into REF, from one process.
spread() {
    "$PY" -c 'import mmap, os, sys
vol, ref, first, step, end = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
fd = os.open(vol + "/data", os.O_WRONLY | os.O_DIRECT)
rf = os.open(ref, os.O_WRONLY)
buf = mmap.mmap(-1, 1 << 20)
for o in range(first, end, step):
    buf[:] = os.urandom(1 << 20)
    if os.pwrite(fd, buf, o << 20) != 1 << 20 or os.pwrite(rf, buf, o << 20) != 1 << 20:
        sys.exit(1)
os.close(fd)
os.close(rf)' "$@"
}

# fill VOLUME REF MIB: MIB of random bytes (the first MIB of one pattern
# all volumes share) into an empty volume, and into REF.
fill() {
    [ -s "$T/pattern" ] || head -c $((256 * M)) /dev/urandom >"$T/pattern"
    head -c $(($3 * M)) "$T/pattern" >"$2" &&
        dd if="$2" of="$1/data" bs=1M oflag=direct conv=fsync status=none
}

# new_vol IMAGE MIB: volume IMAGE/vol made under $D and filled with MIB of
# the shared pattern; its reference is $T/IMAGE.vol.
new_vol() {
    mkdir -p "$D/$1/vol" || bail "cannot create $1/vol"
    fill "$D/$1/vol" "$T/$1.vol" "$2" || bail "cannot fill $1/vol"
}

# gone_check DESC PATH SECONDS CHILD: PATH disappears (lookups and readdir).
gone_check() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        if [ ! -e "$2" ] && ! entries "$(dirname "$2")" | grep -qxF "$(basename "$2")"; then
            ok "$1"
            return 0
        fi
        kill -0 "$VSTORFS_PID" 2>/dev/null || bail "$1: the daemon died"
        sleep 0.05
    done
    not_ok "$1" "still there after $3 s; readdir lists: $(entries "$(dirname "$2")" | xargs)" \
        "job of the child: $(job_of "$4")" "log: $(tail -n 5 "$LOG" | xargs -d '\n')"
    return 1
}

# check_tree WHAT VOL=REF...: every VOL reads its REF.
check_tree() {
    local what=$1 d
    shift
    for d in "$@"; do
        check "$what: cmp: ${d%%=*} reads its bytes" dcmp "$D/${d%%=*}/data" "${d#*=}"
    done
}

# route_logged LAYER: the route the daemon's log names for LAYER's merge
# since log_mark: "down N M" (N bytes down, not M up), "child N" (N bytes
# up) or "none".
route_logged() {
    local i line
    for ((i = 0; i < 20; i++)); do
        line=$(log_new_lines | grep -a "volume 'dom/$1': merging" | tail -n 1)
        [ -n "$line" ] && break
        sleep 0.1
    done
    if [[ $line =~ \(([0-9]+)\ bytes\ down,\ not\ ([0-9]+)\ up\) ]]; then
        echo "down ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
    elif [[ $line =~ merging\ into\ its\ child\ .*\(([0-9]+)\ bytes\ up\) ]]; then
        echo "child ${BASH_REMATCH[1]}"
    else
        echo none
    fi
}

# goes_down WHAT LAYER: the log names the down route for LAYER, copying
# fewer bytes than up; and the job, when it was seen, says "down".
goes_down() {
    local r
    r=$(route_logged "$2")
    diag "$1: log: $2 merges $r (route, bytes down, bytes up)"
    if [[ $r =~ ^down\ ([0-9]+)\ ([0-9]+)$ ]] &&
        [ "${BASH_REMATCH[1]}" -lt "${BASH_REMATCH[2]}" ]; then
        ok "$1: the log says $2 merges its child down (fewer bytes down than up)"
    else
        not_ok "$1: the log says $2 merges its child down (fewer bytes down than up)" \
            "route: $r; log: $(log_new_lines | tail -n 3 | xargs -d '\n')"
    fi
    if [[ $JOB_SEEN == merge* ]]; then
        assert_match "^merge ([^ ]*/)?$2 down [0-9]+ [0-9]+ running\$" "$JOB_SEEN" \
            "$1: user.vstor.job of the child names the down route"
    else
        diag "$1: the merge ended before its job was seen ($JOB_SEEN)"
    fi
}

# merges_down WHAT LAYER CHILD: rmdir LAYER (IMAGE/NAME under $D) after a
# log mark; its merge goes down (goes_down) and LAYER is gone within 30 s.
merges_down() {
    local name=${2##*/}
    log_mark
    check "$1: rmdir $name" rmdir_watch "$D/$2" "$3"
    goes_down "$1" "$2"
    gone_check "$1: $name is gone" "$D/$2" 30 "$3"
}

# readlink_errno LINK: the errno name readlink fails with, or OK.
readlink_errno() {
    "$PY" -c 'import errno, os, sys
try:
    os.readlink(sys.argv[1])
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))' "$1"
}

# ---------------------------------------------------------------------------
# 1. A raw base under a live volume with a small delta.

R=$D/raw/vol
new_vol raw 256
check "raw: snapshot vol as s1" snap "$R" s1
cp "$T/raw.vol" "$T/raw.s1"
RAW_OBJ=$(xget "$D/raw/s1" user.vstor.object)
assert_eq raw "$(xget "$D/raw/s1" user.vstor.format)" "raw: s1 is raw"
write_both "$R" "$T/raw.vol" 10 30 && write_both "$R" "$T/raw.vol" 30000 100 &&
    write_both "$R" "$T/raw.vol" 65000 1 || bail "cannot write raw/vol"
# zeros over s1's data: a punched hole and a zeroed range (the child's own
# zeros must go down too)
check "raw: punch 1M at 8M in vol" vsys_value fallocate "$R/data" punch $((8 * M)) $M
check "raw: zero 256K at 20M in vol" vsys_value fallocate "$R/data" zero $((20 * M)) $((256 * 1024))
dd if=/dev/zero of="$T/raw.vol" bs=1M seek=8 count=1 conv=notrunc status=none &&
    dd if=/dev/zero of="$T/raw.vol" bs=256K seek=80 count=1 conv=notrunc status=none ||
    bail "cannot zero the reference"
check_tree "raw, before" "raw/vol=$T/raw.vol"
merges_down raw raw/s1 "$R"
check_tree "raw" "raw/vol=$T/raw.vol"
assert_eq "$RAW_OBJ" "$(xget "$R" user.vstor.object)" \
    "raw: vol's object is s1's old object"
assert_eq raw "$(xget "$R" user.vstor.format)" "raw: vol is raw now"
assert_eq ENOENT "$(readlink_errno "$R/backing")" \
    "raw: readlink vol/backing fails with ENOENT (s1 had no parent)"
check_orphans raw
compare_backend raw "$R" "$T/raw.vol"
check "raw: vol is writable after the merge" write_both "$R" "$T/raw.vol" 500 3
check_tree "raw, after a write" "raw/vol=$T/raw.vol"

diag "part 1 ended at ${SECONDS} s"

# ---------------------------------------------------------------------------
# 2. A qcow2 chain: s0 (raw) <- s1 <- s2 <- s3 <- vol.

Q=$D/q/vol
new_vol q 64
check "qcow2: snapshot vol as s0" snap "$Q" s0
cp "$T/q.vol" "$T/q.s0"
spread "$Q" "$T/q.vol" 0 2 64 || bail "cannot write q/vol" # s1: 32M
check "qcow2: snapshot vol as s1" snap "$Q" s1
cp "$T/q.vol" "$T/q.s1"
check "qcow2: truncate vol to 72M" truncate -s $((72 * M)) "$Q/data"
truncate -s $((72 * M)) "$T/q.vol"
write_both "$Q" "$T/q.vol" 300 100 && write_both "$Q" "$T/q.vol" 17000 50 ||
    bail "cannot write q/vol"
check "qcow2: snapshot vol as s2" snap "$Q" s2
cp "$T/q.vol" "$T/q.s2"
write_both "$Q" "$T/q.vol" 320 40 && write_both "$Q" "$T/q.vol" 9000 64 ||
    bail "cannot write q/vol"
check "qcow2: snapshot vol as s3" snap "$Q" s3
cp "$T/q.vol" "$T/q.s3"
write_both "$Q" "$T/q.vol" 100 5 && write_both "$Q" "$T/q.vol" 17010 10 ||
    bail "cannot write q/vol"
S1_OBJ=$(xget "$D/q/s1" user.vstor.object)
S2_OBJ=$(xget "$D/q/s2" user.vstor.object)
assert_eq qcow2 "$(xget "$D/q/s1" user.vstor.format)" "qcow2: s1 is qcow2"
check_tree "qcow2, before" "q/s0=$T/q.s0" "q/s1=$T/q.s1" "q/s2=$T/q.s2" \
    "q/s3=$T/q.s3" "q/vol=$T/q.vol"
merges_down qcow2 q/s1 "$D/q/s2"
assert_eq "$S1_OBJ" "$(xget "$D/q/s2" user.vstor.object)" \
    "qcow2: s2's object is s1's old object"
assert_eq qcow2 "$(xget "$D/q/s2" user.vstor.format)" "qcow2: s2 is qcow2"
assert_eq ../s0 "$(readlink "$D/q/s2/backing")" "qcow2: readlink s2/backing is ../s0"
assert_eq $((72 * M)) "$(fsize "$D/q/s2/data")" "qcow2: s2 keeps its size (72M)"
check "qcow2: s2's old object is removed" test ! -e "$BACKEND_DIR/$S2_OBJ"
sync "$D/q/vol/data" "$D/q/s3/data"
s3_backing=$(qemu-img info --output=json -f qcow2 "$(layer_file "$D/q/s3")" |
    jq -r '."backing-filename"')
assert_eq "$S1_OBJ" "$(basename "$s3_backing")" \
    "qcow2: qemu-img info: s3's backing file is s1's old object"
assert_eq $((72 * M)) "$(qemu-img info --output=json -f qcow2 "$BACKEND_DIR/$S1_OBJ" |
    jq '."virtual-size"')" "qcow2: qemu-img info: s1's old object grew to 72M"
check_layers qcow2
compare_backend qcow2 "$Q" "$T/q.vol"
compare_backend qcow2 "$D/q/s3" "$T/q.s3"
compare_backend qcow2 "$D/q/s2" "$T/q.s2"
check_tree "qcow2, after" "q/s0=$T/q.s0" "q/s2=$T/q.s2" "q/s3=$T/q.s3" \
    "q/vol=$T/q.vol"
check_orphans qcow2
check "qcow2: qemu-img info --backing-chain on vol's backend file" \
    qemu-img info --backing-chain -f qcow2 "$(layer_file "$Q")"

diag "part 2 ended at ${SECONDS} s"

# ---------------------------------------------------------------------------
# 3. fio writes into the live volume while its delta is copied down.

F=$D/f/vol
new_vol f 256
check "fio: snapshot vol as base" snap "$F" base
spread "$F" "$T/f.vol" 2 5 240 || bail "cannot write f/vol" # 48M
# fio writes 4k blocks at random into [0, 64M), at most 4000 a second (so
# its writes last about 4 s), then verifies them.
FIO_ARGS=(--name=downverify --filename="$F/data" --size=64M --rw=randwrite
    --bs=4k --ioengine=libaio --direct=1 --iodepth=8 --numjobs=1
    --verify=crc32c --verify_fatal=1 --randseed=4242 --fallocate=none
    --verify_state_save=0)
bg fio "${FIO_ARGS[@]}" --rate_iops=4000 --output="$T/fio.out"
FIO=$BG_PID
sleep 1
log_mark
t0=$(date +%s.%N)
check "fio: rmdir base while fio writes" rmdir_watch "$D/f/base" "$F"
goes_down fio f/base
gone_check "fio: base is gone" "$D/f/base" 60 "$F"
t1=$(date +%s.%N)
diag "fio: rmdir to gone: $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s"
if kill -0 "$FIO" 2>/dev/null; then
    ok "fio: fio was still writing when the merge ended"
else
    not_ok "fio: fio was still writing when the merge ended" "$(cat "$T/fio.out")"
fi
if wait_child "$FIO" 60; then
    assert_eq 0 "$WAIT_STATUS" "fio: fio randwrite with verify=crc32c exits 0"
else
    not_ok "fio: fio finishes within 60 s"
fi
grep -E 'IOPS=|err=|^ +clat \(' "$T/fio.out" | head -n 6 | while read -r l; do diag "$l"; done
check "fio: fio reports err=0" grep -q 'err= 0' "$T/fio.out"
check "fio: fio ran its verify pass (reads)" grep -Eq '^ +read: IOPS=' "$T/fio.out"
check "fio: a second verify-only run reads what fio wrote" \
    fio "${FIO_ARGS[@]}" --verify_only --output="$T/fio-verify.out"
check "fio: cmp: vol reads its reference past fio's region" \
    cmp <(region "$F/data" 64 192) <(region "$T/f.vol" 64 192)
sync "$F/data"
check "fio: qemu-img compare: vol's backend file equals its data on the mount" \
    qemu-img compare -f "$(xget "$F" user.vstor.format)" -F raw "$(layer_file "$F")" "$F/data"
assert_eq ENOENT "$(readlink_errno "$F/backing")" "fio: vol has no backing any more"
check_layers fio
check_orphans fio

diag "part 3 ended at ${SECONDS} s"

# ---------------------------------------------------------------------------
# 4. EBUSY while a down merge runs (nobody has C open: the refusals are the
#    merge's).

E=$D/e/vol
new_vol e 256
check "EBUSY: snapshot vol as eb" snap "$E" eb
cp "$T/e.vol" "$T/e.eb"
# 127M: a bit less than half goes down
spread "$E" "$T/e.vol" 0 2 254 || bail "cannot write e/vol"
write_both "$E" "$T/e.vol" 300 1 || bail "cannot write e/vol"
E_SIZE=$(fsize "$E/data")
head -c $M /dev/urandom >"$T/e.tail"
IFS= read -r -d '' BUSY_PY <<'EOF'
import errno, os, sys
vol, layer, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
def res(f, *a):
    try:
        r = f(*a)
        if isinstance(r, int):
            os.close(r)
            return 'OK'
        return 'OK' if r is None else r.decode().strip().replace('\t', ' ')
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
print(res(os.rmdir, layer))
print(res(os.getxattr, vol, 'user.vstor.job'))
print(res(os.open, layer + '/data', os.O_RDONLY))
print(res(os.setxattr, vol, 'user.vstor.shrink-to', str(size - (1 << 20)).encode()))
print(res(os.setxattr, vol, 'user.vstor.snapshot', b'ebusy'))
print(res(os.getxattr, vol, 'user.vstor.job'))
# grow the child by 8M and write 1M at its old end (the merge copies what
# the child grew past its copy last, with the child's I/O held)
def grow_and_write():
    os.truncate(vol + '/data', size + (8 << 20))
    fd = os.open(vol + '/data', os.O_WRONLY)
    with open(sys.argv[4], 'rb') as t:
        os.pwrite(fd, t.read(), size)
    os.close(fd)
print(res(grow_and_write))
print(res(os.getxattr, vol, 'user.vstor.job'))
EOF
log_mark
busy=$("$PY" -c "$BUSY_PY" "$E" "$D/e/eb" "$E_SIZE" "$T/e.tail")
diag "EBUSY: while eb merges: $(xargs -d '\n' <<<"$busy")"
mapfile -t b <<<"$busy"
assert_eq OK "${b[0]}" "EBUSY: rmdir eb"
JOB_SEEN=${b[1]}
goes_down EBUSY e/eb
if [[ ${b[1]} == *" running" && ${b[5]} == *" running" ]]; then
    assert_eq EBUSY "${b[2]}" "EBUSY: opening the merging layer's data fails with EBUSY"
    check "EBUSY: the log says why" log_has "refused open of 'dom/e/eb/data': it is being merged away"
    assert_eq EBUSY "${b[3]}" "EBUSY: shrinking the child (nobody has it open) fails with EBUSY"
    assert_eq EBUSY "${b[4]}" "EBUSY: a snapshot of the child fails with EBUSY"
else
    skip_check "EBUSY while a down merge runs" \
        "the merge was not seen running before and after the calls (${b[1]}; ${b[5]})"
    # a shrink that went through: the reference loses the same tail
    [ "${b[3]}" == OK ] && truncate -s $((E_SIZE - M)) "$T/e.vol"
fi
assert_eq OK "${b[6]}" "EBUSY: growing the child by 8M and writing at its old end works"
if [[ ${b[7]} == *" running" ]]; then
    ok "EBUSY: the child grew and took the write while the merge still ran"
else
    diag "EBUSY: the merge ended before the child grew (${b[7]})"
fi
[ "${b[3]}" == OK ] && E_SIZE=$((E_SIZE - M))
truncate -s $((E_SIZE + 8 * M)) "$T/e.vol" &&
    dd if="$T/e.tail" of="$T/e.vol" bs=1M seek=$((E_SIZE / M)) conv=notrunc status=none ||
    bail "cannot write the reference of e/vol"
gone_check "EBUSY: eb is gone" "$D/e/eb" 60 "$E"
check "EBUSY: the refused snapshot left no volume" test ! -e "$D/e/ebusy"
assert_eq "vol" "$(entries "$D/e" | xargs)" "EBUSY: the image lists vol only"
check_tree EBUSY "e/vol=$T/e.vol"
compare_backend EBUSY "$E" "$T/e.vol"
check_orphans EBUSY

diag "part 4 ended at ${SECONDS} s"

# ---------------------------------------------------------------------------
# 5. kill -9 in the middle of a down merge.

K=$D/k/vol
new_vol k 256
check "kill -9: snapshot vol as kb" snap "$K" kb
KB_OBJ=$(xget "$D/k/kb" user.vstor.object)
# 127M: a bit less than half goes down
spread "$K" "$T/k.vol" 3 2 256 || bail "cannot write k/vol"
write_both "$K" "$T/k.vol" 10 1 || bail "cannot write k/vol"
K_UUID=$(xget "$K" user.vstor.uuid)
KB_UUID=$(xget "$D/k/kb" user.vstor.uuid)
log_mark
check "kill -9: rmdir kb" rmdir_watch "$D/k/kb" "$K"
cut=0
if [[ $JOB_SEEN == *" running" ]]; then
    check "kill -9: kill -9 the daemon mid-merge and clear the mount" kill9_vstorfs
    cut=1
fi
goes_down "kill -9" k/kb
if [ $cut -eq 0 ]; then
    skip_check "kill -9 mid-merge" "the merge was not seen running ($JOB_SEEN)"
    kill9_vstorfs
fi
log_mark
start_vstorfs
if [ $cut -eq 1 ]; then
    check "kill -9: the restarted daemon resumes the merge" \
        log_gained "volume 'dom/k/kb': resuming its merge"
fi
gone_check "kill -9: the merge ends (kb is gone)" "$D/k/kb" 60 "$K"
check_tree "kill -9" "k/vol=$T/k.vol"
assert_eq "$KB_OBJ" "$(xget "$K" user.vstor.object)" \
    "kill -9: vol's object is kb's old object"
assert_eq ENOENT "$(readlink_errno "$K/backing")" "kill -9: vol has no backing any more"
check_backend "kill -9" "$K" "$T/k.vol"
stop_vstorfs
catalog_ok "kill -9, stopped"
start_vstorfs
stop_vstorfs
catalog_copy
assert_eq 0 "$(sqlite3 "$T/cat/catalog.db" 'SELECT count(*) FROM nodes WHERE flags & 24' 2>&1)" \
    "kill -9, after a stop and a start: no row carries a merge flag"
assert_eq "$KB_OBJ|raw|" \
    "$(sqlite3 "$T/cat/catalog.db" "SELECT object, format, ifnull(backing_id, '') FROM nodes WHERE uuid = '$K_UUID'" 2>&1)" \
    "kill -9, after a stop and a start: vol's row names kb's old object, raw, no backing"
assert_eq 0 "$(sqlite3 "$T/cat/catalog.db" "SELECT count(*) FROM nodes WHERE uuid = '$KB_UUID'" 2>&1)" \
    "kill -9, after a stop and a start: kb has no row"
start_vstorfs
check_tree "kill -9, after a restart" "k/vol=$T/k.vol" "raw/vol=$T/raw.vol" \
    "q/s0=$T/q.s0" "q/s2=$T/q.s2" "q/s3=$T/q.s3" "q/vol=$T/q.vol" "e/vol=$T/e.vol"
check_orphans "after a restart"

# Two snapshots with no write in between: the first one's last writes sit,
# unflushed, under a layer never written (bdev.c flushes the first written
# layer down the chain); its merge must see them.
B=$D/b2b/vol
new_vol b2b 16
check "back to back: snapshot vol as b0" snap "$B" b0
write_both "$B" "$T/b2b.vol" 512 256 || bail "cannot write b2b/vol"
check "back to back: snapshot vol as b1" snap "$B" b1
check "back to back: snapshot vol as b2 at once" snap "$B" b2
cp "$T/b2b.vol" "$T/b2b.b1"
write_both "$B" "$T/b2b.vol" 1000 3 || bail "cannot write b2b/vol"
merges_down "back to back" b2b/b1 "$D/b2b/b2"
check_tree "back to back" "b2b/b2=$T/b2b.b1" "b2b/vol=$T/b2b.vol"
check_backend "back to back" "$B" "$T/b2b.vol"

diag "part 5 ended at ${SECONDS} s"

# ---------------------------------------------------------------------------
# 6. A tie goes into the child: C's delta is exactly what V owns and C
#    lacks.

Z=$D/tie/vol
new_vol tie 16
check "tie: snapshot vol as t1" snap "$Z" t1
spread "$Z" "$T/tie.vol" 4 1 12 || bail "cannot write tie/vol"
log_mark
check "tie: rmdir t1" rmdir_watch "$D/tie/t1" "$Z"
assert_eq "child $((8 * M))" "$(route_logged tie/t1)" \
    "tie: 8M either way: the log says t1 merges into its child, 8M up"
[[ $JOB_SEEN == merge* ]] && assert_match "^merge ([^ ]*/)?t1 child " "$JOB_SEEN" \
    "tie: user.vstor.job names the child route"
gone_check "tie: t1 is gone" "$D/tie/t1" 30 "$Z"
check_tree tie "tie/vol=$T/tie.vol"
assert_eq qcow2 "$(xget "$Z" user.vstor.format)" "tie: vol keeps its own qcow2 object"
check_backend tie "$Z" "$T/tie.vol"

# A layer somebody has open never goes down (its object would change under
# the reader), however small the child's delta.
O=$D/open/vol
new_vol open 16
check "open: snapshot vol as o1" snap "$O" o1
write_both "$O" "$T/open.vol" 100 10 || bail "cannot write open/vol"
hold_open "$D/open/o1/data" || bail "cannot hold open/o1 open"
log_mark
check "open: rmdir o1 while a reader has it open" rmdir_watch "$D/open/o1" "$O"
r=$(route_logged open/o1)
assert_match '^child [0-9]+$' "$r" "open: the log says o1 merges into its child ($r)"
gone_check "open: o1 is gone" "$D/open/o1" 30 "$O"
release_hold
check_tree open "open/vol=$T/open.vol"
check_orphans open
stop_vstorfs
catalog_ok "at the end"
diag "part 6 ended at ${SECONDS} s"
