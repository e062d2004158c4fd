#!/bin/bash
# Real-peer test of sluice's NVMe driver (issue #12): QEMU's emulated NVMe controller in a q35
# TCG guest with an emulated IOMMU (intel-iommu,intremap=on,caching-mode=on; intel_iommu=on).
# Inside the guest (init.sh sl.role=nvme-test, tools/guest/nvme-guest.sh) the controller moves
# to vfio-pci, sluice (from the guest's initramfs) drives it and sluice-gen blk writes and
# verifies patterns through its vhost-user-blk sockets; then the controller goes back to the
# kernel's nvme driver, which reads the written ranges back. One guest boot runs:
#
#   a  busy poll (--poll 0), sgl = on: SN1234:n1, SN1234:n2 and partition 2 of namespace 1 (by
#      its GPT GUID) on three sockets; write + verify on each (4 KiB, 128 KiB and 1 MiB
#      requests, the last above the controller's 512 KiB MDTS); a read-only export of n2 reads
#      n2's pattern and refuses a write; SIGTERM (status 0); sluice started again on the same
#      controller (re-initialised) verifies everything again; SIGTERM
#   b  event mode, sgl = off, interrupts = intx, io-queue-depth = 32: the same on new ranges
#      (sluice-gen --event)
#   c  event mode, interrupts = msix: the same on new ranges
#   d  event mode, interrupts = msi: sluice must exit non-zero at start with a message naming
#      MSI (QEMU 7.2's controller has MSI-X and INTx, no MSI)
#
# Then, on the host: every range the guest wrote holds exactly the pattern (md5 computed here
# from sluice-gen's pattern definition) in the image files and as the guest's kernel driver
# read it back; everything else (the GPT, partition 1, the rest of both namespaces, the range
# the read-only export refused) is unchanged.
#
#   tools/guest/test-nvme.sh [--only a,b,c,d] [--stand-in] [--mem SIZE] [--smp N]
#
#   --only LIST   the scenarios to run (default a,b,c,d)
#   --stand-in    a check of this harness, not of the driver: no [nvme] section; sluice exports
#                 the namespaces through the guest kernel's nvme driver as [disk] files
#                 (/dev/nvme0n1, /dev/nvme0n2, io_uring) before the controller visits vfio-pci;
#                 the same sockets, I/O, restart and host checks (scenarios a, b, c only)
#
# Environment: SLUICE_BIN_DIR (sluice, sluice-gen, sluice-stat; default <repo>/.build/debug,
# then .build/release) — the dynamic binaries go into the guest with every library ldd lists,
# at the same paths; SLUICE_NVME_GUEST_DIR (default /var/cache/sluice-guest-nvme: the guest
# kernel + initramfs with nvme vfio_pci vfio_iommu_type1, built by build-guest.sh);
# BOOT_TIMEOUT (600 s for the whole guest run; each step in the guest has its own
# limit: 30 s for sluice to listen or to refuse, 5 s per sluice-gen connect or completion,
# 10 s from SIGTERM to exit); SLUICE_KEEP=1 keeps the run directory.
# Output: progress on stderr; on stdout one line per check, `PASS test-nvme <what>: facts` or
# `FAIL test-nvme <what>: why`, then `PASS test-nvme all` or `FAIL test-nvme all (N failed)`.
# Exit 0 pass, 1 fail, 2 bad usage, 77 skipped (one `SKIP: reason` line on stdout).
# shellcheck disable=SC2054  # commas are QEMU option syntax
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

ONLY=""
STANDIN=0
MEM=1G
SMP=2
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY=${2:-}; shift ;;
        --mem) MEM=${2:-}; shift ;;
        --smp) SMP=${2:-}; shift ;;
        --stand-in) STANDIN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "test-nvme: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$STANDIN" = 1 ]; then ONLY=${ONLY:-a,b,c}; else ONLY=${ONLY:-a,b,c,d}; fi
for s in ${ONLY//,/ }; do
    case "$s" in a|b|c|d) ;; *) echo "test-nvme: --only takes a comma-separated list of a, b, c, d" >&2; exit 2 ;; esac
    if [ "$STANDIN" = 1 ] && [ "$s" = d ]; then echo "test-nvme: scenario d (interrupts = msi) needs the driver, not --stand-in" >&2; exit 2; fi
