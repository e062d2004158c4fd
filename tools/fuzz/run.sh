#!/usr/bin/env bash
# shellcheck disable=SC2317 # target_* functions are called by name (load_target)
# Build and run Sluice's libFuzzer targets (parsers of untrusted input).
#
#   tools/fuzz/run.sh [SECONDS] [TARGET...]   fuzz each target for SECONDS (default 30)
#   tools/fuzz/run.sh --build [TARGET...]     build only
#   tools/fuzz/run.sh --seeds [TARGET...]     rewrite the seed corpus of targets with a generator
#   tools/fuzz/run.sh --list                  list the targets
#
# With no TARGET, every target in TARGETS runs, one after another.
# Exit status is non-zero when a target fails to build or libFuzzer reports a
# crash, leak or broken invariant; the input that did it is kept as
# $FUZZ_OUT/<target>/crash-* (replay: <binary> <that file>).
#
# Environment: FUZZ_BUILD_DIR (default <repo>/.build-fuzz), FUZZ_OUT (default
# <repo>/.build-fuzz/out; new inputs libFuzzer finds go to $FUZZ_OUT/<target>/corpus,
# the seeds in tools/fuzz/corpus/<target>/ are only read), FUZZ_FLAGS (more
# libFuzzer flags), SWIFTC, CLANG.
#
# Each target is built with swiftc directly, module by module
# (-sanitize=fuzzer,address), from the real sources: nothing is copied.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD_DIR:-$ROOT/.build-fuzz}
OUT=${FUZZ_OUT:-$BUILD/out}
SWIFTC=${SWIFTC:-swiftc}
CLANG=${CLANG:-$(dirname "$(command -v "$SWIFTC")")/clang}
SANITIZE=-sanitize=fuzzer,address

# ---------------------------------------------------------------------------
# The targets. To add one: write target_<name> (dashes become underscores)
# and add <name> to TARGETS. A target function sets:
#   MODULES  modules to build before the entry, in dependency order, each as
#            "Name=glob glob…" (paths relative to the repository root)
#   ENTRY    the file defining @_cdecl("LLVMFuzzerTestOneInput"); it imports MODULES
#   SEEDS    optional: a @main file that, built together with the sources of
#            the first module, writes the seed corpus into the directory it is given
#   CSHIM    yes when a module imports CSluice (compiled with clang, linked
#            with libnuma and libhugetlbfs)
#   MAX_LEN  libFuzzer -max_len

TARGETS=(vhost-message desc-chain switch-classify segment config dhcp4 dhcp6 ndp router gpt blk-request nvme-data)

target_vhost_message() {
    # Platform: the message codec closes fds it refuses through Platform's owned fds.
    MODULES=("Platform=Sources/Platform/*.swift" "VhostUser=Sources/VhostUser/Message*.swift")
    ENTRY=tools/fuzz/vhost-message/Fuzz.swift
    SEEDS=tools/fuzz/vhost-message/Seeds.swift
    CSHIM=yes
    MAX_LEN=4200 # control byte + header + the 4096-byte payload limit
}

# The INI parser and section decoders (pure Config module) on arbitrary bytes; seeds are
# the example configs and the test fixtures, committed in tools/fuzz/corpus/config.
target_config() {
    MODULES=("Config=Sources/Config/*.swift")
    ENTRY=tools/fuzz/config/Fuzz.swift
    SEEDS=
    CSHIM=no
    MAX_LEN=8192
}

# Virtio's chain walker and a p2p link direction over fake guest memory (two
# memfd-backed guests); see desc-chain/Fuzz.swift for the input layout. Seeds are
# committed files, written by `swift tools/fuzz/desc-chain/make-seeds.swift DIR`
# (so no SEEDS generator here: it would need the C shim to build).
target_desc_chain() {
    MODULES=("Platform=Sources/Platform/*.swift" "Memory=Sources/Memory/*.swift" "Stats=Sources/Stats/*.swift"
             "Virtio=Sources/Virtio/*.swift" "Ports=Sources/Ports/*.swift"
             "Switching=Sources/Switching/P2PLink.swift")
    ENTRY=tools/fuzz/desc-chain/Fuzz.swift
    SEEDS=
    CSHIM=yes
    MAX_LEN=20480 # 9 control bytes + rings (0x4000) + 4 KiB of buffers
}

