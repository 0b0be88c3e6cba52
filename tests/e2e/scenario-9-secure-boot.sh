#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 9 — Secure Boot: OVMF with Secure Boot enforced (the secboot
# build, Microsoft's keys enrolled) PXE-boots from gopxe over TFTP:
# shimx64.efi (signed by Microsoft) -> grubx64.efi (Debian's signed network
# GRUB, checked by shim) -> the GRUB config gopxe rendered for the machine
# (grub/grub.cfg dispatches by MAC to grub/grub.cfg-01-<mac>) -> Debian 12's
# installer kernel (signed by Debian, checked by shim through GRUB) and
# initrd -> debian-installer fetches gopxe's preseed: the machine turns
# `installing`. Boot action "loader": "shim-grub", "installer": "preseed".
#
# Then enforcement: a second machine on the same firmware whose boot action
# says "loader": "ipxe" gets Debian's unsigned ipxe.efi, which the firmware
# must refuse ("Access Denied" on the console) and which must not run.
#
# Bounded: E2E_SB_TIMEOUT (default 300 s) to the preseed fetch (~100 s
# under TCG: the 40 MB initrd comes over TFTP through GRUB), 90 s for the
# refusal. E2E_PRESEED=0 skips it (like scenario 8).
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
[ "${E2E_PRESEED:-1}" = 1 ] || scenario_skip "E2E_PRESEED=0"
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range --dhcp-router --dhcp-dns --loader
# shellcheck disable=SC2119  # no extra packages
install_packages
e2e_init

for f in shimx64.efi grubx64.efi ipxe.efi; do
    [ -s "$E2E_IMAGES/$f" ] || scenario_fail "no $E2E_IMAGES/$f: run scripts/fetch-images.sh"
done
for f in "$OVMF_SB_CODE" "$OVMF_SB_VARS"; do
    [ -s "$f" ] || scenario_fail "no $f (package ovmf)"
done
debian_installer amd64 "$E2E_IMAGES/e2e-debian12" || scenario_skip "cannot download debian-installer-12-netboot-amd64"
# The proof is only worth something if the installer's kernel is signed (by
# Debian's Secure Boot CA, which shim trusts); check before booting it.
sig=$(sbverify --list "$E2E_IMAGES/e2e-debian12/linux" 2>&1 || true)
grep -q 'Debian Secure Boot' <<<"$sig" \
    || scenario_fail "the installer kernel is not signed by Debian: $sig"
e2e_log "debian-installer $DI_VERSION, kernel signed by: $(grep -m1 -A1 'issuers' <<<"$sig" | tail -1 | sed 's/^ *- *//')"

TIMEOUT=${E2E_SB_TIMEOUT:-300}
MAC=52:54:00:e2:e1:09
UUID=9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
ID=$(mac_dashes "$MAC")
HOST=s9-sb.e2e.local
MAC_DENY=52:54:00:e2:e1:19
UUID_DENY=9d8c7b6a-5f4e-4b3a-9d2c-1f0e9a8b7c6e
# debian-installer with a 40 MB initrd needs more than the default 384 MiB.
E2E_MEM=${E2E_PRESEED_MEM:-1024}

ns_setup 2
gopxe_start authoritative --dhcp-router "$E2E_SERVER_IP" --dhcp-dns "$E2E_SERVER_IP"
api_ok POST /bootaction/debian12-sb '{
  "kernel": "e2e-debian12/linux",
  "initrd": "e2e-debian12/initrd.gz",
  "loader": "shim-grub",
  "installer": "preseed",
  "append": "console=ttyS0,115200n8"
}'
api_ok POST /pxeboot "{\"bootaction\": \"debian12-sb\", \"hostname\": \"$HOST\", \"mac\": \"$MAC\"}"
api_ok POST /bootaction/unsigned-ipxe '{
  "kernel": "e2e/vmlinuz",
  "initrd": "e2e/initrd.img",
  "loader": "ipxe"
}'
api_ok POST /pxeboot "{\"bootaction\": \"unsigned-ipxe\", \"hostname\": \"s9-deny.e2e.local\", \"mac\": \"$MAC_DENY\"}"

# What GRUB will read: the dispatcher and this machine's config.
disp=$(tftp_get grub/grub.cfg || true)
printf '%s\n' "$disp" >"$E2E_WORK/grub.cfg"
if ! grep -q 'regexp' <<<"$disp" || ! grep -q 'net_default_mac' <<<"$disp"; then
    scenario_fail "TFTP grub/grub.cfg is not a MAC dispatcher: $disp"
