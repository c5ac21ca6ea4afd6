/*
 * The user.vstor.* extended attributes: read-only ones describe a node
 * (uuid, kind, size, allocation, format, backend, object, creation time,
 * capabilities); writable ones are commands (rescan on the root, shrink-to
 * on a volume) or settings (format on a volume, options on a domain).
 * Nothing else is stored: other names are refused.  No attribute ever
 * shows a secret's value: a domain shows the names of its secrets only.
 *
 * Each readable attribute is one row of a table with a function that
 * formats its value; listxattr lists the rows that apply to the node.
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs.h"
#include "vs/log.h"
#include "vs/names.h"
#include "vs/secrets.h"
#include "vs/util.h"
#include "vs/xattr.h"

struct fuse_session *vs_session;

struct xctx {
    struct vs_node *node;
    enum vs_part part;
};

static bool
is_volume(const struct xctx *x)
{
    return x->node->cat.kind == VS_NODE_VOLUME;
}

static struct vs_node *
domain_of(struct vs_node *node)
{
    while (node && node->cat.kind > VS_NODE_DOMAIN)
        node = node->parent;
    return node;
}

static int
space_of(const struct xctx *x, struct vs_space *sp)
{
    struct statvfs sv;

    if (x->node->domain)
        return x->node->domain->store
                   ? vs_store_space(x->node->domain->store, sp)
                   : -EIO;
    if (statvfs(vs_fs.tree->data_dir, &sv) < 0)
        return -errno;
    sp->capacity = (uint64_t)sv.f_blocks * sv.f_frsize;
    sp->free = (uint64_t)sv.f_bavail * sv.f_frsize;
    return 0;
}

/* Virtual size (ALLOC false) or allocation (true) of a volume. */
static int64_t
volume_bytes(struct vs_node *node, bool alloc)
{
    int64_t v;
    int r = alloc ? vs_node_sizes(vs_fs.tree, node, NULL, &v)
                  : vs_node_sizes(vs_fs.tree, node, &v, NULL);

    return r < 0 ? r : v;
}

static int64_t
node_bytes(const struct xctx *x, bool alloc)
{
    struct vs_space sp;
    int64_t sum = 0;
    int r;

    if (is_volume(x))
        return volume_bytes(x->node, alloc);
    if (x->node->cat.kind == VS_NODE_IMAGE) {
        for (struct vs_node *c = x->node->children; c; c = c->sibling) {
            int64_t v = volume_bytes(c, alloc);
            if (v < 0)
                return v;
            sum += v;
        }
        return sum;
    }
    r = space_of(x, &sp);
    if (r < 0)
        return r;
    return (int64_t)(alloc ? sp.capacity - sp.free : sp.capacity);
}

static int
get_uuid(const struct xctx *x, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", x->node->cat.uuid);
}

static int
get_kind(const struct xctx *x, char *buf, size_t len)
{
    return snprintf(buf, len, "%s",
                    x->part == VS_PART_FILE
                        ? "data"
                        : vs_node_kind_name(x->node->cat.kind));
}

static int
get_bytes(const struct xctx *x, char *buf, size_t len, bool alloc)
{
    int64_t v = node_bytes(x, alloc);

    return v < 0 ? (int)v : snprintf(buf, len, "%" PRId64, v);
}

static int
get_size(const struct xctx *x, char *buf, size_t len)
{
    return get_bytes(x, buf, len, false);
}

static int
get_allocated(const struct xctx *x, char *buf, size_t len)
{
    return get_bytes(x, buf, len, true);
}

static int
get_format(const struct xctx *x, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", is_volume(x) ? x->node->cat.format : "-");
}

static int
get_backend(const struct xctx *x, char *buf, size_t len)
{
    struct vs_node *dom = domain_of(x->node);

    if (!dom || dom->cat.kind != VS_NODE_DOMAIN)
        return snprintf(buf, len, "%s", vs_fs.tree->domain_root);
    return snprintf(buf, len, "%s", dom->cat.location);
}

static int
get_object(const struct xctx *x, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", x->node->cat.object);
}

static int
get_created(const struct xctx *x, char *buf, size_t len)
{
    vs_time_iso8601(x->node->cat.created, buf, len);
    return (int)strlen(buf);
}

