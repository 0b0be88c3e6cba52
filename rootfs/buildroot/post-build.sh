#!/bin/sh
# Buildroot post-build script for the gopxe appliance (BR2_ROOTFS_POST_BUILD_SCRIPT).
# Buildroot calls it with the target directory as $1, then the words of
# BR2_ROOTFS_POST_SCRIPT_ARGS:
#
#   BR2_ROOTFS_POST_SCRIPT_ARGS="/path/to/gopxe [/path/to/images]"
#
# - the static gopxe binary for the board (scripts/build-release.sh:
#   target/aarch64-unknown-linux-musl/release/gopxe for a Pi 4,
#   target/x86_64-unknown-linux-musl/release/gopxe for a PC) -> /usr/bin/gopxe
# - optionally a folder of boot loaders for the clients (e.g. one filled by
#   scripts/fetch-images.sh) -> /usr/share/gopxe/images, which S50gopxe copies
#   into the images tree on the data partition at start.
set -eu
TARGET_DIR=$1
BIN=${2:-${GOPXE_BIN:-}}
IMAGES=${3:-${GOPXE_IMAGES:-}}
[ -n "$BIN" ] || { echo "post-build.sh: give the gopxe binary in BR2_ROOTFS_POST_SCRIPT_ARGS" >&2; exit 1; }
[ -x "$BIN" ] || { echo "post-build.sh: $BIN is not an executable" >&2; exit 1; }
install -D -m 0755 "$BIN" "$TARGET_DIR/usr/bin/gopxe"
if [ -n "$IMAGES" ]; then
    mkdir -p "$TARGET_DIR/usr/share/gopxe/images"
    cp -rL "$IMAGES/." "$TARGET_DIR/usr/share/gopxe/images/"
fi
mkdir -p "$TARGET_DIR/var/lib/gopxe"
