/*
 * Unit test of the SQLite catalog: inserting, updating, deleting and
 * finding nodes, the uniqueness and parent rules, the order of foreach,
 * settings, transactions and rollback, persistence across close and open,
 * and refusing files it must not use (garbage, a damaged database, a schema
 * newer than this program).
 *
 * Every case works in a fresh directory made by mkdtemp under /tmp, removed
 * at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "tap.h"
#include "vs/catalog.h"

static char dir[] = "/tmp/vs-test-catalog-XXXXXX";
static char path[PATH_MAX];

/* Remove every file in the test directory, then the directory. */
static void
remove_dir(void)
{
    char file[PATH_MAX];
    struct dirent *e;
    DIR *d = opendir(dir);

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(file, sizeof(file), "%s/%s", dir, e->d_name);
        unlink(file);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

static void
use_file(const char *name)
{
    snprintf(path, sizeof(path), "%s/%s", dir, name);
}

static struct vs_cat_node
make_node(enum vs_node_kind kind, int64_t parent, const char *uuid,
          const char *name)
{
    struct vs_cat_node n;

    memset(&n, 0, sizeof(n));
    n.kind = kind;
    n.parent_id = parent;
    snprintf(n.uuid, sizeof(n.uuid), "%s", uuid);
    snprintf(n.name, sizeof(n.name), "%s", name);
    n.created = 1795319360;
    n.slot = 3;
    n.generation = 1ull << 40;
    n.mode = 0750;
    n.uid = 1000;
    n.gid = 100;
    return n;
}

/* The tree most cases start from: two domains, an image, two volumes. */
struct tree {
    struct vs_cat_node d1, d2, img, base, top;
};

#define U(n) "00000000-0000-4000-8000-00000000000" #n

static void
build_tree(struct vs_catalog *cat, struct tree *t)
{
    t->d1 = make_node(VS_NODE_DOMAIN, 0, U(1), "prod");
    snprintf(t->d1.location, sizeof(t->d1.location), "dir:/srv/prod");
    is_int(vs_catalog_insert(cat, &t->d1), 0, "insert a domain");
    t->img = make_node(VS_NODE_IMAGE, t->d1.id, U(2), "web");
    is_int(vs_catalog_insert(cat, &t->img), 0, "insert an image");
    t->base = make_node(VS_NODE_VOLUME, t->img.id, U(3), "base");
    snprintf(t->base.format, sizeof(t->base.format), "raw");
    snprintf(t->base.object, sizeof(t->base.object), "%s", U(3));
    is_int(vs_catalog_insert(cat, &t->base), 0, "insert a base volume");
    t->top = make_node(VS_NODE_VOLUME, t->img.id, U(4), "top");
    snprintf(t->top.format, sizeof(t->top.format), "qcow2");
    snprintf(t->top.object, sizeof(t->top.object), "%s", U(4));
    t->top.backing_id = t->base.id;
    t->top.flags = 1;
    is_int(vs_catalog_insert(cat, &t->top), 0, "insert a layered volume");
    t->d2 = make_node(VS_NODE_DOMAIN, 0, U(5), "test");
    is_int(vs_catalog_insert(cat, &t->d2), 0, "insert a second domain");
    ok(t->d1.id > 0 && t->img.id > t->d1.id && t->d2.id > t->top.id,
       "ids are positive and increasing");
}

static bool
same_node(const struct vs_cat_node *a, const struct vs_cat_node *b)
{
    return a->id == b->id && a->parent_id == b->parent_id &&
           a->kind == b->kind && strcmp(a->uuid, b->uuid) == 0 &&
           strcmp(a->name, b->name) == 0 && a->created == b->created &&
           a->slot == b->slot && a->generation == b->generation &&
           a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
           strcmp(a->location, b->location) == 0 &&
           strcmp(a->format, b->format) == 0 &&
           strcmp(a->object, b->object) == 0 &&
           a->backing_id == b->backing_id && a->flags == b->flags;
}

static void
test_get(struct vs_catalog *cat, const struct tree *t)
{
    struct vs_cat_node n;

    is_int(vs_catalog_get_by_uuid(cat, U(1), &n), 0, "get the domain");
    ok(same_node(&n, &t->d1) && n.parent_id == 0, "domain as stored");
    is_int(vs_catalog_get_by_uuid(cat, U(4), &n), 0, "get the top volume");
    ok(same_node(&n, &t->top), "volume as stored");
    is_int(vs_catalog_get_by_uuid(cat, U(3), &n), 0, "get the base volume");
    ok(n.backing_id == 0, "a base layer shows backing 0");
    is_int(vs_catalog_get_by_uuid(cat, U(9), &n), -ENOENT, "unknown uuid");
    is_int(vs_catalog_count(cat), 5, "count");
}

static void
test_uniqueness(struct vs_catalog *cat, const struct tree *t)
{
    struct vs_cat_node n;

    n = make_node(VS_NODE_IMAGE, t->d1.id, U(1), "other");
    is_int(vs_catalog_insert(cat, &n), -EEXIST, "uuid taken");
    n = make_node(VS_NODE_IMAGE, t->d1.id, U(6), "web");
    is_int(vs_catalog_insert(cat, &n), -EEXIST, "name taken in the parent");
    n = make_node(VS_NODE_DOMAIN, 0, U(6), "prod");
    is_int(vs_catalog_insert(cat, &n), -EEXIST, "domain name taken");
    n = make_node(VS_NODE_IMAGE, t->d2.id, U(6), "web");
    is_int(vs_catalog_insert(cat, &n), 0, "same name under another parent");
    is_int(vs_catalog_delete(cat, n.id), 0, "and delete it again");
    n = make_node(VS_NODE_IMAGE, 0, U(7), "orphan");
    is_int(vs_catalog_insert(cat, &n), -EINVAL, "image without parent");
    n = make_node(VS_NODE_DOMAIN, t->d1.id, U(7), "nested");
    is_int(vs_catalog_insert(cat, &n), -EINVAL, "domain with a parent");
    n = make_node(VS_NODE_IMAGE, 9999, U(7), "lost");
    is_int(vs_catalog_insert(cat, &n), -ENOENT, "parent that does not exist");
    is_int(vs_catalog_count(cat), 5, "failed inserts left nothing");
}

struct walk {
    int n;
    int64_t ids[16];
    int kinds[16];
    int stop_after;
};

static int
collect(const struct vs_cat_node *node, void *arg)
{
    struct walk *w = arg;

    if (w->n < 16) {
        w->ids[w->n] = node->id;
        w->kinds[w->n] = node->kind;
    }
    w->n++;
    return w->n == w->stop_after ? 42 : 0;
}

static void
test_foreach(struct vs_catalog *cat, const struct tree *t)
{
    struct walk w = {0};

    is_int(vs_catalog_foreach(cat, collect, &w), 0, "foreach");
    is_int(w.n, 5, "foreach visits every node");
    ok(w.ids[0] == t->d1.id && w.ids[1] == t->d2.id && w.ids[2] == t->img.id &&
           w.ids[3] == t->base.id && w.ids[4] == t->top.id,
       "domains, then images, then volumes, each by id");
    memset(&w, 0, sizeof(w));
    w.stop_after = 2;
    is_int(vs_catalog_foreach(cat, collect, &w), 42, "callback stops it");
    is_int(w.n, 2, "no node after the stop");
    memset(&w, 0, sizeof(w));
    is_int(vs_catalog_foreach(cat, collect, &w), 0, "foreach again");
    is_int(w.n, 5, "a stopped walk does not disturb the next");
}

static void
test_update(struct vs_catalog *cat, struct tree *t)
{
    struct vs_cat_node n = t->top;

    snprintf(n.name, sizeof(n.name), "renamed");
    n.generation = 77;
    n.mode = 0700;
    n.flags = 3;
    is_int(vs_catalog_update(cat, &n), 0, "update a volume");
    vs_catalog_get_by_uuid(cat, U(4), &t->top);
    ok(same_node(&n, &t->top), "every column rewritten");
    snprintf(n.name, sizeof(n.name), "base");
    is_int(vs_catalog_update(cat, &n), -EEXIST, "rename onto a sibling");
    n = t->top;
    n.id = 12345;
    is_int(vs_catalog_update(cat, &n), -ENOENT, "update a missing row");
}

static void
test_delete(struct vs_catalog *cat, const struct tree *t)
{
    struct vs_cat_node n;

    is_int(vs_catalog_delete(cat, t->img.id), -ENOTEMPTY, "image with volumes");
    is_int(vs_catalog_delete(cat, t->base.id), -ENOTEMPTY,
           "volume that backs another");
    is_int(vs_catalog_delete(cat, t->d1.id), -ENOTEMPTY, "domain with images");
    is_int(vs_catalog_delete(cat, t->top.id), 0, "delete the top layer");
    is_int(vs_catalog_delete(cat, t->top.id), -ENOENT, "delete it again");
    is_int(vs_catalog_delete(cat, t->base.id), 0, "then the base");
    is_int(vs_catalog_get_by_uuid(cat, U(3), &n), -ENOENT, "base is gone");
    n = make_node(VS_NODE_VOLUME, t->img.id, U(8), "again");
    snprintf(n.format, sizeof(n.format), "raw");
    is_int(vs_catalog_insert(cat, &n), 0, "insert after deleting");
    ok(n.id > t->d2.id, "ids are never reused");
}

static void
test_transactions(struct vs_catalog *cat, const struct tree *t)
{
    struct vs_cat_node a = make_node(VS_NODE_IMAGE, t->d2.id, U(a), "a");
    struct vs_cat_node b = make_node(VS_NODE_IMAGE, t->d2.id, U(b), "b");
    struct vs_cat_node dup = make_node(VS_NODE_IMAGE, t->d2.id, U(c), "a");
    int64_t before = vs_catalog_count(cat);

    is_int(vs_catalog_begin(cat), 0, "begin");
    is_int(vs_catalog_begin(cat), -EBUSY, "no nested begin");
    is_int(vs_catalog_insert(cat, &a), 0, "insert inside");
    is_int(vs_catalog_insert(cat, &b), 0, "second insert inside");
    is_int(vs_catalog_count(cat), before + 2, "visible inside");
    vs_catalog_rollback(cat);
    is_int(vs_catalog_count(cat), before, "rollback drops both");
    is_int(vs_catalog_get_by_uuid(cat, U(a), &a), -ENOENT, "a is gone");

    is_int(vs_catalog_begin(cat), 0, "begin again");
    is_int(vs_catalog_insert(cat, &a), 0, "insert a");
    is_int(vs_catalog_insert(cat, &dup), -EEXIST, "a failing call inside");
    is_int(vs_catalog_set_setting(cat, "k", "v"), 0, "setting inside");
    is_int(vs_catalog_commit(cat), 0, "commit");
    is_int(vs_catalog_count(cat), before + 1, "a survived the failed call");
    is_int(vs_catalog_commit(cat), -EINVAL, "commit with none open");
    vs_catalog_rollback(cat); /* with none open: nothing happens */
    is_int(vs_catalog_delete(cat, a.id), 0, "single calls work after");
}

static void
test_settings(struct vs_catalog *cat)
{
    char buf[64], tiny[4];

    is_int(vs_catalog_get_setting(cat, "host-id", buf, sizeof(buf)), -ENOENT,
           "unset setting");
    is_int(vs_catalog_set_setting(cat, "host-id", "h1"), 0, "set");
    is_int(vs_catalog_set_setting(cat, "host-id", "host-two"), 0, "overwrite");
    is_int(vs_catalog_get_setting(cat, "host-id", buf, sizeof(buf)), 0, "get");
    ok(strcmp(buf, "host-two") == 0, "value is the last one set");
    is_int(vs_catalog_get_setting(cat, "host-id", tiny, sizeof(tiny)), -ERANGE,
           "buffer too small");
}

static void
test_persistence(void)
{
    struct vs_catalog *cat;
    struct vs_cat_node n;
    char buf[64];

    is_int(vs_catalog_open(path, &cat), 0, "reopen");
    is_int(vs_catalog_count(cat), 4, "nodes persisted");
    is_int(vs_catalog_get_by_uuid(cat, U(4), &n), -ENOENT, "deleted stays");
    is_int(vs_catalog_get_by_uuid(cat, U(8), &n), 0, "inserted stays");
    is_int(vs_catalog_get_setting(cat, "host-id", buf, sizeof(buf)), 0,
           "setting persisted");
    vs_catalog_close(cat);
}

/* Check with SQLite itself what the file looks like. */
static void
test_file_format(void)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    const char *mode = "";
    int version = -1;

    ok(sqlite3_open(path, &db) == SQLITE_OK, "sqlite opens the file");
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        mode = strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0
                   ? "wal"
                   : "other";
    sqlite3_finalize(st);
    ok(strcmp(mode, "wal") == 0, "journal mode is WAL");
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    is_int(version, VS_CATALOG_SCHEMA_VERSION, "schema version recorded");
    sqlite3_close(db);
}

