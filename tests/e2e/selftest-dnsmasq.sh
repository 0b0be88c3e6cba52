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
#   uefi-sb    (E2E_SELFTEST_ALL=1) OVMF with Secure Boot enforced (Microsoft
#              keys) -> shimx64.efi -> grubx64.efi -> grub/grub.cfg (a
#              dispatcher by MAC, the shape gopxe writes) ->
#              grub/grub.cfg-01-<mac> -> the signed Debian kernel + initrd
#   uefi-sb-deny (E2E_SELFTEST_ALL=1) the same firmware handed the unsigned
#              ipxe.efi: must be refused, nothing after it loaded
#   arm64      (named only) AAVMF -> grubaa64.efi -> grub.cfg -> Debian 12's
#              arm64 installer -> fetches /preseed.cfg (slow: minutes)
# each to the kickstart marker and the done callback (the uefi-sb-deny and
# arm64 cases to their own ends), and prints the power-on -> marker times. If this passes, the kernel, initrd, modules, ROMs
# and firmware paths are good: when gopxe replaces dnsmasq, only gopxe can be
# at fault.
#
# usage: selftest-dnsmasq.sh [bios] [uefi] [uefi-ipxe] [bios-e1000] [uefi-sb]
#                            [uefi-sb-deny] [arm64]
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
elif [ -n "${E2E_SELFTEST_ALL:-}" ]; then CASES=(bios uefi uefi-ipxe bios-e1000 uefi-sb uefi-sb-deny)
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

# GRUB (signed grubnet*.efi, prefix /grub: it sources grub/<platform>/grub.cfg
# if there, else grub/grub.cfg): a dispatcher that turns GRUB's
# $net_default_mac into 01-<mac-with-dashes> and goes to the per-machine
# file, as gopxe's generated configs do. Per-machine files are written by
# the cases below. GRUB 2.06's `[ -e FILE ]` is always false on (tftp,...)
# (the net "file system" lists no directory; nothing is even asked for), so
# the dispatcher just tries: a missing file is an error GRUB prints and
# goes on after.
mkdir -p "$TFTP/grub"
cat >"$TFTP/grub/grub.cfg" <<'EOF'
set timeout=0
echo "gopxe-selftest: grub.cfg dispatcher, mac $net_default_mac, prefix $prefix"
h='([0-9a-fA-F][0-9a-fA-F])'
if regexp --set=1:m1 --set=2:m2 --set=3:m3 --set=4:m4 --set=5:m5 --set=6:m6 "^$h:$h:$h:$h:$h:$h\$" "$net_default_mac"; then
    echo "gopxe-selftest: configfile $prefix/grub.cfg-01-$m1-$m2-$m3-$m4-$m5-$m6"
    configfile "$prefix/grub.cfg-01-$m1-$m2-$m3-$m4-$m5-$m6"
fi
echo "gopxe-selftest: unknown machine, exit"
exit
EOF
# grub_machine MAC LINUX INITRD ARGS: the per-machine GRUB config.
grub_machine() {
    local m=${1,,}
    cat >"$TFTP/grub/grub.cfg-01-${m//:/-}" <<EOF
echo "gopxe-selftest: per-machine config for $m"
linux /$2 $4
initrd /$3
boot
EOF
}

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

# start_dnsmasq X64-EFI-LOADER [IPXE-ALWAYS]: authoritative DHCP on br0 +
# TFTP; loader by client architecture (option 93: 7/9 x64 UEFI, 11 arm64
# UEFI, else BIOS). 175.176=1 tells iPXE not to wait for proxyDHCP offers;
# options 3 and 6 keep debian-installer from asking for a route and a name
# server. dnsmasq has one loader per tag, so a case that needs another one
# restarts it. IPXE-ALWAYS=1: iPXE gets the HTTP script whatever its arch.
DNSMASQ_PID=""
start_dnsmasq() {
    local efi=$1 ipxe_tag=tag:efi,
    [ "${2:-0}" = 1 ] && ipxe_tag=""
    [ -n "$DNSMASQ_PID" ] && stop_pid "$DNSMASQ_PID"
    bg_in_ns "$E2E_WORK/dnsmasq.log.$efi" dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --user=root --group=root --port=0 --log-facility=- --log-dhcp \
        --interface=br0 --bind-interfaces --except-interface=lo \
        --dhcp-range=10.99.0.100,10.99.0.200,255.255.255.0,1h \
        --dhcp-leasefile="$E2E_WORK/dnsmasq.leases" --dhcp-authoritative \
        --enable-tftp --tftp-root="$TFTP" \
        --dhcp-option=encap:175,176,1b \
        --dhcp-option=3,"$IP" --dhcp-option=6,"$IP" \
        --dhcp-userclass=set:ipxe,iPXE \
        --dhcp-match=set:efi,option:client-arch,7 \
        --dhcp-match=set:efi,option:client-arch,9 \
        --dhcp-match=set:arm64,option:client-arch,11 \
        --dhcp-boot="tag:ipxe,$ipxe_tag$BASE/boot.ipxe" \
        --dhcp-boot=tag:!ipxe,tag:efi,"$efi" \
        --dhcp-boot=tag:!ipxe,tag:arm64,grubaa64.efi \
        --dhcp-boot=tag:!efi,tag:!arm64,pxelinux.0
    DNSMASQ_PID=$BG_PID
    ln -sfn "dnsmasq.log.$efi" "$E2E_WORK/dnsmasq.log"
    wait_port_in_ns udp "$IP:67" 10 \
        || { cat "$E2E_WORK/dnsmasq.log.$efi" >&2; e2e_die "dnsmasq did not start"; }
    kill -0 "$DNSMASQ_PID" || e2e_die "dnsmasq exited"
}
start_dnsmasq "${E2E_UEFI_LOADER:-syslinux.efi}"
bg_in_ns "$E2E_WORK/http.log" /usr/bin/python3 "$E2E_DIR/httpd.py" "$IP" "$HTTP_PORT" "$WWW"
wait_port_in_ns tcp "$IP:$HTTP_PORT" 10 || { cat "$E2E_WORK/http.log" >&2; e2e_die "httpd did not start"; }

