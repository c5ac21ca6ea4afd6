#!/bin/bash
# shellcheck disable=SC1091,SC2119 # lib.sh: sourced at run time; its functions take optional arguments
# Damaged or missing metadata never makes vstorfs delete or roll back
# anything (issue 7).  This test builds a rich tree once (a raw base, a thin
# clone of it with two live snapshots and writes after each, a qcow2 base, a
# renamed volume, an empty volume, and a second domain), keeps a pristine
# copy of the data directory in two states (stopped cleanly; killed with
# SIGKILL right after the second snapshot and the writes after it, so that
# snapshot's record is still marked pending), and then, case after case,
# restores one of them, damages the domain `dom`'s `metadata` object or the
# catalog in one way drawn from a numbered seed, starts the daemon and
# checks:
#   (a) it starts (a damaged catalog is moved aside and rebuilt; with
#       VSTORFS_FUZZ_STRICT_CATALOG=0 a refusal to start with the "the
#       catalog is damaged" message is tolerated);
#   (b) after that run, no object file of any store was deleted or changed
#       (new files are reported as notes);
#   (c) every volume of the undamaged domain `other` reads identical bytes;
#   (d) every volume of `dom` that is visible reads identical bytes (matched
#       by uuid) or fails to open or read; never different bytes;
#   (e) with the pristine `metadata` copied back (the catalog left as the
#       damaged run left it), every volume of both domains is visible and
#       reads identical bytes, and the objects equal the reference exactly.
# One TAP line per case, "seed N [state]: what was damaged"; a failed case
# lists what went wrong as TAP comments.
#
# Environment: VSTORFS_FUZZ_CASES (default 140), VSTORFS_FUZZ_FIRST (the
# first seed, default 1), VSTORFS_FUZZ_SEEDS (a list of seeds, instead of
# the two), VSTORFS_FUZZ_STRICT_CATALOG.  A seed fixes everything about its
# case: the kind of damage is KINDS[seed % 14], the state is "clean" for
# even (seed / 14) and "k9" for odd, and the offsets, bits and slots come
# from Python's random.Random(seed), so a failing case reruns alone with
# VSTORFS_FUZZ_SEEDS=N.
. "$(dirname "$0")/lib.sh"
requires sha256sum getfattr setfattr timeout cp comm

CASES=${VSTORFS_FUZZ_CASES:-140}
FIRST=${VSTORFS_FUZZ_FIRST:-1}
P=$T/pristine
KINDS=(flip-newest flip-older flip-live flip-header flip-domain truncate
    swap-slots swap-copies zero-copy delete
    cat-flip cat-truncate cat-delete cat-garbage)

# ---------------------------------------------------------------------------
# The damage, drawn from a seed: python3 - KIND SEED METADATA CATALOG prints
# one line saying what it did.

IFS= read -r -d '' DAMAGE_PY <<'EOF'
import os, random, struct, sys
kind, seed, meta, cat = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(seed)
BLK, SLOT = 4096, 8192
PENDING = 4

def parse(blk):
    if blk[:8] != b'VSTORREC':
        return None
    gen, _, plen = struct.unpack_from('<QII', blk, 16)
    kv = {}
    for line in blk[64:64 + min(plen, BLK - 64)].decode('utf-8', 'replace').split('\n'):
        k, _, v = line.partition('=')
        kv[k] = v
    return {'gen': gen, 'plen': plen, 'kv': kv}

