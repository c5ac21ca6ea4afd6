/*
 * The end of a merge (merge.c has the design): C is switched onto its new
 * chain and V removed, in an order a crash at any step leaves repairable,
 * and every open chain that read through the changed layers is reopened.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "merge_job.h"
#include "vs/log.h"
#include "vs/names.h"

/* With C's I/O held off: open C's chain as ROW describes it, then store
 * ROW (record, catalog) and put the chain in place.  Opening first means a
 * layer that will not open changes nothing durable: C keeps writing where
 * its record says, and the merge resumes at the next start. */
static int
store_and_swap(struct vs_tree *tree, struct vs_node *c,
               const struct vs_cat_node *row, struct vs_node *p,
               const char *retired)
{
    struct vs_cat_node stored = *row;
    struct vs_bdev *fresh;
    int r = vs_tree_open_chain_as(tree, c, row, VS_OPEN_DIRECT, &fresh);

    if (r == 0 &&
        (r = vs_tree_store_row_marked(tree, c, &stored, p, NULL, retired)) < 0)
        vs_bdev_close(fresh);
    if (r < 0)
        return r;
    vs_tree_replace_row(tree, c, &stored);
    vs_bdev_close(vs_volume_swap(c->vol, fresh));
    return 0;
}

static int
switch_child(struct vs_job *job, struct vs_tree *tree, struct vs_node *c,
             struct vs_node *p)
{
    struct vs_cat_node row = c->cat;
    int r;

    row.backing_id = p ? p->cat.id : 0;
    vs_gate_close(&c->vol->io_gate);
    r = vs_bdev_flush(c->vol->bdev);
    /* C's image first (for tools reading the backend; our records decide),
     * then its record.  A crash between the two leaves the record on V,
     * whose merge resumes and ends here again, and both name a layer that
     * reads the same; the other order could leave the image naming V once
     * V is removed, and qemu-img could no longer open C. */
    if (r == 0 &&
        (r = vs_bdev_set_backing(c->vol->bdev, p ? p->cat.object : NULL,
                                 p ? p->cat.format : NULL)) < 0)
        merge_fail(job, r,
                   "volume '%s': cannot name its new backing layer in its "
                   "image: %s",
                   c->vol->label, strerror(-r));
    if (r == 0 && (r = store_and_swap(tree, c, &row, p, NULL)) < 0)
        merge_fail(job, r,
                   "volume '%s': its new chain cannot be recorded or "
                   "opened: %s",
                   c->vol->label, strerror(-r));
    vs_gate_open(&c->vol->io_gate);
    return r;
}

/* Reopen N's chain: its cached copies of the layers below are stale once a
 * merge wrote into one of them. */
static int
refresh_chain(struct vs_tree *tree, struct vs_node *n)
{
    struct vs_bdev *fresh;
    int r;

    vs_gate_close(&n->vol->io_gate);
    r = vs_bdev_flush(n->vol->bdev);
    if (r == 0)
        r = vs_tree_open_chain(tree, n, VS_OPEN_DIRECT, &fresh);
    if (r == 0)
        vs_bdev_close(vs_volume_swap(n->vol, fresh));
    vs_gate_open(&n->vol->io_gate);
    return r;
}

/* Every open chain that reads through C (C's own was reopened already). */
static int
refresh_above(struct vs_tree *tree, struct vs_node *c)
{
    int r = 0;

    for (size_t i = 0; i < tree->hash_size && r == 0; i++)
        for (struct vs_node *n = tree->hash[i]; n && r == 0; n = n->hash_next)
            if (n != c && n->cat.kind == VS_NODE_VOLUME && n->vol->bdev &&
                vs_tree_in_chain(tree, n, c->cat.id))
                r = refresh_chain(tree, n);
    return r;
}

/* Tell the kernel, outside every lock, that the merged layer's entry and
 * the child's backing link changed (it may hold them for an hour). */
static void
notify_kernel(int64_t image_id, const char *name, int64_t child_id)
{
    if (!vs_session)
        return;
    fuse_lowlevel_notify_inval_entry(vs_session, VS_INO(image_id, VS_PART_DIR),
                                     name, strlen(name));
    fuse_lowlevel_notify_inval_entry(vs_session, VS_INO(child_id, VS_PART_DIR),
                                     VS_PART_BACKING, strlen(VS_PART_BACKING));
}