static int
get_caps(const struct xctx *x, char *buf, size_t len)
{
    static const char *const names[] = {
        "unmap", "write_zeroes", "alloc_status", "direct",
        "clone", "copy",         "snapshot"};
    struct vs_caps caps = {0};
    bool bits[7];
    size_t used = 0;

    if (x->node->domain && x->node->domain->store)
        caps = x->node->domain->store->caps;
    bits[0] = caps.unmap, bits[1] = caps.write_zeroes;
    bits[2] = caps.alloc_status, bits[3] = caps.direct;
    bits[4] = caps.clone, bits[5] = caps.copy, bits[6] = caps.snapshot;
    buf[0] = '\0';
    for (int i = 0; i < 7; i++)
        if (bits[i] && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s",
                                     used ? "," : "", names[i]);
    return (int)strlen(buf);
}

/* "ok", "read-only: REASON" (its domain's metadata is in doubt), or
 * "unavailable: REASON" (no trusted record, or its chain does not open). */
static int
get_status(const struct xctx *x, char *buf, size_t len)
{
    int r;

    if (x->node->unavailable)
        return snprintf(buf, len, "unavailable: %s", x->node->unavailable);
    r = vs_node_sizes(vs_fs.tree, x->node, NULL, NULL);
    if (r == 0 && x->node->domain->read_only)
        return snprintf(buf, len, "read-only: %s", x->node->domain->read_only);
    if (r == 0)
        return snprintf(buf, len, "ok");
    return snprintf(buf, len,
                    "unavailable: its chain cannot be opened (%s); the log "
                    "names the layer",
                    strerror(-r));
}

static int
get_options(const struct xctx *x, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", x->node->cat.options);
}

/* The names of the secrets the domain's store was attached with. */
static int
get_secrets(const struct xctx *x, char *buf, size_t len)
{
    struct vs_store *st = x->node->domain ? x->node->domain->store : NULL;

    buf[0] = '\0';
    if (st != NULL && vs_options_format_keys(st->secrets, buf, len) < 0)
        return -E2BIG;
    return (int)strlen(buf);
}

static int
get_secrets_file(const struct xctx *x, char *buf, size_t len)
{
    int r = vs_secrets_path(vs_fs.tree->data_dir, x->node->cat.uuid, buf, len);

    return r < 0 ? r : (int)strlen(buf);
}

static int
get_job(const struct xctx *x, char *buf, size_t len)
{
    return vs_merge_describe(x->node->cat.id, buf, len);
}

static int
get_jobs(const struct xctx *x, char *buf, size_t len)
{
    (void)x;
    return vs_merge_list(buf, len);
}

static int
get_passthrough(const struct xctx *x, char *buf, size_t len)
{
    struct vs_volume *vol = x->node->vol;
    int opens;

    pthread_mutex_lock(&vol->lock);
    opens = vol->pt_opens;
    pthread_mutex_unlock(&vol->lock);
    return opens > 0 ? snprintf(buf, len, "on %d", opens)
                     : snprintf(buf, len, "off");
}

static const struct xattr_row {
    const char *name;
    int (*get)(const struct xctx *x, char *buf, size_t len);
    bool volume_only;
    bool hidden;      /* not listed: present only while something runs */
    bool domain_only; /* only a domain has it */
} rows[] = {
    {VS_XATTR_UUID, get_uuid, false},
    {VS_XATTR_KIND, get_kind, false},
    {VS_XATTR_SIZE, get_size, false},
    {VS_XATTR_ALLOCATED, get_allocated, false},
    {VS_XATTR_FORMAT, get_format, false},
    {VS_XATTR_BACKEND, get_backend, false},
    {VS_XATTR_OBJECT, get_object, true},
    {VS_XATTR_STATUS, get_status, true},
    {VS_XATTR_CREATED, get_created, false},
    {VS_XATTR_CAPS, get_caps, false},
    {VS_XATTR_JOB, get_job, true, true},
    {VS_XATTR_PASSTHROUGH, get_passthrough, true, true},
    {VS_XATTR_JOBS, get_jobs, false, true},
    {VS_XATTR_OPTIONS, get_options, false, false, true},
    {VS_XATTR_SECRETS, get_secrets, false, false, true},
    {VS_XATTR_SECRETS_FILE, get_secrets_file, false, false, true},
};

static bool
row_applies(const struct xattr_row *row, const struct xctx *x)
{
    return (!row->volume_only || is_volume(x)) &&
           (!row->domain_only || x->node->cat.kind == VS_NODE_DOMAIN);
}