def used_slots(data):
    out = []
    for s in range(len(data) // SLOT):
        cps = [parse(bytes(data[s * SLOT + c * BLK:s * SLOT + (c + 1) * BLK]))
               for c in (0, 1)]
        valid = [c for c in (0, 1) if cps[c]]
        if not valid:
            continue
        new = max(valid, key=lambda c: cps[c]['gen'])
        kv = cps[new]['kv']
        if kv.get('kind') == 'free':
            continue
        flags = int(kv.get('flags') or 0)
        out.append({'slot': s, 'cps': cps, 'newest': new,
                    'kind': kv.get('kind', '?'), 'name': kv.get('name', '?'),
                    'pending': bool(flags & PENDING)})
    return out

def pick(slots, want=None):
    if want == 'live':
        cands = [x for x in slots if x['kind'] == 'volume' and x['name'] == 'clone']
    elif want == 'domain':
        cands = [x for x in slots if x['slot'] == 0]
    else:
        k = rng.choice(['domain', 'image', 'volume', 'volume', 'volume'])
        cands = [x for x in slots if x['kind'] == k]
    return rng.choice(cands or slots)

def role(x, c):
    if c == x['newest']:
        return 'newest'
    return 'older' if x['cps'][c] else 'empty'

def where(x, c):
    return "slot %d copy %s (%s copy; %s '%s'%s)" % (
        x['slot'], 'AB'[c], role(x, c), x['kind'], x['name'],
        ', pending' if x['pending'] else '')

def flips(buf, base, lo, hi, n):
    seen = set()
    while len(seen) < n:
        seen.add((rng.randrange(lo, hi), rng.randrange(8)))
    for off, bit in sorted(seen):
        buf[base + off] ^= 1 << bit
    return ','.join('%d.%d' % ob for ob in sorted(seen))

def used_len(x, c):
    cp = x['cps'][c] or x['cps'][x['newest']]
    return min(64 + cp['plen'], BLK)

def save(path, buf):
    with open(path, 'r+b') as f:
        f.write(buf)

def meta_damage():
    data = bytearray(open(meta, 'rb').read())
    slots = used_slots(data)
    if kind == 'delete':
        os.unlink(meta)
        return 'metadata deleted'
    if kind == 'truncate':
        nslots = len(data) // SLOT
        k = rng.randrange(1, max(nslots, 2))
        size = rng.choice([0, 4096, 8192, k * SLOT, k * SLOT + BLK,
                           rng.randrange(len(data))])
        os.truncate(meta, size)
        return 'metadata truncated to %d of %d bytes' % (size, len(data))
    if kind == 'swap-slots':
        a, b = rng.sample(slots, 2)
        sa, sb = a['slot'] * SLOT, b['slot'] * SLOT
        data[sa:sa + SLOT], data[sb:sb + SLOT] = data[sb:sb + SLOT], data[sa:sa + SLOT]
        save(meta, data)
        return "slots %d (%s '%s') and %d (%s '%s') swapped" % (
            a['slot'], a['kind'], a['name'], b['slot'], b['kind'], b['name'])
    if kind == 'swap-copies':
        x = pick(slots)
        s = x['slot'] * SLOT
        data[s:s + BLK], data[s + BLK:s + SLOT] = data[s + BLK:s + SLOT], data[s:s + BLK]
        save(meta, data)
        return "copies A and B of slot %d (%s '%s') swapped" % (
            x['slot'], x['kind'], x['name'])
    x = pick(slots, {'flip-live': 'live', 'flip-domain': 'domain'}.get(kind))
    if kind in ('flip-newest', 'flip-live'):
        c = x['newest']
    elif kind == 'flip-older':
        c = 1 - x['newest']
    else:
        c = rng.randrange(2)
    base = x['slot'] * SLOT + c * BLK
    if kind == 'zero-copy':
        data[base:base + BLK] = bytes(BLK)
        save(meta, data)
        return 'zeroed ' + where(x, c)
    n = rng.randint(1, 8)
    if kind == 'flip-header':
        field = rng.choice(['generation', 'slot index'])
        lo, hi = (16, 24) if field == 'generation' else (24, 28)
        n = min(n, 8 * (hi - lo))
        what = 'in the %s field' % field
    elif rng.random() < 0.8:
        lo, hi = 0, used_len(x, c)
        what = 'in its used bytes'
    else:
        lo, hi = 0, BLK
        what = 'anywhere'
    offs = flips(data, base, lo, hi, n)
    save(meta, data)
    return '%d bits flipped %s of %s at %s' % (n, what, where(x, c), offs)

def cat_damage():
    size = os.path.getsize(cat)
    if kind == 'cat-delete':
        for sfx in ('', '-wal', '-shm'):
            if os.path.exists(cat + sfx):
                os.unlink(cat + sfx)
        return 'catalog deleted (with its -wal and -shm)'
    if kind == 'cat-truncate':
        to = rng.choice([0, 100, 4096, rng.randrange(size)])
        os.truncate(cat, to)
        return 'catalog truncated to %d of %d bytes' % (to, size)
    if kind == 'cat-garbage':
        n = rng.choice([size, 65536, 1000])
        with open(cat, 'wb') as f:
            f.write(rng.randbytes(n))
        return 'catalog replaced by %d random bytes' % n
    data = bytearray(open(cat, 'rb').read())
    n = rng.randint(1, 8)
    hi = 100 if rng.random() < 0.5 else size
    offs = flips(data, 0, 0, hi, n)
    save(cat, data)
    return '%d bits flipped in the catalog%s at %s' % (
        n, ' header' if hi == 100 else '', offs)

print(cat_damage() if kind.startswith('cat-') else meta_damage())
EOF

damage() {
    "$PY" -c "$DAMAGE_PY" "$@"
}

# ---------------------------------------------------------------------------
# Reading the tree and the stores

# volume_sums: "UUID SHA256 PATH" for every volume on the mount; SHA256 is
# ERR:ERRNO when its data cannot be opened or read (one python3 for all of
# them: a process per volume and per step made each case seconds long).
IFS= read -r -d '' SUMS_PY <<'EOF'
import errno, glob, hashlib, os, sys
for v in sorted(glob.glob(sys.argv[1] + '/*/*/*')):
    if not os.path.isdir(v):
        continue
    try:
        u = os.getxattr(v, 'user.vstor.uuid').decode()
    except OSError:
        u = 'no-uuid'
    h = hashlib.sha256()
    try:
        with open(v + '/data', 'rb', buffering=0) as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        s = h.hexdigest()
    except OSError as e:
        s = 'ERR:' + errno.errorcode.get(e.errno, str(e.errno))
    print(u, s, v[len(sys.argv[1]) + 1:])
EOF

volume_sums() {
    timeout 60 "$PY" -c "$SUMS_PY" "$MNT" || echo "- hung reading the volumes"
}

# objects DATA_DIR: "DOMAIN-UUID/NAME SIZE SHA256" for every file of every
# store, sorted; but the damaged domain's metadata (`other`'s is listed: no
# case touches it, so no start may change it).
IFS= read -r -d '' OBJECTS_PY <<'EOF'
import glob, hashlib, os, sys
root = sys.argv[1] + '/domains/'
lines = []
for f in glob.glob(root + '*/*'):
    if f == root + sys.argv[2] + '/metadata' or not os.path.isfile(f):
        continue
    with open(f, 'rb') as fh:
        h = hashlib.sha256(fh.read()).hexdigest()
    lines.append('%s %d %s' % (f[len(root):], os.path.getsize(f), h))
for line in sorted(lines, key=lambda x: x.encode()):
    print(line)
EOF

objects() {
    "$PY" -c "$OBJECTS_PY" "$1" "$DUUID"
}

# ---------------------------------------------------------------------------
# One case's problems and notes

PROBLEMS=()
NOTES=()
NEW_FILES=0

problem() {
    PROBLEMS+=("$*")
}

# name_of OBJECT-LINE: the object's volume, for messages.
name_of() {
    local o=${1%% *}
    printf '%s' "${OBJ_VOL[${o#*/}]:-?}"
}

# check_objects WHEN EXACT VARIANT: the stores against the variant's
# reference listing; extra files are problems when EXACT is 1, else notes.
check_objects() {
    local when=$1 exact=$2 ref=$T/objects.$3 cur line name
    cur=$(objects "$DATA")
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        name=${line%% *}
        if grep -q "^$name " <<<"$cur"; then
            problem "$when: object $name ($(name_of "$line")) changed"
        else
            problem "$when: object $name ($(name_of "$line")) deleted"
        fi
    done < <(LC_ALL=C comm -23 "$ref" <(echo "$cur"))
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        name=${line%% *}
        grep -q "^$name " "$ref" && continue # counted as changed
        if [ "$exact" == 1 ]; then
            problem "$when: new file $name"
        else
            NOTES+=("$when: new file $name (${line#* })")
            NEW_FILES=$((NEW_FILES + 1))
        fi
    done < <(LC_ALL=C comm -13 "$ref" <(echo "$cur"))
}

# was UUID PATH: " (was OLD-PATH)" when the volume had another path.
was() {
    [ "${REF_PATH[$1]}" == "$2" ] || printf ' (was %s)' "${REF_PATH[$1]}"
}

# check_reads WHEN STRICT: what the mount shows against the reference.
# Volumes of `other` must all be there with their bytes; with STRICT, those
# of `dom` too; without, a volume of `dom` may be missing or unreadable.
check_reads() {
    local when=$1 strict=$2 u s p
    local -A seen=()
    while read -r u s p; do
        seen[$u]=1
        if [ "$u" == - ]; then
            problem "$when: $s $p"
        elif [ -z "${REF_SUM[$u]:-}" ]; then
            problem "$when: unknown volume $p ($u) is visible"
        elif [ "$s" == "${REF_SUM[$u]}" ]; then
            :
        elif [[ $s == ERR* ]]; then
            if [ "$strict" == 1 ] || [ "${REF_DOM[$u]}" == other ]; then
                problem "$when: $p$(was "$u" "$p") cannot be read (${s#ERR:})"
            fi
        else
            problem "$when: $p$(was "$u" "$p") reads different bytes"
        fi
    done < <(volume_sums)
    for u in "${!REF_SUM[@]}"; do
        [ -z "${seen[$u]:-}" ] || continue
        if [ "$strict" == 1 ] || [ "${REF_DOM[$u]}" == other ]; then
            problem "$when: volume ${REF_PATH[$u]} is missing"
        fi
    done
}

# The harness's start and stop poll every 0.1 s with findmnt; a case starts
# and stops the daemon twice, so these poll /proc every 0.01 s instead.

mounted() {
    local line lines
    mapfile -t lines </proc/self/mountinfo
    for line in "${lines[@]}"; do
        [[ $line == *" $MNT "*" - fuse.vstorfs "* ]] && return 0
    done
    return 1
}

# nap: sleep 10 ms without a process (a read that times out on a pipe
# nobody writes).
exec {NAP_FD}<> <(:)
nap() {
    read -r -t 0.01 -u "$NAP_FD" || :
}

# gone PID: wait up to 10 s for the child PID to exit (status in
# WAIT_STATUS); 1 on timeout.
gone() {
    local i
    for ((i = 0; i < 1000; i++)); do
        if ! kill -0 "$1" 2>/dev/null; then
            wait "$1"
            WAIT_STATUS=$?
            return 0
        fi
        nap
    done
    return 1
}

# quick_start: try_start_vstorfs's contract (0 mounted, 1 exited with
# VSTORFS_STATUS, 2 neither within 10 s).
quick_start() {
    local i
    echo "=== start: $VSTORFS -f $DATA $MNT" >>"$LOG"
    "$VSTORFS" -f "$DATA" "$MNT" </dev/null >>"$LOG" 2>&1 &
    VSTORFS_PID=$!
    VSTORFS_STATUS=
    for ((i = 0; i < 1000; i++)); do
        mounted && return 0
        if ! kill -0 "$VSTORFS_PID" 2>/dev/null; then
            wait "$VSTORFS_PID"
            VSTORFS_STATUS=$?
            VSTORFS_PID=
            return 1
        fi
        nap
    done
    return 2
}

# quiet_stop WHEN: unmount and check the daemon exits 0, as problems, not
# TAP lines (stop_vstorfs prints its own).
quiet_stop() {
    local i
    for ((i = 0; i < 100; i++)); do
        fusermount3 -u "$MNT" 2>/dev/null && break
        mounted || break
        sleep 0.05
    done
    if mounted; then
        problem "$1: cannot unmount"
        kill9_vstorfs
        return
    fi
    [ -n "$VSTORFS_PID" ] || return 0
    if gone "$VSTORFS_PID"; then
        VSTORFS_PID=
        [ "$WAIT_STATUS" -eq 0 ] ||
            problem "$1: vstorfs exited with status $WAIT_STATUS"
    else
        problem "$1: vstorfs did not exit within 10 s of the unmount"
        kill9_vstorfs
    fi
}

# start_case WHEN: start the daemon; 0 when mounted.  The run's log lines
# that say what it did about the damage are kept in RUN_LOG.  A damaged catalog
# refused with the documented message is a note (status 3) unless
# VSTORFS_FUZZ_STRICT_CATALOG is set.
start_case() {
    local rc=0 last
    log_mark
    quick_start || rc=$?
    RUN_LOG+=$(log_new_lines | grep -aE '(error|warning): |removed|rolled back' |
        sed "s|$DATA/domains/||g; s|$DATA|DATA|g; s|^|$1: |" | head -n 6)$'\n'
    case $rc in
    0) return 0 ;;
    1)
        last=$(log_new_lines | grep -av '^$' | tail -n 1)
        last=${last//"$DATA"/DATA}
        if [ "$VSTORFS_STATUS" == 1 ] && [[ $last == *"catalog is damaged"* ]] &&
            [ "${VSTORFS_FUZZ_STRICT_CATALOG:-1}" == 0 ] && ! any_mount; then
            NOTES+=("$1: refused to start: $last")
            return 3
        fi
        problem "$1: vstorfs exited with status $VSTORFS_STATUS: $last"
        ;;
    *)
        problem "$1: vstorfs did not mount within 10 s"
        kill9_vstorfs
        ;;
    esac
    return 1
}

