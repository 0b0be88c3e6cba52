# shellcheck shell=bash disable=SC2034
# tests/e2e/lib.sh — helpers for gopxe's end-to-end tests on real firmware.
#
# Source it from a scenario script (bash, `set -euo pipefail`). It gives:
#   need_root, install_packages, kvm_args,
#   ns_setup / ns_teardown / e2e_cleanup (trap), run_in_ns, bg_in_ns, stop_pid,
#   boot_bios / boot_uefi / boot_uefi_sb / boot_arm64 (QEMU in the namespace,
#   bounded by `timeout`),
#   wait_for_marker, vm_wait, vm_kill, report_failure, record_time.
#
# All traffic stays inside the network namespace $E2E_NS (bridge br0 with
# $E2E_SERVER_IP/24 and taps tap0..tapN-1 on it). Nothing is sent anywhere
# else. e2e_cleanup kills only the PIDs this shell started and deletes the
# namespace; it runs on EXIT/INT/TERM once e2e_init has been called.
#
# Exit codes: 0 pass, 1 fail, 77 skip (automake convention) — E2E_SKIP.

E2E_SKIP=77
E2E_DIR=${E2E_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
E2E_ROOT=${E2E_ROOT:-$(cd "$E2E_DIR/../.." && pwd)}
E2E_IMAGES=${E2E_IMAGES:-$E2E_ROOT/images}
E2E_NS=${E2E_NS:-gopxe-e2e-$$}
E2E_SERVER_IP=${E2E_SERVER_IP:-10.99.0.1}
E2E_PREFIX=${E2E_PREFIX:-24}
E2E_TAPS=${E2E_TAPS:-2}
E2E_MEM=${E2E_MEM:-384}
OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
# Secure Boot: the secboot build (SMM-protected variables) and vars with
# Microsoft's keys enrolled and Secure Boot on (package ovmf).
OVMF_SB_CODE=${OVMF_SB_CODE:-/usr/share/OVMF/OVMF_CODE_4M.secboot.fd}
OVMF_SB_VARS=${OVMF_SB_VARS:-/usr/share/OVMF/OVMF_VARS_4M.ms.fd}
# arm64 UEFI (package qemu-efi-aarch64): no Secure Boot keys in these vars.
AAVMF_CODE=${AAVMF_CODE:-/usr/share/AAVMF/AAVMF_CODE.fd}
AAVMF_VARS=${AAVMF_VARS:-/usr/share/AAVMF/AAVMF_VARS.fd}
IPXE_ROM_DIR=${IPXE_ROM_DIR:-/usr/lib/ipxe/qemu}

E2E_PIDS=()            # every background PID we started (servers, QEMU)
declare -gA VM_PID=() VM_LOG=() VM_START=()
E2E_NS_CREATED=0

e2e_log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
e2e_die()  { printf '[%s] FAIL: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }
now()      { date +%s.%N; }
elapsed()  { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# ---- prerequisites ----------------------------------------------------------

# need_root: skip loudly (exit 77) when not root; never a silent pass.
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        {
            echo "##################################################################"
            echo "## SKIP: gopxe end-to-end tests need root (network namespaces,"
            echo "##       tap devices, QEMU). Nothing was tested. Re-run as root."
            echo "##################################################################"
        } >&2
        exit "$E2E_SKIP"
    fi
    local t
    for t in ip timeout; do
        command -v "$t" >/dev/null || { echo "SKIP: '$t' not found" >&2; exit "$E2E_SKIP"; }
    done
}

E2E_PACKAGES=(qemu-system-x86 ipxe-qemu ovmf pxelinux syslinux-common syslinux-efi ipxe
              busybox-static dnsmasq-base cpio kmod xz-utils iproute2 curl python3 procps
              qemu-system-arm qemu-efi-aarch64 sbsigntool gpgv debian-archive-keyring)

# install_packages [extra pkgs...]: apt-get install what is missing (root only).
install_packages() {
    local missing=() p
    for p in "${E2E_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    e2e_log "installing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends "${missing[@]}" >&2; then
        timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -q >&2 || true
        timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends "${missing[@]}" >&2
    fi
}

# kvm_args: KVM only with a hardware KVM module loaded (kvm_intel/kvm_amd);
# a software-only /dev/kvm (kvm_pvm) hangs iPXE and OVMF. E2E_ACCEL overrides.
kvm_args() {
    if [ -n "${E2E_ACCEL:-}" ]; then echo "-accel $E2E_ACCEL"; return; fi
    local mods=""
    if command -v lsmod >/dev/null 2>&1; then mods=$(lsmod 2>/dev/null)
    elif [ -r /proc/modules ]; then mods=$(cat /proc/modules); fi
    # /sys/module also shows modules built into the kernel, and is there
    # where lsmod and /proc/modules are not.
    if [ -w /dev/kvm ] && { grep -Eq '^(kvm_intel|kvm_amd)[[:space:]]' <<<"$mods" \
            || [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
        echo "-accel kvm -cpu host"
    else
        echo "-accel tcg"
    fi
}
accel_name() { case "$(kvm_args)" in *kvm*) echo kvm ;; *) echo tcg ;; esac; }

# ---- work dir, namespace, processes -----------------------------------------

# e2e_init: make the work dir, install the cleanup trap.
e2e_init() {
    E2E_WORK=${E2E_WORK:-$(mktemp -d /tmp/gopxe-e2e.XXXXXX)}
    mkdir -p "$E2E_WORK"
    E2E_TIMES=${E2E_TIMES:-$E2E_WORK/times.tsv}
    trap 'e2e_cleanup' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    e2e_log "work dir $E2E_WORK, namespace $E2E_NS, accel $(accel_name)"
}

# ns_setup [NTAPS]: namespace with lo up, bridge br0 = server, taps on it.
ns_setup() {
    local n=${1:-$E2E_TAPS} i
    ip netns add "$E2E_NS"
    E2E_NS_CREATED=1
    ip -n "$E2E_NS" link set lo up
    ip -n "$E2E_NS" link add br0 type bridge forward_delay 0 stp_state 0
    # no IPv6 on the bridge: nothing answers router solicitations anyway
    ip netns exec "$E2E_NS" sysctl -qw net.ipv6.conf.br0.disable_ipv6=1 2>/dev/null || true
    ip -n "$E2E_NS" addr add "$E2E_SERVER_IP/$E2E_PREFIX" dev br0
    ip -n "$E2E_NS" link set br0 up
    for ((i = 0; i < n; i++)); do
        ip -n "$E2E_NS" tuntap add dev "tap$i" mode tap
        ip -n "$E2E_NS" link set "tap$i" master br0
        ip -n "$E2E_NS" link set "tap$i" up
    done
    e2e_log "namespace $E2E_NS: br0 $E2E_SERVER_IP/$E2E_PREFIX, tap0..tap$((n - 1))"
}

# lab_ns_setup [IP]: a second namespace "$E2E_NS-lab" standing for another
# host on the lab network (e.g. the lab's own DHCP server), joined to br0 by
# a veth pair; its side lab0 gets IP (default 10.99.0.2). Run things there
# with run_in_lab / bg_in_lab. Its sockets never clash with gopxe's.
E2E_LAB_NS=""
lab_ns_setup() {
    local ip=${1:-10.99.0.2}
    E2E_LAB_NS=$E2E_NS-lab
    ip netns add "$E2E_LAB_NS"
    ip -n "$E2E_LAB_NS" link set lo up
    ip -n "$E2E_NS" link add vlab type veth peer name lab0 netns "$E2E_LAB_NS"
    ip -n "$E2E_NS" link set vlab master br0
    ip -n "$E2E_NS" link set vlab up
    ip -n "$E2E_LAB_NS" addr add "$ip/$E2E_PREFIX" dev lab0
    ip -n "$E2E_LAB_NS" link set lab0 up
    e2e_log "lab host namespace $E2E_LAB_NS: lab0 $ip on br0"
}
run_in_lab() { ip netns exec "$E2E_LAB_NS" "$@"; }
bg_in_lab() {
    local logf=$1; shift
    ip netns exec "$E2E_LAB_NS" "$@" >"$logf" 2>&1 </dev/null &
    BG_PID=$!
    E2E_PIDS+=("$BG_PID")
}

ns_teardown() {
    if [ -n "$E2E_LAB_NS" ]; then
        ip netns del "$E2E_LAB_NS" 2>/dev/null || true
        E2E_LAB_NS=""
    fi
    if [ "$E2E_NS_CREATED" = 1 ]; then
        ip netns del "$E2E_NS" 2>/dev/null || true
        E2E_NS_CREATED=0
    fi
}

run_in_ns() { ip netns exec "$E2E_NS" "$@"; }

# bg_in_ns LOG CMD...: start CMD in the namespace in the background, output
# to LOG; sets BG_PID and remembers it for cleanup.
bg_in_ns() {
    local logf=$1; shift
    ip netns exec "$E2E_NS" "$@" >"$logf" 2>&1 </dev/null &
    BG_PID=$!
    E2E_PIDS+=("$BG_PID")
}

# stop_pid PID: TERM, wait up to 5 s, then KILL. Only for PIDs we started.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

e2e_cleanup() {
    local rc=$? pid
    trap - EXIT
    for pid in "${E2E_PIDS[@]}"; do stop_pid "$pid"; done
    E2E_PIDS=()
    ns_teardown
    if [ "$rc" -eq 0 ] && [ -z "${E2E_KEEP:-}" ] && [ -n "${E2E_WORK:-}" ] \
            && [ -z "${E2E_WORK_KEEP:-}" ]; then
        rm -rf "$E2E_WORK"
    elif [ -n "${E2E_WORK:-}" ]; then
        e2e_log "logs kept in $E2E_WORK"
    fi
    exit "$rc"
}

# wait_port_in_ns PROTO ADDR:PORT TIMEOUT: wait until something listens on
# ADDR:PORT or on the wildcard address with that port (PROTO tcp or udp).
wait_port_in_ns() {
    local proto=$1 ap=$2 t=$3 end
    end=$(($(date +%s) + t))
    while [ "$(date +%s)" -lt "$end" ]; do
        if run_in_ns ss -Hln"${proto:0:1}" 2>/dev/null | awk '{print $4}' \
                | sed -e 's/%[^:]*:/:/' -e 's/^\*:/0.0.0.0:/' \
                | grep -E "^$(sed 's/\./\\./g' <<<"$ap")\$|^0\.0\.0\.0:${ap##*:}\$" >/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# start_ra_helper: answer IPv6 router solicitations on br0 (a ULA prefix,
# inside the namespace only). iPXE waits ~13 s for a router advertisement
# before it finishes configuring; with one answered it goes on at once.
# Uses a second dnsmasq in RA-only mode (no DHCPv4, no DNS, no TFTP), so it
# coexists with gopxe or another DHCP server. E2E_RA=0 disables it.
start_ra_helper() {
    [ "${E2E_RA:-1}" = 0 ] && return 0
    run_in_ns sysctl -qw net.ipv6.conf.br0.disable_ipv6=0
    ip -n "$E2E_NS" addr add fd99:e2e::1/64 dev br0 nodad
    bg_in_ns "$E2E_WORK/ra.log" dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --user=root --group=root --port=0 --log-facility=- --pid-file= \
        --interface=br0 --bind-interfaces --except-interface=lo \
        --dhcp-leasefile="$E2E_WORK/ra.leases" \
        --enable-ra --ra-param=br0,10,1800 --dhcp-range=::,constructor:br0,ra-only,64,1h
    RA_PID=$BG_PID
    e2e_log "IPv6 RA helper on br0 (pid $RA_PID)"
}

# ---- QEMU machines ---------------------------------------------------------

# _vm_start NAME TIMEOUT QEMU-ARGS...: launch QEMU in the namespace, serial
# console to $E2E_WORK/NAME.serial, bounded by `timeout`. VM_QEMU (default
# qemu-system-x86_64), VM_ACCEL (default: kvm_args) and VM_BOOT (default: the
# PC's network-first boot order) may be set for one call (boot_arm64 does).
_vm_start() {
    local name=$1 t=$2; shift 2
    local logf=$E2E_WORK/$name.serial
    local qemu=${VM_QEMU:-qemu-system-x86_64} accel=${VM_ACCEL:-$(kvm_args)}
    local boot=${VM_BOOT-"-boot order=n,reboot-timeout=0"}
    : >"$logf"
    printf '%s\n' "$qemu $accel $boot $*" >"$E2E_WORK/$name.cmd"
    VM_START[$name]=$(now)
    # shellcheck disable=SC2086
    ip netns exec "$E2E_NS" timeout -k 5 "$t" "$qemu" $accel \
        -name "$name" -m "$E2E_MEM" -smp 1 \
        -display none -monitor none -serial "file:$logf" \
        $boot -no-reboot \
        "$@" >"$E2E_WORK/$name.qemu.log" 2>&1 </dev/null &
    VM_PID[$name]=$!
    VM_LOG[$name]=$logf
    E2E_PIDS+=("$!")
    e2e_log "power on $name (pid $!, serial $logf)"
}

# boot_bios NAME MAC UUID TIMEOUT [NIC] [TAP]
#   SeaBIOS + iPXE PXE ROM. NIC: virtio (default; pxe-virtio.rom needs
#   disable-legacy=on) or e1000 (pxe-e1000.rom).
boot_bios() {
    local name=$1 mac=$2 uuid=$3 t=$4 nic=${5:-virtio} tap=${6:-${E2E_TAP:-tap0}} dev
    case $nic in
        virtio) dev="virtio-net-pci,netdev=n0,mac=$mac,romfile=$IPXE_ROM_DIR/pxe-virtio.rom,disable-legacy=on,bootindex=1" ;;
        e1000)  dev="e1000,netdev=n0,mac=$mac,romfile=$IPXE_ROM_DIR/pxe-e1000.rom,bootindex=1" ;;
        *) e2e_die "boot_bios: unknown NIC $nic" ;;
    esac
    _vm_start "$name" "$t" -machine pc,graphics=off \
        -smbios "type=1,uuid=$uuid" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
        -device "$dev"
}

