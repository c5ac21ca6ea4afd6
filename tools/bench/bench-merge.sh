#!/bin/bash
# bench-merge.sh: how long removing a snapshot takes (rmdir of a layer that
# one volume is based on), against qemu-img doing the same merge offline.
#
# A volume of --size (1 GiB) is filled with random bytes (raw), snapshotted,
# and --delta (32 MiB) of 64 KiB random writes spread over it lands in the
# live volume.  Then, timed from rmdir to the layer's disappearance:
#   (a) rmdir of the snapshot, idle: vstorfs copies the smaller side, here
#       the live volume's delta down into the snapshot's object (route
#       "down", from the daemon's log line with the bytes of both routes);
#   (b) the same while a guest writes steadily to the live volume (fio,
#       4 KiB random writes at --rate per second): the merge's time and
#       the p99 and max write latency during it, against before;
#   (c) the other route: the same volume and snapshot, but the live volume
#       rewritten over 3/4 of its size first, so copying the snapshot's
#       remaining quarter up into it is the cheaper route ("child").
# The peer, on the same --dir: qemu-img on a qcow2 overlay over a raw base
# holding the same bytes: `qemu-img commit` (the overlay's delta into the
# base: what (a) copies) and `qemu-img rebase -b ''` (the base's bytes the
# overlay lacks into the overlay: what the child route would copy for (a)).
# Needs root, fio, python3, qemu-img, qemu-io, fusermount3, setfattr.
set -euo pipefail

PROG=${0##*/}
DIR=/var/tmp/vstorfs-bench
SIZE=1G
DELTA=32M
RATE=4000
VSTORFS=
VSTORFS_ARGS=

# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<EOF
Usage: $PROG [options]
  --dir DIR          work directory (default $DIR; a disk or /dev/shm)
  --size SIZE        volume size (default $SIZE)
  --delta SIZE       bytes written after the snapshot (default $DELTA)
  --vstorfs PATH     the daemon (default: build/fs/vstorfs, then PATH)
  --vstorfs-args A   extra daemon options
  --rate N           4 KiB writes per second of the load in (b) (default $RATE)
  --quick            --size 256M --delta 8M: a smoke run
EOF
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        --dir) need_arg "$@"; DIR=$2; shift 2 ;;
        --size) need_arg "$@"; SIZE=$2; shift 2 ;;
        --delta) need_arg "$@"; DELTA=$2; shift 2 ;;
        --vstorfs) need_arg "$@"; VSTORFS=$2; shift 2 ;;
        --vstorfs-args) need_arg "$@"; VSTORFS_ARGS=$2; shift 2 ;;
        --rate) need_arg "$@"; RATE=$2; shift 2 ;;
        --quick) SIZE=256M; DELTA=8M; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown option '$1'" ;;
        esac
    done
    if [[ -z $VSTORFS ]]; then
        local here
        here=$(cd "$(dirname "$0")/../.." && pwd)
        VSTORFS=$here/build/fs/vstorfs
        [[ -x $VSTORFS ]] || VSTORFS=$(command -v vstorfs || true)
    fi
    [[ -x $VSTORFS ]] || die "no vstorfs daemon (use --vstorfs)"
    SIZE_BYTES=$(numfmt --from=iec "$SIZE")
    DELTA_BYTES=$(numfmt --from=iec "$DELTA")
}

WORK=
MNT=
VSTORFS_PID=
LOAD_PID=
declare -A RESULT=()

cleanup() {
    local rc=$?
    set +e
    [[ -z $LOAD_PID ]] || kill -KILL "$LOAD_PID" 2>/dev/null
    stop_vstorfs
    [[ $rc -eq 0 || -z $WORK ]] || tail -n 20 "$WORK/vstorfs.log" >&2
    [[ -z $WORK ]] || rm -rf --one-file-system "$WORK"
    exit "$rc"
}

