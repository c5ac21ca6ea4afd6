/*
 * Unit test of a domain's metadata area on a real store (the "dir" driver
 * in a mkdtemp directory): writing, rewriting, freeing and reading slots,
 * load, growth of the object, reopening, and what damage does: a torn
 * write (first half new bytes, second half old) or garbage in one copy
 * keeps the other copy's record and is reported; both copies bad yields no
 * record, is reported, and the slot is not handed out as free.
 *
 * Damage is made through a second handle on the "metadata" object, while
 * the area is closed, as a crash would leave it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "vs/bdev.h"
#include "vs/meta_area.h"
#include "vs/util.h"

#define SLOT_BYTES ((size_t)2 * VS_RECORD_SIZE)

static char dir[] = "/tmp/vs-test-meta-XXXXXX";
static char location[PATH_MAX];
static struct vs_store *store;

static void
remove_tree(const char *path)
{
    char child[PATH_MAX];
    struct dirent *e;
    DIR *d = opendir(path);

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        if (e->d_type == DT_DIR)
            remove_tree(child);
        else
            unlink(child);
    }
    if (d != NULL)
        closedir(d);
    rmdir(path);
}

static struct vs_record
make_record(enum vs_record_kind kind, int n, const char *name)
{
    struct vs_record rec;

    memset(&rec, 0, sizeof(rec));
    rec.kind = kind;
    snprintf(rec.uuid, sizeof(rec.uuid), "00000000-0000-4000-8000-%012d", n);
    if (kind != VS_REC_DOMAIN)
        snprintf(rec.parent_uuid, sizeof(rec.parent_uuid),
                 "00000000-0000-4000-8000-%012d", 0);
    snprintf(rec.name, sizeof(rec.name), "%s", name);
    rec.created = 1795319360 + n;
    if (kind == VS_REC_VOLUME) {
        snprintf(rec.format, sizeof(rec.format), "raw");
        snprintf(rec.object, sizeof(rec.object), "%s", rec.uuid);
    }
    return rec;
}

/* What load reported, slot by slot. */
struct seen {
    int records;
    char names[64][VS_NAME_MAX + 1];
    uint64_t gens[64];
    int damaged;
    struct vs_meta_slot_report reports[8];
    int stop_at;
};

static int
on_record(const struct vs_record *rec, void *arg)
{
    struct seen *s = arg;

    if (rec->slot < 64) {
        snprintf(s->names[rec->slot], sizeof(s->names[0]), "%s", rec->name);
        s->gens[rec->slot] = rec->generation;
    }
    s->records++;
    return s->records == s->stop_at ? 7 : 0;
}

static void
on_damage(const struct vs_meta_slot_report *r, void *arg)
{
    struct seen *s = arg;

    if (s->damaged < 8)
        s->reports[s->damaged] = *r;
    s->damaged++;
}

static int
load(struct vs_meta_area *area, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    return vs_meta_area_load(area, on_record, on_damage, s);
}

/* Write LEN bytes of BUF at OFFSET of the metadata object, bypassing the
 * area (which must be closed). */
static void
poke(const void *buf, size_t len, uint64_t offset)
{
    struct vs_bdev *bs;

    if (vs_object_open(store, VS_META_OBJECT, 0, "poke", &bs) < 0) {
        tap_diag("cannot open the metadata object");
        return;
    }
    if (vs_bdev_pwrite(bs, buf, len, offset) != (ssize_t)len ||
        vs_bdev_flush(bs) < 0)
        tap_diag("cannot write the metadata object");
    vs_bdev_close(bs);
}

static void
peek(void *buf, size_t len, uint64_t offset)
{
    struct vs_bdev *bs;

    memset(buf, 0, len);
    if (vs_object_open(store, VS_META_OBJECT, 0, "peek", &bs) < 0)
        return;
    if (vs_bdev_pread(bs, buf, len, offset) < 0)
        tap_diag("cannot read the metadata object");
    vs_bdev_close(bs);
}

