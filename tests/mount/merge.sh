#!/bin/bash
# Merging layers away with rmdir.  A volume filled with a random pattern
# (a reference file beside it gets every write too) is snapshotted five
# times (s1..s5) with different, overlapping regions written in between;
# then s2 (a middle layer), s1 (the base), s4, s3 and s5 are removed one by
# one.
# After each merge: the layer is gone, the child's `backing` names the new
# parent, the live volume and the snapshots above the merged layer read
# what they read before, `qemu-img check` is clean on every qcow2 file in
# the domain's directory, `qemu-img compare` finds the live volume's backend
# chain (opened by qemu-img itself) equal to the reference, no orphan
# object is left, `map` is JSON whose depths lose one layer, and
# `vstor info --backing-chain` agrees.  Then: merges under fio with crc32c
# verification; ENOTEMPTY for a base shared by two clones; EBUSY for chain
# changes and a rescan while a merge of about 128M into the child runs (the
# route its job and log line name; tests/mount/merge-down.sh covers the
# other route); `vstor jobs --json`; and a merge into the child interrupted
# by kill -9 and by an unmount, which resumes at the next start and ends
# with the same bytes and a clean catalog.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/layers.sh"
requires fio qemu-img jq getfattr setfattr sqlite3 sync

M=$((1024 * 1024))

# vstor: from the environment (meson), else beside the daemon.
if [ -z "${VSTOR:-}" ]; then
    c=$(dirname "$(dirname "$VSTORFS")")/tools/vstor
    [ -x "$c" ] && VSTOR=$c
fi
diag "vstor: ${VSTOR:-none}"

start_vstorfs

D=$MNT/dom
I=$D/img
V=$I/vol
mkdir -p "$V" || bail "cannot create the tree"
domain_backend
# compare_backend names the volumes under img/ and REF "the reference"
COMPARE_ROOT=$I
COMPARE_REF="the reference"

# ---------------------------------------------------------------------------
# Helpers (and those of layers.sh)

# wait_gone PATH SECONDS: poll with lookups (what a user does) until PATH
# is gone.  Status 0: gone; 1: still there after SECONDS; 2: readdir (the
# daemon) stopped listing it but lookups still find it 3 s later (a kernel
# entry the daemon did not invalidate); 3: the daemon died.  GONE_WHY says
# what happened.
wait_gone() {
    local dir name i unlisted=0
    dir=$(dirname "$1")
    name=$(basename "$1")
    GONE_WHY=
    for ((i = 0; i < $2 * 10; i++)); do
        [ -e "$1" ] || return 0
        if ! kill -0 "$VSTORFS_PID" 2>/dev/null; then
            GONE_WHY="the daemon died: $(tail -n 3 "$LOG" | xargs -d '\n')"
            return 3
        fi
        if [ $((i % 3)) -eq 2 ]; then
            if entries "$dir" | grep -qxF -- "$name"; then
                unlisted=0
            else
                unlisted=$((unlisted + 1))
            fi
            if [ $unlisted -ge 3 ]; then
                GONE_WHY="readdir of $(basename "$dir") no longer lists $name, but lookups (test -e, stat) still find it 1 s later: the kernel's cached entry (entry_timeout 3600 s) was not invalidated when the merge removed it"
                return 2
            fi
        fi
        sleep 0.1
    done
    GONE_WHY="still listed after $2 s"
    return 1
}

# gone_check DESC PATH SECONDS CHILD: wait_gone as a check (CHILD: the
# volume whose job to show on a timeout); bails when the daemon died.  Returns 0 when the daemon removed PATH (even if a stale lookup
# still finds it), 1 otherwise.
gone_check() {
    local rc=0
    wait_gone "$2" "$3" || rc=$?
    case $rc in
    0) ok "$1" ;;
    2) not_ok "$1" "$GONE_WHY" ;;
    3) not_ok "$1" "$GONE_WHY"
        bail "the daemon died while waiting for a merge" ;;
    *) not_ok "$1" "$GONE_WHY; job: $(job_of "$(dirname "$2")/$4")"
        return 1 ;;
    esac
    return 0
}

# no_backing DESC VOLUME: the volume has no `backing` link.
no_backing() {
    if [ ! -L "$2/backing" ]; then
        ok "$1"
    else
        not_ok "$1" "lstat still finds $2/backing" \
            "readdir of the volume lists: $(entries "$2" | xargs)" \
            "readlink says: $(readlink "$2/backing" 2>&1)"
    fi
}

