/*
 * vstorfs: the daemon (daemon.c).
 */
#include "fs.h"

int
main(int argc, char **argv)
{
    return vs_daemon_main(argc, argv);
}
