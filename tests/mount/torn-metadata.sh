#!/bin/bash
# Damaged metadata on the store.  With the daemon stopped, damage the
# newest copy of a volume's record in DATA_DIR/domains/<uuid>/metadata
# (include/vs/meta_area.h: slot i has copy A at 2*i*4096 and copy B at
# (2*i+1)*4096; include/vs/record.h: a 64-byte header, then "key=value"
# lines), delete the catalog and mount: the volume is back from the other
# copy and the damage is logged.  Damage both copies: the volume is absent,
# the damage is logged, everything else is served.  Replace the catalog with
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
newest=$(sort -k2,2n <<<"$copies" | tail -n 1)
older=$(sort -k2,2n <<<"$copies" | head -n 1)
read -r nblock _ nname <<<"$newest"
read -r oblock _ oname <<<"$older"
assert_eq tv "$nname" "the newest copy has the new name"
assert_eq tv-old "$oname" "the older copy has the old name"
assert_eq $((nblock / 2)) $((oblock / 2)) "both copies are in one slot"

# 1. The newest copy damaged: the older copy serves the volume.
damage "$META" "$nblock"
drop_catalog
log_mark
start_vstorfs
tree=$(tree_listing)
diag "$tree"
if grep -q " $tv_uuid\$" <<<"$tree"; then
    ok "one copy damaged: the volume is still there"
else
    not_ok "one copy damaged: the volume is still there" "tree: $tree"
fi
check "one copy damaged: it has the older copy's name (tv-old)" test -d "$I/tv-old"
check "one copy damaged: its bytes are intact" cmp "$I/tv-old/data" "$T/tv.bin"
check "one copy damaged: the other volume is intact" cmp "$I/keep/data" "$T/keep.bin"
if log_gained "$DAMAGE_RE"; then
    ok "one copy damaged: the daemon logged the damage"
    diag "$(log_new_lines | grep -Ei "$DAMAGE_RE" | head -n 3)"
else
    not_ok "one copy damaged: the daemon logged the damage" "new log lines: $(log_new_lines)"
fi
stop_vstorfs

# 2. Both copies of the slot damaged: the volume is absent.
slot=$((nblock / 2))
damage "$META" $((2 * slot))
damage "$META" $((2 * slot + 1))
drop_catalog
log_mark
start_vstorfs
tree=$(tree_listing)
if grep -q " $tv_uuid\$" <<<"$tree"; then
    not_ok "both copies damaged: the volume is absent" "tree: $tree"
else
    ok "both copies damaged: the volume is absent"
fi
assert_eq "keep" "$(ls "$I" | xargs)" "both copies damaged: the image lists the other volume only"
assert_eq "$keep_uuid" "$(xget "$I/keep" user.vstor.uuid)" "both copies damaged: the other volume keeps its uuid"
check "both copies damaged: the other volume is intact" cmp "$I/keep/data" "$T/keep.bin"
check "both copies damaged: the domain is served (mkdir works)" mkdir "$I/new"
check "both copies damaged: the unreadable record's object is kept (not taken for a leftover)" \
    test -f "$DATA/domains/$duuid/$tv_object"
check "both copies damaged: rmdir works" rmdir "$I/new"
if log_gained "$DAMAGE_RE"; then
    ok "both copies damaged: the daemon logged the damage"
    diag "$(log_new_lines | grep -Ei "$DAMAGE_RE" | head -n 3)"
else
    not_ok "both copies damaged: the daemon logged the damage" "new log lines: $(log_new_lines)"
fi
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
