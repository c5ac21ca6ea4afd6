/*
 * FUSE namespace requests: lookup, attributes, directories, mkdir, rmdir,
 * rename, and the refusals of everything the tree does not allow.
 *
 * Each request resolves its inode under the namespace lock, asks tree.c to
 * do the work, and replies.  A refused request is logged once here, naming
 * the request and the path, with the errno it gets.
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs.h"
#include "vs/log.h"
#include "vs/names.h"

#define ENTRY_TIMEOUT 3600.0
#define DIR_ATTR_TIMEOUT 3600.0
#define DATA_ATTR_TIMEOUT 1.0

struct vs_fs vs_fs;

int
vs_catalog_errno(const char *op, int err)
{
    if (err != EUCLEAN && err != -EUCLEAN)
        return err > 0 ? err : -err;
    vs_log(LOG_ERR,
           "%s: the catalog '%s' is damaged: move it away and restart "
           "vstorfs, which rebuilds it from the domains (EIO)",
           op, vs_fs.cfg ? vs_fs.cfg->catalog_path : "?");
    return EIO;
}

/* Reply ERR to REQ and log why: "refused mkdir 'a/b': reason (EPERM)". */
static void __attribute__((format(printf, 6, 7)))
refuse(fuse_req_t req, int err, const char *op, struct vs_node *parent,
       const char *name, const char *fmt, ...)
{
    char path[3 * VS_NAME_MAX + 8], why[256], safe_why[1024];
    char safe_name[4 * VS_NAME_MAX + 8] = "";
    va_list ap;

    if (err == EUCLEAN || err == -EUCLEAN) {
        fuse_reply_err(req, vs_catalog_errno(op, err));
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    vs_node_path(parent, path, sizeof(path));
    if (name)
        vs_log_escape(name, safe_name, sizeof(safe_name));
    vs_log(LOG_NOTICE, "refused %s '%s%s%s': %s (%s)", op,
           strcmp(path, "/") ? path : "", name ? "/" : "", safe_name,
           vs_log_escape(why, safe_why, sizeof(safe_why)),
           strerrorname_np(err > 0 ? err : -err));
    fuse_reply_err(req, err > 0 ? err : -err);
}

int
vs_fill_stat(struct vs_node *node, enum vs_part part, struct stat *st)
{
    int64_t size, alloc;
    int r;

    memset(st, 0, sizeof(*st));
    st->st_ino = node->cat.kind == VS_NODE_ROOT ? VS_INO_ROOT
                                                : VS_INO(node->cat.id, part);
    st->st_atime = st->st_mtime = st->st_ctime = node->cat.created;
    st->st_blksize = 4096;
    if (part == VS_PART_MAP) {
        /* readable exactly by whoever may read the data it describes */
        st->st_mode = S_IFREG | (node->cat.mode & 0444);
        st->st_nlink = 1;
        st->st_uid = node->cat.uid;
        st->st_gid = node->cat.gid;
        return 0;
    }
    if (part == VS_PART_LINK) {
        char link[2 * VS_NAME_MAX + 8];
        int n = vs_chain_link_text(vs_fs.tree, node, link, sizeof(link));
        st->st_mode = S_IFLNK | 0777;
        st->st_nlink = 1;
        st->st_size = n > 0 ? n : 0;
        return 0;
    }
    if (part == VS_PART_DIR) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink =
            2 + (node->cat.kind == VS_NODE_VOLUME ? 0 : node->nchildren);
        st->st_size = 4096;
        return 0;
    }
    st->st_mode = S_IFREG | (node->cat.mode & 07777);
    if (vs_passthrough_killpriv()) /* nothing to drop (passthrough.c) */
        st->st_mode &= ~(mode_t)(S_ISUID | S_ISGID);
    st->st_nlink = 1;
    st->st_uid = node->cat.uid;
    st->st_gid = node->cat.gid;
    r = vs_node_sizes(vs_fs.tree, node, &size, &alloc);
    if (r == 0) {
        st->st_size = size > 0 ? (off_t)size : 0;
        st->st_blocks = alloc > 0 ? (blkcnt_t)((alloc + 511) / 512) : 0;
    }
    return r;
}

