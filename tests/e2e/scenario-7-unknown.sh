#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 7 — unknown machine: no record. It gets the configured default,
# gopxe logs it as unknown, nothing crashes.
#   a) the default default (`unknown_boot = local`): an address but no boot
#      file, so the firmware moves on to its local disk; no installer.
#   b) `--unknown-boot ACTION`: pxelinux, then `pxelinux.cfg/default`, which
#      runs that action's kernel without any machine's kickstart.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range --unknown-boot
gopxe_scenario_init

UUID=0badc0de-0000-4000-8000-00000000e2e7
MAC=52:54:00:e2:e1:07

# a) local boot by default.
gopxe_start authoritative
CUR_VM=s7-unknown
boot_bios s7-unknown "$MAC" "$UUID" 90
wait_for_marker "${VM_LOG[s7-unknown]}" 'Booting from Hard Disk|No bootable device' 90 s7-unknown \
    || scenario_fail "the unknown machine did not fall through to its local disk"
vm_kill s7-unknown
grep -aqiE "$GOPXE_RE_UNKNOWN.*$MAC" "$E2E_WORK/gopxe.log" || scenario_fail "gopxe did not log the machine as unknown"
grep -aiE "ACK sent mac $MAC" "$E2E_WORK/gopxe.log" >/dev/null || scenario_fail "the unknown machine got no address"
if grep -aiE "mac $MAC.*boot file" "$E2E_WORK/gopxe.log" >/dev/null; then
    scenario_fail "the unknown machine was given a boot file"
fi
serial_has "${VM_LOG[s7-unknown]}" 'GOPXE KICKSTART BEGIN' && scenario_fail "unknown machine got an installer"
gopxe_alive || scenario_fail "gopxe died"
stop_pid "$GOPXE_PID"
mv "$E2E_WORK/gopxe.log" "$E2E_WORK/gopxe-a.log"

# b) a configured default action.
gopxe_start authoritative --unknown-boot e2e-default
create_bootaction e2e-default
CUR_VM=s7-default
boot_bios s7-default "$MAC" "$UUID" 90
wait_for_marker "${VM_LOG[s7-default]}" 'GOPXE KICKSTART (FAILED|BEGIN)' 120 s7-default \
    || scenario_fail "the default action's kernel did not boot"
vm_kill s7-default
grep -aqiE 'pxelinux\.cfg/default' "$E2E_WORK/gopxe.log" || scenario_fail "pxelinux.cfg/default was not served"
serial_has "${VM_LOG[s7-default]}" 'GOPXE KICKSTART FAILED no-ks' \
    || scenario_fail "the default action carried a kickstart"
CUR_VM=""
gopxe_alive || scenario_fail "gopxe died"
api_ok GET /health
scenario_pass "unknown machine: local boot by default, the configured action otherwise"
