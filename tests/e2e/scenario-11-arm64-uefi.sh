#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 11 — arm64 UEFI: qemu-system-aarch64 (-M virt -cpu max, TCG)
# with AAVMF PXE-boots from gopxe (option 93 = 11) through the default arm64
# loader (boot action without "loader": auto = grub on efi-arm64):
# grubaa64.efi (Debian's signed network GRUB, prefix /grub) ->
# grub/grub.cfg -> grub/grub.cfg-01-<mac> -> Debian 12's arm64 installer
# (package debian-installer-12-netboot-arm64, Architecture: all; text
# variant) -> debian-installer fetches gopxe's preseed: the machine turns
# `installing`.
#
# Slow: everything is emulated (~4-5x slower than x64 under TCG here).
# Bounded by E2E_ARM64_TIMEOUT (default 600 s); E2E_ARM64=0 skips it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
[ "${E2E_ARM64:-1}" = 1 ] || scenario_skip "E2E_ARM64=0"
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range --dhcp-router --dhcp-dns --loader
# shellcheck disable=SC2119  # no extra packages
install_packages
e2e_init

[ -s "$E2E_IMAGES/grubaa64.efi" ] || scenario_fail "no $E2E_IMAGES/grubaa64.efi: run scripts/fetch-images.sh"
for f in "$AAVMF_CODE" "$AAVMF_VARS"; do
    [ -s "$f" ] || scenario_fail "no $f (package qemu-efi-aarch64)"
done
command -v qemu-system-aarch64 >/dev/null || scenario_fail "no qemu-system-aarch64 (package qemu-system-arm)"
debian_installer arm64 "$E2E_IMAGES/e2e-debian12-arm64" || scenario_skip "cannot download debian-installer-12-netboot-arm64"
e2e_log "debian-installer (arm64) $DI_VERSION"

TIMEOUT=${E2E_ARM64_TIMEOUT:-600}
MAC=52:54:00:e2:e1:11
UUID=1b0a9c8d-7e6f-4a5b-9c4d-3e2f1a0b9c8d
ID=$(mac_dashes "$MAC")
HOST=s11-arm64.e2e.local
E2E_MEM=${E2E_ARM64_MEM:-1024}

ns_setup 1
gopxe_start authoritative --dhcp-router "$E2E_SERVER_IP" --dhcp-dns "$E2E_SERVER_IP"
api_ok POST /bootaction/debian12-arm64 '{
  "kernel": "e2e-debian12-arm64/linux",
  "initrd": "e2e-debian12-arm64/initrd.gz",
  "installer": "preseed",
  "append": "console=ttyAMA0"
}'
api_ok POST /pxeboot "{\"bootaction\": \"debian12-arm64\", \"hostname\": \"$HOST\", \"mac\": \"$MAC\"}"
cfg=$(tftp_get "grub/grub.cfg-$ID" || true)
printf '%s\n' "$cfg" >"$E2E_WORK/grub.cfg-$ID"
grep -qE '^[[:space:]]*linux[[:space:]]+/?e2e-debian12-arm64/linux' <<<"$cfg" \
    || scenario_fail "TFTP grub/grub.cfg-$ID has no 'linux e2e-debian12-arm64/linux': $cfg"

CUR_VM=s11-arm64
boot_arm64 s11-arm64 "$MAC" "$UUID" "$TIMEOUT"
state=""
end=$(($(date +%s) + TIMEOUT))
while [ "$(date +%s)" -lt "$end" ]; do
    _timeline s11-arm64
    api GET "/pxeboot/$ID"
    state=$(sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' <<<"$API_BODY" | head -1)
    [ "$state" = installing ] && break
    vm_running s11-arm64 || break
    serial_has "${VM_LOG[s11-arm64]}" "$BOOT_FAIL_RE" && break
    sleep 2
done
secs=$(elapsed "${VM_START[s11-arm64]}")
sleep 1; vm_kill s11-arm64
tl=$E2E_WORK/s11-arm64.timeline
[ "$state" = installing ] \
    || scenario_fail "machine state '$state' after ${secs}s: the arm64 installer did not fetch the preseed"
grep -qE 'NBP filename is [^ ]*grubaa64\.efi' "$tl" \
    || scenario_fail "AAVMF was not handed grubaa64.efi (see $tl)"
grep -q 'Welcome to GRUB' "$tl" || scenario_fail "GRUB never started (see $tl)"
expect_steps "$ID" 'preseed fetched' "grub\\.cfg-$ID" 'e2e-debian12-arm64/initrd\.gz'
stamp() { grep -m1 -E "$1" "$tl" | sed 's/^\[+\([0-9.]*\)s\].*/\1/'; }
e2e_log "s11-arm64: GRUB at $(stamp 'Welcome to GRUB')s, kernel at $(stamp 'Booting Linux|Linux version|EFI stub')s, preseed fetched by ${secs}s"
record_time "$SCENARIO" "$secs" s11-arm64
CUR_VM=""
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "arm64 UEFI: grubaa64.efi -> installer fetched its preseed ${secs}s after power-on"
