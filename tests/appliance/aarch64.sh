#!/usr/bin/env bash
# aarch64.sh — the static aarch64 (Raspberry Pi) release binary runs under
# qemu-user: `--version`, then `serve` on 127.0.0.1:0 answers GET /health and
# stores a boot action through the API (atomic writes on the emulated
# target), then stops on SIGTERM. Then the library's unit tests, built for
# aarch64-unknown-linux-musl, run under qemu-aarch64 (the cargo runner in
# .cargo/config.toml); APPLIANCE_AARCH64_UNIT=0 leaves them out (a debug
# build for aarch64 the first time).
#
#   tests/appliance/aarch64.sh            (builds the binary when missing)
#   GOPXE_AARCH64_BIN=path tests/appliance/aarch64.sh
#
# Exit: 0 pass, 1 fail, 77 skip (no qemu-aarch64 and not root to install it).
set -euo pipefail
cd "$(dirname "$0")/../.."

T=aarch64-unknown-linux-musl
BIN=${GOPXE_AARCH64_BIN:-${CARGO_TARGET_DIR:-target}/$T/release/gopxe}

say() { printf 'aarch64: %s\n' "$*"; }
fail() { printf 'aarch64: FAIL: %s\n' "$*" >&2; exit 1; }

QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
if [ -z "$QEMU" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "SKIP: no qemu-aarch64 (apt-get install qemu-user as root)"
        exit 77
    fi
    say "installing qemu-user"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 \
        install -y -q --no-install-recommends qemu-user >/dev/null ||
        { timeout 300 apt-get update -q >/dev/null &&
          DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 \
              install -y -q --no-install-recommends qemu-user >/dev/null; }
    QEMU=$(command -v qemu-aarch64) || fail "qemu-aarch64 still missing"
fi
command -v curl >/dev/null || fail "curl missing"

if [ -z "${GOPXE_AARCH64_BIN:-}" ] || [ ! -x "$BIN" ]; then
    say "building $BIN"
    scripts/build-release.sh "$T"
fi

WORK=$(mktemp -d /tmp/gopxe-aarch64.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# 1. It is an aarch64 static executable.
desc=$(file -b "$BIN" 2>/dev/null || true)
say "file: $desc"
case $desc in
*"ARM aarch64"*) ;;
"") ;;
*) fail "$BIN is not an aarch64 executable" ;;
esac
if readelf -lW "$BIN" 2>/dev/null | grep -q INTERP; then
    fail "$BIN is dynamically linked"
fi

# 2. --version under emulation.
ver=$(timeout 60 "$QEMU" "$BIN" --version) || fail "--version failed under $QEMU"
say "--version: $ver"
case $ver in gopxe\ *) ;; *) fail "unexpected --version output: $ver" ;; esac

# 3. serve on an ephemeral loopback port, then /health.
mkdir -p "$WORK/images"
: >"$WORK/out"
"$QEMU" "$BIN" serve --http-listen 127.0.0.1:0 --data-dir "$WORK/data" \
    --images "$WORK/images" --advertise-addr 127.0.0.1 \
    >"$WORK/out" 2>"$WORK/log" &
PID=$!
t0=$(date +%s.%N)
port=
for _ in $(seq 600); do   # at most 60 s (emulated start-up is slow on a busy box)
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$WORK/out" 2>/dev/null || true)
    [ -n "$port" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/log" >&2; fail "gopxe exited during start-up"; }
    sleep 0.1
done
[ -n "$port" ] || { cat "$WORK/log" >&2; fail "no 'listening on' line within 60 s"; }
health=$(curl -fsS --max-time 20 "http://127.0.0.1:$port/health") || fail "GET /health failed"
t1=$(date +%s.%N)
say "GET /health: $health ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s after start)"
case $health in *'"status"'*) ;; *) fail "/health answer has no status: $health" ;; esac

# 4. A durable write and a read back.
code=$(curl -sS --max-time 20 -o "$WORK/post" -w '%{http_code}' -XPOST \
    -H 'Content-Type: application/json' \
    -d '{"kernel":"pi/vmlinuz","initrd":"pi/initrd.img","ip":"dhcp"}' \
    "http://127.0.0.1:$port/bootaction/arm64test") || fail "POST /bootaction failed"
case $code in 2??) ;; *) fail "POST /bootaction answered $code: $(cat "$WORK/post")" ;; esac
curl -fsS --max-time 20 "http://127.0.0.1:$port/bootaction/arm64test" | grep -q 'pi/vmlinuz' ||
    fail "GET /bootaction/arm64test does not return the record"
ls "$WORK/data"/bootactions/ >/dev/null 2>&1 || say "note: no bootactions/ folder in the data dir"
say "POST + GET /bootaction/arm64test: $code, read back"

# 5. SIGTERM stops it (bounded).
kill -TERM "$PID"
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then fail "gopxe did not stop within 10 s of SIGTERM"; fi
wait "$PID" 2>/dev/null || true
PID=

# 6. The unit tests on the target architecture.
if [ "${APPLIANCE_AARCH64_UNIT:-1}" = 1 ]; then
    say "unit tests: cargo test --target $T --lib (runner $(basename "$QEMU"))"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=$QEMU \
        cargo test --locked -q --target "$T" --lib 2>&1 | tee "$WORK/unit.log" | grep -E '^test result|FAILED|panicked' || true
    grep -q '^test result: ok' "$WORK/unit.log" || { tail -30 "$WORK/unit.log" >&2; fail "unit tests under $QEMU"; }
fi
say "PASS"
