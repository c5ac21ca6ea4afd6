#!/bin/bash
# QEMU's own clients through the mount: qemu-io with cache=none (O_DIRECT),
# with threads and with native AIO; QEMU's image locking between two
# qemu-io processes; qemu-img convert in and out, compare, info.
. "$(dirname "$0")/lib.sh"
requires qemu-img qemu-io qemu-system-x86_64 jq flock

M=$((1024 * 1024))

# qmp_ready SOCKET: wait up to 10 s until QEMU answers on its QMP socket
# (its devices, and so its disks and their locks, are set up by then).
qmp_ready() {
    "$PY" - "$1" <<'PYEOF'
import json, socket, sys, time
deadline = time.time() + 10
while True:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sys.argv[1])
        break
    except OSError:
        if time.time() > deadline:
            sys.exit(1)
        time.sleep(0.1)
f = s.makefile('rw')
json.loads(f.readline())
for cmd in ('qmp_capabilities', 'query-status'):
    f.write(json.dumps({'execute': cmd}) + '\n')
    f.flush()
    while True:
        r = json.loads(f.readline())
        if 'return' in r or 'error' in r:
            break
    if 'error' in r:
        sys.exit(1)
PYEOF
}

start_vstorfs
V=$MNT/dom/img/vol
mkdir -p "$V" || bail "cannot create the tree"
truncate -s 64M "$V/data" || bail "cannot grow the volume"
DATAF=$V/data

# qemu-io: cache=none is O_DIRECT.
check "qemu-io -t none writes and reads back 1M" \
    qemu-io -f raw -t none -c 'write -P 0x5a 0 1M' -c 'read -P 0x5a 0 1M' "$DATAF"
check "qemu-io -t none --aio native writes and reads back" \
    qemu-io -f raw -t none --aio native \
    -c 'write -P 0x6b 1M 1M' -c 'read -P 0x6b 1M 1M' -c 'read -P 0x5a 0 1M' "$DATAF"
check "qemu-io -t none: unaligned-length and scattered requests" \
    qemu-io -f raw -t none -c 'write -P 0x7c 3M 4k' -c 'write -P 0x7d 5M 512' \
    -c 'read -P 0x7c 3M 4k' -c 'read -P 0x7d 5M 512' -c 'read -P 0 5243392 3584' "$DATAF"
check "qemu-io -t writeback (page cache) reads what O_DIRECT wrote" \
    qemu-io -f raw -t writeback -c 'read -P 0x5a 0 1M' -c 'read -P 0x6b 1M 1M' "$DATAF"
check "qemu-io write -z (write zeroes) and flush" \
    qemu-io -f raw -t none -c 'write -z 8M 2M' -c 'read -P 0 8M 2M' -c flush "$DATAF"
check "qemu-io discard" \
    qemu-io -f raw -t none -c 'write -P 0x11 16M 1M' -c 'discard 16M 1M' -c 'read -P 0 16M 1M' "$DATAF"
check "dd with oflag=direct reads back with iflag=direct" \
    bash -c "head -c 1048576 /dev/urandom >'$T/r.bin' &&
             dd if='$T/r.bin' of='$DATAF' bs=64k seek=512 oflag=direct conv=notrunc,fsync status=none &&
             cmp <(dd if='$DATAF' bs=64k skip=512 count=16 iflag=direct status=none) '$T/r.bin'"

# Image locking: a paused VM using the volume as a virtio-blk disk (the
# way libvirt runs it: cache=none, write not shared) keeps a second writer
# out.  (Two qemu-io processes or a qemu-storage-daemon export share every
# permission, so they never conflict: a VM's device is the real holder.)
QMP=$T/qmp.sock
bg qemu-system-x86_64 -machine q35,accel=tcg -nodefaults -display none -S \
    -blockdev "driver=file,node-name=f,filename=$DATAF,cache.direct=on" \
    -blockdev driver=raw,node-name=r,file=f -device virtio-blk-pci,drive=r \
    -qmp "unix:$QMP,server=on,wait=off"
VM=$BG_PID
check "a paused VM opens the volume as its disk" qmp_ready "$QMP"
out=$(qemu-io -f raw -c 'write 0 4k' "$DATAF" 2>&1)
rc=$?
assert_num $rc ne 0 "a second writer (qemu-io) fails while the VM holds the image"
if grep -q 'Failed to get "write" lock' <<<"$out"; then
    ok "the second writer says: Failed to get \"write\" lock"
else
    not_ok "the second writer says: Failed to get \"write\" lock" "got: $out"
