#!/bin/bash
# Space can always be freed through the mount: with the data dir's file
# system full (a 64 MiB loop-mounted ext4 filled through a volume until
# ENOSPC), rename and rmdir of a volume still work, the space comes back
# (df), `vstor rescan` works, the daemon restarts on the full file system
# and agrees.  What makes it work is DATA_DIR/reserve, released when the
# file system is full and made again when there is room.
. "$(dirname "$0")/lib.sh"
requires mkfs.ext4 mount umount sync

MIB=1048576
RESERVE=$((4 * MIB))

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

truncate -s 64M "$T/fs.img"
mkfs.ext4 -q -F "$T/fs.img" || bail "mkfs.ext4"
mount -o loop "$T/fs.img" "$DATA" || bail "cannot loop-mount $T/fs.img"

# Bytes free on the data dir's file system for root (what the daemon can
# use) and for others (what df shows as available).
free_root() {
    sync -f "$DATA"
    stat -f -c '%f %S' "$DATA" | awk '{ print $1 * $2 }'
}
df_avail() {
    sync -f "$DATA"
    stat -f -c '%a %S' "$DATA" | awk '{ print $1 * $2 }'
}

# fill VOLUME: write to its data until the file system is full.
fill() {
    local out
    out=$(pattern 0xab 64 | dd of="$1/data" bs=1M oflag=append \
        conv=notrunc,fsync 2>&1)
    grep -q 'No space left' <<<"$out"
}

start_vstorfs
check "the daemon made DATA_DIR/reserve" test -f "$DATA/reserve"
assert_eq $RESERVE "$(du_bytes "$DATA/reserve")" "... with $RESERVE bytes allocated"

I=$MNT/dom/img
check "mkdir three volumes" mkdir -p "$I/v1" "$I/v2" "$I/v3"
check "16 MiB into v2" dd if=/dev/urandom of="$I/v2/data" bs=1M count=16 \
    conv=fsync status=none
check "fill the file system through v1 until ENOSPC" fill "$I/v1"
diag "free for root after filling: $(free_root) bytes"
assert_num "$(free_root)" lt $RESERVE "the file system is full"
# a guest retrying its failed writes: one log line, not one a request
log_mark
for ((k = 0; k < 50; k++)); do
    pattern 0xcd 1 | dd of="$I/v1/data" bs=1M oflag=append,direct conv=notrunc \
        status=none 2>/dev/null && break
done
assert_num "$k" eq 50 "50 more writes past the end fail on the full file system"
assert_num "$(log_new_lines | grep -ac "write of 'dom/img/v1' at")" le 1 \
    "... and make at most one log line (rate-limited per volume)"
sum1=$(md5sum <"$I/v1/data")
full_avail=$(df_avail)

log_mark
check "mv v3 v3b works on the full file system" mv "$I/v3" "$I/v3b"
check "... the reserve was released for it, with a log line" \
    log_gained 'released the 4 MiB reserve'
check "rmdir v2 works on the full file system" rmdir "$I/v2"
check_fails "... v2 is gone" test -e "$I/v2"
avail=$(df_avail)
diag "df available: $full_avail bytes when full, $avail after the rmdir"
assert_num "$avail" ge $((full_avail + 4 * MIB)) "the space came back (df)"
check "the reserve was made again with the room" test -f "$DATA/reserve"
listing=$(tree_listing)
check "vstor rescan works" "$VSTOR" rescan "$MNT"
assert_eq "$listing" "$(tree_listing)" "... and the tree is what it was"
check "mkdir works again" mkdir "$I/v4"

# Full again, then a restart on the full file system.
check "fill the file system again" fill "$I/v1"
assert_num "$(free_root)" lt $RESERVE "the file system is full again"
sum1=$(md5sum <"$I/v1/data")
listing=$(tree_listing)
stop_vstorfs
start_vstorfs
assert_eq "$listing" "$(tree_listing)" "a restart on the full file system agrees"
assert_eq "$sum1" "$(md5sum <"$I/v1/data")" "... v1's data too"
# The store's capability probe (a scratch file) had room: discard and
# SEEK_DATA still reach the backend.
assert_match 'unmap' "$(xget "$MNT/dom" user.vstor.caps)" \
    "... the domain still offers unmap"
assert_match 'alloc_status' "$(xget "$MNT/dom" user.vstor.caps)" \
    "... and alloc_status"
check "rmdir v4 after the restart" rmdir "$I/v4"
check "mv v3b v3 after the restart" mv "$I/v3b" "$I/v3"
check "vstor rescan after the restart" "$VSTOR" rescan "$MNT"
check "rmdir v1 gives the space back" rmdir "$I/v1"
check "the reserve is made again once it fits" test -f "$DATA/reserve"
assert_num "$(df_avail)" ge $((40 * MIB)) "df: most of the file system is free"
listing=$(tree_listing)
stop_vstorfs
start_vstorfs
assert_eq "$listing" "$(tree_listing)" "a last restart agrees"
stop_vstorfs
