/*
 * The images a power loss could leave: crashsim_states() (contract in
 * crashsim.h).
 *
 * For epoch K the durable image at flush K is the base; each state applies
 * the epoch's events to a copy of it, each event in one of three modes:
 * kept, dropped, torn after T sectors (its first bytes up to the T-th
 * sector boundary land, the rest does not), or, when the options ask for
 * it, garbled at sector T (the first T sectors land and the one being
 * written when the power went holds garbage, as SQLite's crash VFS can
 * trash a sector).  Events are applied in log
 * order, so of two overlapping kept writes the later one wins, as on a
 * disk that reorders nothing but may lose anything not yet flushed.  A
 * size change is kept or dropped, never torn; a dropped size change with a
 * kept write past the old end still grows the image to that write, as a
 * file system would.
 *
 * States come in categories (see crashsim.h).  Past the two fixed ones, the
 * budget (less a reserve for the random states) is shared among the four
 * systematic categories by water-filling: a category smaller than its fair
 * share takes all of its items and leaves the rest to the others; a larger
 * one takes evenly spaced items.  Random states fill what is left, up to
 * the number asked for, from a generator seeded by the seed and the epoch.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashsim_int.h"

#define DEFAULT_MAX 200
#define MODE_DROP (-1)
#define MODE_KEEP 0
/* Modes below MODE_DROP: sector GARBLED_AT(mode) holds garbage. */
#define MODE_GARBLE(t) (-2 - (int64_t)(t))
#define GARBLED_AT(mode) ((uint64_t)(-2 - (mode)))

enum category {
    CAT_PREFIX,
    CAT_DROP_ONE,
    CAT_TORN,
    CAT_PREFIX_TORN,
    CAT_GARBLE,
    NCAT
};

struct tear {
    size_t i;   /* event index within the epoch */
    uint64_t t; /* sectors that land */
};

struct gen {
    struct crashsim_disk *d;
    size_t k, first, n;
    struct crashsim_image base, img;
    int64_t *mode; /* per event: MODE_DROP, MODE_KEEP or sectors kept */
    struct tear *tears;
    size_t ntears;
    size_t *tearable; /* events of two sectors or more */
    size_t ntearable;
    struct tear *garbles; /* sector T of event I garbled */
    size_t ngarbles;
    unsigned index;
    char what[192];
    int (*fn)(const struct crashsim_state *st, void *arg);
    void *arg;
};

static const struct crashsim_event *
ev_at(const struct gen *g, size_t i)
{
    return crashsim_event(g->d, g->first + i);
}

/* "write 65536 at 0x30000 (log 17)" for event I. */
static void
describe(const struct gen *g, size_t i, char *buf, size_t len)
{
    const struct crashsim_event *ev = ev_at(g, i);
    static const char *const names[] = {"?", "write", "zero", "resize",
                                        "flush"};

    if (ev->kind == CRASHSIM_RESIZE)
        snprintf(buf, len, "resize to %" PRIu64 " (log %zu)", ev->off,
                 g->first + i);
    else
        snprintf(buf, len, "%s %" PRIu64 " at %#" PRIx64 " (log %zu)",
                 names[ev->kind], ev->len, ev->off, g->first + i);
}

/* Apply the first T sectors of event I and fill its sector T with bytes
 * that depend only on the event and the sector. */
static int
garble(struct gen *g, size_t i, uint64_t t)
{
    const struct crashsim_event *ev = ev_at(g, i);
    uint64_t start = (ev->off / CRASHSIM_SECTOR + t) * CRASHSIM_SECTOR;
    uint64_t x = (g->first + i + 1) * 0x9e3779b97f4a7c15ull + t;
    int r = crashsim_apply(&g->img, ev, crashsim_torn_len(ev, t));

    if (r == 0 && start + CRASHSIM_SECTOR > g->img.size)
        r = crashsim_image_resize(&g->img, start + CRASHSIM_SECTOR);
    for (uint64_t b = 0; r == 0 && b < CRASHSIM_SECTOR; b++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        g->img.data[start + b] = (uint8_t)x;
    }
    return r;
}

