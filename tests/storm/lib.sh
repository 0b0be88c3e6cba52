# shellcheck shell=bash
# Shared by benches/storm.sh and tests/storm/*.sh (sourced, not run).
#
# Topology: two network namespaces joined by a veth pair, both created here
# and deleted on exit:
#   $NS_CLI  veth $VETH_C  10.97.0.1/16   gopxe-storm, acting as the relay
#                                         agent (giaddr 10.97.0.1, udp/67)
#   $NS_SRV  veth $VETH_S  10.97.0.2/16   the server under test: gopxe, or
#                                         dnsmasq + nginx (udp/67, udp/69, tcp/80)
# $NS_CLI also owns every pool address (local routes for 10.97.1.0 and up):
# each simulated installer fetches its kickstart and calls back from the
# address DHCP gave it, as a real one does (gopxe moves a machine only for
# answer files its own address fetches).
# Every server gets the same traffic from the same client. No packet leaves
# the two namespaces. Only PIDs started here are killed.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
source "$ROOT/scripts/target-dir.sh"
SRV_IP=10.97.0.2
CLI_IP=10.97.0.1
POOL="10.97.1.1,10.97.200.254,255.255.0.0"
TOKEN=storm-token
NS_SRV=gst-srv-$$
NS_CLI=gst-cli-$$
VETH_S=gsts$$
VETH_C=gstc$$
WORK=${WORK:-$(mktemp -d /tmp/gopxe-storm.XXXXXX)}
KEEP_WORK=${KEEP_WORK:-0}
PIDS=()
NETNS_UP=0
# PIN=1: the server under test (gopxe, or dnsmasq and nginx) runs on CPU 0
# and the simulated clients on CPU 1, as if they were other machines; by
# default all share every CPU.
PIN=${PIN:-0}
SRV_PIN=()
CLI_PIN=()
if [[ $PIN == 1 ]]; then
    SRV_PIN=(taskset -c 0)
    CLI_PIN=(taskset -c 1)
fi

log() { echo "[$(date +%T)] $*" >&2; }

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "SKIP: needs root (network namespaces)" >&2
        exit 77
    fi
    local t
    for t in ip curl python3; do
        command -v "$t" >/dev/null || { echo "SKIP: missing $t" >&2; exit 77; }
    done
}

storm_cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
    if [[ $NETNS_UP == 1 ]]; then
        ip netns del "$NS_SRV" 2>/dev/null || true
        ip netns del "$NS_CLI" 2>/dev/null || true
        NETNS_UP=0
    fi
    if [[ $KEEP_WORK != 1 ]]; then
        rm -rf "$WORK"
    else
        log "work dir kept: $WORK"
    fi
}
# Set here so that the work dir goes even when a script exits early.
trap storm_cleanup EXIT

# Forget a PID we stopped ourselves.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

netns_up() {
    ip netns add "$NS_SRV"
    ip netns add "$NS_CLI"
    NETNS_UP=1
    ip link add "$VETH_S" type veth peer name "$VETH_C"
    ip link set "$VETH_S" netns "$NS_SRV"
    ip link set "$VETH_C" netns "$NS_CLI"
    ip -n "$NS_SRV" addr add "$SRV_IP/16" dev "$VETH_S"
    ip -n "$NS_CLI" addr add "$CLI_IP/16" dev "$VETH_C"
    ip -n "$NS_SRV" link set lo up
    ip -n "$NS_CLI" link set lo up
    ip -n "$NS_SRV" link set "$VETH_S" up
    ip -n "$NS_CLI" link set "$VETH_C" up
    local p
    for p in 10.97.1.0/24 10.97.2.0/23 10.97.4.0/22 10.97.8.0/21 10.97.16.0/20 \
        10.97.32.0/19 10.97.64.0/18 10.97.128.0/17; do
        ip -n "$NS_CLI" route add local "$p" dev lo
    done
    for _ in $(seq 1 50); do
        if ip -n "$NS_CLI" -o link show "$VETH_C" | grep -q LOWER_UP &&
            ip -n "$NS_SRV" -o link show "$VETH_S" | grep -q LOWER_UP; then
            return 0
        fi
        sleep 0.1
    done
    echo "veth link did not come up" >&2
    return 1
}

