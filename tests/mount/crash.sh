#!/bin/bash
# kill -9 of the daemon in the middle of writes and of tree changes.  Each
# round writes a known pattern with O_DIRECT and fsync (what must survive),
# starts a writer on another region and a loop of mkdir/rmdir, kills the
# daemon mid-flight, clears the dead mount and mounts again: every fsynced
# pattern is intact, every mkdir that returned is there, the catalog passes
# SQLite's integrity check and the tree is served completely.
. "$(dirname "$0")/lib.sh"
requires fio sqlite3 md5sum

ROUNDS=3
M=$((1024 * 1024))

start_vstorfs
V=$MNT/dom/img/vol
mkdir -p "$V" "$MNT/dom/meta-churn" || bail "cannot create the tree"
truncate -s 256M "$V/data" || bail "cannot grow the volume"

# Reference bytes of the fsynced region (0..ROUNDS*8M), kept in $T/ref.bin.
head -c $((ROUNDS * 8 * M)) /dev/zero >"$T/ref.bin"

# Check a copy (with its WAL): sqlite3 itself would recover the WAL on
# close and hide the crash state from the daemon's next start.
catalog_ok() {
    rm -rf "$T/cat" && mkdir "$T/cat"
    cp "$DATA"/catalog.db* "$T/cat/"
    assert_eq ok "$(sqlite3 "$T/cat/catalog.db" 'PRAGMA integrity_check' 2>&1)" \
        "round $1: sqlite3 PRAGMA integrity_check on the catalog: ok"
}

churn() {
    # Create and remove volumes as fast as possible; record each mkdir that
    # returned (it must survive) and each rmdir that returned.
    local r=$1 i=0
    while [ $i -lt 100000 ]; do
        mkdir "$MNT/dom/meta-churn/v$r-$i" 2>/dev/null || break
        echo "v$r-$i" >>"$T/created.$r"
        if [ $((i % 3)) -eq 2 ]; then
            # an rmdir the kill interrupts may finish at restart or not
            echo "v$r-$i" >>"$T/removing.$r"
            rmdir "$MNT/dom/meta-churn/v$r-$i" 2>/dev/null || break
            echo "v$r-$i" >>"$T/removed.$r"
        fi
        i=$((i + 1))
    done
}

for ((r = 1; r <= ROUNDS; r++)); do
    # What must survive: 8M of a fresh pattern, O_DIRECT, fsynced.
    head -c $((8 * M)) /dev/urandom >"$T/pat.$r"
    off=$(((r - 1) * 8))
    check "round $r: write 8M with oflag=direct conv=fsync" \
        dd if="$T/pat.$r" of="$V/data" bs=1M seek=$off oflag=direct \
        conv=notrunc,fsync status=none
    dd if="$T/pat.$r" of="$T/ref.bin" bs=1M seek=$off conv=notrunc status=none
    tree_before=$(tree_listing | grep -v meta-churn)

    # What is in flight when the daemon dies.
    : >"$T/created.$r"
    : >"$T/removed.$r"
    bg fio --name=inflight --filename="$V/data" --offset=128M --size=128M \
        --rw=randwrite --bs=64k --ioengine=libaio --direct=1 --iodepth=16 \
        --time_based --runtime=30 --fallocate=none --output="$T/fio.$r"
    FIO=$BG_PID
    churn "$r" &
    CHURN=$!
    BG_PIDS+=("$CHURN")
    sleep 1.5
    check "round $r: writers are running when the daemon is killed" \
        kill -0 "$FIO" "$CHURN"
    check "round $r: kill -9 the daemon and clear the dead mount" kill9_vstorfs
    wait_child "$FIO" 10 || { kill -9 "$FIO"; wait "$FIO"; }
    wait_child "$CHURN" 10 || { kill -9 "$CHURN"; wait "$CHURN"; }
    diag "round $r: $(wc -l <"$T/created.$r") mkdir and $(wc -l <"$T/removed.$r") rmdir returned before the kill"

    catalog_ok "$r"
    start_vstorfs
    check "round $r: every fsynced pattern is intact" \
        cmp <(region "$V/data" 0 $((ROUNDS * 8))) "$T/ref.bin"
    tree_after=$(tree_listing | grep -v meta-churn)
    if [ "$tree_after" == "$tree_before" ]; then
        ok "round $r: the tree is complete (same names, sizes, uuids)"
    else
        not_ok "round $r: the tree is complete (same names, sizes, uuids)" \
            "$(diff <(echo "$tree_before") <(echo "$tree_after") | head -n 20)"
    fi
    touch "$T/removing.$r"
    missing=$(comm -23 <(sort "$T/created.$r") <(sort "$T/removing.$r") |
        while read -r v; do
            [ -f "$MNT/dom/meta-churn/$v/data" ] || echo "$v"
        done)
    if [ -z "$missing" ]; then
        ok "round $r: every volume whose mkdir returned (and no rmdir began) is there"
    else
        not_ok "round $r: every volume whose mkdir returned (and no rmdir began) is there" "missing: $missing"
    fi
    back=$(while read -r v; do
        [ -e "$MNT/dom/meta-churn/$v" ] && echo "$v"
    done <"$T/removed.$r")
    if [ -z "$back" ]; then
        ok "round $r: no volume whose rmdir returned came back"
    else
        not_ok "round $r: no volume whose rmdir returned came back" "back: $back"
    fi
    # Every volume in the churn directory is usable: it has its data file,
    # it has a uuid, and its backend object exists.
    duuid=$(xget "$MNT/dom" user.vstor.uuid)
    bad=$(for d in "$MNT/dom/meta-churn"/*; do
        [ -e "$d" ] || continue
        obj=$(xget "$d" user.vstor.object)
        [ -f "$d/data" ] && [ -n "$obj" ] && [ -f "$DATA/domains/$duuid/$obj" ] ||
            basename "$d"
    done)
    if [ -z "$bad" ]; then
        ok "round $r: every surviving volume has its data and backend object"
    else
        not_ok "round $r: every surviving volume has its data and backend object" "broken: $bad"
    fi
    check "round $r: the volume is writable after the restart" \
        dd if=/dev/zero of="$V/data" bs=64k count=1 seek=$((200 * 16)) \
        oflag=direct conv=notrunc status=none
done

# The backend objects left by interrupted removals are not served as volumes
# and do not break anything: a rescan keeps the tree as it is.
tree_before=$(tree_listing)
check "user.vstor.rescan after the crashes" setfattr -n user.vstor.rescan -v 1 "$MNT"
assert_eq "$tree_before" "$(tree_listing)" "the rescan keeps the tree"
stop_vstorfs
catalog_ok final
