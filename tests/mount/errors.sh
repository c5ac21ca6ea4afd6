#!/bin/bash
# Every row of the refused-requests table in docs/interface.md: the exact
# errno, one line in the daemon's log, and nothing changed (the tree and
# the data dir's domains).
. "$(dirname "$0")/lib.sh"
requires truncate

start_vstorfs

D=$MNT/dom
I=$D/img
V=$I/vol
mkdir "$D" "$D/img2" "$MNT/dom2" "$I" "$V" "$I/vol2" || bail "cannot create the tree"
truncate -s 4M "$V/data" "$I/vol2/data" || bail "cannot grow the volumes"
dd if=/dev/urandom of="$V/data" bs=1M count=1 conv=notrunc status=none ||
    bail "cannot write the volume"

long=$(printf 'a%.0s' $(seq 129))
max=$(printf 'b%.0s' $(seq 128))

# mkdir with a bad name: EINVAL.
for parent in "$MNT" "$D" "$I"; do
    refused EINVAL mkdir "$parent/.hidden"
done
refused EINVAL mkdir "$I/"$'\xff\xfe'
refused EINVAL mkdir "$I/"$'\xc0\xaf'
refused EINVAL mkdir "$I/"$'bad\001name'
refused EINVAL mkdir "$I/"$'bad\nname'
refused EINVAL mkdir "$I/"$'bad\x7fname'
# C1 controls (U+0080..U+009F) are control characters too.
refused EINVAL mkdir "$I/"$'bad\xc2\x80name'
refused EINVAL mkdir "$I/"$'bad\xc2\x9fname'
# Names are NFC: "é" decomposed (e + U+0301) is refused, so the composed
# and the decomposed spelling cannot make two volumes that look alike.
refused EINVAL mkdir "$I/"$'cafe\xcc\x81'
refused EINVAL rename "$V" "$I/"$'cafe\xcc\x81'
check "the NFC spelling is accepted" mkdir "$I/"$'caf\xc3\xa9'
check "rmdir it" rmdir "$I/"$'caf\xc3\xa9'
# A name that is not UTF-8 is logged escaped, never raw.
log_mark
vsys mkdir "$I/"$'bad\xff\xfename' >/dev/null
log_gained 'refused mkdir' || true
assert_match 'bad\\xff\\xfename' "$(log_new_lines)" "the log shows the invalid bytes escaped"
check_fails "the log line has no raw invalid UTF-8" \
    bash -c "tail -n +$((LOG_MARK + 1)) '$LOG' | LC_ALL=C grep -aq \$'\\xff'"

# mkdir with a name over 128 bytes: ENAMETOOLONG; 128 bytes are fine.
for parent in "$MNT" "$D" "$I"; do
    refused ENAMETOOLONG mkdir "$parent/$long"
done
check "mkdir with a 128-byte name works" mkdir "$I/$max"
check "rmdir it" rmdir "$I/$max"
check "mkdir with a UTF-8 name works" mkdir "$I/"$'vol\xc3\xa9'
check "rmdir it" rmdir "$I/"$'vol\xc3\xa9'

# mkdir of an existing name: EEXIST.  The kernel finds the name by lookup
# and answers EEXIST without sending the mkdir, so no log line is possible.
REFUSED_NOLOG="the kernel answers EEXIST itself after a lookup"
refused EEXIST mkdir "$D"
refused EEXIST mkdir "$I"
refused EEXIST mkdir "$V"
refused EEXIST mkdir "$V/data"
unset REFUSED_NOLOG

# mkdir inside a volume: EPERM.
refused EPERM mkdir "$V/sub"

# Creating a file anywhere: EPERM.
for parent in "$MNT" "$D" "$I" "$V"; do
    refused EPERM open "$parent/newfile" 'O_WRONLY|O_CREAT'
    refused EPERM mknod "$parent/newnode"
done
refused EPERM open "$V/newfile" 'O_WRONLY|O_CREAT|O_EXCL'
refused EPERM mkfifo "$V/fifo"
check "touch of a new name fails" bash -c "! touch '$I/touched' 2>/dev/null"
assert_eq "OK" "$(vsys open "$V/data" 'O_RDWR|O_CREAT')" "open O_CREAT of the existing data works"

# symlink anywhere but a volume's `backing`: EPERM; `backing` on a volume
# that already has data: ENOTEMPTY (tests/mount/chain.sh covers the rest).
for parent in "$MNT" "$D" "$I" "$V"; do
    refused EPERM symlink data "$parent/link"
done
refused ENOTEMPTY symlink "../vol2" "$V/backing"

# `backing` to a volume that does not exist: ENOENT.
check "mkdir an empty volume" mkdir "$I/empty"
refused ENOENT symlink "../nope" "$I/empty/backing"
check "rmdir it" rmdir "$I/empty"

# truncate of the read-only map: EPERM.
refused EPERM truncate "$V/map" 0
refused EPERM truncate "$V/map" 100

# hard link: EPERM.
refused EPERM link "$V/data" "$V/data2"
refused EPERM link "$V/data" "$I/vol2/data2"

