#!/bin/bash
# bench-fuse.sh: how fast is a vstorfs volume compared with the file behind
# it and with qemu-storage-daemon's FUSE export of that same file?
#
# It mounts vstorfs with a fresh data directory under --dir, creates one
# domain/image/volume, sizes and fills its data file, and finds the backend
# file through the user.vstor.backend and user.vstor.object xattrs.  Then it
# runs each fio workload (libaio, direct=1, time_based) against
#   (a) the vstorfs data file,
#   (b) the backend file directly (vstorfs unmounted by then),
#   (c) qemu-storage-daemon's FUSE export of the backend file,
# one after the other so that no two of them ever run at once, and prints
# the median of --repeat runs per workload and target, with the ratios.
# Run it on a quiet machine: on 2 vCPUs a second busy process moves FUSE
# figures by 25-50 %.  Run it once with --dir on a disk and once with
# --dir /dev/shm/... to see the FUSE round trip without the disk.
# With --passthrough the vstorfs column is a volume served by kernel FUSE
# passthrough (-o passthrough=on; the script checks that its open really is
# one) and only the 4 KiB random workloads run: `meson test --suite bench
# bench-passthrough` does that on /dev/shm, where the target is >= 0.9x
# the tmpfs file.
# Needs root (FUSE mounts), fio, jq, qemu-storage-daemon, fusermount3 and
# getfattr.
set -euo pipefail

