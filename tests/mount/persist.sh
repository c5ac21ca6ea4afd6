#!/bin/bash
# What survives: a tree with patterns written into it is the same after an
# unmount and a mount (names, sizes, uuids, modes, owners, bytes); after the
# catalog is deleted it is rebuilt from the domains' own metadata with the
# same names and uuids; user.vstor.rescan rebuilds it while mounted; the
# catalog passes SQLite's integrity check.
. "$(dirname "$0")/lib.sh"
requires sqlite3 setfattr getfattr truncate md5sum

start_vstorfs

# Two domains, three images, five volumes of different sizes and patterns.
mkdir -p "$MNT/alpha/web/root" "$MNT/alpha/web/swap" "$MNT/alpha/db/disk0" \
    "$MNT/beta/build/scratch" "$MNT/beta/build/cache" || bail "cannot create the tree"
mkdir "$MNT/beta/empty-image" || bail "cannot create an empty image"
n=0
for v in alpha/web/root alpha/web/swap alpha/db/disk0 beta/build/scratch; do
    n=$((n + 1))
    truncate -s $((n * 16))M "$MNT/$v/data"
    head -c $((n * 1024 * 1024 + 4096)) /dev/urandom >"$T/p$n.bin"
    dd if="$T/p$n.bin" of="$MNT/$v/data" bs=64k seek=$((n * 16)) conv=notrunc,fsync \
        status=none || fail "write a pattern into $v"
done
# beta/build/cache stays empty (size 0).
# directories are structure: always root's, 0755 (docs/interface.md)
expect_errno EPERM chmod "$MNT/alpha/db/disk0" 0700
check "chmod and chown a data file" \
    bash -c "chmod 0640 '$MNT/alpha/db/disk0/data' && chown 64055:64055 '$MNT/alpha/db/disk0/data'"

modes() {
    (cd "$MNT" && find . -printf '%p %m %u:%g\n' | LC_ALL=C sort)
}

tree0=$(tree_listing)
sums0=$(data_sums)
modes0=$(modes)
diag "tree: $(wc -l <<<"$tree0") nodes"
if grep -Eqv ' [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' <<<"$tree0"; then
    not_ok "every node has a uuid" "$(grep -Ev ' [0-9a-f-]{36}$' <<<"$tree0" | head)"
else
    ok "every node has a uuid"
fi
root_uuid=$(xget "$MNT" user.vstor.uuid)

compare_state() {
    local what=$1 tree sums
    tree=$(tree_listing)
    sums=$(data_sums)
    if [ "$tree" == "$tree0" ]; then
        ok "$what: same tree, sizes and uuids"
    else
        not_ok "$what: same tree, sizes and uuids" "$(diff <(echo "$tree0") <(echo "$tree") | head -n 20)"
    fi
    if [ "$sums" == "$sums0" ]; then
        ok "$what: same bytes in every volume"
    else
        not_ok "$what: same bytes in every volume" "$(diff <(echo "$sums0") <(echo "$sums") | head -n 20)"
    fi
}

catalog_ok() {
    assert_eq ok "$(sqlite3 "$DATA/catalog.db" 'PRAGMA integrity_check' 2>&1)" \
        "sqlite3 PRAGMA integrity_check on the catalog: ok"
}

stop_vstorfs
check "the catalog exists" test -f "$DATA/catalog.db"
catalog_ok

# 1. A plain unmount and mount.
start_vstorfs
compare_state "after remount"
assert_eq "$root_uuid" "$(xget "$MNT" user.vstor.uuid)" "after remount: the root's uuid (catalog id) is kept"
modes1=$(modes)
if [ "$modes1" == "$modes0" ]; then
    ok "after remount: chmod and chown persisted"
else
    not_ok "after remount: chmod and chown persisted" "$(diff <(echo "$modes0") <(echo "$modes1"))"
fi

# 2. Rescan while mounted.
check "setfattr -n user.vstor.rescan -v 1 on the root works" \
    setfattr -n user.vstor.rescan -v 1 "$MNT"
compare_state "after user.vstor.rescan"
if [ -n "$VSTOR" ] && [ -x "$VSTOR" ]; then
    check "vstor rescan MOUNTPOINT works" "$VSTOR" rescan "$MNT"
    compare_state "after vstor rescan"
fi
# The tree still changes normally after a rescan.
check "mkdir after a rescan" mkdir "$MNT/beta/build/later"
check "rmdir after a rescan" rmdir "$MNT/beta/build/later"
stop_vstorfs
catalog_ok

# 3. The catalog deleted: rebuilt from the domains.
rm -f "$DATA/catalog.db" "$DATA/catalog.db-wal" "$DATA/catalog.db-shm"
start_vstorfs
compare_state "after deleting the catalog"
check "the catalog was created again" test -f "$DATA/catalog.db"
check "mkdir in a rebuilt domain" mkdir "$MNT/alpha/web/new"
check "rmdir it" rmdir "$MNT/alpha/web/new"
stop_vstorfs
catalog_ok

# 4. And once more after the rebuild.
start_vstorfs
compare_state "after a remount of the rebuilt catalog"
stop_vstorfs
catalog_ok