int
merge_finish_up(struct vs_job *job)
{
    struct vs_tree *tree = job->tree;
    struct vs_node *v, *c, *p;
    int r;

    char name[VS_NAME_MAX + 1] = "";
    int64_t image_id = 0;

    vs_tree_wrlock(tree);
    v = vs_tree_volume(tree, job->v_id);
    c = vs_tree_volume(tree, job->c_id);
    p = job->p_id ? vs_tree_volume(tree, job->p_id) : NULL;
    r = v && c && (p || !job->p_id) ? switch_child(job, tree, c, p) : -ENOENT;
    if (r == 0) {
        snprintf(name, sizeof(name), "%s", v->cat.name);
        image_id = v->cat.parent_id;
        r = vs_tree_remove(tree, v);
    }
    if (r == 0) {
        atomic_store(&job->switched, true);
        r = refresh_above(tree, c);
    }
    vs_tree_unlock(tree);
    if (r == 0)
        notify_kernel(image_id, name, job->c_id);
    return r;
}

/* Down: the layers based on C name its object in their images (for
 * tools reading the backend); name the one C is taking over.  Its bytes
 * are already what C reads, so a crash before C's record moves leaves them
 * naming a layer that reads the same.  Tree locked for writing. */
static int
rename_in_children(struct vs_job *job, struct vs_tree *tree, struct vs_node *c,
                   const struct vs_node *v)
{
    int r = 0;

    for (size_t i = 0; i < tree->hash_size && r == 0; i++) {
        for (struct vs_node *x = tree->hash[i]; x && r == 0; x = x->hash_next) {
            struct vs_bdev *bs;
            if (x->cat.kind != VS_NODE_VOLUME || x->cat.backing_id != c->cat.id)
                continue;
            r = vs_node_bdev(tree, x, &bs);
            if (r < 0)
                break;
            vs_gate_close(&x->vol->io_gate);
            r = vs_bdev_set_backing(x->vol->bdev, v->cat.object, v->cat.format);
            vs_gate_open(&x->vol->io_gate);
            if (r < 0)
                merge_fail(job, r,
                           "volume '%s': cannot name its backing's new "
                           "object in its image: %s",
                           x->vol->label, strerror(-r));
        }
    }
    return r;
}

/* Down, at the end: with C's I/O held off, copy what is left, then give C
 * V's object: C's record names it (and V's backing) and retires C's old
 * object, C's chain is reopened on it, then V's record and C's old object
 * go.  A crash after C's record was written leaves V's record naming the
 * same object: the rescan drops that record but keeps the object, and
 * removes the old object C's record retired. */
int
merge_finish_down(struct vs_job *job, struct vs_bdev **vdst)
{
    struct vs_tree *tree = job->tree;
    char old_object[VS_OBJECT_MAX + 1], name[VS_NAME_MAX + 1] = "";
    struct vs_node *v, *c, *p;
    struct vs_cat_node row;
    int64_t image_id = 0;
    void *buf = malloc(CHUNK);
    int r = buf ? 0 : -ENOMEM;

    vs_tree_wrlock(tree);
    v = vs_tree_volume(tree, job->v_id);
    c = vs_tree_volume(tree, job->c_id);
    p = job->p_id ? vs_tree_volume(tree, job->p_id) : NULL;
    if (r == 0 && !(v && c && (p || !job->p_id)))
        r = -ENOENT;
    if (r < 0) {
        vs_tree_unlock(tree);
        free(buf);
        return r;
    }
    vs_gate_close(&c->vol->io_gate);
    r = merge_copy_rest(job, c->vol, *vdst, buf);
    if (r == 0)
        r = vs_bdev_flush(*vdst);
    vs_bdev_close(*vdst); /* C opens that object next, for writing */
    *vdst = NULL;
    if (r == 0)
        r = rename_in_children(job, tree, c, v);
    row = c->cat;
    snprintf(old_object, sizeof(old_object), "%s", c->cat.object);
    snprintf(row.object, sizeof(row.object), "%s", v->cat.object);
    snprintf(row.format, sizeof(row.format), "%s", v->cat.format);
    row.backing_id = job->p_id;
    /* C's record retires its old object: a crash before it is removed
     * leaves a record saying so */
    if (r == 0 && (r = store_and_swap(tree, c, &row, p, old_object)) < 0)
        merge_fail(job, r,
                   "volume '%s': its new chain cannot be recorded or "
                   "opened: %s",
                   c->vol->label, strerror(-r));
    free((void *)atomic_exchange(&c->vol->dirty, NULL));
    c->vol->dirty_chunks = 0;
    vs_gate_open(&c->vol->io_gate);
    if (r == 0) {
        snprintf(name, sizeof(name), "%s", v->cat.name);
        image_id = v->cat.parent_id;
        vs_tree_forget(tree, v, false);
        atomic_store(&job->switched, true);
        if (vs_object_remove(c->domain->store, old_object) < 0)
            vs_log(LOG_WARNING,
                   "volume '%s': its old object '%s' stays until the next "
                   "start",
                   c->vol->label, old_object);
        r = refresh_above(tree, c);
    }
    vs_tree_unlock(tree);
    free(buf);
    if (r == 0)
        notify_kernel(image_id, name, job->c_id);
    return r;
}