fi
cfg=$(tftp_get "grub/grub.cfg-$ID" || true)
printf '%s\n' "$cfg" >"$E2E_WORK/grub.cfg-$ID"
grep -qE '^[[:space:]]*linux[[:space:]]+/?e2e-debian12/linux' <<<"$cfg" \
    || scenario_fail "TFTP grub/grub.cfg-$ID has no 'linux e2e-debian12/linux': $cfg"
grep -q "url=$GOPXE_API/preseed/$ID" <<<"$cfg" \
    || scenario_fail "TFTP grub/grub.cfg-$ID has no preseed URL: $cfg"

# 1. shim -> GRUB -> signed kernel -> installer -> preseed
CUR_VM=s9-sb
boot_uefi_sb s9-sb "$MAC" "$UUID" "$TIMEOUT" tap0
state=""
end=$(($(date +%s) + TIMEOUT))
while [ "$(date +%s)" -lt "$end" ]; do
    _timeline s9-sb
    api GET "/pxeboot/$ID"
    state=$(sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' <<<"$API_BODY" | head -1)
    [ "$state" = installing ] && break
    vm_running s9-sb || break
    serial_has "${VM_LOG[s9-sb]}" "$BOOT_FAIL_RE|$SB_DENIED_RE" && break
    sleep 1
done
secs=$(elapsed "${VM_START[s9-sb]}")
sleep 1; vm_kill s9-sb
tl=$E2E_WORK/s9-sb.timeline
if [ "$state" != installing ]; then
    scenario_fail "machine state '$state' after ${secs}s: the installer did not fetch the preseed under Secure Boot"
fi
grep -qE 'NBP filename is [^ ]*shimx64\.efi' "$tl" || scenario_fail "OVMF was not handed shimx64.efi (see $tl)"
grep -q 'Welcome to GRUB' "$tl" || scenario_fail "GRUB never started (see $tl)"
# The kernel's EFI stub says whether the firmware enforced Secure Boot.
grep -q 'Secure Boot is enabled' "$tl" \
    || scenario_fail "the kernel did not report 'UEFI Secure Boot is enabled' (see $tl)"
expect_steps "$ID" 'preseed fetched' 'grubx64\.efi' "grub\\.cfg-$ID" 'e2e-debian12/initrd\.gz'
# GRUB's timeline, for the README's numbers
grub_at=$(grep -m1 'Welcome to GRUB' "$tl" | sed 's/^\[+\([0-9.]*\)s\].*/\1/')
kern_at=$(grep -m1 'Secure Boot is enabled' "$tl" | sed 's/^\[+\([0-9.]*\)s\].*/\1/')
e2e_log "s9-sb: GRUB at ${grub_at}s, kernel at ${kern_at}s, preseed fetched by ${secs}s"
record_time "$SCENARIO" "$secs" s9-sb
CUR_VM=""

# 2. enforcement: the unsigned ipxe.efi is refused and never runs
CUR_VM=s9-deny
boot_uefi_sb s9-deny "$MAC_DENY" "$UUID_DENY" 90 tap1
rc=0
wait_for_marker "${VM_LOG[s9-deny]}" "$SB_DENIED_RE|iPXE initiali|Linux version|GOPXE-INITRD" 90 s9-deny || rc=$?
sleep 3; vm_kill s9-deny
tl=$E2E_WORK/s9-deny.timeline
grep -qE 'NBP filename is [^ ]*ipxe\.efi' "$tl" \
    || scenario_fail "the \"loader\": \"ipxe\" machine was not handed ipxe.efi (see $tl)"
if serial_has "${VM_LOG[s9-deny]}" 'iPXE initiali|Linux version|GOPXE-INITRD'; then
    scenario_fail "Secure Boot did not stop the unsigned ipxe.efi (see $tl)"
fi
[ "$rc" -eq 0 ] || scenario_fail "no refusal on the console within 90 s (see $tl)"
denied=$(serial_text "${VM_LOG[s9-deny]}" | grep -aoE "$SB_DENIED_RE" | head -1)
e2e_log "s9-deny: the firmware refused ipxe.efi after ${MARKER_SECS}s: $denied"
CUR_VM=""
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "Secure Boot: shim -> GRUB -> signed installer fetched its preseed ${secs}s after power-on; unsigned ipxe.efi refused ($denied)"