# boot_uefi NAME MAC UUID TIMEOUT [TAP]
#   OVMF (4M) with a private copy of the vars; virtio-net driven by OVMF's own
#   network stack (no iPXE option ROM: romfile=). OVMF does not drive e1000.
boot_uefi() {
    local name=$1 mac=$2 uuid=$3 t=$4 tap=${5:-${E2E_TAP:-tap0}}
    local vars=$E2E_WORK/$name.OVMF_VARS.fd
    cp -f "$OVMF_VARS" "$vars"
    _vm_start "$name" "$t" -machine q35,graphics=off \
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE" \
        -drive "if=pflash,format=raw,unit=1,file=$vars" \
        -smbios "type=1,uuid=$uuid" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1"
}

# boot_uefi_sb NAME MAC UUID TIMEOUT [TAP]
#   OVMF with Secure Boot enforced: the secboot build (needs SMM, and the
#   flash locked to SMM with cfi.pflash01's secure=on) and a private copy of
#   the vars with Microsoft's keys enrolled (db: Microsoft UEFI CA 2011, which
#   signed shim). An unsigned EFI image (ipxe.efi, syslinux.efi) is refused.
boot_uefi_sb() {
    local name=$1 mac=$2 uuid=$3 t=$4 tap=${5:-${E2E_TAP:-tap0}}
    local vars=$E2E_WORK/$name.OVMF_VARS.fd
    cp -f "$OVMF_SB_VARS" "$vars"
    _vm_start "$name" "$t" -machine q35,smm=on,graphics=off \
        -global driver=cfi.pflash01,property=secure,value=on \
        -global ICH9-LPC.disable_s3=1 \
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_SB_CODE" \
        -drive "if=pflash,format=raw,unit=1,file=$vars" \
        -smbios "type=1,uuid=$uuid" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1"
}

