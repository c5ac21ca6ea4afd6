/*
 * Rebuilding the host's view from the domains themselves.
 *
 * For each domain under the tree's domain root (by default the directory
 * DATA_DIR/domains), read every record of its metadata area; finish
 * removals that a crash interrupted (records marked REMOVING); then, in
 * one catalog transaction, insert or update a row for each record and
 * delete the rows that no record backs.  Rows keep their ids (the inode
 * numbers) and host-local fields (mode, owner).  Damaged records are
 * reported here, once, and never used.  Finally the in-memory tree is
 * rebuilt from the catalog.
 *
 * Run at every start and on `setfattr -n user.vstor.rescan`, so the
 * catalog can be deleted at any time and comes back the same.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "vs/log.h"
#include "vs/util.h"

struct scan {
    struct vs_tree *tree;
    const char *location;
    struct vs_record *recs;
    size_t nrecs, cap;
    /* uuids present on the storage, for deleting stale rows */
    char (*seen)[VS_UUID_LEN + 1];
    size_t nseen, seen_cap;
    bool records_lost; /* in the domain being scanned: a slot unreadable */
};

static int
keep_record(const struct vs_record *rec, void *arg)
{
    struct scan *s = arg;

    if (s->nrecs == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct vs_record *n = realloc(s->recs, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        s->recs = n;
        s->cap = cap;
    }
    s->recs[s->nrecs++] = *rec;
    return 0;
}

static void
report_damage(const struct vs_meta_slot_report *rep, void *arg)
{
    struct scan *s = arg;
    bool lost = rep->copy_a < 0 && rep->copy_b < 0;

    s->records_lost |= lost;

    vs_log(lost ? LOG_ERR : LOG_WARNING,
           "domain '%s': metadata slot %u: copy A %s, copy B %s; %s",
           s->location, rep->slot,
           rep->copy_a ? vs_record_strerror(rep->copy_a) : "valid",
           rep->copy_b ? vs_record_strerror(rep->copy_b) : "valid",
           lost ? "its entry is not shown until repaired"
                : "the valid copy is used");
}

static int
mark_seen(struct scan *s, const char *uuid)
{
    if (s->nseen == s->seen_cap) {
        size_t cap = s->seen_cap ? s->seen_cap * 2 : 64;
        void *n = realloc(s->seen, cap * sizeof(*s->seen));
        if (!n)
            return -ENOMEM;
        s->seen = n;
        s->seen_cap = cap;
    }
    memcpy(s->seen[s->nseen++], uuid, VS_UUID_LEN + 1);
    return 0;
}

static bool
was_seen(const struct scan *s, const char *uuid)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i], uuid) == 0)
            return true;
    return false;
}

/* Whether a volume record other than EXCEPT names OBJECT (a layer merged
 * down gave its object to its child, merge.c). */
static bool
object_named(const struct scan *s, const char *object,
             const struct vs_record *except)
{
    for (size_t i = 0; i < s->nrecs; i++)
        if (&s->recs[i] != except && s->recs[i].kind == VS_REC_VOLUME &&
            strcmp(s->recs[i].object, object) == 0)
            return true;
    return false;
}

/* Finish a volume removal a crash interrupted; an object another record
 * names stays. */
static void
finish_removal(struct scan *s, struct vs_store *st, struct vs_meta_area *meta,
               struct vs_record *rec)
{
    int r = object_named(s, rec->object, rec)
                ? 0
                : vs_object_remove(st, rec->object);

    if (r == 0 || r == -ENOENT)
        r = vs_meta_area_free(meta, rec->slot);
    vs_log(LOG_NOTICE, "volume '%s' (%s): finished its interrupted removal%s",
           rec->name, rec->uuid, r < 0 ? ": failed, will retry" : "");
    rec->kind = VS_REC_FREE;
}

struct leftovers {
    struct scan *s;
    struct vs_store *st;
};

