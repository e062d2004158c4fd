# shellcheck shell=bash
# shellcheck disable=SC2034  # NVME_SIZES, SL_GUEST_DIR: read by the sourcing script and lib.sh
# shellcheck disable=SC2054  # commas are QEMU option syntax
# Host side shared by tools/guest/test-nvme.sh and tools/bench/nvme-vs-kernel.sh: the NVMe
# guest image, the extra initramfs archive with sluice's binaries and their libraries, and
# the q35 TCG guest with an emulated IOMMU and QEMU's NVMe controller (serial SN1234 at
# 00:04.0). Source it after lib.sh (it uses sl_log, sl_start_vm, SL_RUN, SLUICE_BIN_DIR).
#
#   nvme_build_guest                   build-guest.sh into NVME_GUEST_DIR (nvme + vfio modules)
#   nvme_add_binaries OVL NAME...      $SLUICE_BIN_DIR/NAME to OVL/usr/bin, with every ldd library
#   nvme_pack OVL                      OVL as a cpio after the guest's initramfs in $SL_RUN/boot
#   nvme_start_vm NAME MEM SMP APPEND IMAGE...   boot it; IMAGE n is namespace n (raw files)

NVME_GUEST_DIR=${SLUICE_NVME_GUEST_DIR:-/var/cache/sluice-guest-nvme}
NVME_LIBS=()      # the libraries nvme_add_binaries copied (paths on the host and in the guest)
NVME_SIZES=""     # what nvme_pack made, in words for the report

# nvme_build_guest: the guest kernel + initramfs with nvme vfio_pci vfio_iommu_type1, in its
# own directory (the shared /var/cache/sluice-guest keeps its module list). Returns 1 on failure.
nvme_build_guest() {
    SLUICE_GUEST_EXTRA_MODULES="nvme vfio_pci vfio_iommu_type1" "$SL_TOOLS/build-guest.sh" "$NVME_GUEST_DIR" >&2
}

# nvme_add_binaries OVL NAME...: the dynamic binaries go into the guest at /usr/bin with every
# library ldd lists, at the same paths (the busybox guest has no libraries of its own).
nvme_add_binaries() {
    local ovl=$1 bin lib
    shift
    mkdir -p "$ovl/usr/bin"
    for bin in "$@"; do
        cp "$SLUICE_BIN_DIR/$bin" "$ovl/usr/bin/$bin"
        while read -r lib; do
            [ -e "$ovl$lib" ] && continue
            mkdir -p "$ovl$(dirname "$lib")"
            cp -L "$lib" "$ovl$lib"
            NVME_LIBS+=("$lib")
        done < <(ldd "$SLUICE_BIN_DIR/$bin" | grep -o '/[^ ]*' || true)
    done
}

# nvme_pack OVL: OVL as a newc cpio (owner root) appended to the guest's initramfs in
# $SL_RUN/boot, which becomes SL_GUEST_DIR for sl_start_vm; NVME_SIZES says how big.
nvme_pack() {
    local ovl=$1 boot=$SL_RUN/boot
    (cd "$ovl" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) |
        gzip -1 -n >"$SL_RUN/overlay.gz"
    mkdir -p "$boot"
    cat "$NVME_GUEST_DIR/initramfs.gz" "$SL_RUN/overlay.gz" >"$boot/initramfs.gz"
    ln -sf "$NVME_GUEST_DIR/vmlinuz" "$boot/vmlinuz"
    SL_GUEST_DIR=$boot
    NVME_SIZES="${#NVME_LIBS[@]} libraries, $(( $(du -sb "$ovl" | cut -f1) / 1000000 )) MB in all, archive $(( $(stat -c %s "$SL_RUN/overlay.gz") / 1000000 )) MB gzipped, initramfs $(( $(stat -c %s "$boot/initramfs.gz") / 1000000 )) MB"
}

# nvme_start_vm NAME MEM SMP APPEND IMAGE...: a q35 TCG guest with intel-iommu (interrupt
# remapping, caching mode: what vfio-pci in the guest needs) and one QEMU NVMe controller,
# serial SN1234 at 00:04.0, with one namespace per raw IMAGE (nsid 1, 2, ...). The pid is in
# SL_LAST_PID; the console log is $SL_RUN/NAME.log. QEMU names its threads (debug-threads:
# "CPU n/TCG" for the vCPUs, "worker" for I/O), so that their CPU time can be told apart.
nvme_start_vm() {
    local name=$1 mem=$2 smp=$3 append=$4 img n=0 args=()
    shift 4
    args=(-name "$name,debug-threads=on"
        -M q35 -device intel-iommu,intremap=on,caching-mode=on -device nvme,id=nvme0,serial=SN1234,addr=0x4)
    for img in "$@"; do
        n=$((n + 1))
        args+=(-drive "file=$img,if=none,id=nvm$n,format=raw" -device "nvme-ns,drive=nvm$n,bus=nvme0,nsid=$n")
    done
    sl_start_vm "$name" --mem "$mem" --smp "$smp" --append "intel_iommu=on $append" -- "${args[@]}"
}
