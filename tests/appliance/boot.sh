#!/usr/bin/env bash
# boot.sh — boot the appliance image (scripts/build-appliance-image.sh) in
# QEMU inside a network namespace and wait until gopxe answers on its static
# address: BusyBox init -> rcS -> S30gopxe-data (mounts an ext4 disk labelled
# GOPXE-DATA) -> S50gopxe -> supervise -> gopxe serve.
#
# Then: the firmware's boot loaders are served over HTTP, an API write is
# made, a second QEMU machine (SeaBIOS + iPXE ROM, on tap1 of the same
# bridge) network-boots from the appliance VM (its authoritative DHCP, TFTP
# and HTTP) to the kickstart marker, QEMU is killed (a power cut), the
# appliance boots again from the same data disk and the record is still
# there; on its serial console `gopxe console` shows the status, changes the
# DHCP mode (applied without a reboot), and is left for a login. Prints
# boot-to-serving seconds (QEMU start -> first 200 from GET /health) of both
# boots and the client's power-on-to-kickstart-marker seconds.
#
#   sudo tests/appliance/boot.sh
#
# Topology: namespace gopxe-appl-<pid>; bridge br0 = 10.98.0.1/24; tap0 on
# it for the appliance VM (10.98.0.2/24 from the kernel command line,
# gopxe.ip=; authoritative DHCP 10.98.0.100-200 on its eth0), tap1 for the
# client VM. Nothing leaves the namespace; the trap kills only the QEMU
# processes started here and deletes the namespace.
#
# Environment:
#   APPLIANCE_BOOT_TIMEOUT=S     per boot (default 240 under TCG, 90 with KVM)
#   APPLIANCE_KEEP=1             keep the work dir (logs, serial output)
#   APPLIANCE_CLIENT=0           no client VM (default: boot one; the e2e
#                                kernel and initrd come from scripts/fetch-images.sh)
#   APPLIANCE_CLIENT_TIMEOUT=S   client power-on to kickstart marker (default
#                                300 under TCG, 120 with KVM)
#   APPLIANCE_CLIENT_HOOK=FILE   run FILE (bash) instead of the built-in client
#                                VM, with the appliance serving; see client_hook
#
# Exit: 0 pass, 1 fail, 77 skip (not root).
set -Eeuo pipefail
cd "$(dirname "$0")/../.."

