#!/usr/bin/env bash
# initscript.sh — the overlay's service scripts on this machine, run by
# BusyBox sh with BusyBox applets first in PATH (as on the appliance), in a
# scratch directory (GOPXE_DEFAULTS points them at it):
#
#   S50gopxe: status when stopped, start (seeds the config, copies the
#   firmware boot loaders, gopxe answers /health, output in the log file),
#   start again (already running), respawn after kill -9 of gopxe, stop
#   (nothing left), refusal to start on a bad configuration;
#   S30gopxe-data (root only, in a private mount namespace): the tmpfs
#   fallback with its warning and VOLATILE marker, and the plain-directory
#   case on a persistent file system;
#   console wrapper: on a pseudo-terminal (tests/appliance/pty_dialog.py) it
#   runs `gopxe console` (its status banner and menu), and after `q` starts
#   the fallback (here a shell).
#
# Exit: 0 pass, 1 fail, 77 skip (no busybox).
set -Eeuo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OVL=$ROOT/buildroot-overlay

say() { printf 'initscript: %s\n' "$*"; }
fail() { printf 'initscript: FAIL: %s\n' "$*" >&2; exit 1; }

BB=$(command -v busybox || true)
[ -n "$BB" ] || { say "SKIP: no busybox (apt-get install busybox-static)"; exit 77; }
BIN=${GOPXE_X86_64_BIN:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/gopxe}
if [ -z "${GOPXE_X86_64_BIN:-}" ] || [ ! -x "$BIN" ]; then scripts/build-release.sh x86_64-unknown-linux-musl; fi
BIN=$(realpath "$BIN")

