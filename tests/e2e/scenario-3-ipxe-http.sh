#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 3 — iPXE over HTTP: a machine whose boot action uses iPXE gets an
# iPXE script, kernel and initrd over HTTP from gopxe (no TFTP for the big
# files). Prints the boot-time difference against scenario 1.
# The boot-action field that selects iPXE is GOPXE_IPXE_FIELDS (gopxe.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range
gopxe_scenario_init
GOPXE_NEED_TFTP=0       # kernel and initrd come over HTTP

UUID=3c2a1b0d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
MAC=52:54:00:e2:e1:03
HOST=s3-ipxe.e2e.local
gopxe_start authoritative
create_bootaction ipxe-http "$GOPXE_IPXE_FIELDS"
create_machine "$UUID" ipxe-http "$HOST" 10.99.0.53
boot_to_kickstart s3-ipxe bios "$MAC" "$UUID" "$HOST" 10.99.0.53
tl=$E2E_WORK/s3-ipxe.timeline
grep -qE "http://$E2E_SERVER_IP:$GOPXE_HTTP_PORT/[^ ]*vmlinuz" "$tl" \
    || scenario_fail "kernel was not loaded over HTTP from gopxe (see $tl)"
grep -qE "http://$E2E_SERVER_IP:$GOPXE_HTTP_PORT/[^ ]*initrd" "$tl" \
    || scenario_fail "initrd was not loaded over HTTP from gopxe"
if grep -qiE 'tftp.*(vmlinuz|initrd)' "$E2E_WORK/gopxe.log"; then
    scenario_fail "gopxe log shows kernel/initrd over TFTP"
fi
expect_steps "$UUID" 'ipxe' 'vmlinuz' 'kickstart'
s1=$(awk -F'\t' '$1 ~ /^scenario-1-/ {t=$2} END {print t}' "${E2E_TIMES:-/dev/null}" 2>/dev/null || true)
if [ -n "$s1" ]; then
    e2e_log "iPXE/HTTP ${BOOT_SECS}s vs pxelinux/TFTP ${s1}s (scenario 1): $(awk -v a="$BOOT_SECS" -v b="$s1" 'BEGIN{printf "%+.1fs", a-b}')"
fi
scenario_pass "${BOOT_SECS}s power-on -> kickstart${s1:+ (scenario 1: ${s1}s)}"