say() { printf 'appliance-boot: %s\n' "$*"; }
fail() { printf 'appliance-boot: FAIL: %s\n' "$*" >&2; FAILED=1; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    echo "appliance-boot: SKIP: needs root (network namespace, tap, QEMU) — run it with sudo" >&2
    exit 77
fi

# ---- packages ---------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 \
        install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
        { timeout 300 apt-get update -q >/dev/null &&
          DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 \
              install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi

# ---- KVM only when a hardware KVM module is loaded (else TCG) -------------------
ACCEL=tcg
if [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; then
    [ -w /dev/kvm ] && ACCEL=kvm
fi
if [ "$ACCEL" = kvm ]; then BOOT_TIMEOUT=${APPLIANCE_BOOT_TIMEOUT:-90}; else BOOT_TIMEOUT=${APPLIANCE_BOOT_TIMEOUT:-240}; fi

WORK=$(mktemp -d /tmp/gopxe-appliance-boot.XXXXXX)
NS=gopxe-appl-$$
TOKEN=appliance-boot-test-$$
SERVER=10.98.0.2
HOSTIP=10.98.0.1
URL=http://$SERVER:9090
QEMU_PIDS=()
FAILED=0
CLIENT=${APPLIANCE_CLIENT:-1}
[ -n "${APPLIANCE_CLIENT_HOOK:-}" ] && CLIENT=0
CLIENT_SECONDS=
MODE1=off   # the appliance's DHCP mode (authoritative for the client VM)
[ "$CLIENT" = 1 ] && MODE1=authoritative

# The end-to-end harness (boot_bios, wait_for_marker, ...) for the client VM;
# its QEMU processes are in E2E_PIDS, stopped by cleanup below.
E2E_NS=$NS
E2E_WORK=$WORK
E2E_TAP=tap1
E2E_TIMES=$WORK/times.tsv
# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh

cleanup() {
    local p
    for p in "${E2E_PIDS[@]}"; do stop_pid "$p"; done
    for p in "${QEMU_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    ip netns del "$NS" 2>/dev/null || true
    if [ "$FAILED" -ne 0 ] || [ "${APPLIANCE_KEEP:-0}" = 1 ]; then
        say "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'FAILED=1' ERR

# ---- image with a known API token -------------------------------------------
build_env=()
if [ "$CLIENT" = 1 ]; then
    # The client's kernel and initrd in the appliance's images tree, and a
    # configuration with authoritative DHCP on the appliance's eth0.
    if [ ! -f images/e2e/initrd.img ] || [ ! -f images/e2e/vmlinuz ]; then
        say "fetching the e2e kernel and initrd (scripts/fetch-images.sh)"
        timeout 1200 scripts/fetch-images.sh >"$WORK/fetch-images.log" 2>&1 ||
            { tail -20 "$WORK/fetch-images.log" >&2; fail "scripts/fetch-images.sh failed"; }
    fi
    mkdir -p "$WORK/extra/e2e"
    cp images/e2e/vmlinuz images/e2e/initrd.img "$WORK/extra/e2e/"
    sed -e '/^dhcp_mode/d' buildroot-overlay/etc/gopxe/gopxe.toml >"$WORK/appliance.toml"
    printf '\n# boot.sh: the client VM boots from the appliance.\ndhcp_mode = "authoritative"\ndhcp_range = ["10.98.0.100,10.98.0.200,255.255.255.0,1h"]\n' \
        >>"$WORK/appliance.toml"
    build_env=(APPLIANCE_EXTRA_IMAGES="$WORK/extra" APPLIANCE_CONFIG="$WORK/appliance.toml")
fi
say "building the image into $WORK/image (token set for the test${build_env:+, authoritative DHCP, e2e kernel and initrd})"
env OUT="$WORK/image" APPLIANCE_API_TOKEN="$TOKEN" "${build_env[@]}" scripts/build-appliance-image.sh >"$WORK/build.log" 2>&1 ||
    { tail -20 "$WORK/build.log" >&2; fail "image build failed"; }
grep -E '^(kernel|gopxe|initramfs)' "$WORK/image/MANIFEST" | sed 's/^/appliance-boot:   /'

# ---- namespace: br0 (host side) + tap0 (appliance) --------------------------
ip netns add "$NS"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up
nsx ip link add br0 type bridge
nsx ip addr add "$HOSTIP/24" dev br0
nsx ip link set br0 up
for tap in tap0 tap1; do   # tap0: the appliance; tap1: a client (client_hook)
    nsx ip tuntap add dev "$tap" mode tap
    nsx ip link set "$tap" master br0
    nsx ip link set "$tap" up
done

# ---- persistent data disk -----------------------------------------------------
truncate -s 64M "$WORK/data.img"
mke2fs -q -F -t ext4 -L GOPXE-DATA "$WORK/data.img"

# boot_appliance N [interactive]: starts QEMU (boot N), waits for /health,
# sets BOOT_SECONDS and LAST_PID. Interactive: the serial port is a pipe
# pair (console_send writes to it; a reader copies it to boot<N>.serial).
boot_appliance() {
    local n=$1 serial=$WORK/boot$1.serial t0 t1 pid serial_arg
    serial_arg=file:$serial
    if [ "${2:-}" = interactive ]; then
        mkfifo "$WORK/ser$n.in" "$WORK/ser$n.out"
        cat "$WORK/ser$n.out" >"$serial" &
        QEMU_PIDS+=("$!")
        exec 7<>"$WORK/ser$n.in"   # read-write: never blocks, stays open
        serial_arg=pipe:$WORK/ser$n
    fi
    if nsx curl -fsS --max-time 1 -o /dev/null "$URL/health" 2>/dev/null; then
        fail "boot $n: $URL answers before QEMU started (a previous VM is still running)"
    fi
    t0=$(date +%s.%N)
    # Not through nsx (a function: `&` would fork a subshell): ip netns exec
    # execs QEMU, so $! is QEMU's own PID.
    ip netns exec "$NS" qemu-system-x86_64 -accel "$ACCEL" -m 256 -smp 1 \
        -display none -monitor none -serial "$serial_arg" -no-reboot \
        -kernel "$WORK/image/vmlinuz" -initrd "$WORK/image/initramfs.cpio.gz" \
        -append "console=ttyS0,115200 gopxe.ip=$SERVER/24 panic=-1" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=n0,mac=52:54:00:98:00:02 \
        -drive "file=$WORK/data.img,if=virtio,format=raw" \
        >"$WORK/boot$n.qemu.log" 2>&1 &
    pid=$!
    QEMU_PIDS+=("$pid")
    local deadline=$(($(date +%s) + BOOT_TIMEOUT))
    while :; do
        if nsx curl -fsS --max-time 2 -o "$WORK/health$n.json" "$URL/health" 2>/dev/null; then
            break
        fi
        kill -0 "$pid" 2>/dev/null || { tail -30 "$serial" >&2; fail "boot $n: QEMU exited before gopxe answered"; }
        [ "$(date +%s)" -lt "$deadline" ] || { tail -30 "$serial" >&2; fail "boot $n: no answer from $URL/health within $BOOT_TIMEOUT s"; }
        sleep 0.5
    done
    t1=$(date +%s.%N)
    BOOT_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    LAST_PID=$pid
}

# console_send TEXT: types a line on the interactive serial console.
console_send() { printf '%s\r' "$1" >&7; }
# console_wait N REGEX SECONDS: waits for REGEX in boot N's serial output.
console_wait() {
    local deadline=$(($(date +%s) + $3))
    until grep -qE "$2" "$WORK/boot$1.serial" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$WORK/boot$1.serial" >&2; fail "boot $1: no '$2' on the serial console within $3 s"; }
        sleep 0.3
    done
}

# power_cut PID: kill -9 QEMU (what a pulled plug does to the appliance).
power_cut() {
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    ! kill -0 "$1" 2>/dev/null || fail "QEMU (pid $1) is still running after SIGKILL"
}

# api_post PATH JSON: an API write to the appliance, with the token; fails
# the test unless 2xx.
api_post() {
    local code
    code=$(nsx curl -sS --max-time 20 -o "$WORK/api.out" -w '%{http_code}' -XPOST \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data-binary "$2" "$URL$1") || fail "POST $1 failed"
    case $code in 2??) ;; *) fail "POST $1 answered $code: $(cat "$WORK/api.out")" ;; esac
}

# client_vm: a second machine on tap1 of the same bridge network-boots from
# the appliance VM (its DHCP, TFTP, HTTP) to the kickstart marker. Sets
# CLIENT_SECONDS (power-on to marker).
client_vm() {
    local name=client1 mac=52:54:00:98:00:31 uuid=5a6e8f1c-2b3d-4e5f-8a9b-0c1d2e3f4a31
    local host=client1.appliance.lab t rc=0
    if [ "$ACCEL" = kvm ]; then t=${APPLIANCE_CLIENT_TIMEOUT:-120}; else t=${APPLIANCE_CLIENT_TIMEOUT:-300}; fi
    # the original README's calls (as tests/e2e/gopxe.sh makes them)
    api_post /bootaction/appliance-client '{"default": "linux", "label": "linux", "menu": "e2e",
        "kernel": "e2e/vmlinuz", "ksdevice": "link", "ip": "dhcp", "load_ramdisk": "1",
        "initrd": "e2e/initrd.img"}'
    api_post /pxeboot "{\"bootaction\": \"appliance-client\", \"ksfile\": \"default\",
        \"os\": \"centos-7\", \"version\": \"7.5.1804\", \"hostname\": \"$host\", \"uuid\": \"$uuid\"}"
    say "client VM: boot action and machine $uuid created; powering on (SeaBIOS + iPXE ROM, tap1)"
    boot_bios "$name" "$mac" "$uuid" "$t"
    wait_for_marker "${VM_LOG[$name]}" "$MARK_KS_END|$MARK_KS_FAIL|$BOOT_FAIL_RE" "$t" "$name" || rc=$?
    CLIENT_SECONDS=$MARKER_SECS
    if [ $rc -ne 0 ] || ! serial_has "${VM_LOG[$name]}" "$MARK_KS_END"; then
        vm_kill "$name"
        serial_text "${VM_LOG[$name]}" | grep -av '^[[:space:]]*$' | tail -25 | sed 's/^/  > /' >&2
        fail "client VM: no kickstart marker (wait status $rc) — serial log ${VM_LOG[$name]}"
    fi
    serial_has "${VM_LOG[$name]}" "$MARK_KS_FAIL" && fail "client VM: the initrd could not fetch its kickstart"
    kickstart_text "${VM_LOG[$name]}" >"$WORK/$name.ks"
    grep -q '=== GOPXE KICKSTART BEGIN ===' "$WORK/$name.ks" || fail "client VM: no kickstart begin marker"
    grep -qF "$host" "$WORK/$name.ks" || fail "client VM: the kickstart lacks its hostname $host"
    wait_for_marker "${VM_LOG[$name]}" "$MARK_DONE" 40 "$name" || true
    vm_kill "$name"
    nsx curl -fsS --max-time 20 "$URL/pxeboot/$uuid" >"$WORK/client-machine.json" ||
        fail "client VM: GET /pxeboot/$uuid failed"
    say "client VM: kickstart marker ${CLIENT_SECONDS} s after power-on; machine $(grep -o '"state": *"[a-z]*"' "$WORK/client-machine.json")"
}

# APPLIANCE_CLIENT_HOOK=FILE replaces client_vm: it runs with the appliance
# serving (first boot) and gets NS (the namespace), BRIDGE=br0, CLIENT_TAP=tap1
# (a free tap on br0), SERVER (appliance address), URL (its API), TOKEN (API
# token), WORK (scratch dir); it must exit 0 on success.
client_hook() {
    if [ "$CLIENT" = 1 ]; then client_vm; return; fi
    [ -n "${APPLIANCE_CLIENT_HOOK:-}" ] || { say "client VM: skipped (APPLIANCE_CLIENT=0)"; return 0; }
    say "client VM: running $APPLIANCE_CLIENT_HOOK"
    NS=$NS BRIDGE=br0 CLIENT_TAP=tap1 SERVER=$SERVER URL=$URL TOKEN=$TOKEN WORK=$WORK \
        bash "$APPLIANCE_CLIENT_HOOK" || fail "client hook $APPLIANCE_CLIENT_HOOK failed"
}

say "accel $ACCEL, boot timeout $BOOT_TIMEOUT s, namespace $NS"

# ---- boot 1 -------------------------------------------------------------------
boot_appliance 1
B1=$BOOT_SECONDS
P1=$LAST_PID
say "boot 1: serving after $B1 s: $(tr -s ' \n' ' ' <"$WORK/health1.json")"
grep -q '"status": *"ok"' "$WORK/health1.json" || fail "boot 1: /health is not ok"
# (kernel messages may interleave with the init scripts' lines)
for want in "Loading modules" "mounted /dev/vda (LABEL=GOPXE-DATA) on /var/lib/gopxe" \
    "seeded /var/lib/gopxe/gopxe.toml" "Starting gopxe: "; do
    grep -qF "$want" "$WORK/boot1.serial" || { tail -30 "$WORK/boot1.serial" >&2; fail "boot 1: serial console lacks '$want'"; }
done
if grep -qF "FAIL (see" "$WORK/boot1.serial"; then fail "boot 1: S50gopxe start reported FAIL"; fi
# gopxe console on the serial port finds the service running
console_wait 1 'service    up' 180
say "boot 1: init ran S30gopxe-data (data disk mounted) and S50gopxe"

# the firmware's boot loaders were copied into the images tree
for f in pxelinux.0 ldlinux.c32 syslinux.efi ipxe.efi undionly.kpxe; do
    want=$(stat -c %s "$WORK/image/rootfs/usr/share/gopxe/images/$f")
    got=$(nsx curl -fsS --max-time 20 -o /dev/null -w '%{size_download}' "$URL/images/$f") ||
        fail "GET /images/$f failed"
    [ "$got" = "$want" ] || fail "GET /images/$f: $got bytes, want $want"
done
say "boot 1: boot loaders served over HTTP from /var/lib/gopxe/images"

# an API write (from the bridge, so with the token)
code=$(nsx curl -sS --max-time 20 -o "$WORK/post.out" -w '%{http_code}' -XPOST \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"kernel":"e2e/vmlinuz","initrd":"e2e/initrd.img","ip":"dhcp"}' \
    "$URL/bootaction/survives-reboot") || fail "POST /bootaction failed"
case $code in 2??) ;; *) fail "POST /bootaction/survives-reboot answered $code: $(cat "$WORK/post.out")" ;; esac
code=$(nsx curl -sS --max-time 20 -o /dev/null -w '%{http_code}' -XPOST \
    -d '{"kernel":"x"}' "$URL/bootaction/no-token") || true