WORK=$(mktemp -d /tmp/gopxe-initscript.XXXXXX)
cleanup() {
    local f p
    # Only what this test started: the PIDs in its own pid files.
    for f in "$WORK/run/gopxe-supervise.pid" "$WORK/run/gopxe.pid"; do
        if [ -f "$f" ]; then
            p=$(cat "$f")
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/bb" "$WORK/fwimages/efi64" "$WORK/run"
"$BB" --install -s "$WORK/bb"
export PATH="$WORK/bb:$PATH"
SH="$WORK/bb/sh"

echo "firmware pxelinux" >"$WORK/fwimages/pxelinux.0"
echo "firmware menu" >"$WORK/fwimages/efi64/menu.c32"
cat >"$WORK/factory.toml" <<EOT
data_dir = "$WORK/state/data"
images = "$WORK/state/images"
http_listen = "127.0.0.1:0"
tftp_listen = "off"
dhcp_mode = "off"
EOT
cat >"$WORK/default" <<EOT
GOPXE_BIN=$BIN
GOPXE_FACTORY_CONFIG=$WORK/factory.toml
GOPXE_STATE=$WORK/state
GOPXE_CONFIG=$WORK/state/gopxe.toml
GOPXE_FIRMWARE_IMAGES=$WORK/fwimages
GOPXE_LOG=$WORK/state/log/gopxe.log
GOPXE_RUNDIR=$WORK/run
GOPXE_SUPERVISE=$OVL/usr/libexec/gopxe/supervise
GOPXE_WARN_DEV=$WORK/console
GOPXE_LOG_MAX_KB=64
RUST_LOG=info
EOT
export GOPXE_DEFAULTS=$WORK/default
S50() { "$SH" "$OVL/etc/init.d/S50gopxe" "$@"; }
LOG=$WORK/state/log/gopxe.log
pidof_file() { cat "$WORK/run/$1" 2>/dev/null || true; }

# wait_health [OLDPORT]: port of the newest "listening on" line (different
# from OLDPORT), once GET /health answers; bounded to 20 s.
wait_health() {
    local old=${1:-} port
    for _ in $(seq 200); do
        port=$(sed -n 's/.*http listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$LOG" 2>/dev/null | tail -n 1 || true)
        if [ -n "$port" ] && [ "$port" != "$old" ] &&
            curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
            echo "$port"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---- S50gopxe -------------------------------------------------------------------
set +e; out=$(S50 status); rc=$?; set -e
[ $rc -eq 3 ] || fail "status when stopped: exit $rc ($out), want 3"
say "status (stopped): $out"

out=$(S50 start) || fail "start failed: $out"
say "start: $(echo "$out" | tr '\n' ' ')"
[ -f "$WORK/state/gopxe.toml" ] || fail "the configuration was not seeded"
cmp -s "$WORK/state/images/pxelinux.0" "$WORK/fwimages/pxelinux.0" || fail "firmware boot loaders not copied"
cmp -s "$WORK/state/images/efi64/menu.c32" "$WORK/fwimages/efi64/menu.c32" || fail "firmware subfolder not copied"
port=$(wait_health) || { cat "$LOG" >&2; fail "gopxe did not answer /health"; }
say "gopxe answers on 127.0.0.1:$port; log: $(grep -c . "$LOG") lines in $LOG"
grep -q 'listening on' "$LOG" || fail "no gopxe output in the log file"

out=$(S50 status) || fail "status when running: $out"
say "status (running): $out"
out=$(S50 start) || fail "second start failed: $out"
case $out in *"already running"*) ;; *) fail "second start: $out" ;; esac

# respawn
g1=$(pidof_file gopxe.pid); s1=$(pidof_file gopxe-supervise.pid)
head -c 100000 /dev/zero | tr '\0' x >>"$LOG"   # over GOPXE_LOG_MAX_KB: rotated at the restart
kill -KILL "$g1"
port2=$(wait_health "$port") || { cat "$LOG" >&2; fail "gopxe was not started again after kill -9"; }
# The supervisor writes the pid file just after starting gopxe, which may
# already be answering: wait for it (bounded).
for _ in $(seq 50); do
    g2=$(pidof_file gopxe.pid)
    { [ -n "$g2" ] && [ "$g2" != "$g1" ]; } && break
    sleep 0.1
done
{ [ -n "$g2" ] && [ "$g2" != "$g1" ]; } || fail "no new gopxe pid after kill -9 (was $g1, now $g2)"
[ "$(pidof_file gopxe-supervise.pid)" = "$s1" ] || fail "the supervisor changed"
cat "$LOG.1" "$LOG" 2>/dev/null | grep -q "gopxe exited with status" || fail "the restart is not logged"
{ [ -f "$LOG.1" ] && [ "$(stat -c %s "$LOG")" -lt 65536 ]; } || fail "the log was not rotated"
say "respawn: kill -9 of pid $g1 -> pid $g2 answering on port $port2; log rotated to $LOG.1"

# stop
out=$(S50 stop) || fail "stop failed: $out"
say "stop: $out"
for p in "$g2" "$s1"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    ! kill -0 "$p" 2>/dev/null || fail "pid $p still running after stop"
done
if [ -e "$WORK/run/gopxe.pid" ] || [ -e "$WORK/run/gopxe-supervise.pid" ]; then fail "pid files left behind"; fi
set +e; S50 status >/dev/null; rc=$?; set -e
[ $rc -eq 3 ] || fail "status after stop: exit $rc"

# a bad configuration is refused at start, with the reason
sed -i 's/^dhcp_mode.*/dhcp_mode = "sometimes"/' "$WORK/state/gopxe.toml"
set +e; out=$(S50 start 2>&1); rc=$?; set -e
[ $rc -ne 0 ] || { S50 stop >/dev/null; fail "start with a bad configuration succeeded"; }
case $out in *dhcp_mode*) ;; *) fail "the refusal does not name the bad key: $out" ;; esac
[ ! -e "$WORK/run/gopxe-supervise.pid" ] || fail "a supervisor was started for a bad configuration"
say "bad configuration refused: $(echo "$out" | grep -m1 dhcp_mode)"

