/*
 * Power-loss tests of the qcow2 format driver on the crash simulator
 * (tests/crashsim): short operation sequences run through qcow2 stacked on
 * a simulated disk that records every write and flush; afterwards, for
 * every flush boundary of the disk, every enumerated state a power loss
 * could leave is written to a file in a dir store under /var/tmp and
 * judged three ways:
 *
 *   1. our driver opens it (writable, which also checks every reference
 *      against the refcounts).  Only a state from before the image's
 *      creation was durable may be refused, and then only with -EIO or
 *      -EINVAL;
 *   2. what the guest reads is what was durable at the last completed
 *      flush, byte for byte, except where a write issued since may have
 *      landed: each byte must equal its value at that flush or its value
 *      after one of the operations issued since (the virtual size alike);
 *   3. `qemu-img check` finds no corruption.  Leaked clusters are harmless
 *      and counted apart.
 *
 * The sequences: (a) create and write a few clusters; (b) overwrite in
 * place and allocate more; (c) discard and write_zeroes; (d) grow the
 * virtual size and write past the old end (a second L2 table); all on one
 * image, each ending in a flush.  (e) a qcow2 overlay on its own disk over
 * a qcow2 base on another, with partial-cluster writes (copy-on-write).
 * (h) the same with extended L2 entries (subclusters): partial and whole
 * subclusters, zero and discarded subclusters, writes into clusters
 * already allocated (new subclusters of the same host cluster).
 * (f) an image qemu-img made with 512-byte clusters, so that a few
 * hundred kilobytes of writes need new refcount blocks and a grow
 * relocates the L1 table: the metadata orderings that 64 KiB clusters
 * reach only after gigabytes.  (g) the same, written until the refcount
 * table itself moves (fewer states per epoch: its epochs are large).
 *
 * An operation's place in the disk's history is the number of disk flushes
 * before and after it; a crash in epoch K (after disk flush K) has
 * completed every flush operation whose last disk flush is at most K, and
 * may show any operation that began at or before K.  Creation counts as a
 * flush: the driver's create ends in one.  States already judged under the
 * same expectations are skipped, and qemu-img's verdict is cached per
 * image.  A check that fails for a known, reported driver bug is a TAP
 * TODO, so that the suite stays green and the failure stays visible: the
 * one known today is that a flush writes new refcount blocks and the
 * refcount table entries pointing at them with no disk flush between
 * (qcow2_flush.c, stage 2), so a power loss can keep the entry and lose
 * the block; sequence (f) shows it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vs/bdev.h"
#include "crashsim.h"
#include "tap.h"
#include "testutil.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define CS (64 * KiB)
#define MAX_OPS 48
#define MAX_WIN 2
#define MAX_DIAG 4
#define SEEN_BITS 14

/* Sanitizer builds and valgrind judge fewer states per epoch. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif
#ifdef HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

static char base_dir[64] = "/var/tmp/vstorfs-crashsim-qcow2.XXXXXX";
static struct vs_store *st;
static int failures; /* checks failed, TODOs excluded */
static bool slow;    /* under a sanitizer or valgrind */

/* ---- TAP with TODO ---- */

/* A check; a failure with TODO set is reported as a TAP TODO. */
static bool check(bool cond, const char *todo, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool
check(bool cond, const char *todo, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!cond && todo != NULL)
        return tap_ok(false, "%s # TODO %s", msg, todo);
    if (!cond)
        failures++;
    return tap_ok(cond, "%s", msg);
}

/* ---- the guest's view ---- */

struct window {
    uint64_t off, len;
};

struct model {
    uint64_t size;
    uint8_t *win[MAX_WIN];
};

struct op {
    char what[64];
    size_t f_start, f_end; /* disk flushes before and after it */
    bool durable;          /* a flush: what came before is durable */
    struct model m;        /* the guest's view after it */
};

/* The result of judging the states of one sequence. */
struct tally {
    unsigned enumerated, checked, refused, leaky, corrupt, unchecked;
    unsigned open_fail, data_fail, size_fail;
    unsigned known_open, known_corrupt; /* the refcount-block bug */
    uint64_t leaked_clusters;
    unsigned diags;
};

struct seq {
    const char *name;
    struct crashsim_disk *disk;
    struct vs_bdev *bs; /* the live qcow2 layer */
    const char *obj;    /* object name of the states in the check store */
    const char *backing_obj;
    struct window win[MAX_WIN];
    int nwin;
    struct model cur;
    struct op ops[MAX_OPS];
    size_t nops;
    struct crashsim_opts opts;
    struct tally t;
};

static uint64_t seen[1u << SEEN_BITS]; /* states judged: open addressing */

