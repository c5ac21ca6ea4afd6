/*
 * The daemon's command line.  Options may come before or after the
 * positionals because mount.fuse3 calls `vstorfs SOURCE MOUNTPOINT -o OPTS`.
 * Each -o word is either ours (data_dir=, threads= ...), a mount(8) word
 * that needs nothing from us (rw, nosuid, _netdev ...), or handed to libfuse
 * (allow_other, max_read= ...), which rejects what it does not know.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "vs/driver.h"
#include "vs/log.h"

#define DEFAULT_DATA_DIR "/var/lib/vstorfs"
#define DEFAULT_MAX_WRITE (128u * 1024)
#define DEFAULT_MAX_BACKGROUND 64u
/* Workers block in backend I/O, so a disk needs more of them than there are
 * cores: on a 2-CPU host, 2 workers gave 0.81x the file's 1 MiB read speed
 * and 16 gave 0.99x (32: no better). */
#define DEFAULT_THREADS 16u

/* mount(8) words that the kernel mount of a FUSE file system either gets
 * from us anyway (nosuid, nodev) or that mean nothing to a daemon. */
static const char *const ignored_words[] = {
    "rw",
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "_netdev",
    "nofail",
    "nosuid",
    "nodev",
    "suid",
    "dev",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "diratime",
    "async",
    "x-systemd.automount",
};

/* The largest L2 cache a layer may be given: 64 GiB (maps 32 TiB of guest
 * disk with 64 KiB clusters). */
#define L2_CACHE_MAX (64ull << 30)

enum long_opt {
    OPT_LOG_LEVEL = 256,
    OPT_THREADS,
    OPT_MAX_WRITE,
    OPT_MAX_BACKGROUND,
    OPT_CATALOG,
    OPT_DATA_DIR,
    OPT_MAX_IDLE_LAYERS,
    OPT_DOMAIN_ROOT,
    OPT_L2_CACHE_SIZE,
    OPT_PASSTHROUGH,
};

static const struct option long_options[] = {
    {"foreground", no_argument, NULL, 'f'},
    {"debug", required_argument, NULL, 'd'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-write", required_argument, NULL, OPT_MAX_WRITE},
    {"max-background", required_argument, NULL, OPT_MAX_BACKGROUND},
    {"catalog", required_argument, NULL, OPT_CATALOG},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"max-idle-layers", required_argument, NULL, OPT_MAX_IDLE_LAYERS},
    {"domain-root", required_argument, NULL, OPT_DOMAIN_ROOT},
    {"l2-cache-size", required_argument, NULL, OPT_L2_CACHE_SIZE},
    {"passthrough", required_argument, NULL, OPT_PASSTHROUGH},
    {NULL, 0, NULL, 0},
};

void
vs_config_usage(FILE *out, const char *prog)
{
    fprintf(
        out,
        "Usage: %s [OPTIONS] [DATA_DIR] MOUNTPOINT\n"
        "Serve the storage domains kept under DATA_DIR (default %s)\n"
        "as a directory tree of domains, images and volumes.\n"
        "\n"
        "  -f, --foreground        stay in the foreground, log to stderr\n"
        "  -d, --debug=CATS        debug categories: fuse,io,meta,backend,all\n"
        "      --log-level=LEVEL   err, warning, notice (default), info, "
        "debug\n"
        "      --threads=N         FUSE worker threads (default %u)\n"
        "      --max-write=BYTES   largest write request (default %u)\n"
        "      --max-background=N  async requests queued by the kernel "
        "(default %u)\n"
        "      --catalog=PATH      the SQLite catalog (default "
        "DATA_DIR/catalog.db)\n"
        "      --data-dir=DIR      the data directory (same as DATA_DIR)\n"
        "      --domain-root=LOC   where new domains are made and found\n"
        "                          (default dir:DATA_DIR/domains)\n"
        "      --max-idle-layers=N volume layers kept open with no file "
        "handle\n"
        "                          (default: RLIMIT_NOFILE / 8)\n"
        "      --l2-cache-size=SIZE\n"
        "                          memory for each qcow2 layer's L2 tables,\n"
        "                          bytes or with K, M, G (default 32M)\n"
        "      --passthrough=MODE  kernel FUSE passthrough for raw local\n"
        "                          volumes: off (default), auto, on\n"
        "  -o OPT[,OPT...]         mount options: data_dir=, catalog=, "
        "threads=,\n"
        "                          max_write=, max_background=, log_level=, "
        "debug=,\n"
        "                          passthrough=, max_idle_layers=, "
        "domain_root=,\n"
        "                          l2_cache_size=,\n"
        "                          allow_other (default), noallow_other, ro, "
        "and\n"
        "                          mount(8) words such as rw, nosuid, nodev, "
        "_netdev\n"
        "  -h, --help              show this help\n"
        "  -V, --version           show the version\n"
        "\n"
        "The mount is always nosuid,nodev,default_permissions.\n"
        "See vstorfs(8).\n",
        prog, DEFAULT_DATA_DIR, DEFAULT_THREADS, DEFAULT_MAX_WRITE,
        DEFAULT_MAX_BACKGROUND);
}

