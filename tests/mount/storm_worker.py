# One worker of the concurrency storm (storm.sh): for SECONDS, namespace
# and data requests at random on the images of one domain, from an RNG
# seeded with SEED, so a failing run can be replayed.
#
#   storm_worker.py WORKER SEED SECONDS DOMAIN_DIR LOG
#   storm_worker.py race SECONDS IMAGE_DIR
#
# The second form races the two requests behind the storm's first crash,
# as often as it can for SECONDS: a new volume's data opened and written
# by one thread while another makes the volume a thin clone of a `base`
# volume in the same image.  It prints how often each side succeeded.
#
# Every request goes to LOG as one line ("op args -> result"), and so do
# the facts the checks after the storm need, keyed by volume uuid (names
# change under mv; a name is made once and never reused):
#   ACK uuid offset hexdigest   a block acknowledged by fsync
#   MAYBE uuid offset hexdigest a block written without an acknowledgement
#   ZERO uuid offset            a block zeroed or punched, acknowledged
#   GONE uuid                   the volume was removed by rmdir (merged away
#                               when others were based on it)
# Request lines start with the seconds since the storm started (STORM_T0,
# one CLOCK_MONOTONIC for all workers), to order them across the logs.
# Each worker writes only its own blocks (offset = (k * WORKERS + worker)
# blocks), so one worker's log says what each of its blocks must hold.
import ctypes
import errno
import hashlib
import os
import random
import sys
import time

BLOCK = 4096
BLOCKS_PER_WORKER = 64
WORKERS = 16  # stride of the block layout (>= the number of workers)


if sys.argv[1] != 'race':
    worker, seed = int(sys.argv[1]), int(sys.argv[2])
    seconds, domain = float(sys.argv[3]), sys.argv[4]
    rng = random.Random(seed)
    log = open(sys.argv[5], 'a', buffering=1)
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                           ctypes.c_int64]
counter = 0


def new_name():
    global counter
    counter += 1
    return 'w%dn%d' % (worker, counter)


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def images():
    return sorted(os.listdir(domain))


def volumes(img):
    try:
        return sorted(os.listdir(os.path.join(domain, img)))
    except OSError:
        return []


def pick_volume():
    img = rng.choice(images())
    vols = volumes(img)
    if not vols:
        return img, None
    return img, rng.choice(vols)


def uuid_of(path):
    return os.getxattr(path, 'user.vstor.uuid').decode()


