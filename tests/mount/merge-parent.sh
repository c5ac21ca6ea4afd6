#!/bin/bash
# Merges of a middle layer V (child C -> V -> parent P) and the route that
# plan() in fs/merge.c takes: into the child or into the parent.
#
# plan() costs the child route as the bytes V owns and C does not, and the
# parent route as every byte V owns: the first never exceeds the second, so
# rmdir never chooses the parent (ties go to the child).  Part 1 shows the
# two costs (from the maps) and the route the log names on the cases where
# the parent route costs the same (C owns nothing of V; C grew past V),
# where P is open and where P has two children: always "into its child",
# and P reads what it read before.  Every volume is checked against a
# reference file before and after; clones are made right after their base
# was written (a clone used to miss what the base's cached qcow2 tables
# held: fs/chain.c now flushes them first).
#
# The parent route still runs when V's record says so (VS_RECF_MERGE_PARENT:
# a daemon that chose it and stopped), as vs_merge_resume_all follows the
# record.  Part 2 writes that record with the daemon stopped (a new copy of
# V's slot, generation + 1, CRC-32C as in include/vs/record.h) and starts
# the daemon: V is gone, C's backing names P, C reads its bytes, P reads
# what V read (the route folds V into P), `qemu-img check` is clean on every
# qcow2 file, `qemu-img compare` finds C's backend chain equal to C's
# reference, no orphan object is left, and after a restart the contents and
# the catalog (C's backing_id, no row for V, no merge flag) agree.  Cases: a
# raw P with C grown past V; a qcow2 P; V grown past a raw P and past a
# qcow2 P (P must take V's size).
#
# Part 3: a merge of 192M spread over 256M into a qcow2 P, cut by kill -9
# while it copies (the job shows "parent"), resumes at the restart and ends
# with the same bytes; a reader that opened P while the merge ran reads V's
# bytes through P afterwards.
. "$(dirname "$0")/lib.sh"
requires qemu-img jq getfattr setfattr sqlite3 sync truncate

M=$((1024 * 1024))

start_vstorfs

