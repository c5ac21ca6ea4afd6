/*
 * Rebuilding the host's view from the domains themselves.
 *
 * A rescan runs in four phases, so that a rescan that fails changes nothing
 * and damage never makes it remove or roll back anything:
 *
 *   1. read: every domain under the tree's domain root is opened and its
 *      records loaded.  A domain whose metadata is complete and trusted
 *      (vs_meta_area_check) gets a repair plan: the steps its records show
 *      interrupted (a creation, a snapshot, a new layer, a removal, the end
 *      of a merge), each decided by a readable record that names the object
 *      concerned.  A domain in doubt (records unreadable, missing, or only
 *      an older copy left) gets no plan: it is served read-only from the
 *      records it can vouch for, and its other volumes are unavailable.
 *      Objects no record names are reported, never removed.
 *   2. catalog: one transaction mirrors the records as the plans will leave
 *      them and deletes the rows no record backs, except the rows of a
 *      domain in doubt (shown unavailable).  A catalog that disagrees
 *      beyond that (a constraint fails) is rebuilt in the same transaction
 *      from an empty table, keeping the host-local modes and owners.
 *   3. repair: only once the catalog committed, the plans run on the
 *      storage and record copies that disagree are rewritten (healed).
 *   4. memory: the in-memory tree is rebuilt from the catalog, and the
 *      domains in doubt and the unavailable volumes are marked.
 *
 * Run at every start and on `setfattr -n user.vstor.rescan`, so the catalog
 * can be deleted at any time and comes back the same.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "vs/log.h"
#include "vs/util.h"

#define WHY_MAX 256

/* An object named by volume record REC (its own, pending or retired). */
struct name_ref {
    const char *name;
    size_t rec;
};

enum dom_state {
    DOM_OK,         /* complete and trusted: repairs may run */
    DOM_DOUBT,      /* records missing or untrusted: read-only, no repair */
    DOM_UNREADABLE, /* no metadata could be read at all */
};

/* One repair: free or rewrite a record, after removing objects it names as
 * made by an unfinished step or given up by a finished one. */
struct action {
    size_t rec; /* index in the domain's recs */
    bool free;  /* else rewrite recs[rec] as it now stands */
    char drop[2][VS_OBJECT_MAX + 1];
    const char *what;        /* for the log line */
    struct vs_record before; /* the record as read */
};

struct dscan {
    char *location;
    char uuid[VS_UUID_LEN + 1]; /* the store's name: the domain's uuid */
    /* its driver options: the catalog's until its record is read, then
     * the record's (the storage's word) */
    char options[VS_OPTIONS_TEXT_MAX + 1];
    enum dom_state state;
    char why[WHY_MAX];
    struct vs_record *recs;
    size_t nrecs, cap;
    uint32_t *doubtful; /* slots whose record is only a hint */
    size_t ndoubtful;
    struct action *acts;
    size_t nacts;
    bool destroy; /* its removal was interrupted: finish it */
    bool split;   /* record copies disagree: heal rewrites them */
    /* the objects volume records name, sorted (object_named); rebuilt
     * when recs changed since (names_stale) */
    struct name_ref *names;
    size_t nnames;
    bool names_stale;
};

/* A node to mark after the tree is rebuilt. */
struct mark {
    char uuid[VS_UUID_LEN + 1];
    char why[WHY_MAX];
};

/* Host-local fields kept across a rebuild of the catalog. */
struct local {
    char uuid[VS_UUID_LEN + 1];
    uint32_t mode, uid, gid;
};

struct scan {
    struct vs_tree *tree;
    struct dscan *doms;
    size_t ndoms, dom_cap;
    char (*seen)[VS_UUID_LEN + 1]; /* uuids mirrored; sorted before use */
    size_t nseen, seen_cap;
    struct mark *marks; /* unavailable volumes */
    size_t nmarks, mark_cap;
    struct local *locals; /* set while rebuilding */
    size_t nlocals, local_cap;
    bool rebuilding;
    struct dscan *cur; /* the domain being loaded */
};

/* Append one ELEM_SIZE element to *ARR (growing it); returns the slot. */
static void *
push(void *arr_p, size_t *n, size_t *cap, size_t elem_size)
{
    void **arr = arr_p;

    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        void *a = realloc(*arr, c * elem_size);
        if (!a)
            return NULL;
        *arr = a;
        *cap = c;
    }
    return memset((char *)*arr + (*n)++ * elem_size, 0, elem_size);
}

/* ---- phase 1: reading a domain ---- */