def block_content(uuid, off, seq):
    head = ('vol %s off %d worker %d seq %d seed %d\n' %
            (uuid, off, worker, seq, seed)).encode()
    body = hashlib.sha256(head).digest() * (BLOCK // 32)
    return (head + body)[:BLOCK]


def my_offset():
    k = rng.randrange(BLOCKS_PER_WORKER)
    return (k * WORKERS + worker) * BLOCK


def op_mkdir():
    img = rng.choice(images())
    path = os.path.join(domain, img, new_name())
    os.mkdir(path)
    return path


def op_rmdir():
    img, vol = pick_volume()
    if not vol:
        return 'none'
    path = os.path.join(domain, img, vol)
    uuid = uuid_of(path)
    os.rmdir(path)
    log.write('GONE %s\n' % uuid)
    return path


def op_mv():
    img, vol = pick_volume()
    if not vol:
        return 'none'
    new = new_name()
    os.rename(os.path.join(domain, img, vol), os.path.join(domain, img, new))
    return '%s/%s -> %s' % (img, vol, new)


def op_clone():
    img, vol = pick_volume()
    if not vol:
        return 'none'
    # mostly a new volume in the same image, sometimes another one
    timg = img if rng.random() < 0.7 else rng.choice(images())
    path = os.path.join(domain, timg, new_name())
    os.mkdir(path)
    target = '../' + vol if timg == img else '../../%s/%s' % (img, vol)
    os.symlink(target, os.path.join(path, 'backing'))
    return '%s/backing -> %s' % (path, target)


def op_snapshot():
    img, vol = pick_volume()
    if not vol:
        return 'none'
    name = new_name()
    os.setxattr(os.path.join(domain, img, vol), 'user.vstor.snapshot',
                name.encode())
    return '%s/%s as %s' % (img, vol, name)


def open_data(flags):
    img, vol = pick_volume()
    if not vol:
        return None, None, None
    fd = os.open(os.path.join(domain, img, vol, 'data'), flags)
    try:
        uuid = os.getxattr(fd, 'user.vstor.uuid').decode()
    except OSError:
        os.close(fd)
        raise
    return fd, uuid, '%s/%s' % (img, vol)


def op_write():
    fd, uuid, where = open_data(os.O_RDWR)
    if fd is None:
        return 'none'
    try:
        off = my_offset()
        data = block_content(uuid, off, counter)
        digest = hashlib.sha256(data).hexdigest()
        log.write('MAYBE %s %d %s\n' % (uuid, off, digest))
        os.pwrite(fd, data, off)
        os.fsync(fd)
        log.write('ACK %s %d %s\n' % (uuid, off, digest))
        return '%s (%s) at %d' % (where, uuid, off)
    finally:
        os.close(fd)


def op_fallocate():
    fd, uuid, where = open_data(os.O_RDWR)
    if fd is None:
        return 'none'
    try:
        off = my_offset()
        mode = rng.choice(['punch', 'zero', 'prealloc'])
        m = {'punch': 3, 'zero': 16, 'prealloc': 1}[mode]
        if mode != 'prealloc':
            log.write('MAYBE %s %d zero\n' % (uuid, off))
        if libc.fallocate(fd, m, off, BLOCK) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        os.fsync(fd)
        if mode != 'prealloc':
            log.write('ZERO %s %d\n' % (uuid, off))
        return '%s %s (%s) at %d' % (mode, where, uuid, off)
    finally:
        os.close(fd)


def op_truncate_up():
    img, vol = pick_volume()
    if not vol:
        return 'none'
    path = os.path.join(domain, img, vol, 'data')
    size = os.stat(path).st_size
    grow = rng.randrange(1, 16) * 65536
    os.truncate(path, size + grow)
    return '%s/%s to %d' % (img, vol, size + grow)


def race(seconds, image):
    import threading
    stats = {}
    deadline = time.monotonic() + seconds
    i = 0

    def note(key):
        stats[key] = stats.get(key, 0) + 1

    while time.monotonic() < deadline:
        i += 1
        vol = os.path.join(image, 'race%d' % i)
        os.mkdir(vol)
        go = threading.Barrier(2)

        def writer():
            go.wait()
            try:
                fd = os.open(vol + '/data', os.O_RDWR)
                try:
                    os.pwrite(fd, b'x' * BLOCK, 0)
                finally:
                    os.close(fd)
                note('write-OK')
            except OSError as e:
                note('write-' + errname(e))

        t = threading.Thread(target=writer)
        t.start()
        go.wait()
        try:
            os.symlink('../base', vol + '/backing')
            note('clone-OK')
        except OSError as e:
            note('clone-' + errname(e))
        t.join()
    print(' '.join('%s=%d' % kv for kv in sorted(stats.items())))


if sys.argv[1] == 'race':
    try:
        race(float(sys.argv[2]), sys.argv[3])
    except OSError as e:
        print('race stopped: %s' % e)
        sys.exit(1)
    sys.exit(0)


OPS = [(op_mkdir, 3), (op_rmdir, 3), (op_mv, 2), (op_clone, 3),
       (op_snapshot, 3), (op_write, 10), (op_fallocate, 3),
       (op_truncate_up, 2)]
CHOICES = [f for f, w in OPS for _ in range(w)]

t0 = float(os.environ.get('STORM_T0', time.monotonic()))
deadline = time.monotonic() + seconds
n = 0
while time.monotonic() < deadline:
    f = rng.choice(CHOICES)
    n += 1
    try:
        what = f()
        log.write('%.3f %d %s %s -> OK\n' %
                  (time.monotonic() - t0, n, f.__name__, what))
    except OSError as e:
        log.write('%.3f %d %s -> %s\n' %
                  (time.monotonic() - t0, n, f.__name__, errname(e)))
        if e.errno == errno.ENOTCONN:
            break  # the daemon is gone: the script reports it
log.write('END %d ops\n' % n)
