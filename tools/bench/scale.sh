#!/bin/bash
# scale.sh: how vstorfs copes with many volumes (issue 8, "bounded
# resources").  Not a test: it prints figures.
#
# For each N given (default: 1000 10000) it starts vstorfs on a fresh data
# directory under --dir (a tmpfs: the metadata writes of the mkdirs are
# not what is measured), makes N volumes in one domain, spread over images
# of --per-image volumes (default 10000), and measures:
#   create     the mkdirs of the N volumes (python os.mkdir, one client)
#   ls -l      `ls -l` of the first image (up to --per-image volumes), and
#              `ls -l` of every data file in it (a stat of each volume)
#   vstor ls   `vstor ls --json` of the whole mount (and that it lists N)
#   rebuild    the catalog deleted with the daemon stopped, then the start
#              that rebuilds it from the domains, until the mount is up
#   fds, RSS   the daemon's open descriptors (/proc/PID/fd) and resident
#              memory (VmRSS) after each step
# 100000 takes minutes and a few GiB of tmpfs; the machine should be quiet.
# Needs root (FUSE mounts), python3, jq and fusermount3.
set -euo pipefail

PROG=${0##*/}
DIR=/dev/shm/vstorfs-scale
PER_IMAGE=10000
VSTORFS=
VSTOR=

# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [OPTIONS] [N...]
Make N volumes (default: 1000 10000) and time create, ls -l, vstor ls and a
catalog rebuild; report the daemon's descriptors and RSS.

  --dir DIR         work directory, on a tmpfs (default $DIR)
  --per-image N     volumes per image (default $PER_IMAGE)
  --vstorfs PATH    the daemon (default: build/fs/vstorfs, or in PATH)
  --vstor PATH      the vstor tool (default: beside the daemon's build)
  -h, --help        this help
USAGE
}

COUNTS=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --dir) need_arg "$@"; DIR=$2; shift 2 ;;
    --per-image) need_arg "$@"; PER_IMAGE=$2; shift 2 ;;
    --vstorfs) need_arg "$@"; VSTORFS=$2; shift 2 ;;
    --vstor) need_arg "$@"; VSTOR=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) usage_error "unknown option $1" ;;
    *) [[ $1 =~ ^[0-9]+$ ]] || usage_error "not a count: $1"
       COUNTS+=("$1"); shift ;;
    esac
