#!/usr/bin/env bash
# tests/container/run.sh — the container image, as a person would use it.
#
# Builds the image of Containerfile (FROM scratch + the static musl binary)
# with podman, runs it like the README says (--net=host, the configuration,
# the image tree and the data folder mounted), then over loopback:
#   - reaches /health over HTTP and measures the start time (run -> 200);
#   - downloads a file of the mounted image tree over TFTP (curl tftp://)
#     and over HTTP, and checks both are byte-identical;
#   - writes a boot action through the API and finds it in the mounted
#     data folder (the volume holds the records);
# then stops and removes the container and the image. All podman storage
# lives under a temp folder (--root/--runroot/--tmpdir/--volumepath) that is
# removed at the end: nothing global is left behind.
#
# Exit: 0 pass, 77 skip (not root, or podman cannot run here), else failure.
# As root it installs podman, runc and curl when missing.
#   GOPXE_STATIC_BIN=path  use this static binary instead of building one
#                          with scripts/build-release.sh (host architecture)
# Facts (see the README, "Container"): runc, not crun (cgroups hybrid mode
# here), vfs storage, and a containers.conf without default ulimits and with
# the cgroupfs manager.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

log() { printf 'container: %s\n' "$*" >&2; }
die() { printf 'container: FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'container: SKIP: %s\n' "$*" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (podman with runc and host networking)"

missing=()
for p in podman runc curl python3; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq ||
        skip "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=300 \
        install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        skip "could not install ${missing[*]}"
fi

triple="$(uname -m)-unknown-linux-musl"
case $(uname -m) in
x86_64) platform=linux/amd64 ;;
aarch64) platform=linux/arm64 ;;
*) skip "no release target for $(uname -m)" ;;
esac

# The static binary: given, or built like a release (the binary path is the
# one the Containerfile's build context expects).
if [ -n "${GOPXE_STATIC_BIN:-}" ]; then
    bin=$GOPXE_STATIC_BIN
else
    timeout 1800 scripts/build-release.sh "$triple" >&2
    bin=${CARGO_TARGET_DIR:-target}/$triple/release/gopxe
fi
[ -x "$bin" ] || die "no binary at $bin"
if readelf -lW "$bin" 2>/dev/null | grep -q INTERP; then
    die "$bin is dynamically linked: a FROM scratch image needs a static one"
fi

work=$(mktemp -d /tmp/gopxe-container.XXXXXX)
name="gopxe-test-$$"
image="localhost/gopxe-test:$$"
export CONTAINERS_CONF="$work/containers.conf"
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
P=(podman --root "$work/root" --runroot "$work/runroot" --tmpdir "$work/libpod"
    --volumepath "$work/volumes" --storage-driver vfs --runtime runc
    --cgroup-manager cgroupfs --events-backend file --runtime-flag "root=$work/runc")

# containers/image keeps a blob-info cache at a fixed path for root
# (/var/lib/containers/cache) whatever --root says: remove it again when
# this test made it, without touching anything else found there.
bic=/var/lib/containers/cache/blob-info-cache-v1.boltdb
bic_was_there=no
[ -e "$bic" ] && bic_was_there=yes

cleanup() {
    set +e
    timeout 30 "${P[@]}" rm -f -t 5 "$name" >/dev/null 2>&1
    timeout 30 "${P[@]}" rmi -f "$image" >/dev/null 2>&1
    # Mounts podman may leave (the container's shm) before removing the tree.
    findmnt -rn -o TARGET | grep "^$work/" | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work"
    if [ "$bic_was_there" = no ] && [ -e "$bic" ]; then
        rm -f "$bic"
        rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null
    fi
}
trap cleanup EXIT

"${P[@]}" info >/dev/null 2>"$work/info.err" ||
    skip "podman cannot run here: $(tail -1 "$work/info.err")"