static int
keep_record(const struct vs_record *rec, void *arg)
{
    struct dscan *d = ((struct scan *)arg)->cur;
    struct vs_record *slot = push(&d->recs, &d->nrecs, &d->cap, sizeof(*slot));

    if (!slot)
        return -ENOMEM;
    *slot = *rec;
    d->names_stale = true;
    return 0;
}

static void
report_damage(const struct vs_meta_slot_report *rep, void *arg)
{
    struct dscan *d = ((struct scan *)arg)->cur;
    bool lost = rep->copy_a < 0 && rep->copy_b < 0;
    uint32_t *n;

    vs_log(lost || rep->doubtful ? LOG_ERR : LOG_WARNING,
           "domain '%s': metadata slot %u: copy A %s, copy B %s; %s",
           d->location, rep->slot,
           rep->copy_a ? vs_record_strerror(rep->copy_a) : "valid",
           rep->copy_b ? vs_record_strerror(rep->copy_b) : "valid",
           lost ? "its entry is not shown until repaired"
           : rep->doubtful
               ? "the other copy may be older: its volume is unavailable"
               : "the other copy holds the same record and is used");
    if (rep->doubtful) {
        size_t cap = d->ndoubtful;
        n = realloc(d->doubtful, (cap + 1) * sizeof(*n));
        if (n) {
            d->doubtful = n;
            d->doubtful[d->ndoubtful++] = rep->slot;
        }
    }
}

static bool
slot_doubtful(const struct dscan *d, uint32_t slot)
{
    for (size_t i = 0; i < d->ndoubtful; i++)
        if (d->doubtful[i] == slot)
            return true;
    return false;
}

static int
cmp_name_ref(const void *a, const void *b)
{
    return strcmp(((const struct name_ref *)a)->name,
                  ((const struct name_ref *)b)->name);
}

/* Index the objects D's volume records name (a scan of 100,000 records
 * asks for each object of the store). */
static int
index_names(struct dscan *d)
{
    struct name_ref *refs = malloc(sizeof(*refs) * (3 * d->nrecs + 1));
    size_t n = 0;

    if (!refs)
        return -ENOMEM;
    for (size_t i = 0; i < d->nrecs; i++) {
        const struct vs_record *r = &d->recs[i];
        const char *objs[3] = {r->object, r->pending_object, r->retired_object};
        if (r->kind != VS_REC_VOLUME)
            continue;
        for (int k = 0; k < 3; k++)
            if (objs[k][0])
                refs[n++] = (struct name_ref){objs[k], i};
    }
    qsort(refs, n, sizeof(*refs), cmp_name_ref);
    free(d->names);
    d->names = refs;
    d->nnames = n;
    d->names_stale = false;
    return 0;
}

/* Whether a volume record other than EXCEPT names OBJECT as its own, or
 * as made or given up by one of its steps.  Out of memory for the index,
 * it answers yes: an object is kept, never removed, on doubt. */
static bool
object_named(struct dscan *d, const char *object,
             const struct vs_record *except)
{
    struct name_ref key = {object, 0}, *hit;
    size_t lo, hi;

    if ((d->names_stale || !d->names) && index_names(d) < 0)
        return true;
    hit = bsearch(&key, d->names, d->nnames, sizeof(*d->names), cmp_name_ref);
    if (!hit)
        return false;
    lo = hi = (size_t)(hit - d->names);
    while (lo > 0 && strcmp(d->names[lo - 1].name, object) == 0)
        lo--;
    while (hi + 1 < d->nnames && strcmp(d->names[hi + 1].name, object) == 0)
        hi++;
    for (size_t i = lo; i <= hi; i++)
        if (&d->recs[d->names[i].rec] != except)
            return true;
    return false;
}

/* Is some volume record based on UUID? */
static bool
has_child_layer(const struct dscan *d, const char *uuid)
{
    for (size_t i = 0; i < d->nrecs; i++)
        if (d->recs[i].kind == VS_REC_VOLUME &&
            strcmp(d->recs[i].backing_uuid, uuid) == 0)
            return true;
    return false;
}

/* Plan to free or rewrite record I, removing OBJ1 and OBJ2 first unless
 * another record names them. */
static int
plan(struct dscan *d, size_t i, bool free_it, const char *obj1,
     const char *obj2, const char *what)
{
    size_t cap = d->nacts;
    struct action *a = realloc(d->acts, (cap + 1) * sizeof(*a));
    struct vs_record *rec = &d->recs[i];
    const char *objs[2] = {obj1, obj2};

    if (!a)
        return -ENOMEM;
    d->acts = a;
    a = &d->acts[d->nacts++];
    memset(a, 0, sizeof(*a));
    a->rec = i;
    a->free = free_it;
    a->what = what;
    a->before = *rec;
    for (int k = 0; k < 2; k++)
        if (objs[k] && objs[k][0] && !object_named(d, objs[k], rec))
            snprintf(a->drop[k], sizeof(a->drop[k]), "%s", objs[k]);
    return 0;
}

