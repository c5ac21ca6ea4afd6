#!/bin/bash
# A damaged catalog (garbage, truncated, bytes flipped in its pages) never
# stops the daemon and is never deleted: at start it is moved aside to
# catalog.db.damaged-<UTC time> (its -wal/-shm with it), one error line
# says so, and a new catalog is rebuilt from the domains: the tree and the
# bytes are back.  And a read-only data directory is refused at start with
# a clear message and exit status 1.
. "$(dirname "$0")/lib.sh"
requires sqlite3 truncate mount umount

M=$((1024 * 1024))
RO=$T/ro

cleanup_extra() {
    umount "$RO" 2>/dev/null
}

start_vstorfs
D=$MNT/dom
I=$D/img
mkdir "$D" "$I" "$I/a" "$I/b" "$I/c" || bail "cannot create the tree"
head -c $((2 * M)) /dev/urandom >"$T/a.bin"
head -c $M /dev/urandom >"$T/b.bin"
cp "$T/a.bin" "$I/a/data" && cp "$T/b.bin" "$I/b/data" || bail "cannot write"
setfattr -n user.vstor.snapshot -v snap "$I/a" || bail "cannot snapshot"
tree_before=$(tree_listing)
sums_before=$(data_sums)
stop_vstorfs

# damage NAME CMD...: run CMD on the stopped daemon's catalog, start, and
# check the outcome.
damage() {
    local what=$1 aside lines
    shift
    rm -f "$DATA"/catalog.db.damaged-*
    "$@" || bail "$what: cannot damage the catalog"
    cp "$DATA/catalog.db" "$T/damaged.db"
    log_mark
    start_vstorfs
    ok "$what: the daemon starts"
    assert_eq "$tree_before" "$(tree_listing)" "$what: the tree is rebuilt from the domains"
    assert_eq "$sums_before" "$(data_sums)" "$what: the bytes are intact"
    aside=$(find "$DATA" -maxdepth 1 -name 'catalog.db.damaged-*' ! -name '*-wal' ! -name '*-shm')
    assert_match '/catalog\.db\.damaged-[0-9]{8}T[0-9]{6}Z$' "$aside" \
        "$what: the damaged catalog is kept as catalog.db.damaged-<UTC time>"
    check "$what: it is the damaged file, unchanged" cmp "$aside" "$T/damaged.db"
    lines=$(log_new_lines | grep -ai 'damaged')
    assert_eq 1 "$(grep -c . <<<"$lines")" "$(printf '%s: one log line about the damage' "$what")"
    assert_match "catalog '$DATA/catalog.db' is damaged.*moved aside to '$aside'.*rebuilt from the domains" \
        "$lines" "$what: the line names the file, where it went, and the rebuild"
    assert_eq "" "$(log_new_lines | grep -aiE 'warning|error' | grep -avi 'damaged')" \
        "$what: no other warnings or errors"
    assert_eq "600 0" "$(stat -c '%a %u' "$DATA/catalog.db")" "$what: the new catalog is 0600"
    stop_vstorfs
    assert_eq ok "$(sqlite3 "$DATA/catalog.db" 'PRAGMA integrity_check' 2>&1)" \
        "$what: the new catalog passes the integrity check"
}

garbage() {
    head -c 65536 /dev/urandom >"$DATA/catalog.db"
}
cut_short() {
    truncate -s 5000 "$DATA/catalog.db"
}
# Overwrite the middle of every page but the first (the header stays
# valid: SQLite opens it and only the integrity check finds the damage).
flip_pages() {
    local size pages p
    size=$(stat -c %s "$DATA/catalog.db")
    pages=$((size / 4096))
    [ "$pages" -ge 2 ] || return 1
    for ((p = 1; p < pages; p++)); do
        printf '\xde\xad\xbe\xef%.0s' $(seq 16) |
            dd of="$DATA/catalog.db" bs=1 seek=$((p * 4096 + 8)) conv=notrunc status=none
    done
}

damage "garbage" garbage
damage "truncated" cut_short
damage "flipped bytes" flip_pages

# A -wal and -shm beside a damaged catalog go aside with it: SQLite neither
# checkpoints that -wal into the damaged file nor deletes it.
start_vstorfs
stop_vstorfs
garbage
echo stale >"$DATA/catalog.db-wal"
echo stale >"$DATA/catalog.db-shm"
rm -f "$DATA"/catalog.db.damaged-*
start_vstorfs
assert_eq "$tree_before" "$(tree_listing)" "with a stale -wal: the tree is rebuilt"
assert_eq stale "$(cat "$DATA"/catalog.db.damaged-*-wal)" "the -wal went aside with the catalog"
# (the -shm is SQLite's index of the -wal, rebuilt when it is opened)
check "the -shm went aside with the catalog" test -f "$(echo "$DATA"/catalog.db.damaged-*-shm)"
stop_vstorfs

# A read-only data directory: a clear message, exit status 1.
mkdir -p "$RO"
mount --bind "$DATA" "$RO" && mount -o remount,bind,ro "$RO" ||
    bail "cannot make a read-only bind mount"
log_mark
rc=0
try_start_vstorfs "$RO" || rc=$?
assert_eq "1 1" "$rc $VSTORFS_STATUS" "a read-only data directory: the daemon exits with status 1"
assert_match "data directory '$RO' is read-only" "$(log_new_lines)" \
    "the message says the data directory is read-only"
check_fails "it does not say 'No such file or directory'" log_gained 'No such file'
umount "$RO"
