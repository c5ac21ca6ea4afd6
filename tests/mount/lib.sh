# Shared harness for the mount tests: source it first thing in every script.
#
# What it gives a test:
#   - TAP on the original stdout (fd 3); everything the test runs writes to
#     stderr, so meson sees one "ok N - ..." line per check and the plan at
#     the end.  The script exits non-zero when a check failed.
#   - requires CMD...          skip (TAP "1..0 # SKIP") when a tool is missing
#   - a private directory $T (mktemp under /var/tmp, a real disk file system:
#     O_DIRECT bugs hide on tmpfs) with $DATA (the data dir), $MNT (the mount
#     point) and $LOG (the daemon's stderr)
#   - start_vstorfs [DATA_DIR] [ARGS...], stop_vstorfs, kill9_vstorfs
#   - checks: ok, not_ok, check, check_fails, assert_eq, assert_num,
#     assert_match, expect_errno, refused, log_has, log_gained, fail, bail
#   - vsys OP ARGS...: one system call through python3, printing "OK [value]"
#     or the errno's name, so tests can assert the exact errno
#   - a trap on EXIT that closes what the test holds open, kills what it
#     started (by PID), unmounts, removes $T and prints the plan.
#
# Environment: VSTORFS (the daemon; found in a build dir when unset), VSTOR
# (the vstor tool, optional), BUILD_DIR.

set -u
set -o pipefail

exec 3>&1 1>&2

TEST_NAME=$(basename "${0%.sh}")
TAP_N=0
TAP_FAILED=0
VSTORFS_PID=
VSTORFS_STATUS=
BG_PIDS=()
HELD_FDS=()
T=
LOG_MARK=0

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || echo python3)

# ---------------------------------------------------------------------------
# TAP

_tap_clean() {
    printf '%s' "$*" | tr -c '[:print:]' '?' | sed 's/#/no./g'
}

diag() {
    local line
    while IFS= read -r line; do
        printf '# %s\n' "$(_tap_clean "$line")" >&3
    done <<<"$*"
}

ok() {
    TAP_N=$((TAP_N + 1))
    printf 'ok %d - %s\n' "$TAP_N" "$(_tap_clean "$1")" >&3
}

# not_ok DESC [DIAGNOSTIC...]: a failed check; the diagnostic goes to stderr
# (shown by meson --print-errorlogs) and as TAP comments.
not_ok() {
    local desc=$1
    shift
    TAP_N=$((TAP_N + 1))
    TAP_FAILED=$((TAP_FAILED + 1))
    printf 'not ok %d - %s\n' "$TAP_N" "$(_tap_clean "$desc")" >&3
    echo "FAILED: $desc"
    if [ $# -gt 0 ]; then
        printf '  %s\n' "$@"
        diag "$*"
    fi
}

fail() {
    not_ok "$@"
}

skip_check() {
    TAP_N=$((TAP_N + 1))
    printf 'ok %d - %s # SKIP %s\n' "$TAP_N" "$(_tap_clean "$1")" \
        "$(_tap_clean "$2")" >&3
}

# bail REASON: stop the whole test (daemon did not start, setup failed).
bail() {
    printf 'Bail out! %s\n' "$(_tap_clean "$*")" >&3
    echo "BAIL OUT: $*"
    show_log
    TAP_FAILED=$((TAP_FAILED + 1))
    exit 1
}

# check DESC CMD...: ok when CMD succeeds.
check() {
    local desc=$1 rc=0
    shift
    "$@" || rc=$?
    if [ $rc -eq 0 ]; then
        ok "$desc"
    else
        not_ok "$desc" "command failed (status $rc): $*"
    fi
    return $rc
}

# check_fails DESC CMD...: ok when CMD fails.
check_fails() {
    local desc=$1
    shift
    if "$@"; then
        not_ok "$desc" "command succeeded, expected failure: $*"
        return 1
    fi
    ok "$desc"
}

# assert_eq EXPECTED GOT DESC
assert_eq() {
    if [ "$1" == "$2" ]; then
        ok "$3"
    else
        not_ok "$3" "expected: $1" "got:      $2"
        return 1
    fi
}

# assert_num A OP B DESC: integer comparison, OP one of lt le gt ge eq ne.
assert_num() {
    local a=$1 op=$2 b=$3 desc=$4
    if [[ ! $a =~ ^-?[0-9]+$ || ! $b =~ ^-?[0-9]+$ ]]; then
        not_ok "$desc" "not numbers: '$a' $op '$b'"
        return 1
    fi
    local r=1
    case $op in
    lt) [ "$a" -lt "$b" ] && r=0 ;;
    le) [ "$a" -le "$b" ] && r=0 ;;
    gt) [ "$a" -gt "$b" ] && r=0 ;;
    ge) [ "$a" -ge "$b" ] && r=0 ;;
    eq) [ "$a" -eq "$b" ] && r=0 ;;
    ne) [ "$a" -ne "$b" ] && r=0 ;;
    *) r=2 ;;
    esac
    if [ $r -eq 0 ]; then
        ok "$desc"
    else
        not_ok "$desc" "expected $a $op $b"
        return 1
    fi
}

