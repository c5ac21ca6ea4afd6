#!/bin/bash
# What a crash during a creation leaves on the backend, and what the next
# start does with it.  Objects are made before the records that name them,
# so a crash in between leaves an object no record names (a new volume's,
# or a snapshot's new top layer); a crash while a domain is made can leave
# a store directory with no record at all.  At the next start the rescan
# removes both, with one log line each, and touches nothing else: a
# directory under domains/ that holds anything but its metadata stays (and
# is reported), files that are not ours (not a uuid) stay, and the volumes
# read what they read before.  (When a record is unreadable, its object
# looks unnamed and must stay: torn-metadata.sh checks that.)
. "$(dirname "$0")/lib.sh"
new_uuid() { cat /proc/sys/kernel/random/uuid; }

M=$((1024 * 1024))

start_vstorfs
V=$MNT/dom/img/vol
mkdir -p "$V" || bail "cannot create the tree"
head -c $((2 * M)) /dev/urandom >"$T/vol.bin"
cp "$T/vol.bin" "$V/data" || bail "cannot write the volume"
setfattr -n user.vstor.snapshot -v snap "$V" || bail "cannot snapshot"
duuid=$(xget "$MNT/dom" user.vstor.uuid)
DOM=$DATA/domains/$duuid
tree_before=$(tree_listing)
objects_before=$(ls "$DOM" | LC_ALL=C sort | xargs)
stop_vstorfs

# The leftovers of four interrupted creations, and two things that are not.
leftover=$(new_uuid)
head -c 65536 /dev/zero >"$DOM/$leftover"      # a layer with no record
unborn=$(new_uuid)
mkdir "$DATA/domains/$unborn"                  # a domain: no metadata yet
unborn2=$(new_uuid)
mkdir "$DATA/domains/$unborn2"                 # a domain: metadata, no record
head -c 65536 /dev/zero >"$DATA/domains/$unborn2/metadata"
busy=$(new_uuid)
mkdir "$DATA/domains/$busy"                    # not empty: never removed
echo precious >"$DATA/domains/$busy/some-file"
echo not-ours >"$DOM/notes.txt"                # not a uuid: not ours

log_mark
start_vstorfs
check "the object no record names is removed" test ! -e "$DOM/$leftover"
if log_gained "object '$leftover' is named by no record"; then
    ok "its removal is logged"
else
    not_ok "its removal is logged" "new log lines: $(log_new_lines)"
fi
check "a domain directory with nothing in it is removed" \
    test ! -e "$DATA/domains/$unborn"
check "a domain directory with an empty metadata area is removed" \
    test ! -e "$DATA/domains/$unborn2"
assert_eq 2 "$(log_new_lines | grep -c "creation was interrupted")" \
    "each of the two removals is logged"
check "a domain directory holding another file stays" \
    test -f "$DATA/domains/$busy/some-file"
check "a file that is not ours stays" test -f "$DOM/notes.txt"
rm -f "$DOM/notes.txt"
assert_eq "$objects_before" "$(ls "$DOM" | LC_ALL=C sort | xargs)" \
    "the domain holds exactly its objects again"
assert_eq "$tree_before" "$(tree_listing)" "the tree is the same"
check "the volume reads what it read" cmp "$V/data" "$T/vol.bin"
check "the snapshot reads what it read" cmp "$MNT/dom/img/snap/data" "$T/vol.bin"
stop_vstorfs
rm -rf "${DATA:?}/domains/$busy"