/* A size in bytes, with an optional K, M or G (binary) suffix, in
 * [min, max]. */
static int
parse_size(const char *what, const char *text, uint64_t min, uint64_t max,
           uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    errno = 0;
    v = strtoull(text, &end, 10);
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift != 0)
        end++;
    if (errno || end == text || *end || text[0] == '-' || v > (max >> shift) ||
        (v << shift) < min) {
        fprintf(stderr,
                "vstorfs: %s: '%s' is not a size in [%llu, %llu] "
                "(bytes, or with K, M, G)\n",
                what, text, (unsigned long long)min, (unsigned long long)max);
        return -EINVAL;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

static int
parse_uint(const char *what, const char *text, unsigned min, unsigned max,
           unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(text, &end, 0);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "vstorfs: %s: '%s' is not a number in [%u, %u]\n", what,
                text, min, max);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

static int
set_passthrough(struct vs_config *cfg, const char *value)
{
    if (strcmp(value, "off") == 0)
        cfg->passthrough = VS_PASSTHROUGH_OFF;
    else if (strcmp(value, "auto") == 0)
        cfg->passthrough = VS_PASSTHROUGH_AUTO;
    else if (strcmp(value, "on") == 0)
        cfg->passthrough = VS_PASSTHROUGH_ON;
    else {
        fprintf(stderr, "vstorfs: passthrough: '%s' is not off, auto or on\n",
                value);
        return -EINVAL;
    }
    return 0;
}

static int
set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = strdup(value);
    return *slot ? 0 : -ENOMEM;
}

static int
set_log_level(struct vs_config *cfg, const char *value)
{
    if (vs_log_parse_level(value, &cfg->log_level) < 0) {
        fprintf(stderr, "vstorfs: unknown log level '%s'\n", value);
        return -EINVAL;
    }
    return 0;
}

static int
append_fuse_opt(struct vs_config *cfg, const char *word)
{
    size_t old = cfg->fuse_opts ? strlen(cfg->fuse_opts) : 0;
    char *s = realloc(cfg->fuse_opts, old + strlen(word) + 2);

    if (!s)
        return -ENOMEM;
    if (old)
        s[old++] = ',';
    strcpy(s + old, word);
    cfg->fuse_opts = s;
    return 0;
}

static bool
is_ignored_word(const char *word)
{
    for (size_t i = 0; i < sizeof(ignored_words) / sizeof(*ignored_words); i++)
        if (strcmp(word, ignored_words[i]) == 0)
            return true;
    return false;
}

/* One word of -o: ours with a value, ours as a flag, ignored, or libfuse's */
static int
parse_mount_word(struct vs_config *cfg, const char *word)
{
    const char *eq = strchr(word, '=');
    size_t klen = eq ? (size_t)(eq - word) : strlen(word);
    const char *v = eq ? eq + 1 : "";

#define KEY(k) (klen == strlen(k) && strncmp(word, k, klen) == 0)
    if (KEY("data_dir"))
        return set_string(&cfg->data_dir, v);
    if (KEY("catalog"))
        return set_string(&cfg->catalog_path, v);
    if (KEY("debug"))
        return set_string(&cfg->debug, v);
    if (KEY("log_level"))
        return set_log_level(cfg, v);
    if (KEY("threads"))
        return parse_uint("threads", v, 1, 256, &cfg->threads);
    if (KEY("max_write"))
        return parse_uint("max_write", v, 4096, 1u << 20, &cfg->max_write);
    if (KEY("max_background"))
        return parse_uint("max_background", v, 1, 65535, &cfg->max_background);
    if (KEY("domain_root"))
        return set_string(&cfg->domain_root, v);
    if (KEY("passthrough"))
        return set_passthrough(cfg, v);
    if (KEY("max_idle_layers"))
        return parse_uint("max_idle_layers", v, 0, 1u << 30,
                          &cfg->max_idle_layers);
    if (KEY("l2_cache_size"))
        return parse_size("l2_cache_size", v, 0, L2_CACHE_MAX,
                          &cfg->l2_cache_size);
#undef KEY
    if (strcmp(word, "allow_other") == 0 || strcmp(word, "noallow_other") == 0)
        cfg->allow_other = word[0] == 'a';
    else if (strcmp(word, "ro") == 0)
        cfg->read_only = true;
    else if (strcmp(word, "default_permissions") == 0 || is_ignored_word(word))
        ;
    else
        return append_fuse_opt(cfg, word);
    return 0;
}

