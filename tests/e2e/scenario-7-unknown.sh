#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 7 — unknown machine: no record. It gets the configured default
# (pxelinux.cfg/default), gopxe logs it as unknown, nothing crashes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range
gopxe_scenario_init

UUID=0badc0de-0000-4000-8000-00000000e2e7
MAC=52:54:00:e2:e1:07
gopxe_start authoritative
CUR_VM=s7-unknown
boot_bios s7-unknown "$MAC" "$UUID" 90
# pxelinux walks uuid -> 01-mac -> hex IP -> default; wait for the default
end=$(($(date +%s) + 90))
until grep -aqiE "$GOPXE_RE_UNKNOWN" "$E2E_WORK/gopxe.log" \
        && grep -aqiE 'pxelinux\.cfg/default' "$E2E_WORK/gopxe.log"; do
    vm_running s7-unknown || break
    [ "$(date +%s)" -lt "$end" ] || break
    _timeline s7-unknown; sleep 0.5
done
sleep 2
vm_kill s7-unknown
grep -aqiE "$GOPXE_RE_UNKNOWN" "$E2E_WORK/gopxe.log" || scenario_fail "gopxe did not log the machine as unknown"
grep -aqiE 'pxelinux\.cfg/default' "$E2E_WORK/gopxe.log" || scenario_fail "pxelinux.cfg/default was not served"
serial_has "${VM_LOG[s7-unknown]}" 'GOPXE KICKSTART BEGIN' && scenario_fail "unknown machine got an installer"
CUR_VM=""
gopxe_alive || scenario_fail "gopxe died"
api_ok GET /health
scenario_pass "unknown machine handled"
