/*
 * Attaching a domain's storage with its options and this host's secrets,
 * and changing its options (user.vstor.options).
 *
 * A domain's options live with the domain (its record on the storage, the
 * catalog row that mirrors it); its secrets live only on this host, in the
 * secrets store (<vs/secrets.h>), keyed by the domain's uuid.  Every open
 * of a domain's store goes through vs_domain_open_store, which reads both
 * and hands them to the driver; the secrets are wiped from memory here as
 * soon as the store holds its own copy.  Reasons for a refusal name keys
 * and files, never a secret's value.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"
#include "vs/log.h"
#include "vs/secrets.h"

/* The options of ROW parsed into OUT (WHY on failure). */
static int
row_options(const struct vs_cat_node *row, struct vs_options *out, char *why,
            size_t len)
{
    char reason[160];
    int r = vs_options_parse(row->options, out, reason, sizeof(reason));

    if (r < 0)
        snprintf(why, len, "its recorded options do not parse: %s", reason);
    return r;
}

/* The secrets this host keeps for domain UUID, into OUT (WHY on failure). */
static int
host_secrets(struct vs_tree *tree, const char *uuid, struct vs_options *out,
             char *why, size_t len)
{
    char path[4096];
    int r = vs_secrets_path(tree->data_dir, uuid, path, sizeof(path));

    if (r < 0) {
        snprintf(why, len, "its secrets file name is too long");
        return r;
    }
    return vs_secrets_load(path, out, why, len);
}

int
vs_domain_open_store(struct vs_tree *tree, const struct vs_cat_node *row,
                     bool create, struct vs_store **out, char *why, size_t len)
{
    struct vs_options opts, secrets;
    int r;

    why[0] = '\0';
    r = row_options(row, &opts, why, len);
    if (r == 0)
        r = host_secrets(tree, row->uuid, &secrets, why, len);
    if (r < 0)
        return r;
    r = vs_store_open_with(row->location, &opts, &secrets, create, out, why,
                           len);
    vs_options_wipe(&secrets);
    if (r < 0 && why[0] == '\0')
        snprintf(why, len, "%s", strerror(-r));
    return r;
}

/* The canonical text of the options in TEXT (SIZE bytes, a trailing
 * newline allowed) into ROW, and the parsed list into OPTS. */
static int
canonical_options(const char *text, size_t size, struct vs_cat_node *row,
                  char *why, size_t len)
{
    char buf[VS_OPTIONS_TEXT_MAX + 2];
    struct vs_options opts;
    int r;

    if (size > 0 && text[size - 1] == '\n')
        size--;
    if (size >= sizeof(buf) - 1 || memchr(text, '\0', size) != NULL) {
        snprintf(why, len,
                 "the options are longer than %d bytes or hold a "
                 "NUL",
                 VS_OPTIONS_TEXT_MAX);
        return size >= sizeof(buf) - 1 ? -E2BIG : -EINVAL;
    }
    memcpy(buf, text, size);
    buf[size] = '\0';
    r = vs_options_parse(buf, &opts, why, len);
    if (r == 0 && vs_options_format(&opts, false, row->options,
                                    sizeof(row->options)) < 0) {
        snprintf(why, len, "the options are longer than %d bytes",
                 VS_OPTIONS_TEXT_MAX);
        r = -E2BIG;
    }
    return r;
}

int
vs_domain_set_options(struct vs_tree *tree, struct vs_node *node,
                      const char *text, size_t size, char *why, size_t len)
{
    struct vs_cat_node row = node->cat;
    struct vs_store *trial;
    int r;

    if (node->cat.kind != VS_NODE_DOMAIN) {
        snprintf(why, len, "only a domain has options");
        return -EPERM;
    }
    if ((r = vs_node_check_writable(node)) < 0) {
        snprintf(why, len, "the domain is read-only");
        return r;
    }
    r = canonical_options(text, size, &row, why, len);
    /* the driver's check at attach, on a store opened beside the one in
     * use: what it refuses changes nothing */
    if (r == 0)
        r = vs_domain_open_store(tree, &row, false, &trial, why, len);
    if (r < 0)
        return r;
    vs_store_close(trial);
    r = vs_tree_store_row(tree, node, &row, NULL);
    if (r < 0) {
        snprintf(why, len,
                 "the domain record or the catalog cannot be "
                 "written: %s",
                 strerror(-r));
        return r;
    }
    vs_tree_replace_row(tree, node, &row);
    return 0;
}

void
vs_domain_forget_secrets(struct vs_tree *tree, const char *uuid)
{
    struct vs_options none = {.count = 0};
    char path[4096], why[256];
    int r = vs_secrets_path(tree->data_dir, uuid, path, sizeof(path));

    if (r == 0)
        r = vs_secrets_save(path, &none, why, sizeof(why));
    if (r < 0)
        vs_log(LOG_WARNING,
               "domain %s removed, but its secrets file "
               "stays: %s",
               uuid, why);
}
