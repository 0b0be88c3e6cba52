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
# rewrites its lease file on changes (and runs with --no-ping: its ICMP
# probe before each offer would hold every offer for up to 3 s).
# gopxe runs at its default log level (RUST_LOG unset: info), Kea at the
# WARN severity of its configuration below, both logging to files.
#
# MODE=returning: returning clients. perfdhcp -M draws each exchange's MAC
# at random from a list (generated here: 60,000 MACs, then 200,000), so a
# MAC comes back for the address it had. Pool 198.19.0.1-198.19.255.254
# (65,534 addresses) on 198.18.0.0/15 for gopxe and Kea alike (root only:
# the namespaces carry 198.18.0.1 and .2, RFC 2544's benchmark range).
# Each list gets a fresh server with an empty lease table, a warm-up run
# (WARMUP s at WARMUP_RATE/s, not counted) that binds most of a 60,000 list
# (and fills the pool with the 200,000 list, so that its newcomers meet a
# full pool), then the rates in turn on the same server. A MAC drawn
# again within the first quarter of its lease is answered from the lease
# gopxe has on record (lease caching): nothing to write, as for a lab
# machine that reboots; the rest are fsynced before their ACKs.
#
# Usage: benches/dhcp.sh            (all servers, default rates)
#        RATES="1000 4000" PERIOD=5 SERVERS="gopxe kea" benches/dhcp.sh
#        MODE=returning benches/dhcp.sh
#        MODE=returning MACS="60000" RATES=8000 PERIOD=3 WARMUP=3 benches/dhcp.sh
#        GOPXE_BIN=path/to/gopxe     (default: the release build)
#        BASELINE=path/to/older/gopxe  (adds a server "baseline": that build,
#                                     started and measured like gopxe)
set -euo pipefail

MODE=${MODE:-new}
case $MODE in
new) RATES=${RATES:-"500 1000 2000 4000 8000 12000 16000"} ;;
returning)
    RATES=${RATES:-"8000 12000"}
    MACS=${MACS:-"60000 200000"}
    WARMUP=${WARMUP:-20}
    WARMUP_RATE=${WARMUP_RATE:-4000}
    ;;
*) echo "MODE is new or returning, not $MODE" >&2; exit 2 ;;
esac
PERIOD=${PERIOD:-10}
if [ "$(id -u)" -eq 0 ] && [ "${NETNS:-1}" = 1 ]; then
    NETNS=1
    if [ "$MODE" = returning ]; then
        SERVERS=${SERVERS:-"gopxe kea"}
    else
        SERVERS=${SERVERS:-"gopxe kea dnsmasq"}
    fi
else
    NETNS=0
    SERVERS=${SERVERS:-"gopxe kea"}
    if [ "$MODE" = returning ]; then
        echo "MODE=returning needs root (network namespaces)" >&2
        exit 2
    fi
fi
SERVER_PORT=${SERVER_PORT:-6767}
RELAY_PORT=${RELAY_PORT:-6768}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/target-dir.sh"
WORK=$(mktemp -d /tmp/gopxe-dhcp-bench.XXXXXX)
PID=""
NS_SRV=gopxe-bdhcp-srv-$$
NS_CLI=gopxe-bdhcp-cli-$$
# veth names carry the PID too: two runs at once do not collide.
VETH_SRV=bdh-s$$
VETH_CLI=bdh-c$$

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
    if [ "$MODE" = returning ]; then
        SRV_IP=198.18.0.1 CLI_IP=198.18.0.2 PREFIX=15
        POOL_FIRST=198.19.0.1 POOL_LAST=198.19.255.254 POOL_MASK=255.254.0.0
        SUBNET=198.18.0.0/15
    else
        SRV_IP=10.96.0.1 CLI_IP=10.96.0.2 PREFIX=16
        POOL_FIRST=10.96.1.1 POOL_LAST=10.96.254.254 POOL_MASK=255.255.0.0
        SUBNET=10.96.0.0/16
    fi
    ip link add "$VETH_SRV" type veth peer name "$VETH_CLI"
    ip link set "$VETH_SRV" netns "$NS_SRV"
    ip link set "$VETH_CLI" netns "$NS_CLI"
    ip -n "$NS_SRV" addr add "$SRV_IP/$PREFIX" dev "$VETH_SRV"
    ip -n "$NS_CLI" addr add "$CLI_IP/$PREFIX" dev "$VETH_CLI"
    for ns in "$NS_SRV" "$NS_CLI"; do ip -n "$ns" link set lo up; done
    ip -n "$NS_SRV" link set "$VETH_SRV" up
    ip -n "$NS_CLI" link set "$VETH_CLI" up
    SRV_IF=$VETH_SRV
    # Separate namespaces: the relay can use the server port, as real
    # relays do (dnsmasq answers relays on its server port).
    RELAY_PORT=$SERVER_PORT
    IN_SRV=(ip netns exec "$NS_SRV")
    IN_CLI=(ip netns exec "$NS_CLI")
