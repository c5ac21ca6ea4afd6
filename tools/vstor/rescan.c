/*
 * vstor rescan [MOUNTPOINT]: ask the daemon to rebuild its catalog from the
 * domains' own metadata, by writing "1" to user.vstor.rescan on the mount's
 * root (default: the first fuse.vstorfs mount).  The daemon answers the
 * setxattr when the rescan is done, so success here means it finished.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "vs/xattr.h"
#include "vstor.h"

static int
rescan(const char *mnt)
{
    char *kind = NULL;
    int r = vstor_xattr_get(mnt, VS_XATTR_KIND, &kind);
    if (r == -ENODATA || r == -ENOTSUP)
        return vstor_error(mnt, "not a vstorfs mount point");
    if (r < 0)
        return vstor_error(mnt, "%s", strerror(-r));
    bool root = strcmp(kind, "root") == 0;
    free(kind);
    if (!root)
        return vstor_error(mnt, "not a vstorfs mount point (rescan works "
                                "on the mount's root)");
    if (setxattr(mnt, VS_XATTR_RESCAN, "1", 1, 0) < 0)
        return vstor_error(mnt, "rescan failed: %s", strerror(errno));
    return VSTOR_EXIT_OK;
}

int
vstor_cmd_rescan(int argc, char **argv)
{
    struct vstor_args args;
    int code = vstor_args_parse(argc, argv, 0, 1, &args);
    if (code >= 0)
        return code;
    if (args.npos)
        return rescan(args.pos[0]);
    char *mnt = NULL;
    code = vstor_default_mount_or_error(&mnt);
    if (code != VSTOR_EXIT_OK)
        return code;
    code = rescan(mnt);
    free(mnt);
    return code;
}