static void
reply_entry(fuse_req_t req, struct vs_node *node, enum vs_part part)
{
    struct fuse_entry_param e;

    memset(&e, 0, sizeof(e));
    /* a volume whose chain does not open has no size to show: the name
     * resolves (its xattrs tell why), but every stat asks getattr, which
     * answers EIO */
    bool unavailable = vs_fill_stat(node, part, &e.attr) < 0;
    e.ino = e.attr.st_ino;
    e.generation = 1;
    e.entry_timeout = ENTRY_TIMEOUT;
    e.attr_timeout = part == VS_PART_DIR ? DIR_ATTR_TIMEOUT : DATA_ATTR_TIMEOUT;
    if (unavailable)
        e.attr_timeout = 0;
    fuse_reply_entry(req, &e);
}

static void
reply_attr(fuse_req_t req, struct vs_node *node, enum vs_part part)
{
    struct stat st;

    if (vs_fill_stat(node, part, &st) < 0) {
        fuse_reply_err(req, EIO);
        return;
    }
    fuse_reply_attr(req, &st,
                    part == VS_PART_DIR ? DIR_ATTR_TIMEOUT : DATA_ATTR_TIMEOUT);
}

/* The directory node of INO, or NULL (ENOENT) / data inode (ENOTDIR). */
static struct vs_node *
dir_node(fuse_ino_t ino, int *err)
{
    struct vs_node *node = vs_tree_node(vs_fs.tree, ino);

    *err = !node ? ENOENT : VS_INO_PART(ino) != VS_PART_DIR ? ENOTDIR : 0;
    return *err ? NULL : node;
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vs_node *dir, *child;
    int err;

    vs_tree_rdlock(vs_fs.tree);
    dir = dir_node(parent, &err);
    if (!dir)
        fuse_reply_err(req, err);
    else if (dir->cat.kind == VS_NODE_VOLUME && !strcmp(name, VS_PART_DATA))
        reply_entry(req, dir, VS_PART_FILE);
    else if (dir->cat.kind == VS_NODE_VOLUME && !strcmp(name, VS_PART_MAPFILE))
        reply_entry(req, dir, VS_PART_MAP);
    else if (dir->cat.kind == VS_NODE_VOLUME &&
             !strcmp(name, VS_PART_BACKING) && dir->cat.backing_id)
        reply_entry(req, dir, VS_PART_LINK);
    else if (dir->cat.kind == VS_NODE_VOLUME)
        fuse_reply_err(req, ENOENT);
    else if ((child = vs_node_child(dir, name)))
        reply_entry(req, child, VS_PART_DIR);
    else
        fuse_reply_err(req, ENOENT);
    vs_tree_unlock(vs_fs.tree);
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vs_node *node;

    (void)fi;
    vs_tree_rdlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    if (node)
        reply_attr(req, node, VS_INO_PART(ino));
    else
        fuse_reply_err(req, ENOENT);
    vs_tree_unlock(vs_fs.tree);
}

/* Whether REQ comes from root: only root changes a volume's size or
 * chain; the owner of `data` reads and writes within its size. */
static bool
from_root(fuse_req_t req)
{
    return fuse_req_ctx(req)->uid == 0;
}