start_vstorfs() {
    mkdir -p "$WORK/data" "$MNT"
    # shellcheck disable=SC2086 # a list of options
    "$VSTORFS" -f $VSTORFS_ARGS "$WORK/data" "$MNT" 2>>"$WORK/vstorfs.log" &
    VSTORFS_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        is_mounted "$MNT" && return 0
        sleep 0.1
    done
    die "vstorfs did not mount $MNT"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", b - a }'; }

# write_spread FILE BYTES: BYTES of random 64 KiB writes spread evenly over
# the first SIZE_BYTES of FILE (the same offsets every time).
write_spread() {
    local file=$1 n=$(($2 / 65536)) stride i
    stride=$((SIZE_BYTES / 65536 / n))
    head -c $(($2)) /dev/urandom >"$WORK/delta.bin"
    for ((i = 0; i < n; i++)); do
        printf '%d %d\n' "$i" $((i * stride))
    done | "$PY" -c '
import os, sys
src = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY)
for line in sys.stdin:
    i, blk = map(int, line.split())
    os.pwrite(fd, src[i * 65536:(i + 1) * 65536], blk * 65536)
os.fsync(fd)
os.close(fd)' "$file" "$WORK/delta.bin"
}

# merge_time VOL SNAP: rmdir SNAP and wait for it to go; prints seconds.
merge_time() {
    local t0 t1
    t0=$(now)
    rmdir "$2" || die "rmdir $2 failed"
    while [[ -e $2 ]]; do sleep 0.02; done
    t1=$(now)
    elapsed "$t0" "$t1"
}

# The route and the byte counts of the newest merge log line.
last_route() {
    local l
    l=$(grep -a 'merging' "$WORK/vstorfs.log" | tail -n 1)
    if [[ $l =~ down\ into.*\(([0-9]+)\ bytes\ down,\ not\ ([0-9]+)\ up\) ]]; then
        echo "down ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
    elif [[ $l =~ child.*\(([0-9]+)\ bytes\ up\) ]]; then
        echo "child - ${BASH_REMATCH[1]}"
    else
        echo "? - -"
    fi
}

# A filled volume NAME with snapshot NAME-s and the delta written.
prepare() {
    local v=$MNT/b/img/$1
    mkdir -p "$v"
    dd if=/dev/urandom of="$v/data" bs=1M count=$((SIZE_BYTES / 1048576)) \
        oflag=direct status=none
    setfattr -n user.vstor.snapshot -v "$1-s" "$v"
    write_spread "$v/data" "$DELTA_BYTES"
}

# load_run VOL SECONDS JSON: 4 KiB random writes at RATE per second.
load_run() {
    exec fio --ioengine=libaio --direct=1 --fallocate=none --invalidate=0 \
        --numjobs=1 --name=load --filename="$1/data" --rw=randwrite \
        --bs=4k --iodepth=4 --rate_iops="$RATE" --size="$SIZE_BYTES" \
        --time_based --runtime="$2" --output-format=json --output="$3" \
        >/dev/null
}

# lat_ms JSON KEY: a write completion latency of fio's JSON in ms: the
# percentile KEY ("99.000000") or "max" (fio may put a line before it).
lat_ms() {
    sed -n '/^{/,$p' "$1" | jq -r --arg k "$2" '.jobs[0].write.clat_ns |
        (if $k == "max" then .max else .percentile[$k] end) / 1e6 |
        . * 100 | round / 100'
}

bench_vstorfs() {
    local v
    start_vstorfs
    prepare idle
    RESULT[idle_s]=$(merge_time "$MNT/b/img/idle" "$MNT/b/img/idle-s")
    read -r RESULT[idle_route] RESULT[idle_down] RESULT[idle_up] <<<"$(last_route)"

    # a guest writing steadily (RATE 4 KiB writes/s, so that the delta stays
    # small) on the live volume: its p99 and max write latency while the
    # merge runs, against the same load before the merge
    prepare load
    v=$MNT/b/img/load
    (load_run "$v" 3 "$WORK/base.json")
    RESULT[load_p99_0]=$(lat_ms "$WORK/base.json" 99.000000)
    RESULT[load_max_0]=$(lat_ms "$WORK/base.json" max)
    # fio itself, not a function's subshell, gets the SIGINT that ends it
    load_run "$v" 600 "$WORK/load.json" &
    LOAD_PID=$!
    sleep 1
    RESULT[load_s]=$(merge_time "$v" "$MNT/b/img/load-s")
    sleep 1
    kill -INT "$LOAD_PID"
    wait_gone "$LOAD_PID" 20 || kill -KILL "$LOAD_PID"
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=
    read -r RESULT[load_route] RESULT[load_down] RESULT[load_up] <<<"$(last_route)"
    RESULT[load_p99]=$(lat_ms "$WORK/load.json" 99.000000)
    RESULT[load_max]=$(lat_ms "$WORK/load.json" max)

    prepare child
    v=$MNT/b/img/child
    dd if=/dev/urandom of="$v/data" bs=1M count=$((SIZE_BYTES * 3 / 4 / 1048576)) \
        oflag=direct conv=notrunc status=none
    RESULT[child_s]=$(merge_time "$v" "$MNT/b/img/child-s")
    read -r RESULT[child_route] _ RESULT[child_up] <<<"$(last_route)"
    stop_vstorfs
}

