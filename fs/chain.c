/*
 * Backing chains in the namespace: the `backing` symlink of a volume.
 *
 * `ln -s ../base vol/backing` makes VOL a thin clone of BASE: VOL's empty
 * raw object is replaced by a new qcow2 object whose header names BASE's
 * object as its backing file (so qemu-img follows the chain on the backend
 * directly), VOL's record names BASE's uuid as backing, and BASE becomes
 * read-only.  The link text is resolved against the volume's directory in
 * the tree, component by component, never as a path on the storage.
 *
 * Every change goes storage -> record -> catalog -> memory like tree.c;
 * a crash between steps leaves at most an orphan object, which a rescan
 * reports.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "vs/log.h"
#include "vs/names.h"
#include "vs/util.h"

/* Step from NODE along one link component. */
static int
step(struct vs_node *node, const char *comp, struct vs_node **out)
{
    if (strcmp(comp, ".") == 0 || comp[0] == '\0') {
        *out = node;
    } else if (strcmp(comp, "..") == 0) {
        if (node->cat.kind == VS_NODE_ROOT)
            return -EXDEV; /* above the mount */
        *out = node->parent;
    } else if (node->cat.kind == VS_NODE_VOLUME) {
        return -EINVAL; /* data, backing: not volumes */
    } else if (!(*out = vs_node_child(node, comp))) {
        return -ENOENT;
    }
    return 0;
}

int
vs_chain_resolve(struct vs_node *vol, const char *link, struct vs_node **out)
{
    char *copy, *save = NULL;
    struct vs_node *node = vol;
    int r = 0;

    if (link[0] == '/')
        return -EINVAL; /* QEMU would leave the mount */
    copy = strdup(link);
    if (!copy)
        return -ENOMEM;
    for (char *c = strtok_r(copy, "/", &save); c && r == 0;
         c = strtok_r(NULL, "/", &save))
        r = step(node, c, &node);
    free(copy);
    if (r < 0)
        return r;
    if (node->cat.kind != VS_NODE_VOLUME)
        return node->domain == vol->domain || !node->domain ? -EINVAL : -EXDEV;
    if (node->domain != vol->domain)
        return -EXDEV;
    *out = node;
    return 0;
}

int
vs_chain_link_text(struct vs_tree *tree, struct vs_node *vol, char *buf,
                   size_t len)
{
    struct vs_node *parent = vs_tree_volume(tree, vol->cat.backing_id);

    if (!parent)
        return -ENOENT;
    if (parent->parent == vol->parent)
        return snprintf(buf, len, "../%s", parent->cat.name);
    return snprintf(buf, len, "../../%s/%s", parent->parent->cat.name,
                    parent->cat.name);
}

static int
open_count(struct vs_volume *vol, int *writers)
{
    int n;

    pthread_mutex_lock(&vol->lock);
    n = vol->open_count;
    if (writers)
        *writers = vol->writers;
    pthread_mutex_unlock(&vol->lock);
    return n;
}

/* Create object NAME holding an empty image of FORMAT over PARENT. */
static int
make_layer(struct vs_store *st, const char *name, const char *format,
           uint64_t size, const struct vs_node *parent, const char *label)
{
    struct vs_bdev *file;
    int r = vs_object_create(st, name, 0);

    if (r < 0)
        return r;
    r = vs_object_open(st, name, 0, label, &file);
    if (r == 0) {
        r = vs_format_create(format, file, size,
                             parent ? parent->cat.object : NULL,
                             parent ? parent->cat.format : NULL);
        if (r == 0)
            r = vs_bdev_flush(file);
        vs_bdev_close(file);
    }
    if (r < 0)
        vs_object_remove(st, name);
    return r;
}

/* Put VOL's record back as it stands in memory (dropping a pending mark);
 * if that fails the mark stays, and the next rescan removes the object. */
static void
unmark(struct vs_tree *tree, struct vs_node *vol)
{
    struct vs_cat_node row = vol->cat;

    if (vs_tree_store_row(tree, vol, &row,
                          vs_tree_volume(tree, row.backing_id)) == 0)
        vol->cat.generation = row.generation;
}