static const struct xattr_row *
find_row(const struct xctx *x, const char *name)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++)
        if (strcmp(rows[i].name, name) == 0 && row_applies(&rows[i], x))
            return &rows[i];
    return NULL;
}

/* One line for a refused attribute request on X (tree lock held). */
static void
log_refusal(const char *op, const char *name, const struct xctx *x,
            const char *why, int err)
{
    char path[3 * VS_NAME_MAX + 8] = "?", safe[256];

    if (x->node)
        vs_node_path(x->node, path, sizeof(path));
    vs_log(LOG_NOTICE, "refused %s '%s' on '%s%s': %s (%s)", op,
           vs_log_escape(name, safe, sizeof(safe)), path,
           x->part == VS_PART_FILE ? "/data" : "", why, strerrorname_np(err));
}

/* The debug line for a getxattr of a name the node does not have. */
static void
log_miss(const char *name, const struct xctx *x)
{
    char path[3 * VS_NAME_MAX + 8] = "?", safe[256];

    if (x->node)
        vs_node_path(x->node, path, sizeof(path));
    vs_log_debug(VS_LOG_CAT_FUSE, "getxattr '%s' on '%s%s': no such attribute",
                 vs_log_escape(name, safe, sizeof(safe)), path,
                 x->part == VS_PART_FILE ? "/data" : "");
}

static void
reply_value(fuse_req_t req, const char *value, size_t len, size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, value, len);
}

static void
op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    struct xctx x = {.part = VS_INO_PART(ino)};
    const struct xattr_row *row = NULL;
    char value[VS_LOCATION_MAX + 64];
    int n = -ENODATA;

    if (vs_log_cat_enabled(VS_LOG_CAT_FUSE))
        vs_log_debug(VS_LOG_CAT_FUSE, "getxattr inode %llu '%s'",
                     (unsigned long long)ino,
                     vs_log_escape(name, value, sizeof(value)));
    vs_tree_rdlock(vs_fs.tree);
    x.node = vs_tree_node(vs_fs.tree, ino);
    if (!x.node)
        n = -ENOENT;
    else if (strncmp(name, "user.", 5) != 0)
        /* no ACLs, labels or capabilities here, as setxattr says: with
         * ENOTSUP `ls -l` asks once per mount, not three times a file */
        n = -EOPNOTSUPP;
    else if ((row = find_row(&x, name)))
        n = row->get(&x, value, sizeof(value));
    /* a miss is an answer, not a refusal (the kernel probes security.*
     * before every buffered write, `vstor ls` asks every node): debug only */
    if (n == -ENODATA && vs_log_cat_enabled(VS_LOG_CAT_FUSE))
        log_miss(name, &x);
    vs_tree_unlock(vs_fs.tree);
    if (n < 0)
        fuse_reply_err(req, -n);
    else
        reply_value(req, value, (size_t)n, size);
}

static void
op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct xctx x = {.part = VS_INO_PART(ino)};
    char list[512];
    size_t used = 0;

    vs_tree_rdlock(vs_fs.tree);
    x.node = vs_tree_node(vs_fs.tree, ino);
    for (size_t i = 0; x.node && i < sizeof(rows) / sizeof(*rows); i++) {
        if (!row_applies(&rows[i], &x) || rows[i].hidden)
            continue;
        memcpy(list + used, rows[i].name, strlen(rows[i].name) + 1);
        used += strlen(rows[i].name) + 1;
    }
    vs_tree_unlock(vs_fs.tree);
    if (!x.node)
        fuse_reply_err(req, ENOENT);
    else
        reply_value(req, list, used, size);
}

/* Parse a whole decimal byte count: 0 or -EINVAL. */
static int
parse_bytes(const char *value, size_t size, uint64_t *out)
{
    char text[32], *end;

    if (size == 0 || size >= sizeof(text))
        return -EINVAL;
    memcpy(text, value, size);
    text[size] = '\0';
    if (text[size - 1] == '\n')
        text[size - 1] = '\0';
    if (text[0] < '0' || text[0] > '9')
        return -EINVAL;
    errno = 0;
    *out = strtoull(text, &end, 10);
    return errno || *end ? -EINVAL : 0;
}

