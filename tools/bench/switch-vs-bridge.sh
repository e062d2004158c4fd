#!/usr/bin/env bash
# Sluice's learning switch side by side with the Linux kernel bridge, driven by the same
# dpdk-testpmd generator through AF_PACKET sockets on veth pairs, counting the kernel's CPU.
#
#   tools/bench/switch-vs-bridge.sh [OUT.md]   (default tools/bench/results-switch-bridge.md)
#
# There is no vhost-net here, so the kernel bridge cannot be fed from vhost-user. Instead:
#
#   cpu GEN_CPU: one dpdk-testpmd, two net_af_packet ports on veth ends A0 and B0
#        (generator AND sink, io closed loop: port 0 ──► A0═A1 ──► DUT ──► B1═B0 ──► port 1
#        and back; each source MAC stays on its own side)
#   DUT A  kernel bridge (stp off, forward delay 0) with members A1, B1 — it runs in softirq
#          context, mostly on the CPU that transmitted the frame
#   DUT B  sluice, [switch] of two af-packet ports on A1, B1, worker alone on cpu DUT_CPU
#   DUT C  (context) sluice, [switch] of two vhost-user ports with the virtio-user generator
#          of p2p-vs-testpmd.sh (no kernel in the path); VHOST=0 leaves it out
#
# A and B differ only in the switch. The generator's own per-burst sendto() and the veth
# hops cost kernel CPU on both sides, so the rate says little; the report gives CPU per
# packet with the kernel counted, over the window: the generator's and sluice's user and
# system time (/proc/PID/stat; the system time covers their system calls and, with this
# kernel's tick accounting, the softirq work — bridge, veth, packet-socket delivery — that
# runs on their stack), plus softirq work done elsewhere: the ksoftirqd threads' time, or,
# on a kernel with CONFIG_IRQ_TIME_ACCOUNTING, the per-CPU softirq+irq jiffies of
# /proc/stat (there no process's stime holds softirq time). The per-CPU softirq and system
# columns of /proc/stat are recorded for context. Total cores / Mpps gives CPU time per
# packet; Mpps / total cores gives Mpps per busy core. Other people's processes do not
# enter these sums.
#
# For every repeat and size it runs A, B (and C) one after the other, order reversed every
# repeat, fresh processes (and a fresh bridge) per sample: warm-up, then a window of
# WINDOW seconds between two generator `show port stats all`.
#
# Environment:
#   REPEATS=3 WINDOW=5 WARMUP=2 SIZES="64 1518" DUT_CPU=1 GEN_CPU=0 TX_FIRST=32 VHOST=1
#   SLUICE_BIN_DIR  directory holding release `sluice` and `sluice-stat`
#                   (default: `swift build -c release` in the repository)
#   MIN_CPU=90 MAX_STEAL=5  clean sample: the generator's CPU (its process + softirq on its
#                   CPU) and sluice's (process + softirq on its CPU) >= MIN_CPU % of a core,
#                   steal <= MAX_STEAL % on both vCPUs
#   INSTALL=1       install missing tools with `apt-get install -y dpdk iproute2`
#   KEEP_LOGS=1     keep the work directory with every log
# Exit: 0 done, 1 error, 77 a tool is missing (one `SKIP: reason` line).

set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=p2p-config.sh
. "$root/tools/bench/p2p-config.sh"
# shellcheck source=bench-lib.sh
. "$root/tools/bench/bench-lib.sh"
out="${1:-$root/tools/bench/results-switch-bridge.md}"
bench_defaults
VHOST=${VHOST:-1}
case "$REPEATS$WINDOW$WARMUP$DUT_CPU$GEN_CPU$TX_FIRST$VHOST" in *[!0-9]*) echo "REPEATS, WINDOW, WARMUP, DUT_CPU, GEN_CPU, TX_FIRST, VHOST must be integers" >&2; exit 1 ;; esac

missing() {
    command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd"; return; }
    command -v ip >/dev/null || echo "ip"
}
if [ -n "$(missing)" ] && [ "${INSTALL:-0}" = 1 ]; then apt-get install -y dpdk iproute2 >&2; fi
m="$(missing)"
[ -z "$m" ] || { echo "SKIP: $m not found (INSTALL=1, or apt-get install -y dpdk iproute2)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (veth pairs, a bridge, AF_PACKET sockets)"; exit 77; }
probe="swbp$$"
ip link add "${probe}a" type veth peer name "${probe}b" 2>/dev/null || { echo "SKIP: cannot create veth pairs"; exit 77; }
ip link del "${probe}a"
ip link add "${probe}br" type bridge 2>/dev/null || { echo "SKIP: cannot create a Linux bridge"; exit 77; }
ip link del "${probe}br"

