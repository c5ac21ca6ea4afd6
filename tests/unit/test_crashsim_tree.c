/*
 * The whole tree on the crash simulator: a power loss at every instant of
 * a sequence of namespace and chain operations leaves storage that the
 * next start turns into a consistent view, with nothing flushed lost.
 *
 * The tree (fs/) runs unchanged with its domains on "crashsim:" stores:
 * mkdir of a domain, an image and a raw base volume; writes; a live
 * snapshot; growing the live volume past its backing; a thin clone (mkdir,
 * then the backing link); a discard; a second snapshot; a merge of a middle
 * layer (rmdir, a background job copying 1 MiB steps over 4 MiB); the
 * removal of a leaf volume; the merge of the base layer.  Each operation
 * ends with a flush of the volumes it wrote, and a model of what every
 * volume reads is kept after each one.
 *
 * Then, for every instant of the run (every event of every disk, and every
 * object made or removed), the stores are rebuilt as a power loss then
 * leaves them: in order (everything before the instant kept) at every
 * instant, and, where the next event is a barrier (a flush, a name change),
 * also with everything not yet flushed dropped, and in random subsets with
 * torn writes.  The catalog is taken as SQLite had last committed it at
 * that instant (copied by the hook the simulator calls after each event).
 * For each state the tree is opened on it (which rescans) and:
 *   1. the catalog rows, the domain's records and the tree agree (same
 *      uuids, names, parents, objects, formats, backings), and no record is
 *      left PENDING or REMOVING;
 *   2. the domain's objects are exactly "metadata" and the records' objects
 *      (a leftover of an interrupted creation is removed by the rescan);
 *   3. each qcow2 layer's header names its record's backing object, and
 *      `qemu-img check` finds no corruption in it (leaks allowed; run once
 *      per distinct image);
 *   4. each volume that exists in the model before or after the
 *      interrupted operation exists, with that model's size and backing,
 *      and reads, sector by sector, what one of the two models reads (a
 *      volume in both must exist; at the end of an operation the state must
 *      be the model after it, exactly);
 *   5. a merge a record says was under way is resumed and, once it ended,
 *      checks 1-4 hold again.
 * Last, an error path: a merge down whose switch cannot open the child's
 * new layer (the simulator fails that open) must leave the child's record
 * where the guest's later writes go, and resume at the next start.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crashsim.h"
#include "fs.h"
#include "tap.h"
#include "testutil.h"
#include "vs/log.h"
#include "vs/names.h"
#include "vs/record.h"

#define VOL_MAX (4u << 20) /* the largest a volume grows to */
#define MIB (1u << 20)
#define SECTOR 512
#define MAX_VOLS 8
#define MAX_OPS 24
#define ROOT CRASHSIM_SCHEME "root"
#define RANDOM_FATES 6
#define MAX_DIAGS 40

/* ---- the model ---- */

struct mvol {
    bool present;
    char image[VS_NAME_MAX + 1], name[VS_NAME_MAX + 1];
    char backing[VS_NAME_MAX + 1]; /* the parent volume's name, "" none */
    uint64_t size;
    uint8_t *data; /* VOL_MAX bytes */
};

struct model {
    struct mvol v[MAX_VOLS];
};

struct op {
    char what[64];
    uint64_t start, end; /* instants [start, end) it ran */
};

static struct model models[MAX_OPS + 1]; /* models[k]: after op k */
static struct op ops[MAX_OPS + 1];
static int nops;
static struct vs_tree *tree;
static char work_dir[] = "/tmp/vs-crashsim-tree-XXXXXX";
static char catalog_path[256];
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static struct mvol *
mvol_find(struct model *m, const char *image, const char *name)
{
    for (int i = 0; i < MAX_VOLS; i++)
        if (m->v[i].present && strcmp(m->v[i].image, image) == 0 &&
            strcmp(m->v[i].name, name) == 0)
            return &m->v[i];
    return NULL;
}

static struct mvol *
mvol_add(struct model *m, const char *image, const char *name)
{
    for (int i = 0; i < MAX_VOLS; i++) {
        struct mvol *v = &m->v[i];

        if (v->present)
            continue;
        v->present = true;
        snprintf(v->image, sizeof(v->image), "%s", image);
        snprintf(v->name, sizeof(v->name), "%s", name);
        v->backing[0] = '\0';
        v->size = 0;
        if (!v->data)
            v->data = calloc(1, VOL_MAX);
        else
            memset(v->data, 0, VOL_MAX);
        return v->data ? v : NULL;
    }
    return NULL;
}

static void
model_copy(struct model *dst, const struct model *src)
{
    for (int i = 0; i < MAX_VOLS; i++) {
        uint8_t *keep = dst->v[i].data;

        dst->v[i] = src->v[i];
        dst->v[i].data = keep;
        if (src->v[i].data) {
            if (!dst->v[i].data)
                dst->v[i].data = malloc(VOL_MAX);
            if (dst->v[i].data)
                memcpy(dst->v[i].data, src->v[i].data, VOL_MAX);
        }
    }
}

/* ---- the catalog as committed at each instant ---- */

struct cat_snap {
    uint64_t from; /* valid for cuts at or after this instant */
    char path[300];
};

static struct cat_snap *snaps;
static size_t nsnaps, snaps_cap;
static sqlite3 *cat_reader;
static int64_t cat_version = -1;
static bool hook_failed;

