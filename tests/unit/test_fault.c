/*
 * Unit tests of the fault-injection protocol driver (tests/fault) and of
 * what its faults look like to the caller of the generic layer through a
 * qcow2 layer over it: delays, EIO and ETIMEDOUT on the Nth or every
 * request, short transfers, and requests that hang until released.  Each
 * fault must reach vs_bdev_preadv/pwritev/flush as the right errno or a
 * count (the generic layer completes short transfers), and what was
 * acknowledged must read back unchanged afterwards, never wrong data.
 *
 * The stack: a dir store in a scratch directory, the "fault:" store over
 * it, object "img" (a 4 MiB qcow2 image) opened through the fault store.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vs/bdev.h"
#include "fault.h"
#include "tap.h"
#include "testutil.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define IMG_SIZE (4 * MiB)

static char base[64] = "/var/tmp/vstorfs-test-fault.XXXXXX";
static struct vs_store *st, *fst;
static uint8_t *ref; /* what the image holds as far as acknowledged */

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 10));
}

/* qcow2 over object NAME opened through the fault store, or NULL. */
static struct vs_bdev *
open_fault_qcow2(const char *name)
{
    struct vs_bdev *file = NULL, *top = NULL;

    if (vs_object_open(fst, name, 0, name, &file) < 0)
        return NULL;
    if (vs_format_open("qcow2", file, NULL, 0, &top) < 0) {
        vs_bdev_close(file);
        return NULL;
    }
    return top;
}

/* qcow2 over "img" opened through the fault store, or NULL. */
static struct vs_bdev *
open_top(void)
{
    return open_fault_qcow2("img");
}

/* Write LEN bytes of pattern SEED at OFF; on success note them in ref.
 * What vs_bdev_pwritev answered. */
static ssize_t
write_noted(struct vs_bdev *top, uint64_t off, size_t len, unsigned seed)
{
    uint8_t *buf = malloc(len);
    struct iovec iov = {buf, len};
    ssize_t n;

    fill(buf, len, seed);
    n = vs_bdev_pwritev(top, &iov, 1, off, 0);
    if (n == (ssize_t)len)
        memcpy(ref + off, buf, len);
    free(buf);
    return n;
}

/* Microseconds since some fixed point. */
static long long
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void
test_delay(struct vs_bdev *top)
{
    uint8_t *buf = malloc(64 * KiB);
    int id = fault_add(&(struct fault_rule){.object = "img",
                                            .ops = FAULT_READ,
                                            .mode = FAULT_DELAY,
                                            .delay_us = 30000});
    long long t0 = now_us();

    is_int(vs_bdev_pread(top, buf, 64 * KiB, 0), 64 * KiB,
           "delay: a read completes");
    ok(now_us() - t0 >= 30000, "delay: after the delay (%lld us)",
       now_us() - t0);
    ok(memcmp(buf, ref, 64 * KiB) == 0, "delay: with the right data");
    ok(fault_hits(id) >= 1, "delay: the rule fired");
    fault_clear();
    free(buf);
}

static void
test_fail_write(struct vs_bdev *top)
{
    int id;

    is_int(write_noted(top, MiB, 64 * KiB, 1), 64 * KiB, "write A");
    id = fault_add(&(struct fault_rule){.object = "img",
                                        .ops = FAULT_WRITE,
                                        .mode = FAULT_FAIL,
                                        .err = EIO,
                                        .nth = 1});
    is_int(write_noted(top, MiB, 64 * KiB, 2), -EIO,
           "EIO on the first write reaches the caller");
    is_int(write_noted(top, MiB + 64 * KiB, 4 * KiB, 3), 4 * KiB,
           "the second write is not the rule's: it succeeds");
    is_int(fault_hits(id), 1, "the rule fired once");
    fault_clear();
    ok(tu_same(top, ref, IMG_SIZE), "what was acknowledged reads back");
}