/* What the records of a trusted domain show interrupted, and the record
 * each repair leaves (recs[] are updated to it now: the catalog mirrors
 * the state after the repairs). */
static int
plan_repairs(struct dscan *d)
{
    const uint32_t merging = VS_RECF_MERGE_CHILD | VS_RECF_MERGE_DOWN;
    int r = 0;

    for (size_t i = 0; i < d->nrecs && r == 0; i++) {
        struct vs_record *rec = &d->recs[i];
        if (rec->kind != VS_REC_VOLUME)
            continue;
        if (rec->flags & VS_RECF_REMOVING)
            r = plan(d, i, true, rec->object, NULL,
                     "finished its interrupted removal");
        else if ((rec->flags & merging) && !has_child_layer(d, rec->uuid))
            r = plan(d, i, true, rec->object, NULL,
                     "merged away; finished its removal");
        else if (rec->flags & VS_RECF_CREATING)
            r = plan(d, i, true, rec->pending_object, NULL,
                     "creation interrupted; rolled back");
        else if ((rec->flags & VS_RECF_PENDING) &&
                 !has_child_layer(d, rec->uuid))
            r = plan(d, i, true, rec->pending_object, NULL,
                     "snapshot interrupted before its volume moved onto "
                     "it; rolled back");
        else if ((rec->flags & VS_RECF_PENDING) || rec->pending_object[0] ||
                 rec->retired_object[0])
            r = plan(d, i, false, rec->pending_object, rec->retired_object,
                     rec->flags & VS_RECF_PENDING
                         ? "snapshot record completed"
                         : "finished an interrupted change of layer");
        else
            continue;
        if (r < 0)
            break;
        d->names_stale = true;
        if (d->acts[d->nacts - 1].free) {
            rec->kind = VS_REC_FREE;
        } else {
            rec->flags &= ~(uint32_t)VS_RECF_PENDING;
            rec->pending_object[0] = '\0';
            rec->retired_object[0] = '\0';
        }
    }
    return r;
}

struct unnamed {
    struct dscan *d;
    unsigned count;
};

/* object_list callback: report an object no record names. */
static int
report_unnamed(const char *name, void *arg)
{
    struct unnamed *u = arg;

    if (!vs_uuid_valid(name) || object_named(u->d, name, NULL))
        return 0;
    u->count++;
    vs_log(LOG_WARNING,
           "domain '%s': object '%s' is named by no record; kept (a step "
           "interrupted by an older version, or a record lost)",
           u->d->location, name);
    return 0;
}

/* The domain's own record: the one in slot 0. */
static const struct vs_record *
domain_record(const struct dscan *d)
{
    for (size_t i = 0; i < d->nrecs; i++)
        if (d->recs[i].slot == 0 && d->recs[i].kind == VS_REC_DOMAIN)
            return &d->recs[i];
    return NULL;
}

/* Open the store of scanned domain D with its options and this host's
 * secrets for it; the reason for a failure in WHY. */
static int
open_scanned(struct vs_tree *tree, const struct dscan *d, struct vs_store **st,
             char *why, size_t len)
{
    struct vs_cat_node row;

    memset(&row, 0, sizeof(row));
    row.kind = VS_NODE_DOMAIN;
    snprintf(row.uuid, sizeof(row.uuid), "%s", d->uuid);
    snprintf(row.location, sizeof(row.location), "%s", d->location);
    snprintf(row.options, sizeof(row.options), "%s", d->options);
    return vs_domain_open_store(tree, &row, false, st, why, len);
}