else
    SRV_IP=127.0.0.1 CLI_IP=127.0.0.1 SRV_IF=lo
    POOL_FIRST=127.1.0.1 POOL_LAST=127.254.255.254 POOL_MASK=255.0.0.0 SUBNET=127.0.0.0/8
    IN_SRV=() IN_CLI=()
fi

BASELINE=${BASELINE:-}
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || { echo "BASELINE=$BASELINE is not an executable" >&2; exit 2; }
    SERVERS="$SERVERS baseline"
fi

need() { command -v "$1" >/dev/null || { echo "missing $1 ($2)" >&2; exit 2; }; }
need perfdhcp "apt-get install kea-admin"
need taskset "util-linux"

start_gopxe() {
    local bin=${GOPXE_BIN:-} dir=${GOPXE_DIR:-gopxe}
    if [[ -z "$bin" ]]; then
        (cd "$ROOT" && cargo build -q --release)
        bin=$(gopxe_bin release)
    fi
    mkdir -p "$WORK/$dir"
    # The default log level: no RUST_LOG from the caller's environment.
    env -u RUST_LOG "${IN_SRV[@]}" taskset -c "$SERVER_CPU" "$bin" serve --dhcp-mode authoritative \
        --dhcp-listen "$SRV_IP:$SERVER_PORT" --dhcp-relay-port "$RELAY_PORT" \
        --advertise-addr "$SRV_IP" --http-listen 127.0.0.1:0 --tftp-listen off \
        --dhcp-range "$POOL_FIRST,$POOL_LAST,$POOL_MASK,12h" \
        --data-dir "$WORK/$dir" --images "$WORK/$dir" >"$WORK/$dir.log" 2>&1 &
    PID=$!
}

# BASELINE: an older gopxe build, in its own folder, started the same way.
start_baseline() { GOPXE_BIN=$BASELINE GOPXE_DIR=baseline start_gopxe; }

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
        --dhcp-lease-max=20000000 --dhcp-leasefile="$WORK/dnsmasq/leases" --no-ping \
        --log-facility="$WORK/dnsmasq/log" >"$WORK/dnsmasq.log" 2>&1 &
    PID=$!
}

stop_server() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