# map_depths VOLUME: the distinct depths in its map, ascending.
map_depths() {
    "$PY" -c 'import json, sys
m = json.load(sys.stdin)
assert isinstance(m, list) and m
print(" ".join(str(d) for d in sorted({e["depth"] for e in m})))' <"$1/map"
}

# jobs_json WHAT EXPECT [OUTPUT]: `vstor jobs --json` parses as a JSON
# array; EXPECT "empty" or a layer name that must be listed as running.
# OUTPUT: what it printed earlier (else it runs now).
jobs_json() {
    local out
    if [ -z "${VSTOR:-}" ]; then
        skip_check "$1: vstor jobs --json" "no vstor tool built"
        return
    fi
    out=${3-$("$VSTOR" jobs "$MNT" --json 2>&1)}
    if ! jq -e 'type == "array"' <<<"$out" >/dev/null 2>&1; then
        not_ok "$1: vstor jobs --json prints a JSON array" "$out"
        return
    fi
    ok "$1: vstor jobs --json prints a JSON array"
    if [ "$2" == empty ]; then
        assert_eq 0 "$(jq length <<<"$out")" "$1: the list of jobs is empty" ||
            diag "$out"
    else
        assert_eq running \
            "$(jq -r --arg l "$2" '[.[] | select(.layer == $l or (.layer | endswith("/" + $l)))][0].state' <<<"$out")" \
            "$1: vstor jobs --json lists the merge of $2 as running" || diag "$out"
    fi
}

# chain_len VOLUME: the number of layers `vstor info --backing-chain
# --json` lists.
chain_len() {
    "$VSTOR" info "$1" --backing-chain --json | jq length
}

# ---------------------------------------------------------------------------
# 0. Idle: no jobs.

jobs_json "idle" empty
assert_eq "" "$(getfattr --absolute-names --only-values -n user.vstor.jobs "$MNT" 2>&1)" \
    "idle: user.vstor.jobs of the root is empty"
expect_errno ENODATA getxattr "$V" user.vstor.job

# ---------------------------------------------------------------------------
# 1. A chain of four snapshots, merged away one by one.

SIZE4K=8192 # 32 MiB
REF=$T/ref.bin
head -c $((SIZE4K * 4096)) /dev/urandom >"$REF"
check "fill vol with 32M of a random pattern" \
    dd if="$REF" of="$V/data" bs=1M conv=fsync status=none

# Between the snapshots, regions that overlap those of the layer below and
# leave each layer a region that only it owns (so every depth shows in map).
check "snapshot vol as s1" snap "$V" s1
write_both "$V" "$REF" 1000 1200 && write_both "$V" "$REF" 5000 3 ||
    bail "cannot write after s1"
check "snapshot vol as s2" snap "$V" s2
write_both "$V" "$REF" 1800 1000 && write_both "$V" "$REF" 6000 17 ||
    bail "cannot write after s2"
check "snapshot vol as s3" snap "$V" s3
cp "$REF" "$T/ref.s3"
write_both "$V" "$REF" 100 300 && write_both "$V" "$REF" 2100 500 ||
    bail "cannot write after s3"
check "snapshot vol as s4" snap "$V" s4
cp "$REF" "$T/ref.s4"
write_both "$V" "$REF" 2500 200 && write_both "$V" "$REF" 7500 50 ||
    bail "cannot write after s4"
check "snapshot vol as s5" snap "$V" s5
cp "$REF" "$T/ref.s5"
write_both "$V" "$REF" 150 10 && write_both "$V" "$REF" 7000 100 &&
    write_both "$V" "$REF" 1999 2 || bail "cannot write after s5"

check "cmp: vol reads the reference before any merge" dcmp "$V/data" "$REF"
assert_eq "0 1 2 3 4 5" "$(map_depths "$V")" "vol/map is JSON with depths 0..5 (vol s5 s4 s3 s2 s1)"
check_backend "before the merges" "$V" "$REF"