done
[[ ${#COUNTS[@]} -gt 0 ]] || COUNTS=(1000 10000)

top=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -z $VSTORFS ]]; then
    VSTORFS=$top/build/fs/vstorfs
    [[ -x $VSTORFS ]] || VSTORFS=$(command -v vstorfs || true)
fi
[[ -x $VSTORFS ]] || die "no vstorfs: use --vstorfs"
if [[ -z $VSTOR ]]; then
    VSTOR=$(dirname "$(dirname "$VSTORFS")")/tools/vstor/vstor
    [[ -x $VSTOR ]] || VSTOR=$(dirname "$(dirname "$VSTORFS")")/tools/vstor
    [[ -x $VSTOR && ! -d $VSTOR ]] || VSTOR=$(command -v vstor || true)
fi
[[ -x $VSTOR ]] || die "no vstor: use --vstor"
[[ $(id -u) -eq 0 ]] || die "needs root (FUSE mounts)"

WORK=
MNT=
VSTORFS_PID=
QSD_PID=
QSD_FILE=

cleanup() {
    local rc=$?
    set +e
    stop_vstorfs
    if [[ $rc -ne 0 && -n $WORK && -s $WORK/vstorfs.log ]]; then
        echo "--- last lines of vstorfs.log:" >&2
        tail -n 20 "$WORK/vstorfs.log" >&2
    fi
    [[ -n $WORK && -d $WORK ]] && rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# Start the daemon on $WORK/data; STARTED_MS: the milliseconds until mounted.
start_daemon() {
    local t0 i
    t0=$(now_ms)
    "$VSTORFS" -f "$WORK/data" "$MNT" >/dev/null 2>>"$WORK/vstorfs.log" &
    VSTORFS_PID=$!
    for ((i = 0; i < 6000; i++)); do
        if [[ $(findmnt -n -o FSTYPE --mountpoint "$MNT" 2>/dev/null) == \
            fuse.vstorfs ]]; then
            STARTED_MS=$(($(now_ms) - t0))
            return 0
        fi
        kill -0 "$VSTORFS_PID" 2>/dev/null || die "vstorfs exited at start-up"
        sleep 0.01
    done
    die "vstorfs did not mount $MNT within 60 s"
}

fds() {
    find "/proc/$VSTORFS_PID/fd" -mindepth 1 -maxdepth 1 | wc -l
}

rss_mib() {
    awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$VSTORFS_PID/status"
}

# The milliseconds CMD... takes, its output thrown away.
time_ms() {
    local t0
    t0=$(now_ms)
    "$@" >/dev/null
    echo $(($(now_ms) - t0))
}

declare -A R

one_count() {
    local n=$1 t first
    WORK=$(mktemp -d "$DIR/scale.XXXXXX")
    MNT=$WORK/mnt
    mkdir -p "$WORK/data" "$MNT"
    start_daemon
    R[$n,fds0]=$(fds)
    R[$n,rss0]=$(rss_mib)
    mkdir "$MNT/dom"
    t=$(now_ms)
    python3 - "$MNT/dom" "$n" "$PER_IMAGE" <<'PY'
import os, sys
root, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    img = '%s/img%03d' % (root, i // per)
    if i % per == 0:
        os.mkdir(img)
    os.mkdir('%s/v%06d' % (img, i))
PY
    R[$n,create]=$(($(now_ms) - t))
    R[$n,fds1]=$(fds)
    R[$n,rss1]=$(rss_mib)
    first=$MNT/dom/img000
    R[$n,ls]=$(time_ms ls -l "$first")
    R[$n,lsdata]=$(time_ms find "$first" -mindepth 2 -name data -exec ls -l {} +)
    R[$n,fds2]=$(fds)
    R[$n,rss2]=$(rss_mib)
    t=$(now_ms)
    R[$n,listed]=$("$VSTOR" ls "$MNT" --json |
        jq '[.[] | select(.kind == "volume")] | length')
    R[$n,vstor]=$(($(now_ms) - t))
    R[$n,fds3]=$(fds)
    R[$n,rss3]=$(rss_mib)
    stop_vstorfs
    rm -f "$WORK/data"/catalog.db*
    start_daemon
    R[$n,rebuild]=$STARTED_MS
    R[$n,fds4]=$(fds)
    R[$n,rss4]=$(rss_mib)
    R[$n,lscold]=$(time_ms find "$first" -mindepth 2 -name data -exec ls -l {} +)
    R[$n,fds5]=$(fds)
    R[$n,rss5]=$(rss_mib)
    stop_vstorfs
    rm -rf --one-file-system "$WORK"
    WORK=
}

mkdir -p "$DIR"
[[ $(stat -f -c %T "$DIR") == tmpfs ]] ||
    echo "$PROG: warning: $DIR is not a tmpfs" >&2
for n in "${COUNTS[@]}"; do
    one_count "$n"
done

echo "vstorfs scale, $(nproc) CPUs, $DIR ($(stat -f -c %T "$DIR")), $PER_IMAGE volumes per image"
printf '%-8s %9s %9s %11s %9s %8s %9s %11s\n' volumes "create s" "ls -l ms" \
    "ls-l data" "vstor ms" listed "rebuild" "cold data"
for n in "${COUNTS[@]}"; do
    printf '%-8s %9s %9s %11s %9s %8s %9s %11s\n' "$n" \
        "$(awk -v m="${R[$n,create]}" 'BEGIN { printf "%.1f", m / 1000 }')" \
        "${R[$n,ls]}" "${R[$n,lsdata]}" "${R[$n,vstor]}" "${R[$n,listed]}" \
        "${R[$n,rebuild]}" "${R[$n,lscold]}"
done
echo
echo "the daemon's descriptors / RSS MiB: at start, after create, after ls -l,"
echo "after vstor ls, after the rebuild, after a cold ls -l of every data file"
for n in "${COUNTS[@]}"; do
    line="$n:"
    for s in 0 1 2 3 4 5; do
        line+="  ${R[$n,fds$s]}/${R[$n,rss$s]}"
    done
    echo "$line"
done