# selftest_denied NAME: Secure Boot refused the (unsigned) loader and
# nothing after it ran. Sets DENIED to what was seen.
selftest_denied() {
    local name=$1 rc=0
    wait_for_marker "${VM_LOG[$name]}" "$SB_DENIED_RE|GOPXE-INITRD|Linux version|iPXE initiali" 120 "$name" || rc=$?
    sleep 3; vm_kill "$name"
    if serial_has "${VM_LOG[$name]}" 'GOPXE-INITRD|Linux version|iPXE initiali'; then
        DENIED="the unsigned loader ran"; return 1
    fi
    if [ "$rc" -ne 0 ]; then DENIED="no refusal seen on the console"; return 1; fi
    DENIED=$(serial_text "${VM_LOG[$name]}" | grep -aoE "$SB_DENIED_RE" | head -1)
    e2e_log "$name: refused after ${MARKER_SECS}s: $DENIED"
    return 0
}

# selftest_arm64 NAME MAC: AAVMF -> grubaa64.efi -> per-machine GRUB config
# -> Debian 12's arm64 installer, which must fetch /preseed.cfg.
selftest_arm64() {
    local name=$1 mac=$2 t=${E2E_ARM64_TIMEOUT:-600} rc=0 end secs
    debian_installer arm64 "$TFTP/e2e-debian12-arm64" || { ARM64_RESULT="no installer"; return 1; }
    printf 'd-i debian-installer/locale string en_US.UTF-8\n' >"$WWW/preseed.cfg"
    grub_machine "$mac" e2e-debian12-arm64/linux e2e-debian12-arm64/initrd.gz \
        "auto=true priority=critical url=$BASE/preseed.cfg console=ttyAMA0 ---"
    E2E_MEM=1024 boot_arm64 "$name" "$mac" "$UUID" "$t"
    end=$(($(date +%s) + t))
    while [ "$(date +%s)" -lt "$end" ]; do
        _timeline "$name"
        grep -aq 'GET /preseed.cfg' "$E2E_WORK/http.log" && break
        vm_running "$name" || { rc=2; break; }
        sleep 1
    done
    secs=$(elapsed "${VM_START[$name]}")
    vm_kill "$name"
    if grep -aq 'GET /preseed.cfg' "$E2E_WORK/http.log"; then
        ARM64_RESULT="${secs}s to the preseed fetch"
        record_time "${SCENARIO:-selftest-dnsmasq}" "$secs" arm64
        return 0
    fi
    ARM64_RESULT="no preseed fetch after ${secs}s (rc $rc)"
    report_failure "$E2E_WORK/dnsmasq.log" "${VM_LOG[$name]}"
    return 1
}

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
            start_dnsmasq ipxe.efi 1
            boot_uefi "$name" "$mac" "$UUID" "$BOOT_TIMEOUT" ;;
        uefi-sb)
            [ -f "$TFTP/shimx64.efi" ] || e2e_die "no shimx64.efi in $E2E_IMAGES"
            start_dnsmasq shimx64.efi
            grub_machine "$mac" e2e/vmlinuz e2e/initrd.img "$CMDLINE"
            boot_uefi_sb "$name" "$mac" "$UUID" "$BOOT_TIMEOUT" ;;
        uefi-sb-deny)
            start_dnsmasq ipxe.efi
            boot_uefi_sb "$name" "$mac" "$UUID" 120
            if selftest_denied "$name"; then RESULT[$c]="PASS refused: $DENIED"; else
                RESULT[$c]="FAIL ($DENIED)"; fails=$((fails + 1)); fi
            continue ;;
        arm64)
            if selftest_arm64 "$name" "$mac"; then RESULT[$c]="PASS $ARM64_RESULT"; else
                RESULT[$c]="FAIL ($ARM64_RESULT)"; fails=$((fails + 1)); fi
            continue ;;
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