/* True if KEY was seen; remembers it. */
static bool
seen_before(uint64_t key)
{
    size_t mask = (1u << SEEN_BITS) - 1, i = key & mask;

    key |= 1; /* 0 marks an empty slot */
    for (size_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        if (seen[i] == key)
            return true;
        if (seen[i] == 0) {
            seen[i] = key;
            return false;
        }
    }
    return false; /* full: judge it again */
}

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)((size_t)seed * 131 + i * 7 + (i >> 9) + 1);
}

static int
model_copy(const struct seq *s, struct model *dst, const struct model *src)
{
    dst->size = src->size;
    for (int w = 0; w < s->nwin; w++) {
        dst->win[w] = malloc(s->win[w].len);
        if (dst->win[w] == NULL)
            return -ENOMEM;
        memcpy(dst->win[w], src->win[w], s->win[w].len);
    }
    return 0;
}

static void
model_free(const struct seq *s, struct model *m)
{
    for (int w = 0; w < s->nwin; w++) {
        free(m->win[w]);
        m->win[w] = NULL;
    }
}

/* Apply DATA (NULL: zeros) at [off, off + len) of the guest to M. */
static void
model_put(const struct seq *s, struct model *m, uint64_t off, uint64_t len,
          const uint8_t *data)
{
    for (int w = 0; w < s->nwin; w++) {
        uint64_t a = off > s->win[w].off ? off : s->win[w].off;
        uint64_t b = off + len < s->win[w].off + s->win[w].len
                         ? off + len
                         : s->win[w].off + s->win[w].len;

        if (a >= b)
            continue;
        if (data != NULL)
            memcpy(m->win[w] + (a - s->win[w].off), data + (a - off), b - a);
        else
            memset(m->win[w] + (a - s->win[w].off), 0, b - a);
    }
}

/* ---- running a sequence ---- */

static size_t
flushes(const struct seq *s)
{
    return crashsim_flushes(s->disk);
}

/* Note operation WHAT that ran from F_START flushes; R its result. */
static bool
op_done(struct seq *s, const char *what, size_t f_start, bool durable, int r)
{
    struct op *o = &s->ops[s->nops];

    if (r < 0 || s->nops == MAX_OPS) {
        tap_diag("seq %s: %s: %s", s->name, what,
                 r < 0 ? strerror(-r) : "too many operations");
        return false;
    }
    snprintf(o->what, sizeof(o->what), "%s", what);
    o->f_start = f_start;
    o->f_end = flushes(s);
    o->durable = durable;
    if (model_copy(s, &o->m, &s->cur) < 0)
        return false;
    s->nops++;
    return true;
}

static bool
op_write(struct seq *s, uint64_t off, uint64_t len, unsigned seed)
{
    uint8_t *buf = malloc(len);
    size_t f0 = flushes(s);
    char what[64];
    ssize_t n;

    if (buf == NULL)
        return false;
    fill(buf, len, seed);
    n = vs_bdev_pwrite(s->bs, buf, len, off);
    model_put(s, &s->cur, off, len, buf);
    free(buf);
    snprintf(what, sizeof(what), "write %" PRIu64 " at %#" PRIx64, len, off);
    return op_done(s, what, f0, false,
                   n == (ssize_t)len ? 0
                   : n < 0           ? (int)n
                                     : -EIO);
}

static bool
op_zero(struct seq *s, uint64_t off, uint64_t len, bool discard, unsigned flags)
{
    size_t f0 = flushes(s);
    char what[64];
    int r = discard ? vs_bdev_discard(s->bs, off, len)
                    : vs_bdev_write_zeroes(s->bs, off, len, flags);

    model_put(s, &s->cur, off, len, NULL);
    snprintf(what, sizeof(what), "%s %" PRIu64 " at %#" PRIx64,
             discard ? "discard" : "write_zeroes", len, off);
    return op_done(s, what, f0, false, r);
}

static bool
op_flush(struct seq *s)
{
    size_t f0 = flushes(s);

    return op_done(s, "flush", f0, true, vs_bdev_flush(s->bs));
}

static bool
op_grow(struct seq *s, uint64_t size)
{
    size_t f0 = flushes(s);
    char what[64];
    int r = vs_bdev_truncate(s->bs, size);

    if (r == 0)
        s->cur.size = size;
    snprintf(what, sizeof(what), "grow to %" PRIu64, size);
    return op_done(s, what, f0, false, r);
}

/* Create a qcow2 image of SIZE on the sequence's disk and open it over
 * BACKING (may be NULL). */
static bool
op_create(struct seq *s, uint64_t size, const char *backing_name,
          struct vs_bdev *backing)
{
    struct vs_bdev *file = NULL;
    size_t f0 = flushes(s);
    int r = crashsim_open(s->disk, s->name, 0, &file);

