/*
 * The host's catalog (contract in <vs/catalog.h>): one SQLite database
 * holding the tree's nodes and the host's settings.  Every SQL statement of
 * the project lives in this file.
 *
 * Opening runs, in order: the integrity check (PRAGMA quick_check, which
 * also catches a file that is not a database at all), the connection
 * settings (WAL, synchronous=FULL, foreign keys, a busy timeout), and the
 * migrations.  The schema version is PRAGMA user_version; migrations[v]
 * brings a version-v file to v + 1, and all pending steps run in one
 * IMMEDIATE transaction that also sets the new version, so a crash or a
 * concurrent opener never sees a half-migrated file.
 *
 * The statements the API runs are prepared on first use and kept in the
 * struct.  A change made by a single call runs in its own transaction
 * unless the caller opened one with vs_catalog_begin, in which case it
 * joins that one (txn_enter/txn_leave).  SQLite result codes become -errno
 * in one place, sqlite_errno().
 *
 * In the table, a domain's parent_id and a base layer's backing_id are
 * NULL (so foreign keys can refer to real rows); the API shows both as 0.
 * Domain names are kept unique by a partial index, since UNIQUE(parent_id,
 * name) treats NULL parents as all different.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vs/catalog.h"
#include "vs/log.h"

#define BUSY_TIMEOUT_MS 10000

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INSERT,
    ST_UPDATE,
    ST_DELETE,
    ST_HAS_CHILDREN,
    ST_GET_BY_UUID,
    ST_FOREACH,
    ST_COUNT_NODES,
    ST_GET_SETTING,
    ST_SET_SETTING,
    ST_CLEAR,
    ST_COUNT,
};

#define NODE_COLUMNS                                                           \
    "parent_id, kind, uuid, name, created, slot, generation, mode, uid, gid, " \
    "location, format, object, backing_id, flags, options"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT] = "INSERT INTO nodes (" NODE_COLUMNS ") VALUES "
                  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
                  "?14, ?15, ?16)",
    [ST_UPDATE] = "UPDATE nodes SET parent_id = ?1, kind = ?2, uuid = ?3, "
                  "name = ?4, created = ?5, slot = ?6, generation = ?7, "
                  "mode = ?8, uid = ?9, gid = ?10, location = ?11, "
                  "format = ?12, object = ?13, backing_id = ?14, "
                  "flags = ?15, options = ?16 WHERE id = ?17",
    [ST_DELETE] = "DELETE FROM nodes WHERE id = ?1",
    [ST_HAS_CHILDREN] = "SELECT EXISTS (SELECT 1 FROM nodes "
                        "WHERE parent_id = ?1 OR backing_id = ?1)",
    [ST_GET_BY_UUID] = "SELECT id, " NODE_COLUMNS " FROM nodes "
                       "WHERE uuid = ?1",
    [ST_FOREACH] = "SELECT id, " NODE_COLUMNS " FROM nodes "
                   "ORDER BY kind, id",
    [ST_COUNT_NODES] = "SELECT count(*) FROM nodes",
    /* one statement: references between the rows go with them */
    [ST_CLEAR] = "DELETE FROM nodes",
    [ST_GET_SETTING] = "SELECT value FROM settings WHERE key = ?1",
    [ST_SET_SETTING] = "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
};

/* migrations[v] turns a schema of version v into version v + 1. */
static const char *const migrations[] = {
    /* 0 -> 1: the nodes of the tree and the host's settings */
    "CREATE TABLE nodes ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " parent_id INTEGER REFERENCES nodes (id),"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),"
    " uuid TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " slot INTEGER NOT NULL,"
    " generation INTEGER NOT NULL,"
    " mode INTEGER NOT NULL,"
    " uid INTEGER NOT NULL,"
    " gid INTEGER NOT NULL,"
    " location TEXT NOT NULL DEFAULT '',"
    " format TEXT NOT NULL DEFAULT '',"
    " object TEXT NOT NULL DEFAULT '',"
    " backing_id INTEGER REFERENCES nodes (id),"
    " flags INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (uuid),"
    " UNIQUE (parent_id, name),"
    " CHECK ((kind = 1) = (parent_id IS NULL)));"
    "CREATE UNIQUE INDEX nodes_domain_name ON nodes (name)"
    " WHERE parent_id IS NULL;"
    "CREATE INDEX nodes_backing ON nodes (backing_id);"
    "CREATE TABLE settings ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " value TEXT NOT NULL) WITHOUT ROWID;",
    /* 1 -> 2: a domain's driver options (never its secrets) */
    "ALTER TABLE nodes ADD COLUMN options TEXT NOT NULL DEFAULT '';",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
                   VS_CATALOG_SCHEMA_VERSION,
               "one migration per schema version");