static void
test_fail_alloc(struct vs_bdev *top)
{
    fault_add(&(struct fault_rule){.object = "img",
                                   .ops = FAULT_WRITE,
                                   .mode = FAULT_FAIL,
                                   .err = ETIMEDOUT});
    is_int(write_noted(top, 3 * MiB, 128 * KiB, 4), -ETIMEDOUT,
           "ETIMEDOUT on a write to new clusters reaches the caller");
    fault_clear();
    ok(tu_same(top, ref, IMG_SIZE),
       "the clusters it could not write are not linked: zeros read back");
    is_int(write_noted(top, 3 * MiB, 128 * KiB, 5), 128 * KiB,
           "the same write succeeds once the storage answers");
    ok(tu_same(top, ref, IMG_SIZE), "and reads back");
}

static void
test_fail_read(struct vs_bdev *top)
{
    uint8_t *buf = malloc(64 * KiB);
    int id = fault_add(&(struct fault_rule){.object = "img",
                                            .ops = FAULT_READ,
                                            .mode = FAULT_FAIL,
                                            .err = ETIMEDOUT});

    is_int(vs_bdev_pread(top, buf, 64 * KiB, MiB), -ETIMEDOUT,
           "ETIMEDOUT on reads reaches the caller");
    ok(fault_hits(id) >= 1, "the rule fired");
    fault_clear();
    is_int(vs_bdev_pread(top, buf, 64 * KiB, MiB), 64 * KiB,
           "the read succeeds once the storage answers");
    ok(memcmp(buf, ref + MiB, 64 * KiB) == 0, "with the acknowledged data");
    free(buf);
}

static void
test_other_object(struct vs_bdev *top)
{
    int id = fault_add(&(struct fault_rule){
        .object = "other", .ops = FAULT_ALL, .mode = FAULT_FAIL, .err = EIO});

    is_int(write_noted(top, 2 * MiB, 8 * KiB, 6), 8 * KiB,
           "a rule for another object leaves this one alone");
    is_int(vs_bdev_flush(top), 0, "... flush too");
    is_int(fault_hits(id), 0, "that rule never fired");
    fault_clear();
}

static void
test_short(struct vs_bdev *top)
{
    uint8_t *buf = malloc(300 * KiB);
    int id = fault_add(&(struct fault_rule){
        .object = "img", .ops = FAULT_READ | FAULT_WRITE, .mode = FAULT_SHORT});
    struct iovec iov = {buf, 300 * KiB};

    is_int(write_noted(top, 2 * MiB + 100, 300 * KiB, 7), 300 * KiB,
           "short writes below: the caller's write is whole");
    is_int(vs_bdev_preadv(top, &iov, 1, 2 * MiB + 100, 0), 300 * KiB,
           "short reads below: the caller's read is whole");
    ok(memcmp(buf, ref + 2 * MiB + 100, 300 * KiB) == 0,
       "and holds the written data, not zeros");
    ok(fault_hits(id) >= 2, "transfers were cut (%u)", fault_hits(id));
    ok(tu_same(top, ref, IMG_SIZE), "the whole image reads back");
    fault_clear();
    free(buf);
}

struct hung_io {
    struct vs_bdev *top;
    bool flush;
    uint8_t *buf;
    ssize_t ret;
    int done;
};

