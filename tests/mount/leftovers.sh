#!/bin/bash
# What the next start does with objects and store directories that no
# record names.  Every step that makes an object first writes a record
# naming it (a new volume's record marked CREATING, a snapshot's or a new
# layer's pending object), so a crash leaves a record that says what to
# remove, and the rescan removes only that (the crash simulation in
# test_crashsim_tree checks every instant).  Anything no record names (an
# object, a store directory with no domain record) may belong to a record
# that is lost or damaged: it is reported, one line each, and kept; files
# that are not ours are left alone; the volumes read what they read before.
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
check "the object no record names is kept" test -f "$DOM/$leftover"
if log_gained "object '$leftover' is named by no record; kept"; then
    ok "it is reported"
else
    not_ok "it is reported" "new log lines: $(log_new_lines)"
fi
check "a domain directory with nothing in it is kept" \
    test -d "$DATA/domains/$unborn"
check "a domain directory with an empty metadata area is kept" \
    test -f "$DATA/domains/$unborn2/metadata"
assert_eq 3 "$(log_new_lines | grep -c "domain record")" \
    "each of the three store directories without a domain record is reported"
check "a domain directory holding another file stays" \
    test -f "$DATA/domains/$busy/some-file"
check "a file that is not ours stays" test -f "$DOM/notes.txt"
rm -f "$DOM/notes.txt" "$DOM/$leftover"
rm -rf "${DATA:?}/domains/$unborn" "${DATA:?}/domains/$unborn2"
assert_eq "$objects_before" "$(ls "$DOM" | LC_ALL=C sort | xargs)" \
    "the domain holds exactly its objects (and the leftover, removed by hand)"
assert_eq "$tree_before" "$(tree_listing)" "the tree is the same"
check "the volume reads what it read" cmp "$V/data" "$T/vol.bin"
check "the snapshot reads what it read" cmp "$MNT/dom/img/snap/data" "$T/vol.bin"
stop_vstorfs
rm -rf "${DATA:?}/domains/$busy"
