/*
 * vstorfs: the daemon's start-up and shutdown (vs_daemon_main; main.c only
 * calls it, so that a test daemon can register test drivers first).
 *
 * parse options -> open the tree (catalog + rescan of the domains) ->
 * new FUSE session -> signal handlers -> mount -> daemonize -> the
 * multithreaded loop -> unmount -> close.  SIGTERM, SIGINT and SIGHUP end
 * the loop, so the mount is always taken down cleanly.
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "fs.h"
#include "vs/driver.h"
#include "vs/log.h"

#ifndef VSTORFS_VERSION
#define VSTORFS_VERSION "0.1.0"
#endif

/* Route libfuse's own messages through our logger. */
static void __attribute__((format(printf, 2, 0)))
fuse_log_to_ours(enum fuse_log_level level, const char *fmt, va_list ap)
{
    char msg[512];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    vs_log((int)level, "fuse: %s", msg);
}

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
    const struct vs_config *cfg = userdata;

    conn->max_write = cfg->max_write;
    conn->max_read = cfg->max_write; /* must match the max_read mount option */
    conn->max_background = cfg->max_background;
    conn->congestion_threshold = cfg->max_background * 3 / 4;
    conn->want |=
        conn->capable & (FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_ASYNC_DIO |
                         FUSE_CAP_PARALLEL_DIROPS);
    /* read/write carry the bytes in memory; no splice */
    conn->want &=
        ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    /* no remote locks: the kernel keeps POSIX, OFD and flock locks local,
     * which is what protects a volume from a second QEMU on this host */
    conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

static int
fuse_args_build(const struct vs_config *cfg, const char *prog,
                struct fuse_args *args)
{
    char *opts = NULL;
    int r;

    r = asprintf(&opts,
                 "nosuid,nodev,default_permissions,fsname=%s,"
                 "subtype=vstorfs,max_read=%u%s%s%s%s",
                 cfg->data_dir, cfg->max_write,
                 cfg->allow_other ? ",allow_other" : "",
                 cfg->read_only ? ",ro" : "", cfg->fuse_opts ? "," : "",
                 cfg->fuse_opts ? cfg->fuse_opts : "");
    if (r < 0)
        return -ENOMEM;
    r = fuse_opt_add_arg(args, prog);
    if (r == 0)
        r = fuse_opt_add_arg(args, "-o");
    if (r == 0)
        r = fuse_opt_add_arg(args, opts);
    free(opts);
    return r == 0 ? 0 : -ENOMEM;
}

static int
run_session(struct vs_config *cfg, struct fuse_session *se)
{
    struct fuse_loop_config *loop = fuse_loop_cfg_create();
    int r;

    if (!loop)
        return -ENOMEM;
    fuse_loop_cfg_set_max_threads(loop, cfg->threads);
    fuse_loop_cfg_set_idle_threads(loop, cfg->threads);
    fuse_loop_cfg_set_clone_fd(loop, 1);
    r = fuse_session_loop_mt(se, loop);
    fuse_loop_cfg_destroy(loop);
    return r;
}

/* Fork into the background.  SQLite connections must not cross a fork
 * (its POSIX locks stay with the parent), so the tree is closed first and
 * opened again in the child; the first open already showed it works. */
static int
daemonize(const struct vs_config *cfg)
{
    int r;

    vs_tree_close(vs_fs.tree);
    vs_fs.tree = NULL;
    fuse_daemonize(0);
    vs_log_use_syslog(true);
    r = vs_tree_open(cfg->data_dir, cfg->domain_root, cfg->catalog_path,
                     VS_TREE_DEFER_REPAIRS, &vs_fs.tree);
    if (r < 0)
        vs_log(LOG_ERR, "cannot reopen data directory '%s': %s", cfg->data_dir,
               strerror(-r));
    return r;
}

