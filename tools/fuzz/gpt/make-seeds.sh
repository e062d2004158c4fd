#!/usr/bin/env bash
# Writes the seed corpus of the `gpt` fuzz target (input layout: Fuzz.swift) from
# images made by sgdisk and sfdisk, and damaged copies of them.
# Run by hand: tools/fuzz/gpt/make-seeds.sh [DIR]   (default tools/fuzz/corpus/gpt)
# Needs gdisk and fdisk; the 4096-byte-block seeds need root (a loop device).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${1:-$ROOT/tools/fuzz/corpus/gpt}
export PATH=$PATH:/usr/sbin:/sbin
command -v sgdisk >/dev/null || { echo "make-seeds: sgdisk is missing (apt-get install gdisk)" >&2; exit 2; }
command -v sfdisk >/dev/null || { echo "make-seeds: sfdisk is missing (apt-get install fdisk)" >&2; exit 2; }
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# le BYTES VALUE: VALUE as BYTES little-endian bytes, in printf's \x form.
le() {
    local n=$1 v=$2 i out=''
    for ((i = 0; i < n; i++)); do out+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255))); done
    printf '%s' "$out"
}

# seed NAME IMAGE FLAGS HEAD_BYTES TAIL_BYTES [DISK_BYTES]: the image's first HEAD_BYTES
# and last TAIL_BYTES, for a disk of DISK_BYTES (default: the image's size).
seed() {
    local name=$1 img=$2 flags=$3 head=$4 tail=$5 size
    size=${6:-$(stat -c %s "$img")}
    {
        # shellcheck disable=SC2059 # the format is the \x bytes le() built
        printf "$(le 1 "$flags")$(le 5 "$size")$(le 2 "$head")"
        head -c "$head" "$img"
        tail -c "$tail" "$img"
    } >"$OUT/$name.bin"
}

# poke IMAGE OFFSET BYTE: overwrite one byte.
# shellcheck disable=SC2059 # the format is the \x byte le() built
poke() { printf "$(le 1 "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# 64 MiB, 128 entries (the usual layout): two Linux partitions with names.
img=$TMP/big.img
truncate -s 64M "$img"
sgdisk -n 1:2048:+16M -c 1:boot -n 2:0:0 -c 2:données "$img" >/dev/null
seed sgdisk-512-128-entries "$img" 0 $((34 * 512)) $((33 * 512))

# 1 MiB, 4 entries (one block): small enough for the fuzzer to mutate every field.
img=$TMP/small.img
truncate -s 1M "$img"
sgdisk -S 4 -n 1:0:+256K -t 1:ef00 -c 1:EFI -n 2:0:0 -c 2:root "$img" >/dev/null
seed sgdisk-512-4-entries "$img" 0 $((3 * 512)) $((2 * 512))
seed sgdisk-512-unreadable-middle "$img" 2 $((3 * 512)) $((2 * 512))
seed sgdisk-512-truncated "$img" 0 $((3 * 512)) $((2 * 512)) $((512 * 1024))
seed sgdisk-512-read-as-4096 "$img" 1 $((3 * 512)) $((2 * 512))

# Flag 4: the harness recomputes the CRCs, so mutations reach the checks behind them.
seed crcfix-sgdisk-512-4-entries "$img" 4 $((3 * 512)) $((2 * 512))
cp "$img" "$TMP/d.img"; poke "$TMP/d.img" $((1024 + 128 + 32)) 0x00   # partition 2 starts inside 1
poke "$TMP/d.img" $((1024 * 1024 - 2 * 512 + 128 + 32)) 0x00          # in both arrays
seed crcfix-overlap "$TMP/d.img" 4 $((3 * 512)) $((2 * 512))

cp "$img" "$TMP/d.img"; poke "$TMP/d.img" $((512 + 60)) 0x42          # disk GUID: header CRC
seed damaged-primary-header "$TMP/d.img" 0 $((3 * 512)) $((2 * 512))
cp "$img" "$TMP/d.img"; poke "$TMP/d.img" $((1024 + 32)) 0x07         # partition 1 start: entries CRC
seed damaged-primary-entries "$TMP/d.img" 0 $((3 * 512)) $((2 * 512))
poke "$TMP/d.img" $((1024 * 1024 - 512 + 60)) 0x42                     # and the backup header
seed damaged-both "$TMP/d.img" 0 $((3 * 512)) $((2 * 512))
cp "$img" "$TMP/d.img"; dd if=/dev/zero of="$TMP/d.img" bs=512 count=1 conv=notrunc status=none
seed wiped-mbr "$TMP/d.img" 0 $((3 * 512)) $((2 * 512))

# An MBR-only disk (sfdisk) and an empty one.
img=$TMP/mbr.img
truncate -s 64M "$img"
printf 'label: dos\n,10M,L\n,,83\n' | sfdisk -q --no-reread --no-tell-kernel "$img" >/dev/null
seed sfdisk-mbr-only "$img" 0 512 0
truncate -s 1M "$TMP/zero.img"
seed zero-disk "$TMP/zero.img" 0 0 0

# 4096-byte blocks: sgdisk on a loop device that has them.
if [[ $(id -u) -eq 0 ]]; then
    img=$TMP/4k.img
    truncate -s 8M "$img"
    loop=$(losetup --show -f -b 4096 "$img")
    sgdisk -S 32 -n 1:0:+2M -c 1:data -n 2:0:0 "$loop" >/dev/null
    losetup -d "$loop"
    seed sgdisk-4096-32-entries "$img" 1 $((3 * 4096)) $((2 * 4096))
    seed sgdisk-4096-read-as-512 "$img" 0 $((3 * 4096)) $((2 * 4096))
    seed crcfix-sgdisk-4096-32-entries "$img" 5 $((3 * 4096)) $((2 * 4096))
else
    echo "make-seeds: not root: no 4096-byte-block seeds (they need a loop device)" >&2
fi
echo "make-seeds: $(find "$OUT" -type f | wc -l) seeds in $OUT"
