#!/usr/bin/env bash
# plugin-default.sh — the appliance's plug-in default (first boot with no
# configuration), both branches, in network namespaces:
#
#   appliance namespace (eth0) ==veth== lab namespace (lab0, 192.168.77.1/24)
#
# The overlay's /etc/init.d/S45gopxe-net runs under BusyBox sh with BusyBox
# applets first in PATH (udhcpc, ip: as on the appliance), pointed at a
# scratch state directory (GOPXE_DEFAULTS):
#   1. a dnsmasq DHCP server in the lab namespace: the appliance takes an
#      address from it (192.168.77.50-60) and configures proxyDHCP;
#   2. no DHCP server: it takes 10.77.0.1/24 and configures authoritative DHCP
#      on 10.77.0.100-200; then gopxe serves that configuration and a DHCP
#      client in the lab namespace gets an address from it.
# Each time: dhcp_mode, the address on eth0, network.conf, a non-empty API
# token printed on the console, `gopxe check-config` passes; a second start
# applies network.conf without probing again.
#
# Exit: 0 pass, 1 fail, 77 skip (not root, no busybox/dnsmasq).
set -Eeuo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OVL=$ROOT/buildroot-overlay

say() { printf 'plugin-default: %s\n' "$*"; }
fail() { printf 'plugin-default: FAIL: %s\n' "$*" >&2; FAILED=1; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    {
        echo "##################################################################"
        echo "## SKIP plugin-default: needs root (network namespaces, veth)."
        echo "##      Nothing was tested. Re-run as root."
        echo "##################################################################"
    } >&2
    exit 77
fi
BB=$(command -v busybox || true)
[ -n "$BB" ] || { say "SKIP: no busybox (apt-get install busybox-static)"; exit 77; }
command -v dnsmasq >/dev/null || { say "SKIP: no dnsmasq (apt-get install dnsmasq-base)"; exit 77; }
"$BB" udhcpc --help >/dev/null 2>&1 || [ $? -eq 1 ] || { say "SKIP: busybox has no udhcpc"; exit 77; }

BIN=${GOPXE_BIN:-}
if [ -z "$BIN" ]; then
    timeout 1800 cargo build -q --bin gopxe
    BIN=${CARGO_TARGET_DIR:-target}/debug/gopxe
fi
BIN=$(realpath "$BIN")

WORK=$(mktemp -d /tmp/gopxe-plugin-default.XXXXXX)
NSA=gopxe-pd-appl-$$
NSB=gopxe-pd-lab-$$
PIDS=()
FAILED=0
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
    done
    # udhcpc clients the init script left running (their pid files only)
    for p in "$WORK"/run*/gopxe-udhcpc.pid "$WORK"/lab-udhcpc.pid; do
        if [ -f "$p" ]; then kill -KILL "$(cat "$p")" 2>/dev/null || true; fi
    done
    ip netns del "$NSA" 2>/dev/null || true
    ip netns del "$NSB" 2>/dev/null || true
    if [ "$FAILED" -ne 0 ] || [ "${PLUGIN_KEEP:-0}" = 1 ]; then say "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'FAILED=1' ERR

IP=$(command -v ip)   # iproute2 (BusyBox's ip has no netns)
mkdir -p "$WORK/bb"
"$BB" --install -s "$WORK/bb"
SH=$WORK/bb/sh

# udhcpc event script without /etc/resolv.conf (this is the host's /etc)
cat >"$WORK/udhcpc.script" <<'EOT'
#!/bin/sh
case "$1" in
deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
bound | renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${subnet:-255.255.255.0}" dev "$interface"
    ;;
esac
exit 0
EOT
chmod +x "$WORK/udhcpc.script"

cat >"$WORK/factory.toml" <<EOT
data_dir = "$WORK/state/data"
images = "$WORK/images"
http_listen = "0.0.0.0:9090"
tftp_listen = "off"
dhcp_mode = "off"
unknown_boot = "local"
EOT
mkdir -p "$WORK/images"

ip netns add "$NSA"
ip netns add "$NSB"
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip -n "$NSA" link add eth0 type veth peer name lab0 netns "$NSB"
ip -n "$NSB" link set lab0 up

# s45 N ACTION: the overlay's S45gopxe-net in the appliance namespace, with
# state directory $WORK/stateN.
s45() {
    local n=$1 act=$2
    cat >"$WORK/default$n" <<EOT
GOPXE_BIN=$BIN
GOPXE_FACTORY_CONFIG=$WORK/factory.toml
GOPXE_CONFIG=$WORK/state$n/gopxe.toml
GOPXE_NETWORK=$WORK/state$n/network.conf
GOPXE_RUNDIR=$WORK/run$n
GOPXE_INTERFACE=eth0
GOPXE_FIRSTBOOT=auto
GOPXE_UDHCPC_SCRIPT=$WORK/udhcpc.script
GOPXE_CMDLINE=$WORK/cmdline
GOPXE_DHCP_PROBE_TRIES=3
GOPXE_DHCP_PROBE_TIMEOUT=2
EOT
    echo "console=ttyS0,115200" >"$WORK/cmdline"
    GOPXE_DEFAULTS=$WORK/default$n PATH="$WORK/bb:$PATH" \
        timeout 60 "$IP" netns exec "$NSA" "$SH" "$OVL/etc/init.d/S45gopxe-net" "$act"
}
conf_value() { sed -n "s/^$2 = \"\\(.*\\)\"\$/\\1/p" "$WORK/state$1/gopxe.toml"; }
eth0_addr() { ip -n "$NSA" -4 -o addr show dev eth0 | awk '{ print $4; exit }'; }

# ---- 1. a DHCP server on the lab network ----------------------------------------
ip -n "$NSB" addr add 192.168.77.1/24 dev lab0
ip netns exec "$NSB" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 \
    --user=root --group=root --pid-file= --log-facility=- --log-dhcp \
    --interface=lab0 --bind-interfaces --except-interface=lo \
    --dhcp-leasefile="$WORK/dnsmasq.leases" \
    --dhcp-range=192.168.77.50,192.168.77.60,255.255.255.0,1h \
    >"$WORK/dnsmasq.log" 2>&1 </dev/null &
DNSMASQ=$!
PIDS+=("$DNSMASQ")
sleep 0.5
kill -0 "$DNSMASQ" 2>/dev/null || { cat "$WORK/dnsmasq.log" >&2; fail "dnsmasq did not start"; }

t0=$(date +%s.%N)
s45 1 start >"$WORK/s45-1.out" 2>&1 || { cat "$WORK/s45-1.out" >&2; fail "S45gopxe-net start (with a DHCP server) failed"; }
t1=$(date +%s.%N)
sed 's/^/plugin-default:   | /' "$WORK/s45-1.out"
[ "$(conf_value 1 dhcp_mode)" = proxy ] || fail "with a DHCP server: dhcp_mode is '$(conf_value 1 dhcp_mode)', want proxy"
addr=$(eth0_addr)
case $addr in 192.168.77.5[0-9]/24 | 192.168.77.60/24) ;; *) fail "with a DHCP server: eth0 has '$addr', want a lease from 192.168.77.50-60" ;; esac
grep -q "$addr" "$WORK/s45-1.out" || fail "the console output does not name the address $addr"
tok=$(conf_value 1 api_token)
[ ${#tok} -ge 16 ] || fail "with a DHCP server: api_token '$tok' is too short or missing"
grep -qF "API token $tok" "$WORK/s45-1.out" || fail "the API token is not shown on the console"
grep -qx 'GOPXE_NET_MODE=dhcp' "$WORK/state1/network.conf" || fail "network.conf is not a DHCP client: $(cat "$WORK/state1/network.conf")"
[ "$(conf_value 1 interface)" = eth0 ] || fail "interface is not eth0"
[ -z "$(conf_value 1 dhcp_range)" ] || fail "proxy mode with a dhcp_range"
"$BIN" check-config --config "$WORK/state1/gopxe.toml" >/dev/null || fail "the written configuration does not pass check-config"
if ! { [ -f "$WORK/run1/gopxe-udhcpc.pid" ] && kill -0 "$(cat "$WORK/run1/gopxe-udhcpc.pid")"; }; then
    fail "no DHCP client left running to renew the lease"
fi
say "DHCP server found: eth0 $addr from it, dhcp_mode proxy, token ${tok:0:6}... ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s)"

# second start: network.conf applies, no new probe, configuration untouched
sum=$(md5sum <"$WORK/state1/gopxe.toml")
s45 1 restart >"$WORK/s45-1b.out" 2>&1 || { cat "$WORK/s45-1b.out" >&2; fail "S45gopxe-net restart failed"; }
grep -q 'DHCP client (.*network.conf)' "$WORK/s45-1b.out" || { cat "$WORK/s45-1b.out" >&2; fail "restart did not apply network.conf"; }
! grep -q 'first boot' "$WORK/s45-1b.out" || fail "restart probed again although configured"
[ "$(md5sum <"$WORK/state1/gopxe.toml")" = "$sum" ] || fail "restart changed the configuration"
s45 1 stop >/dev/null 2>&1
[ ! -f "$WORK/run1/gopxe-udhcpc.pid" ] || fail "stop left the DHCP client's pid file"
say "configured boot: network.conf applied, no probe, configuration kept"

# ---- 2. no DHCP server ---------------------------------------------------------
kill -TERM "$DNSMASQ"
wait "$DNSMASQ" 2>/dev/null || true
ip -n "$NSA" -4 addr flush dev eth0
t0=$(date +%s.%N)
s45 2 start >"$WORK/s45-2.out" 2>&1 || { cat "$WORK/s45-2.out" >&2; fail "S45gopxe-net start (no DHCP server) failed"; }
t1=$(date +%s.%N)
sed 's/^/plugin-default:   | /' "$WORK/s45-2.out"
[ "$(conf_value 2 dhcp_mode)" = authoritative ] || fail "without a DHCP server: dhcp_mode is '$(conf_value 2 dhcp_mode)', want authoritative"
[ "$(eth0_addr)" = 10.77.0.1/24 ] || fail "without a DHCP server: eth0 has '$(eth0_addr)', want 10.77.0.1/24"
grep -qF 'dhcp_range = ["10.77.0.100,10.77.0.200,255.255.255.0,12h"]' "$WORK/state2/gopxe.toml" ||
    fail "without a DHCP server: dhcp_range is not 10.77.0.100-200: $(grep dhcp_range "$WORK/state2/gopxe.toml")"
[ "$(conf_value 2 advertise_addr)" = 10.77.0.1 ] || fail "advertise_addr is not 10.77.0.1"
tok2=$(conf_value 2 api_token)
if [ ${#tok2} -lt 16 ] || [ "$tok2" = "$tok" ]; then fail "api_token '$tok2' missing, short or reused"; fi
grep -qF "API token $tok2" "$WORK/s45-2.out" || fail "the API token is not shown on the console"
grep -qx 'GOPXE_NET_ADDR=10.77.0.1/24' "$WORK/state2/network.conf" || fail "network.conf lacks the static address"
"$BIN" check-config --config "$WORK/state2/gopxe.toml" >/dev/null || fail "the written configuration does not pass check-config"
say "no DHCP server: eth0 10.77.0.1/24, dhcp_mode authoritative 10.77.0.100-200, token ${tok2:0:6}... ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s)"

# gopxe serves that configuration: a client on the lab side gets an address
mkdir -p "$WORK/state2/data"
ip netns exec "$NSA" env RUST_LOG=info "$BIN" serve --config "$WORK/state2/gopxe.toml" \
    >"$WORK/serve2.log" 2>&1 </dev/null &
PIDS+=("$!")
deadline=$(($(date +%s) + 20))
until ip netns exec "$NSA" "$WORK/bb/wget" -q -O - http://10.77.0.1:9090/health 2>/dev/null | grep -q authoritative; do
    [ "$(date +%s)" -lt "$deadline" ] || { cat "$WORK/serve2.log" >&2; fail "gopxe did not serve the first-boot configuration"; }
    sleep 0.3
done
ip -n "$NSB" -4 addr flush dev lab0
timeout 30 ip netns exec "$NSB" "$WORK/bb/udhcpc" -i lab0 -s "$WORK/udhcpc.script" -n -q -t 5 -T 2 \
    >"$WORK/lab-udhcpc.log" 2>&1 || { cat "$WORK/lab-udhcpc.log" "$WORK/serve2.log" >&2; fail "no lease from gopxe's authoritative DHCP"; }
laddr=$(ip -n "$NSB" -4 -o addr show dev lab0 | awk '{ print $4; exit }')
case $laddr in 10.77.0.1[0-9][0-9]/24 | 10.77.0.200/24) ;; *) fail "the lab client got '$laddr', want 10.77.0.100-200" ;; esac
say "gopxe serves it: a client on the lab side got $laddr"

say "PASS: with a DHCP server -> proxy ($addr), without -> authoritative (10.77.0.1/24)"
