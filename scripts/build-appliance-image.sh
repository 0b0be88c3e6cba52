#!/usr/bin/env bash
# build-appliance-image.sh — assemble the gopxe appliance as a kernel and an
# initramfs that QEMU (or any PC boot loader) boots directly, from Debian
# packages only plus the static x86_64 gopxe binary and the firmware files of
# this repository:
#
#   Debian kernel      linux-image-6.1.0-N-amd64 (apt-get download + dpkg-deb -x,
#                      never installed); its virtio PCI/net/blk, e1000 and
#                      ext4 modules, in dependency order (depmod + modprobe
#                      --show-depends on the extracted tree)
#   busybox-static     init, sh and every tool the init scripts use
#   pxelinux, syslinux-common, syslinux-efi, ipxe, shim-signed,
#   grub-efi-amd64-signed
#                      boot loaders, put in /usr/share/gopxe/images and copied
#                      into the images tree by S50gopxe at start
#   buildroot-overlay/ the firmware files (inittab, S30gopxe-data, S50gopxe,
#                      console wrapper, /etc/gopxe/gopxe.toml)
#   rootfs/initramfs/  what a Buildroot system would add and Debian's
#                      busybox does not: /init, rcS/rcK, syslogd, modules,
#                      network from the kernel command line (rootfs/README.md)
#
# Output (OUT, default target/appliance/):
#   vmlinuz              the kernel
#   initramfs.cpio.gz    the whole appliance (BusyBox init -> rcS -> S50gopxe)
#   cmdline              a kernel command line to start from
#   MANIFEST             kernel version, package versions, sizes
#
# Boot it:
#   qemu-system-x86_64 -m 256 -nographic -kernel target/appliance/vmlinuz \
#     -initrd target/appliance/initramfs.cpio.gz \
#     -append "console=ttyS0,115200 gopxe.ip=10.98.0.2/24" \
#     -netdev user,id=n0,hostfwd=tcp::9090-:9090 -device virtio-net-pci,netdev=n0
#   [-drive file=data.img,if=virtio,format=raw  # ext4 labelled GOPXE-DATA: persistent]
#
# Environment:
#   OUT=DIR                   output directory
#   E2E_CACHE=DIR             download cache (default .e2e-cache/, shared with
#                             scripts/fetch-images.sh)
#   E2E_KERNEL_PKG=PKG        pin the kernel package (linux-image-6.1.0-NN-amd64)
#   GOPXE_X86_64_BIN=FILE     the gopxe binary (default: the musl release build,
#                             built by scripts/build-release.sh when missing)
#   APPLIANCE_EXTRA_IMAGES=DIR  copied into the firmware images tree (e.g. the
#                             e2e kernel and initrd for a machine booting from
#                             the appliance)
#   APPLIANCE_API_TOKEN=T     written as api_token into the factory config
#   APPLIANCE_CONFIG=FILE     replaces the factory config entirely
#
# Needs: apt-get (lists updated), dpkg-deb, depmod/modprobe (kmod), cpio,
# gzip. Runs without root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
OUT=${OUT:-$root/target/appliance}
CACHE=${E2E_CACHE:-$root/.e2e-cache}
BIN=${GOPXE_X86_64_BIN:-${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-musl/release/gopxe}
mkdir -p "$OUT" "$CACHE/debs"
OUT=$(cd "$OUT" && pwd)
CACHE=$(cd "$CACHE" && pwd)

log() { printf 'build-appliance-image: %s\n' "$*" >&2; }
die() { printf 'build-appliance-image: ERROR: %s\n' "$*" >&2; exit 1; }

for c in apt-get apt-cache dpkg-deb depmod modprobe cpio gzip find; do
    command -v "$c" >/dev/null || die "$c not found (packages: apt, dpkg, kmod, cpio, gzip)"
done

# ---- gopxe ----------------------------------------------------------------
if [ -z "${GOPXE_X86_64_BIN:-}" ] || [ ! -x "$BIN" ]; then
    # Always through cargo (a no-op when up to date): never a stale binary.
    log "building $BIN"
    scripts/build-release.sh x86_64-unknown-linux-musl >&2
fi
file -b "$BIN" 2>/dev/null | grep -q 'x86-64' || die "$BIN is not an x86-64 executable"
if readelf -lW "$BIN" 2>/dev/null | grep -q INTERP; then die "$BIN is not static"; fi

# ---- Debian packages (downloaded into the cache, extracted, not installed) --
# fetch_pkg NAME: extracts the candidate version of NAME into $CACHE/pkg/NAME
# and prints that directory. Offline, the newest cached .deb is used.
fetch_pkg() {
    local name=$1 ver deb dir
    ver=$(apt-cache policy "$name" 2>/dev/null | awk '/Candidate:/ {print $2}')
    deb=
    if [ -n "$ver" ] && [ "$ver" != "(none)" ]; then
        # .deb file names carry the version with ':' escaped as %3a
        deb=$(find "$CACHE/debs" -maxdepth 1 -name "${name}_${ver//:/%3a}_*.deb" | head -n 1)
        if [ -z "$deb" ]; then
            log "downloading $name $ver"
            (cd "$CACHE/debs" && timeout 900 apt-get download -q "$name=$ver" >/dev/null 2>&1) ||
                log "apt-get download $name failed"
            deb=$(find "$CACHE/debs" -maxdepth 1 -name "${name}_${ver//:/%3a}_*.deb" | head -n 1)
        fi
    fi
    if [ -z "$deb" ]; then
        deb=$(find "$CACHE/debs" -maxdepth 1 -name "${name}_*.deb" | sort -V | tail -n 1)
    fi
    [ -n "$deb" ] || die "no .deb for $name (apt-get update, or check the network)"
    dir=$CACHE/pkg/$name
    if [ ! -f "$dir/.from" ] || [ "$(cat "$dir/.from")" != "$(basename "$deb")" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir"
        basename "$deb" >"$dir/.from"
    fi
    printf '%s\n' "$dir"
}

BUSYBOX_DIR=$(fetch_pkg busybox-static)
PXELINUX_DIR=$(fetch_pkg pxelinux)
SYSLINUX_DIR=$(fetch_pkg syslinux-common)
SYSLINUX_EFI_DIR=$(fetch_pkg syslinux-efi)
IPXE_DIR=$(fetch_pkg ipxe)
SHIM_DIR=$(fetch_pkg shim-signed)
GRUB_SIGNED_DIR=$(fetch_pkg grub-efi-amd64-signed)

# ---- kernel ---------------------------------------------------------------
kpkg=${E2E_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
    kpkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
        awk '{print $1}' | sort -V | tail -n 1 || true)
    if [ -z "$kpkg" ] && [ -f "$CACHE/kernel-pkg" ]; then kpkg=$(cat "$CACHE/kernel-pkg"); fi
    [ -n "$kpkg" ] || die "no linux-image-6.1.0-*-amd64 in apt-cache (run apt-get update)"
fi
kver=${kpkg#linux-image-}
# Modules the appliance loads; their dependencies are added in load order.
WANT=(virtio_pci virtio_net virtio_blk e1000 ext4)
# The cache keeps the .deb (shared with scripts/fetch-images.sh) and, in a
# folder of its own, only the kernel and the modules above, uncompressed,
# with their load order (the whole extracted tree is ~400 MB).
kcache=$CACHE/appliance-kernel-$kver
stamp=$kcache/.done-$(printf '%s ' "${WANT[@]}" | md5sum | cut -c1-8)
if [ ! -f "$stamp" ]; then
    deb=$(find "$CACHE" -maxdepth 1 -name "${kpkg}_*.deb" | head -n 1)
    if [ -z "$deb" ]; then
        log "downloading $kpkg (apt-get download, not installed)"
        (cd "$CACHE" && timeout 900 apt-get download -q "$kpkg" >/dev/null 2>&1) ||
            die "apt-get download $kpkg failed"
        deb=$(find "$CACHE" -maxdepth 1 -name "${kpkg}_*.deb" | head -n 1)
    fi
    log "extracting $(basename "$deb")"
    EXTRACT=$CACHE/appliance-extract.$$
    trap 'rm -rf "$EXTRACT"' EXIT
    rm -rf "$EXTRACT" "$kcache"
    mkdir -p "$EXTRACT" "$kcache/modules"
    dpkg-deb -x "$deb" "$EXTRACT"
    [ -f "$EXTRACT/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $kpkg"
    cp "$EXTRACT/boot/vmlinuz-$kver" "$kcache/vmlinuz"
    depmod -b "$EXTRACT" "$kver"
    order=()
    for m in "${WANT[@]}"; do
        while read -r kw path _; do
            [ "$kw" = insmod ] || continue
            name=$(basename "$path"); name=${name%%.ko*}
            case " ${order[*]} " in *" $name "*) continue ;; esac
            case $path in
            *.ko.xz) xz -dc "$path" >"$kcache/modules/$name.ko" ;;
            *.ko.zst) zstd -dqc "$path" >"$kcache/modules/$name.ko" ;;
            *.ko.gz) gzip -dc "$path" >"$kcache/modules/$name.ko" ;;
            *) cp "$path" "$kcache/modules/$name.ko" ;;
            esac
            order+=("$name")
        done < <(modprobe -d "$EXTRACT" -S "$kver" --show-depends "$m")
    done
    printf '%s\n' "${order[@]}" >"$kcache/modules/ORDER"
    rm -rf "$EXTRACT"
    touch "$stamp"