/* Phase 1 for one domain: load its records, judge them, plan repairs. */
static int
read_domain(struct scan *s, struct dscan *d)
{
    struct vs_store *st = NULL;
    struct vs_meta_area *meta = NULL;
    struct unnamed u = {.d = d};
    struct vs_cat_node known;
    char reason[256] = "";
    int r;

    s->cur = d;
    if (vs_catalog_get_by_uuid(s->tree->cat, d->uuid, &known) == 0)
        snprintf(d->options, sizeof(d->options), "%s", known.options);
    r = open_scanned(s->tree, d, &st, reason, sizeof(reason));
    if (r == 0)
        r = vs_meta_area_open(st, false, &meta);
    if (r == 0)
        r = vs_meta_area_load(meta, keep_record, report_damage, s);
    if (r == -ENOMEM) {
        vs_meta_area_close(meta);
        vs_store_close(st);
        return r;
    }
    if (r < 0) {
        d->state = DOM_UNREADABLE;
        snprintf(d->why, sizeof(d->why),
                 "no domain record can be read: its %s cannot be read (%s)",
                 st ? "metadata" : "storage",
                 reason[0] ? reason : strerror(-r));
    } else if ((r = vs_meta_area_check(meta, d->why, sizeof(d->why))) < 0) {
        d->state = DOM_DOUBT;
    } else if (d->ndoubtful > 0) {
        d->state = DOM_DOUBT;
        snprintf(d->why, sizeof(d->why), "a record may be stale");
    }
    if (r == -EUCLEAN)
        r = 0;
    if (d->state == DOM_OK) {
        const struct vs_record *dom = domain_record(d);
        if (dom)
            snprintf(d->options, sizeof(d->options), "%s", dom->options);
        d->split = r > 0;
        d->destroy = dom && (dom->flags & VS_RECF_REMOVING);
        r = d->destroy ? 0 : plan_repairs(d);
        if (r == 0 && !d->destroy)
            vs_object_list(st, report_unnamed, &u);
    }
    vs_meta_area_close(meta);
    vs_store_close(st);
    return r == -ENOMEM ? r : 0;
}

/* vs_store_list callback: read the domain NAME under the tree's root. */
static int
read_listed(const char *name, void *arg)
{
    struct scan *s = arg;
    struct dscan *d;

    if (!vs_uuid_valid(name))
        return 0; /* not a domain of ours */
    d = push(&s->doms, &s->ndoms, &s->dom_cap, sizeof(*d));
    if (!d)
        return -ENOMEM;
    snprintf(d->uuid, sizeof(d->uuid), "%s", name);
    if (asprintf(&d->location, "%s/%s", s->tree->domain_root, name) < 0) {
        d->location = NULL;
        return -ENOMEM;
    }
    return read_domain(s, d);
}

/* ---- phase 2: the catalog ---- */

static int
mark_seen(struct scan *s, const char *uuid)
{
    char(*slot)[VS_UUID_LEN + 1] =
        push(&s->seen, &s->nseen, &s->seen_cap, sizeof(*s->seen));

    if (!slot)
        return -ENOMEM;
    memcpy(*slot, uuid, VS_UUID_LEN + 1);
    return 0;
}

static int
cmp_uuid(const void *a, const void *b)
{
    return strcmp(a, b);
}

static bool
was_seen(const struct scan *s, const char *uuid)
{
    return s->nseen > 0 &&
           bsearch(uuid, s->seen, s->nseen, sizeof(*s->seen), cmp_uuid);
}

