/*
 * A volume that grows while a snapshot of it is being taken, and a block
 * written into the grown part meanwhile (the storm's lost block: it read
 * as zeros, its cluster holding the bytes but its extended-L2 bits saying
 * "zero", after the down merge of the snapshot of a grown clone).
 *
 * vs_chain_snapshot reads the volume's size, makes the new top layer at
 * that size, and only then holds the volume's I/O off to put the layer
 * in place.  In between, the guest may grow the volume (a truncate up,
 * or a write past the end by root) and write into the grown part: those
 * bytes land in the old top, which becomes the snapshot, and the new top
 * must let them show through.
 *
 * The tree (fs/, without FUSE) runs on a "fault:" store over a scratch
 * directory; the first write to the domain's "metadata" object after the
 * snapshot read the size (its record marking the new layer pending) is
 * held, so the guest's grow and write land exactly in that window, as
 * op_write does them: the volume's I/O lock shared, grow, write, flush.
 * Then: the snapshot completes; the volume reads every acknowledged byte;
 * rmdir of the snapshot merges the live volume's (empty) layer down into
 * the snapshot's object; the volume reads them again, and after a
 * restart (the tree closed and opened again) too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "fs.h"
#include "tap.h"
#include "testutil.h"
#include "vs/log.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define BASE_SIZE (1 * MiB)          /* the clone's backing */
#define GROWN (2 * MiB)              /* the clone grown by truncate */
#define LATE_OFF (3 * MiB + 4 * KiB) /* written past the end in the window */
#define BLOCK (4 * KiB)
#define END (LATE_OFF + BLOCK)

static char work[64] = "/var/tmp/vstorfs-test-snapgrow.XXXXXX";
static char root[128], catalog[128];
static struct vs_tree *tree;
static uint8_t ref[END]; /* what the live volume must read */

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 37 + i * 11 + (i >> 9));
}

static struct vs_node *
lookup(const char *name)
{
    struct vs_node *d = vs_node_child(&tree->root, "dom");
    struct vs_node *i = d ? vs_node_child(d, "img") : NULL;

    return !name ? i : i ? vs_node_child(i, name) : NULL;
}

static int
make_dir(struct vs_node *parent, const char *name)
{
    struct vs_node *out;
    int r;

    vs_tree_wrlock(tree);
    r = parent ? vs_tree_mkdir(tree, parent, name, 0755, 0, 0, &out) : -ENOENT;
    vs_tree_unlock(tree);
    return r;
}

/* The volume NAME with its chain open, referenced (the caller unrefs). */
static int
volume_of(const char *name, struct vs_volume **out)
{
    struct vs_node *n;
    struct vs_bdev *bs;
    int r;

    vs_tree_rdlock(tree);
    n = lookup(name);
    r = n ? vs_node_bdev(tree, n, &bs) : -ENOENT;
    if (r == 0) {
        *out = n->vol;
        vs_volume_ref(*out);
    }
    vs_tree_unlock(tree);
    return r;
}

/* What op_write then op_fsync do: grow to the write's end, write, flush,
 * under the volume's I/O lock shared, without the tree's lock. */
static int
guest_write(struct vs_volume *vol, uint64_t off, uint64_t len)
{
    ssize_t n;
    int r;

    fill(ref + off, len, (unsigned)(off / BLOCK));
    vs_gate_enter(&vol->io_gate);
    r = vs_volume_grow(vol, off + len);
    n = r < 0 ? r : vs_bdev_pwrite(vol->bdev, ref + off, len, off);
    r = n < 0 ? (int)n : vs_bdev_flush(vol->bdev);
    vs_gate_leave(&vol->io_gate);
    return r;
}

static int
guest_grow(struct vs_volume *vol, uint64_t size)
{
    int r;

    vs_gate_enter(&vol->io_gate);
    r = vs_volume_grow(vol, size);
    vs_gate_leave(&vol->io_gate);
    return r;
}

/* Whether the live volume reads REF (its size too). */
static bool
reads_ref(const char *when)
{
    struct vs_volume *vol;
    bool same;
    int r = volume_of("live", &vol);

    if (r < 0) {
        tap_diag("%s: the volume does not open: %s", when, strerror(-r));
        return false;
    }
    vs_gate_enter(&vol->io_gate);
    same = atomic_load(&vol->size) == END && tu_same(vol->bdev, ref, END);
    vs_gate_leave(&vol->io_gate);
    vs_volume_unref(vol);
    return same;
}

static int
open_tree(void)
{
    return vs_tree_open(work, root, catalog, 0, &tree);
}

/* A raw base of BASE_SIZE, a clone of it with a block of its own, grown
 * to GROWN by truncate (the storm's "snapshot of a grown clone"). */