fi
truncate -s 64M "$T/other.raw"
out=$(qemu-img convert -n -f raw -O raw "$T/other.raw" "$DATAF" 2>&1)
assert_num $? ne 0 "qemu-img convert -n into the held image fails"
assert_match 'Failed to get "write" lock' "$out" "qemu-img convert says: Failed to get \"write\" lock"
check "qemu-io -U -r reads while the VM holds the image (shared)" \
    qemu-io -U -r -f raw -c 'read -P 0x5a 0 1M' "$DATAF"
kill -TERM "$VM"
if wait_child "$VM" 10; then
    ok "the VM quits on SIGTERM"
else
    not_ok "the VM quits within 10 s of SIGTERM"
fi
check "a writer gets the lock once the VM quit" \
    qemu-io -f raw -c 'write -P 0x44 0 4k' -c 'read -P 0x44 0 4k' "$DATAF"

# flock and POSIX locks between two processes on one host.
# (One process that holds the lock itself, so that killing it frees it.)
bg "$PY" -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
time.sleep(30)' "$DATAF"
FL=$BG_PID
for ((i = 0; i < 50; i++)); do
    flock -n "$DATAF" true 2>/dev/null || break
    sleep 0.1
done
check_fails "flock: a second exclusive flock fails while one is held" flock -n "$DATAF" true
kill "$FL"
wait "$FL" 2>/dev/null
check "flock: it succeeds once the holder is gone" flock -n "$DATAF" true
lockout=$("$PY" - "$DATAF" <<'PYEOF'
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 4096, 0)
pid = os.fork()
if pid == 0:
    fd2 = os.open(sys.argv[1], os.O_RDWR)
    try:
        fcntl.lockf(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB, 4096, 0)
        os._exit(1)
    except OSError:
        pass
    fcntl.lockf(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB, 4096, 8192)
    os._exit(0)
_, st = os.waitpid(pid, 0)
print('conflict-ok' if os.WEXITSTATUS(st) == 0 else 'no-conflict')
PYEOF
)
assert_eq conflict-ok "$lockout" "POSIX locks: a range held by one process is refused to another, other ranges are free"

# qemu-img convert in and out, compare, info.
check "qemu-img create a qcow2 source" qemu-img create -q -f qcow2 "$T/src.qcow2" 64M
check "qemu-io fills the source" \
    qemu-io -f qcow2 -c 'write -P 0x21 0 2M' -c 'write -P 0x22 40M 3M' "$T/src.qcow2"
mkdir "$MNT/dom/img/vol2" || fail "mkdir vol2"
truncate -s 64M "$MNT/dom/img/vol2/data"
check "qemu-img convert -n -t none into the mount" \
    qemu-img convert -n -t none -f qcow2 -O raw "$T/src.qcow2" "$MNT/dom/img/vol2/data"
check "qemu-img compare: equal" \
    qemu-img compare -f qcow2 -F raw "$T/src.qcow2" "$MNT/dom/img/vol2/data"
check "qemu-img convert -T none out to qcow2" \
    qemu-img convert -T none -f raw -O qcow2 "$DATAF" "$T/out.qcow2"
check "qemu-img compare the copy out: equal" \
    qemu-img compare -f raw -F qcow2 "$DATAF" "$T/out.qcow2"
check "qemu-img convert out to raw" \
    qemu-img convert -f raw -O raw "$MNT/dom/img/vol2/data" "$T/out.raw"
check "qemu-img compare the raw copy out with the source" \
    qemu-img compare -f qcow2 -F raw "$T/src.qcow2" "$T/out.raw"
info=$(qemu-img info --output=json "$DATAF")
assert_eq raw "$(jq -r .format <<<"$info")" "qemu-img info: format raw"
assert_eq $((64 * M)) "$(jq -r '."virtual-size"' <<<"$info")" "qemu-img info: virtual size 64M"
assert_match 'file format: raw' "$(qemu-img info "$DATAF")" "qemu-img info (human) says raw"
assert_match 'virtual size: 64 MiB \(67108864 bytes\)' "$(qemu-img info "$DATAF")" \
    "qemu-img info (human) says the virtual size"

# qemu-img resize grows (shrinking is refused by the contract).
check "qemu-img resize grows the volume" qemu-img resize -q -f raw "$DATAF" 128M
assert_eq $((128 * M)) "$(fsize "$DATAF")" "data grew to 128M"
check_fails "qemu-img resize --shrink is refused" \
    qemu-img resize -q -f raw --shrink "$DATAF" 64M
assert_eq $((128 * M)) "$(fsize "$DATAF")" "data is still 128M"

stop_vstorfs