/* Size changes of `data`: root grows, shrink never through truncate. */
static int
set_size(fuse_req_t req, struct vs_node *node, uint64_t size)
{
    struct vs_bdev *bs;
    uint64_t cur;
    int r = vs_node_bdev(vs_fs.tree, node, &bs);

    if (r < 0)
        return r;
    if (node->domain->read_only) {
        refuse(req, EROFS, "truncate", node, VS_PART_DATA,
               "its domain is read-only: %s", node->domain->read_only);
        return 1;
    }
    if (node->layers_above > 0) {
        refuse(req, EROFS, "truncate", node, VS_PART_DATA,
               "other volumes are based on it: it is read-only");
        return 1;
    }
    vs_passthrough_sync_size(node->vol); /* root may have written past */
    cur = atomic_load(&node->vol->size);
    if (size > VS_VOLUME_SIZE_MAX) {
        refuse(req, EFBIG, "truncate", node, VS_PART_DATA,
               "%llu bytes is past the largest volume size, %llu bytes",
               (unsigned long long)size, VS_VOLUME_SIZE_MAX);
        return 1;
    }
    if (size < cur) {
        refuse(req, EPERM, "truncate", node, VS_PART_DATA,
               "shrinking from %llu to %llu bytes needs "
               "'setfattr -n user.vstor.shrink-to' while nobody has it open",
               (unsigned long long)cur, (unsigned long long)size);
        return 1;
    }
    if (size > cur && !from_root(req)) {
        refuse(req, EPERM, "truncate", node, VS_PART_DATA,
               "only root grows a volume (from %llu to %llu bytes asked)",
               (unsigned long long)cur, (unsigned long long)size);
        return 1;
    }
    vs_gate_enter(&node->vol->io_gate);
    r = vs_volume_grow(node->vol, size);
    vs_gate_leave(&node->vol->io_gate);
    return r;
}

/* With passthrough: data carries no setuid/setgid bits (the kernel was
 * told the daemon drops them itself, and there is nothing to drop), and a
 * volume open by passthrough stays writable by root only (the kernel
 * checks no volume size on its writes). */
static int
check_owner_change(fuse_req_t req, struct vs_node *node,
                   const struct stat *attr, int to_set)
{
    bool mode = to_set & FUSE_SET_ATTR_MODE;

    if (mode && (attr->st_mode & (S_ISUID | S_ISGID)) &&
        vs_passthrough_killpriv()) {
        refuse(req, EPERM, "chmod", node, VS_PART_DATA,
               "no setuid or setgid bits with kernel passthrough on");
        return 1;
    }
    if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != 0) ||
        (mode && (attr->st_mode & 0022)))
        return vs_passthrough_busy(node, "chmod/chown");
    return 0;
}

static int
set_owner(fuse_req_t req, struct vs_node *node, enum vs_part part,
          struct stat *attr, int to_set)
{
    mode_t mode = attr->st_mode;
    uid_t uid = attr->st_uid;
    gid_t gid = attr->st_gid;
    int r;

    if (part == VS_PART_DIR) {
        refuse(req, EPERM, "chmod/chown", node, NULL,
               "directories are always root's, mode 0755");
        return 1;
    }
    if (part != VS_PART_FILE) {
        refuse(req, EPERM, "chmod/chown", node,
               part == VS_PART_MAP ? VS_PART_MAPFILE : VS_PART_BACKING,
               "only data's own mode and owner change; map and backing "
               "follow data");
        return 1;
    }
    r = check_owner_change(req, node, attr, to_set);
    if (r != 0)
        return r;
    r = vs_tree_set_owner(vs_fs.tree, node,
                          (to_set & FUSE_SET_ATTR_MODE) ? &mode : NULL,
                          (to_set & FUSE_SET_ATTR_UID) ? &uid : NULL,
                          (to_set & FUSE_SET_ATTR_GID) ? &gid : NULL);
    /* map's mode and owner follow data's: drop what the kernel has cached
     * (it checks permissions on it) */
    if (r == 0 && vs_session)
        fuse_lowlevel_notify_inval_inode(
            vs_session, VS_INO(node->cat.id, VS_PART_MAP), -1, 0);
    return r;
}

static int
refuse_map_truncate(fuse_req_t req, struct vs_node *node)
{
    refuse(req, EPERM, "truncate", node, VS_PART_MAPFILE,
           "the map is read-only");
    return 1;
}

