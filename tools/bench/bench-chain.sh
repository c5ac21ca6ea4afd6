#!/bin/bash
# bench-chain.sh: what copy-on-write chains cost through vstorfs.
#
# It mounts vstorfs with a fresh data directory under --dir and measures,
# with fio (libaio, direct=1, 4 KiB, iodepth 16):
#   (a) random reads on a volume with a chain of depth 1 (the filled raw
#       volume), depth 2 (one snapshot, one region rewritten) and depth 32
#       (31 snapshots, each followed by a write of another 1/32 of the
#       volume, so the data is spread over the layers); ratio depth32/depth1;
#   (b) the latency of taking a snapshot (the setxattr system call, timed
#       in python with time.perf_counter) on a 100 GiB thin volume, idle and
#       under a 4 KiB random-write load; median, p90 and max in ms;
#   (c) random read and random write on a thin clone (qcow2 over a filled
#       raw base, made with ln -s) against qemu-storage-daemon's FUSE export
#       of the same qcow2-over-raw chain built with qemu-img on the same
#       --dir; ratios vstorfs/qsd;
#   (d) copy-on-write write amplification: bytes the daemon writes to the
#       backend per byte fio writes, for 4 KiB random writes into a fresh
#       clone, from the daemon's /proc/PID/io (write_bytes: what reached the
#       block layer, zero on tmpfs; wchar: bytes passed to write system
#       calls) and from the growth of the layer file's allocated blocks;
#       the same for qemu-storage-daemon (its native AIO is not in wchar).
# vstorfs and qemu-storage-daemon never run at the same time.  Run it on a
# quiet machine, once with --dir on a disk and once under /dev/shm.
# Needs root (FUSE mounts), fio, jq, python3, qemu-img, qemu-storage-daemon,
# fusermount3, getfattr and setfattr.
set -euo pipefail

PROG=${0##*/}
DIR=/var/tmp/vstorfs-bench
RUNTIME=10
REPEAT=3
SIZE=1G
VSTORFS=
VSTORFS_ARGS=
JSON_OUT=
DEPTH=32
NSNAP=20
NSNAP_IDLE=5
SNAP_GAP=0.2
BIG=100G
AMP_IO=64M

# The helpers both benchmarks share.
# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]
Benchmark vstorfs copy-on-write chains (fio, libaio, direct=1, 4 KiB,
iodepth 16): random reads at chain depth 1 and $DEPTH, snapshot latency under
load on a $BIG volume, a thin clone against qemu-storage-daemon's FUSE
export of the same qcow2-over-raw chain, copy-on-write write amplification.

Options:
  --dir DIR          where the data lives (default: $DIR); try once on a
                     disk and once under /dev/shm
  --runtime S        seconds per fio run (default: $RUNTIME)
  --repeat N         runs per measurement, median reported (default: $REPEAT)
  --size SIZE        size of the filled volumes, as for truncate/fio
                     (default: $SIZE)
  --vstorfs PATH     the vstorfs binary (default: vstorfs in PATH)
  --vstorfs-args STR extra vstorfs options, e.g. "--threads=4"
  --json FILE        also write the results to FILE as JSON (built by jq)
  --quick            runtime 3, repeat 1, 10 snapshots: a smoke run
  -h, --help         print this help
EOF
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        --dir) need_arg "$@"; DIR=$2; shift 2 ;;
        --runtime) need_arg "$@"; RUNTIME=$2; shift 2 ;;
        --repeat) need_arg "$@"; REPEAT=$2; shift 2 ;;
        --size) need_arg "$@"; SIZE=$2; shift 2 ;;
        --vstorfs) need_arg "$@"; VSTORFS=$2; shift 2 ;;
        --vstorfs-args) need_arg "$@"; VSTORFS_ARGS=$2; shift 2 ;;
        --json) need_arg "$@"; JSON_OUT=$2; shift 2 ;;
        --quick) RUNTIME=3; REPEAT=1; NSNAP=10; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
        esac
    done
    [[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || usage_error "--runtime: not a number"
    [[ $REPEAT =~ ^[1-9][0-9]*$ ]] || usage_error "--repeat: not a number"
    [[ $SIZE =~ ^[1-9][0-9]*[KMGT]?$ ]] || usage_error "--size: bad size"
    SIZE_BYTES=$(numfmt --from=iec "$SIZE")
    [[ $((SIZE_BYTES % (DEPTH * 1048576))) -eq 0 ]] ||
        usage_error "--size: must be a multiple of $DEPTH MiB"
}

check_tools() {
    if [[ $EUID -ne 0 ]]; then
        echo "$PROG: SKIP: FUSE mounts need root" >&2
        exit 77
    fi
    local t
    for t in fio jq python3 qemu-img qemu-storage-daemon fusermount3 getfattr \
        setfattr findmnt numfmt; do
        command -v "$t" >/dev/null || die "$t not found (install it)"
    done
    [[ -e /dev/fuse ]] || die "/dev/fuse is missing"
    if [[ -z $VSTORFS ]]; then
        VSTORFS=$(command -v vstorfs || true)
    fi
    [[ -n $VSTORFS ]] || die "no vstorfs binary: use --vstorfs PATH"
    [[ -x $VSTORFS ]] || die "$VSTORFS: not an executable"
}

# ---- state and cleanup -------------------------------------------------

WORK=
MNT=
VSTORFS_PID=
QSD_PID=
QSD_FILE=
LOAD_PID=

stop_load() {
    [[ -n $LOAD_PID ]] || return 0
    kill -INT "$LOAD_PID" 2>/dev/null || true
    wait_gone "$LOAD_PID" 20 || kill -KILL "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=
}

cleanup() {
    local rc=$?
    set +e
    stop_load
    stop_qsd
    stop_vstorfs
    if [[ $rc -ne 0 && -n $WORK ]]; then
        local log
        for log in "$WORK"/*.log; do
            [[ -s $log ]] || continue
            echo "--- last lines of ${log##*/}:" >&2
            tail -n 20 "$log" >&2
        done
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        rm -rf --one-file-system "$WORK"
    fi
    exit "$rc"
}

