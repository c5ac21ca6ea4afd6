#!/bin/bash
# Damaged metadata on the store.  With the daemon stopped, damage a copy of
# a volume's record in DATA_DIR/domains/<uuid>/metadata (include/vs/
# meta_area.h: slot i has copy A at 2*i*4096 and copy B at (2*i+1)*4096,
# both written, so at rest they hold the same record; include/vs/record.h:
# a 64-byte header, then "key=value" lines), delete the catalog and mount:
# the volume is back from the other copy, the damage is logged and the copy
# rewritten.  Damage both copies: nothing is removed, the domain is served
# read-only, the volume is unavailable (from the catalog) or absent (without
# it); restoring the metadata brings it back.  Replace the catalog with
# garbage: the daemon either refuses to start with a clear message or
# rebuilds from the domains, and does not crash.
. "$(dirname "$0")/lib.sh"
requires sqlite3 md5sum

# (not a bare "torn": this test's directory is named torn-metadata)
DAMAGE_RE='corrupt|torn[^-]|damag|crc|checksum|bad magic|invalid'
M=$((1024 * 1024))

# meta_copies FILE UUID: "BLOCK GENERATION NAME" for every block of FILE
# holding a record whose own uuid is UUID.
meta_copies() {
    "$PY" - "$1" "$2" <<'PYEOF'
import struct, sys
data = open(sys.argv[1], 'rb').read()
want = 'uuid=' + sys.argv[2]
for i in range(len(data) // 4096):
    blk = data[i * 4096:(i + 1) * 4096]
    if blk[:8] != b'VSTORREC':
        continue
    gen, slot, plen = struct.unpack_from('<QII', blk, 16)
    lines = blk[64:64 + plen].decode('utf-8', 'replace').split('\n')
    if want in lines:
        name = [l[5:] for l in lines if l.startswith('name=')]
        print(i, gen, name[0] if name else '-')
PYEOF
}

# damage FILE BLOCK: overwrite 16 bytes of the block's payload.
damage() {
    printf 'CORRUPTEDCORRUPT' |
        dd of="$1" bs=1 seek=$(($2 * 4096 + 72)) conv=notrunc status=none
}

drop_catalog() {
    rm -f "$DATA/catalog.db" "$DATA/catalog.db-wal" "$DATA/catalog.db-shm"
}

start_vstorfs
I=$MNT/dom/img
mkdir -p "$I/tv-old" "$I/keep" || bail "cannot create the tree"
head -c $((2 * M)) /dev/urandom >"$T/tv.bin"
head -c $((3 * M)) /dev/urandom >"$T/keep.bin"
cp "$T/tv.bin" "$I/tv-old/data" || bail "cannot write tv-old"
cp "$T/keep.bin" "$I/keep/data" || bail "cannot write keep"
# The rename writes the record a second time: copy A has "tv-old", B "tv".
mv "$I/tv-old" "$I/tv" || bail "cannot rename the volume"
tv_uuid=$(xget "$I/tv" user.vstor.uuid)
tv_object=$(xget "$I/tv" user.vstor.object)
keep_uuid=$(xget "$I/keep" user.vstor.uuid)
duuid=$(xget "$MNT/dom" user.vstor.uuid)
META=$DATA/domains/$duuid/metadata
stop_vstorfs
check "the domain's metadata object exists" test -f "$META"

copies=$(meta_copies "$META" "$tv_uuid")
diag "records of the volume: $copies"
assert_eq 2 "$(wc -l <<<"$copies")" "the renamed volume's slot holds two copies"
read -r ablock agen aname <<<"$(head -n 1 <<<"$copies")"
read -r bblock bgen bname <<<"$(tail -n 1 <<<"$copies")"
assert_eq "tv tv" "$aname $bname" "both copies hold the newest record (the new name)"
assert_eq "$agen" "$bgen" "both copies hold the same generation"
assert_eq $((ablock / 2)) $((bblock / 2)) "both copies are in one slot"
cp "$META" "$T/metadata.good"

# 1. One copy damaged (either): the other copy serves the volume as it was,
# and the damaged copy is rewritten.
for blk in "$ablock" "$bblock"; do
    damage "$META" "$blk"
    drop_catalog
    log_mark
    start_vstorfs
    tree=$(tree_listing)
    if grep -q " $tv_uuid\$" <<<"$tree"; then
        ok "copy $blk damaged: the volume is still there"
    else
        not_ok "copy $blk damaged: the volume is still there" "tree: $tree"
    fi
    check "copy $blk damaged: it has its newest name (tv)" test -d "$I/tv"
    check "copy $blk damaged: its bytes are intact" cmp "$I/tv/data" "$T/tv.bin"
    check "copy $blk damaged: the other volume is intact" cmp "$I/keep/data" "$T/keep.bin"
    check "copy $blk damaged: the domain is writable" mkdir "$I/new$blk"
    if log_gained "$DAMAGE_RE"; then
        ok "copy $blk damaged: the daemon logged the damage"
        diag "$(log_new_lines | grep -Ei "$DAMAGE_RE" | head -n 3)"
    else
        not_ok "copy $blk damaged: the daemon logged the damage" "new log lines: $(log_new_lines)"
    fi
    rmdir "$I/new$blk"
    stop_vstorfs
    assert_eq 2 "$(meta_copies "$META" "$tv_uuid" | wc -l)" \
        "copy $blk damaged: the start rewrote it (two valid copies again)"
done
cp "$T/metadata.good" "$META"

# 2. Both copies of the slot damaged: nothing is removed or rolled back; the
# domain is read-only until its metadata is restored.
slot=$((ablock / 2))
damage "$META" $((2 * slot))
damage "$META" $((2 * slot + 1))
log_mark
start_vstorfs
check "both copies damaged, catalog kept: the volume is listed from the catalog" \
    test -d "$I/tv"
expect_errno EIO open "$I/tv/data" O_RDONLY
check "both copies damaged: the other volume is intact" cmp "$I/keep/data" "$T/keep.bin"
expect_errno EROFS mkdir "$I/new"
expect_errno EROFS rmdir "$I/keep"
check "both copies damaged: the unreadable record's object is kept" \
    test -f "$DATA/domains/$duuid/$tv_object"
if log_gained "read-only"; then
    ok "both copies damaged: the log says the domain is read-only and why"
    diag "$(log_new_lines | grep -i "read-only" | head -n 2)"
else
    not_ok "both copies damaged: the log says the domain is read-only and why" "new log lines: $(log_new_lines)"
fi
stop_vstorfs
drop_catalog
start_vstorfs
tree=$(tree_listing)
if grep -q " $tv_uuid\$" <<<"$tree"; then
    not_ok "both copies damaged, no catalog: the volume is absent" "tree: $tree"
else
    ok "both copies damaged, no catalog: the volume is absent"
fi
assert_eq "keep" "$(ls "$I" | xargs)" "both copies damaged: the image lists the other volume only"
assert_eq "$keep_uuid" "$(xget "$I/keep" user.vstor.uuid)" "both copies damaged: the other volume keeps its uuid"
check "both copies damaged: the object is still kept" \
    test -f "$DATA/domains/$duuid/$tv_object"
stop_vstorfs
cp "$T/metadata.good" "$META"
start_vstorfs
check "metadata restored: the volume is back" cmp "$I/tv/data" "$T/tv.bin"
check "metadata restored: the domain is writable again" mkdir "$I/new"
check "metadata restored: rmdir works" rmdir "$I/new"
tree_before=$(tree_listing)
stop_vstorfs

# 3. The catalog replaced with garbage.
head -c 65536 /dev/urandom >"$DATA/catalog.db"
rm -f "$DATA/catalog.db-wal" "$DATA/catalog.db-shm"
log_mark
rc=0
try_start_vstorfs || rc=$?
case $rc in
0)
    diag "garbage catalog: the daemon rebuilt it from the domains and mounted"
    ok "garbage catalog: the daemon does not crash (it mounted)"
    assert_eq "$tree_before" "$(tree_listing)" "garbage catalog: the rebuilt tree is the same"
    check "garbage catalog: the data is intact" cmp "$I/keep/data" "$T/keep.bin"
    if log_gained catalog; then
        ok "garbage catalog: the log says what happened to the catalog"
    else
        not_ok "garbage catalog: the log says what happened to the catalog" "new lines: $(log_new_lines)"
    fi
    diag "$(log_new_lines | grep -i catalog | head -n 3)"
    stop_vstorfs
    assert_eq ok "$(sqlite3 "$DATA/catalog.db" 'PRAGMA integrity_check' 2>&1)" \
        "garbage catalog: the new catalog passes the integrity check"
    ;;
1)
    diag "garbage catalog: the daemon refused to start (status $VSTORFS_STATUS)"
    assert_eq 1 "$VSTORFS_STATUS" "garbage catalog: the daemon refuses with exit status 1, no crash"
    check_fails "garbage catalog: no mount is left" any_mount
    if log_gained catalog; then
        ok "garbage catalog: the message names the catalog"
    else
        not_ok "garbage catalog: the message names the catalog" "new lines: $(log_new_lines)"
    fi
    diag "$(log_new_lines | head -n 3)"
    drop_catalog
    start_vstorfs
    assert_eq "$tree_before" "$(tree_listing)" "garbage catalog removed: the tree is rebuilt from the domains"
    stop_vstorfs
    ;;
*)
    not_ok "garbage catalog: the daemon neither mounted nor exited within 10 s" "$(log_new_lines)"
    ;;
esac