    if (r == 0)
        r = vs_format_create("qcow2", file, size, backing_name,
                             backing_name != NULL ? "qcow2" : NULL);
    if (r == 0)
        r = vs_format_open("qcow2", file, backing, 0, &s->bs);
    if (r < 0)
        vs_bdev_close(file);
    s->cur.size = size;
    return op_done(s, "create", f0, true, r);
}

/* Open the existing image on the sequence's disk (made elsewhere). */
static bool
op_open(struct seq *s)
{
    struct vs_bdev *file = NULL;
    size_t f0 = flushes(s);
    int r = crashsim_open(s->disk, s->name, 0, &file);
    int64_t size;

    if (r == 0)
        r = vs_format_open("qcow2", file, NULL, 0, &s->bs);
    if (r < 0) {
        vs_bdev_close(file);
        return op_done(s, "open", f0, true, r);
    }
    size = vs_bdev_size(s->bs);
    s->cur.size = size > 0 ? (uint64_t)size : 0;
    return op_done(s, "open", f0, true, size < 0 ? (int)size : 0);
}

static bool
seq_init(struct seq *s, const char *name, const char *obj,
         const uint8_t *initial, size_t len)
{
    static unsigned nseq;

    memset(s, 0, sizeof(*s));
    s->name = name;
    s->obj = obj;
    s->opts.max_states = slow ? 60 : 200;
    s->opts.random_states = slow ? 4 : 16;
    s->opts.seed = 0x5eed0000u + nseq++;
    s->disk = crashsim_disk_new(initial, len);
    return s->disk != NULL;
}

static bool
seq_window(struct seq *s, uint64_t off, uint64_t len)
{
    struct window *w = &s->win[s->nwin];

    w->off = off;
    w->len = len;
    s->cur.win[s->nwin] = calloc(1, len);
    return s->cur.win[s->nwin++] != NULL;
}

static void
seq_free(struct seq *s)
{
    vs_bdev_close(s->bs);
    s->bs = NULL;
    for (size_t i = 0; i < s->nops; i++)
        model_free(s, &s->ops[i].m);
    model_free(s, &s->cur);
    crashsim_disk_free(s->disk);
    s->disk = NULL;
}

/* ---- judging one state ---- */

static int
write_file(const char *name, const uint8_t *data, uint64_t size)
{
    int fd =
        open(tu_obj_path(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    uint64_t done = 0;

    if (fd < 0)
        return -errno;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);

        if (n <= 0) {
            close(fd);
            return n < 0 ? -errno : -EIO;
        }
        done += (uint64_t)n;
    }
    return close(fd) < 0 ? -errno : 0;
}

/* qemu-img check's verdict on one image. */
struct verdict {
    int rc; /* 0 clean, 3 leaks only, 2 corruption, 1 could not check */
    uint64_t leaks;
    bool rb_outside; /* "refcount block N is outside image" among them */
    char out[400];   /* its first error lines */
};

#define VERDICT_CACHE 4096
static struct {
    uint64_t hash;
    struct verdict v;
} vcache[VERDICT_CACHE];
static unsigned nvcache;

/* Read all of F into a string (NULL without memory). */
static char *
slurp(FILE *f)
{
    size_t len = 0, cap = 65536, n;
    char *buf = malloc(cap), *p;

    if (buf == NULL)
        return NULL;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len > 1)
            continue;
        p = realloc(buf, cap * 2);
        if (p == NULL)
            break; /* keep what fits */
        buf = p;
        cap *= 2;
    }
    buf[len] = '\0';
    return buf;
}

/* Fill V's summary from qemu-img check's output TEXT. */
static void
parse_verdict(const char *text, struct verdict *v)
{
    const char *p = strstr(text, " leaked clusters were found");
    size_t used = 0;
    int errors = 0, outside = 0;

    v->leaks = 0;
    while (p != NULL && p > text && p[-1] >= '0' && p[-1] <= '9')
        p--;
    if (p != NULL)
        v->leaks = strtoull(p, NULL, 10);
    v->out[0] = '\0';
    for (p = strstr(text, "ERROR"); p != NULL; p = strstr(p + 1, "ERROR")) {
        const char *eol = strchr(p, '\n');
        int len = eol != NULL ? (int)(eol - p) : (int)strlen(p);
        unsigned blk;
        char tail[32];

        errors++;
        if (sscanf(p, "ERROR refcount block %u is outside imag%31s", &blk,
                   tail) == 2)
            outside++;
        if (errors <= 3 && used < sizeof(v->out) - 1)
            used += (size_t)snprintf(v->out + used, sizeof(v->out) - used,
                                     "%s%.*s", used ? " | " : "", len, p);
    }
    if (errors == 0)
        snprintf(v->out, sizeof(v->out), "%.120s", text);
    v->rb_outside = outside > 0;
}