# Many readers open, read and close the map at once: each close's RELEASE
# races the next read's reply on other daemon threads (a reply sent from the
# handle's own text was read after the release freed it, under ASan).
map_readers() {
    python3 - "$1/map" <<'PY'
import sys, threading
path, seen, bad = sys.argv[1], set(), []
def reader():
    for _ in range(300):
        try:
            with open(path, 'rb', buffering=0) as f:
                seen.add(f.read(1 << 20))
        except OSError as e:
            bad.append(e)
threads = [threading.Thread(target=reader) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
print(len(seen), len(bad))
PY
}
assert_eq "1 0" "$(map_readers "$V")" "1,800 opens, reads and closes of vol/map from 6 threads all read the same text"

# merge_step LAYER CHILD NEW_PARENT DEPTHS DESCENDANTS...: rmdir LAYER and
# check everything after its merge; DESCENDANTS are snapshots above it with
# their reference files (name=ref).
merge_step() {
    local layer=$1 child=$2 parent=$3 depths=$4 what="merge of $1" line d
    shift 4
    check "$what: rmdir returns 0" rmdir "$I/$layer"
    line=$(job_of "$I/$child")
    diag "$what: user.vstor.job of $child right after rmdir: $line"
    if [[ $line != E* ]]; then
        assert_match "^merge ([^ ]*/)?$layer (child|down) [0-9]+ [0-9]+ (running|done)\$" \
            "$line" "$what: user.vstor.job of $child has the documented fields"
    fi
    gone_check "$what: the layer is gone (lookup)" "$I/$layer" 30 "$child" || return 1
    expect_errno ENODATA getxattr "$I/$child" user.vstor.job
    if [ "$parent" == - ]; then
        no_backing "$what: $child has no backing any more" "$I/$child"
    else
        assert_eq "../$parent" "$(readlink "$I/$child/backing")" \
            "$what: readlink $child/backing is ../$parent"
    fi
    check "$what: cmp: vol reads the reference" dcmp "$V/data" "$REF"
    for d in "$@"; do
        check "$what: cmp: ${d%%=*} still reads its bytes" dcmp "$I/${d%%=*}/data" "${d#*=}"
    done
    assert_eq "$depths" "$(map_depths "$V")" "$what: vol/map is JSON with depths $depths"
    if [ -n "${VSTOR:-}" ]; then
        assert_eq $(($(wc -w <<<"$depths"))) "$(chain_len "$V")" \
            "$what: vstor info --backing-chain --json lists $(wc -w <<<"$depths") layers"
    fi
    check_backend "$what" "$V" "$REF"
}

# The order covers a middle layer (s2, then s4), a base merged into a
# snapshot that is not the live volume's own parent (s1, s3), and then a
# merge into the live volume of a layer that itself took a merge (s5).
merge_step s2 s3 s1 "0 1 2 3 4" "s3=$T/ref.s3" "s4=$T/ref.s4" "s5=$T/ref.s5"
assert_eq "s1 s3 s4 s5 vol" "$(entries "$I" | xargs)" "after the merge of s2: the image lists s1 s3 s4 s5 vol"
merge_step s1 s3 - "0 1 2 3" "s3=$T/ref.s3" "s4=$T/ref.s4" "s5=$T/ref.s5"
merge_step s4 s5 s3 "0 1 2" "s5=$T/ref.s5"
merge_step s3 s5 - "0 1" "s5=$T/ref.s5"
merge_step s5 vol - "0"
assert_eq "vol" "$(entries "$I" | xargs)" "after all merges: the image lists vol only"
check "vol is writable after the merges" write_both "$V" "$REF" 4000 33
check "cmp: vol reads the reference after a last write" dcmp "$V/data" "$REF"
jobs_json "after the merges (idle)" empty

# ---------------------------------------------------------------------------
# 2. Merges under fio: randwrite with crc32c verification through the live
# volume while snapshots are taken and merged (into the snapshot above, and
# into the live volume itself).

L=$D/load/live
mkdir -p "$L" || bail "cannot create $L"
truncate -s 192M "$L/data" || bail "cannot grow $L"
# paced (rate_iops: at least 4 s of writes), so that merges end while fio
# still writes however fast the writes are (subclusters made them faster)
bg fio --name=mergeverify --filename="$L/data" --size=192M --rw=randwrite \
    --bs=4k --ioengine=libaio --direct=1 --iodepth=16 --numjobs=1 \
    --verify=crc32c --verify_fatal=1 --randseed=7331 --fallocate=none \
    --rate_iops=12000 --verify_state_save=0 --output="$T/fio.out"
FIO=$BG_PID
rounds=0 live_merges=0 load_fail='' stale=''
# merge_loaded NAME: rmdir NAME under load and wait for its merge to end;
# a stale lookup after the daemon removed it is noted, not fatal here.
merge_loaded() {
    local rc=0
    if ! GONE_WHY=$(rmdir "$D/load/$1" 2>&1); then
        GONE_WHY="rmdir: $GONE_WHY"
        return 1
    fi
    wait_gone "$D/load/$1" 30 || rc=$?
    case $rc in
    0) ;;
    2) stale+="$1: $GONE_WHY"$'\n' ;;
    3) bail "under fio: $GONE_WHY" ;;
    *) return 1 ;;
    esac
    kill -0 "$FIO" 2>/dev/null && live_merges=$((live_merges + 1))
    return 0
}
for ((n = 0; n < 20; n++)); do
    sleep 0.3
    kill -0 "$FIO" 2>/dev/null || break
    if ! snap "$L" "l$n-a" || ! sleep 0.3 || ! snap "$L" "l$n-b"; then
        load_fail="snapshot l$n-a/l$n-b"
        break
    fi
    # l$n-a is the base (after round 0 merged everything into live): it
    # merges into l$n-b; then l$n-b merges into the live volume.
    if ! merge_loaded "l$n-a"; then
        load_fail="merge of l$n-a: $GONE_WHY; job: $(job_of "$D/load/l$n-b")"
        break
    fi
    if ! merge_loaded "l$n-b"; then
        load_fail="merge of l$n-b: $GONE_WHY; job: $(job_of "$L")"
        break
    fi
    rounds=$((rounds + 1))
