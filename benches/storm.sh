#!/usr/bin/env bash
# Boot-storm benchmark: N PXE clients at once (gopxe-storm: relayed DHCP
# DORA with PXE options, TFTP of pxelinux.0, pxelinux.cfg/01-<mac>, kernel
# and initrd, HTTP kickstart and call-back) against
#   gopxe            DHCP + TFTP + HTTP in one process, and
#   dnsmasq + nginx  the classic stack: dnsmasq (DHCP + TFTP, a hosts file
#                    for the N MACs, dhcp-boot=pxelinux.0, lease file) and
#                    nginx serving the same pxelinux.cfg files' kickstarts
#                    as static files (call-back: `return 204`),
# in the same run, over the same veth link between two namespaces (see
# tests/storm/lib.sh), then prints both side by side with the ratio and
# peak RSS (VmHWM; dnsmasq + nginx master + workers summed).
#
# Both get identical files: the pxelinux configs and kickstarts of the
# classic stack are the ones gopxe renders for the same records, with the
# ks= URL pointed at nginx's copy. In gopxe the kickstart fetch and the
# call-back are each a durable record write (as in production); nginx
# serves a static file and answers the call-back with `return 204`. Both TFTP servers allow 256 concurrent
# transfers. dnsmasq runs with --no-ping (its ICMP probe before each offer
# would only add delay here). dnsmasq does not fsync its lease file; gopxe
# fsyncs each group of leases before the ACKs, and group-commits record
# changes: the kickstart fetches and call-backs that arrive while one
# journal fsync runs share the next one, each answered once its batch is
# on disk. The kickstart fetch and the done call-back (the two durable
# writes on the boot path) are printed first, side by side.
#
# gopxe runs at its default log level (RUST_LOG is unset) and default
# settings, but for the addresses of the bench's network and the TFTP
# limits printed at the start (every simulated client comes from one
# address, and both stacks allow 256 concurrent transfers).
#
# Usage: benches/storm.sh                       (needs root)
#        N=200 C=64 KERNEL_SIZE=4M INITRD_SIZE=16M WINDOWSIZE=1 benches/storm.sh
#        SERVERS="gopxe" benches/storm.sh       (gopxe only)
#        PIN=1 benches/storm.sh                 (server on CPU 0, clients on
#                                                CPU 1, as separate machines)
#        GOPXE_BIN=... STORM_BIN=...            (skip the builds)
set -euo pipefail

N=${N:-200}
C=${C:-64}
LOADER_SIZE=${LOADER_SIZE:-42K}
KERNEL_SIZE=${KERNEL_SIZE:-4M}
INITRD_SIZE=${INITRD_SIZE:-16M}
WINDOWSIZE=${WINDOWSIZE:-1}
SERVERS=${SERVERS:-"gopxe classic"}
STORM_FLAGS=${STORM_FLAGS:-}

source "$(dirname "$0")/../tests/storm/lib.sh"
need_root
# gopxe's default log level (info), whatever the caller's environment says.
unset RUST_LOG
trap storm_cleanup EXIT
for t in dnsmasq nginx; do
    if [[ $SERVERS == *classic* ]] && ! command -v "$t" >/dev/null; then
        echo "missing $t (apt-get install dnsmasq nginx)" >&2
        exit 2
    fi
done

build_all
netns_up
prepare_images "$WORK/images" "$LOADER_SIZE" "$KERNEL_SIZE" "$INITRD_SIZE"
clients_file "$N"
# shellcheck disable=SC2206
storm_args=(--clients "$N" --concurrency "$C" --windowsize "$WINDOWSIZE"
    --loader-size "$LOADER_SIZE" --kernel-size "$KERNEL_SIZE" --initrd-size "$INITRD_SIZE"
    $STORM_FLAGS)

