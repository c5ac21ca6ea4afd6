/*
 * Driver options and secrets: the option list parser and formatter
 * (<vs/options.h>), the checks a store open makes against a driver's
 * option table (the dir driver's sync=), and the secrets store
 * (<vs/secrets.h>): permissions refused, atomic replacement, and no value
 * ever in formatted output or in a reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vs/bdev.h"
#include "vs/options.h"
#include "vs/secrets.h"
#include "tap.h"
#include "testutil.h"

#define SECRET "pa55,w=rd\\x"
/* the same value as it is written in a list */
#define SECRET_TEXT "pa55\\,w=rd\\\\x"

static char base[64] = "/var/tmp/vstorfs-test-options.XXXXXX";

static int
parse(const char *text, struct vs_options *o)
{
    char why[256];

    return vs_options_parse(text, o, why, sizeof(why));
}

static void
test_parse_good(void)
{
    struct vs_options o;
    char buf[VS_OPTIONS_TEXT_MAX + 1];

    tap_is_int(parse("", &o), 0, "the empty list parses");
    tap_is_int(o.count, 0, "to no options");
    tap_is_int(parse("sync=on", &o), 0, "one pair");
    tap_ok(strcmp(vs_options_get(&o, "sync"), "on") == 0, "its value");
    tap_is_int(parse("a=1,b_2=x=y,c=\\,\\\\", &o), 0, "escapes and '='");
    tap_ok(strcmp(vs_options_get(&o, "b_2"), "x=y") == 0, "'=' in a value");
    tap_ok(strcmp(vs_options_get(&o, "c"), ",\\") == 0, "unescaped value");
    tap_ok(vs_options_get(&o, "d") == NULL, "a missing key is NULL");
    tap_ok(vs_options_format(&o, false, buf, sizeof(buf)) > 0 &&
               strcmp(buf, "a=1,b_2=x=y,c=\\,\\\\") == 0,
           "format gives back the text");
    tap_ok(vs_options_format(&o, true, buf, sizeof(buf)) > 0 &&
               strcmp(buf, "a=<secret>,b_2=<secret>,c=<secret>") == 0,
           "redacted format shows no value");
    tap_ok(vs_options_format_keys(&o, buf, sizeof(buf)) > 0 &&
               strcmp(buf, "a,b_2,c") == 0,
           "keys only");
    tap_is_int(vs_options_format(&o, false, buf, 5), -E2BIG,
               "format into a short buffer: E2BIG");
    tap_ok(buf[0] == '\0', "and leaves no half list");
}

static void
test_parse_bad(void)
{
    static const char *const bad[] = {
        "=v",     "a",        "a=",       "A=1",        "1a=1",   "a-b=1",
        "a=1,",   ",a=1",     "a=1,,b=2", "a=1,a=2",    "a=x\\y", "a=x\\",
        "a=\x01", "a=tab\tx", "a=\x7f",   "a=\xc3\xa9", "a=1,b",
    };
    struct vs_options o = {.count = 1};
    char why[256], longkey[64], longval[VS_OPTION_VALUE_MAX + 8], many[512];
    size_t used = 0;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        tap_is_int(vs_options_parse(bad[i], &o, why, sizeof(why)), -EINVAL,
                   "a malformed list is refused");
    tap_is_int(o.count, 1, "a refused list leaves the output alone");
    memset(longkey, 'k', sizeof(longkey));
    snprintf(longkey + VS_OPTION_KEY_MAX + 1, 8, "=1");
    tap_is_int(parse(longkey, &o), -EINVAL, "a key over 32 bytes");
    memset(longval, 'v', sizeof(longval));
    memcpy(longval, "a=", 2);
    longval[VS_OPTION_VALUE_MAX + 3] = '\0';
    tap_is_int(parse(longval, &o), -E2BIG, "a value over 128 bytes");
    longval[VS_OPTION_VALUE_MAX + 2] = '\0';
    tap_is_int(parse(longval, &o), 0, "a value of 128 bytes");
    for (int i = 0; i <= VS_OPTIONS_COUNT; i++)
        used += (size_t)snprintf(many + used, sizeof(many) - used, "%sk%d=1",
                                 i ? "," : "", i);
    tap_is_int(parse(many, &o), -E2BIG, "more than 16 pairs");
    tap_is_int(vs_options_parse("pw=" SECRET_TEXT ",pw=" SECRET_TEXT, &o, why,
                                sizeof(why)),
               -EINVAL, "a duplicate key");
    tap_ok(strstr(why, "pw") != NULL && strstr(why, "pa55") == NULL,
           "the reason names the key, not the value (%s)", why);
    tap_is_int(vs_options_parse("pw=pa55\x01", &o, why, sizeof(why)), -EINVAL,
               "a control character");
    tap_ok(strstr(why, "pa55") == NULL, "the reason quotes no value");
}

