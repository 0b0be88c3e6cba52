#!/usr/bin/env bash
# size.sh — stripped size of the static release binaries against the
# appliance budget (2 MiB each). A gate: scripts/test.sh runs it, and it
# exits 1 when a binary is over the budget or could not be built or found.
#
#   benches/size.sh              build (scripts/build-release.sh; a no-op when
#                                up to date), measure, fail on OVER
#   benches/size.sh --no-build   measure the binaries as they are
#   benches/size.sh --report     print only, exit 0 even when OVER
#   SIZE_BUDGET=2000000 benches/size.sh   another budget in bytes
#
# Binaries are looked up where cargo puts them: CARGO_TARGET_DIR (relative
# to the directory it is run from) or the workspace's target/.
set -euo pipefail
[ -n "${CARGO_TARGET_DIR:-}" ] && export CARGO_TARGET_DIR=$(realpath -m "$CARGO_TARGET_DIR")
cd "$(dirname "$0")/.."

BUDGET=${SIZE_BUDGET:-$((2 * 1024 * 1024))}
TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
BUILD=1 GATE=1
for a in "$@"; do
    case $a in
    --no-build) BUILD=0 ;;
    --report) GATE=0 ;;
    *) echo "usage: benches/size.sh [--no-build] [--report]" >&2; exit 2 ;;
    esac
done

if [ $BUILD -eq 1 ]; then
    scripts/build-release.sh "${TARGETS[@]}" >&2
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
TARGET_DIR=${TARGET_DIR:-target}

# An llvm-objcopy strips either architecture: the Rust toolchain's
# (component llvm-tools), else the system's. The release profile strips
# already, so with neither the file size is the stripped size.
tmp=$(mktemp -d /tmp/gopxe-size.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
candidates=()
if sysroot=$(rustc --print sysroot 2>/dev/null); then
    for c in "$sysroot"/lib/rustlib/*/bin/rust-objcopy; do [ -x "$c" ] && candidates+=("$c"); done
fi
for c in $(compgen -c llvm-objcopy | sort -u); do
    command -v "$c" >/dev/null && candidates+=("$(command -v "$c")")
done
stripped_size() { # binary -> bytes
    local c
    for c in "${candidates[@]}"; do
        if "$c" --strip-all "$1" "$tmp/stripped" 2>/dev/null; then
            stat -c %s "$tmp/stripped"
            return
        fi
    done
    stat -c %s "$1"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

fail=0
printf '%-28s %12s %10s  %s\n' "binary (stripped)" "bytes" "" "budget $(mib "$BUDGET") ($BUDGET bytes)"
for t in "${TARGETS[@]}"; do
    bin=$TARGET_DIR/$t/release/gopxe
    if [ ! -x "$bin" ]; then
        printf '%-28s %12s %10s  %s\n' "$t" "-" "" "MISSING ($bin; scripts/build-release.sh $t)"
        fail=1
        continue
    fi
    size=$(stripped_size "$bin")
    if [ "$size" -le "$BUDGET" ]; then
        verdict="PASS, $((BUDGET - size)) bytes to spare"
    else
        verdict="OVER by $((size - BUDGET)) bytes"
        fail=1
    fi
    printf '%-28s %12s %10s  %s\n' "$t" "$size" "($(mib "$size"))" "$verdict"
done
if [ $fail -eq 1 ]; then
    echo
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! SIZE BUDGET: a release binary is over $(mib "$BUDGET") stripped or missing !!!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    [ $GATE -eq 1 ] && exit 1
fi
exit 0