static void
op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
           struct fuse_file_info *fi)
{
    const int owner =
        FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID;
    struct vs_node *node;
    int r = 0;

    (void)fi;
    vs_tree_wrlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    if (!node)
        r = -ENOENT;
    else if ((to_set & FUSE_SET_ATTR_SIZE) && VS_INO_PART(ino) == VS_PART_MAP)
        r = refuse_map_truncate(req, node);
    else if ((to_set & FUSE_SET_ATTR_SIZE) && VS_INO_PART(ino) != VS_PART_FILE)
        r = -EISDIR;
    else if (to_set & FUSE_SET_ATTR_SIZE)
        r = set_size(req, node, (uint64_t)attr->st_size);
    if (r == 0 && (to_set & owner))
        r = set_owner(req, node, VS_INO_PART(ino), attr, to_set);
    /* times are accepted and not kept: a volume's times are its creation */
    if (r == 0)
        reply_attr(req, node, VS_INO_PART(ino));
    else if (r < 0)
        fuse_reply_err(req, vs_catalog_errno("setattr", r));
    vs_tree_unlock(vs_fs.tree);
}

/* ---- directories ---- */

struct dir_entry {
    char name[VS_NAME_MAX + 1];
    struct stat st;
    bool unavailable; /* a data file whose stat failed (see reply_entry) */
};

struct dir_snapshot {
    size_t n;
    struct dir_entry e[];
};

static void
snap_add(struct dir_snapshot *snap, const char *name, struct vs_node *node,
         enum vs_part part)
{
    struct dir_entry *e = &snap->e[snap->n++];

    snprintf(e->name, sizeof(e->name), "%s", name);
    e->unavailable = vs_fill_stat(node, part, &e->st) < 0;
}

/* Take the listing at opendir so readdir offsets stay stable. */
static void
op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dir_snapshot *snap;
    struct vs_node *dir;
    int err;

    vs_tree_rdlock(vs_fs.tree);
    dir = dir_node(ino, &err);
    snap = dir ? malloc(sizeof(*snap) +
                        (dir->nchildren + 5) * sizeof(struct dir_entry))
               : NULL;
    if (dir && snap) {
        snap->n = 0;
        snap_add(snap, ".", dir, VS_PART_DIR);
        snap_add(snap, "..", dir->parent ? dir->parent : dir, VS_PART_DIR);
        if (dir->cat.kind == VS_NODE_VOLUME) {
            snap_add(snap, VS_PART_DATA, dir, VS_PART_FILE);
            snap_add(snap, VS_PART_MAPFILE, dir, VS_PART_MAP);
        }
        if (dir->cat.kind == VS_NODE_VOLUME && dir->cat.backing_id)
            snap_add(snap, VS_PART_BACKING, dir, VS_PART_LINK);
        for (struct vs_node *c = dir->children; c; c = c->sibling)
            snap_add(snap, c->cat.name, c, VS_PART_DIR);
        fi->fh = (uint64_t)(uintptr_t)snap;
        fuse_reply_open(req, fi);
    } else {
        fuse_reply_err(req, dir ? ENOMEM : err);
    }
    vs_tree_unlock(vs_fs.tree);
}

/* Fill one reply buffer from the directory's snapshot, from entry OFF on;
 * PLUS (readdirplus) adds each entry's attributes, as a lookup would
 * answer them: `ls -l` of an image of 10,000 volumes takes one request
 * per buffer instead of a LOOKUP per volume.  Inodes are never forgotten
 * (their numbers come from catalog ids), so the lookup counts these
 * entries add need no bookkeeping. */