static int
qemu_check(const char *name, uint64_t hash, struct verdict *v)
{
    char cmd[512];
    char *text;
    FILE *f;
    int status;

    for (unsigned i = 0; i < nvcache; i++) {
        if (vcache[i].hash == hash) {
            *v = vcache[i].v;
            return 0;
        }
    }
    snprintf(cmd, sizeof(cmd), "qemu-img check -f qcow2 '%s' 2>&1",
             tu_obj_path(name));
    f = popen(cmd, "r");
    if (f == NULL)
        return -errno;
    text = slurp(f);
    status = pclose(f);
    if (text == NULL)
        return -ENOMEM;
    v->rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    parse_verdict(text, v);
    free(text);
    if (nvcache < VERDICT_CACHE)
        vcache[nvcache++] = (typeof(vcache[0])){hash, *v};
    return 0;
}

/* What a crash in one epoch may show. */
struct expect {
    const struct op *base; /* the last completed flush (or NULL) */
    const struct op *cand[MAX_OPS];
    size_t ncand;
    size_t key; /* identifies the expectation */
};

static void
expect_for(const struct seq *s, size_t k, struct expect *e)
{
    size_t last = SIZE_MAX;

    for (size_t i = 0; i < s->nops; i++) {
        if (s->ops[i].durable && s->ops[i].f_end <= k)
            last = i;
    }
    e->base = last != SIZE_MAX ? &s->ops[last] : NULL;
    e->ncand = 0;
    for (size_t i = last != SIZE_MAX ? last + 1 : 0; i < s->nops; i++) {
        if (s->ops[i].f_start <= k)
            e->cand[e->ncand++] = &s->ops[i];
    }
    e->key = (last + 1) * 1000 + e->ncand;
}

