#!/usr/bin/env bash
# HTTP benchmark: kickstart renders/s and API writes/s of the release gopxe,
# next to nginx serving a static 4 KiB file, in one run on loopback; plus the
# binary's size and gopxe's RSS idle, under load and with 1,000 open
# connections. Needs wrk and nginx (installed when run as root).
#
# gopxe runs as the README starts it: default configuration and log level
# (RUST_LOG unset: info, to a file), but for the listen address (a free
# loopback port) and temporary data and images directories; the output says
# so.
#
#   benches/http.sh [SECONDS]     (default 5 s per measurement)
#   ROUNDS=5 CONNS=64 benches/http.sh
#   BASELINE=path/to/older/gopxe benches/http.sh   # adds that build's
#       kickstart req/s, measured in the same rounds (not a reference)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-5}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
BASELINE=${BASELINE:-}
if [ -n "$BASELINE" ] && [ ! -x "$BASELINE" ]; then
    echo "BASELINE=$BASELINE is not an executable" >&2
    exit 1
fi

need() {
    local missing=()
    for p in "$@"; do command -v "${p%%:*}" >/dev/null || missing+=("${p##*:}"); done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || { echo "missing ${missing[*]}; run as root to install" >&2; exit 1; }
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}
need wrk:wrk nginx:nginx-light python3:python3 curl:curl

cargo build --release -q
TARGET_DIR=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
TARGET_DIR=${TARGET_DIR:-target}
BIN=$TARGET_DIR/release/gopxe
WORK=$(mktemp -d /tmp/gopxe-bench-http.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 8192

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
reqs() { awk '/Requests\/sec/ {printf "%.0f", $2}'; }
errors() { awk '/Non-2xx|Socket errors/ {print}' ; }

# gopxe, pinned to core 0 (wrk gets core 1), at its default log level.
mkdir -p "$WORK/images"
GOPXE_ARGS=(--http-listen 127.0.0.1:0 --data-dir "$WORK/data" --images "$WORK/images")
echo "gopxe: default configuration and log level (RUST_LOG unset, log to a file), but for:" \
    "--http-listen 127.0.0.1:0 --data-dir <tmp> --images <tmp>"
taskset -c 0 env -u RUST_LOG "$BIN" "${GOPXE_ARGS[@]}" >"$WORK/gopxe.out" 2>"$WORK/gopxe.log" &
GPID=$!; PIDS+=("$GPID")
for _ in $(seq 100); do grep -q "listening on" "$WORK/gopxe.out" 2>/dev/null && break; sleep 0.05; done
GPORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$WORK/gopxe.out")
G="http://127.0.0.1:$GPORT"
curl -fsS -o /dev/null -XPOST -H 'Content-Type: application/json' "$G/bootaction/centos" -d '{"kernel":"centos7/vmlinuz","initrd":"centos7/initrd.img","ksdevice":"link","ip":"dhcp"}'
curl -fsS -o /dev/null -XPOST -H 'Content-Type: application/json' "$G/pxeboot" -d '{"bootaction":"centos","os":"centos-7","version":"7.5.1804","hostname":"bench.lab","ip":"10.1.20.50","mask":"255.255.255.0","gw":"10.1.20.1","ns1":"8.8.8.8","uuid":"42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"}'
sleep 0.5
IDLE=$(rss_kib "$GPID")

# BASELINE: an older build, set up the same way, on the same core.
B=""
if [ -n "$BASELINE" ]; then
    mkdir -p "$WORK/base"
    taskset -c 0 env -u RUST_LOG "$BASELINE" --http-listen 127.0.0.1:0 --data-dir "$WORK/base/data" \
        --images "$WORK/images" >"$WORK/base/out" 2>"$WORK/base/log" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q "listening on" "$WORK/base/out" 2>/dev/null && break; sleep 0.05; done
    B="http://127.0.0.1:$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$WORK/base/out")"
    curl -fsS -o /dev/null -XPOST -H 'Content-Type: application/json' "$B/bootaction/centos" -d '{"kernel":"centos7/vmlinuz","initrd":"centos7/initrd.img","ksdevice":"link","ip":"dhcp"}'
    curl -fsS -o /dev/null -XPOST -H 'Content-Type: application/json' "$B/pxeboot" -d '{"bootaction":"centos","os":"centos-7","version":"7.5.1804","hostname":"bench.lab","ip":"10.1.20.50","mask":"255.255.255.0","gw":"10.1.20.1","ns1":"8.8.8.8","uuid":"42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"}'
