#!/usr/bin/env bash
# A boot storm on loopback, no root needed: gopxe on 127.0.0.1 (DHCP with a
# relay port, TFTP and HTTP on ephemeral ports), N records created through
# the API (writes from loopback need no token), then N clients through the
# whole path with windowsize 4 and the pxelinux UUID probe. PASS when all
# complete and the leases are one per MAC. Bounded to about a minute.
set -euo pipefail
N=${N:-50}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/scripts/target-dir.sh"
WORK=$(mktemp -d /tmp/gopxe-storm-lo.XXXXXX)
GP=""
cleanup() {
    if [[ -n $GP ]]; then
        kill "$GP" 2>/dev/null || true
        wait "$GP" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
for t in curl python3; do
    command -v "$t" >/dev/null || { echo "SKIP: missing $t"; exit 77; }
done
if [[ -z ${GOPXE_BIN:-} ]]; then
    (cd "$ROOT" && cargo build -q --release --bin gopxe)
    GOPXE_BIN=$(gopxe_bin release)
fi
if [[ -z ${STORM_BIN:-} ]]; then
    (cd "$ROOT/tools/storm" && cargo build -q --release)
    STORM_BIN=$(cargo_target_dir "$ROOT/tools/storm")/release/gopxe-storm
fi
mkdir -p "$WORK/images/k"
head -c 16K /dev/urandom >"$WORK/images/pxelinux.0"
head -c 256K /dev/urandom >"$WORK/images/k/vmlinuz"
head -c 512K /dev/urandom >"$WORK/images/k/initrd.img"
# The relay port: a free UDP port, found by binding it.
RP=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$GOPXE_BIN" serve --data-dir "$WORK/data" --images "$WORK/images" \
    --http-listen 127.0.0.1:0 --advertise-addr 127.0.0.1 \
    --dhcp-mode authoritative --dhcp-listen 127.0.0.1:0 --dhcp-relay-port "$RP" \
    --dhcp-range 127.0.1.1,127.0.200.254,255.0.0.0,1h \
    --tftp-listen 127.0.0.1:0 --tftp-max-transfers 128 --tftp-max-per-client 128 \
    >"$WORK/out" 2>"$WORK/err" &
GP=$!
for _ in $(seq 1 100); do
    grep -q "http listening" "$WORK/out" && break
    kill -0 "$GP" 2>/dev/null || break
    sleep 0.1
done
grep -q "http listening" "$WORK/out" || { cat "$WORK/err"; echo "FAIL: loopback: gopxe did not start"; exit 1; }
H=$(grep -o 'http listening on [0-9.:]*' "$WORK/out" | awk '{print $4}' | tr -d ,)
D=$(grep -o 'dhcp ([a-z]*) listening on [0-9.:]*' "$WORK/out" | awk '{print $NF}')
T=$(grep -o 'tftp listening on [0-9.:]*' "$WORK/out" | awk '{print $NF}')
c() { curl -sf --max-time 10 -o /dev/null "$@"; }
c -X POST -H "Content-Type: application/json" "http://$H/bootaction/storm" -d '{"kernel":"k/vmlinuz","initrd":"k/initrd.img"}'
"$STORM_BIN" clients --clients "$N" >"$WORK/clients.txt"
while read -r _ mac _ host; do
    c -X POST -H "Content-Type: application/json" "http://$H/pxeboot" \
        -d "{\"bootaction\":\"storm\",\"ksfile\":\"default\",\"mac\":\"$mac\",\"hostname\":\"$host\"}"
done <"$WORK/clients.txt"
rc=0
timeout 60 "$STORM_BIN" run --dhcp "$D" --relay "127.0.0.1:$RP" --tftp "$T" \
    --clients "$N" --concurrency 25 --windowsize 4 --probe-uuid --http-from-lease \
    --timeout-ms 500 --attempts 3 --deadline 50 --label loopback \
    --loader-size 16K --kernel-size 256K --initrd-size 512K || rc=$?
[[ $rc == 0 ]] || { echo "FAIL: loopback: storm exit $rc"; exit 1; }
curl -sf --max-time 10 "http://$H/leases" | python3 -c '
import json, sys
v = json.load(sys.stdin)
v = v if isinstance(v, list) else v.get("leases", [])
macs = [str(l.get("mac")).lower() for l in v]
ips = [str(l.get("ip")) for l in v]
sys.exit(0 if len(macs) >= int(sys.argv[1]) and len(set(macs)) == len(macs) and len(set(ips)) == len(ips) else 1)' "$N" ||
    { echo "FAIL: loopback: a MAC or an address twice in /leases"; exit 1; }
echo "PASS: loopback: $N/$N clients done"
