/*
 * Power-loss tests of a domain's metadata area (meta/meta_area.c, run
 * unchanged) on the crash simulator: the area lives in a "crashsim:" store
 * whose "metadata" object is a simulated disk that records every write and
 * flush.  A sequence of record writes, rewrites and frees runs (each ends
 * in the area's own flush, and one grows the object); afterwards, for
 * every flush boundary, every enumerated state a power loss could leave is
 * written as the "metadata" object of a dir store under /var/tmp and
 * loaded with vs_meta_area_load:
 *
 *   - every record whose write completed (its flush returned) is there,
 *     with its latest completed contents or with those of the write in
 *     flight; a freed slot shows nothing unless the free was in flight;
 *     nothing shows that was never written to that slot;
 *   - a record handed out is exactly one that was written, field by field,
 *     never a damaged copy;
 *   - on_damage names exactly the slots holding a copy that is neither
 *     empty nor a whole block as written (a torn write), unless that copy
 *     still decodes to the record it was meant to be;
 *   - the area is usable after the crash: a new record goes to a slot that
 *     held nothing live and nothing damaged, and a second load shows the
 *     same records plus that one.
 *
 * Whole blocks "as written" come from the simulator's log, so the damage
 * oracle does not depend on the record decoder.
 *
 * Every record fits in the first 512-byte sector of its block (the largest
 * encodes to about 450 bytes), so a write torn at a sector boundary lands
 * whole or not at all; the states that damage a copy are the garbled ones
 * (crashsim_opts.garble: the sector being written holds garbage), which
 * is what the two copies and the CRC are for.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vs/meta_area.h"
#include "crashsim.h"
#include "tap.h"
#include "testutil.h"

#define SLOT_BYTES ((uint64_t)2 * VS_RECORD_SIZE)
#define MAX_OPS 40
#define MAX_SLOTS 32
#define MAX_DIAG 6

static char base_dir[] = "/var/tmp/vstorfs-crashsim-meta.XXXXXX";
static char store_dir[128];
static struct vs_store *dirst;     /* where states are judged */
static struct crashsim_disk *disk; /* the area's simulated object */
static int failures;

static bool check(bool cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool
check(bool cond, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!cond)
        failures++;
    return tap_ok(cond, "%s", msg);
}

/* ---- the sequence ---- */

struct mop {
    char what[48];
    size_t f_start, f_end; /* disk flushes before and after */
    uint32_t slot;
    bool is_free;
    struct vs_record rec; /* as written: slot and generation set */
};

static struct mop ops[MAX_OPS];
static size_t nops;

static struct vs_record
make_record(enum vs_record_kind kind, int n, const char *name)
{
    struct vs_record rec;

    memset(&rec, 0, sizeof(rec));
    rec.kind = kind;
    snprintf(rec.uuid, sizeof(rec.uuid), "00000000-0000-4000-8000-%012d", n);
    if (kind != VS_REC_DOMAIN)
        snprintf(rec.parent_uuid, sizeof(rec.parent_uuid),
                 "00000000-0000-4000-8000-%012d", kind == VS_REC_IMAGE ? 1 : 2);
    snprintf(rec.name, sizeof(rec.name), "%s", name);
    rec.created = 1795319360 + n;
    if (kind == VS_REC_VOLUME) {
        snprintf(rec.format, sizeof(rec.format), n % 2 ? "qcow2" : "raw");
        snprintf(rec.object, sizeof(rec.object), "%s", rec.uuid);
        if (n % 3 == 0)
            snprintf(rec.backing_uuid, sizeof(rec.backing_uuid),
                     "00000000-0000-4000-8000-%012d", n - 1);
        rec.flags = n % 4 == 0 ? VS_RECF_READONLY : 0;
    }
    return rec;
}

static bool
rec_equal(const struct vs_record *a, const struct vs_record *b)
{
    return a->slot == b->slot && a->generation == b->generation &&
           a->kind == b->kind && strcmp(a->uuid, b->uuid) == 0 &&
           strcmp(a->parent_uuid, b->parent_uuid) == 0 &&
           strcmp(a->name, b->name) == 0 && a->created == b->created &&
           strcmp(a->format, b->format) == 0 &&
           strcmp(a->object, b->object) == 0 &&
           strcmp(a->backing_uuid, b->backing_uuid) == 0 &&
           a->flags == b->flags && a->area_slots == b->area_slots;
}