done
KIND=""; [ "$STANDIN" = 1 ] && KIND=" stand-in"

# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=nvme-lib.sh
source "$HERE/nvme-lib.sh"
sl_need_root "QEMU guests"
sl_require qemu-system-x86_64 qemu-system-x86
sl_require sgdisk gdisk
sl_require cpio cpio
sl_require python3 python3
sl_find_sluice
GEN=$SLUICE_BIN_DIR/sluice-gen
[ -x "$GEN" ] || sl_skip "no sluice-gen in $SLUICE_BIN_DIR (swift build, or set SLUICE_BIN_DIR)"
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}

sl_setup nvme
FAILED=0
VM=""
# result OK|FAIL WHAT TEXT: one result line on stdout (and in the progress log).
result() {
    if [ "$1" = OK ]; then
        echo "PASS test-nvme $2: $3"
    else
        echo "FAIL test-nvme $2: $3"
        FAILED=$((FAILED + 1))
    fi
    sl_log "$1 $2: $3"
}
# fatal TEXT: the harness cannot go on (no guest, no images): FAIL all and exit 1.
fatal() {
    sl_log "FAIL: $*"
    [ -z "$VM" ] || sl_markers "$SL_RUN/nvme.log" >&2
    # shellcheck disable=SC2119  # no sluice-stat options
    sl_fail_report
    echo "FAIL test-nvme all$KIND: $*"
    exit 1
}
# sl_fail_report reads SLUICE_PID (no sluice runs on the host); lib.sh's helpers call fail.
# shellcheck disable=SC2034
SLUICE_PID=""
# shellcheck disable=SC2317
fail() { fatal "$@"; }

MiB=1048576
# region_md5 FILE OFF LEN: md5 of LEN bytes of FILE from byte OFF.
region_md5() {
    dd if="$1" bs=$MiB iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none | md5sum | cut -d' ' -f1
}
# field LINE KEY: the value of KEY=value in a marker line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1" | head -n 1; }

# ---- the guest image (its own directory: the shared one keeps its module list) ----
t0=$(date +%s)
nvme_build_guest || fatal "build-guest.sh $NVME_GUEST_DIR failed"

# ---- namespaces: ns1 64 MiB with a GPT (partitions 1 and 2, fixed GUIDs), ns2 32 MiB ----
NS1=$SL_RUN/ns1.img
NS2=$SL_RUN/ns2.img
P1_GUID=5E1F0C2A-3333-4A4A-8B8B-0000000000B1
P2_GUID=5E1F0C2A-4444-4A4A-8B8B-0000000000B2
truncate -s $((64 * MiB)) "$NS1"
sgdisk -o -n 1:2048:+16M -t 1:8300 -u "1:$P1_GUID" -c 1:nvt-one \
    -n 2:0:+16M -t 2:8300 -u "2:$P2_GUID" -c 2:nvt-two "$NS1" >"$SL_RUN/sgdisk.out" 2>&1 ||
    fatal "sgdisk: $(tail -n 1 "$SL_RUN/sgdisk.out")"
# Random bytes between the primary GPT (first MiB) and the backup GPT (last MiB), so that any
# stray write shows; ns2 random throughout.
head -c $((62 * MiB)) /dev/urandom | dd of="$NS1" bs=$MiB seek=1 conv=notrunc iflag=fullblock status=none
head -c $((32 * MiB)) /dev/urandom >"$NS2"
# part_range N GUID: START and SIZE (bytes) of partition N, whose unique GUID must be GUID.
part_range() {
    local info first last guid
    info=$(sgdisk -i "$1" "$NS1")
    first=$(sed -n 's/^First sector: \([0-9]*\).*/\1/p' <<<"$info")
    last=$(sed -n 's/^Last sector: \([0-9]*\).*/\1/p' <<<"$info")
    guid=$(sed -n 's/^Partition unique GUID: \([0-9A-Fa-f-]*\).*/\1/p' <<<"$info")
    if [ -z "$first" ] || [ -z "$last" ]; then fatal "sgdisk -i $1: no first/last sector in: $info"; fi
    [ "$guid" = "$2" ] || fatal "partition $1 has GUID '$guid', wanted $2"
    START=$((first * 512)); SIZE=$(((last - first + 1) * 512))
}
part_range 1 "$P1_GUID"; P1_START=$START; P1_SIZE=$SIZE
part_range 2 "$P2_GUID"; P2_START=$START; P2_SIZE=$SIZE
cp "$NS1" "$SL_RUN/ns1.orig"; cp "$NS2" "$SL_RUN/ns2.orig"
sl_log "ns1.img: partition 1 at $P1_START+$P1_SIZE, partition 2 at $P2_START+$P2_SIZE; ns2.img 32 MiB"

