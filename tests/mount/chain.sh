#!/bin/bash
# Thin clones through a volume's `backing` symlink.  A base volume is filled
# with a random pattern by cp; `ln -s ../base clone/backing` makes an empty
# volume read through to it; writes to the clone (qemu-io at aligned and
# unaligned offsets, with and without O_DIRECT, and dd) change the clone only,
# checked against reference files that get the same writes; a clone of the
# clone and a clone in another image; every refused request with its errno;
# the base read-only.  On the backend: each qcow2 layer file passes
# `qemu-img check`, `qemu-img info --backing-chain` follows the chain by the
# names in the headers, and `qemu-img compare` finds the chain opened by
# qemu-img itself equal to the reference and to the mount's data.  The chain
# survives an unmount and a mount, and a rebuild of a deleted catalog.
. "$(dirname "$0")/lib.sh"
requires qemu-img qemu-io jq getfattr setfattr cp md5sum sync

M=$((1024 * 1024))
SIZE=$((16 * M))

start_vstorfs

D=$MNT/dom
I=$D/img
I2=$D/img2
B=$I/base
C=$I/clone
C2=$I/clone2
O=$I2/other
mkdir -p "$B" "$C" "$C2" "$O" "$I/empty" "$I/full" "$I/tw" "$MNT/dom2/img/vol" ||
    bail "cannot create the tree"
E=$I/empty
F=$I/full
TW=$I/tw
truncate -s 1M "$F/data" "$TW/data" || bail "cannot grow the volumes"
dd if=/dev/urandom of="$F/data" bs=64k count=1 conv=notrunc status=none ||
    bail "cannot write a volume"

