/*
 * The "fault" protocol driver for tests (see fault.h for its use): stores
 * and objects that wrap those of a real protocol driver and let a test
 * choose, per object and per operation, requests that are delayed, fail,
 * come up short or hang.
 *
 * A fault store holds the real store opened at the location after
 * "fault:"; every store and object operation is passed to it through the
 * generic layer.  A fault object holds the real object (opened with the
 * same flags) and takes over its capabilities and limits, so a format
 * above sees the storage it would see without the fault layer.
 *
 * Every read, write, flush, discard and write_zeroes first passes the gate:
 * under one mutex the rules are walked in order, each matching rule counts
 * the request, and the first that fires (every time, or on its Nth match)
 * decides: a delay sleeps outside the lock, a failure answers at once,
 * a short transfer passes the first half of the iovec down, a hang waits
 * on a condition variable until the test releases the rule.  A truncate
 * that grows the object passes the gate as FAULT_GROW.  Other operations
 * (size, block status, shrinking, allocate) always pass.
 *
 * The driver is registered by fault_register() (vs_driver_register_extra):
 * only test programs know the "fault:" scheme.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vs/bdev.h"
#include "fault.h"

#define FAULT_SCHEME "fault:"
#define MAX_RULES 32
#define IOV_STACK 16

struct rule {
    struct fault_rule r;
    char *object; /* owned copy of r.object */
    char *store;  /* owned copy of r.store */
    unsigned seen, hits, hung;
    bool released;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct rule rules[MAX_RULES];
static int nrules;

struct fault_obj {
    struct vs_bdev *inner;
    char *name;  /* the object's name in its store, for the rules */
    char *store; /* its store's location, for the rules */
};

/* ---- rules ---- */

int
fault_add(const struct fault_rule *rule)
{
    struct rule *r;
    int id;

    pthread_mutex_lock(&lock);
    id = nrules < MAX_RULES ? nrules++ : -ENOSPC;
    if (id >= 0) {
        r = &rules[id];
        memset(r, 0, sizeof(*r));
        r->r = *rule;
        r->object = rule->object != NULL ? strdup(rule->object) : NULL;
        r->r.object = r->object;
        r->store = rule->store != NULL ? strdup(rule->store) : NULL;
        r->r.store = r->store;
    }
    pthread_mutex_unlock(&lock);
    return id;
}

unsigned
fault_hits(int id)
{
    unsigned n = 0;

    pthread_mutex_lock(&lock);
    if (id >= 0 && id < nrules)
        n = rules[id].hits;
    pthread_mutex_unlock(&lock);
    return n;
}

bool
fault_wait_hung(int id, unsigned n, unsigned timeout_ms)
{
    struct timespec until;
    bool there = false;
    int r = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&lock);
    while (id >= 0 && id < nrules && !(there = rules[id].hung >= n) &&
           r != ETIMEDOUT)
        r = pthread_cond_timedwait(&cond, &lock, &until);
    pthread_mutex_unlock(&lock);
    return there;
}

void
fault_release(int id)
{
    pthread_mutex_lock(&lock);
    if (id >= 0 && id < nrules)
        rules[id].released = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* Whether any request is held (lock held). */
static bool
any_hung(void)
{
    for (int i = 0; i < nrules; i++) {
        if (rules[i].hung > 0)
            return true;
    }
    return false;
}

void
fault_clear(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nrules; i++)
        rules[i].released = true;
    pthread_cond_broadcast(&cond);
    while (any_hung())
        pthread_cond_wait(&cond, &lock);
    for (int i = 0; i < nrules; i++) {
        free(rules[i].object);
        free(rules[i].store);
    }
    nrules = 0;
    pthread_mutex_unlock(&lock);
}

/* The first rule that fires for OP on object O (growing it to SIZE bytes
 * for FAULT_GROW), counting the request in every matching rule; NULL if
 * none (lock held). */