static struct vs_record domain_now; /* slot 0 as last written */

/* A write that grows the area also rewrites the domain record in slot 0
 * (its "slots" key): record that version as written by the same step. */
static void
note_domain_rewrite(struct vs_meta_area *area, const struct mop *o)
{
    struct vs_record rec;

    if (vs_meta_area_read(area, 0, &rec) < 0 || nops == MAX_OPS ||
        rec.generation == domain_now.generation)
        return;
    domain_now = rec;
    ops[nops] = *o;
    snprintf(ops[nops].what, sizeof(ops[nops].what), "domain size");
    ops[nops].slot = 0;
    ops[nops].is_free = false;
    ops[nops].rec = rec;
    nops++;
}

static bool
op_write(struct vs_meta_area *area, struct vs_record *rec, const char *what)
{
    struct mop *o = &ops[nops];
    int r;

    o->f_start = crashsim_flushes(disk);
    r = vs_meta_area_write(area, rec);
    o->f_end = crashsim_flushes(disk);
    if (r < 0 || nops == MAX_OPS || rec->slot >= MAX_SLOTS) {
        tap_diag("%s: %s", what, r < 0 ? strerror(-r) : "out of room");
        return false;
    }
    snprintf(o->what, sizeof(o->what), "%s", what);
    o->slot = rec->slot;
    o->rec = *rec;
    nops++;
    if (rec->slot == 0)
        domain_now = *rec;
    else
        note_domain_rewrite(area, &ops[nops - 1]);
    return true;
}

static bool
op_free(struct vs_meta_area *area, uint32_t slot)
{
    struct mop *o = &ops[nops];
    int r;

    o->f_start = crashsim_flushes(disk);
    r = vs_meta_area_free(area, slot);
    o->f_end = crashsim_flushes(disk);
    if (r < 0 || nops == MAX_OPS) {
        tap_diag("free %u: %s", slot, r < 0 ? strerror(-r) : "out of room");
        return false;
    }
    snprintf(o->what, sizeof(o->what), "free slot %u", slot);
    o->slot = slot;
    o->is_free = true;
    nops++;
    return true;
}

/* Write, rewrite and free records; every step ends in the area's flush. */
static bool
run_sequence(struct vs_meta_area *area)
{
    struct vs_record dom = make_record(VS_REC_DOMAIN, 1, "prod");
    struct vs_record img = make_record(VS_REC_IMAGE, 2, "web");
    struct vs_record vol[12];
    char name[VS_NAME_MAX + 1];
    bool good = op_write(area, &dom, "domain") && op_write(area, &img, "image");

    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "vol%d", i);
        vol[i] = make_record(VS_REC_VOLUME, 10 + i, name);
    }
    /* slots 2..8: the seventh volume grows the object past 8 slots */
    for (int i = 0; good && i < 7; i++)
        good = op_write(area, &vol[i], "new volume");
    snprintf(vol[0].name, sizeof(vol[0].name), "vol0-renamed");
    good = good && op_write(area, &vol[0], "rewrite slot 2") &&
           op_write(area, &vol[0], "rewrite slot 2 again") &&
           op_free(area, vol[1].slot) &&
           op_write(area, &vol[7], "volume into the freed slot");
    snprintf(dom.name, sizeof(dom.name), "production");
    good = good && op_write(area, &dom, "rewrite the domain") &&
           op_free(area, vol[3].slot) && op_free(area, vol[4].slot);
    memset(name, 'x', VS_NAME_MAX);
    name[VS_NAME_MAX] = '\0';
    snprintf(vol[2].name, sizeof(vol[2].name), "%s", name);
    good = good && op_write(area, &vol[2], "long payload");
    snprintf(vol[2].name, sizeof(vol[2].name), "s");
    good = good && op_write(area, &vol[2], "short over long") &&
           op_write(area, &vol[2], "short again") &&
           op_free(area, vol[2].slot) &&
           op_write(area, &vol[8], "volume into a freed slot") &&
           op_write(area, &vol[9], "volume into a freed slot") &&
           op_free(area, img.slot) && op_free(area, 20) &&
           op_write(area, &vol[10], "volume into the image's slot");
    return good;
}