# The learning switch's datapath (SwitchPortQueue: VLANs, learning, flood, mirror,
# port security, MTU, hand-over rings) over four mock vhost guests; see
# switch-classify/Fuzz.swift for the input layout and the invariants. Seeds are
# committed files, written by `swift tools/fuzz/switch-classify/make-seeds.swift DIR`.
target_switch_classify() {
    MODULES=("Platform=Sources/Platform/*.swift" "Memory=Sources/Memory/*.swift" "Stats=Sources/Stats/*.swift"
             "Virtio=Sources/Virtio/*.swift" "Ports=Sources/Ports/*.swift" "Switching=Sources/Switching/*.swift"
             "FuzzGuest=tools/fuzz/common/FuzzGuest.swift")
    ENTRY=tools/fuzz/switch-classify/Fuzz.swift
    SEEDS=
    CSHIM=yes
    MAX_LEN=16384 # 9 control bytes + a few frames of up to 2048 bytes
}

# The L3 router's datapath (RouterQueue over mock vhost guests; an oracle explains every
# delivered and punted frame); see router/Fuzz.swift.
target_router() {
    MODULES=("Platform=Sources/Platform/*.swift" "Memory=Sources/Memory/*.swift" "Stats=Sources/Stats/*.swift"
             "Virtio=Sources/Virtio/*.swift" "Ports=Sources/Ports/*.swift" "Switching=Sources/Switching/*.swift"
             "FuzzGuest=tools/fuzz/common/FuzzGuest.swift"
             "RouterFuzzModel=tools/fuzz/router/Model.swift tools/fuzz/router/Oracle.swift")
    ENTRY=tools/fuzz/router/Fuzz.swift
    SEEDS=
    CSHIM=yes
    MAX_LEN=16384 # 3 control bytes + many 9-byte compact records or a few raw frames
}

# The DHCPv6 server and the NDP responder of a [network] (control thread) on hostile
# client messages; see dhcp6/Fuzz.swift and ndp/Fuzz.swift for the input layouts. Only the
# Services files they use are built (pure: Config and no Platform).
SERVICES_V6="Sources/Services/Frames.swift Sources/Services/NetworkService.swift Sources/Services/DHCPv6*.swift Sources/Services/NDP*.swift"
target_dhcp6() {
    MODULES=("Config=Sources/Config/*.swift" "Services=$SERVICES_V6")
    ENTRY=tools/fuzz/dhcp6/Fuzz.swift
    SEEDS=tools/fuzz/dhcp6/Seeds.swift
    CSHIM=no
    MAX_LEN=4096
}
target_ndp() {
    MODULES=("Config=Sources/Config/*.swift" "Services=$SERVICES_V6")
    ENTRY=tools/fuzz/ndp/Fuzz.swift
    SEEDS=tools/fuzz/ndp/Seeds.swift
    CSHIM=no
    MAX_LEN=4096
}

# An af-packet port's handling of a frame with a virtio-net header: GSO segmentation
# (resumed across bursts) and checksum completion; see segment/Fuzz.swift.
target_segment() {
    MODULES=("Platform=Sources/Platform/*.swift" "Memory=Sources/Memory/*.swift" "Stats=Sources/Stats/*.swift"
             "Virtio=Sources/Virtio/*.swift" "Ports=Sources/Ports/*.swift")
    ENTRY=tools/fuzz/segment/Fuzz.swift
    SEEDS=
    CSHIM=yes
    MAX_LEN=65608 # 8 control bytes + a 64 KiB IP packet behind Ethernet and two tags
}

# The DHCPv4 server and its lease store on sequences of client messages (see
# dhcp4/Fuzz.swift for the input layout and the invariants); seeds written by
# dhcp4/Seeds.swift (`--seeds dhcp4`), committed in tools/fuzz/corpus/dhcp4.
target_dhcp4() {
    MODULES=("Platform=Sources/Platform/*.swift" "Config=Sources/Config/*.swift" "Services=Sources/Services/*.swift")
    ENTRY=tools/fuzz/dhcp4/Fuzz.swift
    SEEDS=tools/fuzz/dhcp4/Seeds.swift
    CSHIM=yes
    MAX_LEN=8192 # up to 16 messages of a few hundred bytes
}

# The GPT reader of the blk exports (GPT.swift and CRC32.swift only, built as a module
# of their own: they import nothing) on hostile disks; see gpt/Fuzz.swift for the input
# layout. Seeds are committed files, written by tools/fuzz/gpt/make-seeds.sh (sgdisk).
target_gpt() {
    MODULES=("Block=Sources/Block/GPT.swift Sources/Block/CRC32.swift")
    ENTRY=tools/fuzz/gpt/Fuzz.swift
    SEEDS=
    CSHIM=no
    MAX_LEN=65536 # flags + size + head length, then head and tail (a 4096-byte-block table fits)
}