restore() {
    rm -rf "$DATA"
    cp -a --sparse=always "$P/$1" "$DATA" || bail "cannot restore $P/$1"
}

# run_case LABEL KIND VARIANT SEED: one case, one TAP line.
run_case() {
    local label=$1 kind=$2 variant=$3 seed=$4 desc rc=0 meta
    PROBLEMS=()
    NOTES=()
    RUN_LOG=
    restore "$variant"
    meta=$DATA/domains/$DUUID/metadata
    if [ "$kind" == none ]; then
        desc="no damage"
    else
        desc=$(damage "$kind" "$seed" "$meta" "$DATA/catalog.db" 2>&1) ||
            bail "$label: the damage script failed: $desc"
    fi
    echo "=== $label [$variant] $kind: $desc" >>"$LOG"
    # (a) (c) (d): the damaged run
    start_case damaged || rc=$?
    if [ $rc -eq 0 ]; then
        check_reads damaged 0
        kill -0 "$VSTORFS_PID" 2>/dev/null || problem "damaged: the daemon died"
        quiet_stop damaged
    elif [ $rc -eq 3 ]; then
        # the documented remedy: move the damaged catalog away
        mkdir -p "$T/moved" && mv "$DATA"/catalog.db* "$T/moved/"
    fi
    # (b)
    check_objects damaged 0 "$variant"
    # (e): the pristine metadata back, the catalog as the run left it
    mkdir -p "$(dirname "$meta")"
    cp --sparse=always "$P/$variant/domains/$DUUID/metadata" "$meta"
    if start_case restored; then
        check_reads restored 1
        quiet_stop restored
    fi
    check_objects restored 1 "$variant"
    if [ ${#PROBLEMS[@]} -eq 0 ]; then
        ok "$label [$variant]: $desc"
    else
        not_ok "$label [$variant]: $desc"
        diag "$(printf '%s\n' "${PROBLEMS[@]:0:8}")"
        diag "$(grep -v '^$' <<<"$RUN_LOG")"
        FAILED_CASES+=("$label [$variant] $desc: $(printf '%s; ' "${PROBLEMS[@]}" | cut -c1-400)")
    fi
    [ ${#NOTES[@]} -eq 0 ] || diag "notes: ${NOTES[*]}"
}

# ---------------------------------------------------------------------------
# The tree

# put VOLUME OFF_KIB LEN_KIB: random bytes into the volume, flushed.
put() {
    head -c $(($3 * 1024)) /dev/urandom |
        dd of="$1/data" bs=1024 seek="$2" conv=notrunc,fsync status=none
}

start_vstorfs
D=$MNT/dom
mkdir -p "$D/img1/base" "$D/img2/clone" "$D/img3/qbase" "$D/img4/old" \
    "$D/img5/empty" "$MNT/other/oimg/ovol" || bail "cannot create the tree"
put "$D/img1/base" 0 512 || bail "cannot write base"
ln -s ../../img1/base "$D/img2/clone/backing" || bail "cannot clone base"
put "$D/img2/clone" 100 100 || bail "cannot write the clone"
setfattr -n user.vstor.snapshot -v snap1 "$D/img2/clone" || bail "cannot snapshot"
put "$D/img2/clone" 300 60 || bail "cannot write the clone after snap1"
setfattr -n user.vstor.format -v qcow2 "$D/img3/qbase" || bail "cannot make qbase qcow2"
put "$D/img3/qbase" 0 256 || bail "cannot write qbase"
put "$D/img4/old" 0 256 || bail "cannot write old"
mv "$D/img4/old" "$D/img4/renamed" || bail "cannot rename old"
put "$MNT/other/oimg/ovol" 0 256 || bail "cannot write ovol"
setfattr -n user.vstor.snapshot -v snap2 "$D/img2/clone" || bail "cannot snapshot again"
put "$D/img2/clone" 450 40 || bail "cannot write the clone after snap2"
put "$D/img2/clone" 50 20 || bail "cannot write the clone after snap2"

DUUID=$(xget "$D" user.vstor.uuid)

declare -A REF_SUM=() REF_DOM=() REF_PATH=() OBJ_VOL=()
while read -r u s p; do
    [[ $s != ERR* ]] || bail "cannot read $p: $s"
    REF_SUM[$u]=$s
    REF_DOM[$u]=${p%%/*}
    REF_PATH[$u]=$p
    OBJ_VOL[$(xget "$MNT/$p" user.vstor.object)]=$p
done < <(volume_sums)
diag "volumes: $(printf '%s ' "${REF_PATH[@]}")"
assert_eq 8 "${#REF_SUM[@]}" "the tree has its 8 volumes"

# k9: killed right after snap2 and the writes after it (snap2 still pending)
kill9_vstorfs || bail "cannot clear the killed mount"
mkdir -p "$P"
cp -a --sparse=always "$DATA" "$P/k9" || bail "cannot copy the data dir"
objects "$P/k9" >"$T/objects.k9"
grep -q '^kind=volume$' <(tr -c '[:print:]' '\n' <"$P/k9/domains/$DUUID/metadata") ||
    bail "no volume record in the metadata"
# clean: started once (snap2 completed), stopped cleanly
start_vstorfs
stop_vstorfs
cp -a --sparse=always "$DATA" "$P/clean" || bail "cannot copy the data dir"
objects "$P/clean" >"$T/objects.clean"
diag "objects: $(wc -l <"$T/objects.clean") in the stores; metadata of dom: $(stat -c %s "$P/clean/domains/$DUUID/metadata") bytes"

FAILED_CASES=()
run_case control none clean 0
run_case control none k9 0

if [ -n "${VSTORFS_FUZZ_SEEDS:-}" ]; then
    read -r -a SEEDS <<<"$VSTORFS_FUZZ_SEEDS"
else
    mapfile -t SEEDS < <(seq "$FIRST" $((FIRST + CASES - 1)))
fi
for seed in "${SEEDS[@]}"; do
    kind=${KINDS[seed % ${#KINDS[@]}]}
    variant=clean
    [ $((seed / ${#KINDS[@]} % 2)) -eq 0 ] || variant=k9
    run_case "seed $seed" "$kind" "$variant" "$seed"
done

echo "damage-fuzz: ${#SEEDS[@]} cases, ${#FAILED_CASES[@]} failed, $NEW_FILES new file(s) seen"
printf '  %s\n' "${FAILED_CASES[@]}"