static void *
hung_worker(void *arg)
{
    struct hung_io *h = arg;

    h->ret = h->flush ? vs_bdev_flush(h->top)
                      : vs_bdev_pread(h->top, h->buf, 64 * KiB, MiB);
    __atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void
hang_one(struct vs_bdev *top, unsigned op, const char *what)
{
    struct hung_io h = {.top = top, .flush = op == FAULT_FLUSH};
    int id = fault_add(&(struct fault_rule){
        .object = "img", .ops = op, .mode = FAULT_HANG, .nth = 1});
    pthread_t t;

    h.buf = malloc(64 * KiB);
    if (!h.flush)
        write_noted(top, MiB, 64 * KiB, 8);
    else
        write_noted(top, 0, 4 * KiB, 9); /* something to flush */
    pthread_create(&t, NULL, hung_worker, &h);
    ok(fault_wait_hung(id, 1, 10000), "hang: the %s is held", what);
    usleep(50000);
    ok(!__atomic_load_n(&h.done, __ATOMIC_ACQUIRE),
       "hang: the caller's %s has not returned", what);
    fault_release(id);
    pthread_join(t, NULL);
    if (h.flush)
        is_int(h.ret, 0, "hang: released, the flush succeeds");
    else
        ok(h.ret == 64 * KiB && memcmp(h.buf, ref + MiB, 64 * KiB) == 0,
           "hang: released, the read returns the acknowledged data");
    fault_clear();
    free(h.buf);
}

static void
test_flush_fail(void)
{
    struct vs_bdev *top = open_top();
    int id;

    ok(top != NULL, "reopen the image");
    if (top == NULL)
        return;
    write_noted(top, 8 * KiB, 4 * KiB, 10);
    id = fault_add(&(struct fault_rule){.object = "img",
                                        .ops = FAULT_FLUSH,
                                        .mode = FAULT_FAIL,
                                        .err = EIO,
                                        .nth = 1});
    is_int(vs_bdev_flush(top), -EIO, "EIO on a flush reaches the caller");
    is_int(fault_hits(id), 1, "the storage was asked to fail once");
    fault_clear();
    is_int(vs_bdev_flush(top), -EIO,
           "and sticks: no later flush of the layer claims success");
    ok(tu_same(top, ref, IMG_SIZE), "what was acknowledged reads back");
    vs_bdev_close(top);
}

/* Write 64 KiB clusters of a per-cluster pattern from cluster FIRST on
 * until one fails: the number of the first that failed (or LAST), its
 * answer in *ERR. */
static uint64_t
fill_until_error(struct vs_bdev *top, uint64_t first, uint64_t last,
                 ssize_t *err)
{
    uint8_t *buf = malloc(64 * KiB);
    uint64_t k;

    *err = buf != NULL ? 0 : -ENOMEM;
    for (k = first; k < last && *err >= 0; k++) {
        fill(buf, 64 * KiB, (unsigned)k);
        *err = vs_bdev_pwrite(top, buf, 64 * KiB, k * 64 * KiB);
        if (*err < 0)
            break;
    }
    free(buf);
    return k;
}

/* Clusters [0, n) hold their pattern (cluster 0 pattern SEED0). */
static bool
clusters_hold(struct vs_bdev *top, uint64_t n, unsigned seed0)
{
    uint8_t *want = malloc(64 * KiB), *got = malloc(64 * KiB);
    bool same = want != NULL && got != NULL;

    for (uint64_t k = 0; same && k < n; k++) {
        fill(want, 64 * KiB, k == 0 ? seed0 : (unsigned)k);
        same = vs_bdev_pread(top, got, 64 * KiB, k * 64 * KiB) ==
                   (ssize_t)(64 * KiB) &&
               memcmp(want, got, 64 * KiB) == 0;
    }
    free(want);
    free(got);
    return same;
}

/*
 * A qcow2 layer on a store whose objects cannot grow past 4 MiB (a full
 * LUN or VG): the object is extended explicitly ahead of allocation, and
 * when it cannot grow the guest's write gets ENOSPC, never EIO; what was
 * acknowledged reads back, overwrites and flushes still work, qemu-img
 * check finds the image clean, and writes go on once the store has room.
 */
static void
test_grow_limit(void)
{
    const uint64_t size = 64 * MiB, limit = 4 * MiB;
    struct vs_bdev *top;
    struct stat sb;
    uint64_t n, more;
    ssize_t err;
    int id;

    if (tu_create_qcow2("full", size, NULL, NULL) < 0 ||
        (top = open_fault_qcow2("full")) == NULL) {
        ok(false, "growth: a qcow2 image on the fault store");
        return;
    }
    id = fault_add(&(struct fault_rule){.object = "full",
                                        .ops = FAULT_GROW,
                                        .mode = FAULT_FAIL,
                                        .err = ENOSPC,
                                        .above = limit});
    n = fill_until_error(top, 0, size / (64 * KiB), &err);
    is_int(err, -ENOSPC, "growth: the write the store cannot hold gets ENOSPC");
    ok(n * 64 * KiB >= limit / 2 && n * 64 * KiB < limit,
       "growth: ... after %llu KiB of writes went in (object limit %llu KiB)",
       (unsigned long long)(n * 64), (unsigned long long)(limit / KiB));
    ok(fault_hits(id) > 0, "growth: the store refused to grow the object");
    ok(stat(tu_obj_path("full"), &sb) == 0 && (uint64_t)sb.st_size <= limit,
       "growth: the object never grew past the limit");
    is_int(vs_bdev_flush(top), 0, "growth: the flush after it succeeds");
    {
        uint8_t *buf = malloc(64 * KiB);

        fill(buf, 64 * KiB, 999);
        is_int(vs_bdev_pwrite(top, buf, 64 * KiB, 0), 64 * KiB,
               "growth: an overwrite of written data still works");
        free(buf);
    }
    is_int(vs_bdev_flush(top), 0, "growth: ... and is flushed");
    ok(clusters_hold(top, n, 999),
       "growth: every acknowledged write reads back");
    vs_bdev_close(top);
    ok(tu_qemu_check("full"), "growth: qemu-img check: clean, no leaks");
    fault_clear();
    top = open_fault_qcow2("full");
    more = top != NULL ? fill_until_error(top, n, n + 64, &err) : 0;
    is_int(err, 64 * KiB, "growth: once the store has room, writes go on");
    ok(top != NULL && clusters_hold(top, more, 999),
       "growth: ... and everything reads back");
    vs_bdev_close(top);
    ok(tu_qemu_check("full"), "growth: qemu-img check after it: clean");
}

/*
 * vs_bdev_extend asks for a whole chunk and settles for what is needed
 * only when the store says it is full (ENOSPC, EFBIG); any other error
 * (EIO, a lost server) is the answer, with no second try and the object
 * left as it was.
 */
static void
test_extend_errors(void)
{
    struct vs_bdev *obj = NULL;
    int full, broken;

    if (vs_object_create(fst, "ext", MiB) < 0 ||
        vs_object_open(fst, "ext", 0, "ext", &obj) < 0) {
        ok(false, "extend: an object on the fault store");
        return;
    }
    full = fault_add(&(struct fault_rule){.object = "ext",
                                          .ops = FAULT_GROW,
                                          .mode = FAULT_FAIL,
                                          .err = ENOSPC,
                                          .above = 4 * MiB});
    is_int(vs_bdev_extend(obj, 2 * MiB, 8 * MiB), 2 * MiB,
           "extend: a store without room for the chunk gives what is needed");
    is_int(fault_hits(full), 1, "extend: ... after one refused try");
    fault_clear();
    broken = fault_add(&(struct fault_rule){
        .object = "ext", .ops = FAULT_GROW, .mode = FAULT_FAIL, .err = EIO});
    is_int(vs_bdev_extend(obj, 3 * MiB, 8 * MiB), -EIO,
           "extend: EIO from the store is the answer");
    is_int(fault_hits(broken), 1, "extend: ... with no smaller second try");
    is_int(vs_bdev_size(obj), 2 * MiB, "extend: ... and the size unchanged");
    fault_clear();
    vs_bdev_close(obj);
    vs_object_remove(fst, "ext");
}

/* ---- the asynchronous path: vs_bdev_submit to a driver that completes
 * from its own threads ---- */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    ssize_t ret;
};