/* Point VOL at a new object of FORMAT over PARENT (NULL: an empty base):
 * VOL's record names the new object as pending, the object is made, the
 * record names it as VOL's own and the old one as retired, then the old
 * object goes.  A crash at any point leaves a record saying which object
 * a rescan removes. */
static int
relayer(struct vs_tree *tree, struct vs_node *vol, const char *format,
        struct vs_node *parent, uint64_t size)
{
    struct vs_store *st = vol->domain->store;
    struct vs_cat_node row = vol->cat;
    char old_object[VS_OBJECT_MAX + 1];
    int r;

    vs_uuid_generate(row.object);
    snprintf(row.format, sizeof(row.format), "%s", format);
    row.backing_id = parent ? parent->cat.id : 0;
    r = vs_tree_mark_pending(tree, vol, row.object);
    if (r < 0)
        return r;
    row.generation = vol->cat.generation;
    r = make_layer(st, row.object, format, size, parent, vol->vol->label);
    if (r < 0) {
        unmark(tree, vol);
        return r;
    }
    memcpy(old_object, vol->cat.object, sizeof(old_object));
    r = vs_tree_store_row_marked(tree, vol, &row, parent, NULL, old_object);
    if (r < 0) {
        vs_object_remove(st, row.object);
        unmark(tree, vol);
        return r;
    }
    vs_tree_replace_row(tree, vol, &row);
    vs_volume_drop(vol->vol);
    if (vs_object_remove(st, old_object) < 0)
        vs_log(LOG_WARNING,
               "volume '%s': old object '%s' not removed; the next "
               "start removes it",
               vol->vol->label, old_object);
    return 0;
}

int
vs_chain_set_backing(struct vs_tree *tree, struct vs_node *vol,
                     struct vs_node *parent)
{
    struct vs_bdev *bs;
    int64_t alloc, size;
    int writers = 0, r;

    if (vol->cat.backing_id)
        return -EEXIST;
    if ((r = vs_node_check_writable(vol)) < 0)
        return r;
    if (vs_merge_holds(tree, parent))
        return -EBUSY;
    if (vs_tree_in_chain(tree, parent, vol->cat.id))
        return -ELOOP;
    r = vs_node_bdev(tree, vol, &bs);
    if (r < 0)
        return r;
    alloc = vs_bdev_allocated(bs);
    if (atomic_load(&vol->vol->size) > 0 || alloc > 0 || vol->layers_above > 0)
        return -ENOTEMPTY;
    if (open_count(vol->vol, NULL) > 0)
        return -EBUSY;
    r = vs_node_bdev(tree, parent, &bs);
    if (r < 0)
        return r;
    open_count(parent->vol, &writers);
    if (writers > 0)
        return -EBUSY; /* it is about to become read-only */
    /* VOL's chain opens PARENT's layer from storage: what PARENT's cached
     * chain still holds (qcow2 tables) must be there first */
    vs_gate_enter(&parent->vol->io_gate);
    r = vs_bdev_flush(bs);
    vs_gate_leave(&parent->vol->io_gate);
    if (r < 0)
        return r;
    size = (int64_t)atomic_load(&parent->vol->size);
    return relayer(tree, vol, "qcow2", parent, (uint64_t)size);
}

int
vs_chain_set_format(struct vs_tree *tree, struct vs_node *vol,
                    const char *format)
{
    struct vs_bdev *bs;
    int r;

    if (strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0)
        return -EINVAL;
    if ((r = vs_node_check_writable(vol)) < 0)
        return r;
    if (vol->cat.backing_id)
        return -EINVAL; /* a layer over a parent is always qcow2 */
    if (strcmp(vol->cat.format, format) == 0)
        return 0;
    if (vs_merge_holds(tree, vol))
        return -EBUSY;
    r = vs_node_bdev(tree, vol, &bs);
    if (r < 0)
        return r;
    /* size 0 holds no data (an empty qcow2 image still has its tables) */
    if (atomic_load(&vol->vol->size) > 0 || vol->layers_above > 0)
        return -ENOTEMPTY;
    if (open_count(vol->vol, NULL) > 0)
        return -EBUSY;
    return relayer(tree, vol, format, NULL, 0);
}