# unlink of data: EPERM.
refused EPERM unlink "$V/data"

# rmdir of a non-empty domain or image: ENOTEMPTY.
refused ENOTEMPTY rmdir "$D"
refused ENOTEMPTY rmdir "$I"

# rename across parents: EXDEV.
refused EXDEV rename "$V" "$D/img2/vol"
refused EXDEV rename "$I" "$MNT/dom2/img"
refused EXDEV rename "$MNT/dom2" "$D/dom2"
refused EXDEV rename "$V" "$MNT/vol"

# rename onto an existing name: EEXIST.
refused EEXIST rename "$V" "$I/vol2"
refused EEXIST rename "$I" "$D/img2"
refused EEXIST rename "$D" "$MNT/dom2"

# rename of data: EPERM.
refused EPERM rename "$V/data" "$V/data2"

# rename to a bad name: EINVAL / ENAMETOOLONG.
refused EINVAL rename "$V" "$I/.vol"
refused EINVAL rename "$V" "$I/"$'\xff'
refused EINVAL rename "$V" "$I/"$'v\tol'
refused ENAMETOOLONG rename "$V" "$I/$long"
refused ENAMETOOLONG rename "$D" "$MNT/$long"

# truncate to a smaller size: EPERM (growing works).
refused EPERM truncate "$V/data" $((1024 * 1024))
refused EPERM truncate "$V/data" 0
refused EPERM ftruncate "$V/data" 4095
check "truncate to a larger size works" truncate -s 8M "$V/data"
check "truncate to the same size works" truncate -s 8M "$V/data"

# getxattr of an unknown user.* name: ENODATA.  That
# is an answer, not a refusal: nothing is logged (debug level at most).
log_mark
for node in "$MNT" "$D" "$I" "$V" "$V/data"; do
    expect_errno ENODATA getxattr "$node" user.vstor.bogus
    expect_errno ENODATA getxattr "$node" user.other
done
# Other namespaces are not supported (no ACLs, security labels or file
# capabilities): ENOTSUP, which `ls -l` remembers per file system.
for n in trusted.other security.selinux security.capability \
    system.posix_acl_access system.posix_acl_default; do
    expect_errno ENOTSUP getxattr "$V" "$n"
    expect_errno ENOTSUP getxattr "$V/data" "$n"
done
expect_errno ENODATA getxattr "$D" user.vstor.object
sleep 0.3
assert_eq "" "$(log_new_lines)" \
    "getxattr answered with ENODATA or ENOTSUP logs nothing"

# setxattr/removexattr of a read-only user.vstor.* name: EPERM.
for n in uuid kind size allocated backend object created caps; do
    refused EPERM setxattr "$V" "user.vstor.$n" x
done
# user.vstor.format is writable on an empty base volume (format.sh)
refused EINVAL setxattr "$V" user.vstor.format x
refused EPERM setxattr "$D" user.vstor.format qcow2
refused EPERM setxattr "$V/data" user.vstor.size 0
refused EPERM setxattr "$D" user.vstor.uuid 00000000-0000-0000-0000-000000000000
refused EPERM setxattr "$MNT" user.vstor.kind x
refused EPERM removexattr "$V" user.vstor.uuid
refused EPERM removexattr "$V/data" user.vstor.kind
refused EPERM removexattr "$D" user.vstor.created
refused EPERM removexattr "$V" user.vstor.snapshot
# removexattr of a name the node does not have: ENODATA, as Linux answers.
refused ENODATA removexattr "$V" user.vstor.bogus
refused ENODATA removexattr "$V/data" user.other
refused ENODATA removexattr "$D" user.vstor.object

# setxattr of an unknown user.vstor.* name: ENODATA.
refused ENODATA setxattr "$V" user.vstor.bogus 1
refused ENODATA setxattr "$MNT" user.vstor.bogus 1

# setxattr of a name outside user.vstor.*: ENOTSUP.
refused ENOTSUP setxattr "$V" user.other 1
refused ENOTSUP setxattr "$V/data" user.other 1
refused ENOTSUP setxattr "$D" trusted.other 1

# setxattr of a writable name with a bad value: EINVAL.
refused EINVAL setxattr "$V" user.vstor.shrink-to abc
refused EINVAL setxattr "$V" user.vstor.shrink-to $((1024 * 1024 * 1024))
refused EINVAL setxattr "$V/data" user.vstor.shrink-to -1
refused EINVAL setxattr "$V/data" user.vstor.shrink-to ""
refused EINVAL setxattr "$MNT" user.vstor.rescan x

# rmdir of a volume is allowed: it deletes its data.
object=$(xget "$I/vol2" user.vstor.object)
duuid=$(xget "$D" user.vstor.uuid)
check "the volume's backend file exists" test -f "$DATA/domains/$duuid/$object"
check "rmdir of a volume works" rmdir "$I/vol2"
check_fails "its backend file is gone" test -e "$DATA/domains/$duuid/$object"

stop_vstorfs
