#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 1 — the original GoPXE flow, BIOS, record keyed by SMBIOS UUID.
# gopxe in authoritative DHCP mode; SeaBIOS + iPXE ROM gets an address, loads
# pxelinux.0 and ldlinux.c32 over TFTP, its own pxelinux.cfg/<uuid> (asked in
# SMBIOS byte order), kernel and initrd; the initrd prints the kickstart
# rendered for the record (hostname + static network) and calls back done.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range
gopxe_scenario_init

# As the admin reads it. Not the README's 42330d5a-0ead-f7fa-...: pxelinux 6.04
# ignores a UUID whose 7th wire byte (here 0xfa, from "f7fa") is <0x10 or >=0xf0
# and never asks for pxelinux.cfg/<uuid> then (tests/e2e/README.md).
UUID=8d6f2a1e-4b3c-4d2e-9f10-a1b2c3d4e5f6
MAC=52:54:00:e2:e1:01
HOST=s1-bios.e2e.local
gopxe_start authoritative
create_bootaction myfirstbootaction
create_machine "$UUID" myfirstbootaction "$HOST" 10.99.0.51
api_ok GET /pxelinux/
boot_to_kickstart s1-bios bios "$MAC" "$UUID" "$HOST" 10.99.0.51
case $DONE_STATUS in 2??) ;; *) scenario_fail "done callback answered '${DONE_STATUS}'" ;; esac
expect_steps "$UUID" "$GOPXE_RE_DHCP" 'pxelinux\.0' 'ldlinux\.c32' \
    "pxelinux\.cfg/($(smbios_swapped "$UUID")|$UUID)" 'e2e/vmlinuz' 'e2e/initrd\.img' \
    'kickstart' 'done|installed'
api_ok GET "/pxeboot/$UUID"
grep -qi installed <<<"$API_BODY" || scenario_fail "machine state after done is not installed: $API_BODY"
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "${BOOT_SECS}s power-on -> kickstart"