# ---- the plan: what each scenario writes where (see nvme-guest.sh for the file formats) ----
PLAN=$SL_RUN/ovl/etc/sluice/nvme
mkdir -p "$PLAN"
# socket_image SOCK: "IMAGE BASE" of an export (where its byte 0 is).
socket_image() {
    case "$1" in
        n1.sock) echo "$NS1 0" ;;
        n2.sock|ro.sock) echo "$NS2 0" ;;
        p2.sock) echo "$NS1 $P2_START" ;;
    esac
}
DEV_N1=SN1234:n1; DEV_N2=SN1234:n2
[ "$STANDIN" = 0 ] || { DEV_N1=disk:ns1; DEV_N2=disk:ns2; }
# nvme_ini NAME NVME-KEYS: the scenario's configuration (the same four exports every time).
nvme_ini() {
    {
        echo "; written by test-nvme.sh, scenario $1"
        echo "[dataplane]"
        echo "cores = $(( SMP > 1 ? 1 : 0 ))"
        echo "socket-dir = /run/nvt"
        echo "instance = nvt"
        echo
        if [ "$STANDIN" = 1 ]; then
            printf '[disk ns1]\nfile = /dev/nvme0n1\n\n[disk ns2]\nfile = /dev/nvme0n2\n'
        else
            echo "[nvme]"
            echo "pci = 0000:00:04.0"
            printf '%s\n' "$2"
        fi
        cat <<EOF

[blk n1]
device = $DEV_N1
socket = n1.sock
serial = nvt-n1

[blk n2]
device = $DEV_N2
socket = n2.sock
serial = nvt-n2

[blk p2]
device = $P2_GUID
socket = p2.sock
serial = nvt-p2

[blk ro]
device = $DEV_N2
socket = ro.sock
read-only = true
serial = nvt-ro
EOF
    } >"$PLAN/$1.ini"
}
# io_plan NAME INDEX: write+verify 1 MiB on n1 (4 KiB requests), n2 (128 KiB) and partition 2
# (1 MiB requests: split at MDTS), each scenario on its own ranges and seeds; the read-only
# export verifies n2's range and must refuse a write to a range nobody writes.
io_plan() {
    local i=$2 seed
    seed=$(( (0xa + i) << 4 ))    # a: 0xa1, 0xa2, 0xa3; b: 0xb1 ...
    cat >"$PLAN/$1.io" <<EOF
rw n1.sock $(( (40 + 2 * i) * MiB )) $MiB $(printf 0x%x $((seed + 1))) 4k
rw n2.sock $(( (2 + 2 * i) * MiB )) $MiB $(printf 0x%x $((seed + 2))) 128k
rw p2.sock $(( (1 + 2 * i) * MiB )) $MiB $(printf 0x%x $((seed + 3))) 1m
ro ro.sock $(( (2 + 2 * i) * MiB )) $MiB $(printf 0x%x $((seed + 2))) 64k
deny ro.sock $((20 * MiB)) $((64 * 1024)) 0xdead 64k
EOF
}
: >"$PLAN/scenarios"
[ "$STANDIN" = 0 ] || : >"$PLAN/standin"
: >"$PLAN/readback"
for s in ${ONLY//,/ }; do
    case "$s" in
        a) nvme_ini a $'sgl = on\ninterrupts = msix'; io_plan a 0
           echo "a restart - --poll 0" >>"$PLAN/scenarios" ;;
        b) nvme_ini b $'sgl = off\ninterrupts = intx\nio-queue-depth = 32'; io_plan b 1
           echo "b run --event" >>"$PLAN/scenarios" ;;
        c) nvme_ini c $'sgl = on\ninterrupts = msix'; io_plan c 2
           echo "c run --event" >>"$PLAN/scenarios" ;;
        d) nvme_ini d $'sgl = on\ninterrupts = msi'
           echo "d refuse:MSI -" >>"$PLAN/scenarios"
           continue ;;
    esac
    while read -r op sock off len _ _; do
        [ "$op" = rw ] || continue
        read -r img base <<<"$(socket_image "$sock")"
        echo "$( [ "$img" = "$NS1" ] && echo n1 || echo n2 ) $((base + off)) $len" >>"$PLAN/readback"
    done <"$PLAN/$s.io"