static void
reply_dir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
          bool plus)
{
    struct dir_snapshot *snap = (void *)(uintptr_t)fi->fh;
    char *buf = malloc(size);
    size_t used = 0, need;

    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    for (size_t i = (size_t)off; i < snap->n; i++, used += need) {
        const struct dir_entry *d = &snap->e[i];
        struct fuse_entry_param e = {
            .attr = d->st,
            .ino = d->st.st_ino,
            .generation = 1,
            .entry_timeout = ENTRY_TIMEOUT,
            .attr_timeout = d->unavailable           ? 0
                            : S_ISDIR(d->st.st_mode) ? DIR_ATTR_TIMEOUT
                                                     : DATA_ATTR_TIMEOUT,
        };
        need = plus ? fuse_add_direntry_plus(req, buf + used, size - used,
                                             d->name, &e, (off_t)i + 1)
                    : fuse_add_direntry(req, buf + used, size - used, d->name,
                                        &d->st, (off_t)i + 1);
        if (need > size - used)
            break;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
           struct fuse_file_info *fi)
{
    (void)ino;
    reply_dir(req, size, off, fi, false);
}

static void
op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
               struct fuse_file_info *fi)
{
    (void)ino;
    reply_dir(req, size, off, fi, true);
}

static void
op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    free((void *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void
op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
            struct fuse_file_info *fi)
{
    (void)ino, (void)datasync, (void)fi;
    /* every namespace change is durable (record flushed, catalog
     * committed) before its reply, so there is nothing left to flush */
    fuse_reply_err(req, 0);
}

/* ---- namespace changes ---- */

static void
op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct vs_node *dir, *node;
    int r, err;

    vs_tree_wrlock(vs_fs.tree);
    vs_reserve_refill();
    dir = dir_node(parent, &err);
    r = dir ? vs_tree_mkdir(vs_fs.tree, dir, name, mode, ctx->uid, ctx->gid,
                            &node)
            : -err;
    if (r == 0) {
        vs_log(LOG_INFO, "created %s '%s'", vs_node_kind_name(node->cat.kind),
               name);
        reply_entry(req, node, VS_PART_DIR);
    } else if (!dir) {
        fuse_reply_err(req, err);
    } else {
        refuse(req, r, "mkdir", dir, name, "%s",
               r == -EPERM    ? "a volume holds only its data"
               : r == -EEXIST ? "the name is taken"
               : r == -EINVAL || r == -ENAMETOOLONG ? vs_name_reason(name)
                                                    : strerror(-r));
    }
    vs_tree_unlock(vs_fs.tree);
}

static void
op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vs_node *dir, *node = NULL;
    int r, err;

    vs_tree_wrlock(vs_fs.tree);
    dir = dir_node(parent, &err);
    if (dir && dir->cat.kind != VS_NODE_VOLUME)
        node = vs_node_child(dir, name);
    if (node)
        vs_reserve_release_if_full("removal");
    r = !dir ? -err : !node ? -ENOENT : vs_tree_rmdir(vs_fs.tree, node);
    if (r == 0)
        fuse_reply_err(req, 0);
    else if (r == -ENOENT || !dir)
        fuse_reply_err(req, -r);
    else
        refuse(req, r, "rmdir", dir, name, "%s",
               r == -ENOTEMPTY ? "it is not empty" : strerror(-r));
    vs_reserve_refill(); /* with the space the removal gave back */
    vs_tree_unlock(vs_fs.tree);
}

/* data, map, and backing when it exists: the fixed entries of a volume. */
static bool
is_volume_part(const struct vs_node *dir, const char *name)
{
    return dir->cat.kind == VS_NODE_VOLUME &&
           (!strcmp(name, VS_PART_DATA) || !strcmp(name, VS_PART_MAPFILE) ||
            (!strcmp(name, VS_PART_BACKING) && dir->cat.backing_id));
}

/* A rename rewrites one record and one catalog row: it works on a full
 * file system, with the reserve's room. */
static int
rename_node(struct vs_node *node, const char *newname)
{
    vs_reserve_release_if_full("rename");
    return vs_tree_rename(vs_fs.tree, node, newname);
}