D=$MNT/dom
mkdir -p "$D/x/seed" || bail "cannot create the tree"
BACKEND_DIR=$(getfattr --only-values -n user.vstor.backend "$D" | sed s/^dir://)
[ -d "$BACKEND_DIR" ] || bail "no backend directory for $D ('$BACKEND_DIR')"
META=$BACKEND_DIR/metadata
[ -f "$META" ] || bail "no metadata object in $BACKEND_DIR"

# ---------------------------------------------------------------------------
# Helpers (those shared with merge.sh are kept in the same shape)

layer_file() {
    echo "$BACKEND_DIR/$(xget "$1" user.vstor.object)"
}

snap() {
    setfattr -n user.vstor.snapshot -v "$2" "$1"
}

is_qcow2() {
    [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" == 514649fb ]
}

# write_both VOLUME REF OFF_4K COUNT_4K: the same random bytes into the
# volume's data and into its reference file.
write_both() {
    head -c $(($4 * 4096)) /dev/urandom >"$T/chunk"
    dd if="$T/chunk" of="$1/data" bs=4096 seek="$3" conv=notrunc status=none &&
        dd if="$T/chunk" of="$2" bs=4096 seek="$3" conv=notrunc status=none
}

# dcmp FILE REF: FILE read with O_DIRECT equals REF.
dcmp() {
    cmp <(dd if="$1" bs=1M iflag=direct status=none) "$2"
}

entries() {
    find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | LC_ALL=C sort
}

# job_of VOLUME: its user.vstor.job line (tabs as spaces), or the errno.
job_of() {
    local out
    out=$(vsys getxattr "$1" user.vstor.job)
    out=${out#OK }
    printf '%s\n' "${out//$'\t'/ }"
}

# wait_running VOLUME SECONDS: poll user.vstor.job until it shows a running
# merge; JOB_SEEN gets the line.
wait_running() {
    local i
    JOB_SEEN=
    for ((i = 0; i < $2 * 50; i++)); do
        JOB_SEEN=$(job_of "$1")
        [[ $JOB_SEEN == *" running" ]] && return 0
        sleep 0.02
    done
    return 1
}

# gone_check DESC PATH SECONDS: PATH disappears (lookups and readdir).
gone_check() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if [ ! -e "$2" ] && ! entries "$(dirname "$2")" | grep -qxF "$(basename "$2")"; then
            ok "$1"
            return 0
        fi
        kill -0 "$VSTORFS_PID" 2>/dev/null || bail "$1: the daemon died"
        sleep 0.1
    done
    not_ok "$1" "still there after $3 s; readdir lists: $(entries "$(dirname "$2")" | xargs)" \
        "job of the child: $(job_of "$4")" "log: $(tail -n 5 "$LOG" | xargs -d '\n')"
    return 1
}

check_layers() {
    local f bad='' n=0 out
    for f in "$D"/*/*/data; do
        sync "$f" 2>/dev/null
    done
    for f in "$BACKEND_DIR"/*; do
        [ "$(basename "$f")" == metadata ] && continue
        is_qcow2 "$f" || continue
        n=$((n + 1))
        out=$(qemu-img check -f qcow2 "$f" 2>&1) ||
            bad+="$(basename "$f"): $out"$'\n'
    done
    if [ -z "$bad" ]; then
        ok "$1: qemu-img check is clean on all $n qcow2 files of the domain"
    else
        not_ok "$1: qemu-img check is clean on all $n qcow2 files of the domain" "$bad"
    fi
}

check_orphans() {
    local objs files v
    objs=$(for v in "$D"/*/*; do
        [ -d "$v" ] && xget "$v" user.vstor.object && echo
    done | grep -v '^$' | LC_ALL=C sort)
    files=$(find "$BACKEND_DIR" -mindepth 1 -maxdepth 1 -printf '%f\n' |
        grep -vx metadata | LC_ALL=C sort)
    if [ "$objs" == "$files" ]; then
        ok "$1: no orphan files on the backend ($(wc -l <<<"$files") objects)"
    else
        not_ok "$1: no orphan files on the backend" \
            "$(diff <(echo "$objs") <(echo "$files"))"
    fi
}

# compare_backend WHAT VOLUME REF: qemu-img follows the volume's backend
# chain itself and finds it equal to REF.
compare_backend() {
    local fmt out
    fmt=$(xget "$2" user.vstor.format)
    if out=$(qemu-img compare -f "$fmt" -F raw "$(layer_file "$2")" "$3" 2>&1); then
        ok "$1: qemu-img compare: the backend chain of ${2#"$D"/} equals its reference"
    else
        not_ok "$1: qemu-img compare: the backend chain of ${2#"$D"/} equals its reference" "$out"
    fi
}

catalog_copy() {
    rm -rf "$T/cat" && mkdir "$T/cat"
    cp "$DATA"/catalog.db* "$T/cat/"
}

catalog_ok() {
    catalog_copy
    assert_eq ok "$(sqlite3 "$T/cat/catalog.db" 'PRAGMA integrity_check' 2>&1)" \
        "$1: sqlite3 PRAGMA integrity_check on the catalog: ok"
}

# catalog_agrees WHAT CHILD PARENT LAYER: in a copy of the catalog, CHILD's
# backing_id is PARENT's id, LAYER has no row, PARENT carries no merge flag.
catalog_agrees() {
    local q got
    catalog_copy
    q="SELECT (SELECT backing_id FROM nodes WHERE uuid = '$2') =
              (SELECT id FROM nodes WHERE uuid = '$3'),
              (SELECT count(*) FROM nodes WHERE uuid = '$4'),
              (SELECT flags & 24 FROM nodes WHERE uuid = '$3');"
    got=$(sqlite3 -separator ' ' "$T/cat/catalog.db" "$q" 2>&1)
    assert_eq "1 0 0" "$got" \
        "$1: catalog: the child's backing_id is the parent, the layer's row is gone, no merge flag left"
}

# route_planned WHAT: the route the daemon's log names since log_mark.
route_planned() {
    local i line
    for ((i = 0; i < 20; i++)); do
        line=$(log_new_lines | grep -aoE 'merging into its (child|parent)' | tail -n 1)
        [ -n "$line" ] && break
        sleep 0.1
    done
    echo "${line##* }"
}

# check_tree WHAT VOL=REF...: every VOL reads its REF.
check_tree() {
    local what=$1 d
    shift
    for d in "$@"; do
        check "$what: cmp: ${d%%=*} reads its bytes" dcmp "$D/${d%%=*}/data" "${d#*=}"
    done
}

# chain3 DIR: DIR/base (raw, 16M random) <- DIR/mid <- DIR/top as clones;
# mid owns 1M..2M and 8M..8.2M, top 4M..4.3M and 12M..12.04M (disjoint:
# the parent route would copy exactly what the child route copies).
chain3() {
    local dir=$D/$1 r=$T/$1
    mkdir -p "$dir/base" "$dir/mid" "$dir/top" || bail "cannot create $dir"
    head -c $((16 * M)) /dev/urandom >"$r.base"
    cp "$r.base" "$dir/base/data" || bail "cannot fill $1/base"
    ln -s ../base "$dir/mid/backing" || bail "cannot base $1/mid on base"
    cp "$r.base" "$r.mid"
    write_both "$dir/mid" "$r.mid" 256 256 && write_both "$dir/mid" "$r.mid" 2048 50 ||
        bail "cannot write $1/mid"
    ln -s ../mid "$dir/top/backing" || bail "cannot base $1/top on mid"
    cp "$r.mid" "$r.top"
    write_both "$dir/top" "$r.top" 1024 75 && write_both "$dir/top" "$r.top" 3072 10 ||
        bail "cannot write $1/top"
    check_tree "$1, before the merge" "$1/base=$r.base" "$1/mid=$r.mid" "$1/top=$r.top"
}

# after_merge WHAT DIR LAYER CHILD PARENT VOL=REF...: LAYER is gone,
# CHILD's backing names PARENT, the volumes read their references, the
# backend is consistent.
after_merge() {
    local what=$1 dir=$2 layer=$3 child=$4 parent=$5
    shift 5
    gone_check "$what: $layer is gone" "$D/$dir/$layer" 30 "$D/$dir/$child" || return 1
    assert_eq "../$parent" "$(readlink "$D/$dir/$child/backing")" \
        "$what: readlink $child/backing is ../$parent"
    check_tree "$what" "$@"
    check_layers "$what"
    compare_backend "$what" "$D/$dir/$child" "$T/$dir.$child"
    check_orphans "$what"
}

# route_costs WHAT CHILD LAYER: the two costs that plan() weighs, from the
# maps: bytes with data that LAYER owns and CHILD does not (CHILD's depth 1),
# and all the bytes with data that LAYER owns (its depth 0).  The first
# never exceeds the second.
route_costs() {
    local c v
    c=$(jq '[.[] | select(.depth == 1 and .data) | .length] | add // 0' "$2/map")
    v=$(jq '[.[] | select(.depth == 0 and .data) | .length] | add // 0' "$3/map")
    assert_num "$c" le "$v" \
        "$1: into the child $c bytes, into the parent $v bytes (never fewer)"
}

# ---------------------------------------------------------------------------
# Part 1: what rmdir plans.

# 1a. Equal cost: top owns nothing of mid (and top grew past mid).
chain3 tie
check "tie: truncate top to 20M" truncate -s $((20 * M)) "$D/tie/top/data"
truncate -s $((20 * M)) "$T/tie.top"
write_both "$D/tie/top" "$T/tie.top" 4600 16 || bail "cannot write tie/top"
route_costs tie "$D/tie/top" "$D/tie/mid"
log_mark
check "tie: rmdir mid" rmdir "$D/tie/mid"
route=$(route_planned)
assert_eq child "$route" \
    "tie: equal bytes either way, the log says the merge goes into its child"
after_merge tie tie mid top base "tie/base=$T/tie.base" "tie/top=$T/tie.top"

# 1b. The parent is open: never the parent.
chain3 open
hold_open "$D/open/base/data" || bail "cannot hold open/base open"
route_costs open "$D/open/top" "$D/open/mid"
log_mark
check "parent open: rmdir mid" rmdir "$D/open/mid"
assert_eq child "$(route_planned)" "parent open: the merge goes into the child"
after_merge "parent open" open mid top base "open/base=$T/open.base" "open/top=$T/open.top"
release_hold

# 1c. The parent has two children: the merge goes into the child (mid has
# one child), and the base, now shared, cannot be merged away.
chain3 two
mkdir -p "$D/two/other" && ln -s ../base "$D/two/other/backing" ||
    bail "cannot base two/other on base"
route_costs two "$D/two/top" "$D/two/mid"
log_mark
check "two children: rmdir mid" rmdir "$D/two/mid"
assert_eq child "$(route_planned)" "parent with two children: the merge goes into the child"
after_merge "two children" two mid top base "two/base=$T/two.base" \
    "two/top=$T/two.top" "two/other=$T/two.base"
refused ENOTEMPTY rmdir "$D/two/base"

# ---------------------------------------------------------------------------
# Part 2: the parent route, from a record that asks for it.

# Part 2a/2b/2c chains are built now, while the daemon runs.

# 2a. A raw parent: chain3 with top overlapping part of mid, and top grown
# past mid's size.
chain3 rawp
write_both "$D/rawp/top" "$T/rawp.top" 300 40 || bail "cannot write rawp/top"
check "rawp: truncate top to 20M" truncate -s $((20 * M)) "$D/rawp/top/data"
truncate -s $((20 * M)) "$T/rawp.top"
write_both "$D/rawp/top" "$T/rawp.top" 4600 16 || bail "cannot write rawp/top"

# 2b. A qcow2 parent: vol (raw, 16M) snapshotted as s1, s2, s3:
# s1 (raw) <- s2 <- s3 <- vol; s3 is merged into s2.
Q=$D/qp/vol
mkdir -p "$Q" || bail "cannot create qp/vol"
head -c $((16 * M)) /dev/urandom >"$T/qp.vol"
cp "$T/qp.vol" "$Q/data" || bail "cannot fill qp/vol"
check "qp: snapshot vol as s1" snap "$Q" s1
cp "$T/qp.vol" "$T/qp.s1"
write_both "$Q" "$T/qp.vol" 100 300 && write_both "$Q" "$T/qp.vol" 2000 20 ||
    bail "cannot write qp/vol"
check "qp: snapshot vol as s2" snap "$Q" s2
cp "$T/qp.vol" "$T/qp.s2"
write_both "$Q" "$T/qp.vol" 200 400 && write_both "$Q" "$T/qp.vol" 3500 33 ||
    bail "cannot write qp/vol"
check "qp: snapshot vol as s3" snap "$Q" s3
cp "$T/qp.vol" "$T/qp.s3"
write_both "$Q" "$T/qp.vol" 250 10 && write_both "$Q" "$T/qp.vol" 3900 5 ||
    bail "cannot write qp/vol"

# 2c. The layer grew past its parent: s1 16M <- s2 24M <- vol; in grow s1
# is raw, in growq s1 is a qcow2 layer over s0.
grow_chain() {
    local g=$D/$1/vol r=$T/$1
    mkdir -p "$g" || bail "cannot create $1/vol"
    head -c $((16 * M)) /dev/urandom >"$r.vol"
    cp "$r.vol" "$g/data" || bail "cannot fill $1/vol"
    if [ "$2" == qcow2 ]; then
        check "$1: snapshot vol as s0" snap "$g" s0
        cp "$r.vol" "$r.s0"
        write_both "$g" "$r.vol" 0 100 || bail "cannot write $1/vol"
    fi
    check "$1: snapshot vol as s1" snap "$g" s1
    cp "$r.vol" "$r.s1"
    check "$1: truncate vol to 24M" truncate -s $((24 * M)) "$g/data"
    truncate -s $((24 * M)) "$r.vol"
    write_both "$g" "$r.vol" 500 100 && write_both "$g" "$r.vol" 4500 300 ||
        bail "cannot write $1/vol"
    check "$1: snapshot vol as s2" snap "$g" s2
    cp "$r.vol" "$r.s2"
    write_both "$g" "$r.vol" 4600 10 || bail "cannot write $1/vol"
}
grow_chain grow raw
grow_chain growq qcow2
assert_eq raw "$(xget "$D/grow/s1" user.vstor.format)" "grow: s1 is raw"
assert_eq qcow2 "$(xget "$D/growq/s1" user.vstor.format)" "growq: s1 is qcow2"

check_layers "before the parent merges"

uuid_of() {
    xget "$D/$1" user.vstor.uuid
}

# mark_parent UUID...: with the daemon stopped, the newest copy of each
# volume's record is rewritten into its slot's other copy with flags |=
# VS_RECF_MERGE_PARENT and the generation one higher.
mark_parent() {
    "$PY" - "$META" "$@" <<'PYEOF'
import struct, sys
path, uuids = sys.argv[1], sys.argv[2:]
def crc32c(data, crc=0):
    t = crc32c.table
    crc ^= 0xffffffff
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xff]
    return crc ^ 0xffffffff
crc32c.table = []
for b in range(256):
    c = b
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    crc32c.table.append(c)
data = bytearray(open(path, 'rb').read())
newest = {}
for i in range(len(data) // 4096):
    blk = data[i * 4096:(i + 1) * 4096]
    if blk[:8] != b'VSTORREC':
        continue
    gen, slot, plen = struct.unpack_from('<QII', blk, 16)
    lines = blk[64:64 + plen].decode().split('\n')
    for u in uuids:
        if 'uuid=' + u in lines and (u not in newest or newest[u][1] < gen):
            newest[u] = (i, gen, slot, lines)
for u in uuids:
    i, gen, slot, lines = newest[u]
    lines = ['flags=%d' % (int(l[6:]) | 16) if l.startswith('flags=') else l
             for l in lines]
    payload = '\n'.join(lines).encode()
    blk = bytearray(4096)
    blk[:64] = data[i * 4096:i * 4096 + 64]
    struct.pack_into('<QII', blk, 16, gen + 1, slot, len(payload))
    struct.pack_into('<I', blk, 32, 0)
    blk[64:64 + len(payload)] = payload
    struct.pack_into('<I', blk, 32, crc32c(bytes(blk[:64 + len(payload)])))
    other = i ^ 1  # copy A at 2*slot, copy B at 2*slot + 1
    data[other * 4096:(other + 1) * 4096] = blk
    print(u, 'slot', slot, 'generation', gen + 1)
open(path, 'r+b').write(data)
PYEOF
}

route_costs rawp "$D/rawp/top" "$D/rawp/mid"
route_costs qp "$D/qp/vol" "$D/qp/s3"
route_costs grow "$D/grow/vol" "$D/grow/s2"
route_costs growq "$D/growq/vol" "$D/growq/s2"
RAWP=("$(uuid_of rawp/top)" "$(uuid_of rawp/base)" "$(uuid_of rawp/mid)")
QP=("$(uuid_of qp/vol)" "$(uuid_of qp/s2)" "$(uuid_of qp/s3)")
GROW=("$(uuid_of grow/vol)" "$(uuid_of grow/s1)" "$(uuid_of grow/s2)")
GROWQ=("$(uuid_of growq/vol)" "$(uuid_of growq/s1)" "$(uuid_of growq/s2)")
stop_vstorfs
diag "$(mark_parent "${RAWP[2]}" "${QP[2]}" "${GROW[2]}" "${GROWQ[2]}")" ||
    bail "cannot write the records"
log_mark
start_vstorfs
for j in rawp/top qp/vol grow/vol growq/vol; do
    diag "user.vstor.job of $j after the start: $(job_of "$D/$j")"
done
# Each job: "merge LABEL parent DONE TOTAL STATE" while it is listed.
resumed=$(log_new_lines | grep -ac 'resuming its merge')
assert_eq 4 "$resumed" "the daemon resumes the four merges that the records ask for"

after_merge "raw parent" rawp mid top base "rawp/top=$T/rawp.top" \
    "rawp/base=$T/rawp.mid"
after_merge "qcow2 parent" qp s3 vol s2 "qp/vol=$T/qp.vol" "qp/s2=$T/qp.s3" \
    "qp/s1=$T/qp.s1"
compare_backend "qcow2 parent: s2 now holds s3's bytes" "$D/qp/s2" "$T/qp.s3"
for g in grow growq; do
    after_merge "grown layer ($g)" $g s2 vol s1 "$g/vol=$T/$g.vol" \
        "$g/s1=$T/$g.s2"
    assert_eq $((24 * M)) "$(stat -c %s "$D/$g/s1/data")" \
        "grown layer ($g): s1 has the size of the layer merged into it"
done

stop_vstorfs
catalog_ok "after the parent merges"
start_vstorfs
check_tree "after a restart" "rawp/top=$T/rawp.top" "rawp/base=$T/rawp.mid" \
    "qp/vol=$T/qp.vol" "qp/s2=$T/qp.s3" "qp/s1=$T/qp.s1" \
    "grow/vol=$T/grow.vol" "grow/s1=$T/grow.s2" \
    "growq/vol=$T/growq.vol" "growq/s1=$T/growq.s2" "growq/s0=$T/growq.s0"
catalog_agrees "raw parent, after a restart" "${RAWP[@]}"
catalog_agrees "qcow2 parent, after a restart" "${QP[@]}"
catalog_agrees "grown layer (grow), after a restart" "${GROW[@]}"
catalog_agrees "grown layer (growq), after a restart" "${GROWQ[@]}"
assert_eq "../base" "$(readlink "$D/rawp/top/backing")" \
    "after a restart: rawp/top is still based on base"
assert_eq "s1 s2 vol" "$(entries "$D/qp" | xargs)" "after a restart: qp lists s1 s2 vol"
check_orphans "after a restart"

# ---------------------------------------------------------------------------
# Part 3: kill -9 in the middle of a 256M merge into a qcow2 parent.

K=$D/big/vol
mkdir -p "$K" || bail "cannot create big/vol"
truncate -s $((256 * M)) "$K/data" "$T/big.vol" || bail "cannot size big/vol"
# spread: 1M of data every 4M (64M), in the base
for ((o = 0; o < 256; o += 4)); do
    write_both "$K" "$T/big.vol" $((o * 256)) 256 || bail "cannot write big/vol"
done
check "big: snapshot vol as s1" snap "$K" s1
write_both "$K" "$T/big.vol" 512 64 || bail "cannot write big/vol"
check "big: snapshot vol as s2" snap "$K" s2
cp "$T/big.vol" "$T/big.s2"
# s3 owns 3M of every 4M: 192M
head -c $((192 * M)) /dev/urandom >"$T/big.rand"
for ((o = 0; o < 256; o += 4)); do
    dd if="$T/big.rand" of="$K/data" bs=1M skip=$((o / 4 * 3)) seek=$((o + 1)) \
        count=3 conv=notrunc status=none &&
        dd if="$T/big.rand" of="$T/big.vol" bs=1M skip=$((o / 4 * 3)) seek=$((o + 1)) \
            count=3 conv=notrunc status=none || bail "cannot write big/vol"
done
check "big: snapshot vol as s3" snap "$K" s3
cp "$T/big.vol" "$T/big.s3"
write_both "$K" "$T/big.vol" 1030 20 && write_both "$K" "$T/big.vol" 60000 300 ||
    bail "cannot write big/vol"
route_costs big "$K" "$D/big/s3"
BIG=("$(uuid_of big/vol)" "$(uuid_of big/s2)" "$(uuid_of big/s3)")
S2_FILE=$(layer_file "$D/big/s2")
stop_vstorfs
diag "$(mark_parent "${BIG[2]}")" || bail "cannot write the record"
s2_before=$(du_bytes "$S2_FILE")
# The job starts before the mount is up: start the daemon without waiting
# for it (as try_start_vstorfs does), watch s2's object grow, kill -9 while
# the log has no "done" for the job.
log_mark
echo "=== start: $VSTORFS -f $DATA $MNT" >>"$LOG"
"$PY" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$VSTORFS" -f "$DATA" "$MNT" </dev/null >>"$LOG" 2>&1 &
VSTORFS_PID=$!
for ((i = 0; i < 2000; i++)); do
    [ $(($(du_bytes "$S2_FILE") - s2_before)) -ge $((24 * M)) ] && break
    sleep 0.005
done
JOB_SEEN=$(is_mounted && job_of "$K")
s2_at_kill=$(du_bytes "$S2_FILE")
kill -9 "$VSTORFS_PID"
first_run=$(log_new_lines)
check "big: kill -9 the daemon mid-merge and clear the mount" kill9_vstorfs
diag "big: job when killed: ${JOB_SEEN:-not mounted yet}; s2's object: $s2_before bytes before the start, $s2_at_kill at the kill"
diag "big: log of the killed run: $(xargs -d '\n' <<<"$first_run")"
assert_match "volume 'dom/big/s3': resuming its merge" "$first_run" \
    "big: the daemon started the merge into the parent that the record asks for"
if grep -q "merge of 'dom/big/s3' done" <<<"$first_run"; then
    skip_check "big: the merge was cut by kill -9" "it ended before the kill"
else
    assert_num "$s2_at_kill" gt "$s2_before" \
        "big: the merge was cut by kill -9 while copying into s2 (no 'done' line, s2's object grew)"
fi
catalog_ok "big, daemon killed"
# A reader that opens s2 while the resumed merge writes into it, and reads
# it whole (O_DIRECT) once the merge has ended: s2 then reads what s3 read.
IFS= read -r -d '' READER_PY <<'EOF2'
import errno, mmap, os, sys, time
path, job_vol, layer, ref = sys.argv[1:5]
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
try:
    job = os.getxattr(job_vol, 'user.vstor.job').decode().split('\t')
    print('opened while the job was ' + job[-1].strip())
except OSError as e:
    print('opened with no job (' + errno.errorcode[e.errno] + ')')
buf = mmap.mmap(-1, 1 << 20)
os.preadv(fd, [buf], 0)
for _ in range(600):
    if not os.path.exists(layer):
        break
    time.sleep(0.1)
with open(ref, 'rb') as r:
    off = 0
    while True:
        want = r.read(1 << 20)
        if not want:
            break
        try:
            n = os.preadv(fd, [buf], off)
        except OSError as e:
            print('read at %d after the merge: %s' % (off, errno.errorcode[e.errno]))
            sys.exit(1)
        if buf[:n] != want:
            print('read at %d after the merge: other bytes' % off)
            sys.exit(1)
        off += n
print('read the merged bytes')
EOF2
log_mark
start_vstorfs
"$PY" -c "$READER_PY" "$D/big/s2/data" "$K" "$D/big/s3" "$T/big.s3" >"$T/reader.out" 2>&1 &
READER=$!
BG_PIDS+=("$READER")
diag "big: user.vstor.job after the restart: $(job_of "$K")"
check "big: the restarted daemon resumes the merge" log_gained "volume 'dom/big/s3': resuming its merge"
after_merge "big, kill -9" big s3 vol s2 "big/vol=$T/big.vol" "big/s2=$T/big.s3"
wait_child "$READER" 60
reader=$(cat "$T/reader.out")
diag "big: reader of s2: $(xargs -d '\n' <<<"$reader")"
if [[ $reader == "opened while the job was running"* ]]; then
    assert_eq 0 "$WAIT_STATUS" \
        "big: a reader that opened s2 during the merge into it reads s3's bytes after it (no error)"
else
    skip_check "big: a reader of s2 during the merge" "the merge ended before s2 was opened"
fi
stop_vstorfs
catalog_ok "at the end"
start_vstorfs
check_tree "big, after a restart" "big/vol=$T/big.vol" "big/s2=$T/big.s3"
catalog_agrees "big, after a restart" "${BIG[@]}"
stop_vstorfs
