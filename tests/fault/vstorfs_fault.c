/*
 * vstorfs-fault: the vstorfs daemon with the "fault:" protocol driver
 * registered, for mount tests of slow, failing and hanging storage.  Not
 * installed.
 *
 * Start it as vstorfs, with --domain-root=fault:dir:PATH so that every
 * domain's store is a fault store over a local directory.  Rules come in
 * at run time through the FIFO named by $VSTORFS_FAULT_CONTROL, one
 * command per line; after each the daemon appends one line to
 * $VSTORFS_FAULT_CONTROL.out ("ok ID", "ok" or "error: ..."):
 *
 *   add [store=S] [object=NAME] ops=read,write,flush,discard,zeroes,grow|all
 *       mode=fail|short|delay|hang [err=EIO|ETIMEDOUT|ENOSPC|N] [nth=N]
 *       [delay_us=N] [above=BYTES]
 *   release ID        let the requests held by hang rule ID go
 *   hits ID           "ok N": how often rule ID fired
 *   hung ID N         "ok" once N requests are held by rule ID (10 s)
 *   clear             release everything and drop every rule
 *   completed         "ok N": requests completed from the driver's threads
 *
 * S is a part of the store's location: a domain's uuid picks one domain.
 *
 * Every data request completes asynchronously (fault_set_async): from a
 * thread of the driver's, after the FUSE thread that submitted it went
 * back for more, as it will with libnfs and libiscsi.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "fs.h"
#include "vs/log.h"

static char *control_path;

static int
parse_ops(const char *v, unsigned *ops)
{
    static const struct {
        const char *name;
        unsigned op;
    } names[] = {{"read", FAULT_READ},     {"write", FAULT_WRITE},
                 {"flush", FAULT_FLUSH},   {"discard", FAULT_DISCARD},
                 {"zeroes", FAULT_ZEROES}, {"grow", FAULT_GROW},
                 {"all", FAULT_ALL}};
    char *copy = strdup(v), *save = NULL;

    *ops = 0;
    for (char *w = copy ? strtok_r(copy, ",", &save) : NULL; w;
         w = strtok_r(NULL, ",", &save)) {
        size_t i = 0;

        while (i < sizeof(names) / sizeof(names[0]) &&
               strcmp(names[i].name, w) != 0)
            i++;
        if (i == sizeof(names) / sizeof(names[0])) {
            free(copy);
            return -EINVAL;
        }
        *ops |= names[i].op;
    }
    free(copy);
    return *ops != 0 ? 0 : -EINVAL;
}

static int
parse_err(const char *v)
{
    if (strcmp(v, "EIO") == 0)
        return EIO;
    if (strcmp(v, "ETIMEDOUT") == 0)
        return ETIMEDOUT;
    if (strcmp(v, "ENOSPC") == 0)
        return ENOSPC;
    return atoi(v) > 0 ? atoi(v) : -EINVAL;
}

/* One "key=value" word of an add command into RULE. */
static int
parse_word(struct fault_rule *rule, char *w)
{
    char *v = strchr(w, '=');

    if (v == NULL)
        return -EINVAL;
    *v++ = '\0';
    if (strcmp(w, "store") == 0)
        rule->store = v;
    else if (strcmp(w, "object") == 0)
        rule->object = v;
    else if (strcmp(w, "ops") == 0)
        return parse_ops(v, &rule->ops);
    else if (strcmp(w, "mode") == 0)
        rule->mode = strcmp(v, "fail") == 0    ? FAULT_FAIL
                     : strcmp(v, "short") == 0 ? FAULT_SHORT
                     : strcmp(v, "delay") == 0 ? FAULT_DELAY
                     : strcmp(v, "hang") == 0  ? FAULT_HANG
                                               : 0;
    else if (strcmp(w, "err") == 0)
        return (rule->err = parse_err(v)) > 0 ? 0 : -EINVAL;
    else if (strcmp(w, "nth") == 0)
        rule->nth = (unsigned)strtoul(v, NULL, 10);
    else if (strcmp(w, "delay_us") == 0)
        rule->delay_us = (unsigned)strtoul(v, NULL, 10);
    else if (strcmp(w, "above") == 0)
        rule->above = strtoull(v, NULL, 10);
    else
        return -EINVAL;
    return rule->mode != 0 || strcmp(w, "mode") != 0 ? 0 : -EINVAL;
}

/* Run one command line; the answer line into OUT. */
static void
run_command(char *line, char *out, size_t len)
{
    char *save = NULL, *verb = strtok_r(line, " \t\n", &save), *w;
    struct fault_rule rule = {0};
    int r = 0;

    if (verb == NULL) {
        snprintf(out, len, "error: empty command");
    } else if (strcmp(verb, "clear") == 0) {
        fault_clear();
        snprintf(out, len, "ok");
    } else if (strcmp(verb, "release") == 0) {
        w = strtok_r(NULL, " \t\n", &save);
        if (w != NULL)
            fault_release(atoi(w));
        snprintf(out, len, w != NULL ? "ok" : "error: release needs an id");
    } else if (strcmp(verb, "completed") == 0) {
        snprintf(out, len, "ok %lu", fault_async_completed());
    } else if (strcmp(verb, "hits") == 0) {
        w = strtok_r(NULL, " \t\n", &save);
        snprintf(out, len, "ok %u", w != NULL ? fault_hits(atoi(w)) : 0);
    } else if (strcmp(verb, "hung") == 0) {
        char *n = NULL;

        w = strtok_r(NULL, " \t\n", &save);
        if (w != NULL)
            n = strtok_r(NULL, " \t\n", &save);
        snprintf(out, len,
                 n != NULL && fault_wait_hung(atoi(w), (unsigned)atoi(n), 10000)
                     ? "ok"
                     : "error: not held");
    } else if (strcmp(verb, "add") == 0) {
        while (r == 0 && (w = strtok_r(NULL, " \t\n", &save)) != NULL)
            r = parse_word(&rule, w);
        if (r == 0 && (rule.ops == 0 || rule.mode == 0))
            r = -EINVAL;
        if (r == 0)
            r = fault_add(&rule);
        if (r >= 0)
            snprintf(out, len, "ok %d", r);
        else
            snprintf(out, len, "error: bad rule (%s)", strerror(-r));
    } else {
        snprintf(out, len, "error: unknown command '%s'", verb);
    }
}

static void
answer(const char *text)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s.out", control_path);
    f = fopen(path, "a");
    if (f != NULL) {
        fprintf(f, "%s\n", text);
        fclose(f);
    }
}

static void *
control_main(void *arg)
{
    /* read-write: the FIFO stays open when a writer goes away */
    FILE *in = fopen(control_path, "r+");
    char line[1024], out[256];

    (void)arg;
    if (in == NULL) {
        vs_log(LOG_ERR, "fault control '%s': %s", control_path,
               strerror(errno));
        return NULL;
    }
    while (fgets(line, sizeof(line), in) != NULL) {
        run_command(line, out, sizeof(out));
        vs_log(LOG_NOTICE, "fault control: %s", out);
        answer(out);
    }
    fclose(in);
    return NULL;
}

int
main(int argc, char **argv)
{
    pthread_t control;

    if (fault_register() < 0)
        return 1;
    fault_set_async(true);
    control_path = getenv("VSTORFS_FAULT_CONTROL");
    if (control_path != NULL &&
        vs_thread_start(&control, control_main, NULL) == 0)
        pthread_detach(control);
    return vs_daemon_main(argc, argv);
}