static void
test_set_unset(void)
{
    struct vs_options o = {.count = 0};
    bool b;

    tap_is_int(vs_options_set(&o, "sync", "on"), 0, "set appends");
    tap_is_int(vs_options_set(&o, "sync", "off"), 0, "set replaces");
    tap_is_int(o.count, 1, "one key");
    tap_is_int(vs_options_get_bool(&o, "sync", true, &b), 0, "a boolean");
    tap_ok(!b, "off is false");
    tap_is_int(vs_options_get_bool(&o, "x", true, &b), 0, "absent");
    tap_ok(b, "takes the default");
    tap_is_int(vs_options_set(&o, "Bad", "1"), -EINVAL, "bad key refused");
    tap_is_int(vs_options_set(&o, "k", "a\nb"), -EINVAL, "bad value refused");
    tap_is_int(vs_options_unset(&o, "sync"), 0, "unset");
    tap_is_int(vs_options_unset(&o, "sync"), -ENOENT, "unset twice: ENOENT");
}

/* A dir store under BASE with OPTS and SECRETS: the open's result. */
static int
open_dir(const char *opts, const char *secrets, char *why, size_t len)
{
    struct vs_options o = {.count = 0}, s = {.count = 0};
    struct vs_store *st = NULL;
    char loc[128];
    int r;

    snprintf(loc, sizeof(loc), "dir:%s/store", base);
    r = parse(opts, &o);
    if (r == 0)
        r = parse(secrets, &s);
    if (r == 0)
        r = vs_store_open_with(loc, &o, &s, false, &st, why, len);
    if (r == 0) {
        tap_ok(st->options->count == o.count, "the store holds its options");
        vs_store_close(st);
    }
    return r;
}

static void
test_store_options(void)
{
    char path[128], why[256];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/store", base);
    tap_ok(mkdir(path, 0700) == 0, "a dir store");
    tap_is_int(open_dir("", "", why, sizeof(why)), 0, "no options");
    tap_is_int(open_dir("sync=on", "", why, sizeof(why)), 0, "sync=on");
    tap_is_int(open_dir("sync=off", "", why, sizeof(why)), 0, "sync=off");
    tap_is_int(open_dir("bogus=1", "", why, sizeof(why)), -EINVAL,
               "an unknown option: EINVAL");
    tap_ok(strstr(why, "'bogus'") != NULL, "named: %s", why);
    tap_is_int(open_dir("sync=maybe", "", why, sizeof(why)), -EINVAL,
               "a bad value: EINVAL");
    tap_ok(strstr(why, "'sync'") != NULL && strstr(why, "maybe") == NULL,
           "named, without its value: %s", why);
    tap_is_int(open_dir("", "password=" SECRET_TEXT, why, sizeof(why)), -EINVAL,
               "a secret the driver does not take: EINVAL");
    tap_ok(strstr(why, "'password'") != NULL && strstr(why, "pa55") == NULL,
           "named, without its value: %s", why);
    tap_is_int(open_dir("", "sync=on", why, sizeof(why)), -EINVAL,
               "a plain option given as a secret: EINVAL");
    tap_ok(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode),
           "refusals leave the store alone");
}

/* The text of file PATH into BUF. */
static void
slurp(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
}