done
if [ -z "$load_fail" ]; then
    ok "under fio: $rounds rounds of two snapshots and two merges"
else
    not_ok "under fio: rounds of two snapshots and two merges" "failed: $load_fail"
fi
if [ -z "$stale" ]; then
    ok "under fio: every merged layer was gone for lookups when its merge ended"
else
    not_ok "under fio: every merged layer was gone for lookups when its merge ended" "$stale"
fi
if wait_child "$FIO" 120; then
    assert_eq 0 "$WAIT_STATUS" "under fio: fio randwrite with verify=crc32c exits 0"
else
    not_ok "under fio: fio finishes within 120 s"
fi
grep -E 'IOPS=|err=' "$T/fio.out" | head -n 4 | while read -r l; do diag "$l"; done
if grep -q 'err= 0' "$T/fio.out"; then
    ok "under fio: fio reports err=0"
else
    not_ok "under fio: fio reports err=0" "$(cat "$T/fio.out")"
fi
check "under fio: fio ran its verify pass (reads)" grep -Eq '^ +read: IOPS=' "$T/fio.out"
# The first round's second merge goes down under fio's full-speed random
# writes: its dirty chunks are copied again pass after pass, so it can last
# until fio stops writing, and the rounds after it run on an idle volume.
assert_num "$live_merges" ge 1 "under fio: a merge ended while fio was still running ($live_merges of $((2 * rounds)))"
assert_eq "live" "$(entries "$D/load" | xargs)" "under fio: only the live volume is left"
no_backing "under fio: live has no backing any more" "$L"
check "under fio: fio verify-only pass over the live volume after the merges" \
    fio --name=mergeverify --filename="$L/data" --size=192M --rw=randwrite \
    --bs=4k --ioengine=libaio --direct=1 --iodepth=16 --numjobs=1 \
    --verify=crc32c --verify_fatal=1 --randseed=7331 --fallocate=none \
    --verify_state_save=0 --verify_only --output="$T/fio-verify.out"
sync "$L/data"
check "under fio: qemu-img compare: live's backend file equals its data on the mount" \
    qemu-img compare -f "$(xget "$L" user.vstor.format)" -F raw "$(layer_file "$L")" "$L/data"
check_layers "under fio"
check_orphans "under fio"

# ---------------------------------------------------------------------------
# 3. ENOTEMPTY: a base that two clones share.

mkdir -p "$D/shared/base" "$D/shared/c1" "$D/shared/c2" || bail "cannot create $D/shared"
check "write 1M into shared/base" \
    dd if=/dev/urandom of="$D/shared/base/data" bs=1M count=1 conv=fsync status=none