static int
serve(struct vs_config *cfg, const char *prog)
{
    struct fuse_lowlevel_ops ops;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fuse_session *se = NULL;
    int r;

    memset(&ops, 0, sizeof(ops));
    ops.init = op_init;
    vs_ops_init(&ops);
    vs_io_ops_init(&ops);
    vs_xattr_ops_init(&ops);
    r = fuse_args_build(cfg, prog, &args);
    if (r == 0 && !(se = fuse_session_new(&args, &ops, sizeof(ops), cfg)))
        r = -EINVAL;
    if (r == 0 && fuse_set_signal_handlers(se) != 0)
        r = -EIO;
    if (r == 0 && fuse_session_mount(se, cfg->mountpoint) != 0)
        r = vs_log_errno(LOG_ERR, EIO, "cannot mount on '%s'", cfg->mountpoint);
    if (r == 0)
        r = vs_passthrough_setup(se, cfg->passthrough);
    if (r == 0) {
        vs_session = se;
        vs_log(LOG_NOTICE, "serving '%s' on '%s'", cfg->data_dir,
               cfg->mountpoint);
        if (!cfg->foreground)
            r = daemonize(cfg);
        /* mounted: the start can no longer fail, the storage may change */
        if (r == 0)
            vs_tree_finish_start(vs_fs.tree);
        if (r == 0)
            vs_merge_resume_all(vs_fs.tree);
        if (r == 0 && (r = vs_idle_start(vs_fs.tree, cfg->max_idle_layers)) < 0)
            vs_log(LOG_ERR, "cannot start the thread closing idle chains: %s",
                   strerror(-r));
        /* the loop returns the signal number after SIGTERM/SIGINT/SIGHUP:
         * that is a clean end; only a negative value is an error */
        if (r == 0)
            r = run_session(cfg, se) < 0 ? -EIO : 0;
        vs_merge_stop_all();
        vs_idle_stop();
        fuse_session_unmount(se);
        vs_session = NULL;
    }
    if (se) {
        fuse_remove_signal_handlers(se);
        fuse_session_destroy(se);
    }
    fuse_opt_free_args(&args);
    return r;
}

/* Raise the soft limit on descriptors to the hard one: each open volume
 * layer holds descriptors (two for a local object), and the limit of idle
 * open chains is derived from it (idle.c).  Silent when it works; a failure
 * is one warning and the daemon runs with the soft limit it has. */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        vs_log(LOG_WARNING,
               "cannot raise the limit on open files to its hard limit "
               "%llu: %s",
               (unsigned long long)rl.rlim_max, strerror(errno));
}

static int
setup_logging(const struct vs_config *cfg)
{
    vs_log_set_level(cfg->log_level);
    if (cfg->debug && vs_log_set_categories(cfg->debug) < 0) {
        fprintf(stderr, "vstorfs: unknown debug category in '%s'\n",
                cfg->debug);
        return -EINVAL;
    }
    fuse_set_log_func(fuse_log_to_ours);
    return 0;
}

int
vs_daemon_main(int argc, char **argv)
{
    struct vs_config cfg;
    int r = vs_config_parse(argc, argv, &cfg);

    if (r < 0 || cfg.show_help || cfg.show_version) {
        if (cfg.show_version)
            printf("vstorfs %s (libfuse %s)\n", VSTORFS_VERSION,
                   fuse_pkgversion());
        else
            vs_config_usage(r < 0 ? stderr : stdout, "vstorfs");
        vs_config_free(&cfg);
        return r < 0 ? 2 : 0;
    }
    r = setup_logging(&cfg);
    if (r == 0)
        raise_nofile();
    vs_qcow2_set_l2_cache_size(cfg.l2_cache_size);
    if (r == 0 && vs_thread_prepare_cancel() < 0)
        vs_log(LOG_WARNING, "cannot prepare thread cancellation: the daemon "
                            "may abort at unmount if it runs out of "
                            "descriptors");
    if (r == 0)
        r = vs_reserve_init(cfg.data_dir);
    if (r == 0) {
        /* the start rebuilds and writes the catalog: room for it first */
        vs_reserve_release_if_full("start");
        r = vs_tree_open(cfg.data_dir, cfg.domain_root, cfg.catalog_path,
                         VS_TREE_DEFER_REPAIRS, &vs_fs.tree);
    }
    if (r == -EROFS)
        vs_log(LOG_ERR,
               "data directory '%s' is read-only: vstorfs keeps its catalog "
               "'%s' and its domains there and must write them (%s)",
               cfg.data_dir, cfg.catalog_path, strerror(EROFS));
    else if (r < 0 && r != -EINVAL)
        vs_log(LOG_ERR, "cannot open data directory '%s' (catalog '%s'): %s%s",
               cfg.data_dir, cfg.catalog_path, strerror(-r),
               r == -EUCLEAN ? "; the catalog is damaged: move it away and "
                               "start again to rebuild it from the domains"
                             : "");
    if (r == 0) {
        vs_fs.cfg = &cfg;
        vs_reserve_refill();
        r = serve(&cfg, argv[0]);
        vs_tree_close(vs_fs.tree);
    }
    vs_reserve_fini();
    vs_config_free(&cfg);
    return r < 0 ? 1 : 0;
}
