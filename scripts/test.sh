#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and whole-process tests, and
# (as root) the end-to-end boots of real firmware in a network namespace.
# As root it installs what the tests need (Debian packages, rust components).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s ===\n' "$*"; }

install_deps() {
    local pkgs=(curl atftp tftp-hpa iproute2 nftables python3)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -eq 0 ]; then
            log "installing ${missing[*]}"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
        else
            echo "WARNING: missing packages ${missing[*]} (run as root to install them)" >&2
        fi
    fi
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
}

install_deps

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --all-targets -- -D warnings

log "cargo test"
cargo test --all-targets 2>&1

if [ -x tests/browser/run.sh ]; then
    log "status page in headless chromium (DOM, screenshot, form actions)"
    rc=0
    GOPXE_BIN="${GOPXE_BIN:-$PWD/target/debug/gopxe}" tests/browser/run.sh || rc=$?
    case $rc in
    0) ;;
    77) echo "WARNING: the browser test of the status page was SKIPPED (no chromium; run as root to install it)" >&2 ;;
    *) exit "$rc" ;;
    esac
fi

if [ -x tests/appliance/run.sh ]; then
    log "appliance (service scripts, aarch64 under qemu-user, the image booted in QEMU)"
    tests/appliance/run.sh
fi

if [ -x tests/storm/run.sh ]; then
    log "boot storm under faults (loss and jitter, SIGKILL, floods, slow clients)"
    rc=0
    tests/storm/run.sh || rc=$?
    case $rc in
    0) ;;
    77) echo "WARNING: the storm fault scenarios needing root were SKIPPED" >&2 ;;
    *) exit "$rc" ;;
    esac
fi

if [ -x tests/container/run.sh ]; then
    log "container image (podman, --net=host, /health and TFTP through it)"
    rc=0
    tests/container/run.sh || rc=$?
    case $rc in
    0) ;;
    77) echo "WARNING: the container image test was SKIPPED (it needs root and a working podman)" >&2 ;;
    *) exit "$rc" ;;
    esac
fi

if [ -x tests/e2e/run.sh ]; then
    log "end-to-end (real firmware in a network namespace)"
    rc=0
    GOPXE_BIN="${GOPXE_BIN:-$PWD/target/debug/gopxe}" tests/e2e/run.sh || rc=$?
    case $rc in
    0) ;;
    77) echo "WARNING: the end-to-end boots were SKIPPED (they need root); run as root to boot real firmware" >&2 ;;
    *) exit "$rc" ;;
    esac
fi
