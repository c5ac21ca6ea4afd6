/*
 * Driver thread models: a protocol driver that declares
 * VS_THREAD_SERIALIZE_REQUESTS never sees two calls on one bdev at once,
 * however many threads use it; a parallel one may.  Two tiny in-memory
 * protocol drivers ("sertest:", "partest:") count the calls inside their
 * callbacks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "vs/bdev.h"
#include "vs/driver.h"

#define THREADS 4
#define CALLS 25
#define SIZE 65536

static atomic_int inside, most_inside;

/* Stay a moment in the callback so that overlapping calls would show. */
static void
enter_call(void)
{
    int now = atomic_fetch_add(&inside, 1) + 1;
    int seen = atomic_load(&most_inside);

    while (now > seen &&
           !atomic_compare_exchange_weak(&most_inside, &seen, now))
        ;
    usleep(500);
    atomic_fetch_sub(&inside, 1);
}

static int
mem_store_open(struct vs_store *st, bool create)
{
    (void)st;
    (void)create;
    return 0;
}

static int
mem_object_open(struct vs_store *st, const char *name, struct vs_bdev *bs)
{
    (void)st;
    (void)name;
    (void)bs;
    return 0;
}

static int64_t
mem_get_size(struct vs_bdev *bs)
{
    (void)bs;
    enter_call();
    return SIZE;
}

static ssize_t
mem_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
           uint64_t offset, unsigned flags)
{
    size_t len = 0;

    (void)bs;
    (void)offset;
    (void)flags;
    enter_call();
    for (int i = 0; i < iovcnt; i++) {
        memset(iov[i].iov_base, 0, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return (ssize_t)len;
}

static ssize_t
mem_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
            uint64_t offset, unsigned flags)
{
    size_t len = 0;

    (void)bs;
    (void)offset;
    (void)flags;
    enter_call();
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    return (ssize_t)len;
}

static int
mem_flush(struct vs_bdev *bs)
{
    (void)bs;
    enter_call();
    return 0;
}

#define MEM_DRIVER(drv_name, drv_scheme, model)                                \
    {                                                                          \
        .api_version = VS_DRIVER_API_VERSION,                                  \
        .struct_size = sizeof(struct vs_driver), .name = drv_name,             \
        .kind = VS_DRIVER_PROTOCOL, .scheme = drv_scheme,                      \
        .store_open = mem_store_open, .object_open = mem_object_open,          \
        .get_size = mem_get_size, .preadv = mem_preadv,                        \
        .pwritev = mem_pwritev, .flush = mem_flush, .thread_model = model,     \
    }

static const struct vs_driver serial_driver =
    MEM_DRIVER("sertest", "sertest:", VS_THREAD_SERIALIZE_REQUESTS);
static const struct vs_driver parallel_driver =
    MEM_DRIVER("partest", "partest:", VS_THREAD_PARALLEL);

static void *
hammer(void *arg)
{
    struct vs_bdev *bs = arg;
    char buf[4096];

    for (int i = 0; i < CALLS; i++) {
        switch (i % 4) {
        case 0:
            vs_bdev_pread(bs, buf, sizeof(buf), 0);
            break;
        case 1:
            vs_bdev_pwrite(bs, buf, sizeof(buf), 4096);
            break;
        case 2:
            vs_bdev_flush(bs);
            break;
        default:
            vs_bdev_size(bs);
        }
    }
    return NULL;
}

/* The most calls seen inside the driver at once, THREADS threads on one
 * bdev of the driver at LOCATION. */
static int
most_at_once(const char *location)
{
    struct vs_store *st = NULL;
    struct vs_bdev *bs = NULL;
    pthread_t t[THREADS];

    atomic_store(&most_inside, 0);
    if (vs_store_open(location, false, &st) < 0 ||
        vs_object_open(st, "obj", 0, "obj", &bs) < 0)
        return -1;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, bs);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    vs_bdev_close(bs);
    vs_store_close(st);
    return atomic_load(&most_inside);
}

int
main(void)
{
    int most;

    is_int(vs_driver_register_extra(&serial_driver), 0,
           "register a driver that serializes requests");
    is_int(vs_driver_register_extra(&parallel_driver), 0,
           "register a parallel driver");
    most = most_at_once("sertest:x");
    is_int(most, 1,
           "serialized: never two calls on one bdev at once "
           "(reads, writes, flushes, sizes from 4 threads)");
    most = most_at_once("partest:x");
    ok(most >= 1, "parallel: the calls ran");
    tap_diag("parallel driver: at most %d calls at once (not asserted)", most);
    return tap_done();
}