# gopxe: records through the API, then its configs and kickstarts are saved
# for the classic stack (reading them changes nothing a boot depends on).
start_gopxe "$WORK/gopxe-data" "$WORK/images"
create_records
mkdir -p "$WORK/classic-tftp/pxelinux.cfg" "$WORK/classic-www/ks"
cp -r "$WORK/images/." "$WORK/classic-tftp/"
: >"$WORK/dnsmasq.hosts"
while read -r _ mac _ host; do
    dashed=${mac//:/-}
    srv_curl -sf "http://$SRV_IP/pxelinux/01-$dashed" >"$WORK/cfg"
    ks=$(grep -o 'ks=[^ ]*' "$WORK/cfg" | head -1 | cut -d= -f2-)
    [[ -n $ks ]] || { echo "no ks= in gopxe's config for $mac" >&2; exit 1; }
    srv_curl -sf "$ks" >"$WORK/classic-www/ks/$dashed.ks"
    sed "s|ks=[^ ]*|ks=http://$SRV_IP/ks/$dashed.ks|" "$WORK/cfg" \
        >"$WORK/classic-tftp/pxelinux.cfg/01-$dashed"
    echo "$mac,$host" >>"$WORK/dnsmasq.hosts"
    # Fetching the kickstart moved the machine to `installing`: back to
    # `install`, so that the storm's fetch makes the durable state change
    # a real installer's fetch makes.
    srv_curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
        "http://$SRV_IP/pxeboot/01-$dashed/reinstall"
done <"$WORK/clients.txt"
log "saved $N configs and kickstarts for the classic stack"

RESULTS=()
echo "gopxe settings: default log level (RUST_LOG unset), default config except" \
    "--tftp-max-transfers 256 --tftp-max-per-client 256 (dnsmasq: --tftp-max=256)" \
    "and the bench network's addresses (see start_gopxe in tests/storm/lib.sh)" >&2
if [[ $PIN == 1 ]]; then
    echo "PIN=1: each server under test runs on CPU 0 only, the simulated clients on CPU 1" >&2
else
    echo "CPUs shared: the server under test and the $C simulated clients run on the same $(nproc) CPUs" >&2
fi
if [[ $SERVERS == *gopxe* ]]; then
    log "storm against gopxe: N=$N C=$C kernel=$KERNEL_SIZE initrd=$INITRD_SIZE windowsize=$WINDOWSIZE"
    rc=0
    cpu0=$(cpu_secs "$GOPXE_PID")
    run_storm gopxe "${storm_args[@]}" || rc=$?
    cpu1=$(cpu_secs "$GOPXE_PID")
    rss=$(peak_rss_kib "$GOPXE_PID")
    echo "gopxe $rss $rc $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" >>"$WORK/rss.txt"
    RESULTS+=(gopxe)
    leases=$(srv_curl -sf -H "Authorization: Bearer $TOKEN" "http://$SRV_IP/leases" | python3 -c 'import sys,json; v=json.load(sys.stdin); print(len(v if isinstance(v,list) else v.get("leases",[])))' || echo "?")
    log "gopxe: storm exit $rc, peak RSS $rss KiB, $leases leases"
fi
kill "$GOPXE_PID" 2>/dev/null || true
wait "$GOPXE_PID" 2>/dev/null || true
forget_pid "$GOPXE_PID"

if [[ $SERVERS == *classic* ]]; then
    mkdir -p "$WORK/nginx-tmp"
    cat >"$WORK/nginx.conf" <<EOF
user root;
worker_processes auto;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log $WORK/nginx-access.log;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    default_type text/plain;
    sendfile on;
    tcp_nodelay on;
    server {
        listen $SRV_IP:80;
        root $WORK/classic-www;
        location ~ /done\$ { return 204; }
    }
}
EOF
    ip netns exec "$NS_SRV" "${SRV_PIN[@]}" nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" \
        >"$WORK/nginx.out" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    ip netns exec "$NS_SRV" "${SRV_PIN[@]}" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 \
        --user=root --interface="$VETH_S" --bind-interfaces \
        --dhcp-range="$POOL,1h" --dhcp-authoritative --no-ping --dhcp-lease-max=100000 \
        --dhcp-hostsfile="$WORK/dnsmasq.hosts" --dhcp-boot=pxelinux.0 \
        --dhcp-leasefile="$WORK/dnsmasq.leases" \
        --enable-tftp --tftp-root="$WORK/classic-tftp" --tftp-max=256 \
        --pid-file="$WORK/dnsmasq.pid" --log-facility="$WORK/dnsmasq.log" \
        >"$WORK/dnsmasq.out" 2>&1 &
    DNSMASQ_PID=$!
    PIDS+=("$DNSMASQ_PID")
    for _ in $(seq 1 100); do
        cli_curl -s -o /dev/null "http://$SRV_IP/ks/" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
    kill -0 "$DNSMASQ_PID" || { cat "$WORK/dnsmasq.out" "$WORK/dnsmasq.log" >&2; exit 1; }
    log "storm against dnsmasq + nginx"
    rc=0
    nginx_pids=("$NGINX_PID")
    mapfile -t workers < <(ps --ppid "$NGINX_PID" -o pid= | tr -d ' ')
    nginx_pids+=("${workers[@]}")
    cpu0=$(cpu_secs "$DNSMASQ_PID" "${nginx_pids[@]}")
    run_storm classic "${storm_args[@]}" || rc=$?
    cpu1=$(cpu_secs "$DNSMASQ_PID" "${nginx_pids[@]}")
    rss_d=$(peak_rss_kib "$DNSMASQ_PID")
    rss_n=$(peak_rss_kib "${nginx_pids[@]}")
    echo "classic $((rss_d + rss_n)) $rc $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }') $rss_d $rss_n" >>"$WORK/rss.txt"
    RESULTS+=(classic)
    log "classic: storm exit $rc, peak RSS dnsmasq $rss_d KiB + nginx $rss_n KiB (${#nginx_pids[@]} processes)"