# assert_match ERE STRING DESC
assert_match() {
    if [[ $2 =~ $1 ]]; then
        ok "$3"
    else
        not_ok "$3" "expected to match: $1" "got: $2"
        return 1
    fi
}

# within_pct A B PCT: A and B differ by at most PCT percent of B.
within_pct() {
    local a=$1 b=$2 pct=$3 d
    d=$((a > b ? a - b : b - a))
    [ $((d * 100)) -le $((b * pct)) ]
}

finish() {
    local rc=$?
    trap - EXIT
    cleanup
    if [ $TAP_FAILED -gt 0 ] || [ $rc -ne 0 ]; then
        printf '1..%d\n' "$TAP_N" >&3
        echo "$TEST_NAME: $TAP_FAILED check(s) failed (exit status $rc)"
        exit 1
    fi
    printf '1..%d\n' "$TAP_N" >&3
    exit 0
}

# ---------------------------------------------------------------------------
# Requirements

_skip_all() {
    printf '1..0 # SKIP %s\n' "$(_tap_clean "$*")" >&3
    echo "SKIP: $*"
    # Under meson's TAP protocol a non-zero status is an error: the skip
    # plan says it all.  Run by hand, use the autotools convention.
    [ -n "${VSTORFS_TAP:-}" ] && exit 0
    exit 77
}

# requires CMD...: skip the test when a tool is missing.
requires() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 ||
            _skip_all "missing tool '$c' (install its package)"
    done
}

_find_vstorfs() {
    local here c
    if [ -n "${VSTORFS:-}" ]; then
        return 0
    fi
    here=$(cd "$(dirname "$0")/../.." && pwd)
    for c in "${BUILD_DIR:-/nonexistent}/fs/vstorfs" "$here"/build*/fs/vstorfs; do
        if [ -x "$c" ]; then
            VSTORFS=$c
            return 0
        fi
    done
    return 1
}

_lib_init() {
    _find_vstorfs || _skip_all "no vstorfs binary: set VSTORFS"
    [ -x "$VSTORFS" ] || _skip_all "VSTORFS=$VSTORFS is not executable"
    VSTOR=${VSTOR:-}
    [ "$(id -u)" -eq 0 ] || _skip_all "mount tests run as root"
    [ -c /dev/fuse ] || _skip_all "no /dev/fuse"
    requires findmnt fusermount3 "$PY" mktemp stat dd cmp
    T=$(mktemp -d "/var/tmp/vstorfs-$TEST_NAME.XXXXXX") ||
        bail "cannot create a temporary directory under /var/tmp"
    # Others may pass through (not list) to reach the mount point: tests
    # open the mount as other users, like QEMU as libvirt-qemu.
    chmod 0711 "$T"
    DATA=$T/data
    MNT=$T/mnt
    LOG=$T/vstorfs.log
    mkdir -p "$DATA" "$MNT"
    : >"$LOG"
    trap finish EXIT
    trap 'exit 130' INT TERM
    diag "vstorfs: $VSTORFS"
    diag "temp dir: $T"
}

