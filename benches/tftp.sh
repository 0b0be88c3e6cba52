#!/usr/bin/env bash
# TFTP download throughput on loopback: gopxe against tftpd-hpa, dnsmasq and
# rs-tftpd (crates.io `tftpd`). Each server is started here on 127.0.0.1 and
# stopped on exit. Client: atftp (Debian), which speaks blksize and
# windowsize. Prints MiB/s per setting (median of RUNS), the ratio of gopxe
# to the best reference, failures, and the servers' peak RSS.
#
#   bash benches/tftp.sh            # SIZE_MIB=64 RUNS=3 CONC="20 100"
#   SERVERS="gopxe rs-tftpd" ONLY="1468 1,1468 8" CONC= RUNS=5 bash benches/tftp.sh
#
# Needs root only to install missing tools and for dnsmasq (its TFTP port
# is fixed at 69; dnsmasq is skipped when 69 is taken).
set -u

SIZE_MIB=${SIZE_MIB:-64}
RUNS=${RUNS:-3}
CONC=${CONC-"20 100"}
CONC_MIB=${CONC_MIB:-16}
PORT=${PORT:-16969}
TOOLS=${TOOLS:-/tmp/gopxe-bench-tools}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gopxe-tftp-bench.XXXXXX)
SPID=""
SAMPLER=""

cleanup() {
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need_apt() { # binary package
    command -v "$1" >/dev/null && return 0
    echo "installing $2" >&2
    apt-get install -y -qq "$2" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }
}
need_apt atftp atftp
need_apt in.tftpd tftpd-hpa
need_apt dnsmasq dnsmasq-base
if [ ! -x "$TOOLS/bin/tftpd" ]; then
    echo "installing rs-tftpd (cargo install tftpd)" >&2
    cargo install --quiet --locked tftpd --root "$TOOLS" || exit 1
fi
(cd "$HERE" && cargo build --quiet --release) || exit 1
GOPXE="$HERE/target/release/gopxe"

mkdir -p "$WORK/root"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/root/big.bin"
head -c $((CONC_MIB << 20)) /dev/urandom >"$WORK/root/conc.bin"
chmod -R a+rX "$WORK"
SUM_BIG=$(sha256sum <"$WORK/root/big.bin" | cut -d' ' -f1)
SUM_CONC=$(sha256sum <"$WORK/root/conc.bin" | cut -d' ' -f1)

# Peak RSS (KiB) of a process and its children, sampled every 50 ms.
sample_rss() { # pid outfile
    local peak=0 sum p v
    while kill -0 "$1" 2>/dev/null; do
        sum=0
        for p in $1 $(pgrep -P "$1" || true); do
            v=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null)
            sum=$((sum + ${v:-0}))
        done
        [ "$sum" -gt "$peak" ] && peak=$sum && echo "$peak" >"$2"
        sleep 0.05
    done
}

start() { # server -> sets SPID, SPORT; returns 1 if it cannot run
    SPORT=$PORT
    case $1 in
    gopxe) "$GOPXE" serve --tftp-listen "127.0.0.1:$SPORT" --tftp-max-transfers 256 \
        --images "$WORK/root" --data-dir "$WORK/gopxe-data" --http-listen 127.0.0.1:0 \
        --advertise-addr 127.0.0.1 >/dev/null 2>&1 & ;;
    tftpd-hpa) in.tftpd -L -a "127.0.0.1:$SPORT" -u root -s "$WORK/root" 2>/dev/null & ;;
    rs-tftpd) "$TOOLS/bin/tftpd" -i 127.0.0.1 -p "$SPORT" -d "$WORK/root" -r -q >/dev/null 2>&1 & ;;
    dnsmasq)
        SPORT=69
        if ss -uln | grep -q ':69 '; then return 1; fi
        dnsmasq --no-daemon --conf-file=/dev/null --port=0 --enable-tftp \
            --tftp-root="$WORK/root" --listen-address=127.0.0.1 --bind-interfaces \
            --tftp-max=512 --user=root --pid-file= --quiet-tftp 2>/dev/null &
        ;;
    esac
    SPID=$!
    echo 0 >"$WORK/rss"
    sample_rss "$SPID" "$WORK/rss" &
    SAMPLER=$!
    sleep 0.5
    kill -0 "$SPID" 2>/dev/null
}

