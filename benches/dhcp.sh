#!/usr/bin/env bash
# DHCP benchmark: DORA exchanges per second and drop rate at rising offered
# rates, for gopxe, Kea (memfile, persistent) and dnsmasq (with its lease
# file), each started and stopped here. perfdhcp (Debian package kea-admin)
# acts as a relay agent. As root, the servers run in a network namespace
# this script creates (10.96.0.1/16 on a veth) and perfdhcp in a second one
# (10.96.0.2, the giaddr), joined by the veth pair; both are deleted on
# exit. dnsmasq does not serve relayed requests from 127.0.0.1 on lo, so
# without root only gopxe and Kea run, on loopback. The server is pinned to
# CPU 0 and perfdhcp to CPU 1 (lock-step UDP results are bimodal
# otherwise). gopxe fsyncs its lease log once per batch before any ACK of
# the batch leaves; Kea's memfile appends to its CSV without fsync; dnsmasq
# rewrites its lease file on changes.
#
# Usage: benches/dhcp.sh            (all servers, default rates)
#        RATES="1000 4000" PERIOD=5 SERVERS="gopxe kea" benches/dhcp.sh
#        GOPXE_BIN=path/to/gopxe     (default: the release build)
set -euo pipefail

RATES=${RATES:-"500 1000 2000 4000 8000 12000 16000"}
PERIOD=${PERIOD:-10}
if [ "$(id -u)" -eq 0 ] && [ "${NETNS:-1}" = 1 ]; then
    NETNS=1
    SERVERS=${SERVERS:-"gopxe kea dnsmasq"}
else
    NETNS=0
    SERVERS=${SERVERS:-"gopxe kea"}
fi
SERVER_PORT=${SERVER_PORT:-6767}
RELAY_PORT=${RELAY_PORT:-6768}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gopxe-dhcp-bench.XXXXXX)
PID=""
NS_SRV=gopxe-bdhcp-srv-$$
NS_CLI=gopxe-bdhcp-cli-$$

cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ "$NETNS" = 1 ]; then
        ip netns del "$NS_SRV" 2>/dev/null || true
        ip netns del "$NS_CLI" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$NETNS" = 1 ]; then
    ip netns add "$NS_SRV"
    ip netns add "$NS_CLI"
    ip link add bdh-s type veth peer name bdh-c
    ip link set bdh-s netns "$NS_SRV"
    ip link set bdh-c netns "$NS_CLI"
    ip -n "$NS_SRV" addr add 10.96.0.1/16 dev bdh-s
    ip -n "$NS_CLI" addr add 10.96.0.2/16 dev bdh-c
    for ns in "$NS_SRV" "$NS_CLI"; do ip -n "$ns" link set lo up; done
    ip -n "$NS_SRV" link set bdh-s up
    ip -n "$NS_CLI" link set bdh-c up
    SRV_IP=10.96.0.1 CLI_IP=10.96.0.2 SRV_IF=bdh-s
    POOL_FIRST=10.96.1.1 POOL_LAST=10.96.254.254 POOL_MASK=255.255.0.0 SUBNET=10.96.0.0/16
    IN_SRV=(ip netns exec "$NS_SRV")
    IN_CLI=(ip netns exec "$NS_CLI")
else
    SRV_IP=127.0.0.1 CLI_IP=127.0.0.1 SRV_IF=lo
    POOL_FIRST=127.1.0.1 POOL_LAST=127.254.255.254 POOL_MASK=255.0.0.0 SUBNET=127.0.0.0/8
    IN_SRV=() IN_CLI=()
fi

need() { command -v "$1" >/dev/null || { echo "missing $1 ($2)" >&2; exit 2; }; }
need perfdhcp "apt-get install kea-admin"
need taskset "util-linux"

start_gopxe() {
    local bin=${GOPXE_BIN:-}
    if [[ -z "$bin" ]]; then
        (cd "$ROOT" && cargo build -q --release)
        bin="$ROOT/target/release/gopxe"
    fi
    mkdir -p "$WORK/gopxe"
    RUST_LOG=warn "${IN_SRV[@]}" taskset -c "$SERVER_CPU" "$bin" serve --dhcp-mode authoritative \
        --dhcp-listen "$SRV_IP:$SERVER_PORT" --dhcp-relay-port "$RELAY_PORT" \
        --advertise-addr "$SRV_IP" --http-listen 127.0.0.1:0 --tftp-listen off \
        --dhcp-range "$POOL_FIRST,$POOL_LAST,$POOL_MASK,12h" \
        --data-dir "$WORK/gopxe" --images "$WORK/gopxe" >"$WORK/gopxe.log" 2>&1 &
    PID=$!
}

