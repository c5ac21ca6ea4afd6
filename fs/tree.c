/*
 * The namespace: the root, its domains, their images and volumes, kept in
 * memory as a tree of nodes indexed by catalog id.
 *
 * Every change follows one order so that a crash at any step leaves
 * something a rescan repairs and never loses data:
 *   1. the storage (create the object / mark the record REMOVING),
 *   2. the domain's metadata record (durable, the source of truth),
 *   3. the host's catalog (a mirror: rescan rebuilds it from step 2),
 *   4. the in-memory node.
 * A step that fails undoes the steps before it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fs.h"
#include "vs/log.h"
#include "vs/names.h"
#include "vs/util.h"

#define DIR_MODE 0755
#define DATA_MODE 0600

static void count_layer(struct vs_tree *tree, const struct vs_node *node,
                        int delta);

/* ---- nodes ---- */

const char *
vs_node_kind_name(enum vs_node_kind kind)
{
    static const char *const names[] = {"root", "domain", "image", "volume"};

    return kind <= VS_NODE_VOLUME ? names[kind] : "?";
}

const char *
vs_node_path(const struct vs_node *node, char *buf, size_t len)
{
    const struct vs_node *chain[4];
    int depth = 0;
    size_t used = 0;

    for (const struct vs_node *n = node;
         n && n->cat.kind != VS_NODE_ROOT && depth < 4; n = n->parent)
        chain[depth++] = n;
    buf[0] = '\0';
    if (depth == 0)
        snprintf(buf, len, "/");
    while (depth-- > 0 && used < len) {
        int w = snprintf(buf + used, len - used, "%s%s", used ? "/" : "",
                         chain[depth]->cat.name);
        used += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

static void
domain_close(struct vs_domain *dom)
{
    if (!dom)
        return;
    vs_meta_area_close(dom->meta);
    vs_store_close(dom->store);
    free(dom->read_only);
    free(dom);
}

static void
node_free(struct vs_node *node)
{
    if (node->cat.kind == VS_NODE_DOMAIN)
        domain_close(node->domain);
    vs_volume_unref(node->vol);
    free(node->unavailable);
    free(node->names);
    free(node);
}

void
vs_domain_set_read_only(struct vs_domain *dom, const char *why)
{
    char *copy = strdup(why);

    if (copy) {
        free(dom->read_only);
        dom->read_only = copy;
    }
}

void
vs_node_set_unavailable(struct vs_node *node, const char *why)
{
    char *copy = strdup(why);

    if (copy) {
        free(node->unavailable);
        node->unavailable = copy;
    }
}

int
vs_node_check_writable(const struct vs_node *node)
{
    return node->domain && node->domain->read_only ? -EROFS : 0;
}

int
vs_node_check_available(const struct vs_node *node)
{
    if (node->unavailable || (node->domain && !node->domain->store))
        return -EIO;
    return 0;
}

/* Remove NODE (a leaf) from the tree and free it. */
static void
node_detach(struct vs_tree *tree, struct vs_node *node)
{
    count_layer(tree, node, -1);
    vs_node_unlink_child(node);
    vs_tree_unindex_id(tree, node);
    node_free(node);
}

int
vs_tree_open_domain(struct vs_tree *tree, struct vs_node *node)
{
    struct vs_domain *dom = calloc(1, sizeof(*dom));
    char why[400], reason[256];
    int r;

    if (!dom)
        return -ENOMEM;
    r = vs_domain_open_store(tree, &node->cat, false, &dom->store, reason,
                             sizeof(reason));
    if (r == 0 && (r = vs_meta_area_open(dom->store, false, &dom->meta)) < 0)
        snprintf(reason, sizeof(reason), "%s", strerror(-r));
    if (r == -ENOMEM) {
        domain_close(dom);
        return r;
    }
    if (r < 0) {
        /* its tree stays visible from the catalog; nothing is served */
        snprintf(why, sizeof(why), "its %s cannot be opened: %s",
                 dom->store ? "metadata" : "storage", reason);
        vs_log(LOG_ERR, "domain '%s': %s", node->cat.name, why);
        vs_domain_set_read_only(dom, why);
    }
    node->domain = dom;
    return 0;
}

static struct vs_node *
node_new(const struct vs_cat_node *row)
{
    struct vs_node *node = calloc(1, sizeof(*node));

    if (node)
        node->cat = *row;
    return node;
}

/* Link NODE under PARENT and index it; set its volume state. */
static int
node_insert(struct vs_tree *tree, struct vs_node *parent, struct vs_node *node)
{
    char label[3 * VS_NAME_MAX + 8];

    if (node->cat.kind != VS_NODE_DOMAIN)
        node->domain = parent->domain;
    vs_node_link_child(parent, node);
    if (node->cat.kind == VS_NODE_VOLUME) {
        node->vol = vs_volume_new(vs_node_path(node, label, sizeof(label)));
        if (!node->vol) {
            vs_node_unlink_child(node);
            return -ENOMEM;
        }
        node->vol->id = node->cat.id;
    }
    if (vs_tree_index_id(tree, node) < 0) {
        vs_node_unlink_child(node);
        return -ENOMEM;
    }
    count_layer(tree, node, +1);
    return 0;
}

int
vs_tree_attach(struct vs_tree *tree, const struct vs_cat_node *row)
{
    struct vs_node *parent, *node;
    int r;

    parent = row->kind == VS_NODE_DOMAIN
                 ? &tree->root
                 : vs_tree_node(tree, VS_INO(row->parent_id, VS_PART_DIR));
    if (!parent)
        return -ENOENT;
    node = node_new(row);
    if (!node)
        return -ENOMEM;
    if (row->kind == VS_NODE_DOMAIN &&
        (r = vs_tree_open_domain(tree, node)) < 0) {
        free(node);
        return r;
    }
    r = node_insert(tree, parent, node);
    if (r < 0)
        node_free(node);
    return r;
}

static void
detach_subtree(struct vs_tree *tree, struct vs_node *node)
{
    while (node->children)
        detach_subtree(tree, node->children);
    if (node != &tree->root)
        node_detach(tree, node);
}

void
vs_tree_detach_all(struct vs_tree *tree)
{
    detach_subtree(tree, &tree->root);
}

struct vs_node *
vs_tree_volume(struct vs_tree *tree, int64_t id)
{
    struct vs_node *n =
        id > 0 ? vs_tree_node(tree, VS_INO(id, VS_PART_DIR)) : NULL;

    return n && n->cat.kind == VS_NODE_VOLUME ? n : NULL;
}

/* Open NODE's layer as CAT describes it and, below it, its parents:
 * format over object over the backing chain.  Parents open read-only:
 * they have children. */
static int
open_layer(struct vs_tree *tree, struct vs_node *node,
           const struct vs_cat_node *cat, unsigned flags, int depth,
           struct vs_bdev **out)
{
    struct vs_bdev *file = NULL, *backing = NULL;
    struct vs_node *parent;
    int r = 0;

    if (depth > VS_CHAIN_MAX)
        return -ELOOP;
    if ((r = vs_node_check_available(node)) < 0)
        return r; /* why was logged when it was found */
    if (cat->backing_id) {
        parent = vs_tree_volume(tree, cat->backing_id);
        r = parent ? open_layer(tree, parent, &parent->cat,
                                VS_OPEN_RDONLY | VS_OPEN_DIRECT, depth + 1,
                                &backing)
                   : -ENOLINK;
        if (r < 0)
            return r; /* logged where it failed */
    }
    r = vs_object_open(node->domain->store, cat->object, flags,
                       node->vol->label, &file);
    if (r == 0)
        r = vs_format_open(cat->format, file, backing, flags, out);
    if (r < 0) {
        /* the one line that names the damaged layer; the daemon goes on
         * serving every other volume */
        vs_log(LOG_ERR,
               "volume '%s': its layer (object '%s', %s) cannot be "
               "opened: %s",
               node->vol->label, cat->object, cat->format, strerror(-r));
        vs_bdev_close(file);
        vs_bdev_close(backing);
    }
    return r;
}

int
vs_tree_open_chain(struct vs_tree *tree, struct vs_node *node, unsigned flags,
                   struct vs_bdev **out)
{
    return open_layer(tree, node, &node->cat, flags, 0, out);
}

int
vs_tree_open_chain_as(struct vs_tree *tree, struct vs_node *node,
                      const struct vs_cat_node *row, unsigned flags,
                      struct vs_bdev **out)
{
    return open_layer(tree, node, row, flags, 0, out);
}

bool
vs_tree_in_chain(struct vs_tree *tree, const struct vs_node *n, int64_t layer)
{
    for (int depth = 0; n && depth <= VS_CHAIN_MAX; depth++) {
        if (n->cat.id == layer)
            return true;
        n = vs_tree_volume(tree, n->cat.backing_id);
    }
    return false;
}

/* A frozen layer's latest metadata may still sit in the chain of a volume
 * based on it (a snapshot does not flush; see chain.c): flush those chains
 * before the layer is opened on its own, so it opens as it was frozen.  Not
 * only the children's: after a second snapshot the child is frozen too and
 * both sit, unflushed, in the chain of the live volume above them. */
static int
flush_children(struct vs_tree *tree, const struct vs_node *node)
{
    int r = 0;

    for (size_t i = 0; i < tree->hash_size && r == 0; i++) {
        for (struct vs_node *n = tree->hash[i]; n && r == 0; n = n->hash_next) {
            if (n->cat.kind != VS_NODE_VOLUME || !n->vol->bdev || n == node ||
                !vs_tree_in_chain(tree, n, node->cat.id))
                continue;
            vs_gate_enter(&n->vol->io_gate);
            r = n->vol->bdev ? vs_bdev_flush(n->vol->bdev) : 0;
            vs_gate_leave(&n->vol->io_gate);
        }
    }
    return r;
}

static int64_t
now_secs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* The error of a recent failed open of VOL's chain, or 0: a broken volume
 * that every stat would try to open again would log a line each time. */
static int
recent_bdev_error(struct vs_volume *vol)
{
    int r = 0;

    pthread_mutex_lock(&vol->lock);
    if (vol->bdev_error < 0 &&
        now_secs() - vol->bdev_error_at < VS_BDEV_RETRY_SECS)
        r = vol->bdev_error;
    pthread_mutex_unlock(&vol->lock);
    return r;
}

static int
note_bdev_error(struct vs_volume *vol, int r)
{
    if (r == -ENOMEM || r == -EBUSY || r == -EAGAIN || r == -EINTR)
        return r; /* passing trouble, not a broken volume */
    pthread_mutex_lock(&vol->lock);
    vol->bdev_error = r;
    vol->bdev_error_at = now_secs();
    pthread_mutex_unlock(&vol->lock);
    return r;
}

int
vs_node_bdev(struct vs_tree *tree, struct vs_node *node, struct vs_bdev **out)
{
    struct vs_bdev *bs;
    int r;

    if ((*out = node->vol->bdev)) {
        pthread_mutex_lock(&node->vol->lock);
        vs_idle_update(node->vol); /* used: most recent */
        pthread_mutex_unlock(&node->vol->lock);
        return 0;
    }
    if ((r = recent_bdev_error(node->vol)) < 0)
        return r;
    if (node->layers_above > 0 && (r = flush_children(tree, node)) < 0)
        return r;
    r = open_layer(tree, node, &node->cat, VS_OPEN_DIRECT, 0, &bs);
    if (r < 0)
        return note_bdev_error(node->vol, r);
    *out = vs_volume_install(node->vol, bs);
    return 0;
}

int
vs_node_borrow(struct vs_tree *tree, struct vs_node *node, struct vs_bdev **out,
               struct vs_bdev **temp)
{
    int r;

    *temp = NULL;
    if ((*out = node->vol->bdev))
        return 0;
    if ((r = vs_node_check_available(node)) < 0 ||
        (r = recent_bdev_error(node->vol)) < 0)
        return r;
    if (node->layers_above > 0 && (r = flush_children(tree, node)) < 0)
        return r;
    r = open_layer(tree, node, &node->cat, VS_OPEN_RDONLY, 0, temp);
    *out = *temp;
    return r < 0 ? note_bdev_error(node->vol, r) : 0;
}

int
vs_node_sizes(struct vs_tree *tree, struct vs_node *node, int64_t *size,
              int64_t *allocated)
{
    struct vs_bdev *bs, *temp;
    int64_t s, a;
    int r;

    /* a chain closed while idle (idle.c) left its sizes: no open needed */
    if ((r = vs_node_check_available(node)) < 0)
        return r;
    if (vs_volume_known_sizes(node->vol, size, allocated))
        return 0;
    if ((r = vs_node_borrow(tree, node, &bs, &temp)) < 0)
        return r;
    if (!temp) /* root may have written past the end by passthrough */
        vs_passthrough_sync_size(node->vol);
    s = temp ? vs_bdev_size(temp) : (int64_t)atomic_load(&node->vol->size);
    a = vs_bdev_allocated(bs);
    if (temp)
        vs_volume_remember_sizes(node->vol, s, a);
    if (size)
        *size = s;
    if (allocated)
        *allocated = a;
    vs_bdev_close(temp);
    return 0;
}

void
vs_tree_count_layers(struct vs_tree *tree)
{
    for (size_t i = 0; i < tree->hash_size; i++)
        for (struct vs_node *n = tree->hash[i]; n; n = n->hash_next)
            n->layers_above = 0;
    for (size_t i = 0; i < tree->hash_size; i++)
        for (struct vs_node *n = tree->hash[i]; n; n = n->hash_next)
            count_layer(tree, n, +1);
}

/* Keep the parents' count of layers above them in step with NODE. */
static void
count_layer(struct vs_tree *tree, const struct vs_node *node, int delta)
{
    struct vs_node *parent = vs_tree_volume(tree, node->cat.backing_id);

    if (node->cat.kind == VS_NODE_VOLUME && parent)
        parent->layers_above += (unsigned)delta;
}

/* ---- opening ---- */

void
vs_tree_rdlock(struct vs_tree *tree)
{
    pthread_rwlock_rdlock(&tree->lock);
}

void
vs_tree_wrlock(struct vs_tree *tree)
{
    pthread_rwlock_wrlock(&tree->lock);
}

void
vs_tree_unlock(struct vs_tree *tree)
{
    pthread_rwlock_unlock(&tree->lock);
}

static int
make_dir(const char *path)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The host's identity, made on first start and kept in the catalog. */
static int
load_host_identity(struct vs_tree *tree)
{
    char buf[32];
    int r;

    r = vs_catalog_get_setting(tree->cat, "host_uuid", tree->host_uuid,
                               sizeof(tree->host_uuid));
    if (r == -ENOENT) {
        vs_uuid_generate(tree->host_uuid);
        snprintf(buf, sizeof(buf), "%lld", (long long)time(NULL));
        r = vs_catalog_set_setting(tree->cat, "host_uuid", tree->host_uuid);
        if (r == 0)
            r = vs_catalog_set_setting(tree->cat, "created", buf);
    }
    if (r < 0)
        return r;
    if (vs_catalog_get_setting(tree->cat, "created", buf, sizeof(buf)) == 0)
        tree->created = strtoll(buf, NULL, 10);
    return 0;
}

static int
try_catalog(struct vs_tree *tree, const char *path)
{
    int r = vs_catalog_open(path, &tree->cat);

    if (r == 0)
        r = load_host_identity(tree);
    if (r < 0) {
        vs_catalog_close(tree->cat);
        tree->cat = NULL;
    }
    return r;
}

/* Move the damaged catalog at PATH aside and open a new one there. */
static int
replace_catalog(struct vs_tree *tree, const char *path)
{
    char aside[4096];
    int r;

    vs_catalog_close(tree->cat);
    tree->cat = NULL;
    r = vs_catalog_set_aside(path, aside, sizeof(aside));
    if (r < 0)
        return vs_log_errno(LOG_ERR, -r,
                            "catalog '%s' is damaged and cannot be moved "
                            "aside: %s",
                            path, strerror(-r));
    vs_log(LOG_ERR,
           "catalog '%s' is damaged (not a database, or it fails its "
           "integrity check): moved aside to '%s' and kept; a new catalog is "
           "rebuilt from the domains (owners and modes of data files, kept "
           "only on this host, are reset)",
           path, aside);
    return try_catalog(tree, path);
}

/* Open the catalog at PATH.  One that SQLite finds damaged (not a database,
 * or failing its integrity check) is moved aside, never deleted, and a new
 * one made: the start-up rescan rebuilds it from the domains, which hold
 * everything but the host-local owners and modes. */
static int
open_catalog(struct vs_tree *tree, const char *path)
{
    int r = try_catalog(tree, path);

    return r == -EUCLEAN ? replace_catalog(tree, path) : r;
}

int
vs_tree_open(const char *data_dir, const char *domain_root,
             const char *catalog_path, unsigned flags, struct vs_tree **out)
{
    struct vs_tree *tree = calloc(1, sizeof(*tree));
    int r;

    if (!tree || !(tree->data_dir = strdup(data_dir)) ||
        (domain_root
             ? !(tree->domain_root = strdup(domain_root))
             : vs_store_default_root(data_dir, &tree->domain_root) < 0)) {
        if (tree) {
            free(tree->data_dir);
            free(tree->domain_root);
        }
        free(tree);
        return -ENOMEM;
    }
    pthread_rwlock_init(&tree->lock, NULL);
    tree->defer_repairs = flags & VS_TREE_DEFER_REPAIRS;
    tree->root.cat.kind = VS_NODE_ROOT;
    tree->root.cat.mode = DIR_MODE;
    r = make_dir(data_dir); /* the catalog's: host-local state */
    if (r == 0)
        r = vs_store_root_prepare(tree->domain_root);
    if (r == 0)
        r = open_catalog(tree, catalog_path);
    if (r == 0)
        r = vs_tree_rescan(tree);
    /* damage the integrity check did not see, found by the rescan's reads
     * (the rescan changed nothing: it failed before its repairs) */
    if (r == -EUCLEAN && (r = replace_catalog(tree, catalog_path)) == 0)
        r = vs_tree_rescan(tree);
    if (r < 0) {
        vs_tree_close(tree);
        return r;
    }
    snprintf(tree->root.cat.uuid, sizeof(tree->root.cat.uuid), "%s",
             tree->host_uuid);
    tree->root.cat.created = tree->created;
    *out = tree;
    return 0;
}

void
vs_tree_finish_start(struct vs_tree *tree)
{
    vs_tree_wrlock(tree);
    tree->defer_repairs = false;
    vs_tree_run_deferred(tree);
    vs_tree_unlock(tree);
}

void
vs_tree_close(struct vs_tree *tree)
{
    if (!tree)
        return;
    vs_tree_detach_all(tree);
    vs_tree_free_deferred(tree->deferred);
    vs_catalog_close(tree->cat);
    pthread_rwlock_destroy(&tree->lock);
    free(tree->hash);
    free(tree->data_dir);
    free(tree->domain_root);
    free(tree);
}

/* ---- creating ---- */

/* The record for ROW under PARENT; BACKING is its backing volume's node
 * (NULL: none); only its uuid is used. */
static void
record_from_row(const struct vs_node *parent, const struct vs_cat_node *row,
                const struct vs_node *backing, struct vs_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->kind = (enum vs_record_kind)row->kind;
    rec->slot = row->slot;
    rec->generation = row->generation;
    rec->created = row->created;
    rec->flags = row->flags;
    memcpy(rec->uuid, row->uuid, sizeof(rec->uuid));
    memcpy(rec->name, row->name, sizeof(rec->name));
    memcpy(rec->format, row->format, sizeof(rec->format));
    memcpy(rec->object, row->object, sizeof(rec->object));
    if (row->kind == VS_NODE_DOMAIN)
        memcpy(rec->options, row->options, sizeof(rec->options));
    if (parent && parent->cat.kind != VS_NODE_ROOT)
        memcpy(rec->parent_uuid, parent->cat.uuid, sizeof(rec->parent_uuid));
    if (backing)
        memcpy(rec->backing_uuid, backing->cat.uuid, sizeof(rec->backing_uuid));
}

/* The record of NODE as it stands (with its backing's uuid). */
static void
node_record(struct vs_tree *tree, const struct vs_node *node,
            struct vs_record *rec)
{
    record_from_row(node->parent, &node->cat,
                    vs_tree_volume(tree, node->cat.backing_id), rec);
}

int
vs_tree_store_row_marked(struct vs_tree *tree, struct vs_node *node,
                         struct vs_cat_node *row, const struct vs_node *backing,
                         const char *pending, const char *retired)
{
    struct vs_record rec;
    int r;

    record_from_row(node->parent, row, backing, &rec);
    snprintf(rec.pending_object, sizeof(rec.pending_object), "%s",
             pending ? pending : "");
    snprintf(rec.retired_object, sizeof(rec.retired_object), "%s",
             retired ? retired : "");
    r = vs_meta_area_write(node->domain->meta, &rec);
    if (r < 0)
        return r;
    row->generation = rec.generation;
    r = vs_catalog_update(tree->cat, row);
    if (r < 0) {
        /* put the record back so the catalog and the domain agree */
        node_record(tree, node, &rec);
        rec.generation = row->generation;
        vs_meta_area_write(node->domain->meta, &rec);
    }
    return r;
}

int
vs_tree_store_row(struct vs_tree *tree, struct vs_node *node,
                  struct vs_cat_node *row, const struct vs_node *backing)
{
    return vs_tree_store_row_marked(tree, node, row, backing, NULL, NULL);
}

int
vs_tree_mark_pending(struct vs_tree *tree, struct vs_node *node,
                     const char *object)
{
    struct vs_cat_node row = node->cat;
    int r = vs_tree_store_row_marked(
        tree, node, &row, vs_tree_volume(tree, row.backing_id), object, NULL);

    if (r == 0)
        node->cat.generation = row.generation;
    return r;
}

void
vs_tree_replace_row(struct vs_tree *tree, struct vs_node *node,
                    const struct vs_cat_node *row)
{
    count_layer(tree, node, -1);
    vs_node_rename_child(node, row->name);
    node->cat = *row;
    count_layer(tree, node, +1);
}

static void
row_init(struct vs_cat_node *row, enum vs_node_kind kind, int64_t parent_id,
         const char *name)
{
    memset(row, 0, sizeof(*row));
    row->kind = kind;
    row->parent_id = parent_id;
    row->created = time(NULL);
    row->mode = kind == VS_NODE_VOLUME ? DATA_MODE : DIR_MODE;
    snprintf(row->name, sizeof(row->name), "%s", name);
    vs_uuid_generate(row->uuid);
}

/* Steps 2-4 for a new node whose storage exists: record, catalog, memory.
 * On failure the record is released again. */
int
vs_tree_publish(struct vs_tree *tree, struct vs_node *parent,
                struct vs_domain *dom, struct vs_cat_node *row,
                struct vs_node **out)
{
    struct vs_record rec;
    struct vs_node *node;
    int r;

    record_from_row(parent, row, vs_tree_volume(tree, row->backing_id), &rec);
    r = vs_meta_area_write(dom->meta, &rec);
    if (r < 0)
        return r;
    row->slot = rec.slot;
    row->generation = rec.generation;
    r = vs_catalog_insert(tree->cat, row);
    if (r == 0 && !(node = node_new(row)))
        r = -ENOMEM;
    if (r == 0) {
        node->domain = dom;
        r = node_insert(tree, parent, node);
        if (r < 0) {
            free(node);
            vs_catalog_delete(tree->cat, row->id);
        }
    }
    if (r < 0 && row->kind != VS_NODE_DOMAIN)
        vs_meta_area_free(dom->meta, rec.slot);
    if (r == 0)
        *out = node;
    return r;
}

static int
make_domain(struct vs_tree *tree, struct vs_cat_node *row, struct vs_node **out)
{
    struct vs_domain *dom = calloc(1, sizeof(*dom));
    char why[256];
    int r;

    if (!dom)
        return -ENOMEM;
    if ((size_t)snprintf(row->location, sizeof(row->location), "%s/%s",
                         tree->domain_root,
                         row->uuid) >= sizeof(row->location)) {
        free(dom);
        return -ENAMETOOLONG;
    }
    r = vs_domain_open_store(tree, row, true, &dom->store, why, sizeof(why));
    if (r < 0) {
        vs_log_debug(VS_LOG_CAT_META, "domain '%s': storage not made: %s",
                     row->name, why);
        free(dom);
        return r;
    }
    r = vs_meta_area_open(dom->store, true, &dom->meta);
    if (r == 0)
        r = vs_tree_publish(tree, &tree->root, dom, row, out);
    if (r < 0) {
        vs_meta_area_close(dom->meta);
        if (vs_store_destroy(dom->store) < 0)
            vs_store_close(dom->store);
        free(dom);
    }
    return r;
}

/* Lay out an empty raw image on a new object. */
static int
create_volume_object(struct vs_store *st, const char *object, const char *label)
{
    struct vs_bdev *file;
    int r = vs_object_create(st, object, 0);

    if (r < 0)
        return r;
    r = vs_object_open(st, object, 0, label, &file);
    if (r == 0) {
        r = vs_format_create("raw", file, 0, NULL, NULL);
        if (r == 0)
            r = vs_bdev_flush(file);
        vs_bdev_close(file);
    }
    if (r < 0)
        vs_object_remove(st, object);
    return r;
}

/* A new volume: its record first, marked CREATING and naming the object
 * about to be made (a crash before the mark is cleared makes the rescan
 * remove that object and the record: nothing is removed that no readable
 * record names), then the object, then the record as it stays. */
static int
make_volume(struct vs_tree *tree, struct vs_node *image,
            struct vs_cat_node *row, struct vs_node **out)
{
    struct vs_domain *dom = image->domain;
    struct vs_record rec;
    int r;

    snprintf(row->format, sizeof(row->format), "raw");
    snprintf(row->object, sizeof(row->object), "%s", row->uuid);
    record_from_row(image, row, NULL, &rec);
    rec.flags |= VS_RECF_CREATING;
    snprintf(rec.pending_object, sizeof(rec.pending_object), "%s", row->object);
    r = vs_meta_area_write(dom->meta, &rec);
    if (r < 0)
        return r;
    row->slot = rec.slot;
    row->generation = rec.generation;
    r = create_volume_object(dom->store, row->object, row->name);
    if (r == 0 && (r = vs_tree_publish(tree, image, dom, row, out)) < 0)
        vs_object_remove(dom->store, row->object);
    if (r < 0)
        vs_meta_area_free(dom->meta, rec.slot);
    return r;
}

int
vs_tree_mkdir(struct vs_tree *tree, struct vs_node *parent, const char *name,
              mode_t mode, uid_t uid, gid_t gid, struct vs_node **out)
{
    struct vs_cat_node row;
    enum vs_node_kind kind;
    int r;

    (void)mode;
    if (parent->cat.kind == VS_NODE_VOLUME)
        return -EPERM;
    if ((r = vs_node_check_writable(parent)) < 0)
        return r;
    r = vs_name_check(name);
    if (r < 0)
        return r;
    if (vs_node_child(parent, name))
        return -EEXIST;
    kind = (enum vs_node_kind)(parent->cat.kind + 1);
    row_init(&row, kind, parent->cat.id, name);
    row.uid = uid;
    row.gid = gid;
    if (kind == VS_NODE_DOMAIN)
        return make_domain(tree, &row, out);
    if (kind == VS_NODE_IMAGE)
        return vs_tree_publish(tree, parent, parent->domain, &row, out);
    return make_volume(tree, parent, &row, out);
}

/* ---- removing ---- */

/* Write the node's record again with FLAGS added. */
static int
mark_record(struct vs_tree *tree, struct vs_node *node, uint32_t flags)
{
    struct vs_record rec;

    node_record(tree, node, &rec);
    rec.flags |= flags;
    return vs_meta_area_write(node->domain->meta, &rec);
}

void
vs_tree_forget(struct vs_tree *tree, struct vs_node *node, bool keep_record)
{
    if (!keep_record)
        vs_meta_area_free(node->domain->meta, node->cat.slot);
    vs_catalog_delete(tree->cat, node->cat.id);
    node_detach(tree, node);
}

static int
remove_domain(struct vs_tree *tree, struct vs_node *node)
{
    struct vs_domain *dom = node->domain;
    int r = mark_record(tree, node, VS_RECF_REMOVING);

    if (r < 0)
        return r;
    vs_meta_area_close(dom->meta);
    dom->meta = NULL;
    r = vs_store_destroy(dom->store);
    if (r < 0) {
        /* keep serving it; the REMOVING mark makes a rescan finish */
        vs_meta_area_open(dom->store, false, &dom->meta);
        return r;
    }
    dom->store = NULL;
    vs_domain_forget_secrets(tree, node->cat.uuid);
    vs_catalog_delete(tree->cat, node->cat.id);
    node_detach(tree, node);
    return 0;
}

static int
remove_volume(struct vs_tree *tree, struct vs_node *node)
{
    struct vs_domain *dom = node->domain;
    int r = mark_record(tree, node, VS_RECF_REMOVING);

    if (r < 0)
        return r;
    r = vs_object_remove(dom->store, node->cat.object);
    if (r < 0 && r != -ENOENT)
        return r; /* the REMOVING mark makes a rescan finish */
    r = vs_meta_area_free(dom->meta, node->cat.slot);
    if (r < 0)
        return r;
    vs_catalog_delete(tree->cat, node->cat.id);
    node_detach(tree, node);
    return 0;
}

int
vs_tree_rmdir(struct vs_tree *tree, struct vs_node *node)
{
    if (node->nchildren > 0)
        return -ENOTEMPTY;
    if (vs_node_check_writable(node) < 0)
        return -EROFS;
    if (vs_merge_busy(node->cat.id))
        return -EBUSY;
    if (node->cat.kind == VS_NODE_VOLUME && node->layers_above > 0)
        return vs_merge_start(tree, node);
    return vs_tree_remove(tree, node);
}

int
vs_tree_remove(struct vs_tree *tree, struct vs_node *node)
{
    int r;

    switch (node->cat.kind) {
    case VS_NODE_DOMAIN:
        return remove_domain(tree, node);
    case VS_NODE_VOLUME:
        return remove_volume(tree, node);
    case VS_NODE_IMAGE:
        r = vs_meta_area_free(node->domain->meta, node->cat.slot);
        if (r < 0)
            return r;
        vs_catalog_delete(tree->cat, node->cat.id);
        node_detach(tree, node);
        return 0;
    default:
        return -EPERM;
    }
}

/* ---- renaming and ownership ---- */

int
vs_tree_rename(struct vs_tree *tree, struct vs_node *node, const char *newname)
{
    struct vs_cat_node row = node->cat;
    int r = vs_name_check(newname);

    if (r < 0)
        return r;
    if ((r = vs_node_check_writable(node)) < 0)
        return r;
    if (vs_node_child(node->parent, newname))
        return -EEXIST;
    snprintf(row.name, sizeof(row.name), "%s", newname);
    r = vs_tree_store_row(tree, node, &row,
                          vs_tree_volume(tree, node->cat.backing_id));
    if (r == 0)
        vs_tree_replace_row(tree, node, &row);
    return r;
}

int
vs_tree_set_owner(struct vs_tree *tree, struct vs_node *node,
                  const mode_t *mode, const uid_t *uid, const gid_t *gid)
{
    struct vs_cat_node row = node->cat;
    int r;

    if (mode)
        row.mode = *mode & 07777;
    if (uid)
        row.uid = *uid;
    if (gid)
        row.gid = *gid;
    r = vs_catalog_update(tree->cat, &row);
    if (r == 0)
        vs_tree_replace_row(tree, node, &row);
    return r;
}