struct vs_catalog {
    sqlite3 *db;
    bool in_txn;       /* a vs_catalog_begin transaction is open */
    bool foreach_busy; /* ST_FOREACH is being stepped */
    sqlite3_stmt *stmts[ST_COUNT];
};

/* ---- errors ---- */

static int
constraint_errno(int rc)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return -ENOENT; /* the parent or backing row is not there */
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        return -EINVAL;
    default:
        return -EEXIST; /* UNIQUE, PRIMARY KEY: the name or uuid is taken */
    }
}

/* The one place where SQLite result codes (extended) become -errno. */
static int
sqlite_errno(sqlite3 *db, int rc)
{
    int sys;

    if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;
    vs_log_debug(VS_LOG_CAT_META, "catalog: sqlite error %d: %s", rc,
                 db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        /* keep the evidence: closing must neither checkpoint the -wal into
         * the damaged file nor delete it (it is set aside with the file) */
        if (db != NULL)
            sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        return -EUCLEAN;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
        return constraint_errno(rc);
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_CANTOPEN:
        sys = db != NULL ? sqlite3_system_errno(db) : 0;
        return sys > 0 ? -sys : -EIO;
    default:
        return -EIO;
    }
}

/* ---- statements ---- */

static int
stmt_get(struct vs_catalog *cat, enum stmt_id id, sqlite3_stmt **out)
{
    *out = NULL;
    if (cat->stmts[id] == NULL) {
        int rc = sqlite3_prepare_v3(cat->db, stmt_sql[id], -1,
                                    SQLITE_PREPARE_PERSISTENT, &cat->stmts[id],
                                    NULL);
        if (rc != SQLITE_OK)
            return sqlite_errno(cat->db, rc);
    }
    *out = cat->stmts[id];
    return 0;
}

/* Make ST ready for its next use; returns R for convenience. */
static int
stmt_release(sqlite3_stmt *st, int r)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

/* Step ST once, expecting it to finish (no row): 0 or -errno. */
static int
stmt_run(struct vs_catalog *cat, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    return stmt_release(st, rc == SQLITE_DONE ? 0 : sqlite_errno(cat->db, rc));
}

/* Run a statement without parameters or result rows. */
static int
run_simple(struct vs_catalog *cat, enum stmt_id id)
{
    sqlite3_stmt *st;
    int r;

    r = stmt_get(cat, id, &st);
    if (r < 0)
        return r;
    return stmt_run(cat, st);
}

/* Binding: keep the first failure, so a run of binds is checked once. */
struct binder {
    sqlite3_stmt *st;
    int rc;
};

static void
bind_int(struct binder *b, int idx, int64_t v)
{
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_int64(b->st, idx, v);
}

/* Bind a row id, 0 meaning "none" (NULL in the table). */
static void
bind_id(struct binder *b, int idx, int64_t id)
{
    if (b->rc == SQLITE_OK)
        b->rc = id == 0 ? sqlite3_bind_null(b->st, idx)
                        : sqlite3_bind_int64(b->st, idx, id);
}

static void
bind_text(struct binder *b, int idx, const char *s)
{
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_text(b->st, idx, s, -1, SQLITE_STATIC);
}

/* Bind NODE's columns (without id) to parameters 1..16 of ST. */
static int
bind_node(struct vs_catalog *cat, sqlite3_stmt *st,
          const struct vs_cat_node *node)
{
    struct binder b = {st, SQLITE_OK};

    bind_id(&b, 1, node->parent_id);
    bind_int(&b, 2, node->kind);
    bind_text(&b, 3, node->uuid);
    bind_text(&b, 4, node->name);
    bind_int(&b, 5, node->created);
    bind_int(&b, 6, node->slot);
    bind_int(&b, 7, (int64_t)node->generation);
    bind_int(&b, 8, node->mode);
    bind_int(&b, 9, node->uid);
    bind_int(&b, 10, node->gid);
    bind_text(&b, 11, node->location);
    bind_text(&b, 12, node->format);
    bind_text(&b, 13, node->object);
    bind_id(&b, 14, node->backing_id);
    bind_int(&b, 15, node->flags);
    bind_text(&b, 16, node->options);
    return sqlite_errno(cat->db, b.rc);
}

