#!/bin/bash
# The extended attributes of every node (root, domain, image, volume, data),
# the refusals (ENODATA, EPERM, ENOTSUP, EINVAL), user.vstor.shrink-to, and
# emptying a volume by opening it with O_TRUNC.
. "$(dirname "$0")/lib.sh"
requires getfattr setfattr truncate date

M=$((1024 * 1024))
ALLOWED_CAPS=" unmap write_zeroes alloc_status direct clone copy snapshot "

start_vstorfs
t_start=$(date -u +%s)

D=$MNT/dom
I=$D/img
V=$I/vol1
V2=$I/vol2
mkdir "$D" "$I" "$V" "$V2" || bail "cannot create the tree"
pattern 0x11 4 >"$T/p11.bin"
dd if="$T/p11.bin" of="$V/data" bs=1M oflag=direct conv=fsync status=none ||
    bail "cannot write the volume"
truncate -s 1M "$V2/data" || bail "cannot grow the second volume"

# The capacity and use of the data dir's file system.
read -r blocks bfree bavail bsize <<<"$(stat -f -c '%b %f %a %S' "$DATA")"
CAP=$((blocks * bsize))
USED_FREE=$(((blocks - bfree) * bsize))
USED_AVAIL=$(((blocks - bavail) * bsize))

check_caps() {
    local node=$1 caps c bad=
    caps=$(xget "$node" user.vstor.caps)
    for c in ${caps//,/ }; do
        [[ $ALLOWED_CAPS == *" $c "* ]] || bad+=" $c"
    done
    if [ -z "$bad" ]; then
        ok "user.vstor.caps of $node lists known offloads ($caps)"
    else
        not_ok "user.vstor.caps of $node lists known offloads" "unknown:$bad (value '$caps')"
    fi
}

check_created() {
    local node=$1 created when
    created=$(xget "$node" user.vstor.created)
    assert_match "$ISO_RE" "$created" "user.vstor.created of $node is ISO 8601 UTC" || return
    when=$(date -u -d "$created" +%s)
    if [ "$when" -ge $((t_start - 5)) ] && [ "$when" -le $(($(date -u +%s) + 5)) ]; then
        ok "user.vstor.created of $node is the creation time"
    else
        not_ok "user.vstor.created of $node is the creation time" \
            "created $created, test started $(date -u -d "@$t_start" +%FT%TZ)"
    fi
}

check_capacity() {
    local node=$1 size alloc
    size=$(xget "$node" user.vstor.size)
    if within_pct "${size:-0}" "$CAP" 1; then
        ok "user.vstor.size of $node is the capacity"
    else
        not_ok "user.vstor.size of $node is the capacity" "got '$size', capacity $CAP"
    fi
    alloc=$(xget "$node" user.vstor.allocated)
    alloc=${alloc:-0}
    if within_pct "$alloc" "$USED_FREE" 1 || within_pct "$alloc" "$USED_AVAIL" 1; then
        ok "user.vstor.allocated of $node is capacity - free"
    else
        not_ok "user.vstor.allocated of $node is capacity - free" \
            "got '$alloc', expected about $USED_FREE (or $USED_AVAIL)"
    fi
}

check_listed() {
    local node=$1 want=$2 names n
    names=" $(getfattr --absolute-names -d -m user.vstor "$node" |
        sed -n 's/^\(user\.vstor\.[a-z-]*\)=.*/\1/p' | sort | xargs) "
    for n in $want; do
        [[ $names == *" user.vstor.$n "* ]] ||
            { not_ok "getfattr -d lists user.vstor.$n on $node" "listed:$names"; continue; }
        ok "getfattr -d lists user.vstor.$n on $node"
    done
    for n in rescan shrink-to; do
        [[ $names != *" user.vstor.$n "* ]] ||
            { not_ok "getfattr -d does not list write-only user.vstor.$n on $node"; continue; }
        ok "getfattr -d does not list write-only user.vstor.$n on $node"
    done
}

COMMON="uuid kind size allocated format backend created caps"
DATA_REAL=$(realpath "$DATA")

# Root.
ruuid=$(xget "$MNT" user.vstor.uuid)
assert_match "$UUID_RE" "$ruuid" "root: user.vstor.uuid is a uuid"
assert_eq root "$(xget "$MNT" user.vstor.kind)" "root: user.vstor.kind"
check_capacity "$MNT"
assert_eq - "$(xget "$MNT" user.vstor.format)" "root: user.vstor.format is -"
assert_eq "dir:$DATA_REAL/domains" "$(xget "$MNT" user.vstor.backend)" \
    "root: user.vstor.backend is where the domains are, dir:DATA_DIR/domains"