find_sluice ""   # SLUICE_BIN_DIR or a release build
note_run_start
HZ=$(getconf CLK_TCK)
TSC_GHZ=${TSC_GHZ:-2.3}   # only to print CPU time as cycles next to sluice's rdtsc cycles

work="$(mktemp -d /tmp/switch-vs-bridge.XXXXXX)"
tag="swbr$$"
A0="${tag}a0"; A1="${tag}a1"; B0="${tag}b0"; B1="${tag}b1"; BR="${tag}br"
gen_prefix="${tag}gen"; instance="$tag"
S0="$work/s0.sock"; S1="$work/s1.sock"
GEN_PID=""; DUT_PID=""
GEN_MAC0=02:00:00:00:0b:00; GEN_MAC1=02:00:00:00:0b:01

remove_leftovers() {
    rm -rf "/var/run/dpdk/$gen_prefix"
    rm -f "/dev/shm/sluice-$instance.stats" "$S0" "$S1"
}
cleanup() {
    quit_testpmd "$GEN_PID" 3; GEN_PID=""
    stop_pid "$DUT_PID"; DUT_PID=""
    ip link del "$BR" 2>/dev/null
    ip link del "$A0" 2>/dev/null
    ip link del "$B0" 2>/dev/null
    remove_leftovers
    drop_work
}
install_traps

# ---------------------------------------------------------------------------
# Commands (also written to the report)

VETH_SETUP=(
    "ip link add $A0 type veth peer name $A1"
    "ip link add $B0 type veth peer name $B1"
    "ip link set $A0 address $GEN_MAC0"
    "ip link set $B0 address $GEN_MAC1"
)
for i in $A0 $A1 $B0 $B1; do
    # No IPv6 (no router solicitations, DAD or MLD frames in the loop); MTU 1504 for
    # testpmd's 1518-byte frames (1504 bytes after the Ethernet header).
    VETH_SETUP+=("sysctl -qw net.ipv6.conf.$i.disable_ipv6=1" "ip link set $i mtu 1504 up")
done
BRIDGE_UP=(
    "ip link add $BR type bridge stp_state 0 forward_delay 0"
    "sysctl -qw net.ipv6.conf.$BR.disable_ipv6=1"
    "ip link set $A1 master $BR"
    "ip link set $B1 master $BR"
    "ip link set $BR up"
)
BRIDGE_DOWN="ip link del $BR"
GEN_CMD_AF="dpdk-testpmd --lcores 0@$DUT_CPU,1@$GEN_CPU --no-pci --no-huge -m 512 --file-prefix $gen_prefix --vdev net_af_packet0,iface=$A0 --vdev net_af_packet1,iface=$B0 -- -i --total-num-mbufs=16384 --eth-peer=0,$GEN_MAC1 --eth-peer=1,$GEN_MAC0"
GEN_CMD_VU="dpdk-testpmd --lcores 0@$DUT_CPU,1@$GEN_CPU --no-pci --no-huge -m 512 --single-file-segments --file-prefix $gen_prefix --vdev net_virtio_user0,path=$S0,queues=1,mac=$GEN_MAC0 --vdev net_virtio_user1,path=$S1,queues=1,mac=$GEN_MAC1 -- -i --total-num-mbufs=16384 --eth-peer=0,$GEN_MAC1 --eth-peer=1,$GEN_MAC0"
DUTB_CMD="taskset -c $DUT_CPU $SLUICE --config $work/switch-afp.ini --cores $DUT_CPU --poll 0"
DUTC_CMD="taskset -c $DUT_CPU $SLUICE --config $work/switch-vhost.ini --cores $DUT_CPU --poll 0"

cat >"$work/switch-afp.ini" <<EOF
[dataplane]
cores = $DUT_CPU
poll = 0
hugepages = off
socket-dir = $work
instance = $instance

[port p0]
type = af-packet
interface = $A1
mtu = 1504

[port p1]
type = af-packet
interface = $B1
mtu = 1504

[switch br0]
ports = p0, p1
EOF
write_p2p_config "$work/switch-vhost.ini" "$DUT_CPU" "$work" "$instance" switch

for c in "${VETH_SETUP[@]}"; do $c || { echo "setup failed: $c" >&2; exit 1; }; done

# ---------------------------------------------------------------------------
# One sample