# ---- the targets ---------------------------------------------------------

start_vstorfs() {
    local data_dir=$WORK/data
    mkdir -p "$data_dir" "$MNT"
    # shellcheck disable=SC2086 # VSTORFS_ARGS is a list of options
    "$VSTORFS" -f $VSTORFS_ARGS "$data_dir" "$MNT" 2>"$WORK/vstorfs.log" &
    VSTORFS_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if [[ $(findmnt -n -o FSTYPE --mountpoint "$MNT" 2>/dev/null) == \
            fuse.vstorfs ]]; then
            return 0
        fi
        kill -0 "$VSTORFS_PID" 2>/dev/null || die "vstorfs exited at start-up"
        sleep 0.1
    done
    die "vstorfs did not mount $MNT within 10 s"
}

# start_qsd TOP BASE: export the qcow2 TOP over the raw BASE.  Both files
# are opened the same way (O_DIRECT, native AIO), the backing explicitly.
start_qsd() {
    local top=$1 base=$2 pidfile=$WORK/qsd.pid
    rm -f "$pidfile"
    : >"$QSD_FILE"
    qemu-storage-daemon \
        --blockdev "driver=file,node-name=bf,filename=$base,aio=native,cache.direct=on,read-only=on" \
        --blockdev driver=raw,node-name=b,file=bf,read-only=on \
        --blockdev "driver=file,node-name=f,filename=$top,aio=native,cache.direct=on" \
        --blockdev driver=qcow2,node-name=q,file=f,backing=b \
        --export "type=fuse,id=e,node-name=q,mountpoint=$QSD_FILE,writable=on" \
        --pidfile "$pidfile" 2>>"$WORK/qsd.log" &
    QSD_PID=$!
    local i
    # The pid file is written once the export is up.
    for ((i = 0; i < 100; i++)); do
        if [[ -s $pidfile ]] && is_mounted "$QSD_FILE"; then
            return 0
        fi
        kill -0 "$QSD_PID" 2>/dev/null || die "qemu-storage-daemon exited"
        sleep 0.1
    done
    die "qemu-storage-daemon did not export $QSD_FILE within 10 s"
}

# fill FILE [OFFSET LENGTH]: sequential 1 MiB writes.
fill() {
    local file=$1 off=${2:-0} len=${3:-$SIZE_BYTES}
    run_fio --name=fill --filename="$file" --rw=write --bs=1M --iodepth=16 \
        --offset="$off" --size="$len" --output=/dev/null >/dev/null ||
        die "$file: filling $len bytes at $off failed"
}

xattr() {
    getfattr --absolute-names --only-values -n "$2" "$1"
}

