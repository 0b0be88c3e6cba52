#!/usr/bin/env bash
# TFTP download throughput on loopback: gopxe against tftpd-hpa, dnsmasq and
# rs-tftpd (crates.io `tftpd`). All servers are started here at once, each on
# its own 127.0.0.1 port (dnsmasq on 69), and stopped on exit. The runs are
# interleaved: for each setting, each round downloads once from every server
# (in a rotating order), so a load swing on the machine hits all servers
# alike. Client: atftp (Debian), which speaks blksize and windowsize; it
# writes to tmpfs and the file is checked after the clock stops (hashing
# in the pipe would cap every server at the hash's speed). The concurrent
# rows (CONC downloads of a CONC_MIB file at once, blksize 1468) are
# interleaved the same way. Prints MiB/s per setting (median of RUNS), the
# ratio of gopxe to the best reference, failures, and the servers' peak RSS.
#
#   bash benches/tftp.sh            # SIZE_MIB=64 RUNS=3 CONC="20 100"
#   SERVERS="gopxe rs-tftpd" ONLY="1468 1,1468 8" CONC= RUNS=5 bash benches/tftp.sh
#   BASELINE=/tmp/gopxe-old bash benches/tftp.sh   # adds a column "baseline":
#       another gopxe binary, measured alongside (not a reference)
#   SERVERS="gopxe nopoll" ONLY="512 1,1468 1" CONC= RUNS=5 NETNS=1 bash benches/tftp.sh
#
# SERVERS may name nopoll and alwayspoll: the same gopxe binary started
# with GOPXE_TFTP_POLL=0 (its data threads never poll) or =always (a thread
# with one transfer always polls; see src/tftp/pump/mod.rs), measured
# alongside like the baseline. SHOW_RUNS=1 adds each run's MiB/s to the
# progress lines.
#
# NETNS=1 (root) measures off loopback: it creates two network namespaces,
# gpx-a-<pid> with the servers at 10.96.0.1 and gpx-b-<pid> with the
# client at 10.96.0.2, joined by a veth pair, and deletes them on exit.
# No traffic leaves the pair. The servers' HTTP listeners stay on the
# server namespace's own loopback.
#
# CPU_SERVER and CPU_CLIENT (taskset lists, e.g. 0 and 1) pin the servers
# and the client: on different cores every wake-up crosses cores, on one
# core none does.
#
# Needs root only to install missing tools and for dnsmasq (its TFTP port
# is fixed at 69; dnsmasq is skipped when 69 is taken).
#
# gopxe runs as the README starts it, at its default log level (RUST_LOG
# unset: info, to a file), but for what the benchmark needs and prints:
# its own loopback port, temporary directories, and the transfer limits
# lifted to 256 (every download comes from 127.0.0.1, and the concurrent
# rows run up to 100 at once: past the defaults of 8 per client and 64 in
# all they would be refused).
set -u

SIZE_MIB=${SIZE_MIB:-64}
RUNS=${RUNS:-3}
CONC=${CONC-"20 100"}
CONC_MIB=${CONC_MIB:-16}
PORT=${PORT:-16969}
TOOLS=${TOOLS:-/tmp/gopxe-bench-tools}
BASELINE=${BASELINE:-}
NETNS=${NETNS:-}
# Where the servers listen; INS runs a command beside the servers, INC
# beside the client (both empty on loopback).
HOST=127.0.0.1
INS=()
INC=()
NSA=""
NSB=""
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gopxe-tftp-bench.XXXXXX)
# Downloads land here (tmpfs when there is one), one file per download.
OUT=$(mktemp -d /dev/shm/gopxe-tftp-bench.XXXXXX 2>/dev/null || mktemp -d "$WORK/out.XXXXXX")
declare -A SPID SPORT
SAMPLER=""

cleanup() {
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
    for p in "${SPID[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$NSA" ] && ip netns delete "$NSA" 2>/dev/null
    [ -n "$NSB" ] && ip netns delete "$NSB" 2>/dev/null
    rm -rf "$WORK" "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_apt() { # binary package
    command -v "$1" >/dev/null && return 0
    echo "installing $2" >&2
    apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }
}
read -r -a SERVERS <<<"${SERVERS:-gopxe tftpd-hpa dnsmasq rs-tftpd}"
wants() { [[ " ${SERVERS[*]} " = *" $1 "* ]]; }
need_apt atftp atftp
wants tftpd-hpa && need_apt in.tftpd tftpd-hpa
wants dnsmasq && need_apt dnsmasq dnsmasq-base
need_apt bc bc
if wants rs-tftpd && [ ! -x "$TOOLS/bin/tftpd" ]; then
    echo "installing rs-tftpd (cargo install tftpd)" >&2
    cargo install --quiet --locked tftpd --root "$TOOLS" || exit 1