static uint64_t
copy_offset(uint32_t slot, int copy)
{
    return (uint64_t)slot * SLOT_BYTES + (uint64_t)copy * VS_RECORD_SIZE;
}

/* Open the area again, after the test closed it. */
static struct vs_meta_area *
open_again(void)
{
    struct vs_meta_area *again = NULL;

    if (vs_meta_area_open(store, false, &again) < 0)
        tap_diag("reopen failed");
    return again;
}

static void
test_basics(struct vs_meta_area *area)
{
    struct vs_record dom = make_record(VS_REC_DOMAIN, 1, "prod");
    struct vs_record img = make_record(VS_REC_IMAGE, 2, "web");
    struct vs_record vol = make_record(VS_REC_VOLUME, 3, "disk");
    struct vs_record out;

    is_int(vs_meta_area_read(area, 0, &out), -ENOENT, "empty area: slot 0");
    is_int(vs_meta_area_write(area, &dom), 0, "write the domain");
    ok(dom.slot == 0 && dom.generation == 1, "domain: slot 0, generation 1");
    is_int(vs_meta_area_write(area, &img), 0, "write an image");
    is_int(img.slot, 1, "image gets slot 1");
    is_int(vs_meta_area_write(area, &vol), 0, "write a volume");
    is_int(vol.slot, 2, "volume gets slot 2");
    is_int(vs_meta_area_read(area, 2, &out), 0, "read the volume");
    ok(strcmp(out.name, "disk") == 0 && strcmp(out.object, vol.uuid) == 0 &&
           out.slot == 2 && out.generation == 1,
       "volume read back");
    snprintf(img.name, sizeof(img.name), "web2");
    is_int(vs_meta_area_write(area, &img), 0, "rewrite the image");
    ok(img.slot == 1 && img.generation == 2, "same slot, next generation");
    is_int(vs_meta_area_read(area, 1, &out), 0, "read the image");
    ok(strcmp(out.name, "web2") == 0 && out.generation == 2, "newest wins");
    is_int(vs_meta_area_read(area, 500, &out), -ENOENT, "slot past the end");
}

static void
test_free(struct vs_meta_area *area)
{
    struct vs_record vol = make_record(VS_REC_VOLUME, 4, "again");
    struct vs_record out;

    is_int(vs_meta_area_free(area, 2), 0, "free slot 2");
    is_int(vs_meta_area_read(area, 2, &out), -ENOENT, "freed slot is empty");
    is_int(vs_meta_area_free(area, 2), 0, "free it again: nothing to do");
    is_int(vs_meta_area_free(area, 300), 0, "free a slot never written");
    is_int(vs_meta_area_write(area, &vol), 0, "write a new volume");
    is_int(vol.slot, 2, "it reuses the freed slot");
    ok(vol.generation == 3, "generations keep rising in a reused slot");
}

static void
test_refusals(struct vs_meta_area *area)
{
    struct vs_record rec = make_record(VS_REC_DOMAIN, 5, "d");
    struct vs_record out;

    rec.slot = 3;
    is_int(vs_meta_area_write(area, &rec), -EINVAL, "domain outside slot 0");
    rec = make_record(VS_REC_IMAGE, 5, "i");
    rec.slot = VS_META_MAX_SLOTS;
    is_int(vs_meta_area_write(area, &rec), -EINVAL, "slot past the maximum");
    rec = make_record(VS_REC_FREE, 5, "f");
    is_int(vs_meta_area_write(area, &rec), -EINVAL, "FREE without a slot");
    rec = make_record(VS_REC_IMAGE, 5, ".bad");
    is_int(vs_meta_area_write(area, &rec), -EINVAL, "invalid record");
    is_int(vs_meta_area_read(area, 3, &out), -ENOENT, "and nothing written");
}

