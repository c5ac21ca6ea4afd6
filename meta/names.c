/*
 * The names the tree accepts for domains, images and volumes.
 *
 * A name becomes a directory entry under the mount and a value in a
 * metadata record ("name=...\n"), so it must be a single, visible path
 * component: not empty, not "." or "..", no leading '.' (those are hidden
 * and reserved for our own files), no '/', no control character, C0, DEL
 * or C1 (which also keeps '\n' out of the records), valid UTF-8 (no
 * overlong forms, no surrogates, nothing past U+10FFFF), in Unicode NFC
 * (so that "é" composed and decomposed cannot make two volumes whose names
 * look alike; libunistring's u8_normalize decides) and at most VS_NAME_MAX
 * bytes.
 *
 * One classifier finds the first problem; vs_name_check turns it into an
 * errno and vs_name_reason into words, so the two can never disagree.
 * Names already stored in a domain's records are held to the rules of the
 * versions that wrote them (vs_name_check_stored: C1 controls and names not
 * in NFC were accepted before), so that a volume never disappears because
 * its name became invalid.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uninorm.h>

#include "vs/names.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

enum name_problem {
    NAME_OK,
    NAME_MISSING,
    NAME_EMPTY,
    NAME_DOT,
    NAME_LEADING_DOT,
    NAME_SLASH,
    NAME_CONTROL,
    NAME_BAD_UTF8,
    NAME_NOT_NFC,
    NAME_TOO_LONG,
};

static const char *const problem_text[] = {
    [NAME_OK] = "is valid",
    [NAME_MISSING] = "is missing",
    [NAME_EMPTY] = "is empty",
    [NAME_DOT] = "is '.' or '..'",
    [NAME_LEADING_DOT] = "starts with '.'",
    [NAME_SLASH] = "contains '/'",
    [NAME_CONTROL] = "contains a control character",
    [NAME_BAD_UTF8] = "is not valid UTF-8",
    [NAME_NOT_NFC] = "is not in Unicode NFC (write accents composed)",
    /* NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one message */
    [NAME_TOO_LONG] = "is longer than " STRINGIFY(VS_NAME_MAX) " bytes",
};

/*
 * Length of the UTF-8 sequence starting at S (whose first byte is >= 0x80),
 * or 0 if it is not a valid, shortest-form encoding of a scalar value.
 * The first continuation byte's range depends on the lead byte: that is
 * where overlong forms, surrogates and values past U+10FFFF are excluded.
 */
static size_t
utf8_sequence_length(const unsigned char *s)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0; /* continuation byte, overlong C0/C1, or F5..FF */
    if (s[0] == 0xe0)
        lo = 0xa0; /* overlong 3-byte form */
    else if (s[0] == 0xed)
        hi = 0x9f; /* surrogates D800..DFFF */
    else if (s[0] == 0xf0)
        lo = 0x90; /* overlong 4-byte form */
    else if (s[0] == 0xf4)
        hi = 0x8f; /* past U+10FFFF */
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0; /* also stops at the terminating NUL */
    }
    return len;
}

/* The first problem with the characters of S, scanning byte by byte. */
static enum name_problem
check_characters(const unsigned char *s, bool strict)
{
    while (*s != '\0') {
        if (*s == '/')
            return NAME_SLASH;
        if (*s < 0x20 || *s == 0x7f)
            return NAME_CONTROL;
        if (*s < 0x80) {
            s++;
            continue;
        }
        size_t len = utf8_sequence_length(s);
        if (len == 0)
            return NAME_BAD_UTF8;
        if (strict && s[0] == 0xc2 && s[1] <= 0x9f)
            return NAME_CONTROL; /* C1: U+0080..U+009F */
        s += len;
    }
    return NAME_OK;
}

/* NAME (valid UTF-8) is in NFC when normalizing it changes nothing. */
static enum name_problem
check_nfc(const char *name)
{
    uint8_t buf[4 * VS_NAME_MAX], *nfc;
    size_t len = strlen(name), nfc_len = sizeof(buf);
    enum name_problem p;

    nfc = u8_normalize(UNINORM_NFC, (const uint8_t *)name, len, buf, &nfc_len);
    if (nfc == NULL)
        return NAME_BAD_UTF8;
    p = nfc_len == len && memcmp(nfc, name, len) == 0 ? NAME_OK : NAME_NOT_NFC;
    if (nfc != buf)
        free(nfc);
    return p;
}

static enum name_problem
classify(const char *name, bool strict)
{
    enum name_problem p;

    if (name == NULL)
        return NAME_MISSING;
    if (name[0] == '\0')
        return NAME_EMPTY;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return NAME_DOT;
    if (name[0] == '.')
        return NAME_LEADING_DOT;
    if (strnlen(name, VS_NAME_MAX + 1) > VS_NAME_MAX)
        return NAME_TOO_LONG;
    p = check_characters((const unsigned char *)name, strict);
    return p != NAME_OK || !strict ? p : check_nfc(name);
}

static int
problem_errno(enum name_problem p)
{
    switch (p) {
    case NAME_OK:
        return 0;
    case NAME_TOO_LONG:
        return -ENAMETOOLONG;
    default:
        return -EINVAL;
    }
}

int
vs_name_check(const char *name)
{
    return problem_errno(classify(name, true));
}

int
vs_name_check_stored(const char *name)
{
    return problem_errno(classify(name, false));
}

const char *
vs_name_reason(const char *name)
{
    return problem_text[classify(name, true)];
}