/* Does the top layer of BS own any byte (data or zeros)? */
static int
owns_anything(struct vs_bdev *bs, uint64_t size)
{
    for (uint64_t off = 0, pnum; off < size; off += pnum) {
        int st = vs_bdev_block_status(bs, off, size - off, &pnum);
        if (st < 0)
            return st;
        if (st & VS_BS_ALLOCATED)
            return 1;
        if (pnum == 0)
            return -EIO;
    }
    return 0;
}

int
vs_chain_clear_backing(struct vs_tree *tree, struct vs_node *vol)
{
    struct vs_bdev *bs;
    int r;

    if (!vol->cat.backing_id)
        return -ENOENT;
    if ((r = vs_node_check_writable(vol)) < 0)
        return r;
    if (vs_merge_holds(tree, vol))
        return -EBUSY;
    r = vs_node_bdev(tree, vol, &bs);
    if (r == 0)
        r = owns_anything(bs, atomic_load(&vol->vol->size));
    if (r != 0)
        return r > 0 ? -ENOTEMPTY : r;
    if (open_count(vol->vol, NULL) > 0 || vol->layers_above > 0)
        return -EBUSY;
    return relayer(tree, vol, "raw", NULL, 0);
}

/* Open the new top layer X over the current chain, which becomes its
 * backing (read-only from now on, still the same open files). */
static int
open_new_top(struct vs_node *vol, const char *object, struct vs_bdev *old,
             struct vs_bdev **out)
{
    struct vs_bdev *file;
    int r = vs_object_open(vol->domain->store, object, VS_OPEN_DIRECT,
                           vol->vol->label, &file);

    if (r == 0 && (r = vs_format_open("qcow2", file, old, 0, out)) < 0)
        vs_bdev_close(file);
    return r;
}

/* The catalog commit failed after VOL's record already names the snapshot:
 * write VOL's record back as it was (old object, old backing).  If that
 * fails too, the snapshot's PENDING record must stay, so that the next
 * rescan finds VOL based on it and completes it. */
static bool
restore_record(struct vs_tree *tree, struct vs_node *vol)
{
    struct vs_cat_node row = vol->cat;

    if (vs_tree_store_row(tree, vol, &row,
                          vs_tree_volume(tree, row.backing_id)) == 0) {
        vol->cat.generation = row.generation;
        return true;
    }
    vs_log(LOG_ERR,
           "volume '%s': a snapshot could not be recorded in the "
           "catalog; the next rescan completes it",
           vol->vol->label);
    return false;
}

/* The records and rows of a snapshot: S takes VOL's current object and
 * backing; VOL moves onto the new object X, backed by S.  S's record is
 * marked PENDING until complete_snapshot clears it, once VOL's I/O goes on
 * again: a crash in between leaves VOL naming S, and the rescan completes
 * it. */
static int
publish_snapshot(struct vs_tree *tree, struct vs_node *vol, const char *name,
                 const char *new_object, struct vs_node **snap)
{
    struct vs_cat_node srow = vol->cat, vrow = vol->cat;
    bool keep_record = false;
    int r = vs_catalog_begin(tree->cat);

    if (r < 0)
        return r;
    vs_uuid_generate(srow.uuid);
    /* a new node: its own row and its own record slot (copying the live
     * volume's slot would overwrite the live volume's record) */
    srow.id = 0;
    srow.slot = 0;
    srow.generation = 0;
    snprintf(srow.name, sizeof(srow.name), "%s", name);
    srow.created = time(NULL);
    srow.flags = VS_RECF_READONLY | VS_RECF_PENDING;
    r = vs_tree_publish(tree, vol->parent, vol->domain, &srow, snap);
    if (r < 0) {
        vs_catalog_rollback(tree->cat);
        return r;
    }
    snprintf(vrow.object, sizeof(vrow.object), "%s", new_object);
    snprintf(vrow.format, sizeof(vrow.format), "qcow2");
    vrow.backing_id = (*snap)->cat.id;
    r = vs_tree_store_row(tree, vol, &vrow, *snap);
    if (r == 0 && (r = vs_catalog_commit(tree->cat)) < 0)
        keep_record = !restore_record(tree, vol);
    if (r < 0) {
        vs_catalog_rollback(tree->cat);
        vs_tree_forget(tree, *snap, keep_record);
        return r;
    }
    vs_tree_replace_row(tree, vol, &vrow);
    return 0;
}