fi
(cd "$HERE" && cargo build --quiet --release) || exit 1
if [ -n "$NETNS" ]; then
    NSA=gpx-a-$$
    NSB=gpx-b-$$
    { ip netns add "$NSA" && ip netns add "$NSB" &&
        ip link add "gpxa$$" netns "$NSA" type veth peer name "gpxb$$" netns "$NSB" &&
        ip -n "$NSA" addr add 10.96.0.1/24 dev "gpxa$$" &&
        ip -n "$NSB" addr add 10.96.0.2/24 dev "gpxb$$" &&
        ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up &&
        ip -n "$NSA" link set "gpxa$$" up && ip -n "$NSB" link set "gpxb$$" up; } ||
        { echo "NETNS=1: cannot set up the namespaces (root?)" >&2; exit 1; }
    HOST=10.96.0.1
    INS=(ip netns exec "$NSA")
    INC=(ip netns exec "$NSB")
    # Until both ends are up, nothing gets across.
    for _ in $(seq 50); do
        ip -n "$NSA" -br link show "gpxa$$" | grep -q ' UP ' &&
            ip -n "$NSB" -br link show "gpxb$$" | grep -q ' UP ' && break
        sleep 0.1
    done
fi
[ -n "${CPU_SERVER:-}" ] && INS=(taskset -c "$CPU_SERVER" "${INS[@]}")
[ -n "${CPU_CLIENT:-}" ] && INC=(taskset -c "$CPU_CLIENT" "${INC[@]}")
TARGET_DIR=${CARGO_TARGET_DIR:-$(cd "$HERE" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
GOPXE="${TARGET_DIR:-$HERE/target}/release/gopxe"

mkdir -p "$WORK/root"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/root/big.bin"
head -c $((CONC_MIB << 20)) /dev/urandom >"$WORK/root/conc.bin"
chmod -R a+rX "$WORK"
SUM_BIG=$(sha256sum <"$WORK/root/big.bin" | cut -d' ' -f1)
SUM_CONC=$(sha256sum <"$WORK/root/conc.bin" | cut -d' ' -f1)

# Peak RSS (KiB) of each server and its children, sampled every 50 ms into
# $WORK/rss.<server>. One loop for all servers, with shell builtins only, so
# the sampling itself forks nothing while downloads are measured.
sample_rss() {
    local s p sum v k kids nap
    declare -A peak
    exec {nap}<> <(:)
    while :; do
        for s in "${!SPID[@]}"; do
            sum=0
            kids=""
            read -r kids <"/proc/${SPID[$s]}/task/${SPID[$s]}/children" 2>/dev/null
            for p in ${SPID[$s]} $kids; do
                { while read -r k v _; do
                    [ "$k" = VmRSS: ] && sum=$((sum + v)) && break
                done <"/proc/$p/status"; } 2>/dev/null
            done
            if [ "$sum" -gt "${peak[$s]:-0}" ]; then
                peak[$s]=$sum
                echo "$sum" >"$WORK/rss.$s"
            fi
        done
        read -r -t 0.05 -u "$nap"
    done
}

start() { # server port; sets SPID[server]; returns 1 if it cannot run
    local port=$2
    case $1 in
    gopxe | nopoll | alwayspoll | baseline)
        local bin=$GOPXE poll=()
        [ "$1" = baseline ] && bin=$BASELINE
        [ "$1" = nopoll ] && poll=(GOPXE_TFTP_POLL=0)
        [ "$1" = alwayspoll ] && poll=(GOPXE_TFTP_POLL=always)
        # Every download comes from 127.0.0.1: lift the per-client limit
        # (a baseline built before it has no such flag).
        local per=()
        "$bin" --help | grep -q -- --tftp-max-per-client && per=(--tftp-max-per-client 256)
        "${INS[@]}" env -u RUST_LOG "${poll[@]}" "$bin" serve --tftp-listen "$HOST:$port" --tftp-max-transfers 256 \
            "${per[@]}" --images "$WORK/root" --data-dir "$WORK/$1-data" \
            --http-listen 127.0.0.1:0 >/dev/null 2>"$WORK/$1.log" &
        ;;
    tftpd-hpa) "${INS[@]}" in.tftpd -L -a "$HOST:$port" -u root -s "$WORK/root" 2>/dev/null & ;;
    rs-tftpd) "${INS[@]}" "$TOOLS/bin/tftpd" -i "$HOST" -p "$port" -d "$WORK/root" -r -q >/dev/null 2>&1 & ;;
    dnsmasq)
        port=69
        if "${INS[@]}" ss -uln | grep -q ':69 '; then return 1; fi
        "${INS[@]}" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --enable-tftp \
            --tftp-root="$WORK/root" --listen-address="$HOST" --bind-interfaces \
            --tftp-max=512 --user=root --pid-file= --quiet-tftp 2>/dev/null &
        ;;
    esac
    SPID[$1]=$!
    SPORT[$1]=$port
}

