#!/usr/bin/env bash
# Fault (b): gopxe is killed with SIGKILL in the middle of a storm and
# started again on the same addresses and data dir. Every client must
# complete after its retries; afterwards every client MAC holds exactly
# one lease, no address is held by two MACs, and all N machine records
# are there and `installed` (the call-backs survived the crash).
# Bounded to about 2 minutes. Exit 0 PASS, 1 FAIL, 77 skipped (not root).
set -euo pipefail
N=${N:-100}
KILL_AFTER=${KILL_AFTER:-1.5}
DOWN_FOR=${DOWN_FOR:-1}
source "$(dirname "$0")/lib.sh"
fault_setup "$N" 16K 1M 2M
log "storm of $N; SIGKILL gopxe after ${KILL_AFTER}s, restart after ${DOWN_FOR}s"
STORM_TIMEOUT=110 run_storm kill --clients "$N" --concurrency 50 \
    --timeout-ms 500 --max-timeout-ms 2000 --retries 4 --attempts 5 --deadline 100 \
    --loader-size 16K --kernel-size 1M --initrd-size 2M >"$WORK/storm.out" 2>&1 &
STORM_PID=$!
PIDS+=("$STORM_PID")
sleep "$KILL_AFTER"
# Counted from /metrics, not the log (ACK lines are rate-limited in a storm).
metrics=$(srv_curl -s --max-time 1 "http://$SRV_IP/metrics" || true)
acks=$(awk '/^gopxe_dhcp_packets_total\{type="ACK",outcome="sent"\}/ {print $2}' <<<"$metrics")
done_before=$(awk '/^gopxe_machines\{state="installed"\}/ {print $2}' <<<"$metrics")
acks=${acks:-0} done_before=${done_before:-0}
kill -9 "$GOPXE_PID"
wait "$GOPXE_PID" 2>/dev/null || true
forget_pid "$GOPXE_PID"
log "killed gopxe ($acks DHCP ACKs sent and $done_before machines installed before the kill)"
sleep "$DOWN_FOR"
start_gopxe "$WORK/gopxe-data" "$WORK/images"
log "gopxe restarted (pid $GOPXE_PID)"
rc=0
wait "$STORM_PID" || rc=$?
forget_pid "$STORM_PID"
cat "$WORK/storm.out"
[[ $rc == 0 ]] || verdict 1 "kill: storm exit $rc (some clients failed)"
[[ $acks -gt 0 && $acks -lt $((N * 2)) ]] || log "note: the kill did not land mid-DHCP ($acks ACKs before it)"
check_leases_and_records "$N" || verdict 1 "kill: duplicate/missing leases or lost records after SIGKILL"
verdict 0 "kill: $N/$N clients done across a SIGKILL and restart, leases unique, no record lost"
