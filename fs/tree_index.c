/*
 * The tree's two indexes, so that no lookup walks a list whose length
 * grows with the number of volumes:
 *   - by catalog id, tree-wide (inode numbers carry the id): a chained hash
 *     table in struct vs_tree, doubled when it holds as many nodes as slots;
 *   - by name, per directory: each node with children keeps a chained hash
 *     table of them (vs_node.names), built from its child list whenever it
 *     grows, so a table that could not be allocated only makes lookups
 *     walk the list, never miss a child.
 * Children also stay in a doubly linked list in creation order (readdir's
 * order), with a tail pointer, so linking and unlinking take constant time.
 * Everything here runs under the tree's write lock (lookups: either lock).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

/* ---- by id ---- */

static size_t
id_slot(const struct vs_tree *tree, int64_t id)
{
    return (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ull >> 32) &
           (tree->hash_size - 1);
}

static int
id_grow(struct vs_tree *tree)
{
    size_t old_size = tree->hash_size, new_size = old_size ? old_size * 2 : 64;
    struct vs_node **old = tree->hash;
    struct vs_node **table = calloc(new_size, sizeof(*table));

    if (!table)
        return -ENOMEM;
    tree->hash = table;
    tree->hash_size = new_size;
    for (size_t i = 0; i < old_size; i++) {
        for (struct vs_node *n = old[i], *next; n; n = next) {
            size_t s = id_slot(tree, n->cat.id);
            next = n->hash_next;
            n->hash_next = table[s];
            table[s] = n;
        }
    }
    free(old);
    return 0;
}

int
vs_tree_index_id(struct vs_tree *tree, struct vs_node *node)
{
    size_t s;

    if (tree->count + 1 > tree->hash_size && id_grow(tree) < 0)
        return -ENOMEM;
    s = id_slot(tree, node->cat.id);
    node->hash_next = tree->hash[s];
    tree->hash[s] = node;
    tree->count++;
    return 0;
}

void
vs_tree_unindex_id(struct vs_tree *tree, struct vs_node *node)
{
    struct vs_node **p;

    if (!tree->hash_size)
        return;
    p = &tree->hash[id_slot(tree, node->cat.id)];
    while (*p && *p != node)
        p = &(*p)->hash_next;
    if (*p) {
        *p = node->hash_next;
        tree->count--;
    }
}

struct vs_node *
vs_tree_node(struct vs_tree *tree, uint64_t ino)
{
    int64_t id;

    if (ino == VS_INO_ROOT)
        return &tree->root;
    id = VS_INO_ID(ino);
    if (id <= 0 || !tree->hash_size)
        return NULL;
    for (struct vs_node *n = tree->hash[id_slot(tree, id)]; n; n = n->hash_next)
        if (n->cat.id == id)
            return n;
    return NULL;
}

/* ---- by name, per directory ---- */

static size_t
name_slot(const struct vs_node *dir, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return (size_t)(h ^ h >> 32) & (dir->names_size - 1);
}

static void
name_add(struct vs_node *dir, struct vs_node *child)
{
    size_t s = name_slot(dir, child->cat.name);

    child->name_next = dir->names[s];
    dir->names[s] = child;
}

static void
name_remove(struct vs_node *dir, struct vs_node *child)
{
    struct vs_node **p;

    if (!dir->names)
        return;
    p = &dir->names[name_slot(dir, child->cat.name)];
    while (*p && *p != child)
        p = &(*p)->name_next;
    if (*p)
        *p = child->name_next;
}

/* Rebuild DIR's table from its child list at twice the size: false on
 * ENOMEM, when the old table stays as it was. */
static bool
names_grow(struct vs_node *dir)
{
    size_t size = dir->names_size ? dir->names_size * 2 : 16;
    struct vs_node **table = calloc(size, sizeof(*table));

    if (!table)
        return false;
    free(dir->names);
    dir->names = table;
    dir->names_size = size;
    for (struct vs_node *c = dir->children; c; c = c->sibling)
        name_add(dir, c);
    return true;
}

struct vs_node *
vs_node_child(struct vs_node *parent, const char *name)
{
    struct vs_node *c;

    if (!parent->names) {
        for (c = parent->children; c; c = c->sibling)
            if (strcmp(c->cat.name, name) == 0)
                return c;
        return NULL;
    }
    for (c = parent->names[name_slot(parent, name)]; c; c = c->name_next)
        if (strcmp(c->cat.name, name) == 0)
            return c;
    return NULL;
}

void
vs_node_link_child(struct vs_node *parent, struct vs_node *child)
{
    child->parent = parent;
    child->sibling = NULL;
    child->prev_sibling = parent->last_child;
    if (parent->last_child)
        parent->last_child->sibling = child;
    else
        parent->children = child;
    parent->last_child = child;
    parent->nchildren++;
    if (parent->nchildren > parent->names_size && names_grow(parent))
        return; /* the new table holds CHILD too */
    if (parent->names)
        name_add(parent, child);
}

void
vs_node_unlink_child(struct vs_node *child)
{
    struct vs_node *parent = child->parent;

    if (!parent)
        return;
    name_remove(parent, child);
    if (child->prev_sibling)
        child->prev_sibling->sibling = child->sibling;
    else
        parent->children = child->sibling;
    if (child->sibling)
        child->sibling->prev_sibling = child->prev_sibling;
    else
        parent->last_child = child->prev_sibling;
    child->sibling = child->prev_sibling = NULL;
    parent->nchildren--;
    if (parent->nchildren == 0) {
        free(parent->names);
        parent->names = NULL;
        parent->names_size = 0;
    }
}

void
vs_node_rename_child(struct vs_node *child, const char *newname)
{
    struct vs_node *parent = child->parent;

    if (strcmp(child->cat.name, newname) == 0)
        return;
    if (parent)
        name_remove(parent, child);
    snprintf(child->cat.name, sizeof(child->cat.name), "%s", newname);
    if (parent && parent->names)
        name_add(parent, child);
}
