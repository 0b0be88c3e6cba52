#!/usr/bin/env bash
# run.sh — the appliance tests, in order: service scripts on this machine,
# the aarch64 binary under qemu-user, the appliance image booted in QEMU.
# Each prints PASS, FAIL or SKIP; exit 1 if any failed (77 = skipped, e.g. not
# root, is reported but does not fail unless APPLIANCE_STRICT=1).
#
#   tests/appliance/run.sh [NAME...]     NAME: initscript systemd aarch64 plugin-default boot
set -euo pipefail
cd "$(dirname "$0")/../.."
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(initscript systemd aarch64 plugin-default boot)
summary=()
failed=0
# Each test's output is kept so that the summary, the last thing printed,
# can repeat why a test failed (its FAIL lines, else its last lines).
OUTDIR=$(mktemp -d /tmp/gopxe-appliance-run.XXXXXX)
trap 'rm -rf "$OUTDIR"' EXIT
for t in "${tests[@]}"; do
    printf '\n=== appliance: %s ===\n' "$t"
    set +e
    "tests/appliance/$t.sh" 2>&1 | tee "$OUTDIR/$t.log"
    rc=${PIPESTATUS[0]}
    set -e
    case $rc in
    0) summary+=("PASS $t") ;;
    77) summary+=("SKIP $t")
        [ "${APPLIANCE_STRICT:-0}" = 1 ] && failed=1 ;;
    *) summary+=("FAIL $t (exit $rc)"); failed=1
        why=$(grep -a 'FAIL' "$OUTDIR/$t.log" | tail -n 3)
        [ -n "$why" ] || why=$(tail -n 5 "$OUTDIR/$t.log")
        while IFS= read -r line; do summary+=("     $line"); done <<<"$why" ;;
    esac
done
printf '\n=== appliance summary ===\n'
printf '%s\n' "${summary[@]}"
exit $failed
