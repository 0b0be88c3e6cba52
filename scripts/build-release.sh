#!/usr/bin/env bash
# build-release.sh [TRIPLE...] — static release binaries of gopxe for the
# appliance boxes: x86_64 (mini-PC) and aarch64 (Raspberry Pi 3/4/5).
#
#   scripts/build-release.sh                 both targets
#   scripts/build-release.sh aarch64-unknown-linux-musl
#
# Output: <target dir>/<triple>/release/gopxe (static, stripped by the release
# profile); the target dir is CARGO_TARGET_DIR (relative to the directory the
# script is run from) or the workspace's target/. Linking uses rust-lld and
# the musl CRT shipped with the Rust target (see .cargo/config.toml): no cross
# compiler is needed. The targets are added with rustup when missing.
set -euo pipefail
[ -n "${CARGO_TARGET_DIR:-}" ] && export CARGO_TARGET_DIR=$(realpath -m "$CARGO_TARGET_DIR")
cd "$(dirname "$0")/.."

DEFAULT_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${DEFAULT_TARGETS[@]}"); fi

log() { printf 'build-release: %s\n' "$*" >&2; }
die() { printf 'build-release: ERROR: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found"
if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed)
    for t in "${TARGETS[@]}"; do
        if ! grep -qx "$t" <<<"$installed"; then
            log "adding Rust target $t"
            rustup target add "$t" >&2
        fi
    done
else
    log "rustup not found: assuming the targets' std is installed"
fi

args=()
for t in "${TARGETS[@]}"; do args+=(--target "$t"); done
log "cargo build --release --locked ${args[*]}"
cargo build --release --locked --bin gopxe "${args[@]}"

TARGET_DIR=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
for t in "${TARGETS[@]}"; do
    bin=${TARGET_DIR:-target}/$t/release/gopxe
    [ -x "$bin" ] || die "no binary at $bin"
    # A dynamic loader in the binary means it is not static: refuse it.
    if command -v readelf >/dev/null && readelf -lW "$bin" | grep -q 'INTERP'; then
        die "$bin is dynamically linked (has a program interpreter)"
    fi
    printf '%s\t%s bytes\n' "$bin" "$(stat -c %s "$bin")"
done