check "ln -s ../base c1/backing" ln -s ../base "$D/shared/c1/backing"
check "ln -s ../base c2/backing" ln -s ../base "$D/shared/c2/backing"
refused ENOTEMPTY rmdir "$D/shared/base"
check "the shared base is still there" test -f "$D/shared/base/data"

# ---------------------------------------------------------------------------
# 4. A long merge into the child: the layer owns 256M, the child rewrote a
# little more than half of it, so up (about 128M) is cheaper than down and
# the merge copies 128M; EBUSY while it runs.

K=$D/big/k
KREF=$T/kref.bin
mkdir -p "$K" || bail "cannot create $K"
head -c $((256 * M)) /dev/urandom >"$KREF"
check "fill big/k with 256M of a random pattern" \
    dd if="$KREF" of="$K/data" bs=1M oflag=direct conv=fsync status=none

# big_round NAME: snapshot k as NAME, then rewrite the second half of k
# (128M in 1M writes) and a few small regions of the first half, so that
# k's own delta (what the down route copies) is a little more than what
# NAME owns and k lacks (what the child route copies, about 128M): removing
# NAME takes the child route (plan() goes down only when down < up), and
# its merge is long enough to watch.
big_round() {
    check "big: snapshot k as $1" snap "$K" "$1"
    head -c $((128 * M)) /dev/urandom >"$T/half"
    dd if="$T/half" of="$K/data" bs=1M seek=128 oflag=direct conv=notrunc \
        status=none &&
        dd if="$T/half" of="$KREF" bs=1M seek=128 conv=notrunc status=none &&
        write_both "$K" "$KREF" 4097 50 && write_both "$K" "$KREF" 20000 7 ||
        bail "cannot write into big/k"
    rm -f "$T/half"
}