BACKEND_DIR=$(getfattr --only-values -n user.vstor.backend "$D" | sed s/^dir://)
[ -d "$BACKEND_DIR" ] || bail "no backend directory for $D ('$BACKEND_DIR')"

# layer_file VOLUME: the volume's object on the backend.
layer_file() {
    echo "$BACKEND_DIR/$(xget "$1" user.vstor.object)"
}

# qio_both VOLUME REF QEMU-IO-ARGS...: the same qemu-io commands on the
# volume's data and on its reference file.
qio_both() {
    local vol=$1 ref=$2
    shift 2
    qemu-io -f raw "$@" "$vol/data" && qemu-io -f raw "$@" "$ref"
}

# dd_both VOLUME REF DD-ARGS...: the same dd into the volume and the reference.
dd_both() {
    local vol=$1 ref=$2
    shift 2
    local a plain=()
    for a in "$@"; do
        [ "$a" == oflag=direct ] || plain+=("$a")
    done
    dd of="$vol/data" conv=notrunc,fsync status=none "$@" &&
        dd of="$ref" conv=notrunc status=none "${plain[@]}"
}

# The base: a random pattern copied in with cp.
head -c $SIZE /dev/urandom >"$T/base.ref"
check "cp a random pattern into the base" cp "$T/base.ref" "$B/data"
check "cmp: the base holds the pattern" cmp "$T/base.ref" "$B/data"

# 1. A thin clone in the same image.
check "ln -s ../base clone/backing" ln -s ../base "$C/backing"
assert_eq "../base" "$(readlink "$C/backing")" "readlink clone/backing is ../base"
assert_eq "symbolic link" "$(stat -c %F "$C/backing")" "clone/backing is a symlink"
assert_eq $SIZE "$(fsize "$C/data")" "the clone has the base's size"
assert_eq qcow2 "$(xget "$C" user.vstor.format)" "user.vstor.format of the clone is qcow2"
assert_eq raw "$(xget "$B" user.vstor.format)" "user.vstor.format of the base stays raw"
assert_num "$(du_bytes "$(layer_file "$C")")" lt $M \
    "the clone's layer file is small (nothing copied)"
check "cmp: the clone reads the base's bytes" cmp "$T/base.ref" "$C/data"

cp "$T/base.ref" "$T/clone.ref"
head -c $M /dev/urandom >"$T/rnd.bin"
check "qemu-io: aligned writes into the clone (cluster, 1M O_DIRECT)" \
    qio_both "$C" "$T/clone.ref" -n -c 'write -P 0x5a 0 64k' -c 'write -P 0x99 4M 1M'
check "qemu-io: unaligned writes into the clone (odd offsets and lengths)" \
    qio_both "$C" "$T/clone.ref" -c 'write -P 0x3c 1234567 70001' \
    -c 'write -P 0xe1 8388095 1027' -c 'write -P 0x17 16773121 4095'
check "qemu-io: a 512-byte O_DIRECT write inside a cluster" \
    qio_both "$C" "$T/clone.ref" -n -c 'write -P 0x42 10486272 512'
check "dd: 3 blocks of 4k at block 777" \
    dd_both "$C" "$T/clone.ref" if="$T/rnd.bin" bs=4k count=3 seek=777
check "dd oflag=direct: 128k at 6400k" \
    dd_both "$C" "$T/clone.ref" if="$T/rnd.bin" bs=64k count=2 seek=100 skip=3 oflag=direct
check "cmp: the clone holds the base plus its writes" cmp "$T/clone.ref" "$C/data"
check "cmp: the base is unchanged" cmp "$T/base.ref" "$B/data"
check "cmp: the clone read with O_DIRECT holds the same" \
    cmp <(dd if="$C/data" bs=1M iflag=direct status=none) "$T/clone.ref"
assert_eq $SIZE "$(fsize "$C/data")" "the writes kept the clone's size"

# 2. A clone of the clone.
check "ln -s ../clone clone2/backing" ln -s ../clone "$C2/backing"
assert_eq "../clone" "$(readlink "$C2/backing")" "readlink clone2/backing is ../clone"
check "cmp: clone2 reads the clone's bytes" cmp "$T/clone.ref" "$C2/data"
cp "$T/clone.ref" "$T/clone2.ref"
check "qemu-io: writes into clone2" \
    qio_both "$C2" "$T/clone2.ref" -c 'write -P 0x77 0 4k' \
    -c 'write -P 0x78 1300000 200000' -c 'write -P 0x79 15M 1M'
check "dd: 4k at block 1000 of clone2" \
    dd_both "$C2" "$T/clone2.ref" if="$T/rnd.bin" bs=4k count=1 seek=1000 skip=9
check "cmp: clone2 holds the clone plus its writes" cmp "$T/clone2.ref" "$C2/data"
check "cmp: the clone is unchanged by writes to clone2" cmp "$T/clone.ref" "$C/data"
check "cmp: the base is unchanged by writes to clone2" cmp "$T/base.ref" "$B/data"

# 3. A clone in another image of the same domain.
check "ln -s ../../img/base img2/other/backing" ln -s ../../img/base "$O/backing"
assert_eq "../../img/base" "$(readlink "$O/backing")" \
    "readlink img2/other/backing is ../../img/base"
check "cmp: the clone in img2 reads the base's bytes" cmp "$T/base.ref" "$O/data"
cp "$T/base.ref" "$T/other.ref"
check "qemu-io: writes into the clone in img2" \
    qio_both "$O" "$T/other.ref" -c 'write -P 0xa1 65535 2' -c 'write -P 0xa2 12M 3M'
check "cmp: the clone in img2 holds the base plus its writes" cmp "$T/other.ref" "$O/data"
check "cmp: the base is unchanged by writes to img2/other" cmp "$T/base.ref" "$B/data"
check "cmp: the first clone is unchanged by writes to img2/other" cmp "$T/clone.ref" "$C/data"

# 4. Refused links.  The system calls go through python (vsys), so that ln's
# own handling of existing names and directories does not interfere.
refused EINVAL symlink "$B" "$E/backing"
refused EINVAL symlink /dom/img/base "$E/backing"
refused EINVAL symlink .. "$E/backing"
refused EINVAL symlink ../../img2 "$E/backing"
refused EINVAL symlink ../.. "$E/backing"
refused EINVAL symlink ../base/data "$E/backing"
refused EXDEV symlink ../../../dom2/img/vol "$E/backing"
refused EXDEV symlink ../../../../elsewhere "$E/backing"
refused ELOOP symlink . "$E/backing"
refused ELOOP symlink ../empty "$E/backing"
refused ELOOP symlink ../clone2 "$B/backing"
refused ENOENT symlink ../nope "$E/backing"
refused ENOENT symlink ../../img3/base "$E/backing"
refused ENOTEMPTY symlink ../base "$F/backing"
refused ENOTEMPTY unlink "$C/backing"
refused ENOTEMPTY unlink "$O/backing"
# The kernel finds the existing link by lookup and answers itself.
REFUSED_NOLOG="the kernel answers EEXIST itself after a lookup"
refused EEXIST symlink ../base "$C/backing"
unset REFUSED_NOLOG

# EBUSY: the volume is open, or the target is open for writing.
hold_open "$E/data" || fail "hold $E/data open"
refused EBUSY symlink ../base "$E/backing"
release_hold
# shellcheck disable=SC2217 # sleep only has to hold the file open
sleep 600 0<>"$TW/data" &
HOLD_PID=$!
BG_PIDS+=("$HOLD_PID")
for ((i = 0; i < 50; i++)); do
    [ "$(readlink "/proc/$HOLD_PID/fd/0")" == "$TW/data" ] && break
    sleep 0.1
done
refused EBUSY symlink ../tw "$E/backing"
release_hold
# A target open read-only is fine; unlinking an empty clone's backing makes
# it an empty volume again and its base writable again.
hold_open "$TW/data" || fail "hold $TW/data open"
check "ln -s ../tw works while tw is open read-only" ln -s ../tw "$E/backing"
release_hold
assert_eq "../tw" "$(readlink "$E/backing")" "readlink empty/backing is ../tw"
expect_errno EROFS open "$TW/data" O_WRONLY
check "unlink empty/backing (the clone owns nothing)" unlink "$E/backing"
check_fails "empty/backing is gone" test -L "$E/backing"
assert_eq 0 "$(fsize "$E/data")" "the volume is empty again"
assert_eq raw "$(xget "$E" user.vstor.format)" "the volume is raw again"
assert_eq OK "$(vsys open "$TW/data" O_WRONLY)" "tw opens for writing again"

# EROFS: a volume that other volumes are based on is read-only.
refused EROFS open "$B/data" O_WRONLY
refused EROFS open "$B/data" O_RDWR
refused EROFS truncate "$B/data" $((32 * M))
refused EROFS setxattr "$B" user.vstor.shrink-to 4096
refused EROFS open "$C/data" O_WRONLY
check_fails "dd into the base fails" \
    dd if="$T/rnd.bin" of="$B/data" bs=4k count=1 conv=notrunc status=none
check_fails "qemu-io cannot open the base for writing" \
    qemu-io -f raw -c 'write -P 0 0 4k' "$B/data"
check "qemu-io opens the base read-only and reads it" \
    qemu-io -r -f raw -c 'read 0 64k' "$B/data"
assert_eq "OK" "$(vsys open "$B/data" O_RDONLY)" "the base opens read-only"
check "cmp: the base is unchanged" cmp "$T/base.ref" "$B/data"

# 5. The layer files on the backend, opened by qemu-img itself.
check "fsync every data file" sync "$B/data" "$C/data" "$C2/data" "$O/data"
# Each layer as FORMAT:FILE:VOLUME, taken while mounted (the objects do not
# change from here on).
LAYERS=()
for v in "$B" "$C" "$C2" "$O"; do
    LAYERS+=("$(xget "$v" user.vstor.format):$(layer_file "$v"):${v#"$MNT"/}")
done
check_layers() {
    local what=$1 l fmt f v
    for l in "${LAYERS[@]}"; do
        IFS=: read -r fmt f v <<<"$l"
        case $fmt in
        qcow2)
            check "$what: qemu-img check of $v's layer is clean" \
                qemu-img check -f qcow2 "$f"
            ;;
        raw) check "$what: $v's raw layer is on the backend" test -f "$f" ;;
        *) fail "$what: $v has format '$fmt'" ;;
        esac
    done
}
check_layers "mounted"