/* Clear the PENDING mark of snapshot S, whose volume now names it.  It
 * must not outlive that: once the volume is removed (or its backing link
 * undone) nothing names S, and a rescan would take S for a snapshot
 * interrupted before its volume moved onto it, drop its record and remove
 * its object, though S has been a volume of its own, written to, since.
 * Failing, the mark stays for the next rescan, which completes it while
 * the volume still names S. */
static void
complete_snapshot(struct vs_tree *tree, struct vs_node *s)
{
    struct vs_cat_node row = s->cat;
    int r;

    row.flags &= ~(uint32_t)VS_RECF_PENDING;
    r = vs_tree_store_row(tree, s, &row,
                          vs_tree_volume(tree, s->cat.backing_id));
    if (r == 0)
        vs_tree_replace_row(tree, s, &row);
    else
        vs_log(LOG_WARNING,
               "snapshot '%s': its record stays marked pending until the "
               "next rescan: %s",
               s->vol->label, strerror(-r));
}

int
vs_chain_snapshot(struct vs_tree *tree, struct vs_node *vol, const char *name,
                  struct vs_node **out)
{
    struct vs_volume *v = vol->vol;
    char object[VS_UUID_LEN + 1];
    struct vs_bdev *bs, *top = NULL;
    uint64_t size;
    int r = vs_name_check(name);

    if (r < 0)
        return r;
    if ((r = vs_node_check_writable(vol)) < 0)
        return r;
    if (vs_node_child(vol->parent, name))
        return -EEXIST;
    if (vol->layers_above > 0)
        return -EINVAL; /* already a frozen layer */
    if (vs_merge_holds(tree, vol))
        return -EBUSY;
    /* the daemon does not see a passthrough open's writes: it could not
     * hold them off while it swaps the top layer */
    if ((r = vs_passthrough_busy(vol, "snapshot")) < 0)
        return r;
    r = vs_node_bdev(tree, vol, &bs);
    if (r < 0)
        return r;
    /* the new layer names the current object, which does not change, so
     * it is made before I/O is held off; only the size may still grow
     * (then it is made again, below) */
    vs_uuid_generate(object);
    size = atomic_load(&v->size);
    /* VOL's record names the new layer before it exists: a crash before
     * VOL moves onto it leaves a record saying it is to be removed */
    r = vs_tree_mark_pending(tree, vol, object);
    if (r < 0)
        return r;
    r = make_layer(vol->domain->store, object, "qcow2", size, vol, v->label);
    if (r < 0) {
        unmark(tree, vol);
        return r;
    }
    /* no flush here: the old top becomes the new top's backing, and the
     * guest's next flush makes its pending writes durable (see bdev.c) */
    vs_gate_close(&v->io_gate);
    /* Grown meanwhile: make the layer again at the new size.  Growing it
     * would hide what the guest wrote past SIZE in the old top: a truncate
     * up zeroes the part where the backing is longer (qcow2_truncate). */
    if (atomic_load(&v->size) != size &&
        (r = vs_object_remove(vol->domain->store, object)) == 0)
        r = make_layer(vol->domain->store, object, "qcow2",
                       atomic_load(&v->size), vol, v->label);
    if (r == 0)
        r = open_new_top(vol, object, v->bdev, &top);
    if (r < 0)
        vs_object_remove(vol->domain->store, object);
    if (r == 0 && (r = publish_snapshot(tree, vol, name, object, out)) < 0) {
        vs_bdev_detach_backing(top); /* the old chain stays the volume's */
        vs_bdev_close(top);
        vs_object_remove(vol->domain->store, object);
    }
    if (r == 0)
        vs_volume_swap(v, top);
    vs_gate_open(&v->io_gate);
    if (r < 0)
        unmark(tree, vol);
    if (r == 0)
        complete_snapshot(tree, *out);
    return r;
}