# gopxe itself, as opposed to the references.
is_gopxe() { [ "$1" = gopxe ] || [ "$1" = nopoll ] || [ "$1" = alwayspoll ] || [ "$1" = baseline ]; }
supports_window() { is_gopxe "$1" || [ "$1" = rs-tftpd ]; }

# One download: prints seconds, or FAIL. The file is hashed after the
# clock stops.
get() { # port file sum blksize windowsize
    local opts=(--option "blksize $4")
    [ "$5" -gt 1 ] && opts+=(--option "windowsize $5")
    local t0 t1 sum out="$OUT/get.$BASHPID"
    t0=$EPOCHREALTIME
    "${INC[@]}" timeout 60 atftp --get -r "$2" -l "$out" "${opts[@]}" "$HOST" "$1" >/dev/null 2>&1
    t1=$EPOCHREALTIME
    sum=$(sha256sum <"$out" 2>/dev/null | cut -d' ' -f1)
    rm -f "$out"
    if [ "$sum" = "$3" ]; then echo "$t1 - $t0" | bc -l; else echo FAIL; fi
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "FAIL"}'; }

echo "gopxe: default configuration and log level (RUST_LOG unset, log to a file), but for:" \
    "--tftp-listen $HOST:<port> --tftp-max-transfers 256 --tftp-max-per-client 256" \
    "--images <tmp> --data-dir <tmp> --http-listen 127.0.0.1:0"
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || { echo "BASELINE=$BASELINE is not an executable" >&2; exit 1; }
    SERVERS+=(baseline)
fi
SETTINGS=("512 1" "1468 1" "8192 1" "1468 8" "1468 32" "8192 8" "8192 32")
[ -n "${ONLY:-}" ] && IFS=, read -r -a SETTINGS <<<"$ONLY" # e.g. ONLY="1468 1,1468 8"
declare -A RES FAILS RSS
UP=()
i=0
for s in "${SERVERS[@]}"; do
    FAILS[$s]=0
    start "$s" $((PORT + i))
    i=$((i + 1))
done
sleep 0.5
for s in "${SERVERS[@]}"; do
    if [ -n "${SPID[$s]:-}" ] && kill -0 "${SPID[$s]}" 2>/dev/null; then UP+=("$s"); else
        echo "$s: cannot start (skipped)" >&2
        unset "SPID[$s]"
    fi
done
sample_rss &
SAMPLER=$!

