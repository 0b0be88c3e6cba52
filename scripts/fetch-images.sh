#!/usr/bin/env bash
# fetch-images.sh [DIR] — fill DIR (default: images/) with the boot loaders,
# a real Debian kernel and a tiny busybox test initrd, as the end-to-end
# tests and a lab box need them.
#
# Idempotent: packages are installed only when missing (and only as root),
# the kernel .deb is downloaded once into the cache dir (E2E_CACHE, default
# .e2e-cache/ at the repository root), files are copied only when they
# changed. Nothing here is committed; everything is fetched or built.
#
# Result (relative to DIR):
#   pxelinux.0 lpxelinux.0 ldlinux.c32             BIOS pxelinux
#   menu.c32 vesamenu.c32 libutil.c32 libcom32.c32  BIOS menu modules
#   syslinux.efi ldlinux.e64                        x64 UEFI syslinux (same dir:
#                                                   syslinux.efi looks for
#                                                   ldlinux.e64 beside itself)
#   efi64/{menu,vesamenu,libutil,libcom32}.c32      x64 UEFI menu modules (the
#                                                   names clash with BIOS ones)
#   ipxe.efi snponly.efi undionly.kpxe              iPXE
#   shimx64.efi grubx64.efi                         x64 Secure Boot chain: shim
#                                                   (shim-signed, Microsoft-signed)
#                                                   loads grubx64.efi from beside
#                                                   itself (grub-efi-amd64-signed's
#                                                   grubnetx64.efi.signed, prefix /grub)
#   shimaa64.efi grubaa64.efi                       the same for arm64 (shim-signed:arm64,
#                                                   grub-efi-arm64-signed's
#                                                   grubnetaa64.efi.signed)
#   LOADERS.txt                                     which package and version each
#                                                   loader file came from
#   e2e/vmlinuz  e2e/initrd.img  e2e/KERNEL_VERSION test kernel + initrd
#
# Environment: E2E_KERNEL_PKG=linux-image-6.1.0-NN-amd64 pins the kernel;
# E2E_SIGNED_LOADERS=0 leaves out the shim/GRUB files (offline, no cache).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DIR=${1:-$root/images}
CACHE=${E2E_CACHE:-$root/.e2e-cache}
mkdir -p "$DIR" "$CACHE"
DIR=$(cd "$DIR" && pwd)
CACHE=$(cd "$CACHE" && pwd)

log() { printf 'fetch-images: %s\n' "$*" >&2; }
die() { printf 'fetch-images: ERROR: %s\n' "$*" >&2; exit 1; }

PKGS=(pxelinux syslinux-common syslinux-efi ipxe busybox-static cpio xz-utils
      curl gpgv debian-archive-keyring)

ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing packages (${missing[*]}) and not root: install them first"
    fi
    log "installing: ${missing[*]}"
    # Another apt may be running (shared machine): wait for its lock, bounded.
    if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 \
            install -y -q --no-install-recommends "${missing[@]}" >&2; then
        timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -q >&2
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 \
            install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
}

# put SRC DST: copy when missing or different
put() {
    local src=$1 dst=$DIR/$2
    [ -f "$src" ] || die "missing $src (package not installed?)"
    mkdir -p "$(dirname "$dst")"
    if ! cmp -s "$src" "$dst"; then
        cp -f "$src" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst"
        log "  $2"
    fi
}

# LOADERS.txt: one line per loader file: file, package, version, arch, sha256.
LOADERS_TMP=$DIR/LOADERS.txt.tmp.$$
printf '# file\tpackage\tversion\tarch\tsha256 (written by scripts/fetch-images.sh)\n' >"$LOADERS_TMP"
trap 'rm -f "$LOADERS_TMP"' EXIT
# record FILE PKG VERSION ARCH
record() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" \
        "$(sha256sum "$DIR/$1" | cut -d' ' -f1)" >>"$LOADERS_TMP"
    log "  $1 <- $2 $3 ($4)"
}
# put_installed SRC DST PKG: put a file of an installed package and record it.
put_installed() {
    put "$1" "$2"
    record "$2" "$3" "$(dpkg-query -W -f='${Version}' "$3")" \
        "$(dpkg-query -W -f='${Architecture}' "$3")"
}

ensure_packages "${PKGS[@]}"