static void
waiter_done(struct vs_request *req, ssize_t ret)
{
    struct waiter *w = req->opaque;

    pthread_mutex_lock(&w->mu);
    w->ret = ret;
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Submit OP of BUF (LEN bytes at OFF) through BS and wait: its result. */
static ssize_t
submit_wait(struct vs_bdev *bs, enum vs_req_op op, void *buf, size_t len,
            uint64_t off)
{
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER,
                       .cv = PTHREAD_COND_INITIALIZER};
    struct iovec iov = {buf, len};
    struct vs_request req = {.op = op,
                             .offset = off,
                             .length = len,
                             .iov = &iov,
                             .iovcnt = 1,
                             .complete = waiter_done,
                             .opaque = &w};

    vs_bdev_submit(bs, &req);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    return w.ret;
}

/*
 * raw over a fault object that completes requests from its own threads:
 * short transfers on every piece and a max_transfer smaller than the
 * request are completed by the generic layer, a write past the object's
 * end is refused before the driver sees it, a write error and a flush
 * error reach the submitter, and the flush error stays.
 */
static void
test_async(void)
{
    const size_t len = 1 * MiB;
    struct vs_bdev *file = NULL, *raw = NULL;
    uint8_t *want = malloc(len), *got = malloc(len);
    unsigned long before;
    int id;

    if (!want || !got || vs_object_create(fst, "async", 4 * MiB) < 0 ||
        vs_object_open(fst, "async", 0, "async", &file) < 0 ||
        vs_format_open("raw", file, NULL, 0, &raw) < 0) {
        ok(false, "async: raw over a fault object");
        free(want);
        free(got);
        return;
    }
    fault_set_async(true);
    ok(vs_bdev_submit_may_defer(raw, VS_REQ_READ) &&
           vs_bdev_submit_may_defer(raw, VS_REQ_WRITE),
       "async: raw over the fault driver may complete later");
    file->limits.max_transfer = 192 * KiB; /* not a divisor of the request */
    before = fault_async_completed();
    id = fault_add(&(struct fault_rule){.object = "async",
                                        .ops = FAULT_READ | FAULT_WRITE,
                                        .mode = FAULT_SHORT});
    fill(want, len, 77);
    is_int(submit_wait(raw, VS_REQ_WRITE, want, len, 512 * KiB), (ssize_t)len,
           "async: a 1 MiB write through short transfers completes in full");
    memset(got, 0, len);
    is_int(submit_wait(raw, VS_REQ_READ, got, len, 512 * KiB), (ssize_t)len,
           "async: ... and reads back in full");
    ok(memcmp(want, got, len) == 0, "async: ... with the bytes written");
    ok(fault_hits(id) >= 12, "async: ... in pieces cut short (%u)",
       fault_hits(id));
    ok(fault_async_completed() - before >= 12,
       "async: ... completed from the driver's threads (%lu)",
       fault_async_completed() - before);
    fault_clear();
    is_int(submit_wait(raw, VS_REQ_READ, got, len, 3 * MiB + 512 * KiB),
           (ssize_t)(512 * KiB), "async: a read across the end is short");
    is_int(submit_wait(raw, VS_REQ_WRITE, want, len, 3 * MiB + 512 * KiB),
           -EINVAL, "async: a write past the object's end is refused");
    fault_add(&(struct fault_rule){.object = "async",
                                   .ops = FAULT_WRITE,
                                   .mode = FAULT_FAIL,
                                   .err = EIO,
                                   .nth = 3});
    is_int(submit_wait(raw, VS_REQ_WRITE, want, len, 0), -EIO,
           "async: a piece's EIO reaches the submitter");
    fault_clear();
    fault_add(&(struct fault_rule){.object = "async",
                                   .ops = FAULT_FLUSH,
                                   .mode = FAULT_FAIL,
                                   .err = EIO,
                                   .nth = 1});
    is_int(submit_wait(raw, VS_REQ_FLUSH, NULL, 0, 0), -EIO,
           "async: a failed flush fails");
    fault_clear();
    is_int(submit_wait(raw, VS_REQ_FLUSH, NULL, 0, 0), -EIO,
           "async: ... and stays failed");
    fault_set_async(false);
    vs_bdev_close(raw);
    vs_object_remove(fst, "async");
    free(want);
    free(got);
}