# The backend file of volume $1.
layer_file() {
    local backend
    backend=$(xattr "$1" user.vstor.backend)
    [[ $backend == dir:* ]] || die "$1: backend '$backend' is not dir:"
    echo "${backend#dir:}/$(xattr "$1" user.vstor.object)"
}

snapshot() {
    setfattr -n user.vstor.snapshot -v "$2" "$1" || die "$1: snapshot $2 failed"
}

# Depth of volume $1's chain: 1 + the number of backing links below it.
chain_depth() {
    local v=$1 n=1 link
    while link=$(readlink "$v/backing" 2>/dev/null); do
        v=$(cd "$v/$link" && pwd)
        n=$((n + 1))
    done
    echo "$n"
}

# ---- measuring -------------------------------------------------------

declare -A SAMPLES=() # key -> space-separated values
declare -A RESULT=()  # key -> value

# One 4 KiB iodepth-16 run of RW (randread, randwrite) on FILE; prints IOPS.
iops_once() {
    local file=$1 rw=$2 out=$WORK/fio-$2.json
    run_fio --name="$rw" --filename="$file" --rw="$rw" --bs=4k --iodepth=16 \
        --size="$SIZE_BYTES" --time_based --runtime="$RUNTIME" \
        --output-format=json --output="$out" >/dev/null ||
        die "$file: fio $rw failed"
    jq -r ".jobs[0].${rw#rand}.iops | floor" "$out"
}

# measure KEY FILE RW: REPEAT runs; the samples go to SAMPLES[KEY].
measure() {
    local key=$1 file=$2 rw=$3 r v
    for ((r = 1; r <= REPEAT; r++)); do
        v=$(iops_once "$file" "$rw")
        printf '  %-22s run %d: %s IOPS\n' "$key" "$r" "$v" >&2
        SAMPLES[$key]+="$v "
    done
    RESULT[$key]=$(median "${SAMPLES[$key]}")
}

# ---- (a) chain depth ---------------------------------------------------

bench_depth() {
    local vol=$MNT/bench/img/deep region k
    echo "(a) random reads at chain depth 1, 2 and $DEPTH" >&2
    mkdir "$vol"
    truncate -s "$SIZE_BYTES" "$vol/data"
    fill "$vol/data"
    measure depth1 "$vol/data" randread
    region=$((SIZE_BYTES / DEPTH))
    for ((k = 1; k < DEPTH; k++)); do
        snapshot "$vol" "deep-$k"
        fill "$vol/data" $((k * region)) "$region"
        if [[ $k -eq 1 ]]; then
            [[ $(chain_depth "$vol") -eq 2 ]] || die "$vol: the chain is not 2 deep"
            measure depth2 "$vol/data" randread
        fi
    done
    [[ $(chain_depth "$vol") -eq $DEPTH ]] || die "$vol: the chain is not $DEPTH deep"
    measure "depth$DEPTH" "$vol/data" randread
}

# ---- (b) snapshot latency ----------------------------------------------

