#!/usr/bin/env bash
# Run the whole vstorfs test suite the way CI does, as root on Debian 12:
# install and build (tools/setup.sh), build again with clang (-Werror) and
# check formatting, then run every suite but 'bench' on the gcc build and
# on an AddressSanitizer/UBSan build.  Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
tools/setup.sh || exit 1

echo "== clang build (-Werror)"
[ -d build-clang ] || CC=clang meson setup build-clang -Dwerror=true >/dev/null
ninja -C build-clang >/dev/null || { echo "clang build failed"; status=1; }

echo "== sanitizer build (address,undefined)"
[ -d build-asan ] || meson setup build-asan -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-asan >/dev/null || { echo "sanitizer build failed"; status=1; }

echo "== clang-format check"
if ! git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror 2>/dev/null; then
    echo "clang-format: files differ from .clang-format (run clang-format -i)"
    status=1
fi

for b in build build-asan; do
    echo "== meson test -C $b (all suites but bench)"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        meson test -C "$b" --no-suite bench --print-errorlogs || status=1
done

python3 - build build-asan <<'PY'
import json, sys
passed = failed = skipped = 0
for b in sys.argv[1:]:
    try:
        lines = open(f"{b}/meson-logs/testlog.json").read().splitlines()
    except OSError:
        failed += 1
        continue
    for line in lines:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
[ $? -eq 0 ] || status=1
exit $status