static void
test_load_and_grow(struct vs_meta_area *area)
{
    struct vs_record rec;
    struct seen s;
    char name[32];
    struct vs_bdev *bs;
    bool all = true;

    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "vol%02d", i);
        rec = make_record(VS_REC_VOLUME, 10 + i, name);
        all = all && vs_meta_area_write(area, &rec) == 0 &&
              rec.slot == (uint32_t)(3 + i);
    }
    ok(all, "twenty more volumes take slots 3..22");
    is_int(load(area, &s), 0, "load");
    is_int(s.records, 23, "load sees every record");
    is_int(s.damaged, 0, "and no damage");
    ok(strcmp(s.names[0], "prod") == 0 && strcmp(s.names[1], "web2") == 0 &&
           strcmp(s.names[22], "vol19") == 0,
       "load hands out the newest versions");
    memset(&s, 0, sizeof(s));
    s.stop_at = 3;
    is_int(vs_meta_area_load(area, on_record, NULL, &s), 7,
           "a callback's return stops load");
    if (vs_object_open(store, VS_META_OBJECT, VS_OPEN_RDONLY, "size", &bs) ==
        0) {
        int64_t size = vs_bdev_size(bs);

        ok(size >= (int64_t)(23 * SLOT_BYTES) &&
               size % (int64_t)SLOT_BYTES == 0,
           "object grown in whole slots (%lld bytes)", (long long)size);
        vs_bdev_close(bs);
    }
}

/* A crash while writing generation 3 of slot 1 into copy A. */
static struct vs_meta_area *
test_torn_write(struct vs_meta_area *area)
{
    static unsigned char old_a[VS_RECORD_SIZE], torn[VS_RECORD_SIZE];
    struct vs_record rec, out;
    struct seen s;
    size_t half;

    if (vs_meta_area_read(area, 1, &rec) < 0) /* generation 2, copy B */
        tap_diag("cannot read slot 1");
    snprintf(rec.name, sizeof(rec.name), "web3-with-a-longer-name");
    rec.generation = 3;
    vs_record_encode(&rec, torn);
    peek(old_a, sizeof(old_a), copy_offset(1, 0));
    /* the first half of the bytes in use are new, the rest still old */
    half = (VS_RECORD_HEADER_SIZE + (size_t)(torn[28] | torn[29] << 8)) / 2;
    memcpy(torn + half, old_a + half, VS_RECORD_SIZE - half);
    vs_meta_area_close(area);
    poke(torn, sizeof(torn), copy_offset(1, 0));
    area = open_again();
    if (area == NULL)
        return NULL;
    is_int(vs_meta_area_read(area, 1, &out), 0, "torn slot still readable");
    ok(strcmp(out.name, "web2") == 0 && out.generation == 2,
       "the previous version is used");
    is_int(load(area, &s), 0, "load with a torn copy");
    is_int(s.damaged, 1, "one damaged slot reported");
    ok(s.reports[0].slot == 1 && s.reports[0].copy_a == -EBADMSG &&
           s.reports[0].copy_b == 0,
       "slot 1: copy A corrupt, copy B valid");
    ok(strcmp(s.names[1], "web2") == 0, "load used the valid copy");
    snprintf(out.name, sizeof(out.name), "web3");
    is_int(vs_meta_area_write(area, &out), 0, "write after the crash");
    is_int(vs_meta_area_read(area, 1, &out), 0, "read it");
    ok(strcmp(out.name, "web3") == 0 && out.generation == 3,
       "the new version landed over the torn copy");
    is_int(load(area, &s), 0, "load again");
    is_int(s.damaged, 0, "damage gone");
    return area;
}