static void
test_main_file(void)
{
    struct vs_catalog *cat;
    struct tree t;

    use_file("catalog.db");
    if (!ok(vs_catalog_open(path, &cat) == 0, "create a catalog"))
        return;
    is_int(vs_catalog_count(cat), 0, "empty at first");
    build_tree(cat, &t);
    test_get(cat, &t);
    test_uniqueness(cat, &t);
    test_foreach(cat, &t);
    test_update(cat, &t);
    test_delete(cat, &t);
    test_transactions(cat, &t);
    test_settings(cat);
    vs_catalog_close(cat);
    test_persistence();
    test_file_format();
}

static void
write_file(const char *name, const void *data, size_t len, off_t offset)
{
    int fd;

    use_file(name);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || pwrite(fd, data, len, offset) != (ssize_t)len)
        tap_diag("cannot write %s", path);
    if (fd >= 0)
        close(fd);
}

static void
test_garbage(void)
{
    struct vs_catalog *cat = NULL;
    char junk[8192];

    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)('a' + i % 26);
    write_file("garbage.db", junk, sizeof(junk), 0);
    is_int(vs_catalog_open(path, &cat), -EUCLEAN, "garbage file refused");
    ok(cat == NULL, "nothing returned for it");
}

static void
test_damaged(void)
{
    struct vs_catalog *cat;
    struct vs_cat_node n;
    char junk[3000];

    use_file("damaged.db");
    if (vs_catalog_open(path, &cat) < 0)
        return;
    n = make_node(VS_NODE_DOMAIN, 0, U(1), "prod");
    vs_catalog_insert(cat, &n);
    vs_catalog_close(cat);
    memset(junk, 0x5a, sizeof(junk));
    write_file("damaged.db", junk, sizeof(junk), 100); /* the schema page */
    is_int(vs_catalog_open(path, &cat), -EUCLEAN, "damaged database refused");
}

static void
test_future_schema(void)
{
    struct vs_catalog *cat;
    sqlite3 *db;

    use_file("future.db");
    ok(sqlite3_open(path, &db) == SQLITE_OK &&
           sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL) ==
               SQLITE_OK,
       "make a file with schema version 999");
    sqlite3_close(db);
    is_int(vs_catalog_open(path, &cat), -EPROTONOSUPPORT,
           "newer schema refused");
    snprintf(path, sizeof(path), "%s/no/such/dir/c.db", dir);
    is_int(vs_catalog_open(path, &cat), -ENOENT, "missing directory");
}

int
main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_main_file();
    test_garbage();
    test_damaged();
    test_future_schema();
    remove_dir();
    return tap_done();
}
