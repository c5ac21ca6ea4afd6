#!/usr/bin/env bash
# Set up vstorfs on a fresh Debian 12 machine, as root: install the Debian
# packages it needs, build it into ./build, and with --mount MNT start the
# daemon on its embedded default (DATA_DIR /var/lib/vstorfs: local-directory
# domains with the catalog beside them) mounted at MNT.
#
#   tools/setup.sh [--mount MNT] [--data-dir DIR] [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."

# Build, run and test dependencies (the test suite drives real clients).
PACKAGES=(
    meson ninja-build pkg-config gcc clang libclang-rt-14-dev
    libfuse3-dev fuse3 libsqlite3-dev sqlite3 libjson-c-dev zlib1g-dev scdoc
    qemu-utils qemu-system-common qemu-system-x86 fio attr jq python3
    util-linux procps xfsprogs clang-format libunistring-dev
)

mount_point=
data_dir=
install=1
while [ $# -gt 0 ]; do
    case "$1" in
    --mount) mount_point=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

[ "$install" = 1 ] && install_packages
[ -d build ] || meson setup build -Dwerror=true >/dev/null
ninja -C build

if [ -n "$mount_point" ]; then
    mkdir -p "$mount_point"
    ./build/fs/vstorfs ${data_dir:+"$data_dir"} "$mount_point"
    echo "setup: vstorfs mounted on $mount_point (data in ${data_dir:-/var/lib/vstorfs});" \
         "try: mkdir $mount_point/dom1 $mount_point/dom1/img1 $mount_point/dom1/img1/vol1"
fi