/* object_list callback: remove object NAME if no record names it. */
static int
remove_leftover(const char *name, void *arg)
{
    struct leftovers *l = arg;
    int r;

    if (!vs_uuid_valid(name) || object_named(l->s, name, NULL))
        return 0; /* "metadata", not ours, or named */
    r = vs_object_remove(l->st, name);
    vs_log(LOG_NOTICE,
           "domain '%s': object '%s' is named by no record (a creation "
           "interrupted before its record was written); removed%s",
           l->s->location, name, r < 0 ? ": failed" : "");
    return 0;
}

/* Objects are made before the records that name them (tree.c), so a crash
 * can leave an object nothing names: a new volume's, or a snapshot's new
 * top layer.  Remove them, unless a record could not be read (its object
 * would look unnamed).  One host serves a domain at a time: with several,
 * this needs the domain's lease, or it would race another host's mkdir. */
static void
remove_leftovers(struct scan *s, struct vs_store *st)
{
    struct leftovers l = {.s = s, .st = st};

    if (s->records_lost) {
        vs_log(LOG_WARNING,
               "domain '%s': objects named by no record are kept while a "
               "record is unreadable",
               s->location);
        return;
    }
    if (vs_object_list(st, remove_leftover, &l) < 0)
        vs_log(LOG_WARNING, "domain '%s': cannot list its objects",
               s->location);
}

/* The domain's own record: the one in slot 0. */
static const struct vs_record *
domain_record(const struct scan *s)
{
    for (size_t i = 0; i < s->nrecs; i++)
        if (s->recs[i].slot == 0 && s->recs[i].kind == VS_REC_DOMAIN)
            return &s->recs[i];
    return NULL;
}

/* Insert or update the catalog row for REC under PARENT_ID. */
static int
upsert(struct scan *s, const struct vs_record *rec, int64_t parent_id,
       int64_t *id)
{
    struct vs_cat_node row;
    int r = vs_catalog_get_by_uuid(s->tree->cat, rec->uuid, &row);

    if (r == -ENOENT) {
        memset(&row, 0, sizeof(row));
        row.mode = rec->kind == VS_REC_VOLUME ? 0600 : 0755;
    } else if (r < 0) {
        return r;
    }
    if (!rec->backing_uuid[0])
        row.backing_id = 0; /* a backing is linked in link_backings */
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
    if (rec->kind == VS_REC_DOMAIN)
        snprintf(row.location, sizeof(row.location), "%s", s->location);
    r = r == -ENOENT ? vs_catalog_insert(s->tree->cat, &row)
                     : vs_catalog_update(s->tree->cat, &row);
    if (r == -EEXIST)
        vs_log(LOG_ERR,
               "domain '%s': %s '%s' (%s) clashes with another of "
               "that name; not shown",
               s->location, vs_node_kind_name(row.kind), rec->name, rec->uuid);
    if (r == 0) {
        *id = row.id;
        r = mark_seen(s, rec->uuid);
    }
    return r == -EEXIST ? 0 : r;
}

/* Second pass: link each volume to its backing row (a snapshot's row can be
 * newer than its child's, so this waits until every row exists). */
