/*
 * vstor secret set|unset|list DOMAIN [KEY]: keep the secrets a domain's
 * driver needs (a CHAP password ...) in this host's secrets store.
 *
 * The value of `set` is read from standard input (one line; echo is off on
 * a terminal), so it is never on a command line, in shell history or in
 * the process list.  vstor asks the mount where the daemon reads DOMAIN's
 * secrets (user.vstor.secrets-file) and replaces that file itself,
 * atomically and mode 0600 (<vs/secrets.h>): only root can.  The daemon
 * reads the file when it attaches the domain, so a change takes effect at
 * the next attach (vstor rescan, or a restart).  `list` prints key names,
 * never values; nothing here prints a value.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "vs/secrets.h"
#include "vs/xattr.h"
#include "vstor.h"

/* The secrets file of domain DOMAIN into *PATH; an exit code. */
static int
secrets_file(const char *domain, char **path)
{
    char *kind = NULL;
    int r = vstor_xattr_get(domain, VS_XATTR_KIND, &kind);
    bool is_domain = r == 0 && strcmp(kind, "domain") == 0;

    free(kind);
    if (r == -ENODATA || r == -ENOTSUP || (r == 0 && !is_domain))
        return vstor_error(domain, "not a vstorfs domain");
    if (r < 0)
        return vstor_error(domain, "%s", strerror(-r));
    r = vstor_xattr_get(domain, VS_XATTR_SECRETS_FILE, path);
    if (r < 0)
        return vstor_error(domain, "cannot find its secrets file: %s",
                           strerror(-r));
    return VSTOR_EXIT_OK;
}

/* Read one line of at most VS_OPTION_VALUE_MAX bytes from stdin into BUF,
 * without echo on a terminal; 0 or -errno. */
static int
read_value(char *buf, size_t len)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    int r = 0;

    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fputs("value: ", stderr);
    }
    if (fgets(buf, (int)len, stdin) == NULL)
        r = -ENODATA;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (r == 0 && buf[strcspn(buf, "\n")] != '\n' && !feof(stdin))
        r = -E2BIG;
    buf[strcspn(buf, "\n")] = '\0';
    return r;
}

static int
secret_set(const char *domain, const char *path, const char *key)
{
    char value[VS_OPTION_VALUE_MAX + 2], why[512];
    struct vs_options s;
    int r;

    if (vs_option_key_check(key) < 0)
        return vstor_error(domain, "bad key '%s' (a key is [a-z][a-z0-9_]*)",
                           key);
    r = read_value(value, sizeof(value));
    if (r == 0)
        r = vs_option_value_check(value);
    if (r < 0) {
        explicit_bzero(value, sizeof(value));
        return vstor_error(domain,
                           "the value (one line on standard input) is "
                           "missing, longer than %d bytes or not printable "
                           "ASCII",
                           VS_OPTION_VALUE_MAX);
    }
    r = vs_secrets_load(path, &s, why, sizeof(why));
    if (r == 0)
        r = vs_options_set(&s, key, value);
    explicit_bzero(value, sizeof(value));
    if (r == -E2BIG)
        snprintf(why, sizeof(why), "too many secrets");
    if (r == 0)
        r = vs_secrets_save(path, &s, why, sizeof(why));
    vs_options_wipe(&s);
    if (r < 0)
        return vstor_error(domain, "%s", why);
    fprintf(stderr,
            "vstor: secret '%s' kept; it applies at the domain's "
            "next attach (vstor rescan, or a restart)\n",
            key);
    return VSTOR_EXIT_OK;
}

static int
secret_unset(const char *domain, const char *path, const char *key)
{
    struct vs_options s;
    char why[512];
    int r = vs_secrets_load(path, &s, why, sizeof(why));

    if (r == 0 && vs_options_unset(&s, key) < 0) {
        snprintf(why, sizeof(why), "no secret '%s'", key);
        r = -ENOENT;
    }
    if (r == 0)
        r = vs_secrets_save(path, &s, why, sizeof(why));
    vs_options_wipe(&s);
    return r < 0 ? vstor_error(domain, "%s", why) : VSTOR_EXIT_OK;
}

static int
secret_list(const char *domain, const char *path)
{
    struct vs_options s;
    char why[512];
    int r = vs_secrets_load(path, &s, why, sizeof(why));

    for (unsigned i = 0; r == 0 && i < s.count; i++)
        printf("%s\n", s.item[i].key);
    vs_options_wipe(&s);
    return r < 0 ? vstor_error(domain, "%s", why) : VSTOR_EXIT_OK;
}

int
vstor_cmd_secret(int argc, char **argv)
{
    struct vstor_args args;
    char *path = NULL;
    const char *verb;
    int code = vstor_args_parse(argc, argv, 0, 3, &args);

    if (code >= 0)
        return code;
    if (args.npos < 2)
        return vstor_usage_error("secret: give set|unset|list and a DOMAIN");
    verb = args.pos[0];
    if (strcmp(verb, "list") == 0 ? args.npos != 2
        : strcmp(verb, "set") == 0 || strcmp(verb, "unset") == 0
            ? args.npos != 3
            : true)
        return vstor_usage_error("secret: set DOMAIN KEY, unset DOMAIN KEY "
                                 "or list DOMAIN");
    code = secrets_file(args.pos[1], &path);
    if (code != VSTOR_EXIT_OK)
        return code;
    if (strcmp(verb, "set") == 0)
        code = secret_set(args.pos[1], path, args.pos[2]);
    else if (strcmp(verb, "unset") == 0)
        code = secret_unset(args.pos[1], path, args.pos[2]);
    else
        code = secret_list(args.pos[1], path);
    free(path);
    return code;
}