# boot_arm64 NAME MAC UUID TIMEOUT [TAP]
#   arm64 UEFI: qemu-system-aarch64 -M virt -cpu max (always TCG here) with
#   AAVMF and a private copy of its vars; virtio-net-pci driven by AAVMF's own
#   network stack (PXE option 93 = 11). Serial = the PL011 (ttyAMA0).
#   pauth-impdef=on: QEMU's cheaper pointer-authentication algorithm (the
#   architected QARMA one is very slow under TCG); E2E_ARM64_CPU overrides.
boot_arm64() {
    local name=$1 mac=$2 uuid=$3 t=$4 tap=${5:-${E2E_TAP:-tap0}}
    local vars=$E2E_WORK/$name.AAVMF_VARS.fd
    cp -f "$AAVMF_VARS" "$vars"
    VM_QEMU=qemu-system-aarch64 VM_ACCEL="-accel tcg" VM_BOOT="" \
    _vm_start "$name" "$t" -machine virt -cpu "${E2E_ARM64_CPU:-max,pauth-impdef=on}" \
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$AAVMF_CODE" \
        -drive "if=pflash,format=raw,unit=1,file=$vars" \
        -smbios "type=1,uuid=$uuid" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1"
}

# debian_installer ARCH DEST: put Debian 12's netboot installer kernel and
# initrd for ARCH (amd64 | arm64) as DEST/linux and DEST/initrd.gz. From the
# package debian-installer-12-netboot-ARCH (Architecture: all, so apt on
# amd64 downloads the arm64 one too): `apt-get download` once into the cache
# (E2E_CACHE, default .e2e-cache/), `dpkg-deb -x`, never installed; the
# text variant (text/debian-installer/ARCH/{linux,initrd.gz}). Sets DI_VERSION.
debian_installer() {
    local arch=$1 dest=$2 pkg=debian-installer-12-netboot-$1 cache tmp src f
    cache=${E2E_CACHE:-$E2E_ROOT/.e2e-cache}/debian-installer-12
    [ "$arch" = amd64 ] || cache=$cache-$arch
    if [ ! -s "$cache/linux" ] || [ ! -s "$cache/initrd.gz" ]; then
        mkdir -p "$cache"
        tmp=$(mktemp -d "$cache/.x.XXXXXX")
        e2e_log "downloading $pkg (apt-get download, not installed)"
        if ! (cd "$tmp" && timeout 900 apt-get download -q "$pkg" >&2); then
            timeout 300 apt-get update -q >&2 || true
            (cd "$tmp" && timeout 900 apt-get download -q "$pkg" >&2) || { rm -rf "$tmp"; return 1; }
        fi
        dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
        dpkg-deb -f "$tmp"/"$pkg"_*.deb Version >"$tmp/VERSION"
        src=$(find "$tmp/x" -path "*/text/debian-installer/$arch" -type d | head -1)
        [ -n "$src" ] || { rm -rf "$tmp"; e2e_log "$pkg has no text/debian-installer/$arch"; return 1; }
        mv "$src/linux" "$src/initrd.gz" "$tmp/"
        mv "$tmp/VERSION" "$tmp/linux" "$tmp/initrd.gz" "$cache/"
        rm -rf "$tmp"
    fi
    DI_VERSION=$(cat "$cache/VERSION" 2>/dev/null || echo unknown)
    mkdir -p "$dest"
    for f in linux initrd.gz; do
        cmp -s "$cache/$f" "$dest/$f" || cp "$cache/$f" "$dest/$f"
    done
}