assert_match "$ISO_RE" "$(xget "$MNT" user.vstor.created)" "root: user.vstor.created is ISO 8601 UTC"
check_caps "$MNT"
expect_errno ENODATA getxattr "$MNT" user.vstor.object
check_listed "$MNT" "$COMMON"

# Domain.
duuid=$(xget "$D" user.vstor.uuid)
assert_match "$UUID_RE" "$duuid" "domain: user.vstor.uuid is a uuid"
check "domain: DATA_DIR/domains/<uuid> exists" test -d "$DATA/domains/$duuid"
check "domain: its metadata object exists" test -f "$DATA/domains/$duuid/metadata"
assert_eq domain "$(xget "$D" user.vstor.kind)" "domain: user.vstor.kind"
check_capacity "$D"
assert_eq - "$(xget "$D" user.vstor.format)" "domain: user.vstor.format is -"
DBACKEND="dir:$DATA_REAL/domains/$duuid"
assert_eq "$DBACKEND" "$(xget "$D" user.vstor.backend)" "domain: user.vstor.backend"
check_created "$D"
check_caps "$D"
expect_errno ENODATA getxattr "$D" user.vstor.object
check_listed "$D" "$COMMON"

# Image.
iuuid=$(xget "$I" user.vstor.uuid)
assert_match "$UUID_RE" "$iuuid" "image: user.vstor.uuid is a uuid"
assert_eq image "$(xget "$I" user.vstor.kind)" "image: user.vstor.kind"
assert_eq $((5 * M)) "$(xget "$I" user.vstor.size)" "image: user.vstor.size is the sum of its volumes"
assert_match '^[0-9]+$' "$(xget "$I" user.vstor.allocated)" "image: user.vstor.allocated is a number"
assert_eq - "$(xget "$I" user.vstor.format)" "image: user.vstor.format is -"
assert_eq "$DBACKEND" "$(xget "$I" user.vstor.backend)" "image: user.vstor.backend is its domain's"
check_created "$I"
check_caps "$I"
expect_errno ENODATA getxattr "$I" user.vstor.object
check_listed "$I" "$COMMON"

# Volume and its data.
vuuid=$(xget "$V" user.vstor.uuid)
assert_match "$UUID_RE" "$vuuid" "volume: user.vstor.uuid is a uuid"
for node in "$V" "$V/data"; do
    kind=volume
    [ "$node" == "$V" ] || kind=data
    assert_eq $kind "$(xget "$node" user.vstor.kind)" "$kind: user.vstor.kind"
    assert_eq $((4 * M)) "$(xget "$node" user.vstor.size)" "$kind: user.vstor.size"
    alloc=$(xget "$node" user.vstor.allocated)
    assert_num "${alloc:-x}" ge $((4 * M)) "$kind: user.vstor.allocated counts the 4M written"
    assert_num "${alloc:-x}" le $((5 * M)) "$kind: user.vstor.allocated is not more than written"
    assert_eq raw "$(xget "$node" user.vstor.format)" "$kind: user.vstor.format"
    assert_eq "$DBACKEND" "$(xget "$node" user.vstor.backend)" "$kind: user.vstor.backend is its domain's"
    assert_eq "$vuuid" "$(xget "$node" user.vstor.object)" "$kind: user.vstor.object is the volume's uuid (the file name)"
    check_created "$node"
    check_caps "$node"
    check_listed "$node" "$COMMON object"
done
assert_match "$UUID_RE" "$(xget "$V/data" user.vstor.uuid)" "data: user.vstor.uuid is a uuid"
obj=$DATA/domains/$duuid/$(xget "$V" user.vstor.object)
check "volume: the object file exists in the domain's directory" test -f "$obj"
assert_eq $((4 * M)) "$(fsize "$obj")" "volume: the object file has the volume's size"
uniq=$(printf '%s\n' "$ruuid" "$duuid" "$iuuid" "$vuuid" "$(xget "$V2" user.vstor.uuid)" | sort -u | wc -l)
assert_eq 5 "$uniq" "root, domain, image and volumes have distinct uuids"