chain=$(qemu-img info --backing-chain --output=json -f qcow2 "$(layer_file "$C2")")
assert_eq "$(layer_file "$C2") $(layer_file "$C") $(layer_file "$B")" \
    "$(jq -r '.[].filename' <<<"$chain" | xargs)" \
    "qemu-img info --backing-chain on clone2's file lists clone2, clone, base"
assert_eq "qcow2 qcow2 raw" "$(jq -r '.[].format' <<<"$chain" | xargs)" \
    "the chain's formats are qcow2, qcow2, raw"
assert_eq "$(xget "$C" user.vstor.object)" "$(jq -r '.[0]["backing-filename"]' <<<"$chain")" \
    "clone2's header names the clone's object by a relative name"
assert_eq "$(xget "$B" user.vstor.object)" "$(jq -r '.[1]["backing-filename"]' <<<"$chain")" \
    "the clone's header names the base's object by a relative name"
assert_eq "$SIZE $SIZE $SIZE" "$(jq -r '.[]["virtual-size"]' <<<"$chain" | xargs)" \
    "every layer has the volume's virtual size"
chain=$(qemu-img info --backing-chain --output=json -f qcow2 "$(layer_file "$O")")
assert_eq "$(layer_file "$O") $(layer_file "$B")" "$(jq -r '.[].filename' <<<"$chain" | xargs)" \
    "qemu-img info --backing-chain on img2/other's file lists it and the base"