static void
op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
          fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    struct vs_node *dir, *node = NULL;
    int r, err;

    vs_tree_wrlock(vs_fs.tree);
    dir = dir_node(parent, &err);
    if (dir && dir->cat.kind != VS_NODE_VOLUME)
        node = vs_node_child(dir, name);
    if (!dir || (!node && !is_volume_part(dir, name)))
        fuse_reply_err(req, dir ? ENOENT : err);
    else if (!node)
        refuse(req, EPERM, "rename", dir, name,
               "a volume's parts keep their names");
    else if (flags & RENAME_EXCHANGE)
        refuse(req, EINVAL, "rename", dir, name, "exchange is not supported");
    else if (newparent != parent)
        refuse(req, EXDEV, "rename", dir, name,
               "moves only within the same parent");
    else if (strcmp(name, newname) == 0)
        fuse_reply_err(req, 0);
    else if ((r = rename_node(node, newname)) == 0)
        fuse_reply_err(req, 0);
    else
        refuse(req, r, "rename", dir, name, "to '%s': %s", newname,
               r == -EEXIST                         ? "the new name is taken"
               : r == -EINVAL || r == -ENAMETOOLONG ? vs_name_reason(newname)
                                                    : strerror(-r));
    vs_tree_unlock(vs_fs.tree);
}

/* Requests that the tree never allows, answered with EPERM and a line. */
static void
refuse_in(fuse_req_t req, const char *op, fuse_ino_t parent, const char *name,
          const char *why)
{
    struct vs_node *dir;
    int err;

    vs_tree_rdlock(vs_fs.tree);
    dir = dir_node(parent, &err);
    if (dir)
        refuse(req, EPERM, op, dir, name, "%s", why);
    else
        fuse_reply_err(req, err);
    vs_tree_unlock(vs_fs.tree);
}

static void
op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
         dev_t rdev)
{
    (void)mode, (void)rdev;
    refuse_in(req, "mknod", parent, name,
              "only mkdir creates entries; a volume's data exists already");
}

static void
op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
          struct fuse_file_info *fi)
{
    (void)mode, (void)fi;
    refuse_in(req, "create", parent, name,
              "only mkdir creates entries; a volume's data exists already");
}

static const char *
backing_error(int r)
{
    switch (r) {
    case -EINVAL:
        return "the target must be a relative path to a volume";
    case -EXDEV:
        return "the target is outside this volume's domain";
    case -ELOOP:
        return "the chain would loop";
    case -ENOENT:
        return "the target does not exist";
    case -EEXIST:
        return "the volume has a backing already";
    case -ENOTEMPTY:
        return "the volume has data of its own";
    case -EBUSY:
        return "the volume is open, or the target is open for writing";
    case -EPERM:
        return "only root changes a volume's backing";
    default:
        return strerror(-r);
    }
}

/* ln -s TARGET vol/backing: make vol a thin clone of TARGET. */
static void
op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
           const char *name)
{
    struct vs_node *dir, *target = NULL;
    int r, err;

    vs_tree_wrlock(vs_fs.tree);
    dir = dir_node(parent, &err);
    if (!dir) {
        fuse_reply_err(req, err);
    } else if (dir->cat.kind != VS_NODE_VOLUME ||
               strcmp(name, VS_PART_BACKING) != 0) {
        refuse(req, EPERM, "symlink", dir, name,
               "the only link is a volume's 'backing'");
    } else if (!from_root(req)) {
        refuse(req, EPERM, "symlink", dir, name,
               "only root makes a volume a thin clone");
    } else if ((r = vs_chain_resolve(dir, link, &target)) < 0 ||
               (r = vs_chain_set_backing(vs_fs.tree, dir, target)) < 0) {
        refuse(req, r, "symlink", dir, name, "to '%s': %s", link,
               backing_error(r));
    } else {
        vs_log(LOG_INFO, "volume '%s' now backed by '%s'", dir->cat.name,
               target->cat.name);
        reply_entry(req, dir, VS_PART_LINK);
    }
    vs_tree_unlock(vs_fs.tree);
}