static struct rule *
rule_firing(const struct fault_obj *o, unsigned op, uint64_t size)
{
    struct rule *fired = NULL;

    for (int i = 0; i < nrules; i++) {
        struct rule *r = &rules[i];

        if (!(r->r.ops & op) ||
            (r->object != NULL && strcmp(r->object, o->name) != 0) ||
            (r->store != NULL && strstr(o->store, r->store) == NULL) ||
            (op == FAULT_GROW && size <= r->r.above))
            continue;
        r->seen++;
        if (fired == NULL && (r->r.nth == 0 || r->seen == r->r.nth)) {
            r->hits++;
            fired = r;
        }
    }
    return fired;
}

/*
 * Pass request OP of object O through the rules: 0 to run it as asked,
 * FAULT_SHORT to run half of it, or -errno to answer at once.  Delays and
 * hangs happen here.
 */
static int
gate_size(const struct fault_obj *o, unsigned op, uint64_t size)
{
    struct rule *r;
    unsigned delay = 0;
    int ret = 0;

    pthread_mutex_lock(&lock);
    r = rule_firing(o, op, size);
    if (r != NULL && r->r.mode == FAULT_FAIL)
        ret = -(r->r.err != 0 ? r->r.err : EIO);
    else if (r != NULL && r->r.mode == FAULT_SHORT)
        ret = FAULT_SHORT;
    else if (r != NULL && r->r.mode == FAULT_DELAY)
        delay = r->r.delay_us;
    else if (r != NULL && r->r.mode == FAULT_HANG) {
        r->hung++;
        pthread_cond_broadcast(&cond);
        while (!r->released)
            pthread_cond_wait(&cond, &lock);
        r->hung--;
        pthread_cond_broadcast(&cond);
    }
    pthread_mutex_unlock(&lock);
    if (delay > 0)
        usleep(delay);
    return ret;
}

static int
gate(const struct fault_obj *o, unsigned op)
{
    return gate_size(o, op, 0);
}

/* ---- block I/O ---- */

static struct fault_obj *
fobj(struct vs_bdev *bs)
{
    return bs->opaque;
}

/* Copy of the first half (at least a byte) of IOV into OUT: its count. */
static int
iov_half(const struct iovec *iov, int iovcnt, struct iovec *out)
{
    size_t total = 0, want;
    int n = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    want = total > 1 ? total / 2 : total;
    for (int i = 0; i < iovcnt && want > 0; i++) {
        out[n] = iov[i];
        if (out[n].iov_len > want)
            out[n].iov_len = want;
        want -= out[n++].iov_len;
    }
    return n;
}

static ssize_t
fault_rw(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
         uint64_t offset, unsigned flags, bool write)
{
    struct fault_obj *o = fobj(bs);
    struct iovec stack[IOV_STACK], *half = stack;
    int r = gate(o, write ? FAULT_WRITE : FAULT_READ);
    ssize_t n;

    if (r < 0)
        return r;
    if (r == FAULT_SHORT) {
        if (iovcnt > IOV_STACK)
            half = malloc(sizeof(*half) * (size_t)iovcnt);
        if (half == NULL)
            return -ENOMEM;
        iovcnt = iov_half(iov, iovcnt, half);
        iov = half;
    }
    n = write ? vs_bdev_pwritev(o->inner, iov, iovcnt, offset, flags)
              : vs_bdev_preadv(o->inner, iov, iovcnt, offset, flags);
    if (half != stack)
        free(half);
    return n;
}

static ssize_t
fault_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
             uint64_t offset, unsigned flags)
{
    return fault_rw(bs, iov, iovcnt, offset, flags, false);
}

static ssize_t
fault_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
              uint64_t offset, unsigned flags)
{
    return fault_rw(bs, iov, iovcnt, offset, flags, true);
}

static int
fault_flush(struct vs_bdev *bs)
{
    int r = gate(fobj(bs), FAULT_FLUSH);

    return r < 0 ? r : vs_bdev_flush(fobj(bs)->inner);
}