done

# Expected md5 of every rw range, from sluice-gen's pattern (tools/sluice-gen/BlkPattern.swift):
# sector s (of the export) is 64 little-endian u64 words, word i = splitmix64(seed + (s*64+i)*G).
cat >"$SL_RUN/pattern.py" <<'EOF'
import hashlib, struct, sys
M = (1 << 64) - 1
G = 0x9E3779B97F4A7C15
def splitmix64(x):
    z = (x + G) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
def pattern(seed, first, sectors):
    out = bytearray()
    for s in range(first, first + sectors):
        out += struct.pack('<64Q', *[splitmix64((seed + ((s * 64 + i) * G)) & M) for i in range(64)])
    return bytes(out)
if sys.argv[1] == 'md5':            # lines "SEED OFFSET LENGTH" (export-relative) -> md5 per line
    for line in sys.stdin:
        seed, off, length = (int(w, 0) for w in line.split())
        print(hashlib.md5(pattern(seed, off // 512, length // 512)).hexdigest())
else:                               # untouched ORIG ACTUAL OFF:LEN...: first differing byte outside the ranges
    a, b = open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read()
    if len(a) != len(b):
        print('size %d, was %d' % (len(b), len(a))); sys.exit(0)
    a, b = bytearray(a), bytearray(b)
    for r in sys.argv[4:]:
        off, length = (int(w) for w in r.split(':'))
        a[off:off + length] = bytes(length); b[off:off + length] = bytes(length)
    diff = next((i for i in range(0, len(a), 4096) if a[i:i + 4096] != b[i:i + 4096]), None)
    print('same' if diff is None else 'differs in the 4 KiB block at %d' % diff)
EOF

# ---- the extra archive: the guest script, the plan, sluice and sluice-gen with their libraries ----
OVL=$SL_RUN/ovl
install -D -m 0644 "$HERE/nvme-guest.sh" "$OVL/etc/sluice/nvme-guest.sh"
nvme_add_binaries "$OVL" sluice sluice-gen
nvme_pack "$OVL"
SIZES="sluice $(( $(stat -c %s "$OVL/usr/bin/sluice") / 1000000 )) MB + sluice-gen $(( $(stat -c %s "$OVL/usr/bin/sluice-gen") / 1000000 )) MB + $NVME_SIZES"
sl_log "guest image and archive ready after $(( $(date +%s) - t0 )) s: $SIZES"

# ---- boot ----
t0=$(date +%s)
nvme_start_vm nvme "$MEM" "$SMP" "sl.role=nvme-test sl.timeout=$BOOT_TIMEOUT" "$NS1" "$NS2"
VM=$SL_LAST_PID
LOG=$SL_RUN/nvme.log
rc=0
line=$(sl_wait_marker "$LOG" 'SLUICE-GUEST: DONE' "$((BOOT_TIMEOUT + 60))" 0 "$VM") || rc=$?
if [ "$rc" != 0 ]; then
    sl_alive "$VM" || fatal "QEMU (pid $VM) exited before the guest finished: $(tail -n 2 "$SL_RUN/nvme.qemu" | tr '\n' ' ')"
    fatal "the guest did not finish within $((BOOT_TIMEOUT + 60)) s (no DONE line)"
fi
GUEST_SECS=$(( $(date +%s) - t0 ))
for _ in $(seq 100); do sl_alive "$VM" || break; sleep 0.1; done    # the guest powers off
sl_stop_pid "$VM"
VM=""
MARKERS=$(sl_markers "$LOG")
sl_log "guest ran ${GUEST_SECS} s: $line"
printf '%s\n' "$MARKERS" >&2

# marker REGEX: the first marker line matching REGEX (after "SLUICE-GUEST: ").
marker() { grep -E -m 1 -- "^SLUICE-GUEST: ($1)" <<<"$MARKERS" || true; }
# after_bar LINE: the text after the first " | " (sluice's or sluice-gen's words).
after_bar() { sed -n 's/^[^|]* | //p' <<<"$1"; }

# ---- harness: the guest booted, bound vfio-pci and rebound nvme ----
ctrl=$(marker 'NVME-CTRL ')
bound=$(marker 'NVME-BOUND ')
rebound=$(marker 'NVME-REBOUND ')
other=$(marker 'NVME-FAIL |MODULES-FAIL|ERROR ')
if [ -n "$ctrl" ] && [ -n "$bound" ] && [ -n "$rebound" ] && [ -z "$other" ] &&
    [ "$(field "$rebound" namespaces)" = "$(field "$ctrl" namespaces)" ]; then
    result OK "guest$KIND" "q35 TCG ${GUEST_SECS} s (-m $MEM -smp $SMP), controller ${ctrl#*NVME-CTRL }, ${bound#*NVME-BOUND }, back on nvme with $(field "$rebound" namespaces) namespaces; $SIZES"
else
    result FAIL "guest$KIND" "${other:-${ctrl:-no NVME-CTRL line} / ${bound:-not bound to vfio-pci} / ${rebound:-not back on nvme}}"
fi

# ---- scenarios a, b, c: every step in the guest, every range in the images and read back ----
declare -A EXPECT
expected_md5s() {    # NAME: EXPECT[NAME:LINE] for each rw line of NAME.io
    local i=0 m
    while read -r m; do
        EXPECT[$1:$i]=$m; i=$((i + 1))
    done < <(awk '$1 == "rw" { print $5, $3, $4 }' "$PLAN/$1.io" | python3 "$SL_RUN/pattern.py" md5)
}
WRITTEN_NS1=()
WRITTEN_NS2=()
check_scenario() {    # NAME WHAT
    local s=$1 why="" facts=() i=0 op sock off len seed bs img base ns got rb n line
    expected_md5s "$s"
    line=$(marker "NVME-START-FAIL scen=$s |NVME-IO-FAIL scen=$s |NVME-STOP-FAIL scen=$s |NVME-FAIL scen=$s ")
    [ -z "$line" ] || why="in the guest: ${line#SLUICE-GUEST: }"
    line=$(marker "NVME-SCEN scen=$s ")
    [ -n "$why" ] || [ -n "$line" ] || why="the guest did not run scenario $s"
    [ -n "$why" ] || [ "$(field "$line" fail)" = 0 ] || why="the guest counted failures: ${line#SLUICE-GUEST: }"
    while read -r op sock off len seed bs; do
        [ "$op" = rw ] || continue
        read -r img base <<<"$(socket_image "$sock")"
        ns=n1; [ "$img" = "$NS2" ] && ns=n2
        if [ "$ns" = n1 ]; then WRITTEN_NS1+=("$((base + off)):$len"); else WRITTEN_NS2+=("$((base + off)):$len"); fi
        got=$(region_md5 "$img" $((base + off)) "$len")
        rb=$(field "$(marker "NVME-READBACK ns=$ns .* off=$((base + off)) ")" md5)
        if [ "$got" != "${EXPECT[$s:$i]}" ]; then
            [ -n "$why" ] || why="${sock%.sock} range $off+$len: the image holds md5 $got, pattern $seed is ${EXPECT[$s:$i]}"
            facts+=("${sock%.sock} image differs")
        elif [ "$rb" != "${EXPECT[$s:$i]}" ]; then
            [ -n "$why" ] || why="${sock%.sock} range $off+$len: the kernel driver read md5 ${rb:-(none)}, pattern $seed is ${EXPECT[$s:$i]}"
            facts+=("${sock%.sock} read-back differs")
        else
            facts+=("${sock%.sock} $((len / 1024)) KiB at $off (bs $bs) = pattern $seed in the image and through /dev/nvme0$ns")
        fi
        i=$((i + 1))
    done <"$PLAN/$s.io"
    if [ -n "$why" ]; then
        result FAIL "$s$KIND ($2)" "$why"
        return
    fi
    line=$(marker "NVME-IO-OK scen=$s run=1 op=deny ")
    facts+=("read-only export: n2's pattern read, write refused ($(after_bar "$line" | sed 's/.*; //'))")
    n=$(grep -c -E "^SLUICE-GUEST: NVME-START scen=$s " <<<"$MARKERS" || true)
    facts+=("$n start(s) in $(grep -E "^SLUICE-GUEST: NVME-START scen=$s " <<<"$MARKERS" | sed 's/.* secs=\([^ ]*\).*/\1/' | tr '\n' '/' | sed 's|/$||') s, SIGTERM status 0 in $(grep -E "^SLUICE-GUEST: NVME-STOP scen=$s " <<<"$MARKERS" | sed 's/.* secs=\([^ ]*\).*/\1/' | tr '\n' '/' | sed 's|/$||') s")
    if [ "$s" = a ]; then
        [ "$n" = 2 ] || { result FAIL "$s$KIND ($2)" "expected two sluice runs (restart), saw $n"; return; }
        facts+=("after the restart every range verified again")
    fi
    result OK "$s$KIND ($2)" "$(printf '%s; ' "${facts[@]}" | sed 's/; $//')"
}

for s in ${ONLY//,/ }; do
    case "$s" in
        a) check_scenario a "poll 0, sgl on, two namespaces + partition, restart" ;;
        b) check_scenario b "event, sgl off, intx" ;;
        c) check_scenario c "event, msix" ;;
        d) line=$(marker "NVME-REFUSED scen=d |NVME-REFUSE-FAIL scen=d |NVME-SCEN scen=d ")
           case "$line" in
               *NVME-REFUSED*) result OK "d (interrupts = msi refused)" "sluice exited with status $(field "$line" rc) after $(field "$line" secs) s: $(after_bar "$line")" ;;
               *NVME-REFUSE-FAIL*) result FAIL "d (interrupts = msi refused)" "${line#SLUICE-GUEST: NVME-REFUSE-FAIL scen=d }" ;;
               *) result FAIL "d (interrupts = msi refused)" "the guest did not run scenario d" ;;
           esac ;;
    esac
