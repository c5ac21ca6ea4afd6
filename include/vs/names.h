/*
 * Which names the tree accepts for domains, images and volumes, and the
 * fixed names of a volume's parts.  Shared by the daemon and the tools.
 */
#ifndef VS_NAMES_H
#define VS_NAMES_H

#include "vs/record.h"

#define VS_PART_DATA "data"       /* a volume's bytes */
#define VS_PART_BACKING "backing" /* symlink to the parent layer (COW) */
#define VS_PART_MAPFILE "map"     /* the chain's allocation, as JSON */

/* 0 if NAME may name a new domain, image or volume; otherwise -EINVAL
 * (empty, ".", "..", leading '.', '/', a control character C0, DEL or C1,
 * invalid UTF-8, not in Unicode NFC) or -ENAMETOOLONG (more than
 * VS_NAME_MAX bytes). */
int vs_name_check(const char *name);
/* The same for a name read from a record: C1 controls and names not in NFC
 * pass (earlier versions stored them; the volume must stay visible). */
int vs_name_check_stored(const char *name);

/* Why vs_name_check refused NAME, for a log line ("starts with '.'"). */
const char *vs_name_reason(const char *name);

#endif