static int64_t
data_version(void)
{
    sqlite3_stmt *st;
    int64_t v = -1;

    if (sqlite3_prepare_v2(cat_reader, "PRAGMA data_version", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Copy the catalog as last committed, valid from instant FROM, if it
 * changed since the last copy. */
static void
snap_catalog(uint64_t from)
{
    int64_t v = data_version();
    struct cat_snap *s;
    char *sql;

    if (v == cat_version && nsnaps > 0)
        return;
    if (nsnaps == snaps_cap) {
        size_t cap = snaps_cap ? snaps_cap * 2 : 64;
        struct cat_snap *p = realloc(snaps, cap * sizeof(*p));

        if (!p) {
            hook_failed = true;
            return;
        }
        snaps = p;
        snaps_cap = cap;
    }
    s = &snaps[nsnaps];
    s->from = from;
    snprintf(s->path, sizeof(s->path), "%s/cat-%zu.db", work_dir, nsnaps);
    sql = sqlite3_mprintf("VACUUM INTO %Q", s->path);
    if (!sql || sqlite3_exec(cat_reader, sql, NULL, NULL, NULL) != SQLITE_OK) {
        hook_failed = true;
        tap_diag("catalog copy failed: %s", sqlite3_errmsg(cat_reader));
    } else {
        nsnaps++;
        cat_version = v;
    }
    sqlite3_free(sql);
}

/* After event SEQ: what SQLite committed before it is the catalog of a
 * power loss at any later instant, until the next commit. */
static void
on_event(uint64_t seq, void *arg)
{
    (void)arg;
    snap_catalog(seq);
}

static const char *
catalog_at(uint64_t cut)
{
    const char *path = NULL;

    for (size_t i = 0; i < nsnaps && snaps[i].from <= cut; i++)
        path = snaps[i].path;
    return path;
}

/* ---- driving the tree ---- */

static struct vs_node *
lookup(const char *image, const char *name)
{
    struct vs_node *d = vs_node_child(&tree->root, "dom");
    struct vs_node *i = d && image ? vs_node_child(d, image) : d;

    return i && name ? vs_node_child(i, name) : i;
}

static int
do_mkdir(const char *image, const char *name)
{
    struct vs_node *parent, *out;
    int r;

    vs_tree_wrlock(tree);
    parent = !image  ? &tree->root
             : !name ? lookup(NULL, NULL)
                     : lookup(image, NULL);
    r = parent ? vs_tree_mkdir(tree, parent,
                               name    ? name
                               : image ? image
                                       : "dom",
                               0755, 0, 0, &out)
               : -ENOENT;
    vs_tree_unlock(tree);
    return r;
}

/* The volume's chain opened and referenced (the caller unrefs). */
static int
volume_of(const char *image, const char *name, struct vs_volume **out)
{
    struct vs_node *n;
    struct vs_bdev *bs;
    int r;

    vs_tree_rdlock(tree);
    n = lookup(image, name);
    r = n ? vs_node_bdev(tree, n, &bs) : -ENOENT;
    if (r == 0) {
        *out = n->vol;
        vs_volume_ref(*out);
    }
    vs_tree_unlock(tree);
    return r;
}

enum io_kind { IO_WRITE, IO_DISCARD, IO_GROW, IO_FLUSH };

static int
do_io(const char *image, const char *name, enum io_kind kind, uint64_t off,
      const void *buf, size_t len)
{
    struct vs_volume *vol = NULL;
    int r = volume_of(image, name, &vol);

    if (r < 0)
        return r;
    vs_gate_enter(&vol->io_gate);
    if (kind == IO_WRITE) {
        r = vs_volume_grow(vol, off + len);
        if (r == 0) {
            ssize_t n = vs_bdev_pwrite(vol->bdev, buf, len, off);
            r = n < 0 ? (int)n : 0;
        }
    } else if (kind == IO_DISCARD) {
        r = vs_bdev_discard(vol->bdev, off, len);
    } else if (kind == IO_GROW) {
        r = vs_volume_grow(vol, off);
    }
    if (r == 0)
        r = vs_bdev_flush(vol->bdev);
    vs_gate_leave(&vol->io_gate);
    vs_volume_unref(vol);
    return r;
}

/* ---- the sequence ---- */

static struct model *cur;

static void op_begin(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void
op_begin(const char *fmt, ...)
{
    va_list ap;

    nops++;
    va_start(ap, fmt);
    vsnprintf(ops[nops].what, sizeof(ops[nops].what), fmt, ap);
    va_end(ap);
    model_copy(&models[nops], &models[nops - 1]);
    cur = &models[nops];
    snap_catalog(crashsim_now());
    ops[nops].start = crashsim_now();
}

static bool
op_end(int r)
{
    snap_catalog(crashsim_now());
    ops[nops].end = crashsim_now();
    if (r < 0)
        tap_diag("op %d (%s): %s", nops, ops[nops].what, strerror(-r));
    return r == 0;
}

static bool
step_mkdir(const char *image, const char *name)
{
    op_begin("mkdir %s%s%s", image ? image : "dom", name ? "/" : "",
             name ? name : "");
    if (name && !mvol_add(cur, image, name))
        return false;
    return op_end(do_mkdir(image, name));
}

static bool
step_write(const char *image, const char *name, const uint64_t *offs,
           const uint32_t *lens, int n)
{
    struct mvol *v = mvol_find(&models[nops], image, name);
    int r = 0;

    op_begin("write %s/%s (%d ranges)", image, name, n);
    v = mvol_find(cur, image, name);
    if (!v)
        return false;
    for (int i = 0; i < n && r == 0; i++) {
        uint8_t *buf = malloc(lens[i]);

        if (!buf)
            return false;
        for (uint32_t j = 0; j < lens[i]; j += 8) {
            uint64_t x = rng();
            memcpy(buf + j, &x, lens[i] - j < 8 ? lens[i] - j : 8);
        }
        r = do_io(image, name, IO_WRITE, offs[i], buf, lens[i]);
        memcpy(v->data + offs[i], buf, lens[i]);
        if (offs[i] + lens[i] > v->size)
            v->size = offs[i] + lens[i];
        free(buf);
    }
    return op_end(r);
}

static bool
step_discard(const char *image, const char *name, uint64_t off, uint32_t len)
{
    struct mvol *v;

    op_begin("discard %s/%s", image, name);
    v = mvol_find(cur, image, name);
    if (!v)
        return false;
    memset(v->data + off, 0, len);
    return op_end(do_io(image, name, IO_DISCARD, off, NULL, len));
}

static bool
step_grow(const char *image, const char *name, uint64_t size)
{
    struct mvol *v;

    op_begin("grow %s/%s to %" PRIu64, image, name, size);
    v = mvol_find(cur, image, name);
    if (!v)
        return false;
    v->size = size;
    return op_end(do_io(image, name, IO_GROW, size, NULL, 0));
}

static bool
step_snapshot(const char *image, const char *name, const char *snap)
{
    struct mvol *v, *s;
    struct vs_node *n, *out;
    int r;

    op_begin("snapshot %s/%s as %s", image, name, snap);
    v = mvol_find(cur, image, name);
    s = mvol_add(cur, image, snap);
    if (!v || !s)
        return false;
    /* mvol_add may not move v: the array is fixed */
    memcpy(s->data, v->data, VOL_MAX);
    s->size = v->size;
    snprintf(s->backing, sizeof(s->backing), "%s", v->backing);
    snprintf(v->backing, sizeof(v->backing), "%s", snap);
    vs_tree_wrlock(tree);
    n = lookup(image, name);
    r = n ? vs_chain_snapshot(tree, n, snap, &out) : -ENOENT;
    vs_tree_unlock(tree);
    if (r == 0)
        r = do_io(image, name, IO_FLUSH, 0, NULL, 0);
    return op_end(r);
}

static bool
step_link(const char *image, const char *name, const char *pimage,
          const char *pname)
{
    struct mvol *v, *p;
    struct vs_node *n, *pn;
    int r;

    op_begin("ln -s %s/%s %s/%s/backing", pimage, pname, image, name);
    v = mvol_find(cur, image, name);
    p = mvol_find(cur, pimage, pname);
    if (!v || !p)
        return false;
    memcpy(v->data, p->data, VOL_MAX);
    v->size = p->size;
    snprintf(v->backing, sizeof(v->backing), "%s", pname);
    vs_tree_wrlock(tree);
    n = lookup(image, name);
    pn = lookup(pimage, pname);
    r = n && pn ? vs_chain_set_backing(tree, n, pn) : -ENOENT;
    vs_tree_unlock(tree);
    return op_end(r);
}

/* rmdir: of a leaf, or of a layer (a merge, waited for). */
static bool
step_rmdir(const char *image, const char *name)
{
    struct mvol *v;
    struct vs_node *n;
    int r;

    op_begin("rmdir %s/%s", image, name);
    v = mvol_find(cur, image, name);
    if (!v)
        return false;
    for (int i = 0; i < MAX_VOLS; i++)
        if (cur->v[i].present && strcmp(cur->v[i].image, image) == 0 &&
            strcmp(cur->v[i].backing, name) == 0)
            snprintf(cur->v[i].backing, sizeof(cur->v[i].backing), "%s",
                     v->backing);
    v->present = false;
    vs_tree_wrlock(tree);
    n = lookup(image, name);
    r = n ? vs_tree_rmdir(tree, n) : -ENOENT;
    vs_tree_unlock(tree);
    while (r == 0 && vs_merge_any_running())
        usleep(1000);
    return op_end(r);
}

static bool
run_sequence(void)
{
    static const uint64_t w1o[] = {0};
    static const uint32_t w1l[] = {3 * MIB};
    static const uint64_t w2o[] = {8192, 196608, 716800, 3 * MIB + 4096};
    static const uint32_t w2l[] = {4096, 65536, 102400, 8192};
    static const uint64_t w3o[] = {4096, 327680, 2 * MIB + 1000};
    static const uint32_t w3l[] = {12288, 70000, 5000};
    static const uint64_t w4o[] = {0, 300000, MIB + 65536, 3 * MIB + 512};
    static const uint32_t w4l[] = {65536, 200000, 131072, 4096};
    static const uint64_t w5o[] = {524288, 3 * MIB + 65536};
    static const uint32_t w5l[] = {131072, 65536};
    static const uint64_t w6o[] = {2 * MIB - 4096};
    static const uint32_t w6l[] = {8192};

    /* the merges copy several 1 MiB steps: writes are spread over 4 MiB */
    return step_mkdir(NULL, NULL) && step_mkdir("img", NULL) &&
           step_mkdir("img", "base") &&
           step_write("img", "base", w1o, w1l, 1) &&
           step_snapshot("img", "base", "s1") &&
           step_grow("img", "base", VOL_MAX) &&
           step_write("img", "base", w2o, w2l, 4) && step_mkdir("img2", NULL) &&
           step_mkdir("img2", "c1") && step_link("img2", "c1", "img", "s1") &&
           step_write("img2", "c1", w3o, w3l, 3) &&
           step_discard("img", "base", 262144, 131072) &&
           step_snapshot("img", "base", "s2") &&
           step_write("img", "base", w4o, w4l, 4) && step_rmdir("img", "s2") &&
           step_rmdir("img2", "c1") && step_write("img", "base", w5o, w5l, 2) &&
           step_snapshot("img", "base", "s3") &&
           step_write("img", "base", w6o, w6l, 1) && step_rmdir("img", "s1");
}

/* ---- judging one state ---- */

struct stats {
    unsigned states, in_order, reordered, resumed, failed, qemu_checked;
    unsigned qemu_cached;
};

static struct stats stats;
static int diags;

static void fail(const char *state, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail(const char *state, const char *fmt, ...)
{
    va_list ap;
    char msg[512];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (diags++ < MAX_DIAGS)
        tap_diag("%s: %s", state, msg);
}

struct rec_list {
    struct vs_record r[64];
    int n;
};

static int
keep_rec(const struct vs_record *rec, void *arg)
{
    struct rec_list *l = arg;

    if (l->n < 64)
        l->r[l->n++] = *rec;
    return 0;
}

static const struct vs_record *
rec_by_uuid(const struct rec_list *l, const char *uuid)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->r[i].uuid, uuid) == 0)
            return &l->r[i];
    return NULL;
}

struct cat_check {
    const struct rec_list *recs;
    const char *state;
    int rows;
    bool good;
};

static int
check_row(const struct vs_cat_node *row, void *arg)
{
    struct cat_check *c = arg;
    const struct vs_record *rec = rec_by_uuid(c->recs, row->uuid);
    struct vs_node *node = vs_tree_node(tree, VS_INO(row->id, VS_PART_DIR));
    struct vs_node *parent =
        row->parent_id ? vs_tree_node(tree, VS_INO(row->parent_id, 0)) : NULL;
    struct vs_node *backing =
        row->backing_id ? vs_tree_node(tree, VS_INO(row->backing_id, 0)) : NULL;

    c->rows++;
    if (!rec || !node) {
        fail(c->state, "row %s '%s': %s", row->uuid, row->name,
             !rec ? "no record" : "no node");
        c->good = false;
        return 0;
    }
    if (strcmp(rec->name, row->name) != 0 || (int)rec->kind != (int)row->kind ||
        (parent && strcmp(rec->parent_uuid, parent->cat.uuid) != 0) ||
        (row->kind == VS_NODE_VOLUME &&
         (strcmp(rec->object, row->object) != 0 ||
          strcmp(rec->format, row->format) != 0 ||
          strcmp(rec->backing_uuid, backing ? backing->cat.uuid : "") != 0 ||
          rec->flags != row->flags))) {
        fail(c->state, "row '%s' and its record disagree", row->name);
        c->good = false;
    }
    if (rec->flags & (VS_RECF_PENDING | VS_RECF_REMOVING)) {
        fail(c->state, "record '%s' still flagged %#x after the rescan",
             rec->name, rec->flags);
        c->good = false;
    }
    return 0;
}

struct obj_check {
    const struct rec_list *recs;
    const char *state;
    int objects;
    bool good;
};

static int
check_object(const char *name, void *arg)
{
    struct obj_check *c = arg;
    bool named = strcmp(name, "metadata") == 0;

    for (int i = 0; i < c->recs->n && !named; i++)
        named = c->recs->r[i].kind == VS_REC_VOLUME &&
                strcmp(c->recs->r[i].object, name) == 0;
    c->objects++;
    if (!named) {
        fail(c->state, "object '%s' is named by no record", name);
        c->good = false;
    }
    return 0;
}

/* The backing name in a qcow2 header ("" for none), from the object. */
static int
header_backing(struct vs_store *st, const char *object, char *out, size_t len)
{
    struct vs_bdev *bs;
    uint8_t h[24];
    uint64_t off = 0;
    uint32_t size = 0;
    int r = vs_object_open(st, object, VS_OPEN_RDONLY, object, &bs);

    if (r < 0)
        return r;
    if (vs_bdev_pread(bs, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        r = -EIO;
    for (int i = 0; r == 0 && i < 8; i++)
        off = off << 8 | h[8 + i];
    for (int i = 0; r == 0 && i < 4; i++)
        size = size << 8 | h[16 + i];
    out[0] = '\0';
    if (r == 0 && off &&
        (size >= len || vs_bdev_pread(bs, out, size, off) != (ssize_t)size))
        r = -EIO;
    if (r == 0 && off)
        out[size] = '\0';
    vs_bdev_close(bs);
    return r;
}

/* qemu-img check verdicts by image hash. */
static uint64_t *checked;
static size_t nchecked, checked_cap;

static bool
already_checked(uint64_t h)
{
    for (size_t i = 0; i < nchecked; i++)
        if (checked[i] == h)
            return true;
    return false;
}

static void
remember_checked(uint64_t h)
{
    if (nchecked == checked_cap) {
        size_t cap = checked_cap ? checked_cap * 2 : 256;
        uint64_t *p = realloc(checked, cap * sizeof(*p));
        if (!p)
            return;
        checked = p;
        checked_cap = cap;
    }
    checked[nchecked++] = h;
}

/* Write every object of ST into DIR (so relative backing names resolve),
 * then qemu-img check each qcow2 object not seen before. */
static bool
qemu_check_store(struct vs_store *st, const struct rec_list *recs,
                 const char *state)
{
    char dir[300], path[600], cmd[800];
    bool good = true, wrote = false;

    snprintf(dir, sizeof(dir), "%s/state", work_dir);
    for (int i = 0; i < recs->n; i++) {
        const struct vs_record *rec = &recs->r[i];
        struct crashsim_disk *d;
        struct crashsim_image img = {0};
        uint64_t h;
        int rc;

        if (rec->kind != VS_REC_VOLUME || strcmp(rec->format, "qcow2") != 0)
            continue;
        d = crashsim_store_disk(st, rec->object);
        if (!d || crashsim_current(d, &img) < 0)
            continue;
        h = crashsim_hash(img.data, img.size, 7);
        crashsim_image_free(&img);
        if (already_checked(h)) {
            stats.qemu_cached++;
            continue;
        }
        if (!wrote) {
            mkdir(dir, 0700);
            for (int j = 0; j < recs->n; j++) {
                struct crashsim_disk *o;
                FILE *f;

                if (recs->r[j].kind != VS_REC_VOLUME)
                    continue;
                o = crashsim_store_disk(st, recs->r[j].object);
                if (!o || crashsim_current(o, &img) < 0)
                    continue;
                snprintf(path, sizeof(path), "%s/%s", dir, recs->r[j].object);
                f = fopen(path, "wb");
                if (f) {
                    if (img.size)
                        fwrite(img.data, 1, img.size, f);
                    fclose(f);
                }
                crashsim_image_free(&img);
            }
            wrote = true;
        }
        snprintf(cmd, sizeof(cmd),
                 "qemu-img check -f qcow2 '%s/%s' >/dev/null 2>&1", dir,
                 rec->object);
        rc = system(cmd);
        rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        stats.qemu_checked++;
        if (rc != 0 && rc != 3) {
            fail(state, "qemu-img check of layer '%s' exits %d", rec->name, rc);
            good = false;
        } else {
            remember_checked(h);
        }
    }
    return good;
}

static int
count_store(const char *name, void *arg)
{
    (void)name;
    ++*(int *)arg;
    return 0;
}

/* Checks 1-3 for the domain; fills RECS. */
static bool
check_agreement(const char *state, struct rec_list *recs, bool *merging)
{
    struct vs_node *dom = lookup(NULL, NULL);
    struct cat_check cc = {.recs = recs, .state = state, .good = true};
    struct obj_check oc = {.recs = recs, .state = state, .good = true};
    int nrec = 0, nstores = 0;

    recs->n = 0;
    *merging = false;
    /* a domain whose creation was interrupted before its record leaves its
     * store, which the rescan reports and keeps (it removes nothing that no
     * readable record names) */
    if (vs_store_list(ROOT, count_store, &nstores) < 0 || nstores != 1) {
        fail(state, "%d stores under the root for %d domains", nstores,
             dom ? 1 : 0);
        return false;
    }
    if (!dom) {
        /* only before the domain's record was durable */
        if (vs_catalog_count(tree->cat) != 0)
            fail(state, "no domain, yet catalog rows");
        return vs_catalog_count(tree->cat) == 0;
    }
    if (vs_meta_area_load(dom->domain->meta, keep_rec, NULL, recs) < 0) {
        fail(state, "records unreadable");
        return false;
    }
    vs_catalog_foreach(tree->cat, check_row, &cc);
    for (int i = 0; i < recs->n; i++) {
        if (recs->r[i].kind != VS_REC_FREE)
            nrec++;
        if (recs->r[i].flags & (VS_RECF_MERGE_CHILD | VS_RECF_MERGE_DOWN))
            *merging = true;
    }
    if (cc.rows != nrec) {
        fail(state, "%d catalog rows, %d records", cc.rows, nrec);
        cc.good = false;
    }
    vs_object_list(dom->domain->store, check_object, &oc);
    for (int i = 0; i < recs->n; i++) {
        const struct vs_record *rec = &recs->r[i];
        const struct vs_record *b =
            rec->backing_uuid[0] ? rec_by_uuid(recs, rec->backing_uuid) : NULL;
        char name[256];

        if (rec->kind != VS_REC_VOLUME || strcmp(rec->format, "qcow2") != 0)
            continue;
        /* while B is merged into this layer, the image may already name
         * B's own backing (merge.c switches the image first); while B
         * is copied down into its backing BB, whose object B then takes
         * over, the image may already name BB's object */
        const struct vs_record *bb =
            b && b->backing_uuid[0] ? rec_by_uuid(recs, b->backing_uuid) : NULL;
        const char *ahead =
            b && (b->flags & VS_RECF_MERGE_CHILD)    ? (bb ? bb->object : "")
            : bb && (bb->flags & VS_RECF_MERGE_DOWN) ? bb->object
                                                     : NULL;

        if (header_backing(dom->domain->store, rec->object, name,
                           sizeof(name)) < 0 ||
            (strcmp(name, b ? b->object : "") != 0 &&
             !(ahead && strcmp(name, ahead) == 0))) {
            fail(state, "layer '%s': header names '%s', record '%s'", rec->name,
                 name, b ? b->object : "");
            oc.good = false;
        }
    }
    return cc.good && oc.good &&
           qemu_check_store(dom->domain->store, recs, state);
}

/* Check 4 for one volume of the state against models A and B (either may
 * lack it). */
static bool
partly_grown(const struct vs_node *n, const struct mvol *a,
             const struct mvol *b, const char *bname, uint64_t size, bool exact)
{
    /* a raw volume is its object: an extending write the guest has not yet
     * flushed may land in part, as on the file system below, so until the
     * step ends its size may be any sector between the two */
    return !exact && a && b && strcmp(n->cat.format, "raw") == 0 &&
           strcmp(a->backing, bname) == 0 && strcmp(b->backing, bname) == 0 &&
           size >= (a->size < b->size ? a->size : b->size) &&
           size <= (a->size > b->size ? a->size : b->size) &&
           size % SECTOR == 0;
}

static bool
check_volume(const char *state, struct vs_node *n, const struct mvol *a,
             const struct mvol *b, bool exact)
{
    struct vs_node *bk = n->cat.backing_id
                             ? vs_tree_node(tree, VS_INO(n->cat.backing_id, 0))
                             : NULL;
    const char *bname = bk ? bk->cat.name : "";
    struct vs_bdev *bs;
    uint64_t size;
    uint8_t *buf;
    bool good = true;
    int r;

    /* a layer being merged down gives its object to its child: it reads
     * nothing defined, and nobody may open it (EBUSY) until it is gone */
    if (n->cat.flags & VS_RECF_MERGE_DOWN)
        return true;
    r = vs_node_bdev(tree, n, &bs);
    if (r < 0) {
        fail(state, "volume '%s' does not open: %s", n->cat.name, strerror(-r));
        return false;
    }
    size = atomic_load(&n->vol->size);
    if (!((a && a->size == size && strcmp(a->backing, bname) == 0) ||
          (b && b->size == size && strcmp(b->backing, bname) == 0) ||
          partly_grown(n, a, b, bname, size, exact))) {
        fail(state, "volume '%s': size %" PRIu64 ", backing '%s' in no model",
             n->cat.name, size, bname);
        return false;
    }
    buf = calloc(1, VOL_MAX);
    if (!buf)
        return false;
    if (size && vs_bdev_pread(bs, buf, size, 0) != (ssize_t)size) {
        fail(state, "volume '%s' cannot be read", n->cat.name);
        free(buf);
        return false;
    }
    for (uint64_t off = 0; off < size && good; off += SECTOR) {
        bool in_a = a && memcmp(buf + off, a->data + off, SECTOR) == 0;
        bool in_b = b && memcmp(buf + off, b->data + off, SECTOR) == 0;

        if (exact ? !in_b : !in_a && !in_b) {
            fail(state,
                 "volume '%s': sector at %" PRIu64 " reads what no "
                 "model has",
                 n->cat.name, off);
            good = false;
        }
    }
    free(buf);
    return good;
}

/* Check 4: the volumes of the state against models A (before) and B. */
static bool
check_volumes(const char *state, const struct model *a, const struct model *b,
              bool exact)
{
    struct vs_node *dom = lookup(NULL, NULL);
    bool good = true;

    for (int i = 0; i < MAX_VOLS; i++) {
        const struct mvol *mb = &b->v[i];
        const struct mvol *ma = a->v[i].present ? &a->v[i] : NULL;

        if (!mb->present)
            mb = NULL;
        if (!ma && !mb)
            continue;
        if (!lookup(ma ? ma->image : mb->image, ma ? ma->name : mb->name) &&
            ((ma && mb) || (exact && mb))) {
            fail(state, "volume '%s/%s' is missing", ma ? ma->image : mb->image,
                 ma ? ma->name : mb->name);
            good = false;
        }
    }
    for (struct vs_node *img = dom ? dom->children : NULL; img;
         img = img->sibling) {
        for (struct vs_node *v = img->children; v; v = v->sibling) {
            const struct mvol *ma = NULL, *mb = NULL;

            for (int i = 0; i < MAX_VOLS; i++) {
                if (a->v[i].present &&
                    strcmp(a->v[i].image, img->cat.name) == 0 &&
                    strcmp(a->v[i].name, v->cat.name) == 0)
                    ma = &a->v[i];
                if (b->v[i].present &&
                    strcmp(b->v[i].image, img->cat.name) == 0 &&
                    strcmp(b->v[i].name, v->cat.name) == 0)
                    mb = &b->v[i];
            }
            if (!ma && !mb) {
                fail(state, "volume '%s/%s' is in no model", img->cat.name,
                     v->cat.name);
                good = false;
            } else if (exact && !mb) {
                fail(state, "volume '%s/%s' survived its removal",
                     img->cat.name, v->cat.name);
                good = false;
            } else {
                good &= check_volume(state, v, exact ? NULL : ma, mb, exact);
            }
        }
    }
    return good;
}

/* Open the tree on the registry's stores with the catalog CAT and judge it
 * against models A and B. */
static bool
judge(const char *state, const char *cat, const struct model *a,
      const struct model *b, bool exact)
{
    char path[300], cmd[700];
    struct rec_list recs;
    bool good, merging;
    int r;

    snprintf(path, sizeof(path), "%s/judge.db", work_dir);
    snprintf(cmd, sizeof(cmd), "%s-wal", path);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s-shm", path);
    unlink(cmd);
    unlink(path);
    if (cat) {
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", cat, path);
        if (system(cmd) != 0)
            return false;
    }
    r = vs_tree_open(work_dir, ROOT, path, 0, &tree);
    if (r < 0) {
        fail(state, "the tree does not open: %s", strerror(-r));
        return false;
    }
    vs_tree_wrlock(tree);
    good = check_agreement(state, &recs, &merging) &&
           check_volumes(state, a, b, exact);
    vs_tree_unlock(tree);
    if (good && merging) {
        stats.resumed++;
        vs_merge_resume_all(tree);
        while (vs_merge_any_running())
            usleep(1000);
        vs_tree_wrlock(tree);
        good = check_agreement(state, &recs, &merging) &&
               check_volumes(state, a, b, exact);
        vs_tree_unlock(tree);
        if (good && merging) {
            fail(state, "the resumed merge did not end");
            good = false;
        }
    }
    vs_tree_close(tree);
    tree = NULL;
    return good;
}

/* ---- a switch whose new layer does not open ---- */

/* Read VOLUME (LEN bytes) into BUF through its chain. */
static int
read_volume(const char *image, const char *name, void *buf, size_t len)
{
    struct vs_volume *vol = NULL;
    int r = volume_of(image, name, &vol);
    ssize_t n;

    if (r < 0)
        return r;
    vs_gate_enter(&vol->io_gate);
    n = vs_bdev_pread(vol->bdev, buf, len, 0);
    vs_gate_leave(&vol->io_gate);
    vs_volume_unref(vol);
    return n == (ssize_t)len ? 0 : n < 0 ? (int)n : -EIO;
}

static void
wait_merges(void)
{
    while (vs_merge_any_running())
        usleep(1000);
}

/* A merge down whose last step cannot open the child's new layer: nothing
 * durable may have moved, so the guest's writes after the failure are
 * still there after a restart, and the merge then resumes and ends. */
static void
test_switch_open_fails(void)
{
    static const char img[] = "img";
    char cat_path[300], s_object[VS_OBJECT_MAX + 1],
        v_object[VS_OBJECT_MAX + 1];
    uint8_t *ref = malloc(2 * MIB), *got = malloc(2 * MIB);
    struct vs_node *n;
    bool good;
    int r;

    snprintf(cat_path, sizeof(cat_path), "%s/fail.db", work_dir);
    r = ref && got
            ? vs_tree_open(work_dir, CRASHSIM_SCHEME "fail", cat_path, 0, &tree)
            : -ENOMEM;
    if (r == 0)
        r = do_mkdir(NULL, NULL);
    if (r == 0)
        r = do_mkdir(img, NULL);
    if (r == 0)
        r = do_mkdir(img, "v");
    for (size_t i = 0; r == 0 && i < 2 * MIB; i++)
        ref[i] = (uint8_t)(rng() >> 24);
    if (r == 0)
        r = do_io(img, "v", IO_WRITE, 0, ref, 2 * MIB);
    vs_tree_wrlock(tree);
    n = r == 0 ? lookup(img, "v") : NULL;
    r = n ? vs_chain_snapshot(tree, n, "s", &n) : r < 0 ? r : -ENOENT;
    vs_tree_unlock(tree);
    memset(ref + 65536, 0x5a, 65536); /* a small delta: the merge goes down */
    if (r == 0)
        r = do_io(img, "v", IO_WRITE, 65536, ref + 65536, 65536);
    ok(r == 0, "switch failure: a volume, a snapshot and a delta");
    if (r < 0)
        goto out;
    snprintf(s_object, sizeof(s_object), "%s", lookup(img, "s")->cat.object);
    snprintf(v_object, sizeof(v_object), "%s", lookup(img, "v")->cat.object);
    /* opens of the snapshot's object: by the plan, by the copy, then the
     * switch's, which fails */
    crashsim_store_fail_opens(s_object, 2, EIO);
    vs_tree_wrlock(tree);
    r = vs_tree_rmdir(tree, lookup(img, "s"));
    vs_tree_unlock(tree);
    wait_merges();
    crashsim_store_fail_opens(NULL, 0, 0);
    is_int(r, 0, "switch failure: rmdir starts the merge");
    ok(lookup(img, "s") && (lookup(img, "s")->cat.flags & VS_RECF_MERGE_DOWN),
       "switch failure: the layer is still there, marked for a merge down");
    ok(strcmp(lookup(img, "v")->cat.object, v_object) == 0,
       "switch failure: the volume's record still names its own object");
    memset(ref + 3 * 65536, 0xc3, 65536);
    r = do_io(img, "v", IO_WRITE, 3 * 65536, ref + 3 * 65536, 65536);
    is_int(r, 0, "switch failure: the guest writes on");
    vs_tree_close(tree);
    tree = NULL;
    /* the next start: the writes are where the record says, and the
     * merge resumes */
    r = vs_tree_open(work_dir, CRASHSIM_SCHEME "fail", cat_path, 0, &tree);
    if (r == 0) {
        vs_merge_resume_all(tree);
        wait_merges();
        r = read_volume(img, "v", got, 2 * MIB);
    }
    good = r == 0 && memcmp(got, ref, 2 * MIB) == 0;
    ok(good, "switch failure: after a restart the volume reads every write");
    ok(r == 0 && !lookup(img, "s") &&
           strcmp(lookup(img, "v")->cat.object, s_object) == 0,
       "switch failure: the resumed merge ended; the volume took the "
       "layer's object");
out:
    vs_tree_close(tree);
    tree = NULL;
    crashsim_store_drop_all();
    free(ref);
    free(got);
}

/* ---- the fates of unflushed events ---- */

enum fate_kind { FATE_DROP, FATE_RANDOM };

struct fate {
    enum fate_kind kind;
    uint64_t seed;
};

static uint64_t
decide(const struct crashsim_event *ev, void *arg)
{
    struct fate *f = arg;
    uint64_t x;

    if (f->kind == FATE_DROP)
        return 0;
    f->seed = f->seed * 6364136223846793005ull + 1442695040888963407ull;
    x = f->seed >> 33;
    if (x % 3 == 0)
        return 0;
    if (x % 3 == 1 || ev->len <= SECTOR)
        return UINT64_MAX;
    return (x / 3 % (ev->len / SECTOR)) * SECTOR; /* torn */
}

static bool
judge_cut(struct crashsim_world *w, int k, uint64_t cut, struct fate *f,
          const char *how)
{
    char state[160];
    bool good, exact = f == NULL && cut == ops[k].end;
    int r;

    snprintf(state, sizeof(state), "op %d (%s), instant %" PRIu64 ", %s", k,
             ops[k].what, cut, how);
    r = crashsim_world_restore(w, cut, f ? decide : NULL, f);
    good = r == 0 &&
           judge(state, catalog_at(cut), &models[k - 1], &models[k], exact);
    if (r < 0)
        fail(state, "cannot rebuild the stores: %s", strerror(-r));
    crashsim_store_drop_all();
    stats.states++;
    if (!good)
        stats.failed++;
    return good;
}

static void
judge_all(struct crashsim_world *w)
{
    for (int k = 1; k <= nops; k++) {
        unsigned failed = stats.failed, states = stats.states;

        for (uint64_t cut = ops[k].start + 1; cut <= ops[k].end; cut++) {
            judge_cut(w, k, cut, NULL, "in order");
            stats.in_order++;
            if (cut == ops[k].end || !crashsim_world_barrier(w, cut))
                continue;
            /* before a barrier: the unflushed writes, in any subset */
            struct fate drop = {.kind = FATE_DROP};
            judge_cut(w, k, cut, &drop, "unflushed dropped");
            for (int i = 0; i < RANDOM_FATES; i++) {
                struct fate f = {.kind = FATE_RANDOM,
                                 .seed = cut * 1000003u + (uint64_t)i};
                char how[48];

                snprintf(how, sizeof(how), "random fate %d", i);
                judge_cut(w, k, cut, &f, how);
            }
            stats.reordered += 1 + RANDOM_FATES;
        }
        ok(stats.failed == failed, "op %d (%s): %u crash states consistent", k,
           ops[k].what, stats.states - states);
    }
}

int
main(void)
{
    struct crashsim_world *w = NULL;
    bool ran;
    int r;

    vs_log_set_level(getenv("VS_TEST_LOG") ? LOG_DEBUG : LOG_ERR);
    if (!mkdtemp(work_dir)) {
        perror(work_dir);
        return 1;
    }
    snprintf(catalog_path, sizeof(catalog_path), "%s/catalog.db", work_dir);
    r = crashsim_register();
    if (r == 0)
        r = vs_tree_open(work_dir, ROOT, catalog_path, 0, &tree);
    ok(r == 0, "tree on a crashsim root (%s)", r < 0 ? strerror(-r) : "ok");
    if (r < 0)
        return tap_done();
    if (sqlite3_open_v2(catalog_path, &cat_reader, SQLITE_OPEN_READONLY,
                        NULL) != SQLITE_OK) {
        ok(false, "catalog reader");
        return tap_done();
    }
    snap_catalog(0);
    crashsim_set_hook(on_event, NULL);
    ran = run_sequence();
    crashsim_set_hook(NULL, NULL);
    ok(ran && !hook_failed, "the sequence ran (%d operations)", nops);
    vs_tree_close(tree);
    tree = NULL;
    sqlite3_close(cat_reader);
    w = crashsim_world_take();
    if (ran && w) {
        size_t disks, events, flushes;

        /* the final state, as the run left it, first */
        ok(judge_cut(w, nops, ops[nops].end, NULL, "at the end"),
           "the state after the sequence is the last model");
        crashsim_world_counts(w, &disks, &events, &flushes);
        tap_diag("%zu disks, %zu events, %zu flushes, %zu catalog copies",
                 disks, events, flushes, nsnaps);
        judge_all(w);
        tap_diag("%u states judged (%u in order, %u reordered or torn), %u "
                 "with a merge resumed; qemu-img check ran %u times (%u "
                 "cached)",
                 stats.states, stats.in_order, stats.reordered, stats.resumed,
                 stats.qemu_checked, stats.qemu_cached);
    }
    test_switch_open_fails();
    vs_merge_stop_all();
    crashsim_world_free(w);
    for (int k = 0; k <= MAX_OPS; k++)
        for (int i = 0; i < MAX_VOLS; i++)
            free(models[k].v[i].data);
    free(snaps);
    free(checked);
    tu_rm_tree(work_dir);
    return tap_done();
}
