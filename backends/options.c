/*
 * Option lists (<vs/options.h>): parsing and formatting the
 * "key=value,key=value" text that goes with a domain's location, and the
 * small set of queries drivers make on the parsed list.
 *
 * Parsing is one pass over the text: a key runs up to the first '=', a
 * value up to the first unescaped ',' (or the end), where "\," and "\\"
 * stand for ',' and '\'.  Everything is checked as it is read, into a
 * scratch list that is copied out only when the whole text checks out.
 * The same parser reads secrets files, so no message ever quotes a value,
 * and a scratch list that held values is wiped before it goes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vs/options.h"

#define REDACTED "<secret>"

static bool
key_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') ||
           (!first && ((c >= '0' && c <= '9') || c == '_'));
}

static bool
value_char(char c)
{
    return c >= 0x20 && c <= 0x7e;
}

int
vs_option_key_check(const char *key)
{
    size_t len = strlen(key);

    if (len == 0 || len > VS_OPTION_KEY_MAX)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!key_char(key[i], i == 0))
            return -EINVAL;
    return 0;
}

int
vs_option_value_check(const char *value)
{
    size_t len = strlen(value);

    if (len == 0)
        return -EINVAL;
    if (len > VS_OPTION_VALUE_MAX)
        return -E2BIG;
    for (size_t i = 0; i < len; i++)
        if (!value_char(value[i]))
            return -EINVAL;
    return 0;
}

static int why_set(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write the reason for a refusal into WHY (if given); returns -EINVAL. */
static int
why_set(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int
find(const struct vs_options *o, const char *key)
{
    for (unsigned i = 0; i < o->count; i++)
        if (strcmp(o->item[i].key, key) == 0)
            return (int)i;
    return -1;
}

/* Read a key at *P (up to its '='), into KEY; advances *P past the '='. */
static int
parse_key(const char **p, char *key, unsigned pair, char *why, size_t len)
{
    size_t n = 0;
    const char *s = *p;

    while (*s != '\0' && *s != '=' && *s != ',') {
        if (n == VS_OPTION_KEY_MAX)
            return why_set(why, len, "pair %u: key longer than %d bytes", pair,
                           VS_OPTION_KEY_MAX);
        if (!key_char(*s, n == 0))
            return why_set(why, len,
                           "pair %u: a key is [a-z][a-z0-9_]* (byte %zu)", pair,
                           n + 1);
        key[n++] = *s++;
    }
    key[n] = '\0';
    if (n == 0)
        return why_set(why, len, "pair %u: empty key", pair);
    if (*s != '=')
        return why_set(why, len, "option '%s': no '=' and value", key);
    *p = s + 1;
    return 0;
}

/* Read an escaped value at *P (up to an unescaped ',' or the end) into
 * VALUE; advances *P to that ',' or the end. */
static int
parse_value(const char **p, char *value, const char *key, char *why, size_t len)
{
    size_t n = 0;
    const char *s = *p;

    for (; *s != '\0' && *s != ','; s++) {
        char c = *s;

        if (c == '\\') {
            c = *++s;
            if (c != ',' && c != '\\')
                return why_set(why, len,
                               "option '%s': a '\\' in a value escapes only "
                               "',' or '\\'",
                               key);
        } else if (!value_char(c)) {
            return why_set(why, len,
                           "option '%s': a control or non-ASCII byte in its "
                           "value",
                           key);
        }
        if (n == VS_OPTION_VALUE_MAX) {
            why_set(why, len, "option '%s': value longer than %d bytes", key,
                    VS_OPTION_VALUE_MAX);
            return -E2BIG;
        }
        value[n++] = c;
    }
    value[n] = '\0';
    if (n == 0)
        return why_set(why, len, "option '%s': empty value", key);
    *p = s;
    return 0;
}

static int
parse_list(const char *s, struct vs_options *tmp, char *why, size_t len)
{
    int r;

    while (*s != '\0') {
        struct vs_option *it = &tmp->item[tmp->count];

        if (tmp->count == VS_OPTIONS_COUNT) {
            why_set(why, len, "more than %d options", VS_OPTIONS_COUNT);
            return -E2BIG;
        }
        r = parse_key(&s, it->key, tmp->count + 1, why, len);
        if (r == 0)
            r = parse_value(&s, it->value, it->key, why, len);
        if (r < 0)
            return r;
        if (find(tmp, it->key) >= 0)
            return why_set(why, len, "option '%s' given twice", it->key);
        tmp->count++;
        if (*s == ',' && *++s == '\0')
            return why_set(why, len, "a ',' ends the list");
    }
    return 0;
}

int
vs_options_parse(const char *text, struct vs_options *out, char *why,
                 size_t why_len)
{
    struct vs_options tmp = {.count = 0};
    int r = parse_list(text, &tmp, why, why_len);

    if (r == 0)
        *out = tmp;
    vs_options_wipe(&tmp);
    return r;
}

/* Append S to BUF (LEN bytes, *USED so far), escaping when ESCAPE. */
static int
put(char *buf, size_t len, size_t *used, const char *s, bool escape)
{
    for (; *s != '\0'; s++) {
        bool esc = escape && (*s == ',' || *s == '\\');

        if (*used + (esc ? 2 : 1) >= len)
            return -E2BIG;
        if (esc)
            buf[(*used)++] = '\\';
        buf[(*used)++] = *s;
    }
    buf[*used] = '\0';
    return 0;
}

/* Format O into BUF: every pair (values escaped, or REDACTED when REDACT),
 * or only the keys when KEYS_ONLY.  Never half a list (nor half a value):
 * BUF is empty on failure. */
static int
format_list(const struct vs_options *o, bool redact, bool keys_only, char *buf,
            size_t len)
{
    size_t used = 0;
    int r = len > 0 ? 0 : -E2BIG;

    if (r == 0)
        buf[0] = '\0';
    for (unsigned i = 0; r == 0 && i < o->count; i++) {
        if (i > 0)
            r = put(buf, len, &used, ",", false);
        if (r == 0)
            r = put(buf, len, &used, o->item[i].key, false);
        if (r == 0 && !keys_only)
            r = put(buf, len, &used, "=", false);
        if (r == 0 && !keys_only)
            r = put(buf, len, &used, redact ? REDACTED : o->item[i].value,
                    !redact);
    }
    if (r < 0 && len > 0)
        buf[0] = '\0';
    return r < 0 ? r : (int)used;
}

int
vs_options_format(const struct vs_options *o, bool redact, char *buf,
                  size_t len)
{
    return format_list(o, redact, false, buf, len);
}

int
vs_options_format_keys(const struct vs_options *o, char *buf, size_t len)
{
    return format_list(o, false, true, buf, len);
}

const char *
vs_options_get(const struct vs_options *o, const char *key)
{
    int i = find(o, key);

    return i < 0 ? NULL : o->item[i].value;
}

int
vs_options_set(struct vs_options *o, const char *key, const char *value)
{
    int i = find(o, key);
    int r = vs_option_key_check(key);

    if (r == 0)
        r = vs_option_value_check(value);
    if (r < 0)
        return r;
    if (i < 0 && o->count == VS_OPTIONS_COUNT)
        return -E2BIG;
    if (i < 0) {
        i = (int)o->count++;
        snprintf(o->item[i].key, sizeof(o->item[i].key), "%s", key);
    }
    snprintf(o->item[i].value, sizeof(o->item[i].value), "%s", value);
    return 0;
}

int
vs_options_unset(struct vs_options *o, const char *key)
{
    int i = find(o, key);

    if (i < 0)
        return -ENOENT;
    memmove(&o->item[i], &o->item[i + 1],
            (o->count - (unsigned)i - 1) * sizeof(o->item[0]));
    o->count--;
    explicit_bzero(&o->item[o->count], sizeof(o->item[0]));
    return 0;
}

int
vs_options_get_bool(const struct vs_options *o, const char *key, bool def,
                    bool *out)
{
    const char *v = vs_options_get(o, key);

    if (v == NULL)
        *out = def;
    else if (strcmp(v, "on") == 0)
        *out = true;
    else if (strcmp(v, "off") == 0)
        *out = false;
    else
        return -EINVAL;
    return 0;
}

void
vs_options_wipe(struct vs_options *o)
{
    explicit_bzero(o, sizeof(*o));
}