start_dut() {   # A|B|C log
    case "$1" in
        A) local c; for c in "${BRIDGE_UP[@]}"; do $c >>"$2" 2>&1 || return 1; done; DUT_PID="" ;;
        B) stdbuf -oL $DUTB_CMD >"$2" 2>&1 & DUT_PID=$!
           wait_for 20 log_has "$2" "running" ;;
        C) stdbuf -oL $DUTC_CMD >"$2" 2>&1 & DUT_PID=$!
           wait_for 20 sockets_exist && wait_for 10 log_has "$2" "running" ;;
    esac
}
stop_dut() {
    if [ "$1" = A ]; then $BRIDGE_DOWN 2>/dev/null; else stop_pid "$DUT_PID"; fi
    DUT_PID=""
}
# Where softirq time lands. With CONFIG_IRQ_TIME_ACCOUNTING the softirq column of /proc/stat
# has all of it and no process's stime includes it. Without it (tick accounting) a tick that
# hits softirq work done inside a process's system call or interrupt exit is charged to that
# process's stime AND to the softirq column, so adding both would count it twice: then the
# kernel's share is the processes' stime plus the ksoftirqd threads' time.
if zcat /proc/config.gz 2>/dev/null | grep -q '^CONFIG_IRQ_TIME_ACCOUNTING=y' \
   || grep -qs '^CONFIG_IRQ_TIME_ACCOUNTING=y' "/boot/config-$(uname -r)"; then IRQTIME=1; else IRQTIME=0; fi