# ---------------------------------------------------------------------------
# The daemon

is_mounted() {
    [ "$(findmnt -n -o FSTYPE --mountpoint "${1:-$MNT}" 2>/dev/null)" \
        == "fuse.vstorfs" ]
}

# Any mount at all (a dead FUSE mount still shows up here).
any_mount() {
    findmnt -n --mountpoint "${1:-$MNT}" >/dev/null 2>&1
}

show_log() {
    [ -n "$T" ] && [ -s "${LOG:-/nonexistent}" ] || return 0
    echo "----- last lines of the vstorfs log ($LOG) -----"
    tail -n 60 "$LOG"
    echo "-----"
}

# try_start_vstorfs [DATA_DIR] [ARGS...]: start the daemon in the
# foreground (background job) and wait up to 10 s for the mount.  Returns 0
# when mounted, 1 when the daemon exited (status in VSTORFS_STATUS), 2 when
# it neither mounted nor exited in time.
try_start_vstorfs() {
    local dir=$DATA i
    if [ $# -gt 0 ] && [ "${1#-}" == "$1" ]; then
        dir=$1
        shift
    fi
    echo "=== start: $VSTORFS -f $dir $MNT $*" >>"$LOG"
    # Bash starts background jobs with SIGINT and SIGQUIT ignored (and a
    # suite run under nohup has SIGHUP ignored), and libfuse leaves an
    # ignored signal alone: restore the defaults that a daemon started by
    # systemd or a terminal has.
    "$PY" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$VSTORFS" -f "$dir" "$MNT" "$@" \
        </dev/null >>"$LOG" 2>&1 &
    VSTORFS_PID=$!
    VSTORFS_STATUS=
    # a start rescans every record: thousands of volumes under a sanitizer
    # take seconds
    for ((i = 0; i < ${VSTORFS_MOUNT_WAIT:-60} * 10; i++)); do
        if is_mounted; then
            return 0
        fi
        if ! kill -0 "$VSTORFS_PID" 2>/dev/null; then
            wait "$VSTORFS_PID"
            VSTORFS_STATUS=$?
            VSTORFS_PID=
            return 1
        fi
        sleep 0.1
    done
    return 2
}

# start_vstorfs [DATA_DIR] [ARGS...]: like try_start_vstorfs, but a daemon
# that does not mount ends the test with its log shown.
start_vstorfs() {
    local rc=0
    try_start_vstorfs "$@" || rc=$?
    case $rc in
    0) return 0 ;;
    1) bail "vstorfs exited with status $VSTORFS_STATUS before mounting $MNT" ;;
    *) bail "vstorfs did not mount $MNT within ${VSTORFS_MOUNT_WAIT:-60} s" ;;
    esac
}

