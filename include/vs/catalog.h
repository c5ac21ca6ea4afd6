/*
 * The host's catalog: a SQLite database that mirrors the domains' central
 * metadata and keeps what is local to this host (inode numbers, owners and
 * modes, the list of attached domains, later jobs and leases).
 *
 * The database runs in WAL mode with synchronous=FULL; the schema carries a
 * version (PRAGMA user_version) and migrations bring older files forward.
 * Every change runs in a transaction.  This module owns every SQL statement
 * of the project; SQLite errors become -errno here (corruption: -EUCLEAN,
 * busy: -EBUSY, constraint: -EEXIST, anything else: -EIO).
 *
 * Calls are serialised by the caller (the tree holds its namespace lock for
 * writes); one connection per process.
 */
#ifndef VS_CATALOG_H
#define VS_CATALOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "vs/record.h"

#define VS_CATALOG_SCHEMA_VERSION 2

enum vs_node_kind {
    VS_NODE_ROOT = 0, /* implicit, never stored */
    VS_NODE_DOMAIN = 1,
    VS_NODE_IMAGE = 2,
    VS_NODE_VOLUME = 3,
};

/* One domain, image or volume as the catalog stores it. */
struct vs_cat_node {
    int64_t id;        /* stable, never reused (AUTOINCREMENT), > 0 */
    int64_t parent_id; /* 0 for a domain */
    enum vs_node_kind kind;
    char uuid[VS_UUID_LEN + 1];
    char name[VS_NAME_MAX + 1];
    int64_t created;
    uint32_t slot;       /* its record's slot in the domain's metadata area */
    uint64_t generation; /* of that record when last mirrored */
    uint32_t mode;       /* permission bits shown to the kernel */
    uint32_t uid, gid;
    /* domains only */
    char location[VS_LOCATION_MAX + 1];
    /* domains only: the driver options (text, <vs/options.h>), mirrored
     * from the domain record; never a secret */
    char options[VS_OPTIONS_TEXT_MAX + 1];
    /* volumes only */
    char format[VS_FORMAT_MAX + 1];
    char object[VS_OBJECT_MAX + 1];
    int64_t backing_id; /* 0: a base layer */
    uint32_t flags;     /* enum vs_record_flags */
};

struct vs_catalog;

/* Open (creating and migrating as needed) the catalog at PATH.  -EUCLEAN if
 * the file is not a usable SQLite database or fails its integrity check,
 * -EPROTONOSUPPORT if its schema is newer than this program. */
int vs_catalog_open(const char *path, struct vs_catalog **out);
void vs_catalog_close(struct vs_catalog *cat);
/* Move a damaged catalog at PATH (with its -wal and -shm files) aside to
 * PATH.damaged-<UTC time>, named into ASIDE; nothing is deleted.  Call it
 * closed.  0 or -errno. */
int vs_catalog_set_aside(const char *path, char *aside, size_t len);

/* Transactions around several calls; the single calls below run in their
 * own transaction when none is open. */
int vs_catalog_begin(struct vs_catalog *cat);
int vs_catalog_commit(struct vs_catalog *cat);
void vs_catalog_rollback(struct vs_catalog *cat);

/* Insert NODE and set node->id.  -EEXIST if the uuid or (parent, name) is
 * taken. */
int vs_catalog_insert(struct vs_catalog *cat, struct vs_cat_node *node);
/* Rewrite every column of the row node->id.  -ENOENT if absent. */
int vs_catalog_update(struct vs_catalog *cat, const struct vs_cat_node *node);
/* Delete the row ID (its children must be gone: -ENOTEMPTY). */
int vs_catalog_delete(struct vs_catalog *cat, int64_t id);
/* Look a node up by uuid: 0, or -ENOENT. */
int vs_catalog_get_by_uuid(struct vs_catalog *cat, const char *uuid,
                           struct vs_cat_node *out);
/* Call fn for every node, parents before children (domains, images,
 * volumes, each ordered by id).  Stops on a non-zero return. */
int vs_catalog_foreach(struct vs_catalog *cat,
                       int (*fn)(const struct vs_cat_node *node, void *arg),
                       void *arg);
/* Delete every node (a rebuild from the domains follows). */
int vs_catalog_clear(struct vs_catalog *cat);
/* Number of nodes stored. */
int64_t vs_catalog_count(struct vs_catalog *cat);

/* Host settings kept in the catalog (key/value), e.g. the host id. */
int vs_catalog_get_setting(struct vs_catalog *cat, const char *key, char *buf,
                           size_t len);
int vs_catalog_set_setting(struct vs_catalog *cat, const char *key,
                           const char *value);

#endif