KSD_GEN=$(pgrep -x "ksoftirqd/$GEN_CPU" | head -1); KSD_DUT=$(pgrep -x "ksoftirqd/$DUT_CPU" | head -1)
ksd_ticks() { echo "$(cpu_ticks "${KSD_GEN:-0}") $(cpu_ticks "${KSD_DUT:-0}")"; }
# "user system irq softirq steal total" jiffies of one CPU
cpu_line() { awk -v c="cpu$1" '$1 == c {print $2 + $3, $4, $7, $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

# samples.tsv columns:
#  1 dut  2 io  3 size  4 gen_mpps  5 sluice cycles/pkt  6 total cores  7 ns/pkt  8 Mpps/core
#  9 softirq cores not in 5 and 12-15 (ksoftirqd, or the softirq column with IRQ time accounting)
#  10 /proc/stat softirq+irq cores on GEN_CPU  11 on DUT_CPU (context)  12 gen user cores
#  13 gen sys cores  14 sluice user cores  15 sluice sys cores  16 kernel ns/pkt
#  17 system-wide sys cores (context)  18 load1  19 bytes/frame  20 steal% GEN_CPU
#  21 steal% DUT_CPU  22 gen share %  23 DUT-CPU share %
one_sample() {
    local dut=$1 size=$2 id=$3
    local glog="$work/$id.gen.log" gcmd
    if [ "$dut" = C ]; then gcmd=$GEN_CMD_VU; else gcmd=$GEN_CMD_AF; fi
    start_sample "$dut" "$id" "$gcmd" "$dut" || return 1
    gen_io "$size"

    # --- window start
    echo "show port stats all" >&3
    local t0 g0 d0="0 0" c00 c10
    t0=$(now); g0=$(cpu_ticks2 "$GEN_PID"); [ -n "$DUT_PID" ] && d0=$(cpu_ticks2 "$DUT_PID")
    c00=$(cpu_line "$GEN_CPU"); c10=$(cpu_line "$DUT_CPU"); local k0; k0=$(ksd_ticks)
    [ "$dut" != A ] && "$STAT" --instance "$instance" --json >"$work/$id.s0.json"
    sleep "$WINDOW"
    # --- window end
    echo "show port stats all" >&3
    local t1 g1 d1="0 0" c01 c11
    [ "$dut" != A ] && "$STAT" --instance "$instance" --json >"$work/$id.s1.json"
    t1=$(now); g1=$(cpu_ticks2 "$GEN_PID"); [ -n "$DUT_PID" ] && d1=$(cpu_ticks2 "$DUT_PID")
    c01=$(cpu_line "$GEN_CPU"); c11=$(cpu_line "$DUT_CPU"); local k1; k1=$(ksd_ticks)
    [ "$dut" = A ] && bridge fdb show br "$BR" 2>/dev/null | grep -i -e "$GEN_MAC0" -e "$GEN_MAC1" >"$work/$id.fdb.txt"
    gen_done
    stop_dut "$dut"

    local gen_mpps fbytes cycles="NA" row
    gen_mpps=$(gen_window_mpps "$glog")
    fbytes=$(gen_window_fbytes "$glog")
    [ "$dut" != A ] && cycles=$(sluice_cycles "$work/$id.s0.json" "$work/$id.s1.json")
    row=$(awk -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v mpps="${gen_mpps:-NA}" \
              -v g0="$g0" -v g1="$g1" -v d0="$d0" -v d1="$d1" \
              -v a0="$c00" -v a1="$c01" -v b0="$c10" -v b1="$c11" -v k0="$k0" -v k1="$k1" -v irqtime="$IRQTIME" 'BEGIN {
        dt = t1 - t0
        split(g0, G0, " "); split(g1, G1, " "); split(d0, D0, " "); split(d1, D1, " ")
        split(a0, X0, " "); split(a1, X1, " "); split(b0, Y0, " "); split(b1, Y1, " ")
        c = hz * dt                                   # jiffies in one core-window
        gu = (G1[1] - G0[1]) / c; gs = (G1[2] - G0[2]) / c
        du = (D1[1] - D0[1]) / c; ds = (D1[2] - D0[2]) / c
        sq0 = ((X1[3] - X0[3]) + (X1[4] - X0[4])) / c  # irq + softirq, GEN_CPU
        sq1 = ((Y1[3] - Y0[3]) + (Y1[4] - Y0[4])) / c  # irq + softirq, DUT_CPU
        sys = ((X1[2] - X0[2]) + (Y1[2] - Y0[2])) / c
        st0 = (X1[6] > X0[6]) ? (X1[5] - X0[5]) / (X1[6] - X0[6]) * 100 : 0
        st1 = (Y1[6] > Y0[6]) ? (Y1[5] - Y0[5]) / (Y1[6] - Y0[6]) * 100 : 0
        split(k0, K0, " "); split(k1, K1, " ")
        kg = (K1[1] - K0[1]) / c; kd = (K1[2] - K0[2]) / c     # ksoftirqd threads
        if (irqtime) { eg = sq0; ed = sq1 } else { eg = kg; ed = kd }
        total = gu + gs + du + ds + eg + ed
        kern = gs + ds + eg + ed
        if (mpps == "NA" || mpps + 0 <= 0) { nspp = "NA"; kns = "NA"; ppc = "NA" }
        else { nspp = sprintf("%.0f", total / (mpps * 1e6) * 1e9); kns = sprintf("%.0f", kern / (mpps * 1e6) * 1e9)
               ppc = sprintf("%.3f", mpps / total) }
        printf "%.2f\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f",
            total, nspp, ppc, eg + ed, sq0, sq1, gu, gs, du, ds, kns, sys, st0, st1,
            (gu + gs + eg) * 100, (du + ds + ed) * 100
    }')
    printf '%s\tio\t%s\t%s\t%s\t%s\n' "$dut" "$size" "${gen_mpps:-NA}" "${cycles:-NA}" "$row" \
        | awk -F'\t' -v OFS='\t' -v l="$(cut -d' ' -f1 /proc/loadavg)" -v fb="${fbytes:-NA}" \
            '{print $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,l,fb,$18,$19,$20,$21}' >>"$work/samples.tsv"
    tail -1 "$work/samples.tsv" | awk -F'\t' -v id="$id" '{printf "  %-5s DUT %s %4s B: %s Mpps, %s cores (gen %s+%s, sluice %s+%s, extra softirq %s), %s ns/pkt, %s Mpps/core, sluice %s cycles/pkt, steal %s%%/%s%%\n", id, $1, $3, $4, $6, $12, $13, $14, $15, $9, $7, $8, $5, $20, $21}' >&2
}

# ---------------------------------------------------------------------------
# Run

duts="A B"; [ "$VHOST" = 1 ] && duts="A B C"
rev_duts=$(echo "$duts" | tr ' ' '\n' | tac | tr '\n' ' ')
run_samples "switch vs Linux bridge" "$duts" "$rev_duts"

# ---------------------------------------------------------------------------
# Report

MIN_CPU=${MIN_CPU:-90}
MAX_STEAL=${MAX_STEAL:-5}
CLEAN_AWK="\$22 + 0 >= $MIN_CPU && (\$1 == \"A\" || \$23 + 0 >= $MIN_CPU) && \$20 + 0 <= $MAX_STEAL && \$21 + 0 <= $MAX_STEAL"
S="$work/samples.tsv"
name() { case "$1" in A) echo "Linux bridge (af_packet)";; B) echo "Sluice switch (af-packet)";; C) echo "Sluice switch (vhost-user, context)";; esac; }
cyc() { awk -v n="$1" -v g="$TSC_GHZ" 'BEGIN {if (n == "NA") print "NA"; else printf "%.0f", n * g}'; }
{
    echo "# Learning switch: Sluice vs the Linux bridge (AF_PACKET generator on veth pairs)"
    echo
    echo "Generated by \`tools/bench/switch-vs-bridge.sh\` on $started in ${elapsed} s."
    echo
    echo "- Machine: $(machine_dpdk), sluice binary in $bindir" \
         "built $built (HEAD was $rev when the benchmark ran)."
    echo "- Load average at start **$load_at_start**, at end **$load_at_end** (2 vCPUs). Busiest processes at start:"
    busy_block
    echo "- $REPEATS samples per cell, DUTs alternated (order reversed every repeat), fresh processes and a fresh"
    echo "  bridge per sample, ${WARMUP} s warm-up, ${WINDOW} s window, io closed loop (\`start tx_first $TX_FIRST\`). Medians (range)."
    echo
    echo "| DUT | size | Mpps | cores busy | CPU ns/pkt | ≈ cycles/pkt @ $TSC_GHZ GHz | kernel ns/pkt | Mpps per busy core | sluice busy cycles/pkt | samples |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for size in $SIZES; do
        for d in $duts; do
            ns=$(median_of "$S" 7 "$d" io "$size")
            echo "| $(name "$d") | $size | $(fmt "$(median_of "$S" 4 "$d" io "$size")" 3) ($(range_of "$S" 4 "$d" io "$size")) | $(fmt "$(median_of "$S" 6 "$d" io "$size")" 2) | $(fmt "$ns" 0) ($(range_of "$S" 7 "$d" io "$size")) | $(cyc "$ns") | $(fmt "$(median_of "$S" 16 "$d" io "$size")" 0) | $(fmt "$(median_of "$S" 8 "$d" io "$size")" 3) | $(fmt "$(median_of "$S" 5 "$d" io "$size")" 1) | $(cell_rows "$S" "$d" io "$size" | grep -c .) |"
        done
    done
    echo
    echo "Sluice (af-packet) / bridge, medians:"
    echo
    echo "| size | Mpps ratio | CPU ns/pkt ratio | kernel ns/pkt ratio | Mpps per busy core ratio |"
    echo "|---:|---:|---:|---:|---:|"
    for size in $SIZES; do
        echo "| $size | $(ratio "$(median_of "$S" 4 A io "$size")" "$(median_of "$S" 4 B io "$size")") | $(ratio "$(median_of "$S" 7 A io "$size")" "$(median_of "$S" 7 B io "$size")") | $(ratio "$(median_of "$S" 16 A io "$size")" "$(median_of "$S" 16 B io "$size")") | $(ratio "$(median_of "$S" 8 A io "$size")" "$(median_of "$S" 8 B io "$size")") |"
    done
    echo
    contended=$(awk -F'\t' "!($CLEAN_AWK)" "$S" | wc -l)
    if [ "$contended" -gt 0 ]; then
        echo "**Warning: in $contended of $(wc -l <"$S") samples the generator or sluice got less than $MIN_CPU % of a core"
        echo "(its process plus the ksoftirqd time on its CPU), or more than $MAX_STEAL % of a vCPU was stolen.** Other work"
        echo "ran on the same CPUs; medians leave those samples out when a cell has clean ones (last column: samples used)."
        echo
    fi
    echo "How to read it:"
    echo
    echo "- **Mpps**: frames forwarded per second, both directions summed, as the generator counts them."
    echo "  With AF_PACKET the generator pays a \`sendto()\` per burst and the veth hops, so its CPU — not"
    echo "  either switch — sets the rate; compare CPU per packet."
    echo "- **cores busy**: over the window, the generator's user+system time, sluice's user+system time (B, C),"
    echo "  and softirq work outside them, in cores. $( [ "$IRQTIME" = 1 ] && echo "This kernel has IRQ time accounting: softirq = the per-CPU softirq+irq columns of /proc/stat." || echo "This kernel uses tick accounting (no CONFIG_IRQ_TIME_ACCOUNTING): softirq work done on a process's stack (the bridge inside the generator's sendto(), veth and packet-socket delivery) is already in that process's system time, so only the ksoftirqd threads are added; the /proc/stat softirq columns below overlap with the system time and are context only.")"
    echo "   **CPU ns/pkt** = cores busy / forwarded frames per second. This counts busy polling as busy:"
    echo "  the generator and sluice spin when idle, so a rate limited elsewhere raises their ns/pkt."
    echo "- **kernel ns/pkt**: only the kernel part (generator and sluice system time + the extra softirq time):"
    echo "  for the bridge, everything it does; for Sluice, the AF_PACKET rings' system calls and the veth hops."
    echo "- **sluice busy cycles/pkt**: \`worker.0.busy_cycles / worker.0.busy_packets\` (user-space TSC cycles;"
    echo "  includes the time its transmit \`sendto()\` spends in the kernel)."
    echo "- The bridge does its work in softirq context on the CPU that transmitted the frame, i.e. inside the"
    echo "  generator's \`sendto()\` on cpu$GEN_CPU: the bridge runs on the generator's core and cpu$DUT_CPU stays"
    echo "  nearly idle (see the per-CPU softirq columns below), while Sluice adds a polling core. Sluice row C"
    echo "  (vhost-user, no kernel in the path) shows the same switch without AF_PACKET for context."
    echo
    echo "## Raw samples"
    echo
    echo "Cores: gen u/s = generator user/system; sl u/s = sluice user/system; sirq = /proc/stat softirq+irq on cpu$GEN_CPU / cpu$DUT_CPU (context);"
    echo "extra = softirq cores added to the total (ksoftirqd, or the sirq columns with IRQ time accounting);"
    echo "sys all = system time of every process on both CPUs (context: includes other people's builds)."
    echo "share: generator (process + extra softirq on cpu$GEN_CPU) and sluice (process + extra softirq on cpu$DUT_CPU), % of a core."
    echo
    echo "| DUT | size | bytes/frame | Mpps | cores | ns/pkt | kernel ns/pkt | Mpps/core | gen u/s | sl u/s | extra | sirq cpu$GEN_CPU/cpu$DUT_CPU | sys all | sluice cyc/pkt | share gen/dut % | steal % | load1 | clean |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' "{n = (\$1 == \"A\") ? \"A bridge\" : (\$1 == \"B\") ? \"B sluice afp\" : \"C sluice vhost\"; c = ($CLEAN_AWK) ? \"yes\" : \"no\";"' printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s/%s | %s | %s/%s | %s | %s | %s/%s | %s/%s | %s | %s |\n", n, $3, $19, $4, $6, $7, $16, $8, $12, $13, $14, $15, $9, $10, $11, $17, $5, $22, $23, $20, $21, $18, c}' "$S"
    echo
    if ls "$work"/*.fdb.txt >/dev/null 2>&1; then
        echo "Bridge forwarding table at the end of the last bridge sample (both generator MACs learned on their own side):"
        echo '```'
        cat "$(ls -t "$work"/*.fdb.txt | head -1)"
        echo '```'
        echo
    fi
    echo "## Commands"
    echo
    echo "Once per run:"
    echo '```'
    for c in "${VETH_SETUP[@]}"; do echo "$c"; done
    echo '```'
    echo "DUT A (Linux bridge), per sample:"
    echo '```'
    for c in "${BRIDGE_UP[@]}"; do echo "$c"; done
    echo "$BRIDGE_DOWN      # after the sample"
    echo '```'
    echo "DUT B (Sluice, af-packet ports on the same veth ends):"
    echo '```'
    echo "$DUTB_CMD"
    echo '```'
    echo '```ini'
    cat "$work/switch-afp.ini"
    echo '```'
    echo "Generator and sink for A and B:"
    echo '```'
    echo "$GEN_CMD_AF"
    echo '```'
    if [ "$VHOST" = 1 ]; then
        echo "DUT C (Sluice, vhost-user ports) and its generator:"
        echo '```'
        echo "$DUTC_CMD"
        echo "$GEN_CMD_VU"
        echo '```'
    fi
    echo "Generator commands:"
    gen_io_commands
    echo "CPU accounting: /proc/PID/stat utime/stime of the generator, sluice and ksoftirqd/$GEN_CPU, ksoftirqd/$DUT_CPU,"
    echo "and the /proc/stat lines cpu$GEN_CPU and cpu$DUT_CPU (irq, softirq, system, steal columns), read at window start and"
    echo "end (USER_HZ=$HZ; IRQ time accounting: $( [ "$IRQTIME" = 1 ] && echo yes || echo no))."
} >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
echo "wrote $out (${elapsed} s)" >&2