# Refusals.
assert_eq ok "$(xget "$V" user.vstor.status)" "volume: user.vstor.status is ok"
assert_eq ok "$(xget "$V/data" user.vstor.status)" "data: user.vstor.status is ok"
expect_errno ENODATA getxattr "$D" user.vstor.status
expect_errno ENODATA getxattr "$V" user.vstor.nope
expect_errno ENODATA getxattr "$V/data" user.mine
expect_errno EPERM setxattr "$V/data" user.vstor.kind volume
expect_errno EPERM setxattr "$MNT" user.vstor.uuid "$ruuid"
expect_errno EPERM removexattr "$V" user.vstor.size
expect_errno ENODATA setxattr "$I" user.vstor.nope 1
expect_errno ENOTSUP setxattr "$V" user.mine 1
expect_errno ENOTSUP setxattr "$MNT" user.mine 1
expect_errno EINVAL setxattr "$V" user.vstor.shrink-to abc
expect_errno EINVAL setxattr "$V" user.vstor.shrink-to 12abc
expect_errno EINVAL setxattr "$V" user.vstor.shrink-to $((4 * M + 1))
expect_errno EINVAL setxattr "$V/data" user.vstor.shrink-to $((1024 * M))
expect_errno EINVAL setxattr "$MNT" user.vstor.rescan 2
assert_eq $((4 * M)) "$(fsize "$V/data")" "the refused shrinks changed nothing"

# vsys_busy_retry OP ARGS...: the call's result, retried for up to 2 s while
# it says EBUSY (a FUSE release reaches the daemon after close returns).
vsys_busy_retry() {
    local out i
    for ((i = 0; i < 20; i++)); do
        out=$(vsys "$@")
        [ "$out" == EBUSY ] || break
        sleep 0.1
    done
    echo "$out"
}

# shrink-to: works when nobody has the volume open.
assert_eq OK "$(vsys_busy_retry setxattr "$V" user.vstor.shrink-to $M)" "shrink-to 1M on the volume works"
assert_eq $M "$(fsize "$V/data")" "data is now 1M"
assert_eq $M "$(xget "$V" user.vstor.size)" "user.vstor.size is now 1M"
assert_num "$(xget "$V" user.vstor.allocated)" le $((2 * M)) "allocated shrank with it"
check "the first 1M is kept" cmp -n $M "$T/p11.bin" "$V/data"
check "truncate grows it back to 4M" truncate -s 4M "$V/data"
check "the regrown range reads zeros" same_region "$V/data" 1 3 <(head -c $((3 * M)) /dev/zero)
assert_eq OK "$(vsys_busy_retry setxattr "$V/data" user.vstor.shrink-to 524288)" "shrink-to 512K on data works"
assert_eq 524288 "$(fsize "$V/data")" "data is now 512K"
assert_eq OK "$(vsys_busy_retry setxattr "$V" user.vstor.shrink-to 524288)" "shrink-to the current size works"
check "setfattr -n user.vstor.shrink-to works" setfattr -n user.vstor.shrink-to -v 4096 "$V"
assert_eq 4096 "$(fsize "$V/data")" "setfattr shrank data to 4096"

# shrink-to: EBUSY while another process has the data open.
truncate -s 2M "$V2/data"
hold_open "$V2/data"
expect_errno EBUSY setxattr "$V2" user.vstor.shrink-to 4096
expect_errno EBUSY setxattr "$V2/data" user.vstor.shrink-to 4096
assert_eq $((2 * M)) "$(fsize "$V2/data")" "the refused shrink changed nothing"
release_hold
assert_eq OK "$(vsys_busy_retry setxattr "$V2" user.vstor.shrink-to 4096)" "shrink-to works once the holder closed"
assert_eq 4096 "$(fsize "$V2/data")" "data is now 4096 bytes"

# O_TRUNC empties only when nobody else has the data open.
dd if="$T/p11.bin" of="$V2/data" bs=1M count=2 conv=fsync status=none
hold_open "$V2/data"
expect_errno EBUSY open "$V2/data" 'O_WRONLY|O_TRUNC'
assert_eq $((2 * M)) "$(fsize "$V2/data")" "the refused O_TRUNC changed the size of nothing"
check "the refused O_TRUNC kept the bytes" cmp -n $((2 * M)) "$T/p11.bin" "$V2/data"
release_hold
assert_eq OK "$(vsys_busy_retry open "$V2/data" 'O_WRONLY|O_TRUNC')" "O_TRUNC works once the holder closed"
assert_eq 0 "$(fsize "$V2/data")" "O_TRUNC emptied the volume"
assert_eq 0 "$(xget "$V2" user.vstor.size)" "user.vstor.size is 0"
assert_num "$(xget "$V2" user.vstor.allocated)" lt 65536 "allocated is about 0"

stop_vstorfs