bench_qemu_img() {
    local base=$WORK/q-base.raw top=$WORK/q-top.qcow2 t0
    dd if=/dev/urandom of="$base" bs=1M count=$((SIZE_BYTES / 1048576)) status=none
    qemu-img create -q -f qcow2 -F raw -b "$base" "$top"
    # the same spread of 64 KiB writes, through qemu-io
    local n=$((DELTA_BYTES / 65536)) stride i cmds=()
    stride=$((SIZE_BYTES / 65536 / n))
    for ((i = 0; i < n; i++)); do
        cmds+=(-c "write -P $((i % 250 + 1)) $((i * stride * 65536)) 64k")
    done
    qemu-io -f qcow2 "${cmds[@]}" "$top" >/dev/null
    cp --sparse=always "$top" "$top.2"
    cp "$base" "$base.2"
    sync
    t0=$(now)
    qemu-img commit -q -d -t none "$top"
    RESULT[qemu_commit_s]=$(elapsed "$t0" "$(now)")
    qemu-img rebase -u -q -F raw -b "$base.2" -f qcow2 "$top.2"
    t0=$(now)
    qemu-img rebase -q -t none -T none -f qcow2 -b '' "$top.2"
    RESULT[qemu_rebase_s]=$(elapsed "$t0" "$(now)")
}

report() {
    printf '\nremoving a snapshot of a %s volume with %s written after it; dir %s\n' \
        "$SIZE" "$DELTA" "$DIR"
    printf '  (a) vstorfs, idle:       %6s s  route %s (%s bytes down, %s up)\n' \
        "${RESULT[idle_s]}" "${RESULT[idle_route]}" "${RESULT[idle_down]}" "${RESULT[idle_up]}"
    printf '  (b) vstorfs, under load: %6s s  route %s; %s 4 KiB writes/s: p99 %s ms, max %s ms (before: %s, %s)\n' \
        "${RESULT[load_s]}" "${RESULT[load_route]}" "$RATE" "${RESULT[load_p99]}" \
        "${RESULT[load_max]}" "${RESULT[load_p99_0]}" "${RESULT[load_max_0]}"
    printf '  (c) vstorfs, child route (3/4 rewritten): %s s (%s bytes up)\n' \
        "${RESULT[child_s]}" "${RESULT[child_up]}"
    printf '  qemu-img commit (the delta into the base):            %6s s; vstorfs (a)/commit %s\n' \
        "${RESULT[qemu_commit_s]}" "$(ratio "${RESULT[idle_s]}" "${RESULT[qemu_commit_s]}")"
    printf '  qemu-img rebase -b "" (the base into the overlay):    %6s s; commit/rebase %s\n' \
        "${RESULT[qemu_rebase_s]}" "$(ratio "${RESULT[qemu_commit_s]}" "${RESULT[qemu_rebase_s]}")"
}

main() {
    parse_args "$@"
    for t in fio jq qemu-img qemu-io setfattr fusermount3 numfmt; do
        command -v "$t" >/dev/null || die "missing tool: $t"
    done
    PY=$(command -v python3) || die "missing tool: python3"
    mkdir -p "$DIR"
    trap cleanup EXIT
    WORK=$(mktemp -d "$DIR/merge.XXXXXX")
    MNT=$WORK/mnt
    bench_vstorfs
    bench_qemu_img
    report
}

main "$@"
