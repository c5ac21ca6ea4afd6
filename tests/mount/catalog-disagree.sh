#!/bin/bash
# A catalog that disagrees with the domains is rebuilt, never a reason to
# refuse to start, and one domain that cannot be read leaves the others
# served.  (After a storm of concurrent changes every start failed with
# "Directory not empty": a stale row was still named as another row's
# backing, so deleting it failed, after the start had already rolled back
# snapshots on the storage.)
#   1. Stale rows that hang together wrongly (a stale volume named as a live
#      volume's backing, a stale image with a live volume in it, a stale row
#      holding a live volume's name): the start
#      rebuilds the catalog, the tree and the bytes are the domains', the
#      owner and mode of data are kept, nothing on the storage changed.
#   2. One domain's metadata gone: the other domain is fully served; the
#      damaged one is listed from the catalog, read-only (EROFS), its
#      volumes unavailable (EIO, and user.vstor.status says why); restoring
#      the metadata brings it back.
. "$(dirname "$0")/lib.sh"
requires sqlite3 sha256sum

M=$((1024 * 1024))
start_vstorfs
mkdir -p "$MNT/dom/img/base" "$MNT/dom/img/clone" "$MNT/dom2/img/vol" \
    "$MNT/dom2/img/vol2" ||
    bail "cannot create the tree"
head -c $((2 * M)) /dev/urandom >"$T/base.bin"
cp "$T/base.bin" "$MNT/dom/img/base/data" || bail "cannot write base"
ln -s ../base "$MNT/dom/img/clone/backing" || bail "cannot clone"
head -c $M /dev/urandom | dd of="$MNT/dom/img/clone/data" bs=1M seek=1 \
    conv=notrunc status=none
head -c $((3 * M)) /dev/urandom >"$T/vol.bin"
cp "$T/vol.bin" "$MNT/dom2/img/vol/data" || bail "cannot write vol"
chown 4242:4343 "$MNT/dom2/img/vol/data"
chmod 0640 "$MNT/dom2/img/vol/data"
sha_clone=$(sha256sum <"$MNT/dom/img/clone/data")
tree_before=$(tree_listing)
dom_uuid=$(xget "$MNT/dom" user.vstor.uuid)
stop_vstorfs
start_vstorfs # the first start after a clone settles its records
stop_vstorfs
store_before=$(cd "$DATA/domains" && find . -type f -print0 | sort -z |
    xargs -0 sha256sum)

# 1. Stale rows that the old rescan could not delete.
clone_id=$(sqlite3 "$DATA/catalog.db" "SELECT id FROM nodes WHERE name='clone'")
img_id=$(sqlite3 "$DATA/catalog.db" "SELECT parent_id FROM nodes WHERE name='clone'")
sqlite3 "$DATA/catalog.db" <<SQL || bail "cannot edit the catalog"
PRAGMA foreign_keys = ON;
INSERT INTO nodes (parent_id, kind, uuid, name, created, slot, generation,
                   mode, uid, gid, format, object)
  VALUES ($img_id, 3, '00000000-0000-4000-8000-00000000dead', 'ghost', 0, 99, 1,
          384, 0, 0, 'raw', '00000000-0000-4000-8000-00000000dead');
UPDATE nodes SET backing_id = last_insert_rowid() WHERE id = $clone_id;
INSERT INTO nodes (parent_id, kind, uuid, name, created, slot, generation,
                   mode, uid, gid)
  VALUES ((SELECT parent_id FROM nodes WHERE id = $img_id), 2,
          '00000000-0000-4000-8000-00000000beef', 'ghost-img', 0, 98, 1, 493, 0, 0);
UPDATE nodes SET parent_id = last_insert_rowid() WHERE name = 'base';
UPDATE nodes SET uuid = '00000000-0000-4000-8000-00000000f00d'
  WHERE name = 'vol2';
SQL
log_mark
start_vstorfs
ok "the daemon starts on a catalog that disagrees with the domains"
assert_eq "$tree_before" "$(tree_listing)" "the tree is the domains' again"
assert_eq "$sha_clone" "$(sha256sum <"$MNT/dom/img/clone/data")" \
    "the clone reads what it read (through its real backing)"
check "the base reads what it read" cmp "$MNT/dom/img/base/data" "$T/base.bin"
assert_eq "4242:4343 640" "$(stat -c '%u:%g %a' "$MNT/dom2/img/vol/data")" \
    "the owner and mode of data are kept"
check "the log says the catalog was rebuilt" log_gained "rebuilding it"
stop_vstorfs
assert_eq "$store_before" "$(cd "$DATA/domains" && find . -type f -print0 |
    sort -z | xargs -0 sha256sum)" "nothing on the storage changed"

# 2. One domain's metadata gone.
mv "$DATA/domains/$dom_uuid/metadata" "$T/metadata.saved"
log_mark
start_vstorfs
ok "the daemon starts with one domain's metadata missing"
check "the other domain's volume reads what it read" \
    cmp "$MNT/dom2/img/vol/data" "$T/vol.bin"
check "the other domain is writable (mkdir)" mkdir "$MNT/dom2/img/new"
check "the damaged domain is listed from the catalog" test -d "$MNT/dom/img/clone"
expect_errno EIO open "$MNT/dom/img/base/data" O_RDONLY
expect_errno EROFS mkdir "$MNT/dom/img/new"
expect_errno EROFS rmdir "$MNT/dom/img/clone"
assert_match "unavailable: " "$(xget "$MNT/dom/img/base" user.vstor.status)" \
    "user.vstor.status says the volume is unavailable and why"
check "the log says why the domain is read-only" log_gained "read-only"
stop_vstorfs
check "the objects of the damaged domain are all kept" \
    test "$(ls "$DATA/domains/$dom_uuid" | wc -l)" -eq 2
mv "$T/metadata.saved" "$DATA/domains/$dom_uuid/metadata"
start_vstorfs
assert_eq "$sha_clone" "$(sha256sum <"$MNT/dom/img/clone/data")" \
    "metadata restored: the clone reads what it read"
check "metadata restored: the domain is writable" mkdir "$MNT/dom/img/new"
stop_vstorfs
