#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# selftest-dnsmasq.sh — prove the e2e harness boots real firmware, with
# dnsmasq (DHCP + TFTP) and a tiny Python HTTP server standing in for gopxe.
#
# Boots, one after another, in one namespace:
#   bios       SeaBIOS + iPXE ROM (virtio) -> pxelinux.0 -> kernel+initrd (TFTP)
#   uefi       OVMF own PXE (virtio) -> syslinux.efi -> kernel+initrd (TFTP)
#   uefi-ipxe  (E2E_SELFTEST_ALL=1) OVMF -> ipxe.efi -> HTTP script -> kernel+initrd
#   bios-e1000 (E2E_SELFTEST_ALL=1) SeaBIOS + iPXE e1000 ROM
# each to the kickstart marker and the done callback, and prints the
# power-on -> marker times. If this passes, the kernel, initrd, modules, ROMs
# and firmware paths are good: when gopxe replaces dnsmasq, only gopxe can be
# at fault.
#
# usage: selftest-dnsmasq.sh [bios] [uefi] [uefi-ipxe] [bios-e1000]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_root
e2e_init
install_packages
if [ ! -f "$E2E_IMAGES/e2e/initrd.img" ] || [ -z "${E2E_NO_FETCH:-}" ]; then
    "$E2E_ROOT/scripts/fetch-images.sh" "$E2E_IMAGES" >"$E2E_WORK/fetch.log" 2>&1 \
        || { cat "$E2E_WORK/fetch.log" >&2; e2e_die "fetch-images failed"; }
fi

if [ $# -gt 0 ]; then CASES=("$@")
elif [ -n "${E2E_SELFTEST_ALL:-}" ]; then CASES=(bios uefi uefi-ipxe bios-e1000)
else CASES=(bios uefi); fi

BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-180}
IP=$E2E_SERVER_IP
HTTP_PORT=8080
BASE=http://$IP:$HTTP_PORT
CMDLINE="console=ttyS0,115200 panic=-1 loglevel=4 ks=$BASE/ks.cfg gopxe.done=$BASE/pxeboot/selftest/done"

# TFTP root: a symlink copy of images/ plus our own pxelinux.cfg (not committed)
TFTP=$E2E_WORK/tftp
mkdir -p "$TFTP"
cp -rs "$E2E_IMAGES"/. "$TFTP"/
mkdir -p "$TFTP/pxelinux.cfg"
cat >"$TFTP/pxelinux.cfg/default" <<EOF
SERIAL 0 115200
DEFAULT e2e
PROMPT 0
TIMEOUT 1
LABEL e2e
  MENU LABEL gopxe e2e selftest
  KERNEL e2e/vmlinuz
  APPEND initrd=e2e/initrd.img $CMDLINE
EOF

# HTTP root: kickstart, iPXE script, kernel + initrd for the iPXE path
WWW=$E2E_WORK/www
mkdir -p "$WWW/e2e"
ln -s "$E2E_IMAGES/e2e/vmlinuz" "$WWW/e2e/vmlinuz"
ln -s "$E2E_IMAGES/e2e/initrd.img" "$WWW/e2e/initrd.img"
cat >"$WWW/ks.cfg" <<EOF
# gopxe e2e selftest kickstart
network --bootproto=dhcp --hostname=selftest.e2e.local
%post
curl -X POST $BASE/pxeboot/selftest/done
%end
EOF
cat >"$WWW/boot.ipxe" <<EOF
#!ipxe
echo gopxe e2e selftest iPXE script
kernel $BASE/e2e/vmlinuz initrd=initrd.img $CMDLINE
initrd --name initrd.img $BASE/e2e/initrd.img
boot
EOF

ns_setup 2
start_ra_helper

# dnsmasq: authoritative DHCP on br0 + TFTP; loader by client architecture.
# 175.176=1 tells iPXE not to wait for proxyDHCP offers.
bg_in_ns "$E2E_WORK/dnsmasq.log" dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --user=root --group=root --port=0 --log-facility=- --log-dhcp \
    --interface=br0 --bind-interfaces --except-interface=lo \
    --dhcp-range=10.99.0.100,10.99.0.200,255.255.255.0,1h \
    --dhcp-leasefile="$E2E_WORK/dnsmasq.leases" --dhcp-authoritative \
    --enable-tftp --tftp-root="$TFTP" \
    --dhcp-option=encap:175,176,1b \
    --dhcp-userclass=set:ipxe,iPXE \
    --dhcp-match=set:efi,option:client-arch,7 \
    --dhcp-match=set:efi,option:client-arch,9 \
    --dhcp-boot="tag:ipxe,tag:efi,$BASE/boot.ipxe" \
    --dhcp-boot=tag:!ipxe,tag:efi,"${E2E_UEFI_LOADER:-syslinux.efi}" \
    --dhcp-boot=tag:!efi,pxelinux.0
