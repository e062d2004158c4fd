#!/bin/bash
# Build the Sluice test guest: a Debian kernel and a small busybox initramfs.
#
#   tools/guest/build-guest.sh [--force] [OUTDIR]      (default OUTDIR: /var/cache/sluice-guest)
#
# Produces OUTDIR/vmlinuz and OUTDIR/initramfs.gz (plus OUTDIR/build.stamp). Everything comes
# from Debian packages through apt: qemu-system-x86 qemu-utils busybox-static kmod cpio, and
# the kernel package that linux-image-amd64 depends on (apt-get download + dpkg-deb -x, not
# installed). The initramfs holds busybox, /init (init.sh), the udhcpc script and the modules
# virtio_pci virtio_net virtio_blk (+ dependencies, e.g. net_failover/failover), plus
# $SLUICE_GUEST_EXTRA_MODULES (space separated module names) if set.
#
# Idempotent: does nothing when the outputs exist, are newer than this script, init.sh and
# udhcpc.script, and were built with the same module list. --force rebuilds anyway.
# Set SLUICE_GUEST_KPKG=linux-image-<ver>-amd64 to pin a kernel package.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

FORCE=0
OUTDIR=/var/cache/sluice-guest
while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) echo "build-guest: unknown option $1" >&2; exit 2 ;;
        *) OUTDIR=$1 ;;
    esac
    shift
done

MODULES="virtio_pci virtio_net virtio_blk ${SLUICE_GUEST_EXTRA_MODULES:-}"
read -r -a _mods <<<"$MODULES"
MODULES="${_mods[*]}"    # normalise spaces
INPUTS=("$HERE/build-guest.sh" "$HERE/init.sh" "$HERE/udhcpc.script")
PACKAGES=(qemu-system-x86 qemu-utils busybox-static kmod cpio)

log() { echo "build-guest: $*" >&2; }

up_to_date() {
    local f
    [ "$FORCE" = 0 ] || return 1
    for f in vmlinuz initramfs.gz build.stamp; do
        [ -s "$OUTDIR/$f" ] || return 1
    done
    [ "$(sed -n 's/^modules=//p' "$OUTDIR/build.stamp")" = "$MODULES" ] || return 1
    for f in "${INPUTS[@]}"; do
        [ "$OUTDIR/vmlinuz" -nt "$f" ] && [ "$OUTDIR/initramfs.gz" -nt "$f" ] || return 1
    done
    return 0
}

if up_to_date; then
    log "up to date: $OUTDIR/vmlinuz $OUTDIR/initramfs.gz"
    exit 0
fi

mkdir -p "$OUTDIR"
exec 9>"$OUTDIR/.lock"
flock 9
if up_to_date; then    # another build finished while we waited for the lock
    log "up to date: $OUTDIR/vmlinuz $OUTDIR/initramfs.gz"
    exit 0
fi

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        apt-get update -qq >&2
        APT_UPDATED=1
    fi
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_update_once
    log "apt-get install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The versioned kernel package linux-image-amd64 depends on (empty if apt does not know it).
kernel_dep() {
    { apt-cache depends linux-image-amd64 2>/dev/null || true; } |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p; T; q'
}

kernel_package() {
    local pkg
    if [ -n "${SLUICE_GUEST_KPKG:-}" ]; then
        echo "$SLUICE_GUEST_KPKG"
        return
    fi
    pkg=$(kernel_dep)
    if [ -z "$pkg" ]; then
        apt_update_once
        pkg=$(kernel_dep)
    fi
    if [ -z "$pkg" ]; then
        log "cannot find the kernel package linux-image-amd64 depends on"
        exit 1
    fi
    echo "$pkg"
}

install_packages

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-guest-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