log "boot loaders -> $DIR"
BIOS=/usr/lib/syslinux/modules/bios
EFI64=/usr/lib/syslinux/modules/efi64
put_installed /usr/lib/PXELINUX/pxelinux.0 pxelinux.0 pxelinux
put_installed /usr/lib/PXELINUX/lpxelinux.0 lpxelinux.0 pxelinux
for m in ldlinux.c32 menu.c32 vesamenu.c32 libutil.c32 libcom32.c32; do
    put "$BIOS/$m" "$m"
done
put_installed /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi syslinux.efi syslinux-efi
put "$EFI64/ldlinux.e64" ldlinux.e64
for m in menu.c32 vesamenu.c32 libutil.c32 libcom32.c32; do
    put "$EFI64/$m" "efi64/$m"
done
put_installed /usr/lib/ipxe/ipxe.efi ipxe.efi ipxe
put_installed /usr/lib/ipxe/snponly.efi snponly.efi ipxe
put_installed /usr/lib/ipxe/undionly.kpxe undionly.kpxe ipxe

# ---- signed loaders (Secure Boot: shim -> GRUB), x64 and arm64 -------------
# Downloaded as .debs into the cache and unpacked with dpkg-deb, never
# installed. The amd64 ones come through `apt-get download` (apt knows the
# host architecture). The arm64 ones cannot: apt here knows amd64 only, and
# `dpkg --add-architecture arm64` + `apt-get update` would change the
# machine's package set-up for good (every later apt-get update fetching
# arm64 indexes too). So the script reads the Debian archive the apt
# sources already point at, the way apt itself would, and verifies each
# step: the suite's InRelease is checked with gpgv against the keyring of
# debian-archive-keyring, the arm64 Packages.xz against the SHA256 that
# InRelease lists, and the .deb against the SHA256 in Packages. The newest
# version over the suites in the sources (bookworm, -updates, -security)
# wins. Everything is cached (keyed by hash), so reruns work offline.
LDIR=$CACHE/loaders
mkdir -p "$LDIR"
KEYRING=${E2E_ARCHIVE_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

# deb_amd64 PKG: path of PKG's .deb (host arch) in the cache, downloaded once.
deb_amd64() {
    local pkg=$1 ver deb
    ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$ver" ] && [ "$ver" != "(none)" ]; then
        deb=$LDIR/${pkg}_${ver//:/%3a}_amd64.deb
        if [ ! -s "$deb" ]; then
            log "downloading $pkg $ver (apt-get download, not installed)"
            (cd "$LDIR" && timeout 600 apt-get download -q "$pkg=$ver" >&2) || die "apt-get download $pkg failed"
        fi
    else   # apt knows nothing (no lists): the newest cached one
        deb=$(ls "$LDIR/${pkg}"_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
    fi
    [ -s "$deb" ] || die "no .deb of $pkg (run apt-get update)"
    printf '%s\n' "$deb"
}

# archive_suites: "BASE_URI COMPONENT" of the Debian Packages indexes apt uses.
archive_suites() {
    # shellcheck disable=SC2016  # $(...) here is apt's field syntax, not the shell's
    apt-get indextargets --format '$(BASE_URI) $(COMPONENT) $(ARCHITECTURE)' \
        'Identifier: Packages' 2>/dev/null | awk '$2 == "main" && $3 == "amd64" {print $1, $2}' | sort -u
}

# packages_index BASE_URI COMPONENT ARCH: a verified, decompressed Packages
# file for ARCH in the cache (path printed), or nothing.
packages_index() {
    local base=$1 comp=$2 arch=$3 tag rel sum out
    tag=$(printf '%s' "$base" | sed 's|^[a-z]*://||; s|[^A-Za-z0-9.-]|_|g')
    rel=$LDIR/$tag.InRelease
    if ! timeout 120 curl -fsS -m 100 -o "$rel.new" "${base}InRelease"; then
        rm -f "$rel.new"
        log "cannot fetch ${base}InRelease (offline?): using the cache"
    elif gpgv --keyring "$KEYRING" --output "$rel.txt.new" "$rel.new" 2>"$rel.gpgv"; then
        mv -f "$rel.txt.new" "$rel.txt"
    else
        rm -f "$rel.new" "$rel.txt.new"
        die "${base}InRelease does not verify with $KEYRING: $(cat "$rel.gpgv")"
    fi
    rm -f "$rel.new"
    [ -s "$rel.txt" ] || return 0
    # SHA256 section: " <sha256> <size> main/binary-arm64/Packages.xz"
    sum=$(awk -v f="$comp/binary-$arch/Packages.xz" '
        /^SHA256:/ {in256 = 1; next} /^[^ ]/ {in256 = 0}
        in256 && $3 == f {print $1; exit}' "$rel.txt")
    [ -n "$sum" ] || return 0
    out=$LDIR/Packages.$sum
    if [ ! -s "$out" ]; then
        timeout 300 curl -fsS -m 280 -o "$out.xz.tmp" "${base}$comp/binary-$arch/Packages.xz" \
            || { rm -f "$out.xz.tmp"; die "cannot fetch ${base}$comp/binary-$arch/Packages.xz"; }
        [ "$(sha256sum "$out.xz.tmp" | cut -d' ' -f1)" = "$sum" ] \
            || { rm -f "$out.xz.tmp"; die "${base}$comp/binary-$arch/Packages.xz: SHA256 differs from InRelease"; }
        xz -dc "$out.xz.tmp" >"$out.tmp" && mv -f "$out.tmp" "$out"
        rm -f "$out.xz.tmp"
    fi
    printf '%s\n' "$out"
}

# deb_foreign PKG ARCH: path of PKG's .deb for ARCH in the cache, downloaded
# from the archive and verified (see above) once.
deb_foreign() {
    local pkg=$1 arch=$2 base comp idx line best="" bestver="" ver file sum deb
    while read -r base comp; do
        idx=$(packages_index "$base" "$comp" "$arch")
        [ -n "$idx" ] || continue
        line=$(awk -v p="$pkg" '
            /^Package: / {ok = ($2 == p); v = f = s = ""}
            ok && /^Version: / {v = $2} ok && /^Filename: / {f = $2} ok && /^SHA256: / {s = $2}
            /^$/ && ok && v != "" {print v, f, s; ok = 0}
            END {if (ok && v != "") print v, f, s}' "$idx" | head -1)
        [ -n "$line" ] || continue
        read -r ver file sum <<<"$line"
        if [ -z "$bestver" ] || dpkg --compare-versions "$ver" gt "$bestver"; then
            bestver=$ver best="$base $file $sum"
        fi
    done < <(archive_suites)
    if [ -z "$best" ]; then   # offline and no index: the newest cached one
        deb=$(ls "$LDIR/${pkg}"_*_"$arch".deb 2>/dev/null | sort -V | tail -1 || true)
        [ -s "$deb" ] || die "$pkg ($arch) is in none of the archive's indexes and not cached"
        printf '%s\n' "$deb"; return 0
    fi
    read -r base file sum <<<"$best"
    # BASE_URI is .../dists/<suite>/; pool files are relative to the archive root
    deb=$LDIR/$(basename "$file")
    if [ ! -s "$deb" ] || [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$sum" ]; then
        log "downloading $pkg $bestver ($arch) from the archive, SHA256-checked"
        timeout 600 curl -fsS -m 580 -o "$deb.tmp" "${base%/dists/*}/$file" \
            || { rm -f "$deb.tmp"; die "cannot fetch ${base%/dists/*}/$file"; }
        [ "$(sha256sum "$deb.tmp" | cut -d' ' -f1)" = "$sum" ] \
            || { rm -f "$deb.tmp"; die "$file: SHA256 differs from the Packages index"; }
        mv -f "$deb.tmp" "$deb"
    fi
    printf '%s\n' "$deb"
}

# put_deb DEB MEMBER DST: unpack DEB (cached), put MEMBER as DST, record it.
put_deb() {
    local deb=$1 member=$2 dst=$3 x
    x=$LDIR/x.$(basename "$deb" .deb)
    if [ ! -f "$x/.done" ]; then
        rm -rf "$x"; mkdir -p "$x"
        dpkg-deb -x "$deb" "$x" && touch "$x/.done"
    fi
    put "$x/$member" "$dst"
    record "$dst" "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" \
        "$(dpkg-deb -f "$deb" Architecture)"
}

if [ "${E2E_SIGNED_LOADERS:-1}" != 0 ]; then
    put_deb "$(deb_amd64 shim-signed)" usr/lib/shim/shimx64.efi.signed shimx64.efi
    put_deb "$(deb_amd64 grub-efi-amd64-signed)" \
        usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed grubx64.efi
    put_deb "$(deb_foreign shim-signed arm64)" usr/lib/shim/shimaa64.efi.signed shimaa64.efi
    put_deb "$(deb_foreign grub-efi-arm64-signed arm64)" \
        usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed grubaa64.efi
fi
mv -f "$LOADERS_TMP" "$DIR/LOADERS.txt"

# ---- kernel ---------------------------------------------------------------
kpkg=${E2E_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
    # newest linux-image-6.1.0-N-amd64 the archive offers (cached for offline reruns)
    kpkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
        | awk '{print $1}' | sort -V | tail -1 || true)
    if [ -z "$kpkg" ] && [ -f "$CACHE/kernel-pkg" ]; then kpkg=$(cat "$CACHE/kernel-pkg"); fi
    [ -n "$kpkg" ] || die "no linux-image-6.1.0-*-amd64 in apt-cache (run apt-get update)"
fi
echo "$kpkg" > "$CACHE/kernel-pkg"
kver=${kpkg#linux-image-}
# NIC drivers, insmod order matters (dependencies first).
MODS=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
      failover net_failover virtio_net e1000)
# The cache keeps the .deb and, extracted from it, only the kernel and the
# modules above (the whole tree is ~400 MB).
kdir=$CACHE/kernel-$kver
if [ ! -f "$kdir/.done-v2" ]; then
    deb=$(ls "$CACHE"/"${kpkg}"_*.deb 2>/dev/null | head -1 || true)
    if [ -z "$deb" ]; then
        log "downloading $kpkg (apt-get download, not installed)"
        (cd "$CACHE" && timeout 900 apt-get download -q "$kpkg" >&2)
        deb=$(ls "$CACHE"/"${kpkg}"_*.deb | head -1)
    fi
    log "extracting $(basename "$deb")"
    x=$CACHE/extract.$$
    rm -rf "$x" "$kdir"; mkdir -p "$x" "$kdir/modules"
    dpkg-deb -x "$deb" "$x"
    [ -f "$x/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $kpkg"
    cp "$x/boot/vmlinuz-$kver" "$kdir/vmlinuz"
    for m in "${MODS[@]}"; do
        f=$(find "$x/lib/modules/$kver/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" \
            -o -name "$m.ko.zst" -o -name "$m.ko.gz" \) | head -1)
        [ -n "$f" ] || die "module $m not found in $kpkg"
        cp "$f" "$kdir/modules/"
    done
    rm -rf "$x"
    touch "$kdir/.done-v2"
fi
put "$kdir/vmlinuz" e2e/vmlinuz
printf '%s\n' "$kver" > "$DIR/e2e/KERNEL_VERSION.tmp" && mv -f "$DIR/e2e/KERNEL_VERSION.tmp" "$DIR/e2e/KERNEL_VERSION"

# ---- initrd ---------------------------------------------------------------
build=$CACHE/initrd-build
rm -rf "$build"; mkdir -p "$build"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,lib/modules,usr/share/udhcpc}
cp /bin/busybox "$build/bin/busybox"
for m in "${MODS[@]}"; do
    f=$(ls "$kdir/modules/$m".ko* | head -1)
    case $f in
        *.ko.xz)  xz -dc "$f" > "$build/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -dqc "$f" > "$build/lib/modules/$m.ko" ;;
        *.ko.gz)  gzip -dc "$f" > "$build/lib/modules/$m.ko" ;;
        *)        cp "$f" "$build/lib/modules/$m.ko" ;;
    esac
done
printf '%s\n' "${MODS[@]}" > "$build/lib/modules/ORDER"
printf '%s\n' "$kver" > "$build/etc/kernel-version"

cat > "$build/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc event script: configure the interface from the lease.
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip -4 route replace default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "GOPXE-INITRD: lease $ip/${mask:-24} router=${router:-none} server=${serverid:-?} on $interface"
    ;;
esac
exit 0
EOF
chmod 755 "$build/usr/share/udhcpc/default.script"

cat > "$build/init" <<'EOF'
#!/bin/busybox sh
# gopxe e2e test initrd: bring up the NIC, fetch the kickstart named on the
# kernel command line, print it between markers, call the installer's "done"
# callback, power off. (Debian busybox 1.35 wget segfaults with -T: bound it
# with the timeout applet instead.)
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
set -f   # no globbing of command-line words (ks URLs carry '?')
# Boot configs rendered by gopxe may not carry console=ttyS0: talk to the
# first serial port directly then, so the test still reads the markers.
case " $(cat /proc/cmdline) " in
*" console=ttyS"*) ;;
*) [ -c /dev/ttyS0 ] && exec </dev/null >/dev/ttyS0 2>&1 ;;
esac
say() { echo "GOPXE-INITRD: $*"; }
bye() { say "power off"; sync; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }
say "started, kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime)s"
CMDLINE=$(cat /proc/cmdline)
say "cmdline: $CMDLINE"
arg() { # arg NAME: value of NAME= on the kernel command line (last wins)
    v=; for w in $CMDLINE; do case "$w" in "$1"=*) v=${w#"$1"=} ;; esac; done; echo "$v"
}
for m in $(cat /lib/modules/ORDER); do
    insmod "/lib/modules/$m.ko" 2>/dev/null || say "insmod $m failed"