done

# ---- everything outside the written ranges is unchanged ----
# area NAME-OF-BYTE OFFSET (ns1): which part of namespace 1 a byte offset is in.
area() {
    if [ "$1" -lt "$P1_START" ]; then echo "the primary GPT"
    elif [ "$1" -lt $((P1_START + P1_SIZE)) ]; then echo "partition 1"
    elif [ "$1" -lt "$P2_START" ]; then echo "the gap before partition 2"
    elif [ "$1" -lt $((P2_START + P2_SIZE)) ]; then echo "partition 2 outside the written ranges"
    elif [ "$1" -ge $((64 * MiB - MiB)) ]; then echo "the backup GPT area"
    else echo "the free space after partition 2"; fi
}
u1=$(python3 "$SL_RUN/pattern.py" untouched "$SL_RUN/ns1.orig" "$NS1" "${WRITTEN_NS1[@]}")
u2=$(python3 "$SL_RUN/pattern.py" untouched "$SL_RUN/ns2.orig" "$NS2" "${WRITTEN_NS2[@]}")
if [ "$u1" = same ] && [ "$u2" = same ]; then
    result OK "untouched$KIND" "outside the ${#WRITTEN_NS1[@]}+${#WRITTEN_NS2[@]} written ranges ns1 (GPT, partition 1, rest of partition 2, free space) and ns2 (incl. the range the read-only export refused) are byte for byte unchanged"
else
    why=""
    if [ "$u1" != same ]; then
        off=$(sed -n 's/.* at \([0-9]*\)$/\1/p' <<<"$u1")
        why="ns1 $u1${off:+ ($(area "$off"))}"
    fi
    [ "$u2" = same ] || why="${why:+$why; }ns2 $u2"
    result FAIL "untouched$KIND" "$why"
fi

if [ "$FAILED" = 0 ]; then
    echo "PASS test-nvme all$KIND"
    exit 0
fi
echo "FAIL test-nvme all$KIND ($FAILED failed)"
exit 1
