#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 5 — proxyDHCP: dnsmasq in the namespace hands out addresses only
# (no boot options); gopxe in proxy mode gives the boot information (and
# answers PXE boot-server discovery on udp/4011). The machine still reaches
# the kickstart marker.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
gopxe_require --dhcp-mode --tftp-listen --interface
gopxe_has_flag proxy || scenario_skip "$GOPXE_BIN does not mention proxy mode"
gopxe_scenario_init

UUID=1f2e3d4c-5b6a-4798-8a9b-abcdef012345
MAC=52:54:00:e2:e1:05
HOST=s5-proxy.e2e.local
# The lab's own DHCP server, on another "host" (namespace joined to br0 by a
# veth): addresses only, no PXE options, no DNS, no TFTP. gopxe and it never
# share a socket, as on a real lab network.
lab_ns_setup 10.99.0.2
bg_in_lab "$E2E_WORK/dnsmasq.log" dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --user=root --group=root --port=0 --log-facility=- --log-dhcp --pid-file= \
    --interface=lab0 --bind-interfaces --except-interface=lo \
    --dhcp-range=10.99.0.150,10.99.0.199,255.255.255.0,1h \
    --dhcp-option=option:router,10.99.0.1 \
    --dhcp-leasefile="$E2E_WORK/dnsmasq.leases"
end=$(($(date +%s) + 10))
until run_in_lab ss -Hlnu | grep -E ':67( |$)' >/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || scenario_fail "lab dnsmasq did not start"
    sleep 0.2
done
gopxe_start proxy
create_bootaction myfirstbootaction
create_machine "$UUID" myfirstbootaction "$HOST" 10.99.0.55
boot_to_kickstart s5-proxy bios "$MAC" "$UUID" "$HOST" 10.99.0.55
grep -aq 'DHCPACK' "$E2E_WORK/dnsmasq.log" || scenario_fail "the address did not come from dnsmasq"
if grep -aqE 'sent size: .*option: 67 |bootfile name:' "$E2E_WORK/dnsmasq.log"; then
    scenario_fail "dnsmasq sent boot options (test setup error)"
fi
expect_steps "$UUID" "$GOPXE_RE_PROXY" 'pxelinux\.0' 'vmlinuz' 'kickstart'
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "${BOOT_SECS}s power-on -> kickstart"
