#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 2 — record keyed by MAC ("uuid": "01-<mac>" as the README says);
# the machine's SMBIOS UUID is unknown to gopxe, so pxelinux finds its config
# through pxelinux.cfg/01-<mac-with-dashes>.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range
gopxe_scenario_init

MAC=52:54:00:e2:e1:02
ID=$(mac_dashes "$MAC")                        # 01-52-54-00-e2-e1-02
UUID=7d1e0c2b-3a4f-4b5c-9d6e-0f1a2b3c4d5e      # not registered
HOST=s2-mac.e2e.local
gopxe_start authoritative
create_bootaction myfirstbootaction
create_machine "$ID" myfirstbootaction "$HOST" 10.99.0.52
boot_to_kickstart s2-mac bios "$MAC" "$UUID" "$HOST" 10.99.0.52
case $DONE_STATUS in 2??) ;; *) scenario_fail "done callback answered '${DONE_STATUS}'" ;; esac
expect_steps "$ID" "$GOPXE_RE_DHCP" 'pxelinux\.0' "pxelinux\.cfg/$ID" 'e2e/vmlinuz' 'kickstart'
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "${BOOT_SECS}s power-on -> kickstart"
