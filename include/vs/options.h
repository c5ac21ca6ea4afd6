/*
 * Driver options: the key=value list that goes with a domain's location
 * (the location names the storage; the options say how to use it), and the
 * same list type for a domain's secrets (kept apart, see <vs/secrets.h>).
 *
 * Text form: "key=value[,key=value...]", the empty string for none.
 *   - a key is 1-32 bytes of [a-z0-9_], starting with a letter; each key
 *     appears once;
 *   - a value is 1-128 bytes of printable ASCII (0x20-0x7e); in the text,
 *     a ',' or '\' inside a value is written "\," or "\\" (a '=' needs no
 *     escape: the first '=' ends the key); any other backslash is refused;
 *   - at most VS_OPTIONS_COUNT pairs, VS_OPTIONS_TEXT_MAX bytes of text.
 * Formatting writes keys in the order they were given and escapes values,
 * so parse(format(x)) == x.  Messages about a list (the WHY buffers) name
 * keys and positions, never a value: the same code handles secrets.
 */
#ifndef VS_OPTIONS_H
#define VS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#define VS_OPTION_KEY_MAX 32    /* bytes of a key */
#define VS_OPTION_VALUE_MAX 128 /* bytes of a value, unescaped */
#define VS_OPTIONS_COUNT 16     /* pairs in one list */
#define VS_OPTIONS_TEXT_MAX 255 /* bytes of a list's text (domain options) */

struct vs_option {
    char key[VS_OPTION_KEY_MAX + 1];
    char value[VS_OPTION_VALUE_MAX + 1];
};

/* A list of options; zero-initialised it is the empty list. */
struct vs_options {
    unsigned count;
    struct vs_option item[VS_OPTIONS_COUNT];
};

/* 0 if KEY is a well-formed key, else -EINVAL. */
int vs_option_key_check(const char *key);
/* 0 if VALUE is a well-formed value, else -EINVAL (-E2BIG: too long). */
int vs_option_value_check(const char *value);

/* Parse TEXT (NUL-terminated) into OUT.  -EINVAL for a malformed list
 * (empty or bad key, missing '=', empty value, control character, bad
 * escape, duplicate key), -E2BIG for too many pairs or too long a value;
 * the reason, naming the key but never a value, goes into WHY (may be
 * NULL).  OUT is untouched on failure. */
int vs_options_parse(const char *text, struct vs_options *out, char *why,
                     size_t why_len);
/* Format O into BUF of LEN bytes.  With REDACT every value is written as
 * "<secret>".  Returns the length, or -E2BIG if it does not fit. */
int vs_options_format(const struct vs_options *o, bool redact, char *buf,
                      size_t len);
/* Only the keys of O, comma-separated, into BUF (-E2BIG if too small). */
int vs_options_format_keys(const struct vs_options *o, char *buf, size_t len);

/* The value of KEY in O, or NULL. */
const char *vs_options_get(const struct vs_options *o, const char *key);
/* Set KEY to VALUE (replacing an existing value, or appending): -EINVAL
 * for a bad key or value, -E2BIG when the value is too long or O full. */
int vs_options_set(struct vs_options *o, const char *key, const char *value);
/* Remove KEY from O: 0, or -ENOENT. */
int vs_options_unset(struct vs_options *o, const char *key);
/* KEY of O as a boolean: "on" or "off"; DEF when absent; -EINVAL else. */
int vs_options_get_bool(const struct vs_options *o, const char *key, bool def,
                        bool *out);
/* Overwrite O's contents (it may have held secrets) and empty it. */
void vs_options_wipe(struct vs_options *o);

#endif
