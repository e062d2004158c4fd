#!/bin/bash
# Boot a q35 TCG guest with an emulated IOMMU and one QEMU NVMe controller (serial SN1234,
# namespaces 1 and 2), move the controller to vfio-pci inside the guest and back
# (init.sh sl.role=vfio-probe), and run vfio-nvme-probe (and optionally a sluice binary)
# there. Prints the guest's SLUICE-GUEST / PROBE lines. A fact-finding tool for the NVMe
# driver (docs/nvme-plan.md), not a test.
#
#   tools/guest/probe-vfio-nvme.sh [--sluice PATH] [--config INI] [--gen PATH] [--one-ns]
#                                  [--cpu MODEL] [--aw-bits 39|48] [--probe-arg WORD] [--lbs 512|4096]
#                                  [--append "KERNEL PARAMS"] [--workdir DIR]
#
# --sluice PATH   copy PATH into the guest as /usr/bin/sluice (a static binary, or a dynamic
#                 one: its shared libraries from ldd are copied too); --config INI also goes
#                 in as /etc/sluice/nvme.ini and the guest runs `sluice --check` on it.
# --gen PATH      sluice-gen (same rules) as /usr/bin/sluice-gen: the guest then also runs
#                 sluice on a file in /tmp and `sluice-gen blk write/verify` through its socket.
# Exit status: 0 when the guest printed DONE with fail=0, 1 otherwise.
# shellcheck disable=SC2054  # commas are QEMU option syntax
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SLUICE=""; CONFIG=""; GEN=""; NS=2; PARG=""; LBS=""; KAPPEND=""; CPU=""; AW=""
WORK=/var/tmp/sluice-nvme-probe
while [ $# -gt 0 ]; do
    case "$1" in
        --sluice) SLUICE=$2; shift ;;
        --config) CONFIG=$2; shift ;;
        --gen) GEN=$2; shift ;;
        --probe-arg) PARG=$2; shift ;;
        --lbs) LBS=$2; shift ;;
        --append) KAPPEND=$2; shift ;;
        --one-ns) NS=1 ;;
        --cpu) CPU=$2; shift ;;
        --aw-bits) AW=$2; shift ;;
        --workdir) WORK=$2; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "probe-vfio-nvme: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
command -v gcc >/dev/null || { echo "probe-vfio-nvme: needs gcc (and libc6-dev for a static link)" >&2; exit 2; }
command -v sgdisk >/dev/null || { echo "probe-vfio-nvme: needs sgdisk (apt-get install gdisk)" >&2; exit 2; }

rm -rf "$WORK/ovl"
mkdir -p "$WORK/ovl/usr/bin" "$WORK/ovl/etc/sluice"
GDIR=$WORK/guest
SLUICE_GUEST_EXTRA_MODULES="nvme vfio_pci vfio_iommu_type1" "$HERE/build-guest.sh" "$GDIR" >&2

gcc -O2 -Wall -static -o "$WORK/ovl/usr/bin/vfio-nvme-probe" "$HERE/vfio-nvme-probe.c"
# add_binary SRC NAME: SRC as /usr/bin/NAME, with the shared libraries ldd lists (if any).
add_binary() {
    cp "$1" "$WORK/ovl/usr/bin/$2"
    for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
        mkdir -p "$WORK/ovl$(dirname "$lib")"
        cp -L "$lib" "$WORK/ovl$lib"
    done
}
[ -n "$SLUICE" ] && add_binary "$SLUICE" sluice
[ -n "$GEN" ] && add_binary "$GEN" sluice-gen
[ -n "$CONFIG" ] && cp "$CONFIG" "$WORK/ovl/etc/sluice/nvme.ini"
(cd "$WORK/ovl" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) |
    gzip -1 -n >"$WORK/overlay.gz"
mkdir -p "$WORK/boot"
cat "$GDIR/initramfs.gz" "$WORK/overlay.gz" >"$WORK/boot/initramfs.gz"
ln -sf "$GDIR/vmlinuz" "$WORK/boot/vmlinuz"

# Namespace 1: 64 MiB with a GPT (two partitions with fixed GUIDs); namespace 2: 32 MiB random.
if [ ! -s "$WORK/ns1.img" ]; then
    truncate -s 64M "$WORK/ns1.img"
    sgdisk -o -n 1:2048:+16M -u 1:11111111-2222-3333-4444-555555555555 \
        -n 2:0:+16M -u 2:66666666-7777-8888-9999-aaaaaaaaaaaa "$WORK/ns1.img" >/dev/null
    head -c 32M /dev/urandom >"$WORK/ns2.img"
fi
for f in ns1 ns2; do echo "host $f.img first 64 KiB md5=$(head -c 65536 "$WORK/$f.img" | md5sum | cut -d' ' -f1)"; done

append="intel_iommu=on sl.role=vfio-probe sl.timeout=600"
[ -n "$CONFIG" ] && append="$append sl.sluicecfg=/etc/sluice/nvme.ini"
[ -n "$PARG" ] && append="$append sl.probeargs=$PARG"
[ -n "$KAPPEND" ] && append="$append $KAPPEND"
nsopt=""
[ -n "$LBS" ] && nsopt=",logical_block_size=$LBS,physical_block_size=$LBS"
iommu="intel-iommu,intremap=on,caching-mode=on${AW:+,aw-bits=$AW}"
extra=(-M q35 -device "$iommu"
    -drive "file=$WORK/ns1.img,if=none,id=nvm1,format=raw"
    -device nvme,id=nvme0,serial=SN1234,addr=0x4
    -device "nvme-ns,drive=nvm1,bus=nvme0,nsid=1$nsopt")
if [ "$NS" = 2 ]; then
    extra+=(-drive "file=$WORK/ns2.img,if=none,id=nvm2,format=raw" -device "nvme-ns,drive=nvm2,bus=nvme0,nsid=2$nsopt")
fi
[ -n "$CPU" ] && extra+=(-cpu "$CPU")
LOG=$WORK/console.log
t0=$(date +%s)
timeout 900 "$HERE/run-vm.sh" --guest-dir "$WORK/boot" --mem 512M --log "$LOG" --append "$append" -- "${extra[@]}" ||
    echo "probe-vfio-nvme: qemu exited with $?" >&2
echo "guest ran $(( $(date +%s) - t0 )) s"
grep -a -E 'SLUICE-GUEST|PROBE' "$LOG" | tr -d '\r'
grep -a -q 'SLUICE-GUEST: DONE .* fail=0' "$LOG"