/* Build the image the current modes give and hand it to the callback. */
static int
emit(struct gen *g)
{
    struct crashsim_state st;
    int r = crashsim_image_copy(&g->img, &g->base);

    for (size_t i = 0; r == 0 && i < g->n; i++) {
        const struct crashsim_event *ev = ev_at(g, i);

        if (g->mode[i] == MODE_KEEP)
            r = crashsim_apply(&g->img, ev, UINT64_MAX);
        else if (g->mode[i] > 0)
            r = crashsim_apply(&g->img, ev,
                               crashsim_torn_len(ev, (uint64_t)g->mode[i]));
        else if (g->mode[i] < MODE_DROP)
            r = garble(g, i, GARBLED_AT(g->mode[i]));
    }
    if (r < 0)
        return r;
    st.epoch = g->k;
    st.index = g->index++;
    st.what = g->what;
    st.data = g->img.data;
    st.size = g->img.size;
    return g->fn(&st, g->arg);
}

static void
set_all(struct gen *g, int64_t mode)
{
    for (size_t i = 0; i < g->n; i++)
        g->mode[i] = mode;
}

/* Find the tear points: 1, half and all but one sector of each write; and
 * the sectors to garble: the first and the last of each write. */
static int
plan_tears(struct gen *g)
{
    g->tears = calloc(3 * g->n + 1, sizeof(*g->tears));
    g->tearable = calloc(g->n + 1, sizeof(*g->tearable));
    g->garbles = calloc(2 * g->n + 1, sizeof(*g->garbles));
    if (g->tears == NULL || g->tearable == NULL || g->garbles == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < g->n; i++) {
        uint64_t s = crashsim_sectors(ev_at(g, i));
        uint64_t pts[3] = {1, s / 2, s - 1};

        if (s >= 1 && ev_at(g, i)->kind == CRASHSIM_WRITE)
            g->garbles[g->ngarbles++] = (struct tear){i, 0};
        if (s >= 2 && ev_at(g, i)->kind == CRASHSIM_WRITE)
            g->garbles[g->ngarbles++] = (struct tear){i, s - 1};
        if (s < 2)
            continue;
        g->tearable[g->ntearable++] = i;
        for (int p = 0; p < 3; p++) {
            if (p > 0 && (pts[p] == pts[p - 1] || pts[p] == 1))
                continue;
            g->tears[g->ntears++] = (struct tear){i, pts[p]};
        }
    }
    return 0;
}

/* Set up the modes and description of item ITEM of category C. */
static void
make_item(struct gen *g, enum category c, size_t item)
{
    char ev[96];
    size_t i;

    switch (c) {
    case CAT_PREFIX:
        for (i = 0; i < g->n; i++)
            g->mode[i] = i <= item ? MODE_KEEP : MODE_DROP;
        snprintf(g->what, sizeof(g->what), "first %zu of %zu events kept",
                 item + 1, g->n);
        break;
    case CAT_DROP_ONE:
        set_all(g, MODE_KEEP);
        g->mode[item] = MODE_DROP;
        describe(g, item, ev, sizeof(ev));
        snprintf(g->what, sizeof(g->what), "only %s dropped", ev);
        break;
    case CAT_TORN:
        set_all(g, MODE_KEEP);
        i = g->tears[item].i;
        g->mode[i] = (int64_t)g->tears[item].t;
        describe(g, i, ev, sizeof(ev));
        snprintf(g->what, sizeof(g->what),
                 "%s torn after %" PRIu64 " sectors, the rest kept", ev,
                 g->tears[item].t);
        break;
    case CAT_PREFIX_TORN:
        i = g->tearable[item];
        for (size_t j = 0; j < g->n; j++)
            g->mode[j] = j < i ? MODE_KEEP : MODE_DROP;
        g->mode[i] = (int64_t)(crashsim_sectors(ev_at(g, i)) / 2);
        describe(g, i, ev, sizeof(ev));
        snprintf(g->what, sizeof(g->what),
                 "events before %s kept, it torn halfway, the rest dropped",
                 ev);
        break;
    case CAT_GARBLE:
        set_all(g, MODE_KEEP);
        i = g->garbles[item].i;
        g->mode[i] = MODE_GARBLE(g->garbles[item].t);
        describe(g, i, ev, sizeof(ev));
        snprintf(g->what, sizeof(g->what),
                 "%s: %" PRIu64 " sectors landed, the next one garbage, "
                 "the rest kept",
                 ev, g->garbles[item].t);
        break;
    case NCAT:
        break;
    }
}

