/*
 * Reading a vstorfs node's description through the mount: each field of
 * struct vstor_node is one user.vstor.* extended attribute.  The kind
 * attribute is what tells a vstorfs node from anything else; the others may
 * be absent (ENODATA) on some kinds and are then left NULL or -1.  The
 * volume-only ones (object, status) are asked of volumes and data only, and
 * the sizes of a volume that is unavailable (its chain does not open) are
 * not asked at all.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "vs/xattr.h"
#include "vstor.h"

/* Values are short (uuids, sizes, paths); larger ones take a second call. */
#define XATTR_FIRST_TRY 4096

static int
xattr_get_sized(const char *path, const char *name, char **value)
{
    ssize_t len = getxattr(path, name, NULL, 0);
    if (len < 0)
        return -errno;
    char *buf = malloc((size_t)len + 1);
    if (!buf)
        return -ENOMEM;
    ssize_t got = getxattr(path, name, buf, (size_t)len);
    if (got < 0) {
        int r = -errno;
        free(buf);
        return r;
    }
    buf[got] = '\0';
    *value = buf;
    return 0;
}

int
vstor_xattr_get(const char *path, const char *name, char **value)
{
    char buf[XATTR_FIRST_TRY];
    ssize_t got = getxattr(path, name, buf, sizeof(buf) - 1);
    if (got < 0) {
        if (errno == ERANGE)
            return xattr_get_sized(path, name, value);
        return -errno;
    }
    buf[got] = '\0';
    *value = strdup(buf);
    return *value ? 0 : -ENOMEM;
}

/* An optional string attribute: absent is NULL, other failures are errors. */
static int
read_optional(const char *path, const char *name, char **value)
{
    int r = vstor_xattr_get(path, name, value);
    if (r == -ENODATA) {
        *value = NULL;
        return 0;
    }
    return r;
}

/* An optional size attribute: absent, unreadable (an image holding an
 * unavailable volume) or not a number is -1. */
static int
read_size(const char *path, const char *name, int64_t *size)
{
    char *text = NULL;
    int r = read_optional(path, name, &text);
    *size = -1;
    if (r == -ENOMEM)
        return r;
    if (r < 0 || !text)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno == 0 && end != text && *end == '\0' && v >= 0)
        *size = v;
    free(text);
    return 0;
}

static int
read_kind(const char *path, struct vstor_node *node)
{
    int r = vstor_xattr_get(path, VS_XATTR_KIND, &node->kind);
    /* No kind (or no xattrs at all): this is not a vstorfs node. */
    if (r == -ENODATA || r == -ENOTSUP)
        return -ENOTSUP;
    return r;
}

int
vstor_node_read(const char *path, struct vstor_node *node)
{
    memset(node, 0, sizeof(*node));
    node->size = node->allocated = -1;
    node->path = strdup(path);
    if (!node->path)
        return -ENOMEM;
    int r = read_kind(path, node);
    if (r >= 0)
        r = read_optional(path, VS_XATTR_UUID, &node->uuid);
    if (r >= 0)
        r = read_optional(path, VS_XATTR_FORMAT, &node->format);
    if (r >= 0)
        r = read_optional(path, VS_XATTR_BACKEND, &node->backend);
    if (r >= 0 && vstor_node_is_volume(node))
        r = read_optional(path, VS_XATTR_OBJECT, &node->object);
    if (r >= 0 && vstor_node_is_volume(node))
        r = read_optional(path, VS_XATTR_STATUS, &node->status);
    if (r >= 0)
        r = read_optional(path, VS_XATTR_CREATED, &node->created);
    if (r >= 0)
        r = read_optional(path, VS_XATTR_CAPS, &node->caps);
    if (r >= 0 && !vstor_node_unavailable(node))
        r = read_size(path, VS_XATTR_SIZE, &node->size);
    if (r >= 0 && !vstor_node_unavailable(node))
        r = read_size(path, VS_XATTR_ALLOCATED, &node->allocated);
    return r < 0 ? r : 0;
}

bool
vstor_node_is_volume(const struct vstor_node *node)
{
    return node->kind &&
           (!strcmp(node->kind, "volume") || !strcmp(node->kind, "data"));
}

bool
vstor_node_unavailable(const struct vstor_node *node)
{
    return node->status && strncmp(node->status, "unavailable", 11) == 0;
}

void
vstor_node_clear(struct vstor_node *node)
{
    free(node->path);
    free(node->kind);
    free(node->uuid);
    free(node->format);
    free(node->backend);
    free(node->object);
    free(node->created);
    free(node->caps);
    free(node->status);
    memset(node, 0, sizeof(*node));
    node->size = node->allocated = -1;
}
