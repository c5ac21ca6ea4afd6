/*
 * The extended attributes vstorfs shows and takes, shared by the daemon and
 * the vstor tool.  Read-only ones describe a node; writable ones ask for an
 * action (setting them is the command).
 */
#ifndef VS_XATTR_H
#define VS_XATTR_H

#define VS_XATTR_PREFIX "user.vstor."

/* read-only, on every node */
#define VS_XATTR_UUID "user.vstor.uuid"
#define VS_XATTR_KIND "user.vstor.kind"           /* domain|image|volume|... */
#define VS_XATTR_SIZE "user.vstor.size"           /* virtual bytes */
#define VS_XATTR_ALLOCATED "user.vstor.allocated" /* bytes on storage */
#define VS_XATTR_FORMAT "user.vstor.format"       /* raw, qcow2, or "-" */
#define VS_XATTR_BACKEND "user.vstor.backend"     /* "dir dir:/path" */
#define VS_XATTR_CREATED "user.vstor.created"     /* ISO 8601 UTC */
#define VS_XATTR_CAPS "user.vstor.caps"           /* offloads, comma list */
#define VS_XATTR_JOB "user.vstor.job"   /* volume: its merge, while one runs */
#define VS_XATTR_JOBS "user.vstor.jobs" /* root: every job, one per line */
#define VS_XATTR_OBJECT "user.vstor.object" /* volume: object on store */
#define VS_XATTR_STATUS "user.vstor.status" /* volume: ok|unavailable: why */
/* volume (not listed): "on N" while N handles are served by kernel FUSE
 * passthrough, else "off" */
#define VS_XATTR_PASSTHROUGH "user.vstor.passthrough"
/* domain: the names (never the values) of the secrets its store was
 * attached with, comma-separated */
#define VS_XATTR_SECRETS "user.vstor.secrets"
/* domain: the file this host reads its secrets from (vstor secret) */
#define VS_XATTR_SECRETS_FILE "user.vstor.secrets-file"

/* writable actions */
#define VS_XATTR_RESCAN "user.vstor.rescan"     /* root: value "1" */
#define VS_XATTR_SHRINK "user.vstor.shrink-to"  /* volume: new size */
#define VS_XATTR_SNAPSHOT "user.vstor.snapshot" /* volume: snapshot name */
/* domain, readable and writable: its driver options, "key=value,..."
 * (<vs/options.h>); applied at the domain's next attach */
#define VS_XATTR_OPTIONS "user.vstor.options"

#endif
