#!/usr/bin/env bash
# Fault (d): a slow-loris client holds CONNS HTTP connections open with
# never-finished request heads (tests/storm/slowloris.py) while a small
# storm boots; GET /health must keep answering within MAX_MS and every
# client must complete. Bounded to about 1 minute.
# Exit 0 PASS, 1 FAIL, 77 skipped (not root).
set -euo pipefail
N=${N:-30}
CONNS=${CONNS:-600}
HOLD=${HOLD:-30}
MAX_MS=${MAX_MS:-500}
source "$(dirname "$0")/lib.sh"
fault_setup "$N" 16K 256K 512K
ulimit -n 4096
log "slow-loris: $CONNS connections held for ${HOLD}s"
ip netns exec "$NS_CLI" timeout $((HOLD + 30)) python3 "$(dirname "$0")/slowloris.py" \
    "$SRV_IP" "$CONNS" "$HOLD" >"$WORK/loris.out" 2>&1 &
LORIS_PID=$!
PIDS+=("$LORIS_PID")
for _ in $(seq 1 100); do
    grep -q opened "$WORK/loris.out" 2>/dev/null && break
    sleep 0.2
done
cat "$WORK/loris.out"
rc=0
STORM_TIMEOUT=60 run_storm slowloris --clients "$N" --concurrency 10 \
    --timeout-ms 500 --retries 4 --attempts 3 --deadline 50 \
    --loader-size 16K --kernel-size 256K --initrd-size 512K >"$WORK/storm.out" 2>&1 &
STORM_PID=$!
PIDS+=("$STORM_PID")
worst=0 slow=0 bad=0
for _ in $(seq 1 20); do
    out=$(cli_curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 "http://$SRV_IP/health" || true)
    code=${out%% *}
    ms=$(awk -v t="${out##* }" 'BEGIN { printf "%d", t * 1000 }')
    [[ $code == 200 ]] || bad=$((bad + 1))
    ((ms > MAX_MS)) && slow=$((slow + 1))
    ((ms > worst)) && worst=$ms
    sleep 1
done
wait "$STORM_PID" || rc=$?
forget_pid "$STORM_PID"
cat "$WORK/storm.out"
log "/health: 20 probes, $bad not 200, $slow slower than ${MAX_MS} ms, worst ${worst} ms"
wait "$LORIS_PID" || true
forget_pid "$LORIS_PID"
cat "$WORK/loris.out"
[[ $bad == 0 && $slow == 0 ]] || verdict 1 "slowloris: /health failed $bad times, slow $slow times (worst ${worst} ms) with $CONNS idle connections"
[[ $rc == 0 ]] || verdict 1 "slowloris: storm exit $rc"
verdict 0 "slowloris: /health answered 20/20 within ${MAX_MS} ms (worst ${worst} ms) with $CONNS slow connections; $N/$N clients done"
