/*
 * A host's secrets store: the secrets (CHAP passwords ...) its domains'
 * drivers need, kept apart from everything that is shown or shared.
 *
 * One file per domain, DATA_DIR/secrets/UUID, holding the domain's secrets
 * as an option list (<vs/options.h>) and a newline.  The directory is mode
 * 0700 and each file 0600, both owned by the daemon's user (root); a file
 * or directory that anyone else could read or write is refused (-EACCES),
 * so a secret is never used from a place others could have read or
 * planted.  Files are replaced atomically (a temporary file, fsync,
 * rename, fsync of the directory).  Secrets never go to the domain's
 * storage: each host that attaches a domain needs its own copy.
 *
 * The daemon reads the file when it attaches the domain; `vstor secret`
 * writes it.  Messages (the WHY buffers) name files and keys, never values.
 */
#ifndef VS_SECRETS_H
#define VS_SECRETS_H

#include <stddef.h>

#include "vs/options.h"

#define VS_SECRETS_DIR "secrets" /* under the data directory */
#define VS_SECRETS_FILE_MAX 4096 /* bytes of one secrets file */

/* The path of domain UUID's secrets file under DATA_DIR into BUF:
 * 0, or -ENAMETOOLONG. */
int vs_secrets_path(const char *data_dir, const char *uuid, char *buf,
                    size_t len);
/* Read the secrets file PATH into OUT (empty when there is none): 0;
 * -EACCES when the file or its directory is not a regular file or
 * directory owned by this user with no group or other permissions;
 * -EINVAL when it does not parse; other -errno from the file system.  The
 * reason goes into WHY (may be NULL). */
int vs_secrets_load(const char *path, struct vs_options *out, char *why,
                    size_t why_len);
/* Replace the secrets file PATH with S atomically (removing it when S is
 * empty), making its directory (0700) when missing: 0 or -errno, the
 * reason in WHY. */
int vs_secrets_save(const char *path, const struct vs_options *s, char *why,
                    size_t why_len);

#endif