# wait_child PID SECONDS: wait up to SECONDS for a background child to exit;
# its exit status goes to WAIT_STATUS.  Returns 1 on timeout.
wait_child() {
    local pid=$1 secs=$2 i
    WAIT_STATUS=
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            WAIT_STATUS=$?
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# stop_vstorfs: unmount with fusermount3 -u (retrying while busy), wait for
# the daemon to exit and check it exited 0.
stop_vstorfs() {
    local i rc=1
    for ((i = 0; i < 50; i++)); do
        if fusermount3 -u "$MNT" 2>>"$T/fusermount.err"; then
            rc=0
            break
        fi
        is_mounted || break
        sleep 0.1
    done
    if [ $rc -ne 0 ] && is_mounted; then
        not_ok "unmount $MNT" "$(tail -n 3 "$T/fusermount.err")"
        fusermount3 -u -z "$MNT" 2>/dev/null
    fi
    [ -n "$VSTORFS_PID" ] || return 0
    if wait_child "$VSTORFS_PID" 10; then
        VSTORFS_STATUS=$WAIT_STATUS
        VSTORFS_PID=
        assert_eq 0 "$VSTORFS_STATUS" "vstorfs exits with status 0 after unmount"
        return
    fi
    not_ok "vstorfs exits within 10 s of the unmount"
    kill -9 "$VSTORFS_PID" 2>/dev/null
    wait "$VSTORFS_PID" 2>/dev/null
    VSTORFS_PID=
    return 1
}

# kill9_vstorfs: SIGKILL the daemon and clear its dead mount.
kill9_vstorfs() {
    if [ -n "$VSTORFS_PID" ]; then
        kill -9 "$VSTORFS_PID" 2>/dev/null
        wait "$VSTORFS_PID" 2>/dev/null
        VSTORFS_PID=
    fi
    echo "=== killed with SIGKILL" >>"$LOG"
    if any_mount; then
        fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
    fi
    ! any_mount
}

# bg CMD...: start CMD in the background and remember its PID (BG_PID) so
# the cleanup kills it.
bg() {
    "$@" &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

# hold_open PATH: another process (sleep) keeps PATH open read-only; its PID
# is HOLD_PID.  release_hold ends it.
hold_open() {
    # The redirection must be on the background command itself: bash gives
    # an asynchronous command without one /dev/null as its stdin.
    # shellcheck disable=SC2217 # sleep only has to hold the file open
    sleep 600 <"$1" &
    HOLD_PID=$!
    BG_PIDS+=("$HOLD_PID")
    local i
    for ((i = 0; i < 50; i++)); do
        [ "$(readlink "/proc/$HOLD_PID/fd/0")" == "$1" ] && return 0
        sleep 0.1
    done
    echo "hold_open: $1 is not open in PID $HOLD_PID"
    return 1
}

release_hold() {
    kill "$HOLD_PID" 2>/dev/null
    wait "$HOLD_PID" 2>/dev/null
    HOLD_PID=
}

cleanup() {
    local p fd
    for fd in "${HELD_FDS[@]}"; do
        eval "exec $fd>&-" 2>/dev/null
    done
    for p in "${BG_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ -n "$T" ] && any_mount; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null ||
            umount -l "$MNT" 2>/dev/null
    fi
    if [ -n "$VSTORFS_PID" ]; then
        wait_child "$VSTORFS_PID" 5 || {
            kill -9 "$VSTORFS_PID" 2>/dev/null
            wait "$VSTORFS_PID" 2>/dev/null
        }
    fi
    cleanup_extra 2>/dev/null
    [ -n "$T" ] && [ -d "$T" ] || return 0
    if [ $TAP_FAILED -gt 0 ]; then
        show_log
    fi
    # Never recurse into something still mounted.
    if findmnt -n -o TARGET -l | grep -qF "$T/"; then
        echo "not removing $T: something below it is still mounted"
        return 0
    fi
    rm -rf --one-file-system "$T"
}

# A test may define cleanup_extra for its own resources.
cleanup_extra() {
    :
}

# ---------------------------------------------------------------------------
# The daemon's log

log_lines() {
    wc -l <"$LOG"
}

log_mark() {
    LOG_MARK=$(log_lines)
}

# log_has ERE: the log has a matching line (case-insensitive).
log_has() {
    grep -aEqi -- "$1" "$LOG"
}

# log_gained [ERE]: since log_mark, the log gained a line (matching ERE).
# Polls for up to 2 s: the daemon may log after it replied.
log_gained() {
    local re=${1:-.} i
    for ((i = 0; i < 20; i++)); do
        if log_new_lines | grep -aEqi -- "$re"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# The daemon's lines since log_mark (without the harness's "===" lines).
log_new_lines() {
    tail -n +$((LOG_MARK + 1)) "$LOG" | grep -av '^=== '
}

# ---------------------------------------------------------------------------
# System calls with exact errnos

IFS= read -r -d '' VSYS_PY <<'EOF'
import ctypes, errno, os, stat, sys
op, a = sys.argv[1], sys.argv[2:]
def flags(s):
    f = 0
    for w in s.split('|'):
        f |= getattr(os, w)
    return f
def fallocate(path, mode, off, length):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                               ctypes.c_int64]
    fd = os.open(path, os.O_RDWR)
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    os.close(fd)
r = None
try:
    if op == 'mkdir':
        os.mkdir(a[0], 0o755)
    elif op == 'rmdir':
        os.rmdir(a[0])
    elif op == 'unlink':
        os.unlink(a[0])
    elif op == 'rename':
        os.rename(a[0], a[1])
    elif op == 'link':
        os.link(a[0], a[1])
    elif op == 'symlink':
        os.symlink(a[0], a[1])
    elif op == 'mknod':
        os.mknod(a[0], 0o600 | stat.S_IFREG)
    elif op == 'mkfifo':
        os.mkfifo(a[0], 0o600)
    elif op == 'open':
        os.close(os.open(a[0], flags(a[1]), 0o600))
    elif op == 'truncate':
        os.truncate(a[0], int(a[1]))
    elif op == 'ftruncate':
        fd = os.open(a[0], os.O_WRONLY)
        os.ftruncate(fd, int(a[1]))
        os.close(fd)
    elif op == 'getxattr':
        r = os.getxattr(a[0], a[1], follow_symlinks=False).decode(
            'utf-8', 'replace')
    elif op == 'setxattr':
        os.setxattr(a[0], a[1], os.fsencode(a[2]), follow_symlinks=False)
    elif op == 'removexattr':
        os.removexattr(a[0], a[1], follow_symlinks=False)
    elif op == 'chmod':
        os.chmod(a[0], int(a[1], 8))
    elif op == 'listxattr':
        r = ' '.join(sorted(os.listxattr(a[0], follow_symlinks=False)))
    elif op == 'fallocate':
        m = {'0': 0, 'keep': 1, 'punch': 3, 'zero': 16, 'zerokeep': 17}
        fallocate(a[0], m[a[1]], int(a[2]), int(a[3]))
    elif op == 'seek':
        fd = os.open(a[0], os.O_RDONLY)
        r = os.lseek(fd, int(a[2]), getattr(os, a[1]))
        os.close(fd)
    else:
        print('BADOP')
        sys.exit(2)
    print('OK' if r is None else 'OK ' + str(r))
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF

# vsys OP ARGS...: run one system call; prints "OK", "OK value" or the errno
# name (ENOENT ...).  OPs: mkdir rmdir unlink rename link symlink mknod
# mkfifo open(PATH FLAGS, e.g. O_WRONLY|O_CREAT) truncate ftruncate getxattr
# setxattr removexattr listxattr fallocate(PATH 0|keep|punch|zero OFF LEN)
# seek(PATH SEEK_DATA|SEEK_HOLE OFF).
vsys() {
    "$PY" -c "$VSYS_PY" "$@"
}

# vsys_value OP ARGS...: the value of a successful call, or fail.
vsys_value() {
    local out
    out=$(vsys "$@")
    [ "${out%% *}" == OK ] || return 1
    printf '%s\n' "${out#OK }"
}

# expect_errno ERRNO OP ARGS...: the call fails with exactly ERRNO
# (ENOTSUP and EOPNOTSUPP are one number on Linux).
expect_errno() {
    local want=$1 got
    shift
    got=$(vsys "$@")
    got=${got%% *}
    [ "$want" == EOPNOTSUPP ] && want=ENOTSUP
    if [ "$got" == "$want" ]; then
        ok "$* fails with $want"
    else
        not_ok "$* fails with $want" "expected $want, got $got"
        return 1
    fi
}

# ---------------------------------------------------------------------------
# Refused requests: exact errno, a log line, nothing changed

# What a refused request must not change: the tree (names, types, sizes,
# modes) and the data dir's domains (names and sizes).
snapshot() {
    {
        find "$MNT" -printf '%P %y %s %m\n' 2>&1 | LC_ALL=C sort
        echo ---
        find "$DATA/domains" -printf '%P %y %s\n' 2>&1 | LC_ALL=C sort
    }
}

# The word a daemon's log line uses for the request behind each vsys OP.
_request_word() {
    case $1 in
    open) echo 'create|open' ;;
    mknod | mkfifo) echo 'mknod|create' ;;
    truncate | ftruncate) echo 'truncate|setattr' ;;
    *) echo "$1" ;;
    esac
}

