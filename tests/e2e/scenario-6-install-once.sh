#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 6 — install once, then local boot, then reinstall.
# Boot 1 installs (kickstart printed, done callback -> installed). Boot 2 of
# the same machine gets LOCALBOOT from gopxe (no kickstart; SeaBIOS finds no
# disk and QEMU exits thanks to reboot-timeout=0 + -no-reboot). After
# POST /pxeboot/{id}/reinstall, boot 3 installs again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range
gopxe_scenario_init

UUID=6a5b4c3d-2e1f-4a1b-9c8d-7e6f5a4b3c2d
MAC=52:54:00:e2:e1:06
HOST=s6-once.e2e.local
CFG=pxelinux.cfg/$(smbios_swapped "$UUID")
gopxe_start authoritative
create_bootaction myfirstbootaction
create_machine "$UUID" myfirstbootaction "$HOST" 10.99.0.56

# boot 1: install
boot_to_kickstart s6-boot1 bios "$MAC" "$UUID" "$HOST"
t1=$BOOT_SECS
case $DONE_STATUS in 2??) ;; *) scenario_fail "done callback answered '${DONE_STATUS}'" ;; esac
api_ok GET "/pxeboot/$UUID"
grep -qi installed <<<"$API_BODY" || scenario_fail "state after done is not installed: $API_BODY"
cfg=$(tftp_get "$CFG" || true)
grep -qi 'localboot' <<<"$cfg" || scenario_fail "TFTP $CFG after done has no LOCALBOOT: $cfg"

# boot 2: local boot, no installer
CUR_VM=s6-boot2
boot_bios s6-boot2 "$MAC" "$UUID" 90
if ! vm_wait s6-boot2 90; then
    scenario_fail "second boot did not end (expected LOCALBOOT -> no bootable device -> exit)"
fi
if serial_has "${VM_LOG[s6-boot2]}" 'GOPXE KICKSTART BEGIN|GOPXE-INITRD'; then
    scenario_fail "second boot ran the installer again"
fi
serial_has "${VM_LOG[s6-boot2]}" 'PXELINUX' || scenario_fail "second boot never reached pxelinux"
e2e_log "boot 2: local boot after $(elapsed "${VM_START[s6-boot2]}")s"
CUR_VM=""

# reinstall flips it back
api_ok POST "/pxeboot/$UUID/reinstall"
cfg=$(tftp_get "$CFG" || true)
grep -qi 'kernel' <<<"$cfg" || scenario_fail "TFTP $CFG after reinstall has no KERNEL: $cfg"
boot_to_kickstart s6-boot3 bios "$MAC" "$UUID" "$HOST"
expect_steps "$UUID" 'done|installed' 'reinstall|install'
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "install ${t1}s, reinstall ${BOOT_SECS}s power-on -> kickstart"