static void diag_state(struct seq *s, const struct crashsim_state *cs,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
diag_state(struct seq *s, const struct crashsim_state *cs, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    if (s->t.diags++ >= MAX_DIAG)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tap_diag("seq %s: epoch %zu state %u (%s): %s", s->name, cs->epoch,
             cs->index, cs->what, msg);
}

/* Whether byte I of window W reads as one of the allowed values. */
static bool
byte_allowed(const struct expect *e, const struct op *ref, int w, uint64_t i,
             uint8_t got)
{
    if (ref->m.win[w][i] == got)
        return true;
    for (size_t c = 0; c < e->ncand; c++) {
        if (e->cand[c]->m.win[w][i] == got)
            return true;
    }
    return false;
}

/* Check the guest's view of the opened state against E. */
static bool
check_data(struct seq *s, const struct crashsim_state *cs, struct vs_bdev *bs,
           const struct expect *e)
{
    const struct op *ref = e->base != NULL ? e->base : &s->ops[0];
    int64_t size = vs_bdev_size(bs);
    bool size_ok = size >= 0 && (uint64_t)size == ref->m.size;

    for (size_t c = 0; c < e->ncand && !size_ok; c++)
        size_ok = size >= 0 && (uint64_t)size == e->cand[c]->m.size;
    if (!size_ok) {
        s->t.size_fail++;
        diag_state(s, cs, "virtual size %" PRId64 ", expected %" PRIu64, size,
                   ref->m.size);
        return false;
    }
    for (int w = 0; w < s->nwin; w++) {
        uint64_t len = s->win[w].len;
        uint8_t *buf;
        ssize_t n;

        if (s->win[w].off >= (uint64_t)size)
            continue;
        if (s->win[w].off + len > (uint64_t)size)
            len = (uint64_t)size - s->win[w].off;
        buf = malloc(len);
        if (buf == NULL)
            return false;
        n = vs_bdev_pread(bs, buf, len, s->win[w].off);
        if (n != (ssize_t)len) {
            free(buf);
            s->t.data_fail++;
            diag_state(s, cs, "read of window %d: %zd", w, n);
            return false;
        }
        for (uint64_t i = 0; i < len; i++) {
            if (buf[i] != ref->m.win[w][i] &&
                !byte_allowed(e, ref, w, i, buf[i])) {
                s->t.data_fail++;
                diag_state(s, cs,
                           "guest byte %#" PRIx64 " reads %u, durable value "
                           "%u (after '%s')",
                           s->win[w].off + i, buf[i], ref->m.win[w][i],
                           ref->what);
                free(buf);
                return false;
            }
        }
        free(buf);
    }
    return true;
}

/* Open the state file as our driver would: writable, over its backing. */
static int
open_state(struct seq *s, struct vs_bdev **out)
{
    struct vs_bdev *file = NULL, *bfile = NULL, *back = NULL;
    int r = 0;

    if (s->backing_obj != NULL) {
        r = vs_object_open(st, s->backing_obj, VS_OPEN_RDONLY, "base", &bfile);
        if (r == 0)
            r = vs_format_open("qcow2", bfile, NULL, VS_OPEN_RDONLY, &back);
        if (r < 0) {
            vs_bdev_close(bfile);
            return r;
        }
    }
    r = vs_object_open(st, s->obj, 0, s->obj, &file);
    if (r == 0)
        r = vs_format_open("qcow2", file, back, 0, out);
    if (r < 0) {
        vs_bdev_close(file);
        vs_bdev_close(back);
    }
    return r;
}

/*
 * The one driver bug these tests know (see the top of the file): a flush
 * writes a new refcount block and the refcount table entry that points at
 * it without a disk flush between, so a power loss can leave the entry
 * pointing past the end of the file.  States where qemu-img check names
 * such a block (and whatever follows from it: the counts that block holds
 * are missing) are counted apart, as a TODO.
 */
static const char *const known_rb_bug =
    "qcow2 flush writes the refcount table before its new refcount blocks "
    "are durable";

static void
judge_qemu(struct seq *s, const struct crashsim_state *cs,
           const struct verdict *v)
{
    if (v->rc == 0)
        return;
    if (v->rc == 3) {
        s->t.leaky++;
        s->t.leaked_clusters += v->leaks;
        return;
    }
    if (v->rb_outside)
        s->t.known_corrupt++;
    else
        s->t.corrupt++;
    diag_state(s, cs, "qemu-img check exit %d: %s", v->rc, v->out);
}

static int
judge(const struct crashsim_state *cs, void *arg)
{
    struct seq *s = arg;
    struct expect e;
    struct verdict v = {.rc = -1};
    struct vs_bdev *bs = NULL;
    uint64_t hash = crashsim_hash(cs->data, cs->size, 0);
    bool have_v;
    int r;

    s->t.enumerated++;
    expect_for(s, cs->epoch, &e);
    if (seen_before(hash ^ ((e.key + 1) * 0x9e3779b97f4a7c15ull) ^
                    s->opts.seed))
        return 0;
    s->t.checked++;
    r = write_file(s->obj, cs->data, cs->size);
    if (r < 0)
        return r;
    have_v = qemu_check(s->obj, hash, &v) == 0;
    if (!have_v)
        s->t.unchecked++;
    r = open_state(s, &bs);
    if (r < 0 && e.base == NULL && (r == -EIO || r == -EINVAL)) {
        s->t.refused++; /* before creation was durable: allowed */
        if (have_v && v.rc == 3)
            judge_qemu(s, cs, &v);
        return 0;
    }
    if (r < 0) {
        if (have_v && v.rb_outside)
            s->t.known_open++;
        else
            s->t.open_fail++;
        diag_state(s, cs, "open failed: %s", strerror(-r));
    } else {
        check_data(s, cs, bs, &e);
        vs_bdev_close(bs);
    }
    if (have_v)
        judge_qemu(s, cs, &v);
    return 0;
}

/* Judge every state of epochs [k0, k1]; report as sequence TITLE. */
static void
judge_epochs(struct seq *s, const char *title, size_t k0, size_t k1)
{
    int r = 0;

    memset(&s->t, 0, sizeof(s->t));
    for (size_t k = k0; r == 0 && k <= k1; k++)
        r = crashsim_states(s->disk, k, &s->opts, judge, s);
    check(r == 0, NULL, "%s: states enumerated (%s)", title,
          r == 0 ? "ok" : strerror(-r));
    tap_diag("%s: epochs %zu-%zu, %u states enumerated, %u distinct checked, "
             "%u refused before creation, %u with leaks (%" PRIu64
             " leaked clusters)%s",
             title, k0, k1, s->t.enumerated, s->t.checked, s->t.refused,
             s->t.leaky, s->t.leaked_clusters,
             s->t.unchecked ? ", some not run through qemu-img" : "");
    check(s->t.open_fail == 0, NULL, "%s: every state opens (%u not)", title,
          s->t.open_fail);
    check(s->t.size_fail == 0 && s->t.data_fail == 0, NULL,
          "%s: flushed data intact (%u size, %u data mismatches)", title,
          s->t.size_fail, s->t.data_fail);
    check(s->t.corrupt == 0, NULL,
          "%s: qemu-img check finds no corruption (%u corrupt)", title,
          s->t.corrupt);
    check(s->t.known_open + s->t.known_corrupt == 0, known_rb_bug,
          "%s: no refcount table entry points past the file (%u states "
          "refused by our driver, %u by qemu-img check)",
          title, s->t.known_open, s->t.known_corrupt);
    check(s->t.unchecked == 0, NULL, "%s: qemu-img ran on every state", title);
}

/* ---- the sequences ---- */

#define A_SIZE (1 * MiB)
#define A_GROW (768 * MiB) /* a second L2 table, a larger L1 */

/* (a) to (d) on one image; each phase judged on its own epochs. */
static void
test_single(void)
{
    struct seq s;
    size_t k[5];
    bool good;

    if (!seq_init(&s, "single", "single", NULL, 0) ||
        !seq_window(&s, 0, A_SIZE) ||
        !seq_window(&s, A_GROW - 256 * KiB, 256 * KiB)) {
        check(false, NULL, "set up sequence a-d");
        seq_free(&s);
        return;
    }
    k[0] = flushes(&s);
    good = op_create(&s, A_SIZE, NULL, NULL) && op_write(&s, 0, CS, 1) &&
           op_write(&s, 2 * CS, 2 * CS, 2) &&
           op_write(&s, 5 * CS + 100, 5000, 3) && op_flush(&s);
    k[1] = flushes(&s);
    good = good && op_write(&s, 8192, 4096, 4) &&
           op_write(&s, 2 * CS + 10000, 100000, 5) &&
           op_write(&s, 8 * CS, 3 * CS, 6) &&
           op_write(&s, 12 * CS + 60000, 3000, 7) && op_flush(&s);
    k[2] = flushes(&s);
    good = good && op_zero(&s, 2 * CS, 2 * CS, true, 0) &&
           op_zero(&s, 8 * CS, CS, false, 0) &&
           op_zero(&s, 9 * CS, CS, false, VS_IO_MAY_UNMAP) &&
           op_zero(&s, 10 * CS + 500, 1000, false, 0) &&
           op_zero(&s, 12 * CS + 10, CS, true, 0) &&
           op_write(&s, 8 * CS + 4096, 4096, 8) &&
           op_write(&s, 2 * CS, 4096, 9) && op_flush(&s) &&
           op_write(&s, 14 * CS, 2 * CS, 10) && op_flush(&s);
    k[3] = flushes(&s);
    good = good && op_grow(&s, A_GROW) &&
           op_write(&s, A_GROW - 128 * KiB, CS, 11) &&
           op_write(&s, A_GROW - 3000, 3000, 12) &&
           op_write(&s, A_SIZE - 4096, 4096, 13) && op_flush(&s);
    vs_bdev_close(s.bs);
    s.bs = NULL;
    k[4] = flushes(&s);
    check(good, NULL, "sequences a-d ran (%zu disk flushes, %zu events)", k[4],
          crashsim_events(s.disk));
    if (good) {
        judge_epochs(&s, "a (create, write)", k[0], k[1] - 1);
        judge_epochs(&s, "b (overwrite, allocate)", k[1], k[2] - 1);
        judge_epochs(&s, "c (discard, write_zeroes)", k[2], k[3] - 1);
        judge_epochs(&s, "d (grow, write past the old end)", k[3], k[4]);
    }
    seq_free(&s);
}

/* Build a qcow2 base of 1 MiB with 8 clusters of data on its own disk and
 * leave its final image in the check store as BASE_OBJ. */
#define BASE_OBJ "base.qcow2"

static struct crashsim_disk *
make_base(uint8_t *data)
{
    struct crashsim_disk *d = crashsim_disk_new(NULL, 0);
    struct crashsim_image img = {0};
    struct vs_bdev *file = NULL, *bs = NULL;
    int r = d != NULL ? crashsim_open(d, "base", 0, &file) : -ENOMEM;

    if (r == 0)
        r = vs_format_create("qcow2", file, A_SIZE, NULL, NULL);
    if (r == 0)
        r = vs_format_open("qcow2", file, NULL, 0, &bs);
    if (r < 0)
        vs_bdev_close(file);
    fill(data, 8 * CS, 20);
    if (r == 0 && vs_bdev_pwrite(bs, data, 8 * CS, 0) != (ssize_t)(8 * CS))
        r = -EIO;
    vs_bdev_close(bs);
    if (r == 0)
        r = crashsim_current(d, &img);
    if (r == 0)
        r = write_file(BASE_OBJ, img.data, img.size);
    crashsim_image_free(&img);
    if (r < 0) {
        tap_diag("base layer: %s", strerror(-r));
        crashsim_disk_free(d);
        return NULL;
    }
    return d;
}

/* Open a fresh base (see make_base) read-only as *BACK; its disk, or NULL
 * after a failed check. */
static struct crashsim_disk *
open_base(struct seq *s, struct vs_bdev **back)
{
    struct crashsim_disk *bdisk = make_base(s->cur.win[0]);
    struct vs_bdev *bfile = NULL;
    int r = bdisk != NULL ? crashsim_open(bdisk, "base", VS_OPEN_RDONLY, &bfile)
                          : -EIO;

    if (r == 0)
        r = vs_format_open("qcow2", bfile, NULL, VS_OPEN_RDONLY, back);
    if (r < 0) {
        vs_bdev_close(bfile);
        check(false, NULL, "open the base layer read-only: %s", strerror(-r));
        crashsim_disk_free(bdisk);
        return NULL;
    }
    return bdisk;
}

/* The operations of (e), on an overlay without subclusters. */
static bool
ops_classic(struct seq *s)
{
    return op_write(s, 4096, 4096, 21) &&
           op_write(s, 2 * CS + 60000, 100, 22) &&
           op_write(s, 4 * CS - 5000, 10000, 23) &&
           op_write(s, 10 * CS + 7, 2000, 24) && op_flush(s) &&
           op_write(s, 8192, 4096, 25) && op_zero(s, 6 * CS, CS, true, 0) &&
           op_zero(s, 7 * CS + 100, 300, false, 0) &&
           op_write(s, 5 * CS + 1, CS - 2, 26) && op_flush(s);
}

#define SCS (CS / 32)

/* The operations of (h), on an overlay with subclusters: partial and
 * whole subclusters, a second write into an allocated cluster (its own
 * host cluster, new subclusters), zero and discarded subclusters, a write
 * into a zero subcluster, a discarded cluster. */
static bool
ops_subclusters(struct seq *s)
{
    return op_write(s, 4096, 4096, 31) &&
           op_write(s, 2 * CS + 60000, 100, 32) &&
           op_write(s, 4 * CS - 5000, 10000, 33) &&
           op_write(s, 10 * CS + 7, 2000, 34) && op_flush(s) &&
           op_write(s, 8 * SCS + 3, 5000, 35) &&
           op_write(s, 4096 + 100, 50, 36) &&
           op_zero(s, 6 * CS + 4 * SCS, 4 * SCS, false, 0) &&
           op_zero(s, 4096, 2 * SCS, true, 0) &&
           op_zero(s, 7 * CS + 100, 300, false, 0) && op_flush(s) &&
           op_write(s, 6 * CS + 5 * SCS + 7, 100, 37) &&
           op_zero(s, 10 * CS, CS, true, 0) &&
           op_write(s, 2 * CS + 70, 3 * SCS, 38) && op_flush(s);
}

/* (e) and (h): a qcow2 overlay over a qcow2 base, each on its own disk;
 * with subclusters (extended L2 entries) when EXTL2. */
static void
test_overlay(bool extl2)
{
    const char *title =
        extl2 ? "h (overlay with subclusters)" : "e (overlay, copy-on-write)";
    struct crashsim_disk *bdisk;
    struct vs_bdev *back = NULL;
    struct seq s;
    size_t k0, k1;
    bool good;

    if (!seq_init(&s, extl2 ? "overlay-sc" : "overlay", "overlay", NULL, 0) ||
        !seq_window(&s, 0, A_SIZE)) {
        check(false, NULL, "set up %s", title);
        seq_free(&s);
        return;
    }
    bdisk = open_base(&s, &back);
    if (bdisk == NULL) {
        seq_free(&s);
        return;
    }
    s.backing_obj = BASE_OBJ;
    k0 = flushes(&s);
    setenv("VSTORFS_QCOW2_EXTL2", extl2 ? "1" : "0", 1);
    good = op_create(&s, A_SIZE, BASE_OBJ, back);
    unsetenv("VSTORFS_QCOW2_EXTL2");
    if (s.bs == NULL)
        vs_bdev_close(back); /* not taken over by the overlay */
    good = good && (extl2 ? ops_subclusters(&s) : ops_classic(&s));
    vs_bdev_close(s.bs); /* and the base, its backing */
    s.bs = NULL;
    k1 = flushes(&s);
    check(good, NULL, "%s ran (%zu disk flushes, %zu events)", title, k1,
          crashsim_events(s.disk));
    if (good)
        judge_epochs(&s, title, k0, k1);
    seq_free(&s);
    crashsim_disk_free(bdisk);
}

/* An image qemu-img made: its bytes in *DATA, its size returned (0 on
 * failure). */
static size_t
qemu_made(const char *opts, const char *size, uint8_t **data)
{
    char cmd[512];
    struct stat sb;
    size_t len = 0;
    int fd;

    snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 %s '%s' %s", opts,
             tu_obj_path("made"), size);
    if (system(cmd) != 0)
        return 0;
    fd = open(tu_obj_path("made"), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
        *data = malloc((size_t)sb.st_size);
        if (*data != NULL &&
            read(fd, *data, (size_t)sb.st_size) == (ssize_t)sb.st_size)
            len = (size_t)sb.st_size;
    }
    close(fd);
    if (len == 0) {
        free(*data);
        *data = NULL;
    }
    return len;
}

