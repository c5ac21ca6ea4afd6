/*
 * Finding the default vstorfs mount: the first line of /proc/self/mountinfo
 * whose file system type is fuse.vstorfs.  A mountinfo line reads
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
 * with spaces, tabs, newlines and backslashes in paths written as \ooo
 * octal escapes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vstor.h"

#define VSTORFS_FSTYPE "fuse.vstorfs"
#define MOUNTPOINT_FIELD 5 /* 1-based field number of MOUNTPOINT */

/* Undo mountinfo's \ooo escapes in place. */
static void
unescape_octal(char *s)
{
    char *out = s;
    for (char *in = s; *in; in++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' &&
            in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
            *out++ =
                (char)((in[1] - '0') << 6 | (in[2] - '0') << 3 | (in[3] - '0'));
            in += 3;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
}

/* The file system type of a mountinfo LINE (modified), or NULL. */
static const char *
line_fstype(char *line)
{
    char *sep = strstr(line, " - ");
    if (!sep)
        return NULL;
    char *fstype = sep + 3;
    fstype[strcspn(fstype, " \n")] = '\0';
    return fstype;
}

/* The mount point of a mountinfo LINE (modified, unescaped), or NULL. */
static char *
line_mountpoint(char *line)
{
    char *save = NULL;
    char *field = strtok_r(line, " ", &save);
    for (int i = 1; field && i < MOUNTPOINT_FIELD; i++)
        field = strtok_r(NULL, " ", &save);
    if (!field)
        return NULL;
    unescape_octal(field);
    return field;
}

/* If LINE is a vstorfs mount, store its mount point in *MNT: 1, 0 or -errno */
static int
match_line(const char *line, char **mnt)
{
    char *for_type = strdup(line), *for_point = strdup(line);
    int r = for_type && for_point ? 0 : -ENOMEM;
    const char *fstype = r == 0 ? line_fstype(for_type) : NULL;
    if (fstype && strcmp(fstype, VSTORFS_FSTYPE) == 0) {
        const char *point = line_mountpoint(for_point);
        if (point) {
            *mnt = strdup(point);
            r = *mnt ? 1 : -ENOMEM;
        }
    }
    free(for_type);
    free(for_point);
    return r;
}

int
vstor_default_mount(char **mnt)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    int r = -ENOENT;
    while (getline(&line, &cap, f) >= 0) {
        int m = match_line(line, mnt);
        if (m != 0) {
            r = m < 0 ? m : 0;
            break;
        }
    }
    free(line);
    fclose(f);
    return r;
}

int
vstor_default_mount_or_error(char **mnt)
{
    int r = vstor_default_mount(mnt);
    if (r == -ENOENT)
        return vstor_error("/proc/self/mountinfo",
                           "no " VSTORFS_FSTYPE " mount (give a PATH)");
    if (r < 0)
        return vstor_error("/proc/self/mountinfo", "%s", strerror(-r));
    return VSTOR_EXIT_OK;
}