static int add_mark(struct scan *s, const char *uuid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Note that volume UUID is unavailable, and why. */
static int
add_mark(struct scan *s, const char *uuid, const char *fmt, ...)
{
    struct mark *m = push(&s->marks, &s->nmarks, &s->mark_cap, sizeof(*m));
    va_list ap;

    if (!m)
        return -ENOMEM;
    snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
    va_start(ap, fmt);
    vsnprintf(m->why, sizeof(m->why), fmt, ap);
    va_end(ap);
    return 0;
}

/* The host-local fields saved for UUID before a rebuild, or NULL. */
static const struct local *
saved_local(const struct scan *s, const char *uuid)
{
    for (size_t i = 0; i < s->nlocals; i++)
        if (strcmp(s->locals[i].uuid, uuid) == 0)
            return &s->locals[i];
    return NULL;
}

/* Insert or update the catalog row for REC under PARENT_ID. */
static int
upsert(struct scan *s, const struct dscan *d, const struct vs_record *rec,
       int64_t parent_id, int64_t *id)
{
    struct vs_cat_node row;
    const struct local *loc;
    int r = vs_catalog_get_by_uuid(s->tree->cat, rec->uuid, &row);

    if (r == -ENOENT) {
        memset(&row, 0, sizeof(row));
        row.mode = rec->kind == VS_REC_VOLUME ? 0600 : 0755;
        if ((loc = saved_local(s, rec->uuid))) {
            row.mode = loc->mode;
            row.uid = loc->uid;
            row.gid = loc->gid;
        }
    } else if (r < 0) {
        return r;
    }
    row.backing_id = 0; /* linked in link_backings, once every row exists */
    row.kind = (enum vs_node_kind)rec->kind;
    row.parent_id = parent_id;
    row.created = rec->created;
    row.slot = rec->slot;
    row.generation = rec->generation;
    row.flags = rec->flags;
    memcpy(row.uuid, rec->uuid, sizeof(row.uuid));
    memcpy(row.name, rec->name, sizeof(row.name));
    memcpy(row.format, rec->format, sizeof(row.format));
    memcpy(row.object, rec->object, sizeof(row.object));
    if (rec->kind == VS_REC_DOMAIN) {
        snprintf(row.location, sizeof(row.location), "%s", d->location);
        memcpy(row.options, rec->options, sizeof(row.options));
    }
    r = r == -ENOENT ? vs_catalog_insert(s->tree->cat, &row)
                     : vs_catalog_update(s->tree->cat, &row);
    if (r == -EEXIST && !s->rebuilding)
        return r; /* maybe a stale row holds the name: rebuild */
    if (r == -EEXIST)
        vs_log(LOG_ERR,
               "domain '%s': %s '%s' (%s) clashes with another of "
               "that name; not shown",
               d->location, vs_node_kind_name(row.kind), rec->name, rec->uuid);
    if (r == 0) {
        *id = row.id;
        r = mark_seen(s, rec->uuid);
    }
    return r == -EEXIST ? 0 : r;
}

/* Whether the volume of REC may be shown at all (a creation or removal
 * still under way in a domain in doubt is not). */
static bool
shown(const struct vs_record *rec)
{
    return !(rec->flags & (VS_RECF_CREATING | VS_RECF_REMOVING));
}

/* Link each volume to its backing row; a volume whose backing is not
 * there would read the wrong bytes: it is unavailable. */
static int
link_backings(struct scan *s, const struct dscan *d)
{
    for (size_t i = 0; i < d->nrecs; i++) {
        const struct vs_record *rec = &d->recs[i];
        struct vs_cat_node row, parent;
        int r;
        if (rec->kind != VS_REC_VOLUME || !rec->backing_uuid[0] ||
            vs_catalog_get_by_uuid(s->tree->cat, rec->uuid, &row) < 0)
            continue;
        r = vs_catalog_get_by_uuid(s->tree->cat, rec->backing_uuid, &parent);
        if (r == -ENOENT) {
            vs_log(LOG_ERR,
                   "domain '%s': volume '%s' (%s): its backing %s "
                   "is missing; the volume is unavailable",
                   d->location, rec->name, rec->uuid, rec->backing_uuid);
            r = add_mark(s, rec->uuid, "its backing volume %s is missing",
                         rec->backing_uuid);
            if (r < 0)
                return r;
            continue;
        }
        if (r < 0)
            return r;
        row.backing_id = parent.id;
        r = vs_catalog_update(s->tree->cat, &row);
        if (r < 0)
            return r;
    }
    return 0;
}

/* qsort_r order of volume record indexes: by image, then record order
 * (which the catalog's ids, and readdir, keep). */
static int
cmp_by_image(const void *a, const void *b, void *arg)
{
    const struct dscan *d = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(d->recs[i].parent_uuid, d->recs[j].parent_uuid);

    return c ? c : (i > j) - (i < j);
}

/* The indexes of D's shown volume records, sorted by image; NULL with
 * *N 0 when there are none, NULL with *N set on ENOMEM. */
static size_t *
volumes_by_image(const struct dscan *d, size_t *n)
{
    size_t *v;

    *n = 0;
    for (size_t i = 0; i < d->nrecs; i++)
        *n += d->recs[i].kind == VS_REC_VOLUME && shown(&d->recs[i]);
    if (*n == 0 || !(v = malloc(sizeof(*v) * *n)))
        return NULL;
    *n = 0;
    for (size_t i = 0; i < d->nrecs; i++)
        if (d->recs[i].kind == VS_REC_VOLUME && shown(&d->recs[i]))
            v[(*n)++] = i;
    qsort_r(v, *n, sizeof(*v), cmp_by_image, (void *)d);
    return v;
}

/* The first of VOLS whose image is IMAGE_UUID (or N). */
static size_t
first_volume_of(const struct dscan *d, const size_t *vols, size_t n,
                const char *image_uuid)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->recs[vols[mid]].parent_uuid, image_uuid) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Mirror a domain's images, then the volumes of each image. */