fi
vmlinuz=$kcache/vmlinuz
[ -f "$vmlinuz" ] || die "no kernel in $kcache"

# ---- stage the root file system -------------------------------------------
stage=$OUT/rootfs
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib/modules,proc,sys,dev,tmp,run,root,mnt,srv,etc}
mkdir -p "$stage"/var/{lib/gopxe,log,lock}
ln -s ../run "$stage/var/run"

# busybox and its applet links (the host runs the same x86-64 binary)
bb=$BUSYBOX_DIR/bin/busybox
[ -x "$bb" ] || die "no bin/busybox in busybox-static"
install -m 755 "$bb" "$stage/bin/busybox"
"$bb" --list-full | while read -r applet; do
    case $applet in linuxrc | */busybox | "") continue ;; esac
    [ -e "$stage/$applet" ] || [ -L "$stage/$applet" ] && continue
    mkdir -p "$stage/$(dirname "$applet")"
    rel=$(realpath -m --relative-to="$stage/$(dirname "$applet")" "$stage/bin/busybox")
    ln -s "$rel" "$stage/$applet"
done
[ -L "$stage/sbin/init" ] || die "busybox has no init applet"

install -m 755 "$BIN" "$stage/usr/bin/gopxe"

# firmware files, then what the image adds on top
cp -a buildroot-overlay/. "$stage/"
cp -a rootfs/initramfs/. "$stage/"
if [ -n "${APPLIANCE_CONFIG:-}" ]; then
    install -m 644 "$APPLIANCE_CONFIG" "$stage/etc/gopxe/gopxe.toml"
