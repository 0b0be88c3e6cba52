#!/usr/bin/env bash
# Runs the loopback boot storm and the fault scenarios (each bounded to about 2 minutes) and
# prints one PASS/FAIL/SKIP line each. Exit 0 all passed, 1 any failed,
# 77 all skipped (not root).
#   tests/storm/run.sh                 all: loopback netem kill flood slowloris
#                                      (not root: the loopback storm only)
#   tests/storm/run.sh kill flood      some
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "storm fault scenarios need root (network namespaces): only the loopback storm runs"
    exec "$here/loopback.sh"
fi
(cd "$ROOT" && cargo build -q --release --bin gopxe)
(cd "$ROOT/tools/storm" && cargo build -q --release)
source "$ROOT/scripts/target-dir.sh"
export GOPXE_BIN=${GOPXE_BIN:-$(gopxe_bin release)}
export STORM_BIN=${STORM_BIN:-$(cargo_target_dir "$ROOT/tools/storm")/release/gopxe-storm}
# The scenario logs go under the target dir, not /tmp: kept for a look
# after the run, replaced by the next.
LOGS=$(gopxe_log_dir storm)
scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(loopback netem kill flood slowloris)
failed=0 skipped=0 summary=()
for s in "${scenarios[@]}"; do
    rc=0
    timeout 180 "$here/$s.sh" >"$LOGS/$s.log" 2>&1 || rc=$?
    line=$(grep -E '^(PASS|FAIL|SKIP)' "$LOGS/$s.log" | tail -1 || true)
    case $rc in
        0) ;;
        77) skipped=$((skipped + 1)) ;;
        *) failed=$((failed + 1))
           [[ -n $line ]] || line="FAIL: $s: exit $rc (timeout or error)"
           tail -30 "$LOGS/$s.log" ;;
    esac
    summary+=("${line:-$s: exit $rc}   (log: $LOGS/$s.log)")
done
printf '%s\n' "${summary[@]}"
((failed == 0)) || exit 1
((skipped < ${#scenarios[@]})) || exit 77