build_all() {
    if [[ -z ${GOPXE_BIN:-} ]]; then
        log "building gopxe (release)"
        (cd "$ROOT" && cargo build -q --release --bin gopxe)
        GOPXE_BIN=$(gopxe_bin release)
    fi
    if [[ -z ${STORM_BIN:-} ]]; then
        log "building gopxe-storm (release)"
        (cd "$ROOT/tools/storm" && cargo build -q --release)
        STORM_BIN=$(cargo_target_dir "$ROOT/tools/storm")/release/gopxe-storm
    fi
}

# prepare_images DIR LOADER_SIZE KERNEL_SIZE INITRD_SIZE (sizes as for head -c)
prepare_images() {
    local d=$1
    mkdir -p "$d/k"
    head -c "$2" /dev/urandom >"$d/pxelinux.0"
    head -c "$3" /dev/urandom >"$d/k/vmlinuz"
    head -c "$4" /dev/urandom >"$d/k/initrd.img"
}

GOPXE_PID=""
# start_gopxe DATA_DIR IMAGES_DIR [extra flags...]: in $NS_SRV, waits until serving.
# Every simulated client's TFTP comes from $CLI_IP: no per-client limit.
start_gopxe() {
    local data=$1 images=$2
    shift 2
    mkdir -p "$data"
    ip netns exec "$NS_SRV" "${SRV_PIN[@]}" "$GOPXE_BIN" serve --data-dir "$data" --images "$images" \
        --http-listen "$SRV_IP:80" --advertise-addr "$SRV_IP" --api-token "$TOKEN" \
        --dhcp-mode authoritative --dhcp-listen "$SRV_IP:67" --dhcp-relay-port 67 \
        --dhcp-range "$POOL,1h" --tftp-listen "$SRV_IP:69" --tftp-max-transfers 256 \
        --tftp-max-per-client 256 \
        "$@" >>"$WORK/gopxe.out" 2>>"$WORK/gopxe.err" &
    GOPXE_PID=$!
    PIDS+=("$GOPXE_PID")
    local _
    for _ in $(seq 1 100); do
        if srv_curl -sf -o /dev/null "http://$SRV_IP/health"; then
            return 0
        fi
        kill -0 "$GOPXE_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "gopxe did not start; stderr:" >&2
    tail -20 "$WORK/gopxe.err" >&2
    return 1
}

srv_curl() { ip netns exec "$NS_SRV" curl --max-time 10 "$@"; }
cli_curl() { ip netns exec "$NS_CLI" curl --max-time 10 "$@"; }

# The N clients, one `index mac uuid hostname` line each.
clients_file() {
    "$STORM_BIN" clients --clients "$1" >"$WORK/clients.txt"
}

# Boot action and one machine record per client, through the API.
create_records() {
    local auth="Authorization: Bearer $TOKEN" base="http://$SRV_IP"
    srv_curl -sf -o /dev/null -H "$auth" -H 'Content-Type: application/json' \
        -X POST "$base/bootaction/storm" \
        -d '{"kernel":"k/vmlinuz","initrd":"k/initrd.img","ksdevice":"link","ip":"dhcp"}'
    local mac host n=0
    while read -r _ mac _ host; do
        srv_curl -sf -o /dev/null -H "$auth" -H 'Content-Type: application/json' \
            -X POST "$base/pxeboot" \
            -d "{\"bootaction\":\"storm\",\"ksfile\":\"default\",\"os\":\"centos-7\",\"version\":\"7.9.2009\",\"mac\":\"$mac\",\"hostname\":\"$host\"}"
        n=$((n + 1))
    done <"$WORK/clients.txt"
    log "created $n machine records"
}

