/*
 * vstor ls [PATH] [--json] [-l]: the domains, images and volumes below PATH
 * (default: the first fuse.vstorfs mount).  The walk is readdir plus
 * getxattr on each entry, depth first with names sorted, so the output is
 * stable.  The data files are not listed: a volume's line describes its data.
 * When PATH is itself a volume or a data file, ls describes just that node,
 * as ls(1) does for a file.  A node that vanishes or fails mid-walk is
 * reported and skipped; the exit status is then 1.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vstor.h"

/* One listed node and its path relative to the listed PATH. */
struct entry {
    struct vstor_node node;
    char *rel;
};

struct listing {
    struct entry *v;
    size_t n, cap;
    int status; /* VSTOR_EXIT_ERROR once anything failed */
};

static void
listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++) {
        vstor_node_clear(&l->v[i].node);
        free(l->v[i].rel);
    }
    free(l->v);
}

/* Append NODE (taking ownership) with relative path REL (copied). */
static int
listing_add(struct listing *l, const struct vstor_node *node, const char *rel)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        struct entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *r = strdup(rel);
    if (!r)
        return -ENOMEM;
    l->v[l->n].node = *node;
    l->v[l->n].rel = r;
    l->n++;
    return 0;
}

static int
compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The sorted entry names of DIR (no dot names) into *NAMES, *N. */
static int
read_names(const char *dir, char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    int r = 0;
    struct dirent *de;
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[cnt] = strdup(de->d_name))) {
            r = -ENOMEM;
            break;
        }
        cnt++;
    }
    if (r == 0 && errno != 0)
        r = -errno;
    closedir(d);
    if (r < 0) {
        free_names(v, cnt);
        return r;
    }
    if (cnt)
        qsort(v, cnt, sizeof(*v), compare_names);
    *names = v;
    *n = cnt;
    return 0;
}

static bool
is_kind(const struct vstor_node *node, const char *kind)
{
    return node->kind && strcmp(node->kind, kind) == 0;
}

/* Whether the walk descends into a node of this kind. */
static bool
has_children(const struct vstor_node *node)
{
    return is_kind(node, "root") || is_kind(node, "domain") ||
           is_kind(node, "image");
}

static int walk(struct listing *l, const char *dir, const char *rel);

/* Describe the entry NAME of DIR, add it, and descend into it. */
static int
walk_entry(struct listing *l, const char *dir, const char *rel,
           const char *name)
{
    char *path = vstor_path_join(dir, name);
    char *sub = rel[0] ? vstor_path_join(rel, name) : strdup(name);
    struct vstor_node node;
    int r = -ENOMEM;
    if (!path || !sub)
        goto out;
    r = vstor_node_read(path, &node);
    if (r < 0) {
        vstor_node_clear(&node);
        if (r == -ENOMEM)
            goto out;
        l->status = vstor_error(
            path, "%s", r == -ENOTSUP ? "not a vstorfs node" : strerror(-r));
        r = 0;
        goto out;
    }
    bool descend = has_children(&node);
    if (is_kind(&node, "data")) {
        vstor_node_clear(&node);
    } else if ((r = listing_add(l, &node, sub)) < 0) {
        vstor_node_clear(&node);
        goto out;
    }
    if (descend)
        r = walk(l, path, sub);
out:
    free(path);
    free(sub);
    return r;
}

/* Add every node below DIR (relative path REL) to L.  -ENOMEM is fatal. */
static int
walk(struct listing *l, const char *dir, const char *rel)
{
    char **names = NULL;
    size_t n = 0;
    int r = read_names(dir, &names, &n);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        l->status = vstor_error(dir, "%s", strerror(-r));
        return 0;
    }
    for (size_t i = 0; i < n && r >= 0; i++)
        r = walk_entry(l, dir, rel, names[i]);
    free_names(names, n);
    return r;
}

static const char *
or_dash(const char *s)
{
    return s ? s : "-";
}

/* The end of a node's line: "  (unavailable: why)" for a volume whose
 * chain does not open. */
static void
print_status(const struct vstor_node *node)
{
    if (vstor_node_unavailable(node))
        printf("  (%s)", node->status);
    putchar('\n');
}