# OVMF's words when Secure Boot refuses an image (DxeImageVerificationLib /
# the boot manager); matched on the serial log.
SB_DENIED_RE=${E2E_SB_DENIED_RE:-Access Denied|Security Violation|not trusted|verification failed|SECURITY_VIOLATION}

# serial_text FILE: the serial log without ANSI escapes and CRs.
serial_text() {
    sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[()][A-Z0-9]//g' "$1" 2>/dev/null | tr -d '\r\000'
}

# serial_has FILE ERE: the cleaned serial log matches. (No `| grep -q` on
# big logs: grep exiting early + pipefail gives false negatives.)
serial_has() { local t; t=$(serial_text "$1"); grep -Eq -- "$2" <<<"$t"; }

# wait_for_marker FILE PATTERN TIMEOUT [NAME]
#   Poll FILE (serial log) for the extended regex PATTERN. With NAME (a VM),
#   stop early when that QEMU has exited, and set MARKER_SECS to the time
#   from its power-on. Returns 0 found, 1 timeout, 2 VM exited without it.
wait_for_marker() {
    local f=$1 pat=$2 t=$3 name=${4:-} end
    MARKER_SECS=""
    end=$(($(date +%s) + t))
    while :; do
        [ -n "$name" ] && _timeline "$name"
        if serial_has "$f" "$pat"; then
            [ -n "$name" ] && MARKER_SECS=$(elapsed "${VM_START[$name]}")
            return 0
        fi
        if [ -n "$name" ] && ! kill -0 "${VM_PID[$name]}" 2>/dev/null; then
            serial_has "$f" "$pat" && {
                MARKER_SECS=$(elapsed "${VM_START[$name]}"); return 0; }
            return 2
        fi
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.2
    done
}