# One perfdhcp run: prints "dora_per_s drop_percent". Clients are new
# (random MACs out of 10^8), or drawn from the MAC list file $2; $3 is the
# run's length (default PERIOD). perfdhcp stops itself after it; timeout
# stops it in any case.
measure() {
    local rate=$1 macs=${2:-} period=${3:-$PERIOD} out
    local clients=(-R 100000000)
    if [[ -n "$macs" ]]; then clients=(-M "$macs"); fi
    out=$("${IN_CLI[@]}" timeout -k 5 $((period + 30)) taskset -c "$CLIENT_CPU" \
        perfdhcp -4 -l "$CLI_IP" -L "$RELAY_PORT" -N "$SERVER_PORT" -r "$rate" \
        "${clients[@]}" -p "$period" -W 2000000 "$SRV_IP" 2>&1) || true
    echo "$out" >>"$WORK/perfdhcp.log"
    echo "$out" | awk -v period="$period" '
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

# Starts a server from an empty data directory; false if it did not start.
start_fresh() {
    local server=$1
    rm -rf "${WORK:?}/$server"
    "start_$server"
    sleep 1
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "$server did not start; see $WORK/$server.log" >&2
        cat "$WORK/$server.log" >&2 || true
        PID=""
        return 1
    fi
}

peak_rss() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status"; }

# How each server logs (into files under WORK), for the results' header.
log_levels() {
    local server line="logging, to files:"
    for server in $SERVERS; do
        case $server in
        gopxe) line+=" gopxe at its default level (info; RUST_LOG unset);" ;;
        baseline) line+=" baseline (an older gopxe build) likewise;" ;;
        kea) line+=" Kea at WARN (as configured here);" ;;
        dnsmasq) line+=" dnsmasq at its default (every DHCP exchange);" ;;
        esac
    done
    echo "${line%;}"
    case " $SERVERS " in
    *" gopxe "*)
        echo "gopxe fsyncs each batch of new leases before its ACKs; a REQUEST within the" \
            "first 25 % of the client's lease is answered from the lease on record (lease" \
            "caching, no write), so returning clients mostly cost no fsync" ;;
    esac
}

if [ "$MODE" = returning ]; then
    # Distinct, locally administered MACs, one per line.
    for n in $MACS; do
        awk -v n="$n" 'BEGIN {
            for (i = 0; i < n; i++)
                printf "02:00:%02x:%02x:%02x:%02x\n",
                    int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256
        }' >"$WORK/macs-$n"
    done
    for server in $SERVERS; do
        for n in $MACS; do
            start_fresh "$server" || continue
            if [ "$WARMUP" -gt 0 ]; then
                echo "$server $n MACs warm-up at $WARMUP_RATE/s for ${WARMUP}s:" \
                    "$(measure "$WARMUP_RATE" "$WORK/macs-$n" "$WARMUP")" >&2
            fi
            for rate in $RATES; do
                RESULT[$server,$n,$rate]=$(measure "$rate" "$WORK/macs-$n")
                echo "$server $n MACs rate $rate: ${RESULT[$server,$n,$rate]}" >&2
            done
            RSS[$server,$n]=$(peak_rss)
            stop_server
        done
    done

    printf '\nReturning clients: DORA/s achieved (drop %%), perfdhcp -M (a MAC drawn at random\n'
    printf 'from the list for each exchange), pool %s-%s (%s), %ss per step,\n' \
        "$POOL_FIRST" "$POOL_LAST" "$SUBNET" "$PERIOD"
    printf 'after a %ss warm-up at %s/s on a fresh server per list; veth between two namespaces\n' \
        "$WARMUP" "$WARMUP_RATE"
    log_levels
    printf '%-8s %-6s' MACs rate
    for server in $SERVERS; do printf '%22s' "$server"; done
    printf '\n'
    for n in $MACS; do
        for rate in $RATES; do
            printf '%-8s %-6s' "$n" "$rate"
            for server in $SERVERS; do
                read -r dora drop <<<"${RESULT[$server,$n,$rate]:-0 100}"
                printf '%22s' "$dora ($drop %)"
            done
            printf '\n'
        done
        printf '%-15s' "RSS MiB"
        for server in $SERVERS; do printf '%22s' "${RSS[$server,$n]:-?}"; done
        printf '\n'
    done
    exit 0
fi

for server in $SERVERS; do
    start_fresh "$server" || continue
    for rate in $RATES; do
        RESULT[$server,$rate]=$(measure "$rate")
        echo "$server rate $rate: ${RESULT[$server,$rate]}" >&2
    done
    RSS[$server]=$(peak_rss)
    stop_server
done

printf '\nDORA/s achieved (drop %%) at each offered rate, %ss per step (%s)\n' "$PERIOD" \
    "$([ "$NETNS" = 1 ] && echo "veth between two namespaces" || echo loopback)"
log_levels
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