# The running servers in round r's order: each round starts one further on.
rotation() { # r
    local n=${#UP[@]} k
    for k in $(seq 0 $((n - 1))); do echo "${UP[$((($1 + k) % n))]}"; done
}

for set in "${SETTINGS[@]}"; do
    read -r b w <<<"$set"
    declare -A TIMES=()
    for r in $(seq "$RUNS"); do
        for s in $(rotation "$r"); do
            supports_window "$s" || [ "$w" -eq 1 ] || continue
            t=$(get "${SPORT[$s]}" big.bin "$SUM_BIG" "$b" "$w")
            if [ "$t" = FAIL ]; then FAILS[$s]=$((FAILS[$s] + 1)); else TIMES[$s]+="$t "; fi
        done
    done
    for s in "${UP[@]}"; do
        if [ "$w" -gt 1 ] && ! supports_window "$s"; then RES[$s,$set]="-"; continue; fi
        m=$(printf '%s\n' ${TIMES[$s]:-} | grep -v '^$' | median)
        if [ "$m" = FAIL ]; then RES[$s,$set]=FAIL; else
            RES[$s,$set]=$(echo "$SIZE_MIB / $m" | bc -l | xargs printf '%.1f'); fi
        runs=""
        if [ -n "${SHOW_RUNS:-}" ]; then
            for t in ${TIMES[$s]:-}; do runs+=" $(echo "$SIZE_MIB / $t" | bc -l | xargs printf '%.1f')"; done
            runs=" (runs:$runs)"
        fi
        echo "$s blksize $b windowsize $w: ${RES[$s,$set]} MiB/s$runs" >&2
    done
    unset TIMES
done
# n downloads at once from server s: prints seconds and failed downloads.
conc() { # server n
    local s=$1 n=$2 t0 t1 i f=0 sum pids=()
    t0=$EPOCHREALTIME
    for i in $(seq "$n"); do
        "${INC[@]}" timeout 60 atftp --get -r conc.bin -l "$OUT/conc.$i" --option "blksize 1468" \
            "$HOST" "${SPORT[$s]}" >/dev/null 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null
    t1=$EPOCHREALTIME
    for i in $(seq "$n"); do
        sum=$(sha256sum <"$OUT/conc.$i" 2>/dev/null | cut -d' ' -f1)
        [ "$sum" = "$SUM_CONC" ] || f=$((f + 1))
        rm -f "$OUT/conc.$i"
    done
    echo "$(echo "$t1 - $t0" | bc -l) $f"
}
# Like the single downloads: RUNS rounds, the servers interleaved, medians.
for n in $CONC; do
    declare -A TIMES=() CF=()
    for r in $(seq "$RUNS"); do
        for s in $(rotation "$r"); do
            read -r t f <<<"$(conc "$s" "$n")"
            FAILS[$s]=$((FAILS[$s] + f))
            CF[$s]=$((${CF[$s]:-0} + f))
            TIMES[$s]+="$t "
        done
    done
    for s in "${UP[@]}"; do
        t=$(printf '%s\n' ${TIMES[$s]:-} | grep -v '^$' | median)
        RES[$s,c$n]=$(echo "$n * $CONC_MIB / $t" | bc -l | xargs printf '%.1f')
        [ "${CF[$s]:-0}" -gt 0 ] && RES[$s,c$n]="${RES[$s,c$n]}(${CF[$s]}F)"
        echo "$s $n concurrent: ${RES[$s,c$n]} MiB/s aggregate" >&2
    done
    unset TIMES CF
done
sleep 0.1
for s in "${UP[@]}"; do RSS[$s]=$(($(cat "$WORK/rss.$s" 2>/dev/null || echo 0) / 1024)); done

printf '\n%-18s' "MiB/s"
for s in "${SERVERS[@]}"; do printf '%12s' "$s"; done
printf '%12s\n' "gopxe/best"
rows=("${SETTINGS[@]}")
for n in $CONC; do rows+=("c$n"); done
for set in "${rows[@]}"; do
    case $set in
    c*) label="${set#c} concurrent 1468" ;;
    *) read -r b w <<<"$set"; label="b$b w$w" ;;
    esac
    printf '%-18s' "$label"
    best=0
    for s in "${SERVERS[@]}"; do
        v=${RES[$s,$set]:-n/a}
        printf '%12s' "$v"
        if ! is_gopxe "$s" && [[ $v =~ ^[0-9.]+$ ]] &&
            (($(echo "$v > $best" | bc -l))); then best=$v; fi
    done
    g=${RES[gopxe,$set]:-}
    if [[ $g =~ ^[0-9.]+$ ]] && (($(echo "$best > 0" | bc -l))); then
        printf '%11.2fx\n' "$(echo "$g / $best" | bc -l)"
    else printf '%12s\n' "-"; fi
done
printf '%-18s' "failures"
for s in "${SERVERS[@]}"; do printf '%12s' "${FAILS[$s]:-n/a}"; done
printf '\n%-18s' "peak RSS MiB"
for s in "${SERVERS[@]}"; do printf '%12s' "${RSS[$s]:-n/a}"; done
printf '\n'
