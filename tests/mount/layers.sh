# Helpers for the mount tests that work on the layers of a domain's
# volumes (snapshots and merges): the volumes' objects on the dir backend,
# writes into a volume and its reference file at once, the merge job, and
# the checks those tests end their steps with: `qemu-img check` on every
# qcow2 file of the domain, `qemu-img compare` of a volume's backend chain
# against its reference, no orphan object, and SQLite's integrity check of
# the catalog.
#
# Sourced after lib.sh (it uses its TAP functions, xget, vsys, $T, $DATA
# and $PY).  The test sets D, the domain's directory on the mount, and
# calls domain_backend once the domain exists.

# domain_backend: BACKEND_DIR, the directory of domain $D on the dir
# backend (bails when there is none).
domain_backend() {
    BACKEND_DIR=$(getfattr --only-values -n user.vstor.backend "$D" | sed s/^dir://)
    [ -d "$BACKEND_DIR" ] || bail "no backend directory for $D ('$BACKEND_DIR')"
}

# layer_file VOLUME: the volume's object on the backend.
layer_file() {
    echo "$BACKEND_DIR/$(xget "$1" user.vstor.object)"
}

# snap VOLUME NAME: snapshot the volume as NAME.
snap() {
    setfattr -n user.vstor.snapshot -v "$2" "$1"
}

# is_qcow2 FILE: the file starts with the qcow2 magic.
is_qcow2() {
    [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" == 514649fb ]
}

# write_both VOLUME REF OFF_4K COUNT_4K: the same random bytes into the
# volume's data (4 KiB units, so most writes cover parts of clusters) and
# into the reference file.
write_both() {
    head -c $(($4 * 4096)) /dev/urandom >"$T/chunk"
    dd if="$T/chunk" of="$1/data" bs=4096 seek="$3" conv=notrunc status=none &&
        dd if="$T/chunk" of="$2" bs=4096 seek="$3" conv=notrunc status=none
}

# dcmp FILE REF: FILE read with O_DIRECT (not from the page cache, which
# still holds what was written through the mount) equals REF.
dcmp() {
    cmp <(dd if="$1" bs=1M iflag=direct status=none) "$2"
}

# entries DIR: the names readdir gives (the daemon answers it; lookups may
# be answered from the kernel's cache), sorted, one a line.
entries() {
    find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | LC_ALL=C sort
}

# job_of VOLUME: its user.vstor.job line (tabs as spaces), or the errno.
job_of() {
    local out
    out=$(vsys getxattr "$1" user.vstor.job)
    out=${out#OK }
    printf '%s\n' "${out//$'\t'/ }"
}

# rmdir_watch LAYER CHILD: rmdir LAYER and, in the same process (a merge
# of a small delta takes milliseconds), poll CHILD's user.vstor.job for up
# to 10 s until it shows the merge running; JOB_SEEN gets the last line
# seen (ENODATA: the merge had ended, or was never seen).
rmdir_watch() {
    # shellcheck disable=SC2034 # read by the tests
    JOB_SEEN=$("$PY" -c 'import errno, os, sys, time
os.rmdir(sys.argv[1])
line = ""
for _ in range(2000):
    try:
        line = os.getxattr(sys.argv[2], "user.vstor.job").decode().strip()
    except OSError as e:
        line = errno.errorcode.get(e.errno, str(e.errno))
    if line.endswith("running") or line == "ENODATA":
        break
    time.sleep(0.005)
print(line.replace("\t", " "))' "$1" "$2")
}

# ---------------------------------------------------------------------------
# Checks on the backend

# check_layers WHAT: qemu-img check of every qcow2 file in the domain's
# directory (raw bases have nothing to check).
check_layers() {
    local f out n
    for f in "$D"/*/*/data; do
        sync "$f" 2>/dev/null # what the page cache holds reaches the layers
    done
    # one qemu-img per file, as many at once as there are CPUs (a storm
    # leaves thousands of layers)
    out=$("$PY" - "$BACKEND_DIR" <<'EOF'
import concurrent.futures, os, subprocess, sys
d = sys.argv[1]
files = []
for name in sorted(os.listdir(d)):
    path = os.path.join(d, name)
    if name == 'metadata' or not os.path.isfile(path):
        continue
    with open(path, 'rb') as f:
        if f.read(4) == b'QFI\xfb':
            files.append(path)
def check(path):
    p = subprocess.run(['qemu-img', 'check', '-f', 'qcow2', path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return path, p.returncode, p.stdout.decode(errors='replace')
print(len(files))
with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
    for path, rc, text in ex.map(check, files):
        if rc != 0:
            print('%s: %s' % (os.path.basename(path), text))
EOF
    )
    n=$(head -n 1 <<<"$out")
    out=$(tail -n +2 <<<"$out")
    if [ -z "$out" ]; then
        ok "$1: qemu-img check is clean on all $n qcow2 files of the domain"
    else
        not_ok "$1: qemu-img check is clean on all $n qcow2 files of the domain" "$out"
    fi
}

# check_orphans WHAT: every file in the domain's directory is `metadata`
# or the object of a volume of the domain.
check_orphans() {
    local objs files v
    objs=$(for v in "$D"/*/*; do
        [ -d "$v" ] && xget "$v" user.vstor.object && echo
    done | grep -v '^$' | LC_ALL=C sort)
    files=$(find "$BACKEND_DIR" -mindepth 1 -maxdepth 1 -printf '%f\n' |
        grep -vx metadata | LC_ALL=C sort)
    if [ "$objs" == "$files" ]; then
        ok "$1: no orphan files on the backend ($(wc -l <<<"$files") objects)"
    else
        not_ok "$1: no orphan files on the backend" \
            "$(diff <(echo "$objs") <(echo "$files"))"
    fi
}

# compare_backend WHAT VOLUME REF: qemu-img follows the volume's backend
# chain itself and finds it equal to REF.  The description names the
# volume by its path under COMPARE_ROOT (default: $D) and REF as
# COMPARE_REF (default: "its reference").
compare_backend() {
    local fmt out desc
    desc="$1: qemu-img compare: the backend chain of ${2#"${COMPARE_ROOT:-$D}"/}"
    desc+=" equals ${COMPARE_REF:-its reference}"
    fmt=$(xget "$2" user.vstor.format)
    if out=$(qemu-img compare -f "$fmt" -F raw "$(layer_file "$2")" "$3" 2>&1); then
        ok "$desc"
    else
        not_ok "$desc" "$out"
    fi
}

# check_backend WHAT VOLUME REF: what a merge must leave on the backend:
# check_layers, compare_backend of VOLUME against REF, check_orphans.
check_backend() {
    check_layers "$1"
    compare_backend "$1" "$2" "$3"
    check_orphans "$1"
}

# ---------------------------------------------------------------------------
# The catalog

# catalog_copy: a copy of the catalog (with its WAL) in $T/cat: sqlite3
# itself would recover the WAL on close and hide the crash state from the
# daemon's next start.
catalog_copy() {
    rm -rf "$T/cat" && mkdir "$T/cat"
    cp "$DATA"/catalog.db* "$T/cat/"
}

# catalog_ok WHAT: SQLite's integrity check on a copy of the catalog.
catalog_ok() {
    catalog_copy
    assert_eq ok "$(sqlite3 "$T/cat/catalog.db" 'PRAGMA integrity_check' 2>&1)" \
        "$1: sqlite3 PRAGMA integrity_check on the catalog: ok"
}
