# shellcheck shell=bash disable=SC2034
# tests/e2e/gopxe.sh — what the e2e scenarios expect from the gopxe binary.
# Sourced after lib.sh. Everything gopxe-specific (flags, endpoints, log and
# event wording) is here, in one place, so it can follow the binary.
#
#   gopxe_require FLAG...      SKIP (exit 77) unless `gopxe serve --help` lists them
#   gopxe_start MODE [ARGS...] run `gopxe serve` in the namespace (MODE:
#                              authoritative | proxy), wait for the API
#   api METHOD PATH [JSON]     curl the API; sets API_STATUS, API_BODY
#   api_ok METHOD PATH [JSON]  same, fail the scenario unless 2xx
#   create_bootaction NAME [EXTRA_JSON_FIELDS]
#   create_machine JSON
#   expect_steps ID REGEX...   each REGEX must match gopxe's events for ID or its log
#   boot_to_kickstart NAME KIND MAC UUID HOSTNAME [REGEX...]
#   scenario_pass / scenario_fail MSG

source "$E2E_ROOT/scripts/target-dir.sh"
GOPXE_BIN=${GOPXE_BIN:-$(gopxe_bin release)}
GOPXE_HTTP_PORT=${GOPXE_HTTP_PORT:-9090}
GOPXE_API=http://$E2E_SERVER_IP:$GOPXE_HTTP_PORT
GOPXE_DHCP_RANGE=${GOPXE_DHCP_RANGE:-10.99.0.100,10.99.0.200,255.255.255.0,1h}
GOPXE_LOG_LEVEL=${GOPXE_LOG_LEVEL:-debug}
# API writes need a bearer token unless they come from loopback; the test's
# curl reaches gopxe over br0, so it configures one when gopxe has the flag.
GOPXE_TOKEN=${GOPXE_TOKEN:-e2e-$(date +%s)-$$}
# Extra flags for `gopxe serve`, e.g. GOPXE_EXTRA_ARGS="--config x.toml".
GOPXE_EXTRA_ARGS=${GOPXE_EXTRA_ARGS:-}
# Boot-action fields that make a machine boot through iPXE over HTTP
# (scenario 3). The lead sets this to whatever gopxe's BootAction takes.
GOPXE_IPXE_FIELDS=${GOPXE_IPXE_FIELDS:-\"loader\": \"ipxe\"}
# Boot-action fields that keep a machine on pxelinux / syslinux.efi whatever
# the firmware class's default family is (scenario 4: x64 UEFI defaults to
# shim-grub once gopxe has the `loader` setting).
GOPXE_PXELINUX_FIELDS=${GOPXE_PXELINUX_FIELDS:-\"loader\": \"pxelinux\"}

# Log wording gopxe is expected to use (extended regexes, case-insensitive).
GOPXE_RE_UNKNOWN=${GOPXE_RE_UNKNOWN:-unknown}
GOPXE_RE_DHCP=${GOPXE_RE_DHCP:-dhcp.*(offer|ack)|(offer|ack).*dhcp}
GOPXE_RE_PROXY=${GOPXE_RE_PROXY:-proxy|4011}
BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-180}

SCENARIO=${SCENARIO:-$(basename "$0" .sh)}
GOPXE_PID=""

scenario_skip() {
    {
        echo "##################################################################"
        echo "## SKIP $SCENARIO: $*"
        echo "##################################################################"
    } >&2
    exit "$E2E_SKIP"
}
scenario_fail() {
    e2e_log "FAIL $SCENARIO: $*"
    if [ -n "${CUR_VM:-}" ] && [ -n "${VM_LOG[$CUR_VM]:-}" ]; then
        report_failure "$E2E_WORK/gopxe.log" "${VM_LOG[$CUR_VM]}"
    elif [ -f "$E2E_WORK/gopxe.log" ]; then
        echo "last gopxe log lines:" >&2; tail -n 30 "$E2E_WORK/gopxe.log" | sed 's/^/  | /' >&2
    fi
    exit 1
}
scenario_pass() { e2e_log "PASS $SCENARIO${1:+: $1}"; exit 0; }

_gopxe_help() {
    [ -n "${_GOPXE_HELP+x}" ] && { printf '%s' "$_GOPXE_HELP"; return; }
    _GOPXE_HELP=$({ timeout 10 "$GOPXE_BIN" serve --help; timeout 10 "$GOPXE_BIN" --help; } 2>&1 || true)
    printf '%s' "$_GOPXE_HELP"
}
# (here-strings, not pipes: grep -q closing early + pipefail = false negatives)
gopxe_has_flag() { local h; h=$(_gopxe_help); grep -q -- "$1" <<<"$h"; }

# gopxe_require FLAG...: the binary exists and its help lists every FLAG.
gopxe_require() {
    [ -x "$GOPXE_BIN" ] || scenario_skip "no gopxe binary at $GOPXE_BIN (build it: cargo build --release, or set GOPXE_BIN)"
    local f missing=()
    for f in "$@"; do gopxe_has_flag "$f" || missing+=("$f"); done
    [ ${#missing[@]} -eq 0 ] || scenario_skip "$GOPXE_BIN lacks ${missing[*]} (feature not built yet)"
}

# gopxe_start MODE [EXTRA ARGS...]: start gopxe in the namespace, bound to br0.
gopxe_start() {
    local mode=$1; shift
    local args=(serve --data-dir "$E2E_WORK/data" --images "$E2E_IMAGES"
                --http-listen "$E2E_SERVER_IP:$GOPXE_HTTP_PORT"
                --advertise-addr "$E2E_SERVER_IP"
                --tftp-listen "$E2E_SERVER_IP:69"
                --dhcp-mode "$mode" --interface br0)
    [ "$mode" = authoritative ] && args+=(--dhcp-range "$GOPXE_DHCP_RANGE")
    if gopxe_has_flag --api-token; then args+=(--api-token "$GOPXE_TOKEN"); fi
    # shellcheck disable=SC2206
    [ -n "$GOPXE_EXTRA_ARGS" ] && args+=($GOPXE_EXTRA_ARGS)
    args+=("$@")
    mkdir -p "$E2E_WORK/data"
    echo "$GOPXE_BIN ${args[*]}" >"$E2E_WORK/gopxe.cmd"
    e2e_log "gopxe: $(cat "$E2E_WORK/gopxe.cmd")"
    bg_in_ns "$E2E_WORK/gopxe.log" env RUST_LOG="$GOPXE_LOG_LEVEL" GOPXE_API_TOKEN="$GOPXE_TOKEN" \
        "$GOPXE_BIN" "${args[@]}"
    GOPXE_PID=$BG_PID
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$GOPXE_PID" 2>/dev/null || scenario_fail "gopxe exited at start-up (see $E2E_WORK/gopxe.log)"
        if run_in_ns curl -s -o /dev/null -m 2 "$GOPXE_API/health"; then
            e2e_log "gopxe up (pid $GOPXE_PID), API $GOPXE_API"
            break
        fi
        sleep 0.2
    done
    [ "$i" -lt 100 ] || scenario_fail "gopxe API did not answer on $GOPXE_API/health within 20 s"
    # A binary may take the flags before it serves the protocol: probe the
    # sockets, and SKIP (not FAIL) while DHCP/TFTP are not wired yet.
    if [ "$mode" != off ]; then
        gopxe_listens udp 67 5 || scenario_skip "gopxe took --dhcp-mode $mode but does not listen on udp/67 (DHCP not wired yet)"
        if [ "$mode" = proxy ] && ! gopxe_listens udp 4011 3; then
            e2e_log "WARN: gopxe in proxy mode does not listen on udp/4011 (PXE boot-server discovery)"
        fi
    fi
    if [ "${GOPXE_NEED_TFTP:-1}" = 1 ]; then
        gopxe_listens udp 69 5 || scenario_skip "gopxe took --tftp-listen but does not listen on udp/69 (TFTP not wired yet)"
    fi
}

# gopxe_listens PROTO PORT TIMEOUT: gopxe's process (or a child of it) has a
# socket on PORT.
gopxe_listens() {
    local proto=$1 port=$2 t=$3 end pids
    end=$(($(date +%s) + t))
    while :; do
        pids=$(ps -o pid= --ppid "$GOPXE_PID" 2>/dev/null | tr -s ' \n' '|' | sed 's/^|//; s/|$//')
        pids=$GOPXE_PID${pids:+|$pids}
        if run_in_ns ss -Hlnp"${proto:0:1}" 2>/dev/null \
                | grep -E ":${port}[[:space:]].*pid=($pids)," >/dev/null; then
            return 0
        fi
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}
gopxe_alive() { [ -n "$GOPXE_PID" ] && kill -0 "$GOPXE_PID" 2>/dev/null; }

# api METHOD PATH [JSON]: sets API_STATUS and API_BODY; logs the exchange.
api() {
    local method=$1 path=$2 data=${3:-} out=$E2E_WORK/api.out
    local curl=(curl -s -m 10 -o "$out" -w '%{http_code}' -X "$method"
                -H "Authorization: Bearer $GOPXE_TOKEN")
    [ -n "$data" ] && curl+=(-H 'Content-Type: application/json' --data-binary "$data")
    API_STATUS=$(run_in_ns "${curl[@]}" "$GOPXE_API$path" || true)
    API_BODY=$(cat "$out" 2>/dev/null || true)
    printf '%s %s %s -> %s %s\n' "$method" "$path" "$data" "$API_STATUS" "$API_BODY" \
        | tr '\n' ' ' | sed 's/ $/\n/' >>"$E2E_WORK/api.log"
    echo >>"$E2E_WORK/api.log"
}
api_ok() {
    api "$@"
    case $API_STATUS in 2??) ;; *) scenario_fail "$1 $2 answered ${API_STATUS:-nothing}: $API_BODY" ;; esac
}

# create_bootaction NAME [EXTRA JSON FIELDS]: the original README's call, with
# the e2e kernel and initrd from images/e2e/.
create_bootaction() {
    local name=$1 extra=${2:-}
    api_ok POST "/bootaction/$name" "{
  \"default\": \"linux\",
  \"label\": \"linux\",
  \"menu\": \"e2e\",
  \"kernel\": \"e2e/vmlinuz\",
  \"ksdevice\": \"link\",
  \"ip\": \"dhcp\",
  \"load_ramdisk\": \"1\",
  \"initrd\": \"e2e/initrd.img\"${extra:+,
  $extra}
}"
}