# route_logged LAYER: the route the daemon's log names for LAYER's merge
# since log_mark ("child N" or "down N", N the bytes it copies).
route_logged() {
    local i line
    for ((i = 0; i < 20; i++)); do
        line=$(log_new_lines | grep -a "volume '[^']*/$1': merging" | tail -n 1)
        [ -n "$line" ] && break
        sleep 0.1
    done
    if [[ $line =~ merging\ into\ its\ child\ .*\(([0-9]+)\ bytes\ up\) ]]; then
        echo "child ${BASH_REMATCH[1]}"
    elif [[ $line =~ \(([0-9]+)\ bytes\ down ]]; then
        echo "down ${BASH_REMATCH[1]}"
    else
        echo "none"
    fi
}

big_round kb1
log_mark
# One process removes kb1 and asks everything at once while the merge runs
# (it may take well under a second when kb1's object is in the page
# cache); the answers count when the job still ran after the last call.
IFS= read -r -d '' BUSY_PY <<'EOF'
import errno, os, subprocess, sys
k, kb, mnt, vstor = sys.argv[1:5]
def res(f, *a):
    try:
        r = f(*a)
        return 'OK' if r is None else r.decode().strip().replace('\t', ' ')
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
print(res(os.rmdir, kb))
print(res(os.getxattr, k, 'user.vstor.job'))
if vstor:
    p = subprocess.run([vstor, 'jobs', mnt, '--json'], capture_output=True)
    jobs = (p.stdout + p.stderr).decode().replace('\n', ' ')
print(res(os.setxattr, k, 'user.vstor.snapshot', b'kbusy'))
print(res(os.rmdir, kb))
print(res(os.setxattr, mnt, 'user.vstor.rescan', b'1'))
print(res(os.rmdir, k))
print(res(os.getxattr, mnt, 'user.vstor.jobs').replace('\n', '|'))
print(res(os.getxattr, k, 'user.vstor.job'))
print(jobs if vstor else '')
EOF
busy=$("$PY" -c "$BUSY_PY" "$K" "$D/big/kb1" "$MNT" "${VSTOR:-}")
diag "while kb1 merges: $(xargs -d '\n' <<<"$busy")"
mapfile -t b < <(tail -n +2 <<<"$busy")
assert_eq OK "$(head -n 1 <<<"$busy")" "big: rmdir kb1 (merges about 128M up)"
route=$(route_logged kb1)
diag "big: the log's route for kb1: $route bytes"
assert_match '^child [0-9]+$' "$route" "big: the log says kb1 merges into its child k"
if [[ ${b[0]} != E* ]]; then
    assert_match '^merge ([^ ]*/)?kb1 child ' "${b[0]}" \
        "big: user.vstor.job of k names the child route"
fi
if [[ ${b[0]} =~ ^merge\ ([^ ]*/)?kb1\ .*\ running$ && ${b[6]} == *" running" ]]; then
    assert_eq EBUSY "${b[1]}" "merge running: snapshot of the child k fails with EBUSY"
    assert_eq EBUSY "${b[2]}" "merge running: rmdir of the merging layer kb1 fails with EBUSY"
    assert_eq EBUSY "${b[3]}" "merge running: user.vstor.rescan fails with EBUSY"
    assert_eq EBUSY "${b[4]}" "merge running: rmdir of the child k fails with EBUSY"
    jobs_json "merge running" kb1 "${b[7]}"
    assert_match '(^|[|])merge ([^ ]*/)?kb1 child [0-9]+ [0-9]+ running' "${b[5]}" \
        "merge running: user.vstor.jobs of the root lists it"
else
    diag "the merge of 128M was not seen running before and after the EBUSY calls: it ended too fast to test them (job before: ${b[0]}, after: ${b[6]})"
    skip_check "EBUSY while a merge runs" "the merge of 128M ended too fast to observe"
    [[ ${b[0]} == E* ]] && not_ok "user.vstor.job of k shows the merge right after rmdir" \
        "got ${b[0]}"
fi
gone_check "big: kb1 is gone after its merge (lookup)" "$D/big/kb1" 60 k
check "big: cmp: k reads the reference" dcmp "$K/data" "$KREF"
check_layers "big"
compare_backend "big" "$K" "$KREF"

# ---------------------------------------------------------------------------
# 5. kill -9 in the middle of a merge, then an unmount in the middle of one:
# each resumes at the next start and ends with the same bytes.

# interrupted WHAT NAME HOW: start merging NAME away, see it running, stop
# the daemon with HOW (kill9_vstorfs or stop_vstorfs), start it again and
# wait for the merge to end.
interrupted() {
    local what=$1 name=$2 how=$3
    big_round "$name"
    log_mark
    check "$what: rmdir $name (merges about 128M up)" rmdir_watch "$D/big/$name" "$K"
    if [[ $JOB_SEEN == *" running" ]]; then
        ok "$what: user.vstor.job of k shows the merge running ($JOB_SEEN)"
        assert_match "^merge ([^ ]*/)?$name child " "$JOB_SEEN" \
            "$what: the job names the child route"
    else
        not_ok "$what: user.vstor.job of k shows the merge running" "last: $JOB_SEEN"
    fi
    diag "$what: the log's route for $name: $(route_logged "$name") bytes"
    if [ "$how" == kill9_vstorfs ]; then
        check "$what: kill -9 the daemon mid-merge and clear the mount" kill9_vstorfs
    else
        stop_vstorfs
    fi
    catalog_ok "$what, daemon stopped"
    log_mark
    start_vstorfs
    sleep 0.5
    if ! kill -0 "$VSTORFS_PID" 2>/dev/null; then
        wait "$VSTORFS_PID"
        VSTORFS_STATUS=$?
        VSTORFS_PID=
        not_ok "$what: the daemon keeps running after the restart" \
            "it died with status $VSTORFS_STATUS (128+signal); new log lines: $(log_new_lines | xargs -d '\n')"
        bail "$what: the daemon died after the restart"
    fi
    if entries "$D/big" | grep -qx "$name"; then
        ok "$what: $name is still there after the restart (its merge was cut)"
        diag "$what: user.vstor.job after the restart: $(job_of "$K")"
    else
        diag "$what: $name was gone at once after the restart (the merge ended before the stop, or at start)"
    fi
    gone_check "$what: the merge resumes and ends ($name is gone)" "$D/big/$name" 60 k ||
        return 1
    check "$what: cmp: k reads the reference" dcmp "$K/data" "$KREF"
    no_backing "$what: k has no backing any more" "$K"
    check_backend "$what" "$K" "$KREF"
}

interrupted "kill -9 mid-merge" kb2 kill9_vstorfs
interrupted "unmount mid-merge" kb3 stop_vstorfs
check "cmp: vol still reads its reference" dcmp "$V/data" "$REF"
stop_vstorfs
catalog_ok "at the end"