/* Copy text column COL into FIELD of SIZE bytes; too long: -EUCLEAN. */
static int
column_text(sqlite3_stmt *st, int col, char *field, size_t size)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);

    if (text == NULL)
        len = 0;
    if (len >= size)
        return -EUCLEAN;
    if (len > 0)
        memcpy(field, text, len);
    field[len] = '\0';
    return 0;
}

/* Fill OUT from the current row of a "SELECT id, NODE_COLUMNS" query. */
static int
column_node(sqlite3_stmt *st, struct vs_cat_node *out)
{
    memset(out, 0, sizeof(*out));
    out->id = sqlite3_column_int64(st, 0);
    out->parent_id = sqlite3_column_int64(st, 1); /* NULL reads as 0 */
    out->kind = (enum vs_node_kind)sqlite3_column_int(st, 2);
    out->created = sqlite3_column_int64(st, 5);
    out->slot = (uint32_t)sqlite3_column_int64(st, 6);
    out->generation = (uint64_t)sqlite3_column_int64(st, 7);
    out->mode = (uint32_t)sqlite3_column_int64(st, 8);
    out->uid = (uint32_t)sqlite3_column_int64(st, 9);
    out->gid = (uint32_t)sqlite3_column_int64(st, 10);
    out->backing_id = sqlite3_column_int64(st, 14);
    out->flags = (uint32_t)sqlite3_column_int64(st, 15);
    if (column_text(st, 3, out->uuid, sizeof(out->uuid)) < 0 ||
        column_text(st, 4, out->name, sizeof(out->name)) < 0 ||
        column_text(st, 11, out->location, sizeof(out->location)) < 0 ||
        column_text(st, 12, out->format, sizeof(out->format)) < 0 ||
        column_text(st, 13, out->object, sizeof(out->object)) < 0 ||
        column_text(st, 16, out->options, sizeof(out->options)) < 0)
        return -EUCLEAN;
    return 0;
}

/* ---- transactions ---- */

/* Open a transaction for a single call unless the caller has one. */
static int
txn_enter(struct vs_catalog *cat, bool *own)
{
    *own = !cat->in_txn;
    return *own ? run_simple(cat, ST_BEGIN) : 0;
}

/* Finish what txn_enter started: commit if R is 0, roll back otherwise. */
static int
txn_leave(struct vs_catalog *cat, bool own, int r)
{
    if (!own)
        return r;
    if (r == 0)
        r = run_simple(cat, ST_COMMIT);
    if (r < 0 && !sqlite3_get_autocommit(cat->db))
        run_simple(cat, ST_ROLLBACK);
    return r;
}

int
vs_catalog_begin(struct vs_catalog *cat)
{
    int r;

    if (cat->in_txn)
        return -EBUSY;
    r = run_simple(cat, ST_BEGIN);
    if (r == 0)
        cat->in_txn = true;
    return r;
}

int
vs_catalog_commit(struct vs_catalog *cat)
{
    int r;

    if (!cat->in_txn)
        return -EINVAL;
    r = run_simple(cat, ST_COMMIT);
    /* a failed COMMIT may leave the transaction open (busy) or not */
    cat->in_txn = !sqlite3_get_autocommit(cat->db);
    return r;
}

void
vs_catalog_rollback(struct vs_catalog *cat)
{
    if (!cat->in_txn)
        return;
    if (!sqlite3_get_autocommit(cat->db))
        run_simple(cat, ST_ROLLBACK);
    cat->in_txn = false;
}

/* ---- nodes ---- */

static bool
terminated(const char *field, size_t size)
{
    return strnlen(field, size) < size;
}

/* Sanity of a node the caller hands in: -EINVAL if it cannot be stored. */
static int
check_node(const struct vs_cat_node *node)
{
    if (node->kind < VS_NODE_DOMAIN || node->kind > VS_NODE_VOLUME)
        return -EINVAL;
    if ((node->kind == VS_NODE_DOMAIN) != (node->parent_id == 0))
        return -EINVAL;
    if (node->parent_id < 0 || node->backing_id < 0)
        return -EINVAL;
    if (!terminated(node->uuid, sizeof(node->uuid)) ||
        !terminated(node->name, sizeof(node->name)) ||
        !terminated(node->location, sizeof(node->location)) ||
        !terminated(node->options, sizeof(node->options)) ||
        !terminated(node->format, sizeof(node->format)) ||
        !terminated(node->object, sizeof(node->object)))
        return -EINVAL;
    return 0;
}