[ "$code" = 401 ] || fail "POST without the token answered $code, want 401"
say "boot 1: API write acknowledged ($URL/bootaction/survives-reboot); write without token refused"

client_hook

# ---- power cut, boot 2 on the same data disk ----------------------------------------
power_cut "$P1"
say "power cut (QEMU killed)"
boot_appliance 2 interactive
B2=$BOOT_SECONDS
P2=$LAST_PID
say "boot 2: serving after $B2 s"
grep -qF "seeded /var/lib/gopxe/gopxe.toml" "$WORK/boot2.serial" &&
    fail "boot 2 seeded the configuration again: the data disk did not keep it"
nsx curl -fsS --max-time 20 "$URL/bootaction/survives-reboot" | grep -q 'e2e/vmlinuz' ||
    fail "boot 2: the boot action written before the power cut is gone"
say "boot 2: the record and the configuration survived the power cut"

# The serial console: `gopxe console` shows the status and changes the DHCP
# mode (applied without a reboot); leaving it gives a login prompt. Then a
# crash of gopxe inside the appliance, and a clean power-off.
# (Markers are computed by the shell, $((..)), so the echo of the typed
# line never matches.)
console_wait 2 'choice> ' 90
for want in "API token  $TOKEN" "eth0 $SERVER/24" "dhcp       $MODE1" "service    up"; do
    grep -qF "$want" "$WORK/boot2.serial" || { tail -30 "$WORK/boot2.serial" >&2; fail "boot 2: the console's status lacks '$want'"; }
