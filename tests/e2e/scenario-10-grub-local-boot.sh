#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 10 — install once, then local boot, through GRUB. x64 UEFI
# (plain OVMF: Secure Boot is scenario 9's) with a boot action that names no
# loader ("auto": x64 UEFI's default family, shim-grub): OVMF -> shimx64.efi
# -> grubx64.efi -> grub/grub.cfg -> grub/grub.cfg-01-<mac> -> the e2e
# kernel + initrd, which prints the kickstart and calls done.
# After done, the machine's GRUB config says `exit` (back to the firmware,
# which goes on to its next boot entry) and has no `linux`. Boot 2: the
# installed machine is still handed shimx64.efi, GRUB runs, reads `exit`,
# fetches no kernel, and the firmware goes past GRUB. After
# POST /pxeboot/ID/reinstall the config has `linux` again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range --loader
gopxe_scenario_init

for f in shimx64.efi grubx64.efi; do
    [ -s "$E2E_IMAGES/$f" ] || scenario_fail "no $E2E_IMAGES/$f: run scripts/fetch-images.sh"
done
UUID=0a9b8c7d-6e5f-4a4b-8c3d-2e1f0a9b8c7d
MAC=52:54:00:e2:e1:10
ID=$(mac_dashes "$MAC")
HOST=s10-grub.e2e.local
CFG=grub/grub.cfg-$ID
gopxe_start authoritative
create_bootaction myfirstbootaction   # no "loader": auto
create_machine "$ID" myfirstbootaction "$HOST" 10.99.0.60

cfg=$(tftp_get "$CFG" || true)
printf '%s\n' "$cfg" >"$E2E_WORK/grub.cfg.1"
grep -qE '^[[:space:]]*linux[[:space:]]' <<<"$cfg" || scenario_fail "TFTP $CFG before the install has no linux: $cfg"

# boot 1: install (the e2e initrd prints the kickstart and calls done)
boot_to_kickstart s10-boot1 uefi "$MAC" "$UUID" "$HOST" 10.99.0.60
t1=$BOOT_SECS
tl=$E2E_WORK/s10-boot1.timeline
grep -qE 'NBP filename is [^ ]*shimx64\.efi' "$tl" \
    || scenario_fail "loader auto on x64 UEFI did not hand out shimx64.efi (see $tl)"
grep -q 'Welcome to GRUB' "$tl" || scenario_fail "GRUB never started (see $tl)"
case $DONE_STATUS in 2??) ;; *) scenario_fail "done callback answered '${DONE_STATUS}'" ;; esac
api_ok GET "/pxeboot/$ID"
grep -qi installed <<<"$API_BODY" || scenario_fail "state after done is not installed: $API_BODY"
expect_steps "$ID" 'done|installed' "grub\\.cfg-$ID" 'grubx64\.efi'

cfg=$(tftp_get "$CFG" || true)
printf '%s\n' "$cfg" >"$E2E_WORK/grub.cfg.2"
grep -qE '^[[:space:]]*exit' <<<"$cfg" || scenario_fail "TFTP $CFG after done has no exit: $cfg"
if grep -qE '^[[:space:]]*linux[[:space:]]' <<<"$cfg"; then
    scenario_fail "TFTP $CFG after done still boots a kernel: $cfg"
fi

kernel_reads() { grep -acE 'e2e/vmlinuz' "$E2E_WORK/gopxe.log" || true; }

# past_pxe NAME SECS: wait until the firmware has gone on from its PXE boot
# option to the next one, or a kernel started. OVMF with no disk: a PXEv4
# option that fails ("failed to load Boot0001 "UEFI PXEv4 ..."") is followed
# by PXEv6 and HTTP (a minute each); one whose image returns (GRUB's exit)
# by the set-up menu, "UiApp". Sets SEEN (firmware | kernel | "") and PAST_SECS.
past_pxe() {
    local name=$1 t=$2 end txt
    SEEN=""
    end=$(($(date +%s) + t))
    while [ "$(date +%s)" -lt "$end" ]; do
        _timeline "$name"
        txt=$(serial_text "${VM_LOG[$name]}")
        if grep -qE 'EFI stub|Linux version|GOPXE-INITRD' <<<"$txt"; then SEEN=kernel; break; fi
        if grep -qE 'BdsDxe: failed to load Boot[0-9A-F]+ "UEFI PXEv4|BdsDxe: (loading|starting) Boot[0-9A-F]+ "(UiApp|EFI Internal Shell|UEFI Shell|UEFI PXEv6|UEFI HTTP)' <<<"$txt"; then
            SEEN=firmware; break
        fi
        vm_running "$name" || break
        sleep 0.5
    done
    PAST_SECS=$(elapsed "${VM_START[$name]}")
    sleep 2; vm_kill "$name"
}

# boot 2: the installed machine still gets its loader from gopxe's DHCP;
# GRUB reads the machine's config, which says `exit`: back to the firmware,
# which goes on to its next boot entry (OVMF with no disk: its set-up menu);
# no kernel is fetched.
before_k=$(kernel_reads)
CUR_VM=s10-boot2
boot_uefi s10-boot2 "$MAC" "$UUID" 120
past_pxe s10-boot2 120
tl=$E2E_WORK/s10-boot2.timeline
case $SEEN in
    kernel) scenario_fail "boot 2 started a kernel after done (see $tl)" ;;
    firmware) ;;
    *) scenario_fail "boot 2 did not get past GRUB within 120 s (see $tl)" ;;
esac
grep -qE 'NBP filename is [^ ]*shimx64\.efi' "$tl" || scenario_fail "boot 2: the installed machine was not handed shimx64.efi (see $tl)"
grep -q 'Welcome to GRUB' "$tl" || scenario_fail "boot 2 never reached GRUB (see $tl)"
[ "$(grep -ac "grub.cfg-$ID" "$E2E_WORK/gopxe.log" || true)" -ge 2 ] \
    || scenario_fail "boot 2: GRUB did not read grub.cfg-$ID from gopxe"
[ "$(kernel_reads)" = "$before_k" ] || scenario_fail "boot 2 fetched the kernel over TFTP"
next=$(sed -n '/Welcome to GRUB/,$p' "$tl" | grep -m1 -oE 'BdsDxe: (loading|starting) Boot[0-9A-F]+ "[^"]*"' || true)
e2e_log "boot 2: GRUB exited to the firmware, which went on to: $next (${PAST_SECS}s)"
secs=$PAST_SECS
CUR_VM=""

# reinstall brings the installer back
api_ok POST "/pxeboot/$ID/reinstall"
cfg=$(tftp_get "$CFG" || true)
printf '%s\n' "$cfg" >"$E2E_WORK/grub.cfg.3"
grep -qE '^[[:space:]]*linux[[:space:]]' <<<"$cfg" || scenario_fail "TFTP $CFG after reinstall has no linux: $cfg"
expect_steps "$ID" 'reinstall'
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "install ${t1}s power-on -> kickstart through shim+GRUB; installed: GRUB exit -> firmware ${secs}s after power-on"