static void
print_long(const struct entry *e)
{
    char size[32] = "-", alloc[32] = "-";
    if (e->node.size >= 0)
        vstor_size_human(e->node.size, size, sizeof(size));
    if (e->node.allocated >= 0)
        vstor_size_human(e->node.allocated, alloc, sizeof(alloc));
    printf("%-7s %10s %10s %-6s %-20s %-36s %s", e->node.kind, size, alloc,
           or_dash(e->node.format), or_dash(e->node.created),
           or_dash(e->node.uuid), e->rel);
    print_status(&e->node);
}

static void
print_text(const struct listing *l, bool lng)
{
    if (lng && l->n)
        printf("%-7s %10s %10s %-6s %-20s %-36s %s\n", "KIND", "SIZE",
               "ALLOCATED", "FORMAT", "CREATED", "UUID", "PATH");
    for (size_t i = 0; i < l->n; i++) {
        if (lng) {
            print_long(&l->v[i]);
        } else {
            fputs(l->v[i].rel, stdout);
            print_status(&l->v[i].node);
        }
    }
}

/* The last component of PATH (ignoring trailing slashes), in BUF. */
static const char *
base_name(const char *path, char *buf, size_t len)
{
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    if (end == start) /* "/" */
        start = 0;
    snprintf(buf, len, "%.*s", (int)(end - start), path + start);
    return buf;
}

static struct json_object *
entry_json(const struct entry *e)
{
    char name[4096];
    const struct vstor_node *n = &e->node;
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    base_name(n->path, name, sizeof(name));
    json_object_object_add(o, "path", vstor_json_string(n->path));
    json_object_object_add(o, "kind", vstor_json_string(n->kind));
    json_object_object_add(o, "name", vstor_json_string(name));
    json_object_object_add(o, "uuid", vstor_json_string(n->uuid));
    json_object_object_add(o, "size", vstor_json_size(n->size));
    json_object_object_add(o, "allocated", vstor_json_size(n->allocated));
    json_object_object_add(o, "format", vstor_json_string(n->format));
    json_object_object_add(o, "created", vstor_json_string(n->created));
    if (n->status)
        json_object_object_add(o, "status", vstor_json_string(n->status));
    return o;
}

static int
print_json(const struct listing *l)
{
    struct json_object *arr = json_object_new_array();
    if (!arr)
        return vstor_error("json", "%s", strerror(ENOMEM));
    for (size_t i = 0; i < l->n; i++)
        json_object_array_add(arr, entry_json(&l->v[i]));
    int code = vstor_json_print(arr);
    json_object_put(arr);
    return code;
}

/* List PATH into L: itself if a volume or data file, else what is below. */
static int
collect(struct listing *l, const char *path)
{
    struct vstor_node top;
    int r = vstor_node_read(path, &top);
    if (r < 0) {
        vstor_node_clear(&top);
        if (r == -ENOTSUP)
            return vstor_error(path, "not on a vstorfs mount");
        return vstor_error(path, "%s", strerror(-r));
    }
    if (has_children(&top)) {
        vstor_node_clear(&top);
        r = walk(l, path, "");
    } else if ((r = listing_add(l, &top, path)) < 0) {
        vstor_node_clear(&top);
    }
    if (r < 0)
        return vstor_error(path, "%s", strerror(-r));
    return l->status;
}

int
vstor_cmd_ls(int argc, char **argv)
{
    struct vstor_args args;
    int code =
        vstor_args_parse(argc, argv, VSTOR_OPT_JSON | VSTOR_OPT_LONG, 1, &args);
    if (code >= 0)
        return code;
    char *mnt = NULL;
    const char *path = args.npos ? args.pos[0] : NULL;
    if (!path) {
        code = vstor_default_mount_or_error(&mnt);
        if (code != VSTOR_EXIT_OK)
            return code;
        path = mnt;
    }
    struct listing l = {0};
    code = collect(&l, path);
    if (code == VSTOR_EXIT_OK || l.n) {
        int pcode = VSTOR_EXIT_OK;
        if (args.opts & VSTOR_OPT_JSON)
            pcode = print_json(&l);
        else
            print_text(&l, args.opts & VSTOR_OPT_LONG);
        if (pcode != VSTOR_EXIT_OK)
            code = pcode;
    }
    listing_free(&l);
    free(mnt);
    return code;
}