# ---- console wrapper: gopxe console, then the fallback ---------------------------
if command -v python3 >/dev/null; then
    cp "$WORK/factory.toml" "$WORK/state/gopxe.toml"
    echo "GOPXE_CONSOLE_FALLBACK=shell" >>"$WORK/default"
    # On a pseudo-terminal: the wrapper reopens it by name and runs gopxe
    # console (its banner and menu; `q` leaves it), then starts the fallback
    # shell, which runs what we type and exits. Each line is typed only once
    # the text before it has appeared, so a slow start cannot eat it.
    # shellcheck disable=SC2016 # expanded by the inner shell
    set +e
    out=$(python3 "$ROOT/tests/appliance/pty_dialog.py" 20 \
        "$SH -c '$SH $OVL/usr/libexec/gopxe/console \$(tty)'" \
        'choice> ' q \
        'Left the gopxe console' 'echo FALLBACK-SHELL-"OK"; exit' \
        --end 'FALLBACK-SHELL-OK' 2>&1)
    rc=$?
    set -e
    echo
    case $rc:$out in
    0:*"gopxe network-boot appliance"*FALLBACK-SHELL-OK*) say "console: banner shown, fallback shell started" ;;
    *) printf '%s\n' "$out" >&2; fail "console wrapper: no banner and fallback shell (dialog exit $rc)" ;;
    esac
else
    say "console: skipped (no python3)"
fi

# ---- S30gopxe-data (root, private mount namespace) ------------------------------
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
    mkdir -p "$WORK/vol"
    out=$(unshare -m --propagation private "$SH" -c "
        mount -t tmpfs tmpfs '$WORK/vol' || exit 9
        export GOPXE_WARN_DEV='$WORK/console'
        GOPXE_DEFAULTS=/dev/null GOPXE_STATE='$WORK/vol/state' GOPXE_DATA_LABEL=GOPXE-TEST-NO-SUCH-LABEL-$$ \
            '$SH' '$OVL/etc/init.d/S30gopxe-data' start
        echo \"fstype=\$(awk -v d='$WORK/vol/state' '\$2 == d {print \$3}' /proc/mounts)\"
        [ -e '$WORK/vol/state/VOLATILE' ] && echo VOLATILE-MARKER
    " 2>&1) || true
    case $out in
    *fstype=tmpfs*VOLATILE-MARKER*) ;;
    *) printf '%s\n' "$out" >&2; fail "S30gopxe-data: no tmpfs fallback" ;;
    esac
    grep -q 'NOTHING SURVIVES A REBOOT' "$WORK/console" || fail "S30gopxe-data: no loud warning on the console"
    say "data: no partition and a volatile root -> tmpfs, loud warning, VOLATILE marker"
    # On a persistent writable file system the directory is used as it is.
    out=$(unshare -m --propagation private "$SH" -c "
        GOPXE_DEFAULTS=/dev/null GOPXE_WARN_DEV='$WORK/console' GOPXE_STATE='$WORK/persist' GOPXE_DATA_LABEL=GOPXE-TEST-NO-SUCH-LABEL-$$ \
            '$SH' '$OVL/etc/init.d/S30gopxe-data' start
        awk -v d='$WORK/persist' '\$2 == d {print \"MOUNTED\"}' /proc/mounts
    " 2>&1) || true
    case $out in
    *"using $WORK/persist on the root file system"*) ;;
    *"tmpfs"*) say "data: $WORK is itself volatile here; persistent-directory case not testable" ;;
    *) printf '%s\n' "$out" >&2; fail "S30gopxe-data: persistent directory case" ;;
    esac
    case $out in *MOUNTED*) fail "S30gopxe-data mounted over a persistent directory" ;; esac
    say "data: no partition on a persistent root -> the directory itself"
else
    say "data: S30gopxe-data checks skipped (need root and unshare)"
fi

say "PASS"