# create_machine ID BOOTACTION HOSTNAME [IP]: the README's PXEBoot record (with
# the network options when IP is given). ID goes in the "uuid" field verbatim.
create_machine() {
    local id=$1 ba=$2 host=$3 ip=${4:-} net=""
    [ -n "$ip" ] && net="\"ip\": \"$ip\", \"mask\": \"255.255.255.0\", \"ns1\": \"10.99.0.1\", \"ns2\": \"10.99.0.2\", \"gw\": \"10.99.0.1\","
    api_ok POST /pxeboot "{
  \"bootaction\": \"$ba\",
  \"ksfile\": \"default\",
  \"os\": \"centos-7\",
  \"version\": \"7.5.1804\",
  \"hostname\": \"$host\", $net
  \"uuid\": \"$id\"
}"
}

# smbios_swapped UUID: the form pxelinux asks for (first three fields byte-swapped)
smbios_swapped() {
    local u=${1,,}
    local a=${u:0:8} b=${u:9:4} c=${u:14:4} rest=${u:18}
    echo "${a:6:2}${a:4:2}${a:2:2}${a:0:2}-${b:2:2}${b:0:2}-${c:2:2}${c:0:2}${rest}"
}
mac_dashes() { local m=${1,,}; echo "01-${m//:/-}"; }

