#!/usr/bin/env bash
# systemd.sh — dist/gopxe.service passes `systemd-analyze verify` (with the
# binary path pointed at the release build) and prints its offline security
# exposure score. Exit: 0 pass, 1 fail, 77 skip (no systemd-analyze).
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf 'systemd: %s\n' "$*"; }
command -v systemd-analyze >/dev/null || { say "SKIP: no systemd-analyze"; exit 77; }
BIN=${GOPXE_X86_64_BIN:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/gopxe}
if [ -z "${GOPXE_X86_64_BIN:-}" ] || [ ! -x "$BIN" ]; then scripts/build-release.sh x86_64-unknown-linux-musl; fi
BIN=$(realpath "$BIN")
WORK=$(mktemp -d /tmp/gopxe-systemd.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
sed "s|/usr/local/bin/gopxe|$BIN|g" dist/gopxe.service >"$WORK/gopxe.service"
if ! out=$(systemd-analyze verify "$WORK/gopxe.service" 2>&1) || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    say "FAIL: systemd-analyze verify"
    exit 1
fi
say "systemd-analyze verify: clean"
for c in CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_NET_ADMIN; do
    grep -q "^AmbientCapabilities=.*$c" dist/gopxe.service || { say "FAIL: $c not granted"; exit 1; }
done
score=$(timeout 60 systemd-analyze security --offline=true "$WORK/gopxe.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for gopxe.service: *//p' || true)
say "security exposure (offline): ${score:-not available on this systemd}"
say "PASS"