KPKG=$(kernel_package)
KVER=${KPKG#linux-image-}
log "kernel package $KPKG"
mkdir -p "$WORK/deb"
chown _apt "$WORK/deb" 2>/dev/null || true    # lets apt download without its root warning
(cd "$WORK/deb" && apt-get download -qq "$KPKG")
DEB=$(ls "$WORK"/deb/*.deb)
KROOT="$WORK/kroot"
dpkg-deb -x "$DEB" "$KROOT"
[ -f "$KROOT/boot/vmlinuz-$KVER" ] || { log "no boot/vmlinuz-$KVER in $DEB"; exit 1; }
MODDIR=lib/modules/$KVER
[ -d "$KROOT/$MODDIR" ] || { log "no $MODDIR in $DEB"; exit 1; }
depmod -b "$KROOT" "$KVER"

# Module files in load order, each once ("builtin X" lines are skipped).
# shellcheck disable=SC2086
modprobe -d "$KROOT" -S "$KVER" --show-depends -a $MODULES >"$WORK/deps"
awk '$1 == "insmod" && !seen[$2]++ { print $2 }' "$WORK/deps" >"$WORK/files"
[ -s "$WORK/files" ] || { log "no module files found for: $MODULES"; exit 1; }

IR="$WORK/initramfs"
mkdir -p "$IR"/{bin,sbin,usr/bin,usr/sbin,etc/sluice,proc,sys,dev,tmp,run,root,"$MODDIR"}
: >"$IR/etc/sluice/modules.files"
while read -r src; do
    rel=${src#"$KROOT"/}
    mkdir -p "$IR/$(dirname "$rel")"
    case "$src" in
        *.ko.xz)  xz -dc "$src" >"$IR/${rel%.xz}"; rel=${rel%.xz} ;;
        *.ko.zst) zstd -qdc "$src" >"$IR/${rel%.zst}"; rel=${rel%.zst} ;;
        *.ko.gz)  gzip -dc "$src" >"$IR/${rel%.gz}"; rel=${rel%.gz} ;;
        *)        cp "$src" "$IR/$rel" ;;
    esac
    echo "/$rel" >>"$IR/etc/sluice/modules.files"
done <"$WORK/files"
for f in modules.builtin modules.builtin.modinfo modules.order; do
    if [ -f "$KROOT/$MODDIR/$f" ]; then cp "$KROOT/$MODDIR/$f" "$IR/$MODDIR/"; fi
done
depmod -b "$IR" "$KVER"
echo "$MODULES" | tr ' ' '\n' >"$IR/etc/sluice/modules"

cp /bin/busybox "$IR/bin/busybox"
/bin/busybox --list-full | while read -r applet; do
    case "$applet" in
        bin/busybox|"") continue ;;
    esac
    [ -e "$IR/$applet" ] || ln -s /bin/busybox "$IR/$applet"
done
install -m 0755 "$HERE/init.sh" "$IR/init"
install -m 0755 "$HERE/udhcpc.script" "$IR/etc/sluice/udhcpc.script"
echo "$KVER" >"$IR/etc/sluice/kernel-version"
mknod -m 600 "$IR/dev/console" c 5 1 2>/dev/null || log "mknod /dev/console failed (init reopens it)"
mknod -m 666 "$IR/dev/null" c 1 3 2>/dev/null || true

(cd "$IR" && find . -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 -n >"$OUTDIR/initramfs.gz.tmp"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUTDIR/vmlinuz.tmp"
mv -f "$OUTDIR/vmlinuz.tmp" "$OUTDIR/vmlinuz"
mv -f "$OUTDIR/initramfs.gz.tmp" "$OUTDIR/initramfs.gz"
{
    echo "kernel=$KVER"
    echo "modules=$MODULES"
    echo "module_files=$(tr '\n' ' ' <"$IR/etc/sluice/modules.files")"
} >"$OUTDIR/build.stamp"
log "built $OUTDIR/vmlinuz ($KVER, $(stat -c %s "$OUTDIR/vmlinuz") bytes)" \
    "and $OUTDIR/initramfs.gz ($(stat -c %s "$OUTDIR/initramfs.gz") bytes)"
