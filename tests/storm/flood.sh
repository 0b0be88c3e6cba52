#!/usr/bin/env bash
# Fault (c): while N legitimate clients boot, a second client in the same
# namespace floods gopxe with malformed DHCP, TFTP and HTTP input
# (tests/storm/flood.py: DHCP and TFTP at RATE packets/s, HTTP at 200
# connections/s, for FLOOD_SECS). Every legitimate client must complete, gopxe must
# stay up and /health must answer. Bounded to about 2 minutes.
# Exit 0 PASS, 1 FAIL, 77 skipped (not root).
set -euo pipefail
N=${N:-100}
RATE=${RATE:-3000}
source "$(dirname "$0")/lib.sh"
fault_setup "$N" 16K 512K 1M
FLOOD_SECS=${FLOOD_SECS:-25}
log "flood: $RATE packets/s of malformed input for ${FLOOD_SECS}s while $N clients boot"
ip netns exec "$NS_CLI" timeout $((FLOOD_SECS + 20)) python3 "$(dirname "$0")/flood.py" \
    "$SRV_IP" "$FLOOD_SECS" "$RATE" udp >"$WORK/flood.out" 2>&1 &
FLOOD_PID=$!
PIDS+=("$FLOOD_PID")
ip netns exec "$NS_CLI" timeout $((FLOOD_SECS + 20)) python3 "$(dirname "$0")/flood.py" \
    "$SRV_IP" "$FLOOD_SECS" 200 http >"$WORK/flood-http.out" 2>&1 &
FLOOD_HTTP_PID=$!
PIDS+=("$FLOOD_HTTP_PID")
sleep 2
rc=0
STORM_TIMEOUT=100 run_storm flood --clients "$N" --concurrency 30 --ramp-ms 8000 \
    --timeout-ms 500 --max-timeout-ms 2000 --retries 4 --attempts 4 --deadline 90 \
    --loader-size 16K --kernel-size 512K --initrd-size 1M || rc=$?
wait "$FLOOD_PID" || true
wait "$FLOOD_HTTP_PID" || true
forget_pid "$FLOOD_PID"
forget_pid "$FLOOD_HTTP_PID"
cat "$WORK/flood.out" "$WORK/flood-http.out"
kill -0 "$GOPXE_PID" 2>/dev/null || verdict 1 "flood: gopxe died ($(tail -3 "$WORK/gopxe.err"))"
cli_curl -sf -o /dev/null "http://$SRV_IP/health" || verdict 1 "flood: /health does not answer"
[[ $rc == 0 ]] || verdict 1 "flood: storm exit $rc (legitimate clients failed)"
check_leases_and_records "$N" || verdict 1 "flood: leases or records inconsistent"
verdict 0 "flood: $N/$N clients done under a malformed-input flood, gopxe up"