static void
test_secrets(void)
{
    struct vs_options s = {.count = 0}, back;
    char path[128], dir[128], why[512], text[256];
    struct stat sb;

    snprintf(dir, sizeof(dir), "%s/data", base);
    mkdir(dir, 0755);
    tap_is_int(vs_secrets_path(dir, "u1", path, sizeof(path)), 0, "a path");
    tap_is_int(vs_secrets_load(path, &back, why, sizeof(why)), 0,
               "no file: no secrets");
    tap_is_int(back.count, 0, "empty");
    vs_options_set(&s, "chap_password", SECRET);
    vs_options_set(&s, "chap_user", "admin");
    umask(0);
    tap_is_int(vs_secrets_save(path, &s, why, sizeof(why)), 0, "saved");
    umask(022);
    tap_ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
           "the file is 0600 whatever the umask");
    snprintf(text, sizeof(text), "%s/secrets", dir);
    tap_ok(stat(text, &sb) == 0 && (sb.st_mode & 0777) == 0700,
           "the directory is 0700");
    slurp(path, text, sizeof(text));
    tap_ok(strcmp(text, "chap_password=pa55\\,w=rd\\\\x,chap_user=admin\n") ==
               0,
           "the file holds the escaped list");
    tap_is_int(vs_secrets_load(path, &back, why, sizeof(why)), 0, "loaded");
    tap_ok(back.count == 2 &&
               strcmp(vs_options_get(&back, "chap_password"), SECRET) == 0,
           "the value comes back");
    vs_options_set(&s, "chap_user", "other");
    tap_is_int(vs_secrets_save(path, &s, why, sizeof(why)), 0, "replaced");
    snprintf(text, sizeof(text), "ls -a %s/secrets | grep -c tmp", dir);
    tap_ok(tu_run(text, why, sizeof(why)) != 0 || atoi(why) == 0,
           "no temporary file is left");

    chmod(path, 0640);
    tap_is_int(vs_secrets_load(path, &back, why, sizeof(why)), -EACCES,
               "a file readable by the group: EACCES");
    tap_ok(strstr(why, "0640") != NULL && strstr(why, "pa55") == NULL,
           "the reason gives the mode: %s", why);
    chmod(path, 0600);
    snprintf(text, sizeof(text), "%s/secrets", dir);
    chmod(text, 0755);
    tap_is_int(vs_secrets_load(path, &back, why, sizeof(why)), -EACCES,
               "a directory open to others: EACCES");
    chmod(text, 0700);
    if (geteuid() == 0) {
        tap_ok(chown(path, 1, 1) == 0, "give the file to another user");
        tap_is_int(vs_secrets_load(path, &back, why, sizeof(why)), -EACCES,
                   "a file owned by someone else: EACCES");
        tap_ok(strstr(why, "uid 1") != NULL, "the reason: %s", why);
        tap_ok(chown(path, 0, 0) == 0, "give it back");
    }
    snprintf(text, sizeof(text), "%s/secrets/link", dir);
    tap_ok(symlink(path, text) == 0, "a symlink to the file");
    tap_is_int(vs_secrets_load(text, &back, why, sizeof(why)), -EACCES,
               "a symlink: EACCES");

    vs_options_wipe(&s);
    tap_is_int(vs_secrets_save(path, &s, why, sizeof(why)), 0,
               "saving none removes the file");
    tap_ok(access(path, F_OK) < 0 && errno == ENOENT, "gone");
    vs_options_wipe(&back);
}

static void
test_secrets_bad_file(void)
{
    struct vs_options back;
    char path[128], why[512];
    int fd;

    snprintf(path, sizeof(path), "%s/data/secrets/u2", base);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    tap_ok(fd >= 0 && write(fd, "pw=" SECRET "\x01\n", 16) == 16,
           "a damaged secrets file");
    close(fd);
    tap_is_int(vs_secrets_load(path, &back, why, sizeof(why)), -EINVAL,
               "does not load: EINVAL");
    tap_ok(strstr(why, "pa55") == NULL, "the reason quotes no value: %s", why);
}

int
main(void)
{
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    test_parse_good();
    test_parse_bad();
    test_set_unset();
    test_store_options();
    test_secrets();
    test_secrets_bad_file();
    tu_rm_tree(base);
    return tap_done();
}