done
if [ "$CLIENT" = 1 ]; then
    grep -qF "client1.appliance.lab" "$WORK/boot2.serial" || fail "boot 2: the console does not list the client machine"
fi
say "boot 2: gopxe console on the serial port: address, DHCP mode, API URL and token, machines"
console_send 2
console_wait 2 'DHCP mode: off, proxy' 20
console_send sometimes
console_wait 2 'unknown DHCP mode' 20
console_send proxy
console_wait 2 'applied: gopxe is serving, dhcp proxy' 90
nsx curl -fsS --max-time 20 "$URL/health" | grep -q '"dhcp_mode": *"proxy"' ||
    fail "boot 2: /health does not report the DHCP mode set on the console"
say "boot 2: console: bad mode refused, proxy saved and applied (S50gopxe restart), /health says proxy"
console_send q
console_wait 2 'gopxe login:' 180
console_send root
# login and the shell flush what is typed early: retype until it is run.
deadline=$(($(date +%s) + 60))
until grep -q 'LOGGED-IN-42' "$WORK/boot2.serial"; do
    [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$WORK/boot2.serial" >&2; fail "boot 2: no shell after logging in on the serial console"; }
    sleep 3
    # shellcheck disable=SC2016 # expanded by the appliance's shell
    console_send 'echo LOGGED-IN-$((6*7))'
done
say "boot 2: left the console for a login prompt, logged in"
# shellcheck disable=SC2016 # expanded by the appliance's shell
# The supervisor notices within a second and waits one more; under TCG the
# start can take longer, so the appliance's shell polls (up to 30 s).
console_send 'p1=$(cat /var/run/gopxe.pid); kill -9 $p1; for i in $(seq 60); do sleep 0.5; p2=$(cat /var/run/gopxe.pid 2>/dev/null); [ -n "$p2" ] && [ "$p2" != "$p1" ] && kill -0 $p2 2>/dev/null && break; done; [ -n "$p2" ] && [ "$p2" != "$p1" ] && kill -0 $p2 && echo RESPAWNED-$((6*7)) $p1 $p2'
console_wait 2 'RESPAWNED-42' 60
nsx curl -fsS --max-time 20 -o /dev/null "$URL/health" || fail "boot 2: /health does not answer after the respawn"
say "boot 2: gopxe killed with -9 in the appliance, started again, serving ($(grep -oE 'RESPAWNED-42 [0-9]+ [0-9]+' "$WORK/boot2.serial" | tail -1 | cut -d' ' -f2- | sed 's/ / -> /'))"
# shellcheck disable=SC2016 # expanded by the appliance's shell
console_send 'echo RSS-$((6*7)) $(awk "/VmRSS/ {print \$2}" /proc/$(cat /var/run/gopxe.pid)/status) $(free | awk "/Mem:/ {print \$3}")'
console_wait 2 'RSS-42 [0-9]+ [0-9]+' 30
read -r _ RSS USED < <(grep -aoE 'RSS-42 [0-9]+ [0-9]+' "$WORK/boot2.serial" | tail -n 1)
say "boot 2: gopxe idle RSS ${RSS} KiB; appliance memory in use ${USED} KiB"
console_send 'poweroff'
deadline=$(($(date +%s) + 60))
while kill -0 "$P2" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "boot 2: poweroff did not stop QEMU within 60 s"
    sleep 0.5
done
wait "$P2" 2>/dev/null || true
grep -q 'Stopping gopxe: OK' "$WORK/boot2.serial" || fail "boot 2: rcK did not stop gopxe at poweroff"
if command -v e2fsck >/dev/null; then
    e2fsck -fn "$WORK/data.img" >"$WORK/e2fsck.log" 2>&1 || { cat "$WORK/e2fsck.log" >&2; fail "the data disk is not clean after poweroff"; }
fi
say "boot 2: poweroff stopped gopxe and left the data file system clean"

say "PASS: boot-to-serving $B1 s (first boot), $B2 s (second boot), accel $ACCEL; gopxe idle RSS $RSS KiB${CLIENT_SECONDS:+; client VM power-on to kickstart marker $CLIENT_SECONDS s}"
