#!/usr/bin/env bash
# size.sh — stripped size of the static release binaries against the
# appliance budget (2 MiB each). Builds the ones that are missing with
# scripts/build-release.sh. Prints PASS or OVER per binary; always exits 0
# (a benchmark, not a gate), but an OVER is printed loudly.
#
#   benches/size.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=$((2 * 1024 * 1024))
TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BUILD=1
[ "${1:-}" = --no-build ] && BUILD=0

missing=()
for t in "${TARGETS[@]}"; do
    [ -x "$TARGET_DIR/$t/release/gopxe" ] || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ] && [ $BUILD -eq 1 ]; then
    scripts/build-release.sh "${missing[@]}" >&2
fi

# llvm-objcopy from the Rust toolchain strips either architecture.
OBJCOPY=
if sysroot=$(rustc --print sysroot 2>/dev/null); then
    for c in "$sysroot"/lib/rustlib/*/bin/rust-objcopy; do
        [ -x "$c" ] && OBJCOPY=$c && break
    done
fi
tmp=$(mktemp -d /tmp/gopxe-size.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

over=0
printf '%-28s %12s %10s  %s\n' "binary (stripped)" "bytes" "" "budget $(mib $BUDGET)"
for t in "${TARGETS[@]}"; do
    bin=$TARGET_DIR/$t/release/gopxe
    if [ ! -x "$bin" ]; then
        printf '%-28s %12s %10s  %s\n' "$t" "-" "" "MISSING (scripts/build-release.sh $t)"
        continue
    fi
    size=$(stat -c %s "$bin")
    if [ -n "$OBJCOPY" ] && "$OBJCOPY" --strip-all "$bin" "$tmp/gopxe-$t" 2>/dev/null; then
        size=$(stat -c %s "$tmp/gopxe-$t")
    fi
    if [ "$size" -le "$BUDGET" ]; then
        verdict=PASS
    else
        verdict="OVER by $((size - BUDGET)) bytes"
        over=1
    fi
    printf '%-28s %12s %10s  %s\n' "$t" "$size" "($(mib "$size"))" "$verdict"
done
if [ $over -eq 1 ]; then
    echo
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! SIZE BUDGET EXCEEDED: a release binary is over $(mib $BUDGET) stripped !!!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi
exit 0