for v in clone clone2; do
    check "qemu-img compare: $v's backend chain equals its reference" \
        qemu-img compare -f qcow2 -F raw "$(layer_file "$I/$v")" "$T/$v.ref"
    check "qemu-img compare: $v's backend chain equals its data on the mount" \
        qemu-img compare -f qcow2 -F raw "$(layer_file "$I/$v")" "$I/$v/data"
done
check "qemu-img compare: img2/other's backend chain equals its reference" \
    qemu-img compare -f qcow2 -F raw "$(layer_file "$O")" "$T/other.ref"
check "qemu-img compare: img2/other's backend chain equals its data on the mount" \
    qemu-img compare -f qcow2 -F raw "$(layer_file "$O")" "$O/data"
check "qemu-img compare: the base's file equals its reference" \
    qemu-img compare -f raw -F raw "$(layer_file "$B")" "$T/base.ref"

# 6. Persistence: the same chain after an unmount and a mount, and after the
# catalog is deleted and rebuilt from the domain.
chain_state() {
    local v
    for v in "$B" "$C" "$C2" "$O" "$E" "$TW" "$F"; do
        printf '%s backing=%s format=%s size=%s uuid=%s md5=%s\n' "${v#"$MNT"/}" \
            "$(readlink "$v/backing" || echo -)" "$(xget "$v" user.vstor.format)" \
            "$(fsize "$v/data")" "$(xget "$v" user.vstor.uuid)" \
            "$(md5sum <"$v/data" | cut -d' ' -f1)"
    done
}
compare_chain() {
    local what=$1 now
    now=$(chain_state)
    if [ "$now" == "$state0" ]; then
        ok "$what: same links, formats, sizes, uuids and bytes"
    else
        not_ok "$what: same links, formats, sizes, uuids and bytes" \
            "$(diff <(echo "$state0") <(echo "$now"))"
    fi
    check "$what: cmp the base" cmp "$T/base.ref" "$B/data"
    check "$what: cmp the clone" cmp "$T/clone.ref" "$C/data"
    check "$what: cmp clone2" cmp "$T/clone2.ref" "$C2/data"
    check "$what: cmp img2/other" cmp "$T/other.ref" "$O/data"
    expect_errno EROFS open "$B/data" O_WRONLY
    expect_errno EROFS open "$C/data" O_RDWR
}
state0=$(chain_state)
diag "$state0"
C2_FILE=$(layer_file "$C2")

stop_vstorfs
check_layers "unmounted"
start_vstorfs
compare_chain "after remount"

stop_vstorfs
rm -f "$DATA/catalog.db" "$DATA/catalog.db-wal" "$DATA/catalog.db-shm"
start_vstorfs
compare_chain "after deleting the catalog"
check "writes into clone2 still work after the rebuild" \
    qio_both "$C2" "$T/clone2.ref" -c 'write -P 0x5e 7M 100k'
check "cmp: clone2 after the write" cmp "$T/clone2.ref" "$C2/data"
check "cmp: the clone is unchanged" cmp "$T/clone.ref" "$C/data"

stop_vstorfs
check_layers "final"
check "after the final unmount: qemu-img compare of clone2's chain and its reference" \
    qemu-img compare -f qcow2 -F raw "$C2_FILE" "$T/clone2.ref"