static int
fault_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length)
{
    int r = gate(fobj(bs), FAULT_DISCARD);

    return r < 0 ? r : vs_bdev_discard(fobj(bs)->inner, offset, length);
}

static int
fault_write_zeroes(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                   unsigned flags)
{
    int r = gate(fobj(bs), FAULT_ZEROES);

    return r < 0 ? r
                 : vs_bdev_write_zeroes(fobj(bs)->inner, offset, length, flags);
}

static int64_t
fault_get_size(struct vs_bdev *bs)
{
    return vs_bdev_size(fobj(bs)->inner);
}

static int64_t
fault_get_allocated(struct vs_bdev *bs)
{
    return vs_bdev_allocated(fobj(bs)->inner);
}

static int
fault_truncate(struct vs_bdev *bs, uint64_t size)
{
    int64_t now = vs_bdev_size(fobj(bs)->inner);
    int r = now >= 0 && size > (uint64_t)now
                ? gate_size(fobj(bs), FAULT_GROW, size)
                : 0;

    return r < 0 ? r : vs_bdev_truncate(fobj(bs)->inner, size);
}

static int
fault_allocate(struct vs_bdev *bs, uint64_t offset, uint64_t length)
{
    return vs_bdev_allocate(fobj(bs)->inner, offset, length);
}

static int
fault_block_status(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                   uint64_t *pnum)
{
    return vs_bdev_block_status(fobj(bs)->inner, offset, length, pnum);
}

static void
fault_close(struct vs_bdev *bs)
{
    struct fault_obj *o = fobj(bs);

    if (o == NULL)
        return;
    vs_bdev_close(o->inner);
    free(o->name);
    free(o->store);
    free(o);
    bs->opaque = NULL;
}

/* ---- stores and objects ---- */

static struct vs_store *
inner_store(struct vs_store *st)
{
    return st->opaque;
}

/* The real location under a "fault:" one, or NULL. */
static const char *
inner_location(const char *location)
{
    size_t len = strlen(FAULT_SCHEME);

    return strncmp(location, FAULT_SCHEME, len) == 0 && location[len] != '\0'
               ? location + len
               : NULL;
}

static int
fault_store_open(struct vs_store *st, bool create)
{
    const char *loc = inner_location(st->location);
    struct vs_store *inner = NULL;
    int r;

    if (loc == NULL)
        return -EINVAL;
    r = vs_store_open(loc, create, &inner);
    if (r < 0)
        return r;
    st->opaque = inner;
    st->caps = inner->caps;
    return 0;
}

static void
fault_store_close(struct vs_store *st)
{
    vs_store_close(inner_store(st));
    st->opaque = NULL;
}

static int
fault_store_destroy(struct vs_store *st)
{
    int r = vs_store_destroy(inner_store(st));

    if (r == 0)
        st->opaque = NULL; /* consumed */
    return r;
}

static int
fault_store_space(struct vs_store *st, struct vs_space *out)
{
    return vs_store_space(inner_store(st), out);
}

static int
fault_store_list(const char *root, int (*fn)(const char *name, void *arg),
                 void *arg)
{
    const char *loc = inner_location(root);

    return loc != NULL ? vs_store_list(loc, fn, arg) : -EINVAL;
}

static int
fault_object_create(struct vs_store *st, const char *name, uint64_t size)
{
    return vs_object_create(inner_store(st), name, size);
}

static int
fault_object_remove(struct vs_store *st, const char *name)
{
    return vs_object_remove(inner_store(st), name);
}

static int
fault_object_clone(struct vs_store *st, const char *src, const char *dst)
{
    return vs_object_clone(inner_store(st), src, dst);
}

static int
fault_object_list(struct vs_store *st, int (*fn)(const char *name, void *arg),
                  void *arg)
{
    return vs_object_list(inner_store(st), fn, arg);
}