static int
mirror_domain(struct scan *s, const struct dscan *d)
{
    const struct vs_record *dom = domain_record(d);
    size_t *vols = NULL, nvols = 0;
    int64_t dom_id;
    int r;

    if (!dom || d->destroy)
        return 0;
    r = upsert(s, d, dom, 0, &dom_id);
    vols = r == 0 ? volumes_by_image(d, &nvols) : NULL;
    if (r == 0 && !vols && nvols)
        r = -ENOMEM;
    for (size_t i = 0; i < d->nrecs && r == 0; i++) {
        const struct vs_record *img = &d->recs[i];
        int64_t img_id = 0;
        size_t j;
        if (img->kind != VS_REC_IMAGE || strcmp(img->parent_uuid, dom->uuid))
            continue;
        r = upsert(s, d, img, dom_id, &img_id);
        j = first_volume_of(d, vols, nvols, img->uuid);
        for (; j < nvols && r == 0 && img_id; j++) {
            const struct vs_record *vol = &d->recs[vols[j]];
            int64_t vol_id;
            if (strcmp(vol->parent_uuid, img->uuid) != 0)
                break;
            r = upsert(s, d, vol, img_id, &vol_id);
            if (r == 0 && slot_doubtful(d, vol->slot))
                r = add_mark(s, vol->uuid,
                             "its record's newer copy is damaged");
        }
    }
    free(vols);
    return r;
}

static void
report_orphans(struct scan *s, const struct dscan *d)
{
    for (size_t i = 0; i < d->nrecs; i++) {
        const struct vs_record *rec = &d->recs[i];
        if ((rec->kind == VS_REC_IMAGE || rec->kind == VS_REC_VOLUME) &&
            shown(rec) && !was_seen(s, rec->uuid))
            vs_log(LOG_WARNING,
                   "domain '%s': %s '%s' (%s) has no parent %s; not shown",
                   d->location, rec->kind == VS_REC_IMAGE ? "image" : "volume",
                   rec->name, rec->uuid, rec->parent_uuid);
    }
}

/* Whether the domain with uuid UUID is one whose rows are kept. */
static bool
domain_held(const struct scan *s, const char *uuid)
{
    for (size_t i = 0; i < s->ndoms; i++)
        if (s->doms[i].state != DOM_OK && strcmp(s->doms[i].uuid, uuid) == 0)
            return true;
    return false;
}

struct stale {
    struct scan *s;
    int64_t *ids; /* rows to delete */
    size_t n, cap;
    int64_t *held; /* rows whose children are kept */
    size_t nheld, held_cap;
};

static bool
is_held(const struct stale *st, int64_t id)
{
    for (size_t i = 0; i < st->nheld; i++)
        if (st->held[i] == id)
            return true;
    return false;
}

/* foreach callback (domains, then images, then volumes): sort each row
 * into kept, held (a domain in doubt and what is below it) or stale. */
static int
collect_stale(const struct vs_cat_node *row, void *arg)
{
    struct stale *st = arg;
    bool held = row->kind == VS_NODE_DOMAIN ? domain_held(st->s, row->uuid)
                                            : is_held(st, row->parent_id);
    int64_t *slot;

    if (held) {
        slot = push(&st->held, &st->nheld, &st->held_cap, sizeof(*slot));
        if (!slot)
            return -ENOMEM;
        *slot = row->id;
        if (row->kind == VS_NODE_VOLUME && !was_seen(st->s, row->uuid))
            return add_mark(st->s, row->uuid,
                            "its record is missing or unreadable");
        return 0;
    }
    if (was_seen(st->s, row->uuid))
        return 0;
    slot = push(&st->ids, &st->n, &st->cap, sizeof(*slot));
    if (!slot)
        return -ENOMEM;
    *slot = row->id;
    return 0;
}

/* Delete rows no record backs, children first (foreach gives parents
 * first, so walk the list backwards). */
static int
delete_stale(struct scan *s)
{
    struct stale st = {.s = s};
    int r;

    r = vs_catalog_foreach(s->tree->cat, collect_stale, &st);
    while (r == 0 && st.n > 0)
        r = vs_catalog_delete(s->tree->cat, st.ids[--st.n]);
    free(st.ids);
    free(st.held);
    return r;
}

static int
mirror_all(struct scan *s)
{
    int r = 0;

    s->nseen = 0;
    s->nmarks = 0;
    for (size_t i = 0; i < s->ndoms && r == 0; i++)
        r = mirror_domain(s, &s->doms[i]);
    for (size_t i = 0; i < s->ndoms && r == 0; i++)
        r = link_backings(s, &s->doms[i]);
    if (s->nseen > 0) /* for was_seen */
        qsort(s->seen, s->nseen, sizeof(*s->seen), cmp_uuid);
    for (size_t i = 0; i < s->ndoms && r == 0; i++)
        report_orphans(s, &s->doms[i]);
    if (r == 0)
        r = delete_stale(s);
    return r;
}