/* Share BUDGET among categories of COUNT items: QUOTA per category. */
static void
water_fill(const size_t count[NCAT], size_t budget, size_t quota[NCAT])
{
    bool fixed[NCAT] = {false};
    size_t pending = NCAT;

    for (bool changed = true; changed && pending > 0;) {
        size_t share = budget / pending;

        changed = false;
        for (int c = 0; c < NCAT; c++) {
            if (!fixed[c] && count[c] <= share) {
                quota[c] = count[c];
                budget -= count[c];
                fixed[c] = true;
                pending--;
                changed = true;
            }
        }
    }
    for (int c = 0; c < NCAT && pending > 0; c++) {
        if (!fixed[c]) {
            quota[c] = budget / pending;
            budget -= quota[c];
            pending--;
        }
    }
}

static uint64_t
rng_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dull;
}

/* Random states: each event kept (1/2), dropped (3/8) or torn (1/8; half
 * of those garbled when GARBLING). */
static int
emit_random(struct gen *g, size_t count, uint64_t seed, bool garbling)
{
    uint64_t x = seed ^ ((uint64_t)(g->k + 1) * 0x9e3779b97f4a7c15ull);
    int r = 0;

    if (x == 0)
        x = 1;
    for (size_t m = 0; r == 0 && m < count; m++) {
        for (size_t i = 0; i < g->n; i++) {
            uint64_t v = rng_next(&x), s = crashsim_sectors(ev_at(g, i));

            g->mode[i] = v % 8 < 4 ? MODE_KEEP : MODE_DROP;
            if (v % 8 == 7 && s >= 2)
                g->mode[i] = (int64_t)(1 + (v >> 8) % (s - 1));
            if (v % 8 == 7 && garbling && (v >> 40) % 2 && s >= 1 &&
                ev_at(g, i)->kind == CRASHSIM_WRITE)
                g->mode[i] = MODE_GARBLE((v >> 8) % s);
        }
        snprintf(g->what, sizeof(g->what), "random subset %zu", m);
        r = emit(g);
    }
    return r;
}

static int
emit_categories(struct gen *g, const struct crashsim_opts *o)
{
    size_t max = o->max_states ? o->max_states : DEFAULT_MAX;
    size_t count[NCAT] = {g->n >= 2 ? g->n - 1 : 0, g->n >= 2 ? g->n : 0,
                          g->ntears, g->ntearable, o->garble ? g->ngarbles : 0};
    size_t quota[NCAT] = {0}, budget, reserve, used = 0;
    int r = 0;

    budget = max > 2 ? max - 2 : 0;
    reserve = o->random_states < budget / 5 ? o->random_states : budget / 5;
    water_fill(count, budget - reserve, quota);
    for (int c = 0; r == 0 && c < NCAT; c++) {
        for (size_t m = 0; r == 0 && m < quota[c]; m++) {
            make_item(g, (enum category)c, m * count[c] / quota[c]);
            r = emit(g);
        }
        used += quota[c];
    }
    if (r == 0 && g->n > 0) {
        size_t left = budget - used;

        r = emit_random(g, o->random_states < left ? o->random_states : left,
                        o->seed, o->garble);
    }
    return r;
}

int
crashsim_states(struct crashsim_disk *d, size_t k,
                const struct crashsim_opts *opts,
                int (*fn)(const struct crashsim_state *st, void *arg),
                void *arg)
{
    struct gen g = {.d = d, .k = k, .fn = fn, .arg = arg};
    size_t end;
    int r;

    if (k > crashsim_flushes(d))
        return -EINVAL;
    crashsim_epoch_span(d, k, &g.first, &end);
    g.n = end - g.first;
    g.mode = calloc(g.n + 1, sizeof(*g.mode));
    r = g.mode != NULL ? crashsim_durable(d, k, &g.base) : -ENOMEM;
    if (r == 0)
        r = plan_tears(&g);
    if (r == 0) {
        set_all(&g, MODE_KEEP);
        snprintf(g.what, sizeof(g.what), "all %zu events kept", g.n);
        r = emit(&g);
    }
    if (r == 0 && g.n > 0) {
        set_all(&g, MODE_DROP);
        snprintf(g.what, sizeof(g.what), "all %zu events dropped", g.n);
        r = emit(&g);
    }
    if (r == 0)
        r = emit_categories(&g, opts);
    crashsim_image_free(&g.base);
    crashsim_image_free(&g.img);
    free(g.mode);
    free(g.tears);
    free(g.tearable);
    free(g.garbles);
    return r;
}

uint64_t
crashsim_hash(const void *buf, size_t len, uint64_t seed)
{
    const uint8_t *p = buf;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;

        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    return h * 0xc4ceb9fe1a85ec53ull;
}
