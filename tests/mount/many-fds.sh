#!/bin/bash
# Descriptors stay bounded when many volumes are opened, not only listed:
# the daemon runs with RLIMIT_NOFILE 256 (soft and hard: it raises its soft
# limit to the hard one), 1,500 volumes are made in one image, and every
# one is stat'ed, opened and read (which opens its chain), then listed with
# `ls -l` and `vstor ls --json`.  Chains that no handle holds must be closed
# when idle (max_idle_layers), so nothing fails with EMFILE, mkdir still
# works and the daemon's descriptor count stays below the limit throughout.
# The data dir is a tmpfs: the metadata writes of the mkdirs are not what
# this test is about.
. "$(dirname "$0")/lib.sh"
requires jq mount umount

N=1500
LIMIT=256

if [ -z "${VSTOR:-}" ]; then
    c=$(dirname "$(dirname "$VSTORFS")")/tools/vstor
    [ -x "$c" ] && VSTOR=$c
fi
[ -n "${VSTOR:-}" ] || bail "no vstor binary: set VSTOR"

cleanup_extra() {
    if findmnt -n --mountpoint "$DATA" >/dev/null 2>&1; then
        if any_mount; then
            fusermount3 -u -z "$MNT" 2>/dev/null
        fi
        umount "$DATA" || umount -l "$DATA"
    fi
}

mount -t tmpfs -o size=512m,mode=0755 vstorfs-test "$DATA" ||
    bail "cannot mount a tmpfs on $DATA"

# Everything started from here on (the daemon, vstor, python) has it: a
# hard limit of 256 and a soft one of half that, which the daemon raises.
ulimit -Sn $((LIMIT / 2)) && ulimit -Hn $LIMIT || bail "ulimit -n $LIMIT"
start_vstorfs

fds() {
    find "/proc/$VSTORFS_PID/fd" -mindepth 1 -maxdepth 1 | wc -l
}
MAXFDS=0
note_fds() {
    local n
    n=$(fds)
    [ "$n" -gt "$MAXFDS" ] && MAXFDS=$n
    diag "the daemon's open descriptors $1: $n"
}
# The highest count while WORK (a background job) runs, sampled.
watch_fds() {
    local pid=$1 n
    while kill -0 "$pid" 2>/dev/null; do
        n=$(fds)
        [ "$n" -gt "$MAXFDS" ] && MAXFDS=$n
        sleep 0.05
    done
    wait "$pid"
}

assert_eq "$LIMIT" "$(awk '/^Max open files/ {print $4}' "/proc/$VSTORFS_PID/limits")" \
    "the daemon raised its soft RLIMIT_NOFILE to the hard one"

I=$MNT/dom/img
check "mkdir a domain and an image" mkdir -p "$I"
start=$(date +%s%N)
"$PY" - "$I" "$N" >"$T/mkdir.out" <<'PYEOF' &
import os, sys
bad = 0
for i in range(int(sys.argv[2])):
    try:
        os.mkdir('%s/v%05d' % (sys.argv[1], i))
    except OSError as e:
        bad += 1
        print(e, file=sys.stderr)
print(bad)
PYEOF
watch_fds $!
assert_eq 0 "$(cat "$T/mkdir.out")" "mkdir of $N volumes: none failed"
diag "mkdir of $N volumes: $((($(date +%s%N) - start) / 1000000)) ms"
note_fds "after the mkdirs"

# stat, open and read a byte of every volume's data (each is 4 KiB, written
# through the mount first), holding no handle afterwards
"$PY" - "$I" "$N" >"$T/read.out" <<'PYEOF' &
import errno, os, sys
good = emfile = 0
for i in range(int(sys.argv[2])):
    d = '%s/v%05d/data' % (sys.argv[1], i)
    try:
        with open(d, 'r+b') as f:
            f.write(b'%05d' % i + b'\0' * 4091)
        os.stat(d)
        with open(d, 'rb') as f:
            if f.read(5) == b'%05d' % i:
                good += 1
    except OSError as e:
        emfile += e.errno == errno.EMFILE
        print(d, e, file=sys.stderr)
print(good, emfile)
PYEOF
watch_fds $!
assert_eq "$N 0" "$(cat "$T/read.out")" \
    "write, stat and read of every volume's data: no error, no EMFILE"
note_fds "after opening every volume"

ls -l "$I" >"$T/ls.out" 2>"$T/ls.err" &
watch_fds $!
assert_eq 0 "$(grep -c . "$T/ls.err")" "ls -l of the image: no error"
assert_eq "$N" "$(grep -c ' v[0-9]' "$T/ls.out")" "... lists all $N volumes"
ls -l "$I"/v0*/data >"$T/lsd.out" 2>"$T/lsd.err" &
watch_fds $!
assert_eq "$N" "$(grep -c '^-.* 4096 ' "$T/lsd.out")" \
    "ls -l of every data file shows its size"
note_fds "after ls -l"

# vstor itself holds no descriptor per volume: 16 are plenty for 1,500
(ulimit -n 16 && exec "$VSTOR" ls "$MNT" --json) >"$T/vls.json" 2>"$T/vls.err" &
watch_fds $!
assert_eq 0 $? "vstor ls --json under RLIMIT_NOFILE 16 exits 0"
[ -s "$T/vls.err" ] && diag "vstor: $(head -n 3 "$T/vls.err")"
assert_eq "$N" "$(jq '[.[] | select(.kind == "volume" and .size == 4096)] | length' \
    "$T/vls.json")" "vstor ls --json lists all $N volumes with their size"
note_fds "after vstor ls --json"

check "mkdir still works" mkdir "$I/new"
check "a new volume takes a write" dd if=/dev/urandom of="$I/new/data" \
    bs=64k count=4 status=none
check "the first volume still reads back" \
    "$PY" -c "import sys; sys.exit(open('$I/v00000/data','rb').read(5) != b'00000')"
assert_eq 0 "$(grep -c 'Too many open files\|EMFILE' "$LOG")" \
    "no EMFILE in the daemon's log"
note_fds "at the end"
assert_num "$MAXFDS" lt "$LIMIT" \
    "the daemon's descriptors stayed below $LIMIT (highest seen: $MAXFDS)"
stop_vstorfs

# Without the LRU (more idle layers allowed than descriptors), opening every
# volume and making new ones runs the daemon out of descriptors: opens and
# mkdirs fail, but the daemon must still unmount and exit cleanly (it used
# to abort at the unmount: glibc could not load libgcc_s, which the
# pthread_cancel that libfuse sends its workers needs).
start_vstorfs "$DATA" --max-idle-layers=1000000
"$PY" - "$I" "$N" >"$T/nolru.out" 2>/dev/null <<'PYEOF'
import os, sys
failed = 0
for i in range(int(sys.argv[2])):
    try:
        with open('%s/v%05d/data' % (sys.argv[1], i), 'rb') as f:
            f.read(5)
    except OSError:
        failed += 1
for i in range(200):  # and new volumes, written (as many as it can)
    d = '%s/x%03d' % (sys.argv[1], i)
    try:
        os.mkdir(d)
        with open(d + '/data', 'wb') as f:
            f.write(b'x' * 4096)
    except OSError:
        failed += 1
print(failed)
PYEOF
assert_num "$(cat "$T/nolru.out")" gt 0 "without the LRU, opening every volume runs the daemon out of descriptors (opens fail)"
check "... as its log says" grep -q "Too many open files" "$LOG"
check_fails "... and the daemon did not abort on the way" grep -q "must be installed for pthread_cancel" "$LOG"
stop_vstorfs
check_fails "... nor at its unmount" grep -q "must be installed for pthread_cancel" "$LOG"