static void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    char link[2 * VS_NAME_MAX + 8];
    struct vs_node *node;
    int n = -ENOENT;

    vs_tree_rdlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    if (node && VS_INO_PART(ino) == VS_PART_LINK)
        n = vs_chain_link_text(vs_fs.tree, node, link, sizeof(link));
    else if (node)
        n = -EINVAL;
    vs_tree_unlock(vs_fs.tree);
    if (n < 0)
        fuse_reply_err(req, -n);
    else
        fuse_reply_readlink(req, link);
}

static void
op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
        const char *newname)
{
    (void)ino;
    refuse_in(req, "link", newparent, newname, "hard links are not kept");
}

static void
unlink_backing(fuse_req_t req, struct vs_node *vol)
{
    int r = from_root(req) ? vs_chain_clear_backing(vs_fs.tree, vol) : -EPERM;

    if (r < 0)
        refuse(req, r, "unlink", vol, VS_PART_BACKING, "%s", backing_error(r));
    else
        fuse_reply_err(req, 0);
}

static void
op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vs_node *dir;
    int err;

    vs_tree_wrlock(vs_fs.tree);
    dir = dir_node(parent, &err);
    if (dir && dir->cat.kind == VS_NODE_VOLUME &&
        strcmp(name, VS_PART_DATA) == 0)
        refuse(req, EPERM, "unlink", dir, name,
               "remove the volume with rmdir instead");
    else if (dir && dir->cat.kind == VS_NODE_VOLUME &&
             strcmp(name, VS_PART_BACKING) == 0 && dir->cat.backing_id)
        unlink_backing(req, dir);
    else if (dir && dir->cat.kind == VS_NODE_VOLUME &&
             strcmp(name, VS_PART_MAPFILE) == 0)
        refuse(req, EPERM, "unlink", dir, name,
               "the map is part of the volume");
    else
        fuse_reply_err(req, dir ? (vs_node_child(dir, name) ? EISDIR : ENOENT)
                                : err);
    vs_tree_unlock(vs_fs.tree);
}

static void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    struct vs_space space = {0};
    struct vs_node *node;
    int r = 0;

    memset(&sv, 0, sizeof(sv));
    vs_tree_rdlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    if (node && node->domain && node->domain->store)
        r = vs_store_space(node->domain->store, &space);
    else if (node && node->domain)
        r = -EIO;
    else if (statvfs(vs_fs.tree->data_dir, &sv) == 0)
        space = (struct vs_space){(uint64_t)sv.f_blocks * sv.f_frsize,
                                  (uint64_t)sv.f_bavail * sv.f_frsize};
    else
        r = -errno;
    vs_tree_unlock(vs_fs.tree);
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = sv.f_frsize = 4096;
    sv.f_blocks = space.capacity / 4096;
    sv.f_bfree = sv.f_bavail = space.free / 4096;
    sv.f_files = sv.f_ffree = sv.f_favail = 1u << 20;
    sv.f_namemax = VS_NAME_MAX;
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_statfs(req, &sv);
}

void
vs_ops_init(struct fuse_lowlevel_ops *ops)
{
    ops->lookup = op_lookup;
    ops->getattr = op_getattr;
    ops->setattr = op_setattr;
    ops->opendir = op_opendir;
    ops->readdir = op_readdir;
    ops->readdirplus = op_readdirplus;
    ops->releasedir = op_releasedir;
    ops->fsyncdir = op_fsyncdir;
    ops->mkdir = op_mkdir;
    ops->rmdir = op_rmdir;
    ops->rename = op_rename;
    ops->mknod = op_mknod;
    ops->create = op_create;
    ops->symlink = op_symlink;
    ops->readlink = op_readlink;
    ops->link = op_link;
    ops->unlink = op_unlink;
    ops->statfs = op_statfs;
}
