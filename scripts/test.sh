#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and whole-process tests, and
# (as root) the end-to-end boots of real firmware in a network namespace.
# As root it installs what the tests need (Debian packages, rust components).
set -euo pipefail
cd "$(dirname "$0")/.."

STEP="installing what the tests need"
log() { STEP=$*; printf '\n=== %s ===\n' "$*"; }
# The last line says which step failed: CI may show only the end of the output.
trap 'rc=$?; [ $rc -eq 0 ] || printf "\n=== FAILED (exit %s) in: %s ===\n" "$rc" "$STEP" >&2' EXIT

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
    # The static release targets of the size gate (benches/size.sh).
    command -v rustup >/dev/null || return 0
    local targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl) t
    for t in "${targets[@]}"; do
        rustup target list --installed 2>/dev/null | grep -qx "$t" && continue
        if [ "$(id -u)" -eq 0 ]; then
            log "adding Rust target $t"
            rustup target add "$t"
        else
            echo "WARNING: Rust target $t missing (run as root to add it)" >&2
        fi
    done
}

# What the suite must leave as it found it: its temp dirs, processes,
# network namespaces and mounts are compared at the end with these.
leftovers() {
    {
        find "${TMPDIR:-/tmp}" /tmp /dev/shm -maxdepth 1 -name '*gopxe*' 2>/dev/null |
            sed 's/^/temp dir /'
        ip netns list 2>/dev/null | awk '{print "network namespace " $1}'
        ps -eo pid=,comm= |
            awk '$2 ~ /^(gopxe|gopxe-storm|qemu-system-.*|dnsmasq|nginx|kea-dhcp4|perfdhcp|radvd|chromium|atftpd|in\.tftpd)$/ {print "process " $1 " " $2}'
        awk '{print "mount " $2}' /proc/self/mounts
    } | sort -u
}
BEFORE=$(leftovers)

install_deps
source scripts/target-dir.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# gopxe-proto is the sans-I/O layer: no crate in its normal dependency tree
# may do I/O (sockets, files, clocks, random numbers, executors). One known
# exception is pruned: dhcproto (and hickory-proto under it) take rand, and
# so getrandom, for Message::new and Message::default's random xid, which
# gopxe-proto never calls (it decodes requests and builds replies from
# them). rand itself must not be a direct dependency.
log "gopxe-proto takes no I/O crate (cargo tree -p gopxe-proto -e normal)"
IO_CRATES='smol|async-io|async-executor|async-lock|async-signal|async-net|async-fs|async-process|blocking|futures-lite|polling|rustix|socket2|if-addrs|getrandom|jiff|picoserve'
tree=$(cargo tree -p gopxe-proto -e normal)
prune=()
if grep -qE "[ ─]rand v" <<<"$tree"; then prune=(--prune rand); fi
tree=$(cargo tree -p gopxe-proto -e normal "${prune[@]}")
direct=$(cargo tree -p gopxe-proto -e normal --depth 1)
if offending=$(grep -E "[ ─]($IO_CRATES) v" <<<"$tree") ||
    offending=$(grep -E "[ ─]rand v" <<<"$direct"); then
    printf 'gopxe-proto depends on an I/O crate:\n%s\n' "$offending" >&2
    exit 1
fi
echo "gopxe-proto: no I/O crate in its dependency tree"

log "cargo test"
cargo test --workspace --all-targets 2>&1

# The static release binaries (x86_64 mini-PC, aarch64 Raspberry Pi) must
# fit the appliance's 2 MiB budget: an OVER fails the suite.
log "release size budget (benches/size.sh)"
benches/size.sh

# The attacks of tests/security.rs (and the file rules of tests/files.rs)
# again, against the release binary users run.
log "security attacks against the release binary"
cargo build --release --bin gopxe
GOPXE_TEST_BIN="$(gopxe_bin release)" \
    cargo test --test security --test files 2>&1

# A step that may be skipped: exit code 77 means "could not run here" (no
# root, no chromium, no podman) and is reported loudly, not counted as a pass.
skippable() { # script title skip-warning [env...]
    local script=$1 title=$2 warning=$3 rc=0
    shift 3
    [ -x "$script" ] || return 0
    log "$title"
    env "$@" "$script" || rc=$?
    case $rc in
    0) ;;
    77) echo "WARNING: $warning" >&2 ;;
    *) exit "$rc" ;;
    esac
}

GOPXE_DEBUG_BIN="${GOPXE_BIN:-$(gopxe_bin debug)}"

skippable tests/browser/run.sh "status page in headless chromium (DOM, screenshot, form actions)" \
    "the browser test of the status page was SKIPPED (no chromium; run as root to install it)" \
    GOPXE_BIN="$GOPXE_DEBUG_BIN"

if [ -x tests/appliance/run.sh ]; then
    log "appliance (service scripts, aarch64 under qemu-user, the image booted in QEMU)"
    tests/appliance/run.sh
fi

skippable tests/storm/run.sh "boot storm under faults (loss and jitter, SIGKILL, floods, slow clients)" \
    "the storm fault scenarios needing root were SKIPPED"

skippable tests/container/run.sh "container image (podman, --net=host, /health and TFTP through it)" \
    "the container image test was SKIPPED (it needs root and a working podman)"

skippable tests/e2e/run.sh "end-to-end (real firmware in a network namespace)" \
    "the end-to-end boots were SKIPPED (they need root); run as root to boot real firmware" \
    GOPXE_BIN="$GOPXE_DEBUG_BIN"

log "nothing left behind (temp dirs, processes, network namespaces, mounts)"
left=$(comm -13 <(printf '%s\n' "$BEFORE") <(leftovers))
if [ -n "$left" ]; then
    printf 'left behind by the suite:\n%s\n' "$left" >&2
    exit 1
fi
echo "nothing left behind"