# The virtio-blk request path (BlkRequestParser.parse on every offered head, and with a
# flag BlkQueue polling a real io_uring on a file with guard bytes around the export) over
# a mock guest; see blk-request/Fuzz.swift for the input layout and the invariants. Seeds
# are committed files, written by `swift tools/fuzz/blk-request/make-seeds.swift DIR`.
target_blk_request() {
    MODULES=("Platform=Sources/Platform/*.swift" "Memory=Sources/Memory/*.swift" "Stats=Sources/Stats/*.swift"
             "Virtio=Sources/Virtio/*.swift" "VhostUser=Sources/VhostUser/*.swift" "Ports=Sources/Ports/*.swift"
             "Block=Sources/Block/*.swift" "FuzzGuest=tools/fuzz/common/FuzzGuest.swift")
    ENTRY=tools/fuzz/blk-request/Fuzz.swift
    SEEDS=
    CSHIM=yes
    MAX_LEN=32772 # 4 control bytes + the 0x8000-byte memory image
}

# The NVMe data path: the real NVMeBlkBackend of a real NVMeQueuePair (created through
# NVMeController) against a strict controller model over an in-memory BAR that checks
# every device address, length and LBA the driver hands it, holds back, reorders and
# fails completions, and goes fatal; see nvme-data/Fuzz.swift for the input layout and
# the invariants. Seeds are committed files, written by
# `swift tools/fuzz/nvme-data/make-seeds.swift DIR`.
NVME_DATA_MODEL="tools/fuzz/nvme-data/DeviceMemory.swift tools/fuzz/nvme-data/Device.swift tools/fuzz/nvme-data/DataPointers.swift"
NVME_DATA_MODEL+=" tools/fuzz/nvme-data/Oracle.swift tools/fuzz/nvme-data/Inputs.swift"
target_nvme_data() {
    MODULES=("Platform=Sources/Platform/*.swift" "Memory=Sources/Memory/*.swift" "Stats=Sources/Stats/*.swift"
             "Virtio=Sources/Virtio/*.swift" "VhostUser=Sources/VhostUser/*.swift" "Ports=Sources/Ports/*.swift"
             "Block=Sources/Block/*.swift" "NVMe=Sources/NVMe/*.swift" "NVMeDataModel=$NVME_DATA_MODEL")
    ENTRY=tools/fuzz/nvme-data/Fuzz.swift
    SEEDS=
    CSHIM=yes
    MAX_LEN=4096 # 6 header bytes + ops
}

# ---------------------------------------------------------------------------

die() { echo "fuzz: $*" >&2; exit 2; }

load_target() {
    local fn="target_${1//-/_}"
    declare -F "$fn" >/dev/null || die "unknown target '$1' (known: ${TARGETS[*]})"
    MODULES=() ENTRY='' SEEDS='' CSHIM=no MAX_LEN=4096
    "$fn"
}

# Expands "glob glob…" relative to ROOT; fails when a glob matches nothing.
expand_sources() {
    local pattern files=()
    for pattern in $1; do
        # shellcheck disable=SC2206 # the glob must expand here
        local matched=("$ROOT"/$pattern)
        [[ -e ${matched[0]} ]] || die "no source matches $pattern"
        files+=("${matched[@]}")
    done
    printf '%s\n' "${files[@]}"
}