fi

# nginx with one worker (gopxe uses one executor thread), also on core 0.
mkdir -p "$WORK/nginx/www" "$WORK/nginx/tmp"
head -c 4096 /dev/urandom >"$WORK/nginx/www/ks.cfg"
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
    server { listen 127.0.0.1:$NPORT; root $WORK/nginx/www; }
}
EOF
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$NPORT/ks.cfg" && break; sleep 0.05; done

KS="/kickstart/?name=default&os=centos-7&version=7.5.1804&fqdn=bench.lab&ip=10.1.20.50&mask=255.255.255.0&gw=10.1.20.1&ns1=8.8.8.8"
echo "kickstart size: $(curl -fsS "$G$KS" | wc -c) bytes; nginx file: 4096 bytes"

W="taskset -c 1 wrk -t1 -c$CONNS -d${DUR}s"
# nginx and gopxe alternate, ROUNDS times, so drift in what else the
# machine runs hits both alike; the medians are compared.
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
N_ALL="" K_ALL="" B_ALL="" RATIOS=""
for _ in $(seq "$ROUNDS"); do
    n=$($W "http://127.0.0.1:$NPORT/ks.cfg" | tee "$WORK/wrk-nginx.txt" | reqs)
    k=$($W "$G$KS" | tee -a "$WORK/wrk-ks.txt" | reqs)
    N_ALL="$N_ALL $n" K_ALL="$K_ALL $k"
    if [ -n "$B" ]; then
        B_ALL="$B_ALL $($W "$B$KS" | reqs)"
    fi
    RATIOS="$RATIOS $(awk -v a="$k" -v b="$n" 'BEGIN{printf "%.2f", a/b}')"
done
NGINX_RPS=$(echo "$N_ALL" | median)
KS_RPS=$(echo "$K_ALL" | median)
PXL_RPS=$($W "$G/pxelinux/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69" | tee "$WORK/wrk-pxl.txt" | reqs)
LOAD_HWM=$(hwm_kib "$GPID")

# 1,000 open keep-alive connections, each having made one request, then idle.
cat >"$WORK/conns.py" <<'EOF'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    socks.append(s)
ok = 0
for s in socks:
    s.settimeout(10)
    if s.recv(4096).startswith(b"HTTP/1.1 200"):
        ok += 1