static int
setup(void)
{
    char loc[256];

    if (tu_scratch_open(base, &st) < 0)
        return -1;
    snprintf(loc, sizeof(loc), "fault:%s", st->location);
    if (fault_register() < 0 || vs_store_open(loc, false, &fst) < 0 ||
        tu_create_qcow2("img", IMG_SIZE, NULL, NULL) < 0) {
        ok(false, "set up the fault store and the image");
        return -1;
    }
    ok(strcmp(fst->drv->name, "fault") == 0, "the fault: scheme is known");
    ref = calloc(1, IMG_SIZE);
    return 0;
}

int
main(void)
{
    struct vs_bdev *top;

    if (setup() < 0)
        return tap_done();
    top = open_top();
    ok(top != NULL, "qcow2 over a fault object opens");
    if (top != NULL) {
        is_int(write_noted(top, 0, 256 * KiB, 0), 256 * KiB, "first data");
        test_delay(top);
        test_fail_write(top);
        test_fail_alloc(top);
        test_fail_read(top);
        test_other_object(top);
        test_short(top);
        hang_one(top, FAULT_READ, "read");
        hang_one(top, FAULT_FLUSH, "flush");
        vs_bdev_close(top);
        test_flush_fail();
        test_grow_limit();
        test_extend_errors();
        test_async();
    }
    vs_store_close(fst);
    tu_scratch_close(st);
    free(ref);
    return tap_done();
}