/* Garbage in both copies of slot 2; a record copied to the wrong slot. */
static struct vs_meta_area *
test_both_bad(struct vs_meta_area *area)
{
    static unsigned char junk[SLOT_BYTES], copy[VS_RECORD_SIZE];
    struct vs_record rec, out;
    struct seen s;

    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 7 + 1);
    peek(copy, sizeof(copy), copy_offset(4, 0));
    vs_meta_area_close(area);
    poke(junk, sizeof(junk), copy_offset(2, 0));
    poke(copy, sizeof(copy), copy_offset(5, 1)); /* slot 4's record */
    area = open_again();
    if (area == NULL)
        return NULL;
    is_int(vs_meta_area_read(area, 2, &out), -EBADMSG, "both copies bad");
    is_int(load(area, &s), 0, "load");
    is_int(s.records, 22, "no record from slot 2");
    ok(s.names[2][0] == '\0', "slot 2 yields nothing");
    is_int(s.damaged, 2, "two slots reported");
    ok(s.reports[0].slot == 2 && s.reports[0].copy_a == -EBADMSG &&
           s.reports[0].copy_b == -EBADMSG,
       "slot 2: both copies corrupt");
    ok(s.reports[1].slot == 5 && s.reports[1].copy_b == -EBADMSG,
       "slot 5: a record of another slot counts as corrupt");
    rec = make_record(VS_REC_IMAGE, 40, "late");
    is_int(vs_meta_area_write(area, &rec), 0, "write a new image");
    ok(rec.slot != 2, "a damaged slot is not handed out (got %u)", rec.slot);
    is_int(vs_meta_area_free(area, 2), 0, "free the damaged slot");
    is_int(vs_meta_area_read(area, 2, &out), -ENOENT, "now it is empty");
    return area;
}

/* Every write lands in both copies: at rest they hold the same block. */
static void
test_both_copies(struct vs_meta_area *area)
{
    static unsigned char a[VS_RECORD_SIZE], b[VS_RECORD_SIZE];
    struct vs_record rec = make_record(VS_REC_VOLUME, 50, "twice");
    char why[256];

    is_int(vs_meta_area_write(area, &rec), 0, "write a record");
    peek(a, sizeof(a), copy_offset(rec.slot, 0));
    peek(b, sizeof(b), copy_offset(rec.slot, 1));
    ok(memcmp(a, b, sizeof(a)) == 0, "copies A and B hold the same block");
    snprintf(rec.name, sizeof(rec.name), "twice-renamed");
    is_int(vs_meta_area_write(area, &rec), 0, "rewrite it");
    peek(a, sizeof(a), copy_offset(rec.slot, 0));
    peek(b, sizeof(b), copy_offset(rec.slot, 1));
    ok(memcmp(a, b, sizeof(a)) == 0, "both copies hold the rewrite");
    ok(vs_meta_area_check(area, why, sizeof(why)) == 1,
       "check: trusted, one slot to heal (slot 5's misdirected copy)");
}

/* A record written by the old one-copy protocol (minor 0) beside a damaged
 * copy: the damaged one may have been newer, so the record is a hint. */
static struct vs_meta_area *
test_doubtful(struct vs_meta_area *area, uint32_t slot)
{
    static unsigned char blk[VS_RECORD_SIZE], junk[VS_RECORD_SIZE];
    struct vs_record rec;
    struct seen s;
    char why[256];
    uint32_t crc;

    peek(blk, sizeof(blk), copy_offset(slot, 0));
    blk[10] = 0; /* minor version 0 */
    blk[11] = 0;
    memset(blk + 32, 0, 4);
    crc = vs_crc32c(0, blk, VS_RECORD_HEADER_SIZE + (blk[28] | blk[29] << 8));
    for (int i = 0; i < 4; i++)
        blk[32 + i] = (unsigned char)(crc >> (8 * i));
    memset(junk, 0x5a, sizeof(junk));
    vs_meta_area_close(area);
    poke(blk, sizeof(blk), copy_offset(slot, 0));
    poke(junk, sizeof(junk), copy_offset(slot, 1));
    area = open_again();
    if (area == NULL)
        return NULL;
    is_int(vs_meta_area_read(area, slot, &rec), 0, "old-protocol copy reads");
    is_int(rec.minor, 0, "it says minor version 0");
    is_int(load(area, &s), 0, "load");
    ok(s.damaged >= 1 && s.reports[s.damaged - 1].slot == slot &&
           s.reports[s.damaged - 1].doubtful,
       "the slot is reported doubtful");
    is_int(vs_meta_area_heal(area) >= 0, 1, "heal runs");
    peek(blk, sizeof(blk), copy_offset(slot, 1));
    ok(blk[0] == 0x5a, "heal leaves a doubtful slot alone");
    ok(vs_meta_area_check(area, why, sizeof(why)) == -EUCLEAN,
       "check says the area is in doubt");
    return area;
}

