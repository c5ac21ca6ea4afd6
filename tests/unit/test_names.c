/*
 * Unit test of the name rules (vs_name_check, vs_name_reason) and of the
 * small identity helpers next to them (uuids, ISO 8601 times).
 */
#include <errno.h>
#include <string.h>

#include "tap.h"
#include "vs/names.h"
#include "vs/util.h"

static void
accept(const char *name, const char *what)
{
    is_int(vs_name_check(name), 0, what);
}

static void
refuse(const char *name, int err, const char *what)
{
    is_int(vs_name_check(name), err, what);
}

static void
test_accepted(void)
{
    char longest[VS_NAME_MAX + 1];

    accept("web01", "plain name");
    accept("a", "one character");
    accept("disk 1 (copy)", "spaces and punctuation");
    accept("a.b..c", "dots inside");
    accept("a..", "trailing dots");
    accept("caf\xc3\xa9", "two-byte UTF-8");
    accept("\xe2\x82\xac", "three-byte UTF-8 (euro sign)");
    accept("\xf0\x9f\x98\x80", "four-byte UTF-8 (emoji)");
    accept("\xef\xbf\xbf", "U+FFFF");
    accept("\xf4\x8f\xbf\xbf", "U+10FFFF");
    accept("a\xc2\xa0z", "U+00A0, the first character after C1");
    accept("\xc3\x85ngstr\xc3\xb6m", "NFC: precomposed U+00C5 and U+00F6");
    memset(longest, 'x', VS_NAME_MAX);
    longest[VS_NAME_MAX] = '\0';
    accept(longest, "exactly VS_NAME_MAX bytes");
}

static void
test_refused(void)
{
    char toolong[VS_NAME_MAX + 2];

    refuse(NULL, -EINVAL, "NULL");
    refuse("", -EINVAL, "empty");
    refuse(".", -EINVAL, "dot");
    refuse("..", -EINVAL, "dot dot");
    refuse(".hidden", -EINVAL, "leading dot");
    refuse("a/b", -EINVAL, "slash");
    refuse("/", -EINVAL, "just a slash");
    refuse("a\nb", -EINVAL, "newline");
    refuse("a\tb", -EINVAL, "tab");
    refuse("\x01", -EINVAL, "control byte 0x01");
    refuse("a\x7f", -EINVAL, "DEL");
    refuse("a\xc2\x80", -EINVAL, "C1 control U+0080");
    refuse("\xc2\x85x", -EINVAL, "C1 control U+0085 (NEL)");
    refuse("a\xc2\x9f", -EINVAL, "C1 control U+009F");
    refuse("cafe\xcc\x81", -EINVAL, "NFD: e + combining acute (U+0301)");
    refuse("\xe2\x84\xab", -EINVAL, "U+212B ANGSTROM SIGN (NFC: U+00C5)");
    memset(toolong, 'x', VS_NAME_MAX + 1);
    toolong[VS_NAME_MAX + 1] = '\0';
    refuse(toolong, -ENAMETOOLONG, "VS_NAME_MAX + 1 bytes");
}

/* Names earlier versions stored stay readable from records. */
static void
test_stored(void)
{
    is_int(vs_name_check_stored("a\xc2\x80"), 0, "stored: C1 control passes");
    is_int(vs_name_check_stored("cafe\xcc\x81"), 0, "stored: NFD passes");
    is_int(vs_name_check_stored("a\nb"), -EINVAL, "stored: C0 control refused");
    is_int(vs_name_check_stored("\xff"), -EINVAL, "stored: invalid UTF-8");
    is_int(vs_name_check_stored(".x"), -EINVAL, "stored: leading dot");
}