done
# wait (bounded) for a NIC to appear
IF=
i=0; while [ $i -lt 50 ]; do
    for n in $(ls /sys/class/net); do [ "$n" = lo ] && continue; IF=$n; break; done
    [ -n "$IF" ] && break; sleep 0.2; i=$((i+1))
done
ip link set lo up
if [ -z "$IF" ]; then say "no network interface"; bye; fi
say "interface $IF ($(cat /sys/class/net/$IF/address))"
ip link set "$IF" up
if ! udhcpc -i "$IF" -s /usr/share/udhcpc/default.script -n -q -t 10 -T 2 -A 1; then
    say "DHCP failed"; echo "=== GOPXE KICKSTART FAILED dhcp ==="; bye
fi
KS=$(arg ks); [ -n "$KS" ] || KS=$(arg inst.ks); [ -n "$KS" ] || KS=$(arg gopxe.ks)
[ -n "$KS" ] || KS=$(arg url)
case "$KS" in
http://*) ;;
"") say "no ks= on the command line"; echo "=== GOPXE KICKSTART FAILED no-ks ==="; bye ;;
*) say "unsupported ks URL: $KS"; echo "=== GOPXE KICKSTART FAILED bad-url ==="; bye ;;
esac
say "fetching kickstart $KS"
ok=0; n=0
while [ $n -lt 5 ]; do
    if timeout 30 wget -q -O /tmp/ks.cfg "$KS"; then ok=1; break; fi
    n=$((n+1)); sleep 1