# Two free loopback ports (TCP for HTTP, UDP for TFTP).
read -r hport tport < <(python3 -c '
import socket
t = socket.socket(); t.bind(("127.0.0.1", 0))
u = socket.socket(type=socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
print(t.getsockname()[1], u.getsockname()[1])')

token="container-test-$$-$RANDOM"
mkdir -p "$work/images/pxe" "$work/data"
head -c 300000 /dev/urandom >"$work/images/pxe/blob.bin"
cat >"$work/gopxe.toml" <<EOF
data_dir = "/var/lib/gopxe"
images = "/srv/gopxe/images"
http_listen = "127.0.0.1:$hport"
tftp_listen = "127.0.0.1:$tport"
dhcp_mode = "off"
api_token = "$token"
EOF

# Build with the repository as context, as the README says; the binary is
# staged at the path the Containerfile expects when it lives elsewhere.
ctx=$ROOT
rel=target/$triple/release/gopxe
if [ "$(realpath "$bin")" != "$(realpath -m "$ROOT/$rel")" ]; then
    ctx=$work/context
    mkdir -p "$ctx/$(dirname "$rel")" "$ctx/conf"
    cp "$bin" "$ctx/$rel"
    cp "$ROOT/conf/container.toml" "$ctx/conf/"
    cp "$ROOT/.dockerignore" "$ctx/"
fi
log "podman build ($platform, context $ctx)"
t0=$(date +%s%N)
timeout 300 "${P[@]}" build -q --layers=false --platform "$platform" --build-arg "GOPXE_BIN=$rel" \
    -t "$image" -f "$ROOT/Containerfile" "$ctx" >"$work/build.out" ||
    die "podman build failed"
build_ms=$((($(date +%s%N) - t0) / 1000000))
size=$("${P[@]}" image inspect --format '{{.Size}}' "$image")
binsize=$(stat -c %s "$bin")
log "image built in ${build_ms} ms: ${size} bytes (binary ${binsize} bytes)"
[ "$size" -lt $((binsize + 1048576)) ] || die "image ($size bytes) is more than the binary plus 1 MiB"

log "podman run --net=host"
t0=$(date +%s%N)
timeout 60 "${P[@]}" run -d --name "$name" --net=host \
    -v "$work/gopxe.toml:/etc/gopxe/gopxe.toml:ro" \
    -v "$work/images:/srv/gopxe/images:ro" \
    -v "$work/data:/var/lib/gopxe" \
    "$image" >/dev/null || die "podman run failed"
up=""
for _ in $(seq 1 300); do
    if curl -sf --max-time 2 "http://127.0.0.1:$hport/health" >"$work/health.json" 2>/dev/null; then
        up=yes
        break
    fi
    sleep 0.1
done
start_ms=$((($(date +%s%N) - t0) / 1000000))
if [ -z "$up" ]; then
    timeout 10 "${P[@]}" logs "$name" >&2 || true
    die "no /health answer within 30 s"
fi
grep -q '"status": "ok"' "$work/health.json" || die "unexpected /health: $(cat "$work/health.json")"
log "/health answered ${start_ms} ms after podman run"

timeout 30 curl -sS --max-time 25 -o "$work/tftp.bin" "tftp://127.0.0.1:$tport/pxe/blob.bin" ||
    die "TFTP download failed"
cmp "$work/images/pxe/blob.bin" "$work/tftp.bin" || die "TFTP download differs"
timeout 30 curl -sSf --max-time 25 -o "$work/http.bin" "http://127.0.0.1:$hport/images/pxe/blob.bin" ||
    die "HTTP download failed"
cmp "$work/images/pxe/blob.bin" "$work/http.bin" || die "HTTP download differs"
log "TFTP and HTTP downloads of a 300000-byte file are byte-identical"

code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -d '{"kernel": "pxe/blob.bin"}' \
    "http://127.0.0.1:$hport/bootaction/container")
[ "$code" = 401 ] || die "a write without the token answered $code, not 401"
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"kernel": "pxe/blob.bin"}' "http://127.0.0.1:$hport/bootaction/container")
[ "$code" = 201 ] || die "POST /bootaction answered $code"
# The store appends a change to its journal (journal.<n>) before it
# answers, and writes the record file (container.*) at a later checkpoint:
# either holds the key once the 201 is in.
{ find "$work/data" -type f -name 'container.*' | grep -q . ||
    grep -rlaF container "$work/data" | grep -q '/journal\.[0-9]*$'; } ||
    die "the boot action is not in the mounted data folder"
log "a record written through the API lands in the mounted data folder"

t0=$(date +%s%N)
timeout 30 "${P[@]}" stop -t 10 "$name" >/dev/null || die "podman stop failed"
stop_ms=$((($(date +%s%N) - t0) / 1000000))
exit_code=$("${P[@]}" inspect --format '{{.State.ExitCode}}' "$name")
log "stopped in ${stop_ms} ms (exit code $exit_code)"
[ "$stop_ms" -lt 5000 ] || die "stopping took ${stop_ms} ms (SIGTERM not handled?)"
[ "$exit_code" = 0 ] || die "gopxe exited with $exit_code on SIGTERM, not 0"
timeout 30 "${P[@]}" rm "$name" >/dev/null || die "podman rm failed"
timeout 30 "${P[@]}" rmi "$image" >/dev/null || die "podman rmi failed"
[ -z "$("${P[@]}" ps -aq)" ] || die "containers left"
[ -z "$("${P[@]}" images -aq)" ] || die "images left"
cleanup
trap - EXIT
[ ! -e "$work" ] || die "$work left behind"
[ "$bic_was_there" = yes ] || [ ! -e "$bic" ] || die "$bic left behind"
printf 'container: PASS: image %s bytes, built in %s ms, /health %s ms after run, stopped in %s ms\n' \
    "$size" "$build_ms" "$start_ms" "$stop_ms"
