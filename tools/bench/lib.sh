# Shared helpers of the benchmark scripts (bench-fuse.sh, bench-chain.sh).
# Sourced, not run, under `set -euo pipefail`.  Globals the caller sets:
# PROG (for messages), MNT with VSTORFS_PID (stop_vstorfs), and the
# QSD_PID and QSD_FILE (stop_qsd).

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROG: $*" >&2
    echo "Try '$PROG --help' for more information." >&2
    exit 2
}

need_arg() {
    [[ $# -ge 2 && -n $2 ]] || usage_error "option $1 needs a value"
}

is_mounted() {
    findmnt -n --mountpoint "$1" >/dev/null 2>&1
}

# Wait up to $2 seconds for process $1 to end; 0 if it ended.
wait_gone() {
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

stop_vstorfs() {
    [[ -n $VSTORFS_PID ]] || return 0
    if is_mounted "$MNT"; then
        fusermount3 -u "$MNT" || kill -TERM "$VSTORFS_PID" 2>/dev/null || true
    fi
    if ! wait_gone "$VSTORFS_PID" 10; then
        kill -TERM "$VSTORFS_PID" 2>/dev/null || true
        wait_gone "$VSTORFS_PID" 5 || kill -KILL "$VSTORFS_PID" 2>/dev/null || true
    fi
    wait "$VSTORFS_PID" 2>/dev/null || true
    VSTORFS_PID=
    if is_mounted "$MNT"; then
        fusermount3 -u -z "$MNT" || true
    fi
}

stop_qsd() {
    [[ -n $QSD_PID ]] || return 0
    kill -TERM "$QSD_PID" 2>/dev/null || true
    wait_gone "$QSD_PID" 10 || kill -KILL "$QSD_PID" 2>/dev/null || true
    wait "$QSD_PID" 2>/dev/null || true
    QSD_PID=
    if is_mounted "$QSD_FILE"; then
        fusermount3 -u -z "$QSD_FILE" || true
    fi
}

# fio with the options every run shares; the rest comes from the caller.
run_fio() {
    fio --ioengine=libaio --direct=1 --fallocate=none --invalidate=0 \
        --numjobs=1 --group_reporting "$@"
}

# The median of the numbers in $1 (mean of the middle two for even counts).
median() {
    [[ -n ${1// /} ]] || { echo -; return; }
    tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
            if (m == int(m)) printf "%d\n", m; else printf "%.1f\n", m }'
}

# A / B to two decimals, or "-" when either is unknown.
ratio() {
    if [[ $1 == - || $2 == - || -z $1 || -z $2 ]]; then
        echo -
    else
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "-" }'
    fi
}