static int
link_backings(struct scan *s)
{
    for (size_t i = 0; i < s->nrecs; i++) {
        const struct vs_record *rec = &s->recs[i];
        struct vs_cat_node row, parent;
        int r;
        if (rec->kind != VS_REC_VOLUME || !rec->backing_uuid[0] ||
            vs_catalog_get_by_uuid(s->tree->cat, rec->uuid, &row) < 0)
            continue;
        r = vs_catalog_get_by_uuid(s->tree->cat, rec->backing_uuid, &parent);
        if (r == -ENOENT) {
            vs_log(LOG_ERR,
                   "domain '%s': volume '%s' (%s): its backing %s "
                   "is missing; reads will fail",
                   s->location, rec->name, rec->uuid, rec->backing_uuid);
            continue;
        }
        if (r < 0)
            return r;
        if (row.backing_id == parent.id)
            continue;
        row.backing_id = parent.id;
        r = vs_catalog_update(s->tree->cat, &row);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Is some volume record based on UUID? */
static bool
has_child_layer(const struct scan *s, const char *uuid)
{
    for (size_t i = 0; i < s->nrecs; i++)
        if (s->recs[i].kind == VS_REC_VOLUME &&
            strcmp(s->recs[i].backing_uuid, uuid) == 0)
            return true;
    return false;
}

/* A snapshot that a crash interrupted: if the live layer already sits on
 * it, finish (clear the mark); if not, drop its record (its object is still
 * the live volume's). */
static void
settle_snapshot(struct vs_meta_area *meta, struct scan *s,
                struct vs_record *rec)
{
    bool keep = has_child_layer(s, rec->uuid);
    int r;

    if (keep) {
        rec->flags &= ~(uint32_t)VS_RECF_PENDING;
        r = vs_meta_area_write(meta, rec);
    } else {
        r = vs_meta_area_free(meta, rec->slot);
        rec->kind = VS_REC_FREE;
    }
    /* keeping is the normal case: a snapshot's mark is cleared here, at
     * the first rescan after it (chain.c saves that write) */
    vs_log(keep ? LOG_INFO : LOG_NOTICE, "snapshot '%s' (%s): %s%s", rec->name,
           rec->uuid,
           keep ? "record completed"
                : "interrupted before its volume moved "
                  "onto it; rolled back",
           r < 0 ? " (failed, will retry)" : "");
}

/* Mirror images, then the volumes of each image. */
static int
mirror_children(struct scan *s, const struct vs_record *domain, int64_t dom_id)
{
    int r = 0;

    for (size_t i = 0; i < s->nrecs && r == 0; i++) {
        const struct vs_record *img = &s->recs[i];
        int64_t img_id = 0;
        if (img->kind != VS_REC_IMAGE ||
            strcmp(img->parent_uuid, domain->uuid) != 0)
            continue;
        r = upsert(s, img, dom_id, &img_id);
        for (size_t j = 0; j < s->nrecs && r == 0 && img_id; j++) {
            int64_t vol_id;
            if (s->recs[j].kind == VS_REC_VOLUME &&
                strcmp(s->recs[j].parent_uuid, img->uuid) == 0)
                r = upsert(s, &s->recs[j], img_id, &vol_id);
        }
    }
    return r;
}

static void
report_orphans(struct scan *s)
{
    for (size_t i = 0; i < s->nrecs; i++) {
        const struct vs_record *rec = &s->recs[i];
        if ((rec->kind == VS_REC_IMAGE || rec->kind == VS_REC_VOLUME) &&
            !was_seen(s, rec->uuid))
            vs_log(LOG_WARNING,
                   "domain '%s': %s '%s' (%s) has no parent %s; not shown",
                   s->location, rec->kind == VS_REC_IMAGE ? "image" : "volume",
                   rec->name, rec->uuid, rec->parent_uuid);
    }
}

/* Read one domain's records and mirror them. */
static int
scan_domain(struct scan *s, const char *location)
{
    struct vs_store *st = NULL;
    struct vs_meta_area *meta = NULL;
    const struct vs_record *dom;
    int64_t dom_id;
    int r;

    s->location = location;
    s->nrecs = 0;
    s->records_lost = false;
    r = vs_store_open(location, false, &st);
    if (r == 0)
        r = vs_meta_area_open(st, false, &meta);
    if (r == 0)
        r = vs_meta_area_load(meta, keep_record, report_damage, s);
    for (size_t i = 0; r == 0 && i < s->nrecs; i++) {
        struct vs_record *rec = &s->recs[i];
        if (rec->kind == VS_REC_VOLUME && (rec->flags & VS_RECF_REMOVING))
            finish_removal(s, st, meta, rec);
        else if (rec->kind == VS_REC_VOLUME && (rec->flags & VS_RECF_PENDING))
            settle_snapshot(meta, s, rec);
        else if (rec->kind == VS_REC_VOLUME &&
                 (rec->flags & (VS_RECF_MERGE_CHILD | VS_RECF_MERGE_DOWN)) &&
                 !has_child_layer(s, rec->uuid))
            finish_removal(s, st, meta, rec); /* merged; the switch was done */
    }
    if (r == 0)
        remove_leftovers(s, st);
    vs_meta_area_close(meta);
    if (st && ((r == 0 && s->nrecs == 0 && !s->records_lost) || r == -ENOENT) &&
        vs_store_destroy(st) == 0) {
        /* make_domain creates the store, then the metadata area, then the
         * domain record: a store with no record was never a domain
         * (destroy refuses one that holds any object but the metadata) */
        vs_log(LOG_NOTICE,
               "domain '%s': its creation was interrupted before its "
               "record was written; removed",
               location);
        return 0;
    }
    if (r < 0) {
        vs_store_close(st);
        return vs_log_errno(LOG_ERR, r,
                            "domain '%s': cannot read its "
                            "metadata: %s",
                            location, strerror(-r));
    }
    dom = domain_record(s);
    if (!dom) {
        vs_store_close(st);
        return vs_log_errno(LOG_ERR, EUCLEAN,
                            "domain '%s': no valid domain "
                            "record; not shown",
                            location);
    }
    if (dom->flags & VS_RECF_REMOVING) {
        r = vs_store_destroy(st);
        vs_log(LOG_NOTICE, "domain '%s': finished its interrupted removal%s",
               location, r < 0 ? ": failed" : "");
        if (r < 0)
            vs_store_close(st);
        return 0;
    }
    vs_store_close(st);
    r = upsert(s, dom, 0, &dom_id);
    if (r == 0)
        r = mirror_children(s, dom, dom_id);
    if (r == 0)
        r = link_backings(s);
    report_orphans(s);
    return r;
}

/* vs_store_list callback: scan the domain NAME under the tree's root. */
static int
scan_listed(const char *name, void *arg)
{
    struct scan *s = arg;
    char *location = NULL;
    int r = 0;

    if (!vs_uuid_valid(name))
        return 0; /* not a domain of ours */
    if (asprintf(&location, "%s/%s", s->tree->domain_root, name) < 0)
        return -ENOMEM;
    if (scan_domain(s, location) == -ENOMEM)
        r = -ENOMEM;
    free(location);
    return r;
}

static int
scan_domain_root(struct scan *s)
{
    int r = vs_store_list(s->tree->domain_root, scan_listed, s);

    if (r < 0 && r != -ENOMEM)
        vs_log(LOG_ERR, "cannot list the domains under '%s': %s",
               s->tree->domain_root, strerror(-r));
    return r;
}

struct stale {
    struct scan *s;
    int64_t *ids;
    size_t n, cap;
};

static int
collect_stale(const struct vs_cat_node *row, void *arg)
{
    struct stale *st = arg;

    if (was_seen(st->s, row->uuid))
        return 0;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        int64_t *n = realloc(st->ids, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        st->ids = n;
        st->cap = cap;
    }
    st->ids[st->n++] = row->id;
    return 0;
}

/* Delete rows no record backs, children first (foreach gives parents
 * first, so walk the list backwards). */
static int
delete_stale(struct scan *s)
{
    struct stale st = {.s = s};
    int r = vs_catalog_foreach(s->tree->cat, collect_stale, &st);

    while (r == 0 && st.n > 0)
        r = vs_catalog_delete(s->tree->cat, st.ids[--st.n]);
    free(st.ids);
    return r;
}

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

int
vs_tree_rescan(struct vs_tree *tree)
{
    struct scan s = {.tree = tree};
    int r;

    vs_tree_detach_all(tree);
    r = vs_catalog_begin(tree->cat);
    if (r < 0)
        return r;
    r = scan_domain_root(&s);
    if (r == 0)
        r = delete_stale(&s);
    if (r == 0)
        r = vs_catalog_commit(tree->cat);
    else
        vs_catalog_rollback(tree->cat);
    free(s.recs);
    free(s.seen);
    if (r == 0)
        r = vs_catalog_foreach(tree->cat, attach_row, tree);
    vs_tree_count_layers(tree);
    return r;
}