#define F_SIZE (1 * MiB)
#define F_GROW (4 * MiB)

/* (f) 512-byte clusters: new refcount blocks, a relocated L1 table. */
static void
test_small_clusters(void)
{
    uint8_t *img = NULL;
    size_t len = qemu_made("-o cluster_size=512", "1M", &img);
    struct seq s;
    size_t k0, k1;
    bool good;

    if (len == 0) {
        check(false, NULL, "set up sequence f: qemu-img create");
        return;
    }
    good = seq_init(&s, "small", "small", img, len) &&
           seq_window(&s, 0, F_SIZE) &&
           seq_window(&s, F_GROW - 64 * KiB, 64 * KiB);
    free(img);
    if (!good) {
        check(false, NULL, "set up sequence f");
        seq_free(&s);
        return;
    }
    k0 = flushes(&s);
    good = op_open(&s);
    for (uint64_t off = 0; good && off < 256 * KiB; off += 16 * KiB)
        good = op_write(&s, off, 16 * KiB, 30 + (unsigned)(off >> 14));
    good = good && op_flush(&s) && op_grow(&s, F_GROW) &&
           op_write(&s, F_GROW - 64 * KiB, 64 * KiB, 99) && op_flush(&s) &&
           op_zero(&s, 64 * KiB, 32 * KiB, true, 0) &&
           op_write(&s, 128 * KiB + 100, 8 * KiB, 100) &&
           op_write(&s, 512 * KiB, 16 * KiB, 101) && op_flush(&s);
    vs_bdev_close(s.bs);
    s.bs = NULL;
    k1 = flushes(&s);
    check(good, NULL, "sequence f ran (%zu disk flushes, %zu events)", k1,
          crashsim_events(s.disk));
    if (good)
        judge_epochs(&s, "f (512-byte clusters)", k0, k1);
    seq_free(&s);
}