fi

python3 - "$WORK" "${RESULTS[@]}" <<'EOF'
import json, sys
work, labels = sys.argv[1], sys.argv[2:]
rss, cpu = {}, {}
for line in open(f"{work}/rss.txt"):
    f = line.split()
    rss[f[0]] = int(f[1])
    cpu[f[0]] = float(f[3])
runs = {l: json.load(open(f"{work}/{l}.json")) for l in labels}
names = {"gopxe": "gopxe", "classic": "dnsmasq+nginx"}
cols = [names[l] for l in labels]
if len(labels) == 2:
    cols.append("classic/gopxe")
print()
print(f"{'':<22}" + "".join(f"{c:>16}" for c in cols))
def row(title, vals, ratio=True, fmt="{:.1f}"):
    cells = [fmt.format(v) for v in vals]
    if len(vals) == 2:
        cells.append(f"{vals[1]/vals[0]:.3g}x" if ratio and vals[0] else "")
    print(f"{title:<22}" + "".join(f"{c:>16}" for c in cells))
r = [runs[l] for l in labels]
# The two durable writes on the boot path first, the latency the
# installers see (retries included).
for p, title in [("http-ks", "kickstart fetch"), ("http-done", "done call-back")]:
    for q in ["p50", "p99"]:
        row(f"{title} {q} ms", [x["phases"][p][f"{q}_ms"] for x in r])
print("-" * (22 + 16 * len(cols)))
row("clients done", [x["done"] for x in r], False, "{}")
row("failed", [x["failed"] for x in r], False, "{}")
row("time to all done s", [x["wall_s"] for x in r], True, "{:.2f}")
for p in ["dhcp", "tftp-loader", "tftp-config", "tftp-kernel", "tftp-initrd", "total"]:
    row(f"{p} p50 ms", [x["phases"][p]["p50_ms"] for x in r])
    row(f"{p} p99 ms", [x["phases"][p]["p99_ms"] for x in r])
row("phase failures", [sum(v["fail"] for k, v in x["phases"].items() if k != "total") for x in r], False, "{}")
row("retransmissions", [sum(v["retrans"] for v in x["phases"].values()) for x in r], False, "{}")
row("peak RSS MiB", [rss[l] / 1024 for l in labels], True, "{:.1f}")
row("server CPU s (storm)", [cpu[l] for l in labels], True, "{:.2f}")
print("(classic/gopxe > 1: gopxe faster or smaller; peak RSS is VmHWM, nginx master + workers summed)")
EOF
if awk '$3 != 0 { bad = 1 } END { exit !bad }' "$WORK/rss.txt"; then
    echo "some storm failed (see the failures above)" >&2
    exit 1
fi