# snap_latency VOLUME PREFIX N: take N snapshots SNAP_GAP s apart, timing
# the setxattr call; prints "median p90 max" and then the samples (ms).
snap_latency() {
    python3 - "$@" "$SNAP_GAP" <<'EOF'
import os, sys, time
path, prefix, n, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
lat = []
for i in range(n):
    name = ('%s-%d' % (prefix, i)).encode()
    t0 = time.perf_counter()
    os.setxattr(path, 'user.vstor.snapshot', name)
    lat.append((time.perf_counter() - t0) * 1000.0)
    time.sleep(gap)
s = sorted(lat)
med = (s[(n - 1) // 2] + s[n // 2]) / 2
p90 = s[max(0, -(-9 * n // 10) - 1)]  # nearest rank
print('%.3f %.3f %.3f' % (med, p90, s[-1]))
print(' '.join('%.3f' % x for x in lat))
EOF
}

# keep_latency KEY OUTPUT: snap_latency's two lines into RESULT and SAMPLES.
keep_latency() {
    local med p90 max
    read -r med p90 max <<<"${2%%$'\n'*}"
    RESULT[$1_median]=$med
    RESULT[$1_p90]=$p90
    RESULT[$1_max]=$max
    SAMPLES[$1]=${2#*$'\n'}
}

bench_snapshot() {
    local vol=$MNT/bench/img/big out lines
    echo "(b) snapshot latency on a $BIG volume, idle and under 4 KiB randwrite" >&2
    mkdir "$vol"
    truncate -s "$BIG" "$vol/data"
    lines=$(snap_latency "$vol" idle "$NSNAP_IDLE") || die "$vol: idle snapshots failed"
    keep_latency snap_idle "$lines"
    out=$WORK/fio-load.json
    # fio itself in the background (not a shell function), so that its PID
    # gets the SIGINT that ends it
    fio --ioengine=libaio --direct=1 --fallocate=none --invalidate=0 \
        --numjobs=1 --name=load --filename="$vol/data" --rw=randwrite \
        --bs=4k --iodepth=16 --size="$BIG" --norandommap --randrepeat=0 \
        --time_based --runtime=3600 --output-format=json --output="$out" \
        >/dev/null &
    LOAD_PID=$!
    sleep 2
    kill -0 "$LOAD_PID" 2>/dev/null || die "$vol: the fio load did not start"
    lines=$(snap_latency "$vol" load "$NSNAP") || die "$vol: snapshots under load failed"
    kill -0 "$LOAD_PID" 2>/dev/null || die "$vol: the fio load ended during the snapshots"
    stop_load
    keep_latency snap_load "$lines"
    # fio stopped by SIGINT may put a line of its own before the JSON
    RESULT[snap_load_iops]=$(sed -n '/^{/,$p' "$out" | jq -r '.jobs[0].write.iops | floor')
    printf '  idle: %s ms median; under load (%s IOPS): %s ms median, %s ms p90\n' \
        "${RESULT[snap_idle_median]}" "${RESULT[snap_load_iops]}" \
        "${RESULT[snap_load_median]}" "${RESULT[snap_load_p90]}" >&2
}

# ---- (d) write amplification -----------------------------------------------

io_counter() {
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/io"
}

# amplification TARGET FILE PID LAYER: 4 KiB random writes of AMP_IO bytes
# into FILE (a fresh clone) with a final fsync; what process PID wrote and
# how much LAYER grew, per byte fio wrote.
amplification() {
    local t=$1 file=$2 pid=$3 layer=$4 out=$WORK/fio-amp-$1.json
    local wb0 wc0 al0 wb1 wc1 al1 guest
    wb0=$(io_counter "$pid" write_bytes)
    wc0=$(io_counter "$pid" wchar)
    al0=$(($(stat -c %b "$layer") * 512))
    run_fio --name=amp --filename="$file" --rw=randwrite --bs=4k --iodepth=16 \
        --size="$SIZE_BYTES" --io_size="$AMP_IO" --end_fsync=1 \
        --output-format=json --output="$out" >/dev/null ||
        die "$file: fio amplification run failed"
    wb1=$(io_counter "$pid" write_bytes)
    wc1=$(io_counter "$pid" wchar)
    al1=$(($(stat -c %b "$layer") * 512))
    guest=$(jq -r '.jobs[0].write.io_bytes' "$out")
    RESULT[amp_${t}_guest]=$guest
    RESULT[amp_${t}_write_bytes]=$((wb1 - wb0))
    RESULT[amp_${t}_wchar]=$((wc1 - wc0))
    RESULT[amp_${t}_alloc]=$((al1 - al0))
    # A counter that moved by less than 1 % of the guest's bytes does not
    # see these writes (write_bytes on tmpfs, wchar of native AIO).
    local c v
    for c in write_bytes wchar alloc; do
        v=${RESULT[amp_${t}_$c]}
        if [[ $((v * 100)) -lt $guest ]]; then
            RESULT[amp_${t}_${c}_x]=-
        else
            RESULT[amp_${t}_${c}_x]=$(ratio "$v" "$guest")
        fi
    done
    printf '  %-8s guest %s bytes: write_bytes %s (x%s), wchar %s (x%s), layer growth %s (x%s)\n' \
        "$t" "$guest" "${RESULT[amp_${t}_write_bytes]}" "${RESULT[amp_${t}_write_bytes_x]}" \
        "${RESULT[amp_${t}_wchar]}" "${RESULT[amp_${t}_wchar_x]}" \
        "${RESULT[amp_${t}_alloc]}" "${RESULT[amp_${t}_alloc_x]}" >&2
}

# ---- (c) a thin clone against qemu-storage-daemon --------------------------

bench_clone_vstorfs() {
    local img=$MNT/bench/img base top amp
    base=$img/cbase
    top=$img/ctop
    amp=$img/camp
    echo "(c) vstorfs: thin clone (qcow2 over a filled raw base)" >&2
    mkdir "$base" "$top" "$amp"
    truncate -s "$SIZE_BYTES" "$base/data"
    fill "$base/data"
    ln -s ../cbase "$top/backing"
    ln -s ../cbase "$amp/backing"
    measure vstorfs-randread "$top/data" randread
    measure vstorfs-randwrite "$top/data" randwrite
    echo "(d) vstorfs: copy-on-write amplification ($AMP_IO of 4 KiB random writes)" >&2
    amplification vstorfs "$amp/data" "$VSTORFS_PID" "$(layer_file "$amp")"
}

bench_clone_qsd() {
    local base=$WORK/qsd-base.raw top=$WORK/qsd-top.qcow2
    echo "(c) qemu-storage-daemon: qcow2 over a filled raw base, FUSE export" >&2
    qemu-img create -q -f raw "$base" "$SIZE_BYTES"
    fill "$base"
    qemu-img create -q -f qcow2 -b "$base" -F raw "$top"
    start_qsd "$top" "$base"
    measure qsd-randread "$QSD_FILE" randread
    measure qsd-randwrite "$QSD_FILE" randwrite
    stop_qsd
    echo "(d) qemu-storage-daemon: copy-on-write amplification" >&2
    rm -f "$top"
    qemu-img create -q -f qcow2 -b "$base" -F raw "$top"
    start_qsd "$top" "$base"
    amplification qsd "$QSD_FILE" "$QSD_PID" "$top"
    stop_qsd
}

# ---- reporting ---------------------------------------------------------

print_report() {
    local d1=${RESULT[depth1]} d2=${RESULT[depth2]} dn=${RESULT[depth$DEPTH]}
    local t
    printf '\nfio, libaio, direct=1, 4 KiB, iodepth 16, %s s per run, median of %d; size %s; dir %s\n' \
        "$RUNTIME" "$REPEAT" "$SIZE" "$DIR"
    printf '\n(a) random read by chain depth (IOPS)\n'
    printf '  depth 1 %s, depth 2 %s, depth %d %s; depth%d/depth1 %s, depth%d/depth2 %s\n' \
        "$d1" "$d2" "$DEPTH" "$dn" "$DEPTH" "$(ratio "$dn" "$d1")" "$DEPTH" \
        "$(ratio "$dn" "$d2")"
    printf '\n(b) snapshot latency, setxattr on a %s volume (ms)\n' "$BIG"
    printf '  idle (%d):            median %s, p90 %s, max %s\n' "$NSNAP_IDLE" \
        "${RESULT[snap_idle_median]}" "${RESULT[snap_idle_p90]}" "${RESULT[snap_idle_max]}"
    printf '  under load (%d, %s IOPS): median %s, p90 %s, max %s\n' "$NSNAP" \
        "${RESULT[snap_load_iops]}" "${RESULT[snap_load_median]}" \
        "${RESULT[snap_load_p90]}" "${RESULT[snap_load_max]}"
    printf '\n(c) thin clone, qcow2 over raw (IOPS)\n'
    printf '  %-10s %10s %10s %12s\n' workload vstorfs qsd vstorfs/qsd
    for t in randread randwrite; do
        printf '  %-10s %10s %10s %12s\n' "$t" "${RESULT[vstorfs-$t]}" \
            "${RESULT[qsd-$t]}" "$(ratio "${RESULT[vstorfs-$t]}" "${RESULT[qsd-$t]}")"
    done
    printf '\n(d) copy-on-write write amplification (backend bytes per guest byte)\n'
    printf '  %-8s %14s %12s %8s %12s %8s %14s %8s\n' target guest-bytes \
        write_bytes x wchar x layer-growth x
    for t in vstorfs qsd; do
        printf '  %-8s %14s %12s %8s %12s %8s %14s %8s\n' "$t" \
            "${RESULT[amp_${t}_guest]}" "${RESULT[amp_${t}_write_bytes]}" \
            "${RESULT[amp_${t}_write_bytes_x]}" "${RESULT[amp_${t}_wchar]}" \
            "${RESULT[amp_${t}_wchar_x]}" "${RESULT[amp_${t}_alloc]}" \
            "${RESULT[amp_${t}_alloc_x]}"
    done
}

write_json() {
    local k args=()
    for k in "${!RESULT[@]}"; do
        args+=(--arg "r:$k" "${RESULT[$k]}")
    done
    for k in "${!SAMPLES[@]}"; do
        args+=(--arg "s:$k" "${SAMPLES[$k]}")
    done
    jq -n "${args[@]}" --arg dir "$DIR" --arg size "$SIZE" \
        --argjson runtime "$RUNTIME" --argjson repeat "$REPEAT" \
        --argjson depth "$DEPTH" --arg big "$BIG" --arg amp_io "$AMP_IO" \
        --arg fio "$(fio --version)" --arg kernel "$(uname -r)" \
        --arg qsd "$(qemu-storage-daemon --version | head -n 1)" \
        --arg vstorfs "$VSTORFS" --arg vargs "$VSTORFS_ARGS" \
        --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
        def num: if . == "-" or . == null then null else tonumber end;
        def nums: [splits(" +") | select(length > 0) | tonumber];
        def r($k): $ARGS.named["r:" + $k] | num;
        def s($k): ($ARGS.named["s:" + $k] // "") | nums;
        def ratio($a; $b): if $a == null or $b == null or $b == 0 then null
                           else ($a / $b * 100 | round) / 100 end;
        def amp($t): {guest_bytes: r("amp_\($t)_guest"),
                      write_bytes: r("amp_\($t)_write_bytes"),
                      wchar: r("amp_\($t)_wchar"),
                      layer_growth: r("amp_\($t)_alloc"),
                      "x_write_bytes": r("amp_\($t)_write_bytes_x"),
                      "x_wchar": r("amp_\($t)_wchar_x"),
                      "x_layer_growth": r("amp_\($t)_alloc_x")};
        {date: $date, dir: $dir, size: $size, runtime: $runtime,
         repeat: $repeat, engine: "libaio", direct: true, bs: "4k",
         iodepth: 16, fio: $fio, kernel: $kernel, qemu_storage_daemon: $qsd,
         vstorfs: $vstorfs, vstorfs_args: $vargs,
         depth: {depth1: r("depth1"), depth2: r("depth2"),
                 "depth\($depth)": r("depth\($depth)"),
                 "depth\($depth)/depth1": ratio(r("depth\($depth)"); r("depth1")),
                 "depth\($depth)/depth2": ratio(r("depth\($depth)"); r("depth2")),
                 samples: {depth1: s("depth1"), depth2: s("depth2"),
                           "depth\($depth)": s("depth\($depth)")}},
         snapshot_latency_ms: {volume_size: $big,
             idle: {median: r("snap_idle_median"), p90: r("snap_idle_p90"),
                    max: r("snap_idle_max"), samples: s("snap_idle")},
             under_load: {median: r("snap_load_median"), p90: r("snap_load_p90"),
                          max: r("snap_load_max"), load_iops: r("snap_load_iops"),
                          samples: s("snap_load")}},
         clone_vs_qsd: ([("randread", "randwrite") as $w |
             {key: $w, value: {vstorfs: r("vstorfs-\($w)"), qsd: r("qsd-\($w)"),
                               "vstorfs/qsd": ratio(r("vstorfs-\($w)"); r("qsd-\($w)")),
                               samples: {vstorfs: s("vstorfs-\($w)"),
                                         qsd: s("qsd-\($w)")}}}] | from_entries),
         write_amplification: {io_bytes: $amp_io, vstorfs: amp("vstorfs"),
                               qsd: amp("qsd")}}' >"$JSON_OUT"
    echo "results written to $JSON_OUT" >&2
}

# ---- main ------------------------------------------------------------------

main() {
    parse_args "$@"
    check_tools
    mkdir -p "$DIR"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    WORK=$(mktemp -d "$DIR/chain.XXXXXX")
    MNT=$WORK/mnt
    QSD_FILE=$WORK/qsd-export

    echo "vstorfs: $VSTORFS $VSTORFS_ARGS" >&2
    start_vstorfs
    mkdir -p "$MNT/bench/img"
    bench_depth
    bench_snapshot
    bench_clone_vstorfs
    # From here on vstorfs is gone, so that it never runs at the same time
    # as qemu-storage-daemon.
    stop_vstorfs
    bench_clone_qsd

    print_report
    [[ -z $JSON_OUT ]] || write_json
}

main "$@"
