/*
 * vstor jobs [MOUNTPOINT] [--json]: the background jobs (merges) of a
 * vstorfs mount, read from the root's user.vstor.jobs attribute, one line
 * per job: "merge LAYER child|down DONE TOTAL STATE [REASON]" separated by
 * tabs (a failed job says why).  On a terminal each job gets a progress
 * bar.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vs/xattr.h"
#include "vstor.h"

struct job {
    char *fields[6]; /* type, layer, route, done, total, state */
    char *reason;    /* why a failed job failed, or NULL */
};

/* Split LINE (modified) into its six tab-separated fields and the
 * optional seventh, the reason. */
static int
parse_line(char *line, struct job *job)
{
    char *save = NULL;
    int n = 0;

    job->reason = NULL;
    for (char *f = strtok_r(line, "\t", &save); f && n < 7;
         f = strtok_r(NULL, "\t", &save)) {
        if (n < 6)
            job->fields[n] = f;
        else
            job->reason = f;
        n++;
    }
    return n >= 6 ? 0 : -EINVAL;
}

static void
print_bar(double frac)
{
    const int width = 30;
    int fill = (int)(frac * width + 0.5);

    putchar('[');
    for (int i = 0; i < width; i++)
        putchar(i < fill ? '#' : '.');
    putchar(']');
}

static void
print_text(const struct job *job, bool tty)
{
    double done = strtod(job->fields[3], NULL);
    double total = strtod(job->fields[4], NULL);
    double frac = total > 0 ? done / total : 1.0;

    /* the route: "child" (the layer copied up into its child) or "down"
     * (the child's layer copied down into the layer's object) */
    printf("%s %s (%s): %5.1f%% ", job->fields[0], job->fields[1],
           strcmp(job->fields[2], "down") == 0 ? "child copied down"
                                               : "into its child",
           frac * 100.0);
    if (tty)
        print_bar(frac);
    printf(" %s", job->fields[5]);
    if (job->reason)
        printf(": %s", job->reason);
    putchar('\n');
}

static struct json_object *
job_json(const struct job *job)
{
    struct json_object *o = json_object_new_object();

    if (!o)
        return NULL;
    json_object_object_add(o, "type", vstor_json_string(job->fields[0]));
    json_object_object_add(o, "layer", vstor_json_string(job->fields[1]));
    json_object_object_add(o, "route", vstor_json_string(job->fields[2]));
    json_object_object_add(o, "done",
                           vstor_json_size(strtoll(job->fields[3], NULL, 10)));
    json_object_object_add(o, "total",
                           vstor_json_size(strtoll(job->fields[4], NULL, 10)));
    json_object_object_add(o, "state", vstor_json_string(job->fields[5]));
    if (job->reason)
        json_object_object_add(o, "reason", vstor_json_string(job->reason));
    return o;
}

static int
show(const char *mnt, char *text, bool json)
{
    struct json_object *arr = json ? json_object_new_array() : NULL;
    bool tty = isatty(STDOUT_FILENO);
    char *save = NULL;
    int code = VSTOR_EXIT_OK;

    if (json && !arr)
        return vstor_error(mnt, "%s", strerror(ENOMEM));
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        struct job job;
        if (parse_line(line, &job) < 0)
            continue; /* a newer daemon's line: skip what we cannot read */
        if (json)
            json_object_array_add(arr, job_json(&job));
        else
            print_text(&job, tty);
    }
    if (json) {
        code = vstor_json_print(arr);
        json_object_put(arr);
    }
    return code;
}

static int
jobs(const char *mnt, bool json)
{
    char *text = NULL;
    int r = vstor_xattr_get(mnt, VS_XATTR_JOBS, &text), code;

    if (r == -ENODATA)
        r = 0; /* an older daemon, or nothing to say */
    if (r < 0)
        return vstor_error(mnt, "%s", strerror(-r));
    code = show(mnt, text ? text : (char[]){""}, json);
    free(text);
    return code;
}

int
vstor_cmd_jobs(int argc, char **argv)
{
    struct vstor_args args;
    char *mnt = NULL;
    int code = vstor_args_parse(argc, argv, VSTOR_OPT_JSON, 1, &args);

    if (code >= 0)
        return code;
    if (args.npos)
        return jobs(args.pos[0], args.opts & VSTOR_OPT_JSON);
    code = vstor_default_mount_or_error(&mnt);
    if (code != VSTOR_EXIT_OK)
        return code;
    code = jobs(mnt, args.opts & VSTOR_OPT_JSON);
    free(mnt);
    return code;
}