static int
insert_row(struct vs_catalog *cat, const struct vs_cat_node *node, int64_t *id)
{
    sqlite3_stmt *st;
    int r;

    r = stmt_get(cat, ST_INSERT, &st);
    if (r < 0)
        return r;
    r = bind_node(cat, st, node);
    if (r < 0)
        return stmt_release(st, r);
    r = stmt_run(cat, st);
    if (r == 0)
        *id = sqlite3_last_insert_rowid(cat->db);
    return r;
}

int
vs_catalog_insert(struct vs_catalog *cat, struct vs_cat_node *node)
{
    int64_t id = 0;
    bool own;
    int r;

    r = check_node(node);
    if (r < 0)
        return r;
    r = txn_enter(cat, &own);
    if (r < 0)
        return r;
    r = txn_leave(cat, own, insert_row(cat, node, &id));
    if (r == 0)
        node->id = id;
    return r;
}

static int
update_row(struct vs_catalog *cat, const struct vs_cat_node *node)
{
    sqlite3_stmt *st;
    int r;

    r = stmt_get(cat, ST_UPDATE, &st);
    if (r < 0)
        return r;
    r = bind_node(cat, st, node);
    if (r == 0)
        r = sqlite_errno(cat->db, sqlite3_bind_int64(st, 17, node->id));
    if (r < 0)
        return stmt_release(st, r);
    r = stmt_run(cat, st);
    if (r == 0 && sqlite3_changes(cat->db) == 0)
        r = -ENOENT;
    return r;
}

int
vs_catalog_update(struct vs_catalog *cat, const struct vs_cat_node *node)
{
    bool own;
    int r;

    r = check_node(node);
    if (r < 0)
        return r;
    r = txn_enter(cat, &own);
    if (r < 0)
        return r;
    return txn_leave(cat, own, update_row(cat, node));
}

/* 1 if some node names ID as its parent or backing layer, 0 if none. */
static int
has_children(struct vs_catalog *cat, int64_t id)
{
    sqlite3_stmt *st;
    int r, rc;

    r = stmt_get(cat, ST_HAS_CHILDREN, &st);
    if (r < 0)
        return r;
    rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        r = sqlite3_column_int(st, 0) != 0;
    else
        r = sqlite_errno(cat->db, rc);
    return stmt_release(st, r);
}

static int
delete_row(struct vs_catalog *cat, int64_t id)
{
    sqlite3_stmt *st;
    int r;

    r = has_children(cat, id);
    if (r != 0)
        return r > 0 ? -ENOTEMPTY : r;
    r = stmt_get(cat, ST_DELETE, &st);
    if (r < 0)
        return r;
    r = sqlite_errno(cat->db, sqlite3_bind_int64(st, 1, id));
    if (r < 0)
        return stmt_release(st, r);
    r = stmt_run(cat, st);
    if (r == 0 && sqlite3_changes(cat->db) == 0)
        r = -ENOENT;
    return r;
}

int
vs_catalog_delete(struct vs_catalog *cat, int64_t id)
{
    bool own;
    int r;

    r = txn_enter(cat, &own);
    if (r < 0)
        return r;
    return txn_leave(cat, own, delete_row(cat, id));
}

int
vs_catalog_get_by_uuid(struct vs_catalog *cat, const char *uuid,
                       struct vs_cat_node *out)
{
    sqlite3_stmt *st;
    int r, rc;

    r = stmt_get(cat, ST_GET_BY_UUID, &st);
    if (r < 0)
        return r;
    rc = sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        r = column_node(st, out);
    else if (rc == SQLITE_DONE)
        r = -ENOENT;
    else
        r = sqlite_errno(cat->db, rc);
    return stmt_release(st, r);
}

/* Step the foreach query, calling FN per row, until done, error or stop. */
static int
foreach_rows(struct vs_catalog *cat, sqlite3_stmt *st,
             int (*fn)(const struct vs_cat_node *node, void *arg), void *arg)
{
    struct vs_cat_node node;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int r = column_node(st, &node);
        if (r == 0)
            r = fn(&node, arg);
        if (r != 0)
            return r;
    }
    return sqlite_errno(cat->db, rc);
}