done
if [ $ok -ne 1 ]; then echo "=== GOPXE KICKSTART FAILED fetch ==="; bye; fi
echo "=== GOPXE KICKSTART BEGIN ==="
cat /tmp/ks.cfg
echo
echo "=== GOPXE KICKSTART END ==="
# The installer's %post calls gopxe back. gopxe.done=URL on the command line
# wins; otherwise take the first .../pxeboot/<id>/done[?key=...] URL in the
# kickstart (the key proves the call-back comes from this install);
# otherwise derive it from a ks URL of the form .../kickstart/<id>.
# gopxe.done=none disables the call.
DONE=$(arg gopxe.done)
if [ -z "$DONE" ]; then
    DONE=$(grep -o 'https\{0,1\}://[^ "'"'"'<>]*/pxeboot/[^ "'"'"'<>/]*/done\(?key=[0-9A-Za-z]*\)\{0,1\}' /tmp/ks.cfg | head -1)
fi
if [ -z "$DONE" ]; then
    # a short kickstart URL .../kickstart/<id> names the machine
    case "$KS" in
    */kickstart/?*) id=${KS##*/kickstart/}; id=${id%%[?#]*}
        case "$id" in *[!A-Za-z0-9:._-]*|"") ;; *) DONE="${KS%%/kickstart/*}/pxeboot/$id/done" ;; esac ;;
    esac
fi
if [ -n "$DONE" ] && [ "$DONE" != none ]; then
    say "calling back $DONE"
    out=$(timeout 30 wget -S -O /tmp/done.out --post-data='' "$DONE" 2>&1)
    st=$(echo "$out" | sed -n 's/.*HTTP\/1\.[01] \([0-9][0-9][0-9]\).*/\1/p' | tail -1)
    echo "=== GOPXE DONE ${st:-error} ==="
else
    echo "=== GOPXE DONE none ==="
fi
bye
EOF
chmod 755 "$build/init"

tmp=$DIR/e2e/initrd.img.tmp.$$
find "$build" -exec touch -h -d @0 {} +   # reproducible archive
(cd "$build" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible) | gzip -9n > "$tmp"
if cmp -s "$tmp" "$DIR/e2e/initrd.img"; then rm -f "$tmp"; else mv -f "$tmp" "$DIR/e2e/initrd.img"; log "  e2e/initrd.img"; fi

log "ready: $DIR (kernel $kver, initrd $(du -k "$DIR/e2e/initrd.img" | cut -f1) KiB)"
