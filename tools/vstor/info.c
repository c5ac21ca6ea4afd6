/*
 * vstor info PATH [--json]: describe a volume (or its data file) the way
 * qemu-img info describes an image: the file to open, its format, virtual
 * size and size on disk, then what vstorfs adds (uuid, backend, the object
 * on the store, creation time, offloads).  The JSON keys are fixed by
 * docs/interface.md; "caps" is split into an array.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vstor.h"

/* The file a hypervisor opens: PATH itself for data, PATH/data for a volume */
static char *
data_file(const struct vstor_node *node)
{
    if (strcmp(node->kind, "data") == 0)
        return strdup(node->path);
    return vstor_path_join(node->path, "data");
}

static void
print_size_line(const char *label, int64_t bytes, bool exact)
{
    char human[32];
    if (bytes < 0) {
        printf("%s: unavailable\n", label);
        return;
    }
    vstor_size_human(bytes, human, sizeof(human));
    if (exact)
        printf("%s: %s (%" PRId64 " bytes)\n", label, human, bytes);
    else
        printf("%s: %s\n", label, human);
}

static void
print_opt_line(const char *label, const char *value)
{
    if (value)
        printf("%s: %s\n", label, value);
}

static void
print_text(const struct vstor_node *node, const char *file)
{
    printf("image: %s\n", file);
    print_opt_line("file format", node->format);
    print_size_line("virtual size", node->size, true);
    print_size_line("disk size", node->allocated, false);
    print_opt_line("uuid", node->uuid);
    print_opt_line("kind", node->kind);
    print_opt_line("backend", node->backend);
    print_opt_line("object", node->object);
    print_opt_line("created", node->created);
    print_opt_line("caps", node->caps);
    print_opt_line("status", node->status);
}

/* CAPS ("unmap,write_zeroes,...") as a JSON array of strings. */
static struct json_object *
caps_json(const char *caps)
{
    if (!caps)
        return NULL;
    struct json_object *arr = json_object_new_array();
    if (!arr)
        return NULL;
    const char *p = caps;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len)
            json_object_array_add(arr, json_object_new_string_len(p, (int)len));
        p += len;
        if (*p == ',')
            p++;
    }
    return arr;
}

static struct json_object *
node_json(const struct vstor_node *node, const char *file)
{
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "filename", vstor_json_string(file));
    json_object_object_add(o, "format", vstor_json_string(node->format));
    json_object_object_add(o, "virtual-size", vstor_json_size(node->size));
    json_object_object_add(o, "actual-size", vstor_json_size(node->allocated));
    json_object_object_add(o, "uuid", vstor_json_string(node->uuid));
    json_object_object_add(o, "kind", vstor_json_string(node->kind));
    json_object_object_add(o, "backend", vstor_json_string(node->backend));
    json_object_object_add(o, "object", vstor_json_string(node->object));
    json_object_object_add(o, "created", vstor_json_string(node->created));
    json_object_object_add(o, "caps", caps_json(node->caps));
    json_object_object_add(o, "status", vstor_json_string(node->status));
    return o;
}

/* Print NODE as JSON, or with CHAIN set, append it to that array. */
static int
emit_json(const struct vstor_node *node, const char *file,
          struct json_object *chain)
{
    struct json_object *o = node_json(node, file);
    int code;

    if (!o)
        return vstor_error(node->path, "%s", strerror(ENOMEM));
    if (chain)
        return json_object_array_add(chain, o) == 0
                   ? VSTOR_EXIT_OK
                   : vstor_error(node->path, "%s", strerror(ENOMEM));
    code = vstor_json_print(o);
    json_object_put(o);
    return code;
}

static int
describe(const char *path, bool json, struct json_object *chain)
{
    struct vstor_node node;
    int r = vstor_node_read(path, &node);
    int code;
    char *file = NULL;
    if (r == -ENOTSUP)
        code = vstor_error(path, "not on a vstorfs mount");
    else if (r < 0)
        code = vstor_error(path, "%s", strerror(-r));
    else if (strcmp(node.kind, "volume") != 0 && strcmp(node.kind, "data") != 0)
        code = vstor_error(path, "not a volume or data file (a %s)", node.kind);
    else if (!(file = data_file(&node)))
        code = vstor_error(path, "%s", strerror(ENOMEM));
    else if (json)
        code = emit_json(&node, file, chain);
    else {
        print_text(&node, file);
        code = VSTOR_EXIT_OK;
    }
    free(file);
    vstor_node_clear(&node);
    return code;
}

/* The volume directory below PATH in its chain (PATH/backing resolved by
 * the kernel through the mount), or NULL at the base. */
static char *
next_layer(const char *path)
{
    char *dir = strdup(path), *link, *real;
    size_t len = dir ? strlen(dir) : 0;

    if (!dir)
        return NULL;
    if (len > 5 && strcmp(dir + len - 5, "/data") == 0)
        dir[len - 5] = '\0';
    link = vstor_path_join(dir, "backing");
    free(dir);
    real = link ? realpath(link, NULL) : NULL;
    free(link);
    return real;
}

/* info --backing-chain: each layer from PATH down, text blocks separated by
 * a blank line, or one JSON array (as qemu-img info --backing-chain). */
static int
describe_chain(const char *path, bool json)
{
    struct json_object *chain = json ? json_object_new_array() : NULL;
    char *cur = strdup(path);
    int code = VSTOR_EXIT_OK, depth = 0;

    while (cur && code == VSTOR_EXIT_OK && depth++ < 256) {
        char *next = next_layer(cur);
        if (depth > 1 && !json)
            printf("\n");
        code = describe(cur, json, chain);
        free(cur);
        cur = next;
    }
    free(cur);
    if (chain && code == VSTOR_EXIT_OK)
        code = vstor_json_print(chain);
    json_object_put(chain);
    return code;
}

int
vstor_cmd_info(int argc, char **argv)
{
    struct vstor_args args;
    int code = vstor_args_parse(argc, argv, VSTOR_OPT_JSON | VSTOR_OPT_CHAIN, 1,
                                &args);
    if (code >= 0)
        return code;
    if (args.npos < 1)
        return vstor_usage_error("info: missing PATH");
    if (args.opts & VSTOR_OPT_CHAIN)
        return describe_chain(args.pos[0], args.opts & VSTOR_OPT_JSON);
    return describe(args.pos[0], args.opts & VSTOR_OPT_JSON, NULL);
}