/* ---- what a crash may show ---- */

struct expect {
    const struct vs_record *req[MAX_SLOTS]; /* live at the last flush */
    const struct mop *in_flight[MAX_OPS];   /* begun, not completed */
    size_t nin_flight;
};

static void
expect_for(size_t k, struct expect *e)
{
    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].f_end <= k)
            e->req[ops[i].slot] = ops[i].is_free ? NULL : &ops[i].rec;
        else if (ops[i].f_start <= k)
            e->in_flight[e->nin_flight++] = &ops[i];
    }
}

/* Whether REC may show in its slot: the completed version or one in
 * flight. */
static bool
allowed(const struct expect *e, const struct vs_record *rec)
{
    if (e->req[rec->slot] != NULL && rec_equal(e->req[rec->slot], rec))
        return true;
    for (size_t i = 0; i < e->nin_flight; i++) {
        if (!e->in_flight[i]->is_free && rec_equal(&e->in_flight[i]->rec, rec))
            return true;
    }
    return false;
}

/* Whether the slot may show nothing: nothing completed, or a free of it
 * in flight. */
static bool
may_be_absent(const struct expect *e, uint32_t slot)
{
    if (e->req[slot] == NULL)
        return true;
    for (size_t i = 0; i < e->nin_flight; i++) {
        if (e->in_flight[i]->is_free && e->in_flight[i]->slot == slot)
            return true;
    }
    return false;
}

/* ---- what loading showed ---- */

struct loaded {
    struct vs_record got[MAX_SLOTS];
    bool have[MAX_SLOTS];
    bool damaged[MAX_SLOTS];
    unsigned stray; /* records out of range or twice */
};

static int
on_record(const struct vs_record *rec, void *arg)
{
    struct loaded *l = arg;

    if (rec->slot >= MAX_SLOTS || l->have[rec->slot]) {
        l->stray++;
        return 0;
    }
    l->got[rec->slot] = *rec;
    l->have[rec->slot] = true;
    return 0;
}

static void
on_damage(const struct vs_meta_slot_report *r, void *arg)
{
    struct loaded *l = arg;

    if (r->slot < MAX_SLOTS)
        l->damaged[r->slot] = true;
    else
        l->stray++;
}

/* ---- the damage oracle ---- */

/* Whether BLOCK (one copy of SLOT, copy C) is empty or a whole block as
 * some write put it there. */
static bool
intact(const uint8_t *block, uint32_t slot, int c)
{
    uint64_t off = slot * SLOT_BYTES + (uint64_t)c * VS_RECORD_SIZE;
    size_t i;

    for (i = 0; i < VS_RECORD_SIZE && block[i] == 0; i++)
        ;
    if (i == VS_RECORD_SIZE)
        return true;
    for (size_t e = 0; e < crashsim_events(disk); e++) {
        const struct crashsim_event *ev = crashsim_event(disk, e);

        if (ev->kind == CRASHSIM_WRITE && ev->off == off &&
            ev->len == VS_RECORD_SIZE &&
            memcmp(ev->data, block, VS_RECORD_SIZE) == 0)
            return true;
    }
    return false;
}

/* Whether BLOCK decodes to a version of SLOT that was written. */
static bool
decodes_as_written(const uint8_t *block, uint32_t slot)
{
    struct vs_record rec;

    if (vs_record_decode(block, VS_RECORD_SIZE, &rec) < 0 || rec.slot != slot)
        return false;
    for (size_t i = 0; i < nops; i++) {
        if (!ops[i].is_free && rec_equal(&ops[i].rec, &rec))
            return true;
        if (ops[i].is_free && ops[i].slot == slot && rec.kind == VS_REC_FREE)
            return true;
    }
    return false;
}

struct oracle {
    bool damaged[MAX_SLOTS]; /* load must report these */
    bool valid[MAX_SLOTS];   /* some copy decodes */
};