build_cshim() {
    local dir=$1
    mkdir -p "$dir/cshim"
    cat >"$dir/cshim/module.modulemap" <<EOF
module CSluice {
    header "$ROOT/Sources/CSluice/include/csluice.h"
    header "$ROOT/Sources/CSluice/include/sl_hostio.h"
    header "$ROOT/Sources/CSluice/include/sl_uring.h"
    header "$ROOT/Sources/CSluice/include/sl_mmio.h"
    export *
}
EOF
    local c
    for c in "$ROOT"/Sources/CSluice/*.c; do
        "$CLANG" -O1 -g ${CSHIM_FLAGS--fsanitize=fuzzer-no-link,address} -I "$ROOT/Sources/CSluice/include" \
            -c "$c" -o "$dir/$(basename "$c" .c).o" || return 1
    done
}

# build_target NAME -> sets BIN
build_target() {
    local name=$1 dir="$BUILD/$1" objects=() link=() spec module sources
    load_target "$name"
    rm -rf "$dir"
    mkdir -p "$dir"
    if [[ $CSHIM == yes ]]; then
        build_cshim "$dir" || return 1
        objects+=("$dir"/*.o)
        link+=(-lnuma -lhugetlbfs -luring)
    fi
    for spec in "${MODULES[@]}"; do
        module=${spec%%=*}
        mapfile -t sources < <(expand_sources "${spec#*=}")
        echo "fuzz: $name: module $module (${#sources[@]} files)"
        "$SWIFTC" -O -g "$SANITIZE" -parse-as-library -wmo -enforce-exclusivity=unchecked \
            -module-name "$module" -emit-module -emit-module-path "$dir/$module.swiftmodule" \
            -I "$dir" -I "$dir/cshim" -c "${sources[@]}" -o "$dir/$module.o" || return 1
        objects+=("$dir/$module.o")
    done
    echo "fuzz: $name: linking"
    # lld: gold warns about every ASan helper symbol in clang's csluice.o.
    "$SWIFTC" -O -g "$SANITIZE" -parse-as-library -use-ld=lld -I "$dir" -I "$dir/cshim" \
        "$ROOT/$ENTRY" "${objects[@]}" "${link[@]}" -o "$dir/fuzz-$name" || return 1
    BIN="$dir/fuzz-$name"
}

write_seeds() {
    local name=$1 dir="$BUILD/$1-seeds" sources objects=() link=() spec module last
    load_target "$name"
    [[ -n $SEEDS ]] || { echo "fuzz: $name has no seed generator"; return 0; }
    rm -rf "$dir"
    mkdir -p "$dir" "$ROOT/tools/fuzz/corpus/$name"
    # The generator is built with the target's last module (it may use its internals),
    # on top of the modules before it; no sanitizer.
    if [[ $CSHIM == yes ]]; then
        CSHIM_FLAGS="" build_cshim "$dir" || return 1
        objects+=("$dir"/*.o)
        link+=(-lnuma -lhugetlbfs -luring)
    fi
    last=$(( ${#MODULES[@]} - 1 ))
    for spec in "${MODULES[@]:0:$last}"; do
        module=${spec%%=*}
        mapfile -t sources < <(expand_sources "${spec#*=}")
        "$SWIFTC" -O -parse-as-library -wmo -module-name "$module" -emit-module -emit-module-path "$dir/$module.swiftmodule" \
            -I "$dir" -I "$dir/cshim" -c "${sources[@]}" -o "$dir/$module.o" || return 1
        objects+=("$dir/$module.o")
    done
    spec=${MODULES[$last]}
    mapfile -t sources < <(expand_sources "${spec#*=}")
    "$SWIFTC" -O -parse-as-library -module-name "${spec%%=*}" -I "$dir" -I "$dir/cshim" \
        "${sources[@]}" "$ROOT/$SEEDS" "${objects[@]}" "${link[@]}" -o "$dir/seeds" || return 1
    "$dir/seeds" "$ROOT/tools/fuzz/corpus/$name"
    echo "fuzz: $name: $(find "$ROOT/tools/fuzz/corpus/$name" -type f | wc -l) seeds in tools/fuzz/corpus/$name"
}

run_target() {
    local name=$1 seconds=$2 rc=0
    build_target "$name" || { echo "fuzz: $name: build failed" >&2; return 1; }
    local work="$OUT/$name"
    mkdir -p "$work/corpus" "$ROOT/tools/fuzz/corpus/$name"
    echo "fuzz: $name: running for ${seconds}s"
    # Swift's own crash backtracer would take over libFuzzer's crash handling
    # (and can hang under ASan): let libFuzzer report and save the input.
    # shellcheck disable=SC2086
    SWIFT_BACKTRACE=enable=no "$BIN" -max_total_time="$seconds" -max_len="$MAX_LEN" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/" ${FUZZ_FLAGS:-} \
        "$work/corpus" "$ROOT/tools/fuzz/corpus/$name" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "fuzz: $name FAILED (exit $rc); artifacts:" >&2
        ls -1 "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null >&2 || true
    else
        echo "fuzz: $name: no crash in ${seconds}s"
    fi
    return "$rc"
}

mode=run seconds=30
case "${1:-}" in
    --list) printf '%s\n' "${TARGETS[@]}"; exit 0 ;;
    --build) mode=build; shift ;;
    --seeds) mode=seeds; shift ;;
    ''|*[!0-9]*) ;;
    *) seconds=$1; shift ;;
esac
selected=("$@")
[[ ${#selected[@]} -gt 0 ]] || selected=("${TARGETS[@]}")

status=0
for t in "${selected[@]}"; do
    case $mode in
        build) build_target "$t" && echo "fuzz: built $BIN" || status=1 ;;
        seeds) write_seeds "$t" || status=1 ;;
        run) run_target "$t" "$seconds" || status=1 ;;
    esac
done
exit "$status"