start_kea() {
    need kea-dhcp4 "apt-get install kea-dhcp4-server"
    mkdir -p "$WORK/kea"
    cat >"$WORK/kea/kea.json" <<EOF
{"Dhcp4": {
  "interfaces-config": {"interfaces": ["$SRV_IF/$SRV_IP"], "dhcp-socket-type": "udp"},
  "lease-database": {"type": "memfile", "persist": true,
                     "name": "$WORK/kea/leases.csv", "lfc-interval": 0},
  "valid-lifetime": 43200,
  "subnet4": [{"id": 1, "subnet": "$SUBNET",
               "pools": [{"pool": "$POOL_FIRST - $POOL_LAST"}]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
               "output_options": [{"output": "$WORK/kea/log"}]}]
}}
EOF
    KEA_PIDFILE_DIR="$WORK/kea" KEA_LOCKFILE_DIR="$WORK/kea" \
        "${IN_SRV[@]}" taskset -c "$SERVER_CPU" kea-dhcp4 -c "$WORK/kea/kea.json" \
        -p "$SERVER_PORT" -P "$RELAY_PORT" >"$WORK/kea.log" 2>&1 &
    PID=$!
}

start_dnsmasq() {
    need dnsmasq "apt-get install dnsmasq"
    mkdir -p "$WORK/dnsmasq"
    touch "$WORK/dnsmasq/leases"
    "${IN_SRV[@]}" taskset -c "$SERVER_CPU" dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --port=0 --pid-file= --dhcp-alternate-port="$SERVER_PORT,$RELAY_PORT" \
        --interface="$SRV_IF" --bind-interfaces \
        --dhcp-range="$POOL_FIRST,$POOL_LAST,$POOL_MASK,12h" \
        --dhcp-lease-max=20000000 --dhcp-leasefile="$WORK/dnsmasq/leases" \
        --log-facility="$WORK/dnsmasq/log" >"$WORK/dnsmasq.log" 2>&1 &
    PID=$!
}

stop_server() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

# One perfdhcp run: prints "dora_per_s drop_percent".
measure() {
    local rate=$1 out
    out=$("${IN_CLI[@]}" taskset -c "$CLIENT_CPU" perfdhcp -4 -l "$CLI_IP" -L "$RELAY_PORT" \
        -N "$SERVER_PORT" -r "$rate" -R 100000000 -p "$PERIOD" -W 2000000 \
        "$SRV_IP" 2>&1) || true
    echo "$out" >>"$WORK/perfdhcp.log"
    echo "$out" | awk -v period="$PERIOD" '
        /Statistics for: DISCOVER-OFFER/ { sect = "do" }
        /Statistics for: REQUEST-ACK/    { sect = "ra" }
        /^sent packets:/     { sent[sect] = $3 }
        /^received packets:/ { recv[sect] = $3 }
        END {
            d = sent["do"] + 0; a = recv["ra"] + 0
            drop = d > 0 ? 100 * (1 - a / d) : 100
            printf "%d %.2f\n", a / period, drop
        }'
}

declare -A RESULT RSS
for server in $SERVERS; do
    "start_$server"
    sleep 1
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "$server did not start; see $WORK/$server.log" >&2
        cat "$WORK/$server.log" >&2 || true
        continue
    fi
    for rate in $RATES; do
        RESULT[$server,$rate]=$(measure "$rate")
        echo "$server rate $rate: ${RESULT[$server,$rate]}" >&2
    done
    RSS[$server]=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status")
    stop_server
done

printf '\nDORA/s achieved (drop %%) at each offered rate, %ss per step (%s)\n' "$PERIOD" \
    "$([ "$NETNS" = 1 ] && echo "veth between two namespaces" || echo loopback)"
printf '%-8s' rate
for server in $SERVERS; do printf '%22s' "$server"; done
printf '\n'
for rate in $RATES; do
    printf '%-8s' "$rate"
    for server in $SERVERS; do
        read -r dora drop <<<"${RESULT[$server,$rate]:-0 100}"
        printf '%22s' "$dora ($drop %)"
    done
    printf '\n'
done
printf '%-8s' "RSS MiB"
for server in $SERVERS; do printf '%22s' "${RSS[$server]:-?}"; done
printf '\n'
