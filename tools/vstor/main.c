/*
 * vstor: look at and drive a vstorfs mount from the command line.  main()
 * handles the global options (--help, --version) and hands the rest of the
 * command line to one subcommand (ls, info, rescan, jobs, secret), each in
 * its own file.
 * Exit status: 0 ok, 1 error, 2 usage error (docs/interface.md).
 */
#include <stdio.h>
#include <string.h>

#include "vstor.h"

#ifndef VSTOR_VERSION
#define VSTOR_VERSION "unknown"
#endif

struct vstor_command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct vstor_command commands[] = {
    {"ls", vstor_cmd_ls},         {"info", vstor_cmd_info},
    {"rescan", vstor_cmd_rescan}, {"jobs", vstor_cmd_jobs},
    {"secret", vstor_cmd_secret},
};

void
vstor_usage(void)
{
    fputs(
        "Usage: vstor COMMAND [ARGS]\n"
        "Show and drive a vstorfs mount (works through the mount only).\n"
        "\n"
        "Commands:\n"
        "  ls [PATH] [--json] [-l]  list the domains, images and volumes\n"
        "                           below PATH (default: the first\n"
        "                           fuse.vstorfs mount)\n"
        "  info PATH [--json] [--backing-chain]\n"
        "                           describe a volume or its data file,\n"
        "                           like qemu-img info; with\n"
        "                           --backing-chain every layer below it\n"
        "  jobs [MOUNTPOINT] [--json]\n"
        "                           the running merges, with their\n"
        "                           progress (a bar on a terminal)\n"
        "  rescan [MOUNTPOINT]      rebuild the catalog from the domains\n"
        "                           (default: the first fuse.vstorfs mount)\n"
        "  secret set DOMAIN KEY    keep a secret of DOMAIN's driver (a\n"
        "                           password) on this host, its value read\n"
        "                           from standard input (root only)\n"
        "  secret unset DOMAIN KEY  forget it\n"
        "  secret list DOMAIN       the names of DOMAIN's secrets\n"
        "\n"
        "Options:\n"
        "  -j, --json     (ls, info, jobs) print JSON instead of text\n"
        "  --backing-chain (info) describe each layer of the chain\n"
        "  -l, --long     (ls) one line per node with kind, size, allocated,\n"
        "                 format, created and uuid\n"
        "  -h, --help     print this help and exit\n"
        "  -V, --version  print the version and exit\n"
        "\n"
        "Exit status: 0 ok, 1 error, 2 usage error.\n"
        "See vstor(1) and vstorfs(8).\n",
        stdout);
}

static int
version(void)
{
    printf("vstor %s\n", VSTOR_VERSION);
    return VSTOR_EXIT_OK;
}

/* Make a failed write to stdout (full disk, closed pipe) an error. */
static int
finish(int code)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("vstor: standard output");
        return VSTOR_EXIT_ERROR;
    }
    return code;
}

static int
dispatch(int argc, char **argv)
{
    const char *arg = argv[1];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        vstor_usage();
        return VSTOR_EXIT_OK;
    }
    if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0)
        return version();
    if (arg[0] == '-')
        return vstor_usage_error("unknown option '%s'", arg);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(arg, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    return vstor_usage_error("unknown command '%s'", arg);
}

int
main(int argc, char **argv)
{
    if (argc < 2)
        return vstor_usage_error("missing command");
    return finish(dispatch(argc, argv));
}