static int
do_shrink(struct vs_node *node, const char *value, size_t size)
{
    struct vs_bdev *bs;
    uint64_t bytes;
    int r = parse_bytes(value, size, &bytes);

    if (r == 0)
        r = vs_node_bdev(vs_fs.tree, node, &bs);
    if (r == 0 && (node->layers_above > 0 || node->domain->read_only))
        r = -EROFS;
    if (r == 0)
        r = vs_volume_shrink(node->vol, bytes);
    if (r == 0)
        vs_log(LOG_NOTICE, "volume '%s' shrunk to %llu bytes", node->vol->label,
               (unsigned long long)bytes);
    return r;
}

static int
do_rescan(const char *value, size_t size)
{
    int r;

    if (size < 1 || value[0] != '1' || (size > 1 && value[1] != '\n'))
        return -EINVAL;
    if (vs_merge_any_running())
        return -EBUSY; /* jobs hold on to nodes a rescan would replace */
    vs_tree_wrlock(vs_fs.tree);
    vs_reserve_release_if_full("rescan");
    r = vs_tree_rescan(vs_fs.tree);
    vs_reserve_refill();
    vs_tree_unlock(vs_fs.tree);
    vs_log(LOG_NOTICE, "rescan %s", r < 0 ? "failed" : "done");
    return r;
}

static int
do_snapshot(fuse_ino_t ino, const char *value, size_t size)
{
    char name[VS_NAME_MAX + 2];
    struct vs_node *node, *snap = NULL;
    int r;

    if (size == 0 || size > VS_NAME_MAX)
        return size ? -ENAMETOOLONG : -EINVAL;
    memcpy(name, value, size);
    name[size] = '\0';
    vs_tree_wrlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    r = !node                              ? -ENOENT
        : node->cat.kind != VS_NODE_VOLUME ? -EPERM
        : strlen(name) != size
            ? -EINVAL
            : vs_chain_snapshot(vs_fs.tree, node, name, &snap);
    if (r == 0) {
        vs_log(LOG_NOTICE, "volume '%s': snapshot '%s' taken", node->vol->label,
               name);
    }
    /* no entry invalidation: lookups answer ENOENT without a cached
     * negative entry, and a notice from inside this request would deadlock
     * on the directory lock the kernel holds for it */
    vs_tree_unlock(vs_fs.tree);
    return r;
}

/* user.vstor.format on an empty base volume: raw or qcow2. */
static int
do_format(fuse_ino_t ino, const char *value, size_t size)
{
    char format[8];
    struct vs_node *node;
    int r;

    if (size > 0 && value[size - 1] == '\n')
        size--;
    if (size == 0 || size >= sizeof(format) || memchr(value, '\0', size))
        return -EINVAL;
    memcpy(format, value, size);
    format[size] = '\0';
    vs_tree_wrlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    r = !node ? -ENOENT
        : node->cat.kind != VS_NODE_VOLUME
            ? -EPERM
            : vs_chain_set_format(vs_fs.tree, node, format);
    if (r == 0)
        vs_log(LOG_NOTICE, "volume '%s': format %s", node->vol->label, format);
    vs_tree_unlock(vs_fs.tree);
    return r;
}

/* user.vstor.options on a domain: checked by its driver, then recorded. */
static int
do_options(fuse_ino_t ino, const char *value, size_t size, const char **why)
{
    static __thread char reason[320];
    struct vs_node *node;
    int r;

    *why = reason;
    vs_tree_wrlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    r = !node ? -ENOENT
              : vs_domain_set_options(vs_fs.tree, node, value, size, reason,
                                      sizeof(reason));
    if (r == 0)
        vs_log(LOG_NOTICE,
               "domain '%s': options set to '%s'; they apply at its next "
               "attach (vstor rescan, or a restart)",
               node->cat.name, node->cat.options);
    vs_tree_unlock(vs_fs.tree);
    return r;
}

/* Whether NAME is one of the writable attributes (commands, settings). */
static bool
is_command(const char *name)
{
    return !strcmp(name, VS_XATTR_RESCAN) || !strcmp(name, VS_XATTR_SHRINK) ||
           !strcmp(name, VS_XATTR_SNAPSHOT) || !strcmp(name, VS_XATTR_FORMAT) ||
           !strcmp(name, VS_XATTR_OPTIONS);
}

/* Whether NAME is readable and writable (a setting, not read-only). */
static bool
is_setting(const char *name)
{
    return !strcmp(name, VS_XATTR_FORMAT) || !strcmp(name, VS_XATTR_OPTIONS);
}