DNSMASQ_PID=$BG_PID
bg_in_ns "$E2E_WORK/http.log" /usr/bin/python3 "$E2E_DIR/httpd.py" "$IP" "$HTTP_PORT" "$WWW"
wait_port_in_ns udp "$IP:67" 10 \
    || { cat "$E2E_WORK/dnsmasq.log" >&2; e2e_die "dnsmasq did not start"; }
wait_port_in_ns tcp "$IP:$HTTP_PORT" 10 || { cat "$E2E_WORK/http.log" >&2; e2e_die "httpd did not start"; }
kill -0 "$DNSMASQ_PID" || e2e_die "dnsmasq exited"

UUID=${E2E_SELFTEST_UUID:-5a6e8f1c-2b3d-4e5f-8a9b-0c1d2e3f4a5b}
fails=0
declare -A RESULT=()
i=0
for c in "${CASES[@]}"; do
    i=$((i + 1))
    mac=$(printf '52:54:00:e2:e0:%02x' "$i")
    name=selftest-$c
    : >"$E2E_WORK/mark.$c"
    # server-log offset so the failure report shows this boot's steps
    case $c in
        bios)       boot_bios "$name" "$mac" "$UUID" "$BOOT_TIMEOUT" virtio ;;
        bios-e1000) boot_bios "$name" "$mac" "$UUID" "$BOOT_TIMEOUT" e1000 ;;
        uefi)       boot_uefi "$name" "$mac" "$UUID" "$BOOT_TIMEOUT" ;;
        uefi-ipxe)
            # OVMF -> ipxe.efi -> (iPXE asks again, user class iPXE) -> HTTP script.
            # dnsmasq has one loader per tag, so this case swaps it by restarting.
            stop_pid "$DNSMASQ_PID"
            bg_in_ns "$E2E_WORK/dnsmasq.log.ipxe" dnsmasq --keep-in-foreground --conf-file=/dev/null \
                --user=root --group=root --port=0 --log-facility=- --log-dhcp \
                --interface=br0 --bind-interfaces --except-interface=lo \
                --dhcp-range=10.99.0.100,10.99.0.200,255.255.255.0,1h \
                --dhcp-leasefile="$E2E_WORK/dnsmasq.leases" --dhcp-authoritative \
                --enable-tftp --tftp-root="$TFTP" --dhcp-option=encap:175,176,1b \
                --dhcp-userclass=set:ipxe,iPXE \
                --dhcp-match=set:efi,option:client-arch,7 \
                --dhcp-match=set:efi,option:client-arch,9 \
                --dhcp-boot="tag:ipxe,$BASE/boot.ipxe" \
                --dhcp-boot=tag:!ipxe,tag:efi,ipxe.efi \
                --dhcp-boot=tag:!efi,pxelinux.0
            DNSMASQ_PID=$BG_PID
            sleep 1
            boot_uefi "$name" "$mac" "$UUID" "$BOOT_TIMEOUT" ;;
        *) e2e_die "unknown case $c" ;;
    esac
    if wait_for_marker "${VM_LOG[$name]}" "$MARK_KS_END|$MARK_KS_FAIL|$BOOT_FAIL_RE" "$BOOT_TIMEOUT" "$name" \
            && serial_has "${VM_LOG[$name]}" "$MARK_KS_END"; then
        t=$MARKER_SECS
        if wait_for_marker "${VM_LOG[$name]}" "$MARK_DONE" 30 "$name" \
                && serial_has "${VM_LOG[$name]}" '=== GOPXE DONE 200 ===' \
                && grep -q 'selftest.e2e.local' <<<"$(kickstart_text "${VM_LOG[$name]}")"; then
            vm_wait "$name" 30 || e2e_log "WARN: $name did not power off by itself"
            record_time "${SCENARIO:-selftest-dnsmasq}" "$t" "$c"
            RESULT[$c]="PASS ${t}s"
            continue
        fi
        e2e_log "$name: kickstart marker seen but kickstart text or DONE 200 missing"
    fi
    sleep 1; vm_kill "$name"
    report_failure "$E2E_WORK/dnsmasq.log" "${VM_LOG[$name]}"
    grep -a '' "$E2E_WORK/http.log" | tail -5 >&2 || true
    RESULT[$c]="FAIL"
    fails=$((fails + 1))
done

echo
echo "gopxe e2e selftest (dnsmasq stand-in), accel $(accel_name):"
printf '  %-12s %s\n' case "result (power-on -> kickstart marker)"
for c in "${CASES[@]}"; do printf '  %-12s %s\n' "$c" "${RESULT[$c]}"; done
[ "$fails" -eq 0 ]
