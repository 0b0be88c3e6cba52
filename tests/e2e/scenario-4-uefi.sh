#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 4 — UEFI: OVMF's own PXE (option 93 = 7) gets gopxe's x64 UEFI
# pxelinux loader (syslinux.efi) and reaches the same kickstart marker. The
# boot action asks for "loader": "pxelinux" explicitly: x64 UEFI's default
# family is shim-grub (scenarios 9 and 10 boot that), and this one keeps
# proving syslinux.efi.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range
gopxe_scenario_init

UUID=9b8a7c6d-5e4f-4321-8fed-cba987654321
MAC=52:54:00:e2:e1:04
HOST=s4-uefi.e2e.local
gopxe_start authoritative
create_bootaction myfirstbootaction "$GOPXE_PXELINUX_FIELDS"
create_machine "$UUID" myfirstbootaction "$HOST" 10.99.0.54
boot_to_kickstart s4-uefi uefi "$MAC" "$UUID" "$HOST" 10.99.0.54
tl=$E2E_WORK/s4-uefi.timeline
grep -qiE 'NBP filename is [^ ]*syslinux\.efi' "$tl" \
    || scenario_fail "OVMF was not handed syslinux.efi for a \"loader\": \"pxelinux\" machine (see $tl)"
expect_steps "$UUID" "$GOPXE_RE_DHCP" 'syslinux\.efi' 'ldlinux\.e64' 'vmlinuz' 'kickstart'
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "${BOOT_SECS}s power-on -> kickstart"
