#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scenario 8 — the real Debian installer fetches its preseed from gopxe.
# Debian 12's netboot kernel and initrd (package
# debian-installer-12-netboot-amd64: `apt-get download`, `dpkg-deb -x`, never
# installed; cached in .e2e-cache/) boot under SeaBIOS + iPXE over HTTP from
# a boot action with "installer": "preseed". debian-installer takes its own
# DHCP lease from gopxe, follows `url=` on the kernel line gopxe wrote, and
# fetches /preseed/<id>: the machine must turn `installing` with a
# "preseed fetched" event, and the installer must then go on without asking
# anything up to its mirror check. The install itself is not run (the VM has
# no disk and no way out of the namespace); QEMU is stopped there.
# Bounded: E2E_PRESEED_TIMEOUT (default 150 s) to the fetch (~50-60 s under
# TCG), E2E_PRESEED_HOLD (default 60 s) from there to the mirror check.
# E2E_PRESEED=0 skips it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/gopxe.sh"
need_root
[ "${E2E_PRESEED:-1}" = 1 ] || scenario_skip "E2E_PRESEED=0"
gopxe_require --dhcp-mode --tftp-listen --interface --dhcp-range --dhcp-router --dhcp-dns --debian-mirror
# shellcheck disable=SC2119  # no extra packages
install_packages
e2e_init

DI_PKG=debian-installer-12-netboot-amd64
DI_CACHE=${E2E_CACHE:-$E2E_ROOT/.e2e-cache}/debian-installer-12
DI_IMG=$E2E_IMAGES/e2e-debian12
TIMEOUT=${E2E_PRESEED_TIMEOUT:-150}
MAC=52:54:00:e2:e1:08
UUID=8d7c6b5a-4e3f-4a2b-9c1d-0e8f7a6b5c4d
ID=$(mac_dashes "$MAC")
HOST=s8-preseed.e2e.local
# debian-installer with a 40 MB initrd needs more than the default 384 MiB.
E2E_MEM=${E2E_PRESEED_MEM:-1024}

# The installer's kernel and initrd, from the Debian package, once.
if [ ! -s "$DI_CACHE/linux" ] || [ ! -s "$DI_CACHE/initrd.gz" ]; then
    mkdir -p "$DI_CACHE"
    tmp=$(mktemp -d "$DI_CACHE/.x.XXXXXX")
    e2e_log "downloading $DI_PKG (apt-get download, not installed)"
    if ! (cd "$tmp" && timeout 900 apt-get download -q "$DI_PKG" >&2); then
        timeout 300 apt-get update -q >&2 || true
        (cd "$tmp" && timeout 900 apt-get download -q "$DI_PKG" >&2) \
            || { rm -rf "$tmp"; scenario_skip "cannot download $DI_PKG"; }
    fi
    dpkg-deb -x "$tmp"/"$DI_PKG"_*.deb "$tmp/x"
    src=$(find "$tmp/x" -path '*/text/debian-installer/amd64' -type d | head -1)
    [ -n "$src" ] || { rm -rf "$tmp"; scenario_fail "$DI_PKG has no text/debian-installer/amd64"; }
    cp "$src/linux" "$src/initrd.gz" "$tmp/"
    mv "$tmp/linux" "$tmp/initrd.gz" "$DI_CACHE/"
    rm -rf "$tmp"
fi
mkdir -p "$DI_IMG"
for f in linux initrd.gz; do
    cmp -s "$DI_CACHE/$f" "$DI_IMG/$f" || cp "$DI_CACHE/$f" "$DI_IMG/$f"
done
e2e_log "debian-installer: $(du -sh "$DI_IMG" | cut -f1) in $DI_IMG"

ns_setup 1
start_ra_helper
# Options 3 and 6 for the installer's DHCP (and the kernel line's name
# server): without a router debian-installer asks "Continue without a
# default route?", without a name server it asks for one.
gopxe_start authoritative --dhcp-router "$E2E_SERVER_IP" --dhcp-dns "$E2E_SERVER_IP"
api_ok POST /bootaction/debian12 '{
  "kernel": "e2e-debian12/linux",
  "initrd": "e2e-debian12/initrd.gz",
  "loader": "ipxe",
  "installer": "preseed",
  "append": "console=ttyS0,115200n8"
}'
api_ok POST /pxeboot "{\"bootaction\": \"debian12\", \"hostname\": \"$HOST\", \"mac\": \"$MAC\"}"
api_ok GET "/boot.ipxe?mac=$MAC"
grep -q "url=$GOPXE_API/preseed/$ID " <<<"$API_BODY" \
    || scenario_fail "the iPXE script has no preseed URL: $API_BODY"

CUR_VM=s8-preseed
boot_bios s8-preseed "$MAC" "$UUID" "$TIMEOUT" virtio
state=""
end=$(($(date +%s) + TIMEOUT))
while [ "$(date +%s)" -lt "$end" ]; do
    _timeline s8-preseed
    api GET "/pxeboot/$ID"
    state=$(sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' <<<"$API_BODY" | head -1)
    [ "$state" = installing ] && break
    vm_running s8-preseed || break
    if serial_has "${VM_LOG[s8-preseed]}" 'Kernel panic|No bootable device|Could not boot'; then
        break
    fi
    sleep 1
done
secs=$(elapsed "${VM_START[s8-preseed]}")
if [ "$state" != installing ]; then
    vm_kill s8-preseed
    scenario_fail "machine state '$state' after ${secs}s: debian-installer did not fetch the preseed"
fi
# With every question answered by the preseed (language, keyboard, host and
# domain name, mirror), the installer goes straight on to check the mirror
# (which then fails: nothing leaves the namespace). A question on the
# screen instead, or a preseed it could not process, stops it before that.
rc=0
wait_for_marker "${VM_LOG[s8-preseed]}" 'Checking the Debian archive mirror|preconfiguration file' \
    "${E2E_PRESEED_HOLD:-60}" s8-preseed || rc=$?
vm_kill s8-preseed
if [ "$rc" -ne 0 ]; then
    scenario_fail "after the preseed the installer did not go on to the mirror (a question left unanswered?)"
fi
if serial_has "${VM_LOG[s8-preseed]}" 'preconfiguration file'; then
    scenario_fail "debian-installer could not process the preseed"
fi
e2e_log "installer reached the mirror check $(elapsed "${VM_START[s8-preseed]}")s after power-on"
expect_steps "$ID" 'preseed fetched' 'dhcp'
grep -aqE "GET /preseed/$ID" "$E2E_WORK/gopxe.log" \
    || e2e_log "WARN: no GET /preseed line in gopxe's log (debug logging off?)"
record_time "$SCENARIO" "$secs" s8-preseed
CUR_VM=""
gopxe_alive || scenario_fail "gopxe died"
scenario_pass "debian-installer fetched its preseed ${secs}s after power-on"