# refused ERRNO OP ARGS...: expect_errno; then the daemon's log gained a line
# naming the request, and that line names the object (its path's last
# component; not checked for the root or unprintable names); and the tree
# and the data dir are unchanged.  Set REFUSED_NOLOG=reason to skip the log
# checks for a request the kernel answers itself.
refused() {
    local want=$1 before after base='' a word i lines
    shift
    before=$(snapshot)
    log_mark
    expect_errno "$want" "$@"
    for a in "${@:2}"; do
        if [ "${a#"$MNT"}" != "$a" ]; then
            base=$a
            break
        fi
    done
    [ "$base" == "$MNT" ] || base=$(basename "$base")
    word=$(_request_word "$1")
    if [ -n "${REFUSED_NOLOG:-}" ]; then
        skip_check "the daemon logged the refused $1" "$REFUSED_NOLOG"
    else
        for ((i = 0; i < 10; i++)); do
            lines=$(log_new_lines)
            [ -n "$lines" ] && break
            sleep 0.1
        done
        if grep -aEqi -- "$word" <<<"$lines" && [ "$(wc -l <<<"$lines")" -eq 1 ]; then
            ok "the daemon logged the refused $1 in one line ($*)"
        elif grep -aEqi -- "$word" <<<"$lines"; then
            not_ok "the daemon logged the refused $1 in one line ($*)" \
                "$(wc -l <<<"$lines") new lines: $lines"
        else
            not_ok "the daemon logged the refused $1 in one line ($*)" \
                "no new log line naming the request ($word); new lines: ${lines:-none}"
        fi
        if [ -z "$lines" ] || [ "$base" == "$MNT" ] ||
            [[ ! $base =~ ^[[:alnum:]._-]+$ ]]; then
            :
        elif grep -aqF -- "$base" <<<"$lines"; then
            ok "the log line names the path ($base)"
        else
            not_ok "the log line names the path ($base)" "new lines: $lines"
        fi
    fi
    after=$(snapshot)
    if [ "$before" == "$after" ]; then
        ok "nothing changed after: $*"
    else
        not_ok "nothing changed after: $*" \
            "$(diff <(echo "$before") <(echo "$after") | head -n 20)"
    fi
}