static int
save_local(const struct vs_cat_node *row, void *arg)
{
    struct scan *s = arg;
    struct local *l = push(&s->locals, &s->nlocals, &s->local_cap, sizeof(*l));

    if (!l)
        return -ENOMEM;
    memcpy(l->uuid, row->uuid, sizeof(l->uuid));
    l->mode = row->mode;
    l->uid = row->uid;
    l->gid = row->gid;
    return 0;
}

/* Mirror in one transaction; when the catalog disagrees beyond a row's
 * update (a constraint, a damaged row), mirror again into an empty table. */
static int
sync_catalog(struct scan *s)
{
    struct vs_catalog *cat = s->tree->cat;
    int r = vs_catalog_begin(cat);

    if (r < 0)
        return r;
    r = mirror_all(s);
    if (r == 0)
        return vs_catalog_commit(cat);
    vs_catalog_rollback(cat);
    /* rows that clash or hang together wrongly: rebuild; the catalog
     * failing to write (EIO, ENOSPC, EROFS ...) is no reason to */
    if (r != -EEXIST && r != -ENOTEMPTY && r != -EUCLEAN && r != -ENOENT)
        return r;
    vs_log(LOG_WARNING,
           "catalog: it disagrees with the domains (%s); rebuilding it from "
           "them",
           strerror(-r));
    s->rebuilding = true;
    r = vs_catalog_begin(cat);
    if (r == 0)
        r = vs_catalog_foreach(cat, save_local, s);
    if (r == 0)
        r = vs_catalog_clear(cat);
    if (r == 0)
        r = mirror_all(s);
    if (r == 0)
        return vs_catalog_commit(cat);
    vs_catalog_rollback(cat);
    return r;
}

/* ---- phase 3: repairs ---- */

static void
run_action(struct vs_store *st, struct vs_meta_area *meta,
           const struct dscan *d, const struct action *a)
{
    struct vs_record rec = d->recs[a->rec];
    int removed = 0, r = 0;

    for (int k = 0; k < 2 && r == 0; k++) {
        if (a->drop[k][0]) {
            r = vs_object_remove(st, a->drop[k]);
            removed += r == 0;
            r = r == -ENOENT ? 0 : r;
        }
    }
    if (r == 0 && a->free) {
        r = vs_meta_area_free(meta, a->before.slot);
    } else if (r == 0) {
        rec.generation = a->before.generation;
        r = vs_meta_area_write(meta, &rec);
    }
    /* a retired object already gone is the normal end of a change of
     * layer: only what the rescan itself did is worth a line */
    if (a->free || removed || r < 0)
        vs_log(LOG_NOTICE, "volume '%s' (%s): %s%s%s", a->before.name,
               a->before.uuid, a->what,
               removed ? "; removed the object(s) its record named for it" : "",
               r < 0 ? " (failed, will retry)" : "");
}

/* Run D's plan and heal its records, through ST and META. */
static void
repair_with(struct dscan *d, struct vs_store *st, struct vs_meta_area *meta)
{
    int r = 0;

    for (size_t i = 0; i < d->nacts; i++)
        run_action(st, meta, d, &d->acts[i]);
    if ((r = vs_meta_area_heal(meta)) > 0)
        vs_log(LOG_NOTICE,
               "domain '%s': rewrote %d record(s) whose copies disagreed",
               d->location, r);
    if (r < 0)
        vs_log(LOG_WARNING, "domain '%s': repairs not done: %s", d->location,
               strerror(-r));
}

/* Phase 3 for one trusted domain, on a store and area of its own. */
static void
repair_domain(struct vs_tree *tree, struct dscan *d)
{
    struct vs_store *st = NULL;
    struct vs_meta_area *meta = NULL;
    char reason[256];
    int r = open_scanned(tree, d, &st, reason, sizeof(reason));

    if (r == 0 && d->destroy) {
        r = vs_store_destroy(st);
        vs_log(LOG_NOTICE, "domain '%s': finished its interrupted removal%s",
               d->location, r < 0 ? ": failed" : "");
        if (r < 0)
            vs_store_close(st);
        return;
    }
    if (r == 0)
        r = vs_meta_area_open(st, false, &meta);
    if (r == 0)
        repair_with(d, st, meta);
    else
        vs_log(LOG_WARNING, "domain '%s': repairs not done: %s", d->location,
               st ? strerror(-r) : reason);
    vs_meta_area_close(meta);
    vs_store_close(st);
}

static bool
needs_repair(const struct dscan *d)
{
    return d->state == DOM_OK && (d->nacts || d->destroy || d->split);
}

