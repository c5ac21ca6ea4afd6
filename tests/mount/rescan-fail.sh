#!/bin/bash
# A rescan that fails changes nothing: with the catalog unwritable (made
# immutable with chattr), `setfattr -n user.vstor.rescan` fails, and the
# tree in memory, the data and the domains stay as they were (a failed
# rescan once emptied the tree until a later one succeeded).  Once the
# catalog is writable again, a rescan succeeds and the tree is the same.
. "$(dirname "$0")/lib.sh"
requires chattr lsattr

M=$((1024 * 1024))
release_catalog() {
    chattr -i "$DATA/catalog.db" "$DATA/catalog.db-wal" 2>/dev/null
    return 0
}
cleanup_extra() { release_catalog; }

start_vstorfs
V=$MNT/dom/img/vol
mkdir -p "$V" "$MNT/dom/img/other" || bail "cannot create the tree"
head -c $((2 * M)) /dev/urandom >"$T/vol.bin"
cp "$T/vol.bin" "$V/data" || bail "cannot write the volume"
setfattr -n user.vstor.snapshot -v snap "$V" || bail "cannot snapshot"
tree_before=$(tree_listing)
objects_before=$(ls "$DATA/domains/"* | LC_ALL=C sort | xargs)

# (not the -shm file: SQLite maps it, and a write to an immutable map is
# a SIGBUS, not an error)
if ! chattr +i "$DATA/catalog.db" "$DATA/catalog.db-wal"; then
    skip_check "the file system under /var/tmp has no immutable flag"
    finish
fi
log_mark
if setfattr -n user.vstor.rescan -v 1 "$MNT" 2>"$T/err"; then
    not_ok "a rescan with an unwritable catalog fails"
else
    ok "a rescan with an unwritable catalog fails ($(cat "$T/err"))"
fi
check "the log says the rescan failed" log_gained "rescan failed"
assert_eq "$tree_before" "$(tree_listing)" "the tree is unchanged in memory"
check "the volume reads what it read" cmp "$V/data" "$T/vol.bin"
check "the snapshot reads what it read" cmp "$MNT/dom/img/snap/data" "$T/vol.bin"
assert_eq "$objects_before" "$(ls "$DATA/domains/"* | LC_ALL=C sort | xargs)" \
    "no object changed on the domain"
release_catalog
check "with the catalog writable again a rescan succeeds" \
    setfattr -n user.vstor.rescan -v 1 "$MNT"
assert_eq "$tree_before" "$(tree_listing)" "the tree is the same after it"
check "and the volume reads what it read" cmp "$V/data" "$T/vol.bin"
stop_vstorfs