/* One copy damaged (new protocol): the other is the newest; heal mends. */
static struct vs_meta_area *
test_heal(struct vs_meta_area *area, uint32_t slot)
{
    static unsigned char a[VS_RECORD_SIZE], b[VS_RECORD_SIZE];
    struct seen s;

    memset(a, 0x33, 100);
    vs_meta_area_close(area);
    poke(a, 100, copy_offset(slot, 1) + 70);
    area = open_again();
    if (area == NULL)
        return NULL;
    is_int(load(area, &s), 0, "load with copy B damaged");
    ok(s.damaged >= 1 && !s.reports[s.damaged - 1].doubtful,
       "reported, and not doubtful: copy A holds the same record");
    ok(vs_meta_area_heal(area) >= 1, "heal rewrites the slot");
    peek(a, sizeof(a), copy_offset(slot, 0));
    peek(b, sizeof(b), copy_offset(slot, 1));
    ok(memcmp(a, b, sizeof(a)) == 0, "both copies agree again");
    return area;
}

/* The object truncated: the domain record says how many slots it had. */
static struct vs_meta_area *
test_truncated(struct vs_meta_area *area)
{
    struct vs_record dom = make_record(VS_REC_DOMAIN, 60, "dom"), out;
    struct vs_bdev *bs;
    char why[256] = "";

    is_int(vs_meta_area_write(area, &dom), 0, "write the domain record");
    is_int(vs_meta_area_read(area, 0, &out), 0, "read it back");
    ok(out.area_slots >= 8, "it records the area's size (%u slots)",
       out.area_slots);
    vs_meta_area_close(area);
    if (vs_object_open(store, VS_META_OBJECT, 0, "cut", &bs) == 0) {
        vs_bdev_truncate(bs, 4096);
        vs_bdev_close(bs);
    }
    area = open_again();
    if (area == NULL)
        return NULL;
    is_int(vs_meta_area_check(area, why, sizeof(why)), -EUCLEAN,
           "a truncated area is in doubt");
    ok(strstr(why, "missing") != NULL, "and says records are missing: %s", why);
    return area;
}

static struct vs_meta_area *
test_reopen(struct vs_meta_area *area)
{
    struct seen before, after;

    load(area, &before);
    vs_meta_area_close(area);
    area = open_again();
    if (area == NULL)
        return NULL;
    load(area, &after);
    ok(before.records == after.records &&
           memcmp(before.names, after.names, sizeof(before.names)) == 0 &&
           memcmp(before.gens, after.gens, sizeof(before.gens)) == 0,
       "reopen finds the same records (%d)", after.records);
    return area;
}

int
main(void)
{
    struct vs_meta_area *area = NULL;

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(location, sizeof(location), "dir:%s/store", dir);
    if (!ok(vs_store_open(location, true, &store) == 0, "create a store"))
        goto out;
    is_int(vs_meta_area_open(store, false, &area), -ENOENT,
           "no area without create");
    if (!ok(vs_meta_area_open(store, true, &area) == 0, "create the area"))
        goto out;
    test_basics(area);
    test_free(area);
    test_refusals(area);
    test_load_and_grow(area);
    area = test_torn_write(area);
    if (area != NULL)
        area = test_both_bad(area);
    if (area != NULL)
        area = test_reopen(area);
    if (area != NULL)
        test_both_copies(area);
    if (area != NULL)
        area = test_heal(area, 3);
    if (area != NULL)
        area = test_doubtful(area, 4);
    if (area != NULL)
        area = test_truncated(area);
    vs_meta_area_close(area);
out:
    vs_store_close(store);
    remove_tree(dir);
    return tap_done();
}