static int
parse_mount_opts(struct vs_config *cfg, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    int r = copy ? 0 : -ENOMEM;

    for (char *w = copy ? strtok_r(copy, ",", &save) : NULL; w && r == 0;
         w = strtok_r(NULL, ",", &save))
        r = parse_mount_word(cfg, w);
    free(copy);
    return r;
}

static int
parse_one(struct vs_config *cfg, int c, const char *arg)
{
    switch (c) {
    case 'f':
        cfg->foreground = true;
        return 0;
    case 'd':
        return set_string(&cfg->debug, arg);
    case 'h':
        cfg->show_help = true;
        return 0;
    case 'V':
        cfg->show_version = true;
        return 0;
    case 'o':
        return parse_mount_opts(cfg, arg);
    case OPT_LOG_LEVEL:
        return set_log_level(cfg, arg);
    case OPT_THREADS:
        return parse_uint("--threads", arg, 1, 256, &cfg->threads);
    case OPT_MAX_WRITE:
        return parse_uint("--max-write", arg, 4096, 1u << 20, &cfg->max_write);
    case OPT_MAX_BACKGROUND:
        return parse_uint("--max-background", arg, 1, 65535,
                          &cfg->max_background);
    case OPT_CATALOG:
        return set_string(&cfg->catalog_path, arg);
    case OPT_DATA_DIR:
        return set_string(&cfg->data_dir, arg);
    case OPT_DOMAIN_ROOT:
        return set_string(&cfg->domain_root, arg);
    case OPT_PASSTHROUGH:
        return set_passthrough(cfg, arg);
    case OPT_MAX_IDLE_LAYERS:
        return parse_uint("--max-idle-layers", arg, 0, 1u << 30,
                          &cfg->max_idle_layers);
    case OPT_L2_CACHE_SIZE:
        return parse_size("--l2-cache-size", arg, 0, L2_CACHE_MAX,
                          &cfg->l2_cache_size);
    default:
        return -EINVAL;
    }
}

static void
set_defaults(struct vs_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->allow_other = true;
    cfg->log_level = LOG_NOTICE;
    cfg->threads = DEFAULT_THREADS;
    cfg->max_write = DEFAULT_MAX_WRITE;
    cfg->max_background = DEFAULT_MAX_BACKGROUND;
    cfg->l2_cache_size = vs_qcow2_l2_cache_size();
}

static int
take_positionals(struct vs_config *cfg, char **pos, int npos)
{
    if (npos < 1 || npos > 2) {
        fprintf(stderr, "vstorfs: expected [DATA_DIR] MOUNTPOINT "
                        "(try --help)\n");
        return -EINVAL;
    }
    if (npos == 2 && set_string(&cfg->data_dir, pos[0]) < 0)
        return -ENOMEM;
    return set_string(&cfg->mountpoint, pos[npos - 1]);
}

static int
fill_paths(struct vs_config *cfg)
{
    if (!cfg->data_dir && set_string(&cfg->data_dir, DEFAULT_DATA_DIR) < 0)
        return -ENOMEM;
    if (cfg->data_dir[0] != '/') {
        char *abs = realpath(cfg->data_dir, NULL);
        if (!abs) {
            fprintf(stderr, "vstorfs: data directory '%s': %s\n", cfg->data_dir,
                    strerror(errno));
            return -errno;
        }
        free(cfg->data_dir);
        cfg->data_dir = abs;
    }
    if (!cfg->catalog_path &&
        asprintf(&cfg->catalog_path, "%s/catalog.db", cfg->data_dir) < 0) {
        cfg->catalog_path = NULL;
        return -ENOMEM;
    }
    return 0;
}

int
vs_config_parse(int argc, char **argv, struct vs_config *cfg)
{
    char *pos[3];
    int npos = 0, c, r;

    set_defaults(cfg);
    optind = 1;
    /* "-" first: positionals come back as 1 so they may sit anywhere */
    while ((c = getopt_long(argc, argv, "-fd:hVo:", long_options, NULL)) !=
           -1) {
        if (c == '?')
            return -EINVAL;
        if (c == 1) {
            if (npos == 3)
                return take_positionals(cfg, pos, 3);
            pos[npos++] = optarg;
            continue;
        }
        r = parse_one(cfg, c, optarg);
        if (r < 0)
            return r;
    }
    if (cfg->show_help || cfg->show_version)
        return 0;
    r = take_positionals(cfg, pos, npos);
    return r < 0 ? r : fill_paths(cfg);
}

void
vs_config_free(struct vs_config *cfg)
{
    free(cfg->data_dir);
    free(cfg->catalog_path);
    free(cfg->domain_root);
    free(cfg->mountpoint);
    free(cfg->debug);
    free(cfg->fuse_opts);
}