stop() {
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SPID="" SAMPLER=""
}

supports_window() { [ "$1" = gopxe ] || [ "$1" = rs-tftpd ]; }

# One download: prints seconds, or FAIL.
get() { # file sum blksize windowsize
    local opts=(--option "blksize $3")
    [ "$4" -gt 1 ] && opts+=(--option "windowsize $4")
    local t0 t1 sum
    t0=$(date +%s.%N)
    sum=$(timeout 60 atftp --get -r "$1" -l /dev/stdout "${opts[@]}" 127.0.0.1 "$SPORT" 2>/dev/null |
        sha256sum | cut -d' ' -f1) || true
    t1=$(date +%s.%N)
    if [ "$sum" = "$2" ]; then echo "$t1 - $t0" | bc -l; else echo FAIL; fi
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "FAIL"}'; }

read -r -a SERVERS <<<"${SERVERS:-gopxe tftpd-hpa dnsmasq rs-tftpd}"
SETTINGS=("512 1" "1468 1" "8192 1" "1468 8" "1468 32" "8192 8" "8192 32")
[ -n "${ONLY:-}" ] && IFS=, read -r -a SETTINGS <<<"$ONLY" # e.g. ONLY="1468 1,1468 8"
declare -A RES FAILS RSS
for s in "${SERVERS[@]}"; do
    FAILS[$s]=0
    if ! start "$s"; then
        echo "$s: cannot start (skipped)" >&2
        stop
        continue
    fi
    for set in "${SETTINGS[@]}"; do
        read -r b w <<<"$set"
        if [ "$w" -gt 1 ] && ! supports_window "$s"; then RES[$s,$set]="-"; continue; fi
        times=()
        for _ in $(seq "$RUNS"); do
            t=$(get big.bin "$SUM_BIG" "$b" "$w")
            if [ "$t" = FAIL ]; then FAILS[$s]=$((FAILS[$s] + 1)); else times+=("$t"); fi
        done
        m=$(printf '%s\n' "${times[@]}" | grep -v '^$' | median)
        if [ "$m" = FAIL ]; then RES[$s,$set]=FAIL; else
            RES[$s,$set]=$(echo "$SIZE_MIB / $m" | bc -l | xargs printf '%.1f'); fi
        echo "$s blksize $b windowsize $w: ${RES[$s,$set]} MiB/s" >&2
    done
    for n in $CONC; do
        t0=$(date +%s.%N)
        for i in $(seq "$n"); do
            (r=$(get conc.bin "$SUM_CONC" 1468 1); [ "$r" = FAIL ] && touch "$WORK/fail.$s.$n.$i") &
        done
        wait $(jobs -p | grep -v "^$SPID$" | grep -v "^$SAMPLER$") 2>/dev/null || true
        t1=$(date +%s.%N)
        f=$(find "$WORK" -maxdepth 1 -name "fail.$s.$n.*" | wc -l)
        FAILS[$s]=$((FAILS[$s] + f))
        RES[$s,c$n]=$(echo "$n * $CONC_MIB / ($t1 - $t0)" | bc -l | xargs printf '%.1f')
        [ "$f" -gt 0 ] && RES[$s,c$n]="${RES[$s,c$n]}(${f}F)"
        echo "$s $n concurrent: ${RES[$s,c$n]} MiB/s aggregate" >&2
    done
    RSS[$s]=$(($(cat "$WORK/rss") / 1024))
    stop
done

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
        if [ "$s" != gopxe ] && [[ $v =~ ^[0-9.]+$ ]] && (($(echo "$v > $best" | bc -l))); then best=$v; fi
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