# ---------------------------------------------------------------------------
# Helpers on the tree

# xget PATH NAME: an xattr's value (empty and status 1 when it fails).
xget() {
    getfattr --absolute-names --only-values -n "$2" "$1" 2>/dev/null
}

fsize() {
    stat -c %s "$1"
}

# du_bytes PATH: the allocated bytes (st_blocks * 512).
du_bytes() {
    echo $(($(stat -c %b "$1") * 512))
}

# pattern BYTE COUNT_MIB: COUNT MiB of BYTE (e.g. 0xab) to stdout.
pattern() {
    local oct
    oct=$(printf '%03o' "$1")
    head -c "$(($2 * 1048576))" /dev/zero | tr '\000' "\\$oct"
}

# region FILE OFFSET_MIB COUNT_MIB: the bytes of FILE in that region.
region() {
    dd if="$1" bs=1M skip="$2" count="$3" status=none
}

# same_region FILE OFFSET_MIB COUNT_MIB REF: the region equals file REF.
same_region() {
    cmp -s <(region "$1" "$2" "$3") "$4"
}

UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
ISO_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'

# tree_listing ROOT: the tree with types, sizes and uuids, one line a node.
tree_listing() {
    local root=${1:-$MNT} p
    find "$root" -mindepth 1 -printf '%P %y %s\n' | LC_ALL=C sort |
        while read -r p rest; do
            printf '%s %s %s\n' "$p" "$rest" "$(xget "$root/$p" user.vstor.uuid)"
        done
}

# data_sums ROOT: md5 of every data file.
data_sums() {
    local root=${1:-$MNT}
    (cd "$root" && find . -name data -type f | LC_ALL=C sort | xargs -r md5sum)
}

_lib_init