fi
if [ -n "${APPLIANCE_API_TOKEN:-}" ]; then
    case $APPLIANCE_API_TOKEN in *[!A-Za-z0-9._~+/=-]*) die "APPLIANCE_API_TOKEN: use letters, digits and ._~+/=- only" ;; esac
    printf '\n# Set by build-appliance-image.sh (APPLIANCE_API_TOKEN).\napi_token = "%s"\n' \
        "$APPLIANCE_API_TOKEN" >>"$stage/etc/gopxe/gopxe.toml"
fi
"$BIN" check-config --config "$stage/etc/gopxe/gopxe.toml" >/dev/null ||
    die "the factory configuration does not pass gopxe check-config"

# boot loaders (same names as scripts/fetch-images.sh)
img=$stage/usr/share/gopxe/images
mkdir -p "$img/efi64"
put() { [ -f "$1" ] || die "missing $1"; install -m 644 "$1" "$img/$2"; }
put "$PXELINUX_DIR/usr/lib/PXELINUX/pxelinux.0" pxelinux.0
put "$PXELINUX_DIR/usr/lib/PXELINUX/lpxelinux.0" lpxelinux.0
for m in ldlinux.c32 menu.c32 vesamenu.c32 libutil.c32 libcom32.c32; do
    put "$SYSLINUX_DIR/usr/lib/syslinux/modules/bios/$m" "$m"
