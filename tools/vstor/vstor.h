/*
 * Shared parts of the vstor command: the subcommand entry points, reading a
 * node's user.vstor.* attributes through the mount, finding the default
 * mount, and the output helpers every subcommand uses.  vstor never opens
 * the catalog: everything it knows comes from readdir and getxattr on the
 * vstorfs tree, so it works for any user who can see the mount.
 */
#ifndef VSTOR_H
#define VSTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Exit statuses (docs/interface.md): ok, error, usage error. */
#define VSTOR_EXIT_OK 0
#define VSTOR_EXIT_ERROR 1
#define VSTOR_EXIT_USAGE 2

/* The subcommands: ARGV[0] is the subcommand's name; return an exit code. */
int vstor_cmd_ls(int argc, char **argv);
int vstor_cmd_info(int argc, char **argv);
int vstor_cmd_rescan(int argc, char **argv);
int vstor_cmd_jobs(int argc, char **argv);
int vstor_cmd_secret(int argc, char **argv);

/* The options a subcommand accepts (a bit set) and the ones given. */
enum vstor_opt {
    VSTOR_OPT_JSON = 1 << 0,  /* -j, --json */
    VSTOR_OPT_LONG = 1 << 1,  /* -l, --long */
    VSTOR_OPT_CHAIN = 1 << 2, /* --backing-chain */
};

struct vstor_args {
    unsigned opts; /* enum vstor_opt bits that were given */
    int npos;      /* number of positional arguments */
    char **pos;    /* the positional arguments */
};

/*
 * Parse a subcommand's command line (ARGV[0] is its name), accepting the
 * options in ALLOWED plus -h/--help, and at most MAX_POS positionals.
 * Returns -1 when parsing succeeded, else the exit code to return at once
 * (0 after printing the help, 2 after a usage error).
 */
int vstor_args_parse(int argc, char **argv, unsigned allowed, int max_pos,
                     struct vstor_args *args);

/* Print the full help text to stdout. */
void vstor_usage(void);
/* Print "vstor: MSG" and the --help hint to stderr; return the usage code. */
int vstor_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* Print "vstor: PATH: reason" to stderr; return VSTOR_EXIT_ERROR. */
int vstor_error(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The attributes of one node, as read by vstor_node_read(). */
struct vstor_node {
    char *path;        /* as given or joined by the walk */
    char *kind;        /* root, domain, image, volume, data */
    char *uuid;        /* NULL when absent */
    char *format;      /* NULL when absent */
    char *backend;     /* NULL when absent */
    char *object;      /* NULL when absent (only volumes and data have one) */
    char *created;     /* NULL when absent */
    char *caps;        /* comma list; NULL when absent */
    char *status;      /* volume, data: "ok" or "unavailable: why"; else NULL */
    int64_t size;      /* -1 when absent or unreadable */
    int64_t allocated; /* -1 when absent or unreadable */
};

/*
 * Read PATH's user.vstor.* attributes into NODE (which takes a copy of
 * PATH).  Returns 0, -ENOTSUP when PATH is not on a vstorfs mount (it has no
 * user.vstor.kind), or another -errno from getxattr.
 */
int vstor_node_read(const char *path, struct vstor_node *node);
/* Whether NODE is a volume or its data file. */
bool vstor_node_is_volume(const struct vstor_node *node);
/* Whether NODE is a volume whose chain does not open (status says why). */
bool vstor_node_unavailable(const struct vstor_node *node);
/* Free what NODE holds; NODE itself may be reused afterwards. */
void vstor_node_clear(struct vstor_node *node);

/*
 * Read the xattr NAME of PATH as a NUL-terminated string into *VALUE
 * (malloc'd).  Returns 0 or -errno (-ENODATA when PATH has no such name).
 */
int vstor_xattr_get(const char *path, const char *name, char **value);

/*
 * Find the mount point of the first fuse.vstorfs mount in
 * /proc/self/mountinfo into *MNT (malloc'd).  Returns 0, -ENOENT when there
 * is none, or -errno when mountinfo cannot be read.
 */
int vstor_default_mount(char **mnt);

/* vstor_default_mount(), printing the error: returns an exit code. */
int vstor_default_mount_or_error(char **mnt);

/* Format BYTES like qemu-img ("20 GiB", "1.5 MiB", "512 B") into BUF. */
void vstor_size_human(int64_t bytes, char *buf, size_t len);

/* Join DIR and NAME with one '/' into a malloc'd string (NULL on ENOMEM). */
char *vstor_path_join(const char *dir, const char *name);

/* A JSON string, or null when S is NULL. */
struct json_object *vstor_json_string(const char *s);
/* A JSON integer, or null when V is negative (unknown). */
struct json_object *vstor_json_size(int64_t v);
/* Print OBJ (pretty) and a newline to stdout; returns an exit code. */
int vstor_json_print(struct json_object *obj);

#endif
