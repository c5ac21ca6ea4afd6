#!/bin/bash
# 10,000 volumes in one image under a low descriptor limit: a stat or an
# xattr of a volume must not leave its chain open in the daemon, so that
# `vstor ls --json` lists them all and the daemon can still create and open
# volumes afterwards.  The daemon and vstor both run with RLIMIT_NOFILE
# 1024; the daemon's open descriptors are counted before and after.
# The data dir is a tmpfs (the metadata writes of 10,000 mkdirs are what
# this test is not about).
. "$(dirname "$0")/lib.sh"
requires jq getfattr mount umount

N=10000
LIMIT=1024

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

mount -t tmpfs -o size=1g,mode=0755 vstorfs-test "$DATA" ||
    bail "cannot mount a tmpfs on $DATA"

# Everything started from here on (the daemon, vstor, python) has it.
ulimit -n $LIMIT || bail "ulimit -n $LIMIT"
start_vstorfs

fds() {
    find "/proc/$VSTORFS_PID/fd" -mindepth 1 -maxdepth 1 | wc -l
}

I=$MNT/dom/img
check "mkdir a domain and an image" mkdir -p "$I"
start=$(date +%s)
"$PY" - "$I" "$N" <<'EOF' || fail "mkdir $N volumes"
import os, sys
for i in range(int(sys.argv[2])):
    os.mkdir('%s/v%05d' % (sys.argv[1], i))
EOF
diag "mkdir of $N volumes: $(($(date +%s) - start)) s"
before=$(fds)
diag "the daemon's open descriptors after the mkdirs: $before"

# Every volume stat'ed, an xattr and its map read: the kernel's GETATTR,
# GETXATTR and OPEN of the map for each volume, then vstor's listing.
"$PY" - "$I" "$N" >"$T/stat.out" <<'EOF'
import os, sys
ok = 0
for i in range(int(sys.argv[2])):
    v = '%s/v%05d' % (sys.argv[1], i)
    os.stat(v + '/data')
    os.getxattr(v, 'user.vstor.allocated')
    with open(v + '/map') as f:
        if f.read() != '[]\n':
            continue
    ok += 1
print(ok)
EOF
assert_eq "$N" "$(cat "$T/stat.out")" "stat, getxattr and map of all $N volumes"
after_stat=$(fds)
diag "the daemon's open descriptors after stat, xattr and map of every volume: $after_stat"

"$VSTOR" ls "$MNT" --json >"$T/ls.json" 2>"$T/ls.err"
assert_eq 0 $? "vstor ls --json under RLIMIT_NOFILE $LIMIT exits 0"
[ -s "$T/ls.err" ] && diag "vstor: $(head -n 3 "$T/ls.err")"
assert_eq "$N" "$(jq '[.[] | select(.kind == "volume")] | length' "$T/ls.json")" \
    "vstor ls --json lists all $N volumes"
assert_eq "$N" "$(jq '[.[] | select(.kind == "volume" and .size == 0)] | length' \
    "$T/ls.json")" "... each with its size"
after=$(fds)
diag "the daemon's open descriptors after vstor ls --json: $after"
assert_num "$after" le $((before + 8)) \
    "the daemon holds no descriptor per listed volume ($before before, $after after)"

check "mkdir still works" mkdir "$I/new"
head -c 1048576 /dev/urandom >"$T/r.bin"
check "a volume opens and takes a write" cp "$T/r.bin" "$I/v09999/data"
check "... and reads it back" cmp "$I/v09999/data" "$T/r.bin"
check "the new volume opens too" cp "$T/r.bin" "$I/new/data"
assert_eq 1048576 "$(xget "$I/v09999" user.vstor.size)" "its size xattr"
diag "the daemon's open descriptors at the end: $(fds)"

# Names in a directory of 10,000 are indexed (fs/tree_index.c): a rename
# and a removal in the middle keep every lookup and readdir's order right.
check "rename a volume in the middle" mv "$I/v05000" "$I/r05000"
check "... it answers to its new name" cmp "$I/r05000/data" /dev/null
check_fails "... and no longer to its old one" stat "$I/v05000"
check "rmdir another" rmdir "$I/v04000"
check_fails "... it is gone" stat "$I/v04000"
check "a volume next to them is still found" stat "$I/v04001/data"
ls -f "$I" | grep -v '^\.\.\?$' >"$T/names"
assert_eq "$N" "$(wc -l <"$T/names")" "readdir lists $N entries"
assert_eq "v00000 v00001" "$(head -n 2 "$T/names" | tr '\n' ' ' | sed 's/ $//')" \
    "... in creation order"
assert_eq "r05000" "$(sed -n 5000p "$T/names")" \
    "... the renamed volume in its place"
check "a new volume takes the removed name" mkdir "$I/v04000"
check_fails "the renamed name cannot be made twice" mkdir "$I/r05000"
stop_vstorfs
