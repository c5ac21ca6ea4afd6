#!/bin/bash
# Who may do what (docs/interface.md, "Permissions"):
#   - the catalog (and its -wal/-shm) is root's, 0600;
#   - `map` is readable exactly by who can read `data` (data's read bits,
#     data's owner); chmod/chown of `map` or `backing` never touch `data`
#     (EPERM);
#   - the owner of `data` (QEMU as libvirt-qemu) reads and writes within the
#     volume's size; only root grows (EPERM; writes past the end: EFBIG),
#     empties (O_TRUNC), shrinks, snapshots, changes the format or the
#     backing.  Each refusal logs one line and changes nothing.
. "$(dirname "$0")/lib.sh"
requires setpriv truncate fallocate getfattr setfattr

QEMU_UID=64055
OTHER_UID=64056
M=$((1024 * 1024))

# A few requests lib.sh's vsys does not have: chown (optionally of the
# link itself) and a write at an offset; and every request as another user
# when VSYS_AS is set.
IFS= read -r -d '' PERMS_PY <<'EOF'
import errno, os, sys
op, a = sys.argv[1], sys.argv[2:]
try:
    if op == 'chown':
        uid, gid = (int(x) for x in a[1].split(':'))
        os.chown(a[0], uid, gid, follow_symlinks=len(a) < 3)
    elif op == 'write':
        fd = os.open(a[0], os.O_WRONLY)
        try:
            os.pwrite(fd, b'x' * int(a[2]), int(a[1]))
        finally:
            os.close(fd)
    else:
        sys.exit(2)
    print('OK')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF

VSYS_AS=
as_user() {
    setpriv --reuid="$1" --regid="$1" --clear-groups "${@:2}"
}
vsys() {
    local -a pre=()
    [ -n "$VSYS_AS" ] && pre=(setpriv --reuid="$VSYS_AS" --regid="$VSYS_AS" --clear-groups)
    case $1 in
    chown | write) "${pre[@]}" "$PY" -c "$PERMS_PY" "$@" ;;
    *) "${pre[@]}" "$PY" -c "$VSYS_PY" "$@" ;;
    esac
}

start_vstorfs

D=$MNT/dom
I=$D/img
V=$I/vol
B=$I/base
C=$I/clone
mkdir "$D" "$I" "$V" "$B" "$C" || bail "cannot create the tree"
truncate -s 4M "$V/data" "$B/data" || bail "cannot grow the volumes"
head -c $M /dev/urandom >"$T/one.bin"
dd if="$T/one.bin" of="$V/data" conv=notrunc status=none || bail "cannot write"
ln -s ../base "$C/backing" || bail "cannot make the clone"

# 1. The catalog is root's only.
for f in "$DATA/catalog.db" "$DATA/catalog.db-wal" "$DATA/catalog.db-shm"; do
    [ -e "$f" ] || continue
    assert_eq "600 0" "$(stat -c '%a %u' "$f")" "$(basename "$f") is 0600, root's"
done
stop_vstorfs
chmod 0644 "$DATA/catalog.db"
start_vstorfs
assert_eq 600 "$(stat -c %a "$DATA/catalog.db")" "a 0644 catalog left by an older version is made 0600 at start"

# 2. map follows data: its read bits, its owner.
assert_eq "400 0:0" "$(stat -c '%a %u:%g' "$V/map")" "map of a 0600 root volume: 0400 root"
check_fails "another user cannot read the map of a 0600 volume" \
    as_user $OTHER_UID head -c 1 "$V/map"
check "chown data to the qemu user" chown $QEMU_UID:$OTHER_UID "$V/data"
check "chmod data 0640" chmod 0640 "$V/data"
assert_eq "440 $QEMU_UID:$OTHER_UID" "$(stat -c '%a %u:%g' "$V/map")" \
    "map follows: 0440, data's owner and group"
check "the owner reads the map" as_user $QEMU_UID head -c 1 "$V/map"
check "chmod data back to 0600" chmod 0600 "$V/data"

# 3. chmod/chown of map or backing: EPERM, data untouched.
refused EPERM chmod "$V/map" 644
refused EPERM chmod "$V/map" 600
refused EPERM chown "$V/map" 0:0
refused EPERM chown "$C/backing" 0:0 nofollow
assert_eq "600 $QEMU_UID:$OTHER_UID" "$(stat -c '%a %u:%g' "$V/data")" \
    "data keeps its mode and owner"
