#!/usr/bin/env bash
# Set up vstorfs on a fresh Debian 12 machine, as root: install the Debian
# packages it needs, build it (./build unless --build-dir), install it with
# `meson install` (vstorfs in /usr/local/sbin, where mount -t fuse.vstorfs
# finds it through fuse3's mount.fuse helper; vstor in /usr/local/bin; the
# man pages; the systemd unit), and with --mount MNT mount it the way the
# README does: mount -t fuse.vstorfs DATA_DIR MNT (DATA_DIR defaults to the
# embedded default /var/lib/vstorfs).  DESTDIR in the environment installs
# into that staging root instead (then --mount is refused).
#
#   tools/setup.sh [--mount MNT] [--data-dir DIR] [--build-dir DIR] [--no-install]
#
# --no-install skips the Debian packages only; vstorfs itself is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build, run and test dependencies (the test suite drives real clients).
PACKAGES=(
    meson ninja-build pkg-config gcc clang libclang-rt-14-dev
    libfuse3-dev fuse3 libsqlite3-dev sqlite3 libjson-c-dev zlib1g-dev scdoc
    qemu-utils qemu-system-common qemu-system-x86 fio attr jq python3
    util-linux procps xfsprogs clang-format libunistring-dev man-db
)

mount_point=
data_dir=
build_dir=build
install=1
while [ $# -gt 0 ]; do
    case "$1" in
    --mount) mount_point=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
[ -d "$build_dir" ] || meson setup "$build_dir" -Dwerror=true >/dev/null
ninja -C "$build_dir"
# DESTDIR (if set) reaches meson install through the environment.
meson install -C "$build_dir" --no-rebuild --quiet
echo "setup: installed vstorfs, vstor, their man pages and the systemd unit" \
     "${DESTDIR:+under $DESTDIR}"

if [ -n "$mount_point" ]; then
    if [ -n "${DESTDIR:-}" ]; then
        echo "setup: --mount needs a real install, not DESTDIR" >&2
        exit 2
    fi
    data_dir=${data_dir:-/var/lib/vstorfs}
    mkdir -p "$mount_point" "$data_dir"
    if findmnt -n -t fuse.vstorfs --mountpoint "$mount_point" >/dev/null; then
        echo "setup: $mount_point is already a vstorfs mount; left as it is"
        exit 0
    fi
    mount -t fuse.vstorfs "$data_dir" "$mount_point"
    echo "setup: vstorfs mounted on $mount_point (data in $data_dir);" \
         "try: mkdir $mount_point/dom1 $mount_point/dom1/img1 $mount_point/dom1/img1/vol1"
fi
