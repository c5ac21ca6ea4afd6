/*
 * The logger behind <vs/log.h>.  Messages go to stderr (foreground) or
 * syslog (daemon); a level threshold and a bit set of debug categories
 * decide what is shown.  Both are plain atomics so the hot path pays one
 * load when its category is off.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistr.h>

#include "vs/log.h"

static atomic_int log_level = LOG_NOTICE;
static atomic_uint log_categories;
static atomic_bool log_syslog;

static const struct {
    const char *name;
    int level;
} level_names[] = {
    {"err", LOG_ERR},      {"error", LOG_ERR},     {"warning", LOG_WARNING},
    {"warn", LOG_WARNING}, {"notice", LOG_NOTICE}, {"info", LOG_INFO},
    {"debug", LOG_DEBUG},
};

static const struct {
    const char *name;
    unsigned bits;
} cat_names[] = {
    {"fuse", VS_LOG_CAT_FUSE},
    {"io", VS_LOG_CAT_IO},
    {"meta", VS_LOG_CAT_META},
    {"backend", VS_LOG_CAT_BACKEND},
    {"all", ~0u},
};

void
vs_log_use_syslog(bool on)
{
    if (on)
        openlog("vstorfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    atomic_store(&log_syslog, on);
}

void
vs_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int
vs_log_parse_level(const char *name, int *level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i].name) == 0) {
            *level = level_names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

static int
parse_category(const char *word, size_t len, unsigned *bits)
{
    for (size_t i = 0; i < sizeof(cat_names) / sizeof(cat_names[0]); i++) {
        if (strlen(cat_names[i].name) == len &&
            strncmp(word, cat_names[i].name, len) == 0) {
            *bits |= cat_names[i].bits;
            return 0;
        }
    }
    return -EINVAL;
}

int
vs_log_set_categories(const char *list)
{
    unsigned bits = 0;
    const char *p = list;

    while (*p) {
        size_t len = strcspn(p, ",");
        if (len > 0 && parse_category(p, len, &bits) < 0)
            return -EINVAL;
        p += len;
        if (*p == ',')
            p++;
    }
    atomic_store(&log_categories, bits);
    return 0;
}

bool
vs_log_cat_enabled(enum vs_log_cat cat)
{
    return (atomic_load_explicit(&log_categories, memory_order_relaxed) &
            (unsigned)cat) != 0;
}

static void __attribute__((format(printf, 2, 0)))
log_emit(int level, const char *fmt, va_list ap)
{
    static const char *const prefix[] = {"emerg",   "alert",  "crit", "error",
                                         "warning", "notice", "info", "debug"};
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (atomic_load(&log_syslog)) {
        syslog(level, "%s", msg);
        return;
    }
    fprintf(stderr, "vstorfs: %s: %s\n", prefix[level & 7], msg);
}

/* Length of the valid, printable UTF-8 character at S (up to END), or 0
 * for a control character (C0, DEL, C1) or a byte that is not UTF-8. */
static int
printable_length(const uint8_t *s, const uint8_t *end)
{
    ucs4_t uc;
    int n;

    if (*s < 0x20 || *s == 0x7f)
        return 0;
    if (*s < 0x80)
        return 1;
    n = u8_mbtoucr(&uc, s, (size_t)(end - s));
    return n < 1 || uc < 0xa0 ? 0 : n;
}

const char *
vs_log_escape(const char *in, char *buf, size_t len)
{
    const uint8_t *s = (const uint8_t *)in, *end = s + strlen(in);
    size_t used = 0;

    while (s < end && used + 5 < len) {
        int n = printable_length(s, end);

        if (*s == '\n')
            used += (size_t)snprintf(buf + used, len - used, "\\n");
        else if (*s == '\\')
            used += (size_t)snprintf(buf + used, len - used, "\\\\");
        else if (n == 0)
            used += (size_t)snprintf(buf + used, len - used, "\\x%02x", *s);
        else if (used + (size_t)n + 5 < len)
            memcpy(buf + used, s, (size_t)n);
        else
            break;
        used += *s == '\n' || *s == '\\' || n == 0 ? 0 : (size_t)n;
        s += n > 0 ? n : 1;
    }
    buf[used < len ? used : len - 1] = '\0';
    return buf;
}

void
vs_log(int level, const char *fmt, ...)
{
    va_list ap;

    if (level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    log_emit(level, fmt, ap);
    va_end(ap);
}

void
vs_log_debug(enum vs_log_cat cat, const char *fmt, ...)
{
    va_list ap;

    if (!vs_log_cat_enabled(cat))
        return;
    va_start(ap, fmt);
    log_emit(LOG_DEBUG, fmt, ap);
    va_end(ap);
}

int
vs_log_errno(int level, int err, const char *fmt, ...)
{
    va_list ap;

    if (level <= atomic_load_explicit(&log_level, memory_order_relaxed)) {
        va_start(ap, fmt);
        log_emit(level, fmt, ap);
        va_end(ap);
    }
    return err > 0 ? -err : err;
}