# Peak RSS (VmHWM) of PIDs, in KiB, summed.
peak_rss_kib() {
    local sum=0 p v
    for p in "$@"; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# CPU seconds (user + system) used so far by PIDs, summed.
cpu_secs() {
    local tck ticks=0 p t
    tck=$(getconf CLK_TCK)
    for p in "$@"; do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        ticks=$((ticks + ${t:-0}))
    done
    awk -v t="$ticks" -v h="$tck" 'BEGIN { printf "%.2f", t / h }'
}

# run_storm LABEL [extra gopxe-storm flags...]: from $NS_CLI as the relay
run_storm() {
    local label=$1
    shift
    timeout "${STORM_TIMEOUT:-600}" ip netns exec "$NS_CLI" "${CLI_PIN[@]}" "$STORM_BIN" run \
        --dhcp "$SRV_IP:67" --relay "$CLI_IP:67" --tftp-bind "$CLI_IP" --http-from-lease \
        --label "$label" --json "$WORK/$label.json" "$@"
}

# Fault scenarios: the usual start (root, build, namespaces, images, gopxe,
# N records). fault_setup N LOADER KERNEL INITRD
fault_setup() {
    need_root
    trap storm_cleanup EXIT
    build_all
    netns_up
    prepare_images "$WORK/images" "$2" "$3" "$4"
    clients_file "$1"
    start_gopxe "$WORK/gopxe-data" "$WORK/images"
    create_records
}

# check_leases N: every client MAC holds exactly one lease, no address is
# held by two MACs, and every machine record is there and `installed`.
check_leases_and_records() {
    local n=$1 auth="Authorization: Bearer $TOKEN"
    srv_curl -sf -H "$auth" "http://$SRV_IP/leases" >"$WORK/leases.json"
    srv_curl -sf -H "$auth" "http://$SRV_IP/pxeboot" >"$WORK/machines.json"
    python3 - "$n" "$WORK/leases.json" "$WORK/machines.json" "$WORK/clients.txt" <<'PY'
import json, sys
n = int(sys.argv[1])
leases = json.load(open(sys.argv[2]))
if isinstance(leases, dict):
    leases = leases.get("leases", list(leases.values()))
machines = json.load(open(sys.argv[3]))
if isinstance(machines, dict):
    machines = machines.get("machines", list(machines.values()))
clients = {l.split()[1].lower() for l in open(sys.argv[4])}
def field(d, *names):
    for k in names:
        if k in d and d[k] is not None:
            return str(d[k]).lower()
    return None
by_mac, by_ip, bad = {}, {}, []
for l in leases:
    mac = field(l, "mac", "chaddr", "hwaddr")
    ip = field(l, "ip", "address", "addr", "yiaddr")
    if mac is None or ip is None:
        bad.append(f"lease without mac/ip: {l}")
        continue
    mac = mac.replace("-", ":")
    by_mac.setdefault(mac, set()).add(ip)
    by_ip.setdefault(ip, set()).add(mac)
for m in clients:
    if len(by_mac.get(m, ())) != 1:
        bad.append(f"{m} holds {sorted(by_mac.get(m, ()))}")
for ip, macs in by_ip.items():
    if len(macs) > 1:
        bad.append(f"{ip} held by {sorted(macs)}")
states = {}
for m in machines:
    states[m.get("state")] = states.get(m.get("state"), 0) + 1
if len(machines) != n:
    bad.append(f"{len(machines)} machine records, expected {n}")
if states.get("installed", 0) != n:
    bad.append(f"machine states {states}, expected {n} installed")
for b in bad[:20]:
    print("  " + b)
print(f"leases: {len(leases)} for {len(by_mac)} MACs, {len(by_ip)} addresses; records: {len(machines)} {states}")
sys.exit(1 if bad else 0)
PY
}

verdict() {
    if [[ $1 == 0 ]]; then
        echo "PASS: $2"
        exit 0
    fi
    echo "FAIL: $2"
    exit 1
}