static int
fault_object_open(struct vs_store *st, const char *name, struct vs_bdev *bs)
{
    struct fault_obj *o = calloc(1, sizeof(*o));
    int r;

    if (o == NULL || (o->name = strdup(name)) == NULL ||
        (o->store = strdup(st->location)) == NULL) {
        if (o != NULL)
            free(o->name);
        free(o);
        return -ENOMEM;
    }
    r = vs_object_open(inner_store(st), name, bs->open_flags, bs->name,
                       &o->inner);
    if (r < 0) {
        free(o->name);
        free(o->store);
        free(o);
        return r;
    }
    bs->opaque = o;
    bs->caps = o->inner->caps;
    bs->limits = o->inner->limits;
    return 0;
}

/* ---- asynchronous completion ---- */

static atomic_bool async_on;
static atomic_ulong async_completed;

unsigned long
fault_async_completed(void)
{
    return atomic_load(&async_completed);
}

void
fault_set_async(bool on)
{
    atomic_store(&async_on, on);
}

/* One request taken by fault_submit, run on a thread of its own (so a hang
 * holds only that thread) and completed from there. */
struct async_job {
    struct vs_bdev *bs;
    struct vs_request *req;
};

static void *
async_run(void *arg)
{
    struct async_job *job = arg;
    struct vs_request *req = job->req;
    struct vs_bdev *bs = job->bs;
    ssize_t r = -EINVAL;

    free(job);
    switch (req->op) {
    case VS_REQ_READ:
    case VS_REQ_WRITE:
        r = fault_rw(bs, req->iov, req->iovcnt, req->offset, req->flags,
                     req->op == VS_REQ_WRITE);
        break;
    case VS_REQ_FLUSH:
        r = fault_flush(bs);
        break;
    case VS_REQ_DISCARD:
        r = fault_discard(bs, req->offset, req->length);
        break;
    case VS_REQ_WRITE_ZEROES:
        r = fault_write_zeroes(bs, req->offset, req->length, req->flags);
        break;
    }
    atomic_fetch_add(&async_completed, 1);
    req->complete(req, r);
    return NULL;
}

/* With fault_set_async(true), complete every request from another thread,
 * after the submitter has returned, as an event-loop driver does;
 * otherwise -ENOTSUP (the generic layer runs the synchronous path). */
static int
fault_submit(struct vs_bdev *bs, struct vs_request *req)
{
    struct async_job *job;
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_t t;
    int r;

    if (!atomic_load(&async_on) || !(job = malloc(sizeof(*job))))
        return -ENOTSUP;
    job->bs = bs;
    job->req = req;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits it */
    r = pthread_create(&t, &attr, async_run, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        free(job);
        return -ENOTSUP;
    }
    return 0;
}

static const struct vs_driver fault_driver = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "fault",
    .kind = VS_DRIVER_PROTOCOL,
    .scheme = FAULT_SCHEME,
    .store_open = fault_store_open,
    .store_close = fault_store_close,
    .store_destroy = fault_store_destroy,
    .store_space = fault_store_space,
    .store_list = fault_store_list,
    .object_create = fault_object_create,
    .object_remove = fault_object_remove,
    .object_open = fault_object_open,
    .object_clone = fault_object_clone,
    .object_list = fault_object_list,
    .close = fault_close,
    .get_size = fault_get_size,
    .get_allocated = fault_get_allocated,
    .truncate = fault_truncate,
    .preadv = fault_preadv,
    .pwritev = fault_pwritev,
    .flush = fault_flush,
    .discard = fault_discard,
    .write_zeroes = fault_write_zeroes,
    .block_status = fault_block_status,
    .allocate = fault_allocate,
    .submit = fault_submit,
};

int
fault_register(void)
{
    int r = vs_driver_register_extra(&fault_driver);

    return r == -EEXIST ? 0 : r;
}