assert_eq "600 0:0" "$(stat -c '%a %u:%g' "$C/data")" "the clone's data keeps its mode and owner"
check "chown of the clone's data itself works" chown $QEMU_UID:$QEMU_UID "$C/data"
check "chown it back" chown 0:0 "$C/data"

# 4. The owner of data works within the size; only root changes it.
chown $QEMU_UID:$QEMU_UID "$V/data"
check "the owner reads the data" cmp <(as_user $QEMU_UID head -c $M "$V/data") "$T/one.bin"
check "the owner writes within the size (O_DIRECT)" \
    as_user $QEMU_UID dd of="$V/data" bs=64k seek=16 oflag=direct conv=notrunc status=none <"$T/one.bin"
check "the owner writes up to the last byte" as_user $QEMU_UID \
    dd of="$V/data" bs=4096 seek=$((4 * M / 4096 - 1)) count=1 conv=notrunc status=none <"$T/one.bin"
check "the owner preallocates within the size" as_user $QEMU_UID fallocate -o 0 -l 2M "$V/data"
check "the owner punches a hole" as_user $QEMU_UID fallocate -p -o $((3 * M)) -l 4096 "$V/data"
check "the owner preallocates past the end with KEEP_SIZE (no growth)" \
    as_user $QEMU_UID fallocate -n -o $((4 * M)) -l 1M "$V/data"
VSYS_AS=$QEMU_UID
refused EFBIG write "$V/data" $((4 * M)) 4096
refused EFBIG write "$V/data" $((4 * M - 10)) 20
refused EPERM truncate "$V/data" $((8 * M))
refused EPERM ftruncate "$V/data" $((4 * M + 1))
refused EPERM fallocate "$V/data" 0 $((4 * M - 4096)) 8192
refused EPERM open "$V/data" 'O_WRONLY|O_TRUNC'
refused EPERM setxattr "$V/data" user.vstor.snapshot snap1
refused EPERM setxattr "$V/data" user.vstor.shrink-to 0
refused EPERM setxattr "$V/data" user.vstor.format qcow2
# The volume directories are root's 0755: the kernel keeps the owner of
# data from making or removing links in them before the daemon is asked.
REFUSED_NOLOG="the kernel refuses writes to root's 0755 volume directory itself"
refused EACCES symlink ../base "$V/backing"
refused EACCES unlink "$C/backing"
unset REFUSED_NOLOG
VSYS_AS=
assert_eq $((4 * M)) "$(fsize "$V/data")" "the size did not change"
check_fails "no snapshot was made" test -e "$I/snap1"
check "the data's first MiB is intact" same_region "$V/data" 0 1 "$T/one.bin"

# Root still does all of it.
check "root grows the volume" truncate -s 8M "$V/data"
check "root writes past the end" dd if="$T/one.bin" of="$V/data" bs=1M seek=8 conv=notrunc status=none
assert_eq $((9 * M)) "$(fsize "$V/data")" "root's write past the end grew it to 9M"
check "root takes a snapshot of the owner's volume" setfattr -n user.vstor.snapshot -v snap1 "$V"
check "the snapshot exists" test -f "$I/snap1/data"
assert_eq "600 $QEMU_UID:$QEMU_UID" "$(stat -c '%a %u:%g' "$V/data")" "the live volume keeps its owner"
check "the owner still writes within the size after the snapshot" \
    as_user $QEMU_UID dd of="$V/data" bs=4096 count=1 conv=notrunc status=none <"$T/one.bin"
# Its top layer is qcow2 now, and a qcow2 layer does not shrink.
refused EOPNOTSUPP setxattr "$V" user.vstor.shrink-to $M

stop_vstorfs
# The catalog keeps data's owner and mode; map and backing follow.
start_vstorfs
assert_eq "600 $QEMU_UID:$QEMU_UID" "$(stat -c '%a %u:%g' "$V/data")" "after a restart: data's owner kept"
assert_eq "400 $QEMU_UID:$QEMU_UID" "$(stat -c '%a %u:%g' "$V/map")" "after a restart: map follows"
stop_vstorfs