/* Whether the refcount table of the image on S's disk is no longer where
 * it was in the first INITIAL bytes the disk started with. */
static bool
table_moved(struct seq *s, size_t initial)
{
    struct crashsim_image now = {0}, then = {0};
    bool moved = false;

    if (crashsim_current(s->disk, &now) == 0 &&
        crashsim_durable(s->disk, 0, &then) == 0 && now.size >= 64 &&
        then.size == initial && initial >= 64)
        moved = memcmp(now.data + 48, then.data + 48, 12) != 0;
    crashsim_image_free(&now);
    crashsim_image_free(&then);
    return moved;
}

#define G_DATA (9 * MiB) /* past what one refcount table cluster covers */

/* (g) 512-byte clusters again, written until the refcount table (one
 * cluster: 64 blocks of 256 clusters, 8 MiB) has to move. */
static void
test_table_growth(void)
{
    uint8_t *img = NULL;
    size_t len = qemu_made("-o cluster_size=512", "16M", &img);
    struct seq s;
    size_t k0, k1;
    bool good;

    if (len == 0) {
        check(false, NULL, "set up sequence g: qemu-img create");
        return;
    }
    good = seq_init(&s, "rtgrow", "rtgrow", img, len) &&
           seq_window(&s, 0, 64 * KiB) &&
           seq_window(&s, G_DATA - 64 * KiB, 64 * KiB);
    free(img);
    if (!good) {
        check(false, NULL, "set up sequence g");
        seq_free(&s);
        return;
    }
    s.opts.max_states = slow ? 12 : 24;
    s.opts.random_states = 4;
    k0 = flushes(&s);
    good = op_open(&s);
    for (uint64_t off = 0; good && off < G_DATA; off += MiB)
        good = op_write(&s, off, MiB, 200 + (unsigned)(off >> 20));
    good =
        good && op_flush(&s) && op_write(&s, 4096, 8192, 250) && op_flush(&s);
    vs_bdev_close(s.bs);
    s.bs = NULL;
    k1 = flushes(&s);
    check(good, NULL, "sequence g ran (%zu disk flushes, %zu events)", k1,
          crashsim_events(s.disk));
    check(good && table_moved(&s, len), NULL,
          "g: the refcount table was relocated");
    if (good)
        judge_epochs(&s, "g (refcount table growth)", k0, k1);
    seq_free(&s);
}

int
main(void)
{
    int r = crashsim_register();

    if (r < 0) {
        tap_diag("set up: %s", strerror(-r));
        return 1;
    }
    if (tu_scratch_open(base_dir, &st) < 0)
        return 1;
    slow = SLOW_BUILD || RUNNING_ON_VALGRIND;
    if (slow)
        tap_diag("sanitizer build or valgrind: at most 60 states per epoch");
    test_single();
    test_overlay(false);
    test_overlay(true);
    test_small_clusters();
    test_table_growth();
    tu_scratch_close(st);
    tap_done();
    return failures == 0 ? 0 : 1;
}