static int
setup(void)
{
    struct vs_volume *vol;
    int r = make_dir(&tree->root, "dom");

    if (r == 0)
        r = make_dir(vs_node_child(&tree->root, "dom"), "img");
    if (r == 0)
        r = make_dir(lookup(NULL), "base");
    if (r == 0 && (r = volume_of("base", &vol)) == 0) {
        r = guest_write(vol, 0, BASE_SIZE);
        vs_volume_unref(vol);
    }
    if (r == 0)
        r = make_dir(lookup(NULL), "live");
    if (r == 0) {
        vs_tree_wrlock(tree);
        r = vs_chain_set_backing(tree, lookup("live"), lookup("base"));
        vs_tree_unlock(tree);
    }
    if (r == 0 && (r = volume_of("live", &vol)) == 0) {
        r = guest_write(vol, 64 * KiB, BLOCK);
        if (r == 0)
            r = guest_grow(vol, GROWN);
        vs_volume_unref(vol);
    }
    return r;
}

static void *
snapshot_thread(void *arg)
{
    struct vs_node *out;
    int *r = arg;

    vs_tree_wrlock(tree);
    *r = vs_chain_snapshot(tree, lookup("live"), "snap", &out);
    vs_tree_unlock(tree);
    return NULL;
}

/* The snapshot, with the guest growing the volume and writing past its
 * old end while the new layer is being made. */
static int
race_snapshot(void)
{
    struct vs_volume *vol;
    pthread_t t;
    int snap_r = -EINPROGRESS, write_r, hold;
    int r = volume_of("live", &vol);

    if (r < 0)
        return r;
    hold = fault_add(&(struct fault_rule){.object = "metadata",
                                          .ops = FAULT_WRITE,
                                          .mode = FAULT_HANG,
                                          .nth = 1});
    if (hold < 0 || pthread_create(&t, NULL, snapshot_thread, &snap_r) != 0) {
        vs_volume_unref(vol);
        return -ENOMEM;
    }
    ok(fault_wait_hung(hold, 1, 10000),
       "the snapshot is held after it read the volume's size");
    write_r = guest_write(vol, LATE_OFF, BLOCK);
    fault_release(hold);
    pthread_join(t, NULL);
    fault_clear();
    vs_volume_unref(vol);
    is_int(write_r, 0, "the guest grew the volume and wrote past its old end");
    is_int(snap_r, 0, "the snapshot is taken");
    return write_r < 0 ? write_r : snap_r;
}

static void
merge_snapshot(void)
{
    char snap_object[VS_OBJECT_MAX + 1];
    int r;

    vs_tree_wrlock(tree);
    snprintf(snap_object, sizeof(snap_object), "%s",
             lookup("snap")->cat.object);
    r = vs_tree_rmdir(tree, lookup("snap"));
    vs_tree_unlock(tree);
    while (vs_merge_any_running())
        usleep(1000);
    is_int(r, 0, "rmdir of the snapshot starts its merge");
    vs_tree_rdlock(tree);
    ok(!lookup("snap") && strcmp(lookup("live")->cat.object, snap_object) == 0,
       "the merge went down: the volume took the snapshot's object");
    vs_tree_unlock(tree);
}

int
main(void)
{
    int r;

    vs_log_set_level(getenv("VS_TEST_LOG") ? LOG_DEBUG : LOG_ERR);
    if (!mkdtemp(work)) {
        perror(work);
        return 1;
    }
    snprintf(root, sizeof(root), "fault:dir:%s/domains", work);
    snprintf(catalog, sizeof(catalog), "%s/catalog.db", work);
    r = fault_register();
    if (r == 0)
        r = mkdir(root + strlen("fault:dir:"), 0700) < 0 ? -errno : 0;
    if (r == 0)
        r = open_tree();
    if (r == 0)
        r = setup();
    ok(r == 0, "a raw base, a clone of it with a block, grown by truncate (%s)",
       r < 0 ? strerror(-r) : "ok");
    if (r == 0)
        r = race_snapshot();
    if (r == 0) {
        ok(reads_ref("after the snapshot"),
           "after the snapshot the volume reads every acknowledged byte");
        merge_snapshot();
        ok(reads_ref("after the merge"),
           "after the merge down it reads them too");
        vs_tree_close(tree);
        tree = NULL;
        r = open_tree();
        is_int(r, 0, "the tree opens again");
    }
    if (r == 0)
        ok(reads_ref("after a restart"), "and after a restart");
    vs_merge_stop_all();
    if (tree)
        vs_tree_close(tree);
    tu_rm_tree(work);
    return tap_done();
}