done
put "$SYSLINUX_EFI_DIR/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi" syslinux.efi
put "$SYSLINUX_DIR/usr/lib/syslinux/modules/efi64/ldlinux.e64" ldlinux.e64
for m in menu.c32 vesamenu.c32 libutil.c32 libcom32.c32; do
    put "$SYSLINUX_DIR/usr/lib/syslinux/modules/efi64/$m" "efi64/$m"
done
for f in ipxe.efi snponly.efi undionly.kpxe; do put "$IPXE_DIR/usr/lib/ipxe/$f" "$f"; done
# x64 UEFI's default, the Secure Boot chain: shim loads grubx64.efi beside it
put "$SHIM_DIR/usr/lib/shim/shimx64.efi.signed" shimx64.efi
put "$GRUB_SIGNED_DIR/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed" grubx64.efi
if [ -n "${APPLIANCE_EXTRA_IMAGES:-}" ]; then
    [ -d "$APPLIANCE_EXTRA_IMAGES" ] || die "APPLIANCE_EXTRA_IMAGES=$APPLIANCE_EXTRA_IMAGES is not a directory"
    log "adding $APPLIANCE_EXTRA_IMAGES to the images tree"
    cp -rL "$APPLIANCE_EXTRA_IMAGES/." "$img/"
fi

# kernel modules and their load order
cp "$kcache/modules/"*.ko "$kcache/modules/ORDER" "$stage/lib/modules/"
mapfile -t order <"$kcache/modules/ORDER"
printf '%s\n' "$kver" >"$stage/etc/kernel-version"

# ---- pack ---------------------------------------------------------------------
tmp=$OUT/initramfs.cpio.gz.tmp
find "$stage" -exec touch -h -d @0 {} +
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc --quiet -R 0:0 --reproducible) | gzip -9n >"$tmp"
mv -f "$tmp" "$OUT/initramfs.cpio.gz"
install -m 644 "$vmlinuz" "$OUT/vmlinuz"
echo "console=ttyS0,115200 gopxe.ip=10.98.0.2/24" >"$OUT/cmdline"
{
    echo "kernel $kpkg ($kver)"
    for d in "$BUSYBOX_DIR" "$PXELINUX_DIR" "$SYSLINUX_DIR" "$SYSLINUX_EFI_DIR" "$IPXE_DIR"; do
        echo "package $(cat "$d/.from")"
    done
    echo "gopxe $("$BIN" --version) $(stat -c %s "$BIN") bytes"
    echo "modules ${order[*]}"
    echo "initramfs.cpio.gz $(stat -c %s "$OUT/initramfs.cpio.gz") bytes"
    echo "vmlinuz $(stat -c %s "$OUT/vmlinuz") bytes"
} >"$OUT/MANIFEST"
log "ready: $OUT/vmlinuz + $OUT/initramfs.cpio.gz ($(du -k "$OUT/initramfs.cpio.gz" | cut -f1) KiB)"
cat "$OUT/MANIFEST" >&2