static void
test_bad_utf8(void)
{
    refuse("\x80", -EINVAL, "lone continuation byte");
    refuse("a\xc3", -EINVAL, "truncated two-byte sequence");
    refuse("\xe2\x82", -EINVAL, "truncated three-byte sequence");
    refuse("\xc0\xaf", -EINVAL, "overlong '/' (C0 AF)");
    refuse("\xc1\xbf", -EINVAL, "overlong two-byte (C1)");
    refuse("\xe0\x80\xaf", -EINVAL, "overlong three-byte");
    refuse("\xf0\x80\x80\xaf", -EINVAL, "overlong four-byte");
    refuse("\xed\xa0\x80", -EINVAL, "surrogate U+D800");
    refuse("\xed\xbf\xbf", -EINVAL, "surrogate U+DFFF");
    refuse("\xf4\x90\x80\x80", -EINVAL, "past U+10FFFF");
    refuse("\xf5\x80\x80\x80", -EINVAL, "lead byte F5");
    refuse("\xff", -EINVAL, "byte FF");
    refuse("\xe2\x28\xa1", -EINVAL, "bad continuation");
}

static void
test_reasons(void)
{
    char toolong[VS_NAME_MAX + 2];

    memset(toolong, 'x', VS_NAME_MAX + 1);
    toolong[VS_NAME_MAX + 1] = '\0';
    ok(strcmp(vs_name_reason(".x"), "starts with '.'") == 0,
       "reason: leading dot");
    ok(strcmp(vs_name_reason("\xc0\xaf"), "is not valid UTF-8") == 0,
       "reason: bad UTF-8");
    ok(strcmp(vs_name_reason(toolong), "is longer than 128 bytes") == 0,
       "reason: too long");
    ok(strcmp(vs_name_reason(""), "is empty") == 0, "reason: empty");
    ok(strstr(vs_name_reason("a/b"), "'/'") != NULL, "reason: slash");
    ok(strstr(vs_name_reason("a\nb"), "control") != NULL, "reason: control");
    ok(strstr(vs_name_reason("a\xc2\x80"), "control") != NULL,
       "reason: C1 control");
    ok(strstr(vs_name_reason("e\xcc\x81"), "NFC") != NULL, "reason: NFC");
    ok(vs_name_reason("fine") != NULL, "reason for a good name is not NULL");
}

static void
test_uuid(void)
{
    char a[VS_UUID_LEN + 1], b[VS_UUID_LEN + 1];

    is_int(vs_uuid_generate(a), 0, "uuid generated");
    is_int(vs_uuid_generate(b), 0, "second uuid generated");
    is_int((long long)strlen(a), VS_UUID_LEN, "uuid length");
    ok(vs_uuid_valid(a), "generated uuid is valid: %s", a);
    ok(a[14] == '4', "version 4");
    ok(strchr("89ab", a[19]) != NULL, "RFC 4122 variant");
    ok(strcmp(a, b) != 0, "two uuids differ");
    ok(vs_uuid_valid("123e4567-e89b-12d3-a456-426614174000"), "v1 accepted");
    ok(!vs_uuid_valid("123E4567-E89B-12D3-A456-426614174000"), "upper case");
    ok(!vs_uuid_valid("123e4567e89b12d3a456426614174000"), "no dashes");
    ok(!vs_uuid_valid("123e4567-e89b-12d3-a456-42661417400"), "too short");
    ok(!vs_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"), "too long");
    ok(!vs_uuid_valid("123e4567-e89b-12d3-a456-42661417400g"), "not hex");
    ok(!vs_uuid_valid(""), "empty");
    ok(!vs_uuid_valid(NULL), "NULL");
}

static void
test_time(void)
{
    char buf[32];

    vs_time_iso8601(0, buf, sizeof(buf));
    ok(strcmp(buf, "1970-01-01T00:00:00Z") == 0, "epoch: %s", buf);
    vs_time_iso8601(1795319360, buf, sizeof(buf));
    ok(strcmp(buf, "2026-11-22T03:49:20Z") == 0, "example time: %s", buf);
    vs_time_iso8601(951782400, buf, sizeof(buf));
    ok(strcmp(buf, "2000-02-29T00:00:00Z") == 0, "leap day: %s", buf);
    vs_time_iso8601(1795319360, buf, 21);
    is_int((long long)strlen(buf), 20, "fits a 21-byte buffer");
}

int
main(void)
{
    test_accepted();
    test_refused();
    test_bad_utf8();
    test_stored();
    test_reasons();
    test_uuid();
    test_time();
    return tap_done();
}
