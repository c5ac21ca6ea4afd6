/*
 * Worlds: the crash states of several disks at once (contract in
 * crashsim.h).
 *
 * A tree writes many objects (the domain's metadata, one per layer) and
 * orders its steps across them: a layer is flushed before the record that
 * names it is written.  A power loss hits all of them at the same instant,
 * so the states are cut on the one clock every event takes a number from:
 * at instant CUT each disk holds what it held at its own last flush before
 * CUT, plus any part of what it did after that flush and before CUT.  The
 * names of a store (objects made and removed) are durable at once, as the
 * dir driver syncs its directory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crashsim_int.h"

struct crashsim_world {
    struct cs_store **stores;
    size_t nstores;
    uint64_t *barriers; /* sorted instants */
    size_t nbarriers, cap;
};

static int
add_barrier(struct crashsim_world *w, uint64_t seq)
{
    if (seq == CRASHSIM_NEVER)
        return 0;
    if (w->nbarriers == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        uint64_t *p = realloc(w->barriers, cap * sizeof(*p));

        if (p == NULL)
            return -ENOMEM;
        w->barriers = p;
        w->cap = cap;
    }
    w->barriers[w->nbarriers++] = seq;
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int
collect_barriers(struct crashsim_world *w)
{
    int r = 0;

    for (size_t i = 0; r == 0 && i < w->nstores; i++) {
        const struct cs_store *cs = w->stores[i];

        r = add_barrier(w, cs->created);
        if (r == 0)
            r = add_barrier(w, cs->destroyed);
        for (size_t j = 0; r == 0 && j < cs->n; j++) {
            const struct cs_object *o = &cs->obj[j];

            r = add_barrier(w, o->created);
            if (r == 0)
                r = add_barrier(w, o->removed);
            for (size_t k = 0; r == 0 && k < o->disk->nflush; k++)
                r = add_barrier(w, o->disk->ev[o->disk->flush_at[k]].seq);
        }
    }
    if (r == 0 && w->nbarriers > 0)
        qsort(w->barriers, w->nbarriers, sizeof(*w->barriers), cmp_u64);
    return r;
}

struct crashsim_world *
crashsim_world_take(void)
{
    struct crashsim_world *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->stores = crashsim_store_detach_all(&w->nstores);
    if (collect_barriers(w) < 0) {
        crashsim_world_free(w);
        return NULL;
    }
    return w;
}

void
crashsim_world_free(struct crashsim_world *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->nstores; i++)
        crashsim_store_free(w->stores[i]);
    free(w->stores);
    free(w->barriers);
    free(w);
}

bool
crashsim_world_barrier(const struct crashsim_world *w, uint64_t seq)
{
    return w->nbarriers > 0 && bsearch(&seq, w->barriers, w->nbarriers,
                                       sizeof(seq), cmp_u64) != NULL;
}

void
crashsim_world_counts(const struct crashsim_world *w, size_t *disks,
                      size_t *events, size_t *flushes)
{
    *disks = *events = *flushes = 0;
    for (size_t i = 0; i < w->nstores; i++) {
        for (size_t j = 0; j < w->stores[i]->n; j++) {
            const struct crashsim_disk *d = w->stores[i]->obj[j].disk;

            (*disks)++;
            *events += d->nev;
            *flushes += d->nflush;
        }
    }
}

/* Replace *IMG with disk D as a power loss at instant CUT leaves it. */
static int
image_at(struct crashsim_disk *d, uint64_t cut, crashsim_fate_fn fate,
         void *arg, struct crashsim_image *img)
{
    size_t end = 0, durable = 0;
    int r;

    while (end < d->nev && d->ev[end].seq < cut)
        end++;
    for (size_t k = 0; k < d->nflush && d->flush_at[k] < end; k++)
        durable = d->flush_at[k] + 1;
    r = crashsim_durable_at(d, durable, img);
    for (size_t i = durable; r == 0 && i < end; i++) {
        uint64_t lim = fate != NULL ? fate(&d->ev[i], arg) : UINT64_MAX;

        if (lim > 0)
            r = crashsim_apply(img, &d->ev[i], lim);
    }
    return r;
}

static bool
alive_at(uint64_t made, uint64_t gone, uint64_t cut)
{
    return made < cut && (gone == CRASHSIM_NEVER || gone >= cut);
}

int
crashsim_world_restore(struct crashsim_world *w, uint64_t cut,
                       crashsim_fate_fn fate, void *arg)
{
    struct crashsim_image img = {0};
    int r = 0;

    for (size_t i = 0; r == 0 && i < w->nstores; i++) {
        struct cs_store *cs = w->stores[i], *ns;

        if (!alive_at(cs->created, cs->destroyed, cut))
            continue;
        ns = crashsim_store_new(cs->name, crashsim_now());
        if (ns == NULL)
            r = -ENOMEM;
        for (size_t j = 0; r == 0 && j < cs->n; j++) {
            struct cs_object *o = &cs->obj[j];
            struct crashsim_disk *d;

            if (!alive_at(o->created, o->removed, cut))
                continue;
            r = image_at(o->disk, cut, fate, arg, &img);
            d = r == 0 ? crashsim_disk_new(img.data, img.size) : NULL;
            if (r == 0 && d == NULL)
                r = -ENOMEM;
            if (r == 0 &&
                (r = crashsim_store_add_object(ns, o->name, d, 0)) < 0)
                crashsim_disk_free(d);
        }
    }
    crashsim_image_free(&img);
    return r;
}