PROG=${0##*/}
DIR=/var/tmp/vstorfs-bench
RUNTIME=10
REPEAT=3
SIZE=1G
VSTORFS=
VSTORFS_ARGS=
JSON_OUT=
SEQ_IODEPTH=4
PASSTHROUGH=

# name:rw:bs:iodepth:unit -- the workloads, in the order they are reported.
WORKLOADS=(
    "seq-read-1M-qd${SEQ_IODEPTH}:read:1M:${SEQ_IODEPTH}:MB/s"
    "seq-write-1M-qd${SEQ_IODEPTH}:write:1M:${SEQ_IODEPTH}:MB/s"
    "rand-read-4k-qd1:randread:4k:1:IOPS"
    "rand-read-4k-qd16:randread:4k:16:IOPS"
    "rand-write-4k-qd1:randwrite:4k:1:IOPS"
    "rand-write-4k-qd16:randwrite:4k:16:IOPS"
)
TARGETS=(direct vstorfs qsd)

# The helpers both benchmarks share.
# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]
Benchmark a vstorfs volume against its backend file and against
qemu-storage-daemon's FUSE export of the same file (fio, libaio, direct=1).

Options:
  --dir DIR          where the domain's data lives (default: $DIR);
                     try once on a disk and once under /dev/shm
  --runtime S        seconds per fio run (default: $RUNTIME)
  --repeat N         runs per workload and target, median reported
                     (default: $REPEAT)
  --size SIZE        volume size, as for truncate/fio (default: $SIZE)
  --vstorfs PATH     the vstorfs binary (default: vstorfs in PATH; without
                     one, only the direct and qsd columns are measured)
  --vstorfs-args STR extra vstorfs options, e.g. "--threads=4"
  --json FILE        also write the results to FILE as JSON (built by jq)
  --passthrough      serve the volume by kernel FUSE passthrough
                     (-o passthrough=on) and run the 4 KiB random
                     workloads only
  --quick            runtime 3, repeat 1: a smoke run
  -h, --help         print this help

Workloads: 1 MiB sequential read and write at iodepth $SEQ_IODEPTH (MB/s);
4 KiB random read and write at iodepth 1 and 16 (IOPS).
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
        --quick) RUNTIME=3; REPEAT=1; shift ;;
        --passthrough) PASSTHROUGH=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
        esac
    done
    [[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || usage_error "--runtime: not a number"
    [[ $REPEAT =~ ^[1-9][0-9]*$ ]] || usage_error "--repeat: not a number"
    [[ $SIZE =~ ^[1-9][0-9]*[KMGT]?$ ]] || usage_error "--size: bad size"
    [[ -z $PASSTHROUGH ]] || use_passthrough
}

# --passthrough: the option, and the random workloads only.
use_passthrough() {
    local spec kept=()
    VSTORFS_ARGS+="${VSTORFS_ARGS:+ }-o passthrough=on"
    for spec in "${WORKLOADS[@]}"; do
        [[ $spec == rand-* ]] && kept+=("$spec")
    done
    WORKLOADS=("${kept[@]}")
}

# The volume's opens must be passthrough, or the figures mean nothing.
check_passthrough() {
    local state
    grep -q 'kernel FUSE passthrough is on' "$WORK/vstorfs.log" ||
        die "vstorfs did not get kernel FUSE passthrough (see its log)"
    exec 9<"$VOLUME_DATA"
    state=$(getfattr --absolute-names --only-values \
        -n user.vstor.passthrough "${VOLUME_DATA%/data}")
    exec 9<&-
    [[ $state == on* ]] || die "the volume's open is not passthrough ($state)"
    echo "vstorfs: the volume is open by kernel FUSE passthrough" >&2
}

check_tools() {
    if [[ $EUID -ne 0 ]]; then
        echo "$PROG: SKIP: FUSE mounts need root" >&2
        exit 77
    fi
    local t
    for t in fio jq qemu-storage-daemon fusermount3 getfattr findmnt; do
        command -v "$t" >/dev/null || die "$t not found (install it)"
    done
    [[ -e /dev/fuse ]] || die "/dev/fuse is missing"
    if [[ -z $VSTORFS ]]; then
        VSTORFS=$(command -v vstorfs || true)
    elif [[ ! -x $VSTORFS ]]; then
        die "$VSTORFS: not an executable"
    fi
    if [[ -z $VSTORFS ]]; then
        echo "$PROG: no vstorfs binary: measuring direct and qsd only" >&2
    fi
}

# ---- state and cleanup -------------------------------------------------

WORK=
MNT=
VSTORFS_PID=
QSD_PID=
QSD_FILE=
BACKEND=

cleanup() {
    local rc=$?
    set +e
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

start_qsd() {
    local pidfile=$WORK/qsd.pid
    rm -f "$pidfile"
    qemu-storage-daemon \
        --blockdev "driver=file,node-name=f,filename=$BACKEND,aio=native,cache.direct=on" \
        --blockdev driver=raw,node-name=r,file=f \
        --export "type=fuse,id=e,node-name=r,mountpoint=$QSD_FILE,writable=on" \
        --pidfile "$pidfile" 2>"$WORK/qsd.log" &
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

# Create the volume through vstorfs, fill it, find the file behind it.
prepare_vstorfs_volume() {
    local vol=$MNT/bench/img/vol
    mkdir "$MNT/bench" "$MNT/bench/img" "$vol"
    truncate -s "$SIZE" "$vol/data"
    fill "$vol/data"
    local backend object
    backend=$(getfattr --absolute-names --only-values -n user.vstor.backend "$vol")
    object=$(getfattr --absolute-names --only-values -n user.vstor.object "$vol")
    [[ $backend == dir:* ]] || die "$vol: backend '$backend' is not dir:"
    BACKEND=${backend#dir:}/$object
    [[ -f $BACKEND ]] || die "$vol: backend file $BACKEND is missing"
    # The backend file must hold what the volume holds.
    cmp -n 1048576 "$vol/data" "$BACKEND" ||
        die "$vol: $BACKEND does not hold the volume's bytes"
    VOLUME_DATA=$vol/data
}

# Without vstorfs: a plain backend file of the same size and content.
prepare_plain_file() {
    BACKEND=$WORK/backend.raw
    truncate -s "$SIZE" "$BACKEND"
    fill "$BACKEND"
}

fill() {
    echo "filling $1 ($SIZE)" >&2
    run_fio --name=fill --filename="$1" --rw=write --bs=1M --iodepth=16 \
        --size="$SIZE" --output=/dev/null >/dev/null ||
        die "$1: filling failed"
}

# ---- measuring -------------------------------------------------------

declare -A SAMPLES=() # "workload|target" -> space-separated values

# Run one workload once on FILE; print its figure (MB/s or IOPS).
measure_once() {
    local spec=$1 file=$2 name rw bs qd unit
    IFS=: read -r name rw bs qd unit <<<"$spec"
    local out=$WORK/fio-$name.json
    run_fio --name="$name" --filename="$file" --rw="$rw" --bs="$bs" \
        --iodepth="$qd" --size="$SIZE" --time_based --runtime="$RUNTIME" \
        --output-format=json --output="$out" >/dev/null ||
        die "$file: fio $name failed"
    local dir=read
    [[ $rw == *write ]] && dir="write"
    if [[ $unit == IOPS ]]; then
        jq -r ".jobs[0].$dir.iops | floor" "$out"
    else
        jq -r ".jobs[0].$dir.bw_bytes / 1000000 | . * 10 | floor / 10" "$out"
    fi
}

# Measure every workload REPEAT times on FILE as TARGET.
measure_target() {
    local target=$1 file=$2 spec name r v
    for spec in "${WORKLOADS[@]}"; do
        name=${spec%%:*}
        for ((r = 1; r <= REPEAT; r++)); do
            v=$(measure_once "$spec" "$file")
            printf '  %-8s %-20s run %d: %s\n' "$target" "$name" "$r" "$v" >&2
            SAMPLES["$name|$target"]+="$v "
        done
    done
}

# ---- reporting ---------------------------------------------------------

declare -A MEDIAN=()

summarize() {
    local spec name t
    for spec in "${WORKLOADS[@]}"; do
        name=${spec%%:*}
        for t in "${TARGETS[@]}"; do
            MEDIAN["$name|$t"]=$(median "${SAMPLES["$name|$t"]:-}")
        done
    done
}

print_table() {
    local fmt='%-20s %-5s %10s %10s %10s %14s %12s\n' spec name unit d v q
    printf '\nfio, libaio, direct=1, %s s per run, median of %d; size %s; dir %s\n' \
        "$RUNTIME" "$REPEAT" "$SIZE" "$DIR"
    printf 'sequential: 1 MiB at iodepth %d; random: 4 KiB at iodepth 1 and 16\n\n' \
        "$SEQ_IODEPTH"
    # shellcheck disable=SC2059 # the format is ours
    printf "$fmt" workload unit direct vstorfs qsd vstorfs/direct vstorfs/qsd
    for spec in "${WORKLOADS[@]}"; do
        IFS=: read -r name _ _ _ unit <<<"$spec"
        d=${MEDIAN["$name|direct"]}
        v=${MEDIAN["$name|vstorfs"]}
        q=${MEDIAN["$name|qsd"]}
        # shellcheck disable=SC2059
        printf "$fmt" "$name" "$unit" "$d" "$v" "$q" "$(ratio "$v" "$d")" \
            "$(ratio "$v" "$q")"
    done
}

# One workload's results as a JSON object.
workload_json() {
    local spec=$1 name rw bs qd unit
    IFS=: read -r name rw bs qd unit <<<"$spec"
    local d=${MEDIAN["$name|direct"]} v=${MEDIAN["$name|vstorfs"]}
    local q=${MEDIAN["$name|qsd"]}
    jq -n --arg name "$name" --arg rw "$rw" --arg bs "$bs" \
        --argjson iodepth "$qd" --arg unit "$unit" \
        --arg d "$d" --arg v "$v" --arg q "$q" \
        --arg vd "$(ratio "$v" "$d")" --arg vq "$(ratio "$v" "$q")" \
        --arg sd "${SAMPLES["$name|direct"]:-}" \
        --arg sv "${SAMPLES["$name|vstorfs"]:-}" \
        --arg sq "${SAMPLES["$name|qsd"]:-}" '
        def num: if . == "-" then null else tonumber end;
        def nums: [splits(" +") | select(length > 0) | tonumber];
        {workload: $name, rw: $rw, bs: $bs, iodepth: $iodepth, unit: $unit,
         direct: ($d | num), vstorfs: ($v | num), qsd: ($q | num),
         "vstorfs/direct": ($vd | num), "vstorfs/qsd": ($vq | num),
         samples: {direct: ($sd | nums), vstorfs: ($sv | nums),
                   qsd: ($sq | nums)}}'
}

write_json() {
    local spec
    for spec in "${WORKLOADS[@]}"; do
        workload_json "$spec"
    done | jq -s --arg dir "$DIR" --arg size "$SIZE" \
        --argjson runtime "$RUNTIME" --argjson repeat "$REPEAT" \
        --arg fio "$(fio --version)" --arg kernel "$(uname -r)" \
        --arg qsd "$(qemu-storage-daemon --version | head -n 1)" \
        --arg vstorfs "${VSTORFS:-}" --arg vargs "$VSTORFS_ARGS" \
        --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
        {date: $date, dir: $dir, size: $size, runtime: $runtime,
         repeat: $repeat, engine: "libaio", direct: true,
         fio: $fio, kernel: $kernel, qemu_storage_daemon: $qsd,
         vstorfs: (if $vstorfs == "" then null else $vstorfs end),
         vstorfs_args: $vargs, results: .}' >"$JSON_OUT"
    echo "results written to $JSON_OUT" >&2
}

# ---- main ------------------------------------------------------------------

main() {
    parse_args "$@"
    check_tools
    mkdir -p "$DIR"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    WORK=$(mktemp -d "$DIR/run.XXXXXX")
    MNT=$WORK/mnt
    QSD_FILE=$WORK/qsd-export
    VOLUME_DATA=

    if [[ -n $VSTORFS ]]; then
        echo "vstorfs: $VSTORFS $VSTORFS_ARGS" >&2
        start_vstorfs
        prepare_vstorfs_volume
        [[ -z $PASSTHROUGH ]] || check_passthrough
        measure_target vstorfs "$VOLUME_DATA"
        # From here on only the backend file is used: vstorfs goes away so
        # that it never runs at the same time as another target.
        stop_vstorfs
    else
        prepare_plain_file
    fi
    measure_target direct "$BACKEND"
    : >"$QSD_FILE"
    start_qsd
    measure_target qsd "$QSD_FILE"
    stop_qsd

    summarize
    print_table
    [[ -z $JSON_OUT ]] || write_json
}

main "$@"
