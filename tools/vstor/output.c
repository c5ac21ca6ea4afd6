/*
 * Output helpers shared by the vstor subcommands: error messages in the one
 * "vstor: PATH: reason" form, qemu-img style sizes, path joining, and the
 * json-c building blocks (JSON is always built as objects and serialized by
 * json-c, never printed by hand).  clang-analyzer 14 reports the va_list
 * passed to vfprintf below as uninitialized: a false positive (va_start
 * comes right before it).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vstor.h"

int
vstor_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("vstor: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'vstor --help' for more information.\n", stderr);
    return VSTOR_EXIT_USAGE;
}

int
vstor_error(const char *path, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vstor: %s: ", path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return VSTOR_EXIT_ERROR;
}

void
vstor_size_human(int64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B",   "KiB", "MiB", "GiB",
                                        "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, len, "%" PRId64 " B", bytes);
        return;
    }
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    /* Three significant digits, four for 1000..1023 to avoid "1e+03". */
    snprintf(buf, len, "%.*g %s", v >= 1000.0 ? 4 : 3, v, units[u]);
}

char *
vstor_path_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    const char *sep = dl == 1 && dir[0] == '/' ? "" : "/";
    char *p;
    if (asprintf(&p, "%.*s%s%s", (int)dl, dir, sep, name) < 0)
        return NULL;
    return p;
}

struct json_object *
vstor_json_string(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

struct json_object *
vstor_json_size(int64_t v)
{
    return v >= 0 ? json_object_new_int64(v) : NULL;
}

int
vstor_json_print(struct json_object *obj)
{
    const char *text = json_object_to_json_string_ext(
        obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                 JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text)
        return vstor_error("json", "cannot serialize the output");
    puts(text);
    return VSTOR_EXIT_OK;
}