static void
oracle_for(const struct crashsim_state *cs, struct oracle *o)
{
    static uint8_t block[VS_RECORD_SIZE];
    struct vs_record rec;

    memset(o, 0, sizeof(*o));
    for (uint32_t slot = 0; slot < MAX_SLOTS; slot++) {
        for (int c = 0; c < 2; c++) {
            uint64_t off = slot * SLOT_BYTES + (uint64_t)c * VS_RECORD_SIZE;
            uint64_t n = off < cs->size ? cs->size - off : 0;

            memset(block, 0, sizeof(block));
            memcpy(block, cs->data + off,
                   n < sizeof(block) ? n : sizeof(block));
            if (!intact(block, slot, c) && !decodes_as_written(block, slot))
                o->damaged[slot] = true;
            if (vs_record_decode(block, VS_RECORD_SIZE, &rec) == 0)
                o->valid[slot] = true;
        }
    }
}

/* ---- judging one state ---- */

struct tally {
    unsigned enumerated, checked, with_damage, open_fail, load_fail;
    unsigned missing, wrong, resurrected, damage_miss, damage_false, stray;
    unsigned reuse_fail;
    unsigned diags;
};

static struct tally t;

static void diag_state(const struct crashsim_state *cs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
diag_state(const struct crashsim_state *cs, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (t.diags++ >= MAX_DIAG)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tap_diag("epoch %zu state %u (%s): %s", cs->epoch, cs->index, cs->what,
             msg);
}

static int
write_state(const struct crashsim_state *cs)
{
    char path[256];
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/%s", store_dir, VS_META_OBJECT);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    n = cs->size > 0 ? write(fd, cs->data, cs->size) : 0;
    close(fd);
    return n == (ssize_t)cs->size ? 0 : -EIO;
}

/* Compare what loading showed with what the crash may show. */
static void
compare(const struct crashsim_state *cs, const struct expect *e,
        const struct loaded *l, const struct oracle *o)
{
    for (uint32_t s = 0; s < MAX_SLOTS; s++) {
        if (l->have[s] && !allowed(e, &l->got[s])) {
            t.wrong += e->req[s] != NULL || e->nin_flight > 0;
            t.resurrected += e->req[s] == NULL && e->nin_flight == 0;
            diag_state(cs, "slot %u shows '%s' generation %" PRIu64, s,
                       l->got[s].name, l->got[s].generation);
        }
        if (!l->have[s] && !may_be_absent(e, s)) {
            t.missing++;
            diag_state(cs, "slot %u ('%s') is missing", s, e->req[s]->name);
        }
        if (l->damaged[s] != o->damaged[s]) {
            t.damage_miss += o->damaged[s];
            t.damage_false += l->damaged[s];
            diag_state(cs, "slot %u: damage %s", s,
                       o->damaged[s] ? "not reported" : "reported wrongly");
        }
    }
    t.stray += l->stray;
}

/* After the crash: a new record goes to a slot with nothing live and
 * nothing only damaged, and everything else stays as loaded. */
static void
check_reuse(const struct crashsim_state *cs, struct vs_meta_area *area,
            const struct loaded *before, const struct oracle *o)
{
    struct vs_record rec = make_record(VS_REC_VOLUME, 999, "after-crash");
    struct loaded after;
    bool good;
    int r = vs_meta_area_write(area, &rec);

    good = r == 0 && rec.slot < MAX_SLOTS && !before->have[rec.slot] &&
           (o->valid[rec.slot] || !o->damaged[rec.slot]);
    memset(&after, 0, sizeof(after));
    if (good)
        good = vs_meta_area_load(area, on_record, NULL, &after) == 0 &&
               after.have[rec.slot] && rec_equal(&after.got[rec.slot], &rec);
    for (uint32_t s = 0; good && s < MAX_SLOTS; s++) {
        struct vs_record was = before->got[s];

        if (s == 0 && after.have[0] && before->have[0]) {
            /* a write that grows the area records its size in slot 0 */
            was.generation = after.got[0].generation;
            was.area_slots = after.got[0].area_slots;
        }
        if (s != rec.slot)
            good = after.have[s] == before->have[s] &&
                   (!after.have[s] || rec_equal(&after.got[s], &was));
    }
    if (!good) {
        t.reuse_fail++;
        diag_state(cs, "writing after the crash: %s, slot %u",
                   r < 0 ? strerror(-r) : "records changed", rec.slot);
    }
}

static int
judge(const struct crashsim_state *cs, void *arg)
{
    static uint64_t seen[4096];
    static size_t nseen;
    uint64_t key = crashsim_hash(cs->data, cs->size, cs->epoch);
    struct vs_meta_area *area = NULL;
    struct expect e;
    struct loaded l;
    struct oracle o;
    int r;

    (void)arg;
    t.enumerated++;
    for (size_t i = 0; i < nseen; i++) {
        if (seen[i] == key)
            return 0;
    }
    if (nseen < sizeof(seen) / sizeof(seen[0]))
        seen[nseen++] = key;
    t.checked++;
    expect_for(cs->epoch, &e);
    oracle_for(cs, &o);
    r = write_state(cs);
    if (r == 0)
        r = vs_meta_area_open(dirst, false, &area);
    if (r < 0) {
        t.open_fail++;
        diag_state(cs, "open: %s", strerror(-r));
        return 0;
    }
    memset(&l, 0, sizeof(l));
    r = vs_meta_area_load(area, on_record, on_damage, &l);
    if (r < 0) {
        t.load_fail++;
        diag_state(cs, "load: %s", strerror(-r));
    } else {
        compare(cs, &e, &l, &o);
        for (uint32_t s = 0; s < MAX_SLOTS; s++)
            t.with_damage += l.damaged[s];
        check_reuse(cs, area, &l, &o);
    }
    vs_meta_area_close(area);
    return 0;
}

static void
judge_all(void)
{
    struct crashsim_opts opts = {.max_states = 200,
                                 .random_states = 24,
                                 .seed = 0x6d657461,
                                 .garble = true};
    size_t nflush = crashsim_flushes(disk);
    int r = 0;

    for (size_t k = 0; r == 0 && k <= nflush; k++)
        r = crashsim_states(disk, k, &opts, judge, NULL);
    check(r == 0, "states enumerated (%s)", r == 0 ? "ok" : strerror(-r));
    tap_diag("metadata area: %zu operations, epochs 0-%zu, %u states "
             "enumerated, %u distinct checked, %u damaged slots reported",
             nops, nflush, t.enumerated, t.checked, t.with_damage);
    check(t.open_fail == 0 && t.load_fail == 0,
          "every state opens and loads (%u, %u failed)", t.open_fail,
          t.load_fail);
    check(t.missing == 0,
          "every record whose write completed is there "
          "(%u missing)",
          t.missing);
    check(t.wrong == 0 && t.resurrected == 0 && t.stray == 0,
          "only written versions show, never a damaged copy (%u wrong, %u "
          "resurrected, %u stray)",
          t.wrong, t.resurrected, t.stray);
    check(t.damage_miss == 0 && t.damage_false == 0,
          "on_damage names exactly the torn slots (%u missed, %u wrongly)",
          t.damage_miss, t.damage_false);
    check(t.reuse_fail == 0,
          "after the crash a new record lands in a free slot and nothing "
          "else changes (%u failed)",
          t.reuse_fail);
}

int
main(void)
{
    struct vs_store *cst = NULL;
    struct vs_meta_area *area = NULL;
    char loc[160];
    int r;

    if (mkdtemp(base_dir) == NULL) {
        perror(base_dir);
        return 1;
    }
    snprintf(store_dir, sizeof(store_dir), "%s/store", base_dir);
    snprintf(loc, sizeof(loc), "dir:%s", store_dir);
    r = crashsim_register();
    if (r == 0)
        r = vs_store_open(loc, true, &dirst);
    if (r == 0)
        r = vs_store_open(CRASHSIM_SCHEME "meta", true, &cst);
    if (r == 0)
        r = vs_meta_area_open(cst, true, &area);
    disk = crashsim_store_disk(cst, VS_META_OBJECT);
    check(r == 0 && disk != NULL, "metadata area on a crashsim store (%s)",
          r < 0 ? strerror(-r) : "ok");
    if (r == 0 && disk != NULL) {
        bool good = run_sequence(area);

        check(good,
              "%zu record writes, rewrites and frees (%zu flushes, %zu "
              "disk events)",
              nops, crashsim_flushes(disk), crashsim_events(disk));
        vs_meta_area_close(area);
        area = NULL;
        if (good)
            judge_all();
    }
    vs_meta_area_close(area);
    vs_store_close(cst);
    crashsim_store_drop_all();
    vs_store_close(dirst);
    tu_rm_tree(base_dir);
    tap_done();
    return failures == 0 ? 0 : 1;
}