# _timeline NAME: append the serial lines that appeared since the last call
# to $E2E_WORK/NAME.timeline, each prefixed with seconds since power-on
# (resolution: the 0.2 s poll of wait_for_marker / vm_wait).
declare -gA _TL_SEEN=()
_timeline() {
    local name=$1 logf=${VM_LOG[$1]} n old t
    old=${_TL_SEEN[$name]:-0}
    n=$(serial_text "$logf" | wc -l)
    [ "$n" -le "$old" ] && return 0
    t=$(elapsed "${VM_START[$name]}")
    serial_text "$logf" | sed -n "$((old + 1)),${n}p" | grep -av '^[[:space:]]*$' \
        | sed "s/^/[+${t}s] /" >>"$E2E_WORK/$name.timeline" || true
    _TL_SEEN[$name]=$n
}

# vm_wait NAME TIMEOUT: wait for QEMU to exit by itself (guest power-off);
# kill it after TIMEOUT. Returns 0 if it exited by itself.
vm_wait() {
    local name=$1 t=$2 pid=${VM_PID[$1]} end
    end=$(($(date +%s) + t))
    while kill -0 "$pid" 2>/dev/null; do
        _timeline "$name"
        if [ "$(date +%s)" -ge "$end" ]; then stop_pid "$pid"; _timeline "$name"; return 1; fi
        sleep 0.2
    done
    wait "$pid" 2>/dev/null || true
    _timeline "$name"
    return 0
}
vm_kill() { stop_pid "${VM_PID[$1]}"; _timeline "$1"; }
vm_running() { kill -0 "${VM_PID[$1]}" 2>/dev/null; }

