#!/usr/bin/env bash
# Fault (a): 5 % packet loss and 20 ms jitter on the link, both ways; a
# storm of N clients with TFTP windowsize W must complete without a
# failure, and the leases and records must be consistent.
#   With sch_netem: `tc netem loss 5% delay 20ms 20ms` on both veth ends
#   (delay jitter, hence some reordering too).
#   Without it (this kernel has none): nftables drops 5 % of all packets,
#   UDP and TCP, arriving in each namespace (so 5 % each way), and gopxe-storm
#   adds 0..20 ms before each UDP packet it sends and after each it
#   receives (--jitter-ms; no reordering in that case).
# Bounded to about 2 minutes. Exit 0 PASS, 1 FAIL, 77 skipped (not root,
# or neither netem nor nft).
set -euo pipefail
N=${N:-40}
W=${WINDOWSIZE:-4}
source "$(dirname "$0")/lib.sh"
need_root
fault_setup "$N" 16K 64K 96K
jitter=()
if ip netns exec "$NS_SRV" tc qdisc add dev "$VETH_S" root netem loss 5% delay 20ms 20ms 2>/dev/null; then
    ip netns exec "$NS_CLI" tc qdisc add dev "$VETH_C" root netem loss 5% delay 20ms 20ms
    how="tc netem loss 5% delay 20ms 20ms, both ends"
elif command -v nft >/dev/null; then
    for ns in "$NS_SRV" "$NS_CLI"; do
        ip netns exec "$ns" nft add table inet storm
        ip netns exec "$ns" nft add chain inet storm in '{ type filter hook input priority 0; }'
        ip netns exec "$ns" nft add rule inet storm in iifname "gst*" numgen random mod 100 '<' 5 counter drop
    done
    jitter=(--jitter-ms 20)
    how="no sch_netem: nft 5% drop each way, client-side 0..20 ms jitter each way"
else
    echo "SKIP: neither tc netem nor nft available"
    exit 77
fi
log "impaired link ($how); storm of $N, windowsize $W"
rc=0
STORM_TIMEOUT=110 run_storm netem --clients "$N" --concurrency "$N" --windowsize "$W" \
    --timeout-ms 300 --max-timeout-ms 1200 --retries 6 --attempts 4 --deadline 100 \
    --loader-size 16K --kernel-size 64K --initrd-size 96K "${jitter[@]}" || rc=$?
for ns in "$NS_SRV" "$NS_CLI"; do
    ip netns exec "$ns" nft list table inet storm 2>/dev/null | grep -o 'counter packets [0-9]*' | sed "s/^/dropped in $ns: /" || true
done
ip netns exec "$NS_SRV" tc qdisc del dev "$VETH_S" root 2>/dev/null || true
ip netns exec "$NS_CLI" tc qdisc del dev "$VETH_C" root 2>/dev/null || true
ip netns exec "$NS_SRV" nft delete table inet storm 2>/dev/null || true
ip netns exec "$NS_CLI" nft delete table inet storm 2>/dev/null || true
[[ $rc == 0 ]] || verdict 1 "netem: storm exit $rc (some clients failed)"
check_leases_and_records "$N" || verdict 1 "netem: leases or records inconsistent"
kill -0 "$GOPXE_PID" || verdict 1 "netem: gopxe died"
verdict 0 "netem: $N/$N clients done under 5% loss and 20 ms jitter"