# events_text ID: the machine's event log (JSON) as one string.
events_text() { api GET "/pxeboot/$1/events"; printf '%s' "$API_BODY"; }

# expect_steps ID REGEX...: every REGEX (case-insensitive ERE) must match the
# machine's events or, failing that, gopxe's log.
expect_steps() {
    local id=$1; shift
    local ev re miss=()
    ev=$(events_text "$id")
    printf '%s\n' "$ev" >"$E2E_WORK/events.$(echo "$id" | tr -c 'A-Za-z0-9.-' _).json"
    for re in "$@"; do
        grep -qiE -- "$re" <<<"$ev" && continue
        grep -aqiE -- "$re" "$E2E_WORK/gopxe.log" && continue
        miss+=("$re")
    done
    [ ${#miss[@]} -eq 0 ] || scenario_fail "steps not seen in gopxe's events for $id or its log: ${miss[*]}"
}

# tftp_get PATH: fetch a file from gopxe's TFTP server (inside the namespace).
tftp_get() { run_in_ns curl -s -m 10 "tftp://$E2E_SERVER_IP/$1"; }

# boot_to_kickstart VMNAME KIND MAC UUID HOSTNAME [TEXT...]
#   KIND: bios | bios-e1000 | uefi. Boots, waits for the kickstart marker,
#   checks HOSTNAME and every TEXT appear in the printed kickstart, waits for
#   the done callback and the power-off. Sets BOOT_SECS and DONE_STATUS.
boot_to_kickstart() {
    local name=$1 kind=$2 mac=$3 uuid=$4 host=$5; shift 5
    CUR_VM=$name
    case $kind in
        bios)       boot_bios "$name" "$mac" "$uuid" "$BOOT_TIMEOUT" virtio ;;
        bios-e1000) boot_bios "$name" "$mac" "$uuid" "$BOOT_TIMEOUT" e1000 ;;
        uefi)       boot_uefi "$name" "$mac" "$uuid" "$BOOT_TIMEOUT" ;;
        *) scenario_fail "unknown machine kind $kind" ;;
    esac
    local rc=0
    wait_for_marker "${VM_LOG[$name]}" "$MARK_KS_END|$MARK_KS_FAIL|$BOOT_FAIL_RE" "$BOOT_TIMEOUT" "$name" || rc=$?
    case $rc in
        1) vm_kill "$name"; scenario_fail "$name: no kickstart marker within ${BOOT_TIMEOUT}s" ;;
        2) scenario_fail "$name: machine powered off without printing the kickstart" ;;
    esac
    if ! serial_has "${VM_LOG[$name]}" "$MARK_KS_END"; then
        sleep 2; vm_kill "$name"
        scenario_fail "$name: boot failed: $(serial_text "${VM_LOG[$name]}" | grep -oE "$BOOT_FAIL_RE" | head -1)"
    fi
    if serial_has "${VM_LOG[$name]}" "$MARK_KS_FAIL"; then
        vm_kill "$name"
        scenario_fail "$name: initrd could not fetch the kickstart ($(serial_text "${VM_LOG[$name]}" | grep -o "$MARK_KS_FAIL.*"))"
    fi
    BOOT_SECS=$MARKER_SECS
    local ks t
    ks=$(kickstart_text "${VM_LOG[$name]}")
    printf '%s\n' "$ks" >"$E2E_WORK/$name.ks"
    grep -qF -- "$host" <<<"$ks" || scenario_fail "$name: kickstart lacks hostname $host"
    for t in "$@"; do
        grep -qF -- "$t" <<<"$ks" || scenario_fail "$name: kickstart lacks '$t'"
    done
    wait_for_marker "${VM_LOG[$name]}" "$MARK_DONE" 40 "$name" || true
    DONE_STATUS=$(serial_text "${VM_LOG[$name]}" | sed -n 's/.*=== GOPXE DONE \([^ ]*\) ===.*/\1/p' | tail -1)
    vm_wait "$name" 40 || e2e_log "WARN: $name did not power off by itself"
    record_time "$SCENARIO" "$BOOT_SECS" "$name"
    CUR_VM=""
}

# gopxe_scenario_init [NTAPS]: the common start of every gopxe scenario.
gopxe_scenario_init() {
    need_root
    e2e_init
    [ -f "$E2E_IMAGES/e2e/initrd.img" ] || scenario_skip "no $E2E_IMAGES/e2e/initrd.img: run scripts/fetch-images.sh"
    ns_setup "${1:-2}"
    start_ra_helper
}