/* Run a writable attribute; returns 0 or -errno and WHY for the log. */
static int
set_action(fuse_ino_t ino, const char *name, const char *value, size_t size,
           const char **why)
{
    struct xctx x = {.part = VS_INO_PART(ino)};
    int r;

    if (strcmp(name, VS_XATTR_RESCAN) == 0) {
        *why = "only the mount root rescans; its value is 1";
        return ino == VS_INO_ROOT ? do_rescan(value, size) : -EPERM;
    }
    if (strcmp(name, VS_XATTR_SNAPSHOT) == 0) {
        *why = "only a live volume is snapshotted, to a free valid name";
        return do_snapshot(ino, value, size);
    }
    if (strcmp(name, VS_XATTR_OPTIONS) == 0)
        return do_options(ino, value, size, why);
    if (strcmp(name, VS_XATTR_FORMAT) == 0) {
        *why = "only an empty base volume nobody has open changes format, "
               "to raw or qcow2";
        return do_format(ino, value, size);
    }
    *why = "only a volume shrinks; the value is a byte count no larger than "
           "its size, and nobody may have it open";
    vs_tree_rdlock(vs_fs.tree);
    x.node = vs_tree_node(vs_fs.tree, ino);
    r = !x.node          ? -ENOENT
        : !is_volume(&x) ? -EPERM
                         : do_shrink(x.node, value, size);
    vs_tree_unlock(vs_fs.tree);
    if (r == -EOPNOTSUPP)
        *why = "a qcow2 volume (a snapshot's or a clone's layer) cannot "
               "shrink";
    if (r == 0 && vs_session)
        fuse_lowlevel_notify_inval_inode(
            vs_session, VS_INO(VS_INO_ID(ino), VS_PART_FILE), 0, 0);
    return r;
}

static void
op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
            size_t size, int flags)
{
    struct xctx x = {.part = VS_INO_PART(ino)};
    const char *why = "";
    int r;

    (void)flags;
    vs_tree_rdlock(vs_fs.tree);
    x.node = vs_tree_node(vs_fs.tree, ino);
    r = !x.node ? -ENOENT : 0;
    if (r == 0 && strncmp(name, VS_XATTR_PREFIX, strlen(VS_XATTR_PREFIX)))
        r = -ENOTSUP, why = "only user.vstor.* attributes exist here";
    else if (r == 0 && find_row(&x, name) && !is_setting(name))
        r = -EPERM, why = "the attribute is read-only";
    else if (r == 0 && !is_command(name))
        r = -ENODATA, why = "no such attribute";
    else if (r == 0 && fuse_req_ctx(req)->uid != 0)
        r = -EPERM, why = "only root snapshots, grows, shrinks, changes the "
                          "format or the options, or rescans";
    if (r < 0 && r != -ENOENT)
        log_refusal("setxattr", name, &x, why, -r);
    vs_tree_unlock(vs_fs.tree);
    if (r == 0) {
        r = set_action(ino, name, value, size, &why);
        if (r == -EUCLEAN) {
            r = -vs_catalog_errno("setxattr", r);
        } else if (r < 0 && r != -ENOENT) {
            vs_tree_rdlock(vs_fs.tree);
            x.node = vs_tree_node(vs_fs.tree, ino);
            log_refusal("setxattr", name, &x, why, -r);
            vs_tree_unlock(vs_fs.tree);
        }
    }
    fuse_reply_err(req, -r);
}

/* Nothing can be removed: a name the node has (or a command) is EPERM, any
 * other name ENODATA, as Linux answers for a missing attribute. */
static void
op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    struct xctx x = {.part = VS_INO_PART(ino)};
    bool known;

    vs_tree_rdlock(vs_fs.tree);
    x.node = vs_tree_node(vs_fs.tree, ino);
    known = x.node && (find_row(&x, name) || is_command(name));
    if (x.node)
        log_refusal("removexattr", name, &x,
                    known ? "vstor attributes cannot be removed"
                          : "no such attribute",
                    known ? EPERM : ENODATA);
    vs_tree_unlock(vs_fs.tree);
    fuse_reply_err(req, !x.node ? ENOENT : known ? EPERM : ENODATA);
}

void
vs_xattr_ops_init(struct fuse_lowlevel_ops *ops)
{
    ops->getxattr = op_getxattr;
    ops->listxattr = op_listxattr;
    ops->setxattr = op_setxattr;
    ops->removexattr = op_removexattr;
}
