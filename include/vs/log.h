/*
 * The one logger: syslog levels, stderr in the foreground and syslog when
 * daemonized, debug categories switchable at run time.  Library code logs
 * at debug level at most; the top level logs a failure once, naming the
 * object in quotes and the request.
 */
#ifndef VS_LOG_H
#define VS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

enum vs_log_cat {
    VS_LOG_CAT_FUSE = 1 << 0, /* every FUSE request */
    VS_LOG_CAT_IO = 1 << 1,   /* the data path (hot: off by default) */
    VS_LOG_CAT_META = 1 << 2, /* catalog and metadata records */
    VS_LOG_CAT_BACKEND = 1 << 3,
};

/* Log to syslog instead of stderr (after daemonizing). */
void vs_log_use_syslog(bool on);
/* Show messages up to LEVEL (LOG_ERR ... LOG_DEBUG). */
void vs_log_set_level(int level);
/* Parse "err|warning|notice|info|debug" into *level: 0 or -EINVAL. */
int vs_log_parse_level(const char *name, int *level);
/* Enable debug categories from "fuse,io,meta,backend,all": 0 or -EINVAL. */
int vs_log_set_categories(const char *list);
/* Whether debug messages of CAT are on (cheap; for hot paths). */
bool vs_log_cat_enabled(enum vs_log_cat cat);

/* Copy IN into BUF with control characters (C0, DEL, C1), bytes that are
 * not valid UTF-8 and backslashes escaped ("\\n", "\\x1b", "\\xff"), so a
 * user-supplied name cannot split, forge or garble a log line.  Returns
 * BUF. */
const char *vs_log_escape(const char *in, char *buf, size_t len);

void vs_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void vs_log_debug(enum vs_log_cat cat, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Log at LEVEL and return -err: `return vs_log_errno(LOG_ERR, -r, ...)`. */
int vs_log_errno(int level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