time.sleep(2.5)  # past the 1 s after which idle keep-alive connections are parked
rss = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0]
print(ok, rss)
EOF
# On the server that just ran the read load above ...
python3 "$WORK/conns.py" "$GPORT" "$GPID" >"$WORK/conns.txt"
read -r CONN_OK CONN_RSS <"$WORK/conns.txt"
cat >"$WORK/post.lua" <<'EOF'
local n = 0
request = function()
    n = n + 1
    local mac = string.format("52:54:%02x:%02x:%02x:%02x", math.random(0,255), math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    local body = '{"bootaction":"centos","os":"rocky","version":"9","hostname":"h' .. n .. '.lab","mac":"' .. mac .. '"}'
    return wrk.format("POST", "/pxeboot", {["Content-Type"] = "application/json"}, body)
end
EOF
WRITE_RPS=$(taskset -c 1 wrk -t1 -c16 -d"${DUR}s" -s "$WORK/post.lua" "$G" | tee "$WORK/wrk-post.txt" | reqs)
WRITE_ERR=$(errors <"$WORK/wrk-post.txt" || true)
WRITE_RSS=$(rss_kib "$GPID")
MACHINES=$(curl -fsS "$G/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["machines"])')

# ... and on fresh servers: this glibc build, and the static musl build the
# appliance ships (built by scripts/build-release.sh when its target is
# installed), whose allocator gives freed connection buffers back.
fresh_conns() { # binary -> "ok rss"
    local dir port pid
    dir=$(mktemp -d "$WORK/fresh.XXXXXX")
    taskset -c 0 env -u RUST_LOG "$1" --http-listen 127.0.0.1:0 --data-dir "$dir/data" \
        --images "$WORK/images" >"$dir/out" 2>"$dir/log" &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.05; done
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$dir/out")
    python3 "$WORK/conns.py" "$port" "$pid"
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
read -r FRESH_OK FRESH_RSS < <(fresh_conns "$BIN")
MUSL=$TARGET_DIR/x86_64-unknown-linux-musl/release/gopxe
MUSL_OK="-" MUSL_RSS="(no musl build)"
if scripts/build-release.sh x86_64-unknown-linux-musl >/dev/null 2>&1 && [ -x "$MUSL" ]; then
    read -r MUSL_OK MUSL_RSS < <(fresh_conns "$MUSL")
fi

SIZE=$(stat -c %s "$BIN")
printf '\n%-44s %12s\n' "measurement ($DUR s, $CONNS connections, 1 core each)" "value"
printf '%-44s %12s\n' "nginx static 4 KiB file, req/s (median)" "$NGINX_RPS"
printf '%-44s %12s\n' "gopxe kickstart render, req/s (median)" "$KS_RPS"
if [ -n "$B" ]; then
    BASE_RPS=$(echo "$B_ALL" | median)
    printf '%-44s %12s\n' "baseline kickstart render, req/s (median)" "$BASE_RPS"
    printf '%-44s %12s\n' "  gopxe / baseline (medians)" "$(awk -v a="$KS_RPS" -v b="$BASE_RPS" 'BEGIN{printf "%.2fx", a/b}')"
    printf '%-44s %12s\n' "  baseline req/s in each round" "$B_ALL"
fi
printf '%-44s %12s\n' "gopxe pxelinux config, req/s" "$PXL_RPS"
printf '%-44s %12s\n' "kickstart / nginx ratio (medians)" "$(awk -v a="$KS_RPS" -v b="$NGINX_RPS" 'BEGIN{printf "%.2fx", a/b}')"
printf '%-44s %12s\n' "  ratio in each of the $ROUNDS rounds" "$RATIOS"
printf '%-44s %12s\n' "  nginx / gopxe req/s in each round" "$N_ALL /$K_ALL"
printf '%-44s %12s\n' "gopxe API writes (fsynced), req/s" "$WRITE_RPS"
printf '%-44s %12s\n' "release binary size, bytes (stripped)" "$SIZE"
printf '%-44s %12s\n' "gopxe RSS idle, KiB" "$IDLE"
printf '%-44s %12s\n' "gopxe peak RSS under load, KiB" "$LOAD_HWM"
printf '%-44s %12s\n' "gopxe RSS, 1000 idle keep-alive conns, KiB" "$CONN_RSS ($CONN_OK/1000 answered, after the read load)"
printf '%-44s %12s\n' "  the same on a fresh server, KiB" "$FRESH_RSS ($FRESH_OK/1000)"
printf '%-44s %12s\n' "  fresh, static musl (appliance) build, KiB" "$MUSL_RSS ($MUSL_OK/1000)"
printf '%-44s %12s\n' "gopxe RSS after the write test, KiB" "$WRITE_RSS ($MACHINES machines stored)"
[ -z "$WRITE_ERR" ] || echo "write errors: $WRITE_ERR"
grep -q "Non-2xx" "$WORK/wrk-ks.txt" && { echo "kickstart run had errors:"; cat "$WORK/wrk-ks.txt"; }
exit 0