int
vs_catalog_foreach(struct vs_catalog *cat,
                   int (*fn)(const struct vs_cat_node *node, void *arg),
                   void *arg)
{
    sqlite3_stmt *st;
    int r;

    if (cat->foreach_busy)
        return -EBUSY; /* the cached statement is in use further up */
    r = stmt_get(cat, ST_FOREACH, &st);
    if (r < 0)
        return r;
    cat->foreach_busy = true;
    r = foreach_rows(cat, st, fn, arg);
    cat->foreach_busy = false;
    return stmt_release(st, r);
}

int
vs_catalog_clear(struct vs_catalog *cat)
{
    bool own;
    int r = txn_enter(cat, &own);

    if (r < 0)
        return r;
    return txn_leave(cat, own, run_simple(cat, ST_CLEAR));
}

int64_t
vs_catalog_count(struct vs_catalog *cat)
{
    sqlite3_stmt *st;
    int64_t n;
    int r, rc;

    r = stmt_get(cat, ST_COUNT_NODES, &st);
    if (r < 0)
        return r;
    rc = sqlite3_step(st);
    n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0)
                         : sqlite_errno(cat->db, rc);
    stmt_release(st, 0);
    return n;
}

/* ---- settings ---- */

int
vs_catalog_get_setting(struct vs_catalog *cat, const char *key, char *buf,
                       size_t len)
{
    sqlite3_stmt *st;
    int r, rc;

    r = stmt_get(cat, ST_GET_SETTING, &st);
    if (r < 0)
        return r;
    rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        r = column_text(st, 0, buf, len) < 0 ? -ERANGE : 0;
    else if (rc == SQLITE_DONE)
        r = -ENOENT;
    else
        r = sqlite_errno(cat->db, rc);
    return stmt_release(st, r);
}

static int
set_setting_row(struct vs_catalog *cat, const char *key, const char *value)
{
    sqlite3_stmt *st;
    struct binder b;
    int r;

    r = stmt_get(cat, ST_SET_SETTING, &st);
    if (r < 0)
        return r;
    b = (struct binder){st, SQLITE_OK};
    bind_text(&b, 1, key);
    bind_text(&b, 2, value);
    if (b.rc != SQLITE_OK)
        return stmt_release(st, sqlite_errno(cat->db, b.rc));
    return stmt_run(cat, st);
}

int
vs_catalog_set_setting(struct vs_catalog *cat, const char *key,
                       const char *value)
{
    bool own;
    int r;

    r = txn_enter(cat, &own);
    if (r < 0)
        return r;
    return txn_leave(cat, own, set_setting_row(cat, key, value));
}

/* ---- opening: checks, settings, migrations ---- */

/* Run SQL (no parameters) and copy the first column of its first row into
 * TEXT (LEN bytes) and NUM; "" and 0 if it returns no row. */
static int
query_one(sqlite3 *db, const char *sql, char *text, size_t len, int64_t *num)
{
    sqlite3_stmt *st = NULL;
    int rc;

    text[0] = '\0';
    *num = 0;
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);

        snprintf(text, len, "%s", t != NULL ? (const char *)t : "");
        *num = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    rc = sqlite_errno(db, rc);
    sqlite3_finalize(st);
    return rc;
}