# ---- reporting -------------------------------------------------------------

# report_failure SERVER_LOG SERIAL_LOG [N]: where did the boot stop?
report_failure() {
    local slog=$1 serial=$2 n=${3:-25}
    {
        echo "------------------------------------------------------------------"
        echo "BOOT FAILED. Last DHCP/TFTP/HTTP steps in $slog:"
        if [ -f "$slog" ]; then
            grep -aiE 'dhcp|tftp|http|pxe|offer|ack|discover|request|sent|GET|POST|kickstart|done|error|warn|panic' \
                "$slog" | tail -n "$n" | sed 's/^/  | /'
        else
            echo "  (no server log)"
        fi
        echo "Tail of the serial console $serial:"
        if [ -f "${serial%.serial}.timeline" ]; then
            tail -n "$n" "${serial%.serial}.timeline" | sed 's/^/  > /'
        elif [ -f "$serial" ]; then
            serial_text "$serial" | grep -av '^[[:space:]]*$' | tail -n "$n" | sed 's/^/  > /'
        else
            echo "  (no serial log)"
        fi
        echo "------------------------------------------------------------------"
    } >&2
}

# record_time LABEL SECONDS [NOTE]: power-on -> marker, kept for the summary.
record_time() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$(accel_name)" "${3:-}" >>"$E2E_TIMES"
    e2e_log "TIME $1: ${2}s power-on -> marker ($(accel_name))"
}

# kickstart_text SERIAL_LOG: the text printed between the kickstart markers.
kickstart_text() {
    serial_text "$1" | sed -n '/=== GOPXE KICKSTART BEGIN ===/,/=== GOPXE KICKSTART END ===/p'
}

MARK_KS_END='=== GOPXE KICKSTART END ==='
MARK_KS_FAIL='=== GOPXE KICKSTART FAILED'
MARK_DONE='=== GOPXE DONE [^ ]+ ==='
# Console lines that mean the boot is dead: fail at once instead of waiting.
# OVMF/AAVMF starting its set-up menu ("UiApp") means every boot option failed.
BOOT_FAIL_RE=${E2E_BOOT_FAIL_RE:-Failed to load|Boot failed|No bootable device|Kernel panic|Could not boot|No configuration methods succeeded|PXE-E[0-9]+|Unable to locate configuration file|starting Boot[0-9A-F]+ .UiApp.}
