/*
 * A volume's `map` file: the allocation of its whole chain as JSON, in the
 * shape of `qemu-img map --output=json` (start, length, depth, present,
 * zero, data), so tools see which layer owns each range without opening
 * the layer files.
 *
 * The text is built once at open (inside the volume's io_gate, so it is one
 * consistent picture) and kept in the handle; the file is served with
 * direct_io and reports size 0, like a /proc file.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

struct extent {
    uint64_t start, length;
    int depth;
    bool present, zero, data;
};

/* The owner of OFF: walk down the chain until a layer owns it. */
static int
owner_of(struct vs_bdev *top, uint64_t off, uint64_t size, struct extent *e)
{
    struct vs_bdev *layer = top;
    uint64_t n = size - off;

    memset(e, 0, sizeof(*e));
    e->start = off;
    for (int depth = 0; layer; depth++, layer = layer->backing) {
        int64_t lsize = vs_bdev_size(layer);
        uint64_t pnum;
        int st;
        if (lsize >= 0 && off >= (uint64_t)lsize)
            break; /* past a shorter parent: zeros nobody owns */
        st = vs_bdev_block_status(layer, off, n, &pnum);
        if (st < 0 || pnum == 0)
            return st < 0 ? st : -EIO;
        n = pnum;
        e->depth = depth;
        if (st & VS_BS_ALLOCATED) {
            e->present = true;
            e->zero = (st & VS_BS_ZERO) != 0;
            e->data = (st & VS_BS_DATA) && !e->zero;
            break;
        }
    }
    if (!e->present)
        e->zero = true;
    e->length = n;
    return 0;
}

static bool
same_kind(const struct extent *a, const struct extent *b)
{
    return a->depth == b->depth && a->present == b->present &&
           a->zero == b->zero && a->data == b->data;
}

static int
add_extent(struct json_object *list, const struct extent *e)
{
    struct json_object *o = json_object_new_object();

    if (!o)
        return -ENOMEM;
    json_object_object_add(o, "start",
                           json_object_new_int64((int64_t)e->start));
    json_object_object_add(o, "length",
                           json_object_new_int64((int64_t)e->length));
    json_object_object_add(o, "depth", json_object_new_int(e->depth));
    json_object_object_add(o, "present", json_object_new_boolean(e->present));
    json_object_object_add(o, "zero", json_object_new_boolean(e->zero));
    json_object_object_add(o, "data", json_object_new_boolean(e->data));
    return json_object_array_add(list, o) == 0 ? 0 : -ENOMEM;
}

static int
walk(struct vs_bdev *top, uint64_t size, struct json_object *list)
{
    struct extent cur = {0}, next;
    int r = 0;

    for (uint64_t off = 0; r == 0 && off < size; off += next.length) {
        r = owner_of(top, off, size, &next);
        if (r == 0 && cur.length && same_kind(&cur, &next)) {
            cur.length += next.length;
        } else if (r == 0) {
            if (cur.length)
                r = add_extent(list, &cur);
            cur = next;
        }
    }
    if (r == 0 && cur.length)
        r = add_extent(list, &cur);
    return r;
}

int
vs_map_build(struct vs_tree *tree, struct vs_node *vol, char **text,
             size_t *len)
{
    struct json_object *list = json_object_new_array();
    struct vs_bdev *bs, *temp = NULL;
    int r = list ? vs_node_borrow(tree, vol, &bs, &temp) : -ENOMEM;

    if (r == 0 && temp) {
        int64_t size = vs_bdev_size(temp);
        r = size < 0 ? (int)size : walk(temp, (uint64_t)size, list);
        vs_bdev_close(temp);
    } else if (r == 0) {
        vs_gate_enter(&vol->vol->io_gate);
        r = walk(vol->vol->bdev, atomic_load(&vol->vol->size), list);
        vs_gate_leave(&vol->vol->io_gate);
    }
    if (r == 0) {
        const char *s =
            json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN);
        *len = strlen(s) + 1;
        *text = malloc(*len);
        if (*text) {
            memcpy(*text, s, *len - 1);
            (*text)[*len - 1] = '\n';
        } else {
            r = -ENOMEM;
        }
    }
    json_object_put(list);
    return r;
}