static int
exec_sql(sqlite3 *db, const char *sql)
{
    return sqlite_errno(db, sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* quick_check answers one row "ok", or rows of problems, or an error. */
static int
check_integrity(sqlite3 *db)
{
    char answer[16];
    int64_t unused;
    int r;

    r = query_one(db, "PRAGMA quick_check", answer, sizeof(answer), &unused);
    if (r < 0)
        return r; /* not a database at all: SQLITE_NOTADB, -EUCLEAN */
    if (strcmp(answer, "ok") != 0) {
        vs_log_debug(VS_LOG_CAT_META, "catalog: quick_check: %s", answer);
        return -EUCLEAN;
    }
    return 0;
}

static int
configure(sqlite3 *db)
{
    char mode[16];
    int64_t unused;
    int r;

    r = query_one(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode), &unused);
    if (r < 0)
        return r;
    if (strcmp(mode, "wal") != 0) {
        vs_log_debug(VS_LOG_CAT_META, "catalog: journal mode is %s", mode);
        return -EIO;
    }
    return exec_sql(db, "PRAGMA synchronous = FULL;"
                        "PRAGMA foreign_keys = ON;");
}

static int
schema_version(sqlite3 *db, int64_t *version)
{
    char unused[24];

    return query_one(db, "PRAGMA user_version", unused, sizeof(unused),
                     version);
}

/* Apply migrations from VERSION on; runs inside the caller's transaction. */
static int
apply_migrations(sqlite3 *db, int64_t version)
{
    char sql[64];

    for (int64_t v = version; v < VS_CATALOG_SCHEMA_VERSION; v++) {
        int r;

        vs_log_debug(VS_LOG_CAT_META, "catalog: migrating schema %lld to %lld",
                     (long long)v, (long long)v + 1);
        r = exec_sql(db, migrations[v]);
        if (r < 0)
            return r;
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
             VS_CATALOG_SCHEMA_VERSION);
    return exec_sql(db, sql);
}

static int
migrate(sqlite3 *db)
{
    int64_t version;
    int r;

    r = schema_version(db, &version);
    if (r == 0 && version == VS_CATALOG_SCHEMA_VERSION)
        return 0;
    if (r == 0)
        r = exec_sql(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    /* read again under the write lock: another opener may have migrated */
    r = schema_version(db, &version);
    if (r == 0 && (version < 0 || version > VS_CATALOG_SCHEMA_VERSION))
        r = -EPROTONOSUPPORT;
    if (r == 0 && version < VS_CATALOG_SCHEMA_VERSION)
        r = apply_migrations(db, version);
    if (r == 0)
        r = exec_sql(db, "COMMIT");
    if (r < 0 && !sqlite3_get_autocommit(db))
        exec_sql(db, "ROLLBACK");
    return r;
}

/* The catalog holds every volume's owner and mode: root's only (0600).
 * SQLite creates its -wal and -shm files with the main file's mode, so the
 * main file is made 0600 before SQLite opens it, and files an older
 * version left more open are closed down. */
static int
restrict_mode(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char name[4096];
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0)
        return -errno;
    close(fd);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(*suffixes); i++) {
        snprintf(name, sizeof(name), "%s%s", path, suffixes[i]);
        if (chmod(name, 0600) < 0 && errno != ENOENT)
            return -errno;
    }
    return 0;
}

static int
open_db(const char *path, sqlite3 **db)
{
    int rc = restrict_mode(path);

    *db = NULL;
    if (rc < 0)
        return rc;
    rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                         NULL);
    if (*db == NULL)
        return -ENOMEM;
    if (rc != SQLITE_OK)
        return sqlite_errno(*db, rc);
    sqlite3_extended_result_codes(*db, 1);
    return sqlite_errno(*db, sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS));
}

int
vs_catalog_open(const char *path, struct vs_catalog **out)
{
    struct vs_catalog *cat;
    int r;

    cat = calloc(1, sizeof(*cat));
    if (cat == NULL)
        return -ENOMEM;
    r = open_db(path, &cat->db);
    if (r == 0)
        r = check_integrity(cat->db);
    if (r == 0)
        r = configure(cat->db);
    if (r == 0)
        r = migrate(cat->db);
    if (r < 0) {
        vs_log_debug(VS_LOG_CAT_META, "catalog: cannot open \"%s\": %s", path,
                     strerror(-r));
        vs_catalog_close(cat);
        return r;
    }
    *out = cat;
    return 0;
}

int
vs_catalog_set_aside(const char *path, char *aside, size_t len)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char stamp[32], from[4096], to[4096];
    struct tm tm;
    time_t now = time(NULL);

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    if ((size_t)snprintf(aside, len, "%s.damaged-%s", path, stamp) >= len)
        return -ENAMETOOLONG;
    /* the main file last: until it moves, a retry finds it again */
    for (size_t i = sizeof(suffixes) / sizeof(*suffixes); i-- > 0;) {
        snprintf(from, sizeof(from), "%s%s", path, suffixes[i]);
        snprintf(to, sizeof(to), "%s%s", aside, suffixes[i]);
        if (rename(from, to) < 0 && (errno != ENOENT || i == 0))
            return -errno;
    }
    return 0;
}

void
vs_catalog_close(struct vs_catalog *cat)
{
    if (cat == NULL)
        return;
    vs_catalog_rollback(cat);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(cat->stmts[i]);
    sqlite3_close(cat->db);
    free(cat);
}
