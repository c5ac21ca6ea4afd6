/*
 * Command-line parsing shared by the vstor subcommands.  Every subcommand
 * takes the same small option set (or a subset of it) and some positional
 * arguments; options may come before or after the positionals, and "--"
 * ends the options.  getopt's own messages are off so that every usage
 * error reads "vstor: ..." and exits 2.
 */
#include <getopt.h>
#include <stdio.h>

#include "vstor.h"

static const struct option long_options[] = {
    {"json", no_argument, NULL, 'j'},
    {"long", no_argument, NULL, 'l'},
    {"backing-chain", no_argument, NULL, 'B'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Map an option character to its bit; 0 for help and unknown ones. */
static unsigned
option_bit(int c)
{
    switch (c) {
    case 'j':
        return VSTOR_OPT_JSON;
    case 'l':
        return VSTOR_OPT_LONG;
    case 'B':
        return VSTOR_OPT_CHAIN;
    default:
        return 0;
    }
}

/* The usage error for the option at argv[optind - 1] that getopt refused. */
static int
bad_option(const char *cmd, char **argv, int c)
{
    if (c != '?')
        return vstor_usage_error("%s: option '-%c' does not apply here", cmd,
                                 c);
    if (optopt)
        return vstor_usage_error("%s: unknown option '-%c'", cmd, optopt);
    return vstor_usage_error("%s: unknown option '%s'", cmd, argv[optind - 1]);
}

int
vstor_args_parse(int argc, char **argv, unsigned allowed, int max_pos,
                 struct vstor_args *args)
{
    int c;
    args->opts = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jlh", long_options, NULL)) != -1) {
        if (c == 'h') {
            vstor_usage();
            return VSTOR_EXIT_OK;
        }
        unsigned bit = option_bit(c);
        if (!bit || !(allowed & bit))
            return bad_option(argv[0], argv, c);
        args->opts |= bit;
    }
    args->npos = argc - optind;
    args->pos = argv + optind;
    if (args->npos > max_pos)
        return vstor_usage_error("%s: unexpected argument '%s'", argv[0],
                                 args->pos[max_pos]);
    return -1;
}
