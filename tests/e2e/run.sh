#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# tests/e2e/run.sh — gopxe's end-to-end suite on real firmware (QEMU SeaBIOS
# + iPXE ROM, OVMF) inside a network namespace. Entry point for the test
# command and CI.
#
#   sudo tests/e2e/run.sh [PATTERN...]     PATTERN selects scenarios by name
#
# Needs root (skips loudly with exit 77 otherwise), installs its Debian
# packages when missing, fetches images (scripts/fetch-images.sh), runs the
# harness self-test against dnsmasq (E2E_SELFTEST=0 to skip it), then every
# tests/e2e/scenario-*.sh in order, one at a time, each bounded by
# E2E_SCENARIO_TIMEOUT seconds. Prints a summary table; exits 1 on any
# failure. A scenario whose gopxe feature is not built yet is SKIP, never
# PASS; E2E_STRICT=1 turns skips into failures.
#
# Environment: GOPXE_BIN (default <cargo target dir>/release/gopxe), E2E_IMAGES,
# E2E_ACCEL (kvm|tcg, default: kvm only with kvm_intel/kvm_amd loaded),
# E2E_BOOT_TIMEOUT, E2E_LOG_DIR (default: <cargo target dir>/test-logs/e2e,
# emptied first, so the last run's logs stay there for a look).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$E2E_ROOT/scripts/target-dir.sh"

need_root
SUITE_START=$(date +%s)
if [ -n "${E2E_LOG_DIR:-}" ]; then
    LOG_DIR=$E2E_LOG_DIR
else
    LOG_DIR=$(gopxe_log_dir e2e)
    find "$LOG_DIR" -mindepth 1 -delete
fi
mkdir -p "$LOG_DIR"
export E2E_TIMES=$LOG_DIR/times.tsv
: >"$E2E_TIMES"
SCENARIO_TIMEOUT=${E2E_SCENARIO_TIMEOUT:-600}

install_packages || { echo "FAIL: could not install packages" >&2; exit 1; }
if ! "$E2E_ROOT/scripts/fetch-images.sh" "$E2E_IMAGES" >"$LOG_DIR/fetch-images.log" 2>&1; then
    tail -20 "$LOG_DIR/fetch-images.log" >&2
    echo "FAIL: scripts/fetch-images.sh" >&2
    exit 1
fi
e2e_log "images ready in $E2E_IMAGES (kernel $(cat "$E2E_IMAGES/e2e/KERNEL_VERSION")), accel $(accel_name), logs in $LOG_DIR"

scripts=()
[ "${E2E_SELFTEST:-1}" = 1 ] && scripts+=("$here/selftest-dnsmasq.sh")
# in number order (scenario-9 before scenario-10), not the glob's
while IFS= read -r s; do scripts+=("$s"); done < <(printf '%s\n' "$here"/scenario-*.sh | sort -V)
if [ $# -gt 0 ]; then
    sel=()
    for s in "${scripts[@]}"; do
        for p in "$@"; do case $(basename "$s") in *"$p"*) sel+=("$s"); break ;; esac; done
    done
    scripts=("${sel[@]}")
fi

declare -a NAMES=() RESULTS=() SECS=()
fails=0 skips=0
for s in "${scripts[@]}"; do
    name=$(basename "$s" .sh)
    e2e_log "=== $name ==="
    t0=$(date +%s)
    E2E_WORK=$LOG_DIR/$name E2E_NS="gopxe-e2e-$$-${#NAMES[@]}" E2E_NO_FETCH=1 SCENARIO=$name \
        timeout -k 15 "$SCENARIO_TIMEOUT" "$s" 2>&1 | tee "$LOG_DIR/$name.log"
    rc=${PIPESTATUS[0]}
    dt=$(($(date +%s) - t0))
    case $rc in
        0)   r=PASS ;;
        77)  r=SKIP; skips=$((skips + 1)) ;;
        124) r="FAIL (timeout ${SCENARIO_TIMEOUT}s)"; fails=$((fails + 1)) ;;
        *)   r="FAIL (exit $rc)"; fails=$((fails + 1)) ;;
    esac
    NAMES+=("$name"); RESULTS+=("$r"); SECS+=("$dt")
done

total=$(($(date +%s) - SUITE_START))
{
    echo
    echo "gopxe end-to-end summary (accel $(accel_name), GOPXE_BIN=${GOPXE_BIN:-$(gopxe_bin release)})"
    printf '%-28s %-24s %8s   %s\n' scenario result seconds "power-on -> kickstart marker"
    for i in "${!NAMES[@]}"; do
        marks=$(awk -F'\t' -v n="${NAMES[$i]}" '$1 == n || $1 ~ "^"n {printf "%s%s=%ss", sep, ($4 == "" ? $1 : $4), $2; sep=" "}' "$E2E_TIMES")
        printf '%-28s %-24s %8s   %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${SECS[$i]}" "$marks"
    done
    echo "total ${total}s; $fails failed, $skips skipped; logs: $LOG_DIR"
    [ "$skips" -gt 0 ] && echo "NOTE: SKIP means NOT TESTED (see the SKIP banner in each log)."
} | tee "$LOG_DIR/summary.txt"

[ "$fails" -eq 0 ] || exit 1
if [ "$skips" -gt 0 ] && [ -n "${E2E_STRICT:-}" ]; then exit 1; fi
exit 0