/* ---- phase 4: memory ---- */

static int
attach_row(const struct vs_cat_node *row, void *arg)
{
    struct vs_tree *tree = arg;
    int r = vs_tree_attach(tree, row);

    if (r < 0)
        vs_log(LOG_ERR, "%s '%s' (%s): cannot be served: %s",
               vs_node_kind_name(row->kind), row->name, row->uuid,
               strerror(-r));
    return r == -ENOMEM ? r : 0;
}

/* The node of catalog row UUID, or NULL. */
static struct vs_node *
node_by_uuid(struct vs_tree *tree, const char *uuid)
{
    struct vs_cat_node row;

    if (vs_catalog_get_by_uuid(tree->cat, uuid, &row) < 0)
        return NULL;
    return vs_tree_node(tree, VS_INO(row.id, VS_PART_DIR));
}

static void
apply_marks(struct scan *s)
{
    struct vs_tree *tree = s->tree;

    for (size_t i = 0; i < s->ndoms; i++) {
        struct vs_node *n = s->doms[i].state != DOM_OK
                                ? node_by_uuid(tree, s->doms[i].uuid)
                                : NULL;
        if (s->doms[i].state == DOM_OK)
            continue;
        if (n && n->domain) {
            vs_domain_set_read_only(n->domain, s->doms[i].why);
            vs_log(LOG_ERR,
                   "domain '%s' (%s): %s; it is served read-only, nothing "
                   "is removed or rolled back, and volumes without a "
                   "trusted record are unavailable until its metadata is "
                   "restored",
                   n->cat.name, s->doms[i].location, s->doms[i].why);
        } else {
            vs_log(LOG_ERR,
                   "store '%s': %s; not shown, nothing in it is removed",
                   s->doms[i].location, s->doms[i].why);
        }
    }
    for (size_t i = 0; i < s->nmarks; i++) {
        struct vs_node *n = node_by_uuid(tree, s->marks[i].uuid);
        if (n && n->cat.kind == VS_NODE_VOLUME)
            vs_node_set_unavailable(n, s->marks[i].why);
    }
}

static void
scan_free(struct scan *s)
{
    for (size_t i = 0; i < s->ndoms; i++) {
        free(s->doms[i].location);
        free(s->doms[i].recs);
        free(s->doms[i].names);
        free(s->doms[i].doubtful);
        free(s->doms[i].acts);
    }
    free(s->doms);
    free(s->seen);
    free(s->marks);
    free(s->locals);
}

void
vs_tree_run_deferred(struct vs_tree *tree)
{
    struct scan *s = tree->deferred;

    tree->deferred = NULL;
    for (size_t i = 0; s && i < s->ndoms; i++) {
        struct dscan *d = &s->doms[i];
        struct vs_node *n = node_by_uuid(tree, d->uuid);
        if (!needs_repair(d))
            continue;
        /* through the tree's own area, so that it knows the new state */
        if (n && n->domain && n->domain->meta && !d->destroy)
            repair_with(d, n->domain->store, n->domain->meta);
        else
            repair_domain(tree, d);
    }
    vs_tree_free_deferred(s);
}

void
vs_tree_free_deferred(void *deferred)
{
    if (deferred) {
        scan_free(deferred);
        free(deferred);
    }
}

int
vs_tree_rescan(struct vs_tree *tree)
{
    struct scan *s = calloc(1, sizeof(*s));
    bool keep = false;
    int r;

    if (!s)
        return -ENOMEM;
    s->tree = tree;
    r = vs_store_list(tree->domain_root, read_listed, s);
    if (r < 0)
        vs_log(LOG_ERR, "cannot list the domains under '%s': %s",
               tree->domain_root, strerror(-r));
    if (r == 0)
        r = sync_catalog(s);
    if (r < 0) {
        /* nothing was changed: the storage, the catalog and the tree in
         * memory stay as they were */
        vs_tree_free_deferred(s);
        return r;
    }
    vs_tree_free_deferred(tree->deferred);
    tree->deferred = NULL;
    for (size_t i = 0; i < s->ndoms; i++) {
        if (!needs_repair(&s->doms[i]))
            continue;
        if (tree->defer_repairs)
            keep = true; /* vs_tree_run_deferred, once the mount is up */
        else
            repair_domain(tree, &s->doms[i]);
    }
    vs_tree_detach_all(tree);
    r = vs_catalog_foreach(tree->cat, attach_row, tree);
    vs_tree_count_layers(tree);
    apply_marks(s);
    if (keep)
        tree->deferred = s;
    else
        vs_tree_free_deferred(s);
    return r;
}
