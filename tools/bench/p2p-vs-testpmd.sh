#!/usr/bin/env bash
# Sluice's p2p link side by side with DPDK testpmd io-forwarding, on the same
# generator, on the same CPU.
#
#   tools/bench/p2p-vs-testpmd.sh [OUT.md]      (default tools/bench/results-p2p.md)
#
# Topology (two busy pollers on one CPU never make progress together, so the device
# under test (DUT) has cpu $DUT_CPU to itself):
#
#   cpu GEN_CPU: one dpdk-testpmd, two net_virtio_user ports = generator AND sink
#        port 0 ──► S0 ──► DUT ──► S1 ──► port 1   (and the other way round)
#   cpu DUT_CPU: DUT A  dpdk-testpmd, two net_vhost ports, io forwarding
#                DUT B  sluice, two vhost-user ports (server mode) and a [p2p] link
#
# For every repeat, mode (io closed loop with `start tx_first 32`; flowgen) and
# frame size (64, 1518) it runs A and B one after the other (the order flips every
# repeat), each with fresh processes: warm-up, then a window of WINDOW seconds
# between two generator `show port stats all` calls. Forwarded Mpps = the sum of
# the generator's two Rx-pps of that window. Busy cycles per packet over the same
# window: DUT A `clear fwd stats all` / `show fwd stats all` (--record-core-cycles);
# DUT B delta worker.0.busy_cycles / delta worker.0.busy_packets from sluice-stat.
# Medians over the repeats go to OUT.md with the raw samples. The machine is shared
# (other people's builds): each sample records the CPU share the DUT and the generator
# really got and the hypervisor's steal time, and the medians skip noisy samples.
#
# Environment:
#   ELEMENT=p2p     p2p | switch: what joins Sluice's two ports. With switch, the generator
#                   ports carry their own MACs (mac= on the vdev, --eth-peer), and io
#                   forwarding keeps every frame's source on its own side, so the switch
#                   forwards known unicast after the first burst.
#   REPEATS=3       samples per (DUT, mode, size)
#   WINDOW=5        measurement window, seconds
#   WARMUP=2        seconds of traffic before the window
#   MODES="io flowgen"   SIZES="64 1518"
#   DUT_CPU=1 GEN_CPU=0
#   SLUICE_BIN_DIR  directory holding release `sluice` and `sluice-stat`
#                   (default: `swift build -c release` in the repository)
#   MIN_CPU=90 MAX_STEAL=5  a sample is clean when the DUT and the generator each got
#                   >= MIN_CPU % of their CPU and steal was <= MAX_STEAL %; medians use
#                   the clean samples of a cell when it has any
#   KEEP_LOGS=1     keep the work directory with every log
#   RENDER_FROM=DIR only rewrite OUT.md from a kept work directory (samples.tsv, meta.sh)
# Exit: 0 done, 1 error, 77 dpdk-testpmd missing.

set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=p2p-config.sh
. "$root/tools/bench/p2p-config.sh"
# shellcheck source=bench-lib.sh
. "$root/tools/bench/bench-lib.sh"
ELEMENT=${ELEMENT:-p2p}
case "$ELEMENT" in p2p|switch) ;; *) echo "ELEMENT must be p2p or switch" >&2; exit 1 ;; esac
out="${1:-$root/tools/bench/results-$ELEMENT.md}"
bench_defaults
MODES=${MODES:-io flowgen}
case "$REPEATS$WINDOW$WARMUP$DUT_CPU$GEN_CPU" in *[!0-9]*) echo "REPEATS, WINDOW, WARMUP, DUT_CPU, GEN_CPU must be integers" >&2; exit 1 ;; esac

command -v dpdk-testpmd >/dev/null || { echo "SKIP: dpdk-testpmd not found (apt-get install -y dpdk)"; exit 77; }

RENDER_FROM=${RENDER_FROM:-}
find_sluice "$RENDER_FROM"   # RENDER_FROM: not used, nothing runs
note_run_start

if [ -n "$RENDER_FROM" ]; then
    work="$RENDER_FROM"; KEEP_LOGS=1
    [ -f "$work/samples.tsv" ] && [ -f "$work/meta.sh" ] || { echo "no samples.tsv/meta.sh in $work" >&2; exit 1; }
else
    work="$(mktemp -d /tmp/p2p-vs-testpmd.XXXXXX)"
fi
tag="p2pb$$"
gen_prefix="${tag}gen"; dut_prefix="${tag}dut"; instance="${tag}"
S0="$work/s0.sock"; S1="$work/s1.sock"
GEN_PID=""; DUT_PID=""; DUT_KIND=""

# ---------------------------------------------------------------------------
# Processes (stop_pid, quit_testpmd, wait_for and the counters: bench-lib.sh)

remove_leftovers() {
    local p m
    for p in "$gen_prefix" "$dut_prefix"; do
        rm -rf "/var/run/dpdk/$p"
        # hugetlbfs mounts: DPDK can leave <prefix>map_N files that keep pages reserved.
        for m in $(awk '$3 == "hugetlbfs" {print $2}' /proc/mounts); do rm -f "$m/$p"map_* 2>/dev/null; done
    done
    rm -f "/dev/shm/sluice-$instance.stats" "$S0" "$S1"
}

cleanup() {
    quit_testpmd "$GEN_PID" 3; GEN_PID=""
    if [ "$DUT_KIND" = A ]; then quit_testpmd "$DUT_PID" 4; else stop_pid "$DUT_PID"; fi
    DUT_PID=""
    remove_leftovers
    drop_work
}
install_traps

# The exact command lines, also written to the report.
GEN_MAC0=02:00:00:00:0a:00; GEN_MAC1=02:00:00:00:0a:01
GEN_CMD="dpdk-testpmd --lcores 0@$DUT_CPU,1@$GEN_CPU --no-pci --no-huge -m 512 --single-file-segments --file-prefix $gen_prefix --vdev net_virtio_user0,path=$S0,queues=1,mac=$GEN_MAC0 --vdev net_virtio_user1,path=$S1,queues=1,mac=$GEN_MAC1 -- -i --total-num-mbufs=16384 --eth-peer=0,$GEN_MAC1 --eth-peer=1,$GEN_MAC0"
DUTA_CMD="taskset -c $DUT_CPU dpdk-testpmd --lcores 0@$DUT_CPU,1@$DUT_CPU --no-pci --no-huge -m 512 --file-prefix $dut_prefix --vdev net_vhost0,iface=$S0,queues=1 --vdev net_vhost1,iface=$S1,queues=1 -- -i --total-num-mbufs=16384 --forward-mode=io --record-core-cycles"
DUTB_CMD="taskset -c $DUT_CPU $SLUICE --config $work/p2p.ini --cores $DUT_CPU --poll 0"

[ -n "$RENDER_FROM" ] || write_p2p_config "$work/p2p.ini" "$DUT_CPU" "$work" "$instance" "$ELEMENT"

# start_dut A|B log: the DUT listening on S0/S1
start_dut() {
    local dut=$1 log=$2
    DUT_KIND=$dut
    if [ "$dut" = A ]; then
        mkfifo "$work/dut.in"
        stdbuf -oL $DUTA_CMD <"$work/dut.in" >"$log" 2>&1 &
        DUT_PID=$!
        exec 4>"$work/dut.in"
        rm -f "$work/dut.in"
        echo "start" >&4
        wait_for 20 sockets_exist && wait_for 10 log_has "$log" "io packet forwarding"
    else
        stdbuf -oL $DUTB_CMD >"$log" 2>&1 &
        DUT_PID=$!
        wait_for 20 sockets_exist && wait_for 10 log_has "$log" "running"
    fi
}

# The cross-CPU cache-line round trip (tools/bench/xcore-latency.c), measured before every
# sample: on a shared VM it moves 2-3x as the hypervisor places the vCPUs, and every ring
# access between generator and DUT pays it, so it tells which samples ran on a slow pairing.
XCORE=""
if [ -z "$RENDER_FROM" ] && command -v cc >/dev/null && cc -O2 -pthread -o "$work/xcore-latency" "$root/tools/bench/xcore-latency.c" 2>/dev/null; then
    XCORE="$work/xcore-latency"
fi

# one_sample DUT MODE SIZE ID: appends a line to $work/samples.tsv
#   dut mode size gen_mpps cycles dut_mpps drops dut_cpu gen_cpu
one_sample() {
    local dut=$1 mode=$2 size=$3 id=$4
    local glog="$work/$id.gen.log" dlog="$work/$id.dut.log"
    remove_leftovers
    local rtt=NA
    [ -n "$XCORE" ] && rtt=$("$XCORE" "$GEN_CPU" "$DUT_CPU" 300 2>/dev/null || echo NA)
    if ! start_dut "$dut" "$dlog"; then
        echo "FAIL $id: DUT $dut did not start" >&2; tail -5 "$dlog" >&2; stop_pid "$DUT_PID"; DUT_PID=""; return 1
    fi
    if ! start_gen "$GEN_CMD" "$glog"; then
        echo "FAIL $id: generator did not start" >&2; tail -5 "$glog" >&2
        quit_testpmd "$GEN_PID" 3; GEN_PID=""; return 1
    fi
    sleep 0.5
    echo "set txpkts $size" >&3
    if [ "$mode" = io ]; then
        echo "set fwd io" >&3
        echo "start tx_first 32" >&3
    else
        echo "set fwd flowgen" >&3
        echo "start" >&3
    fi
    sleep "$WARMUP"

    # --- window start
    echo "show port stats all" >&3
    local t0 d0 g0
    t0=$(now); d0=$(cpu_ticks "$DUT_PID"); g0=$(cpu_ticks "$GEN_PID")
    local sd0 sg0; sd0=$(steal_ticks "$DUT_CPU"); sg0=$(steal_ticks "$GEN_CPU")
    if [ "$dut" = A ]; then echo "clear fwd stats all" >&4; else "$STAT" --instance "$instance" --json >"$work/$id.s0.json"; fi
    sleep "$WINDOW"
    # --- window end
    echo "show port stats all" >&3
    local t1 d1 g1
    if [ "$dut" = A ]; then echo "show fwd stats all" >&4; else "$STAT" --instance "$instance" --json >"$work/$id.s1.json"; fi
    t1=$(now); d1=$(cpu_ticks "$DUT_PID"); g1=$(cpu_ticks "$GEN_PID")
    local steal_d steal_g; steal_d=$(steal_pct "$sd0" "$(steal_ticks "$DUT_CPU")"); steal_g=$(steal_pct "$sg0" "$(steal_ticks "$GEN_CPU")")
    gen_done
    if [ "$dut" = A ]; then quit_testpmd "$DUT_PID" 4; else stop_pid "$DUT_PID"; fi
    DUT_PID=""

    local dt gen_mpps cycles dut_mpps drops dut_cpu gen_cpu hz per_loop=""
    hz=$(getconf CLK_TCK)
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    # The last two Rx-pps lines are the window's rates of port 0 and port 1.
    gen_mpps=$(gen_window_mpps "$glog")
    # Frame size as the generator counted it (flowgen frames are 4 bytes shorter than txpkts).
    local fbytes
    fbytes=$(gen_window_fbytes "$glog")
    if [ "$dut" = A ]; then
        # `show fwd stats all` is the first place with forwarding totals after the clear.
        cycles=$(grep -o 'CPU cycles/packet=[0-9.]*' "$dlog" | head -1 | cut -d= -f2)
        local tx
        tx=$(awk '/Accumulated forward statistics/ {getline; getline; print $2; exit}' "$dlog")
        dut_mpps=$(awk -v n="${tx:-0}" -v t="$dt" 'BEGIN {printf "%.3f", n / t / 1e6}')
        drops=$(awk '/Accumulated forward statistics/ {getline; getline; print $4; exit}' "$dlog")
    else
        local s0="$work/$id.s0.json" s1="$work/$id.s1.json"
        cycles=$(sluice_cycles "$s0" "$s1")
        dut_mpps=$(sluice_tx_mpps "$s0" "$s1" "$dt")
        # Frames per turn of the worker loop (all turns, idle ones included): small batches
        # mean the fixed cost of a poll (ring index cache misses, rdtsc, counters) dominates.
        per_loop=$(awk -v p0="$(stat_value "$s0" worker.0.busy_packets)" -v p1="$(stat_value "$s1" worker.0.busy_packets)" \
                       -v l0="$(stat_value "$s0" worker.0.loops)" -v l1="$(stat_value "$s1" worker.0.loops)" \
                       'BEGIN {if (l1 > l0) printf "%.1f", (p1 - p0) / (l1 - l0); else print "NA"}')
        drops=$(for k in port.p0.drop.no_rx_buffer port.p1.drop.no_rx_buffer port.p0.drop.bad_desc port.p1.drop.bad_desc \
                          port.p0.drop.bad_length port.p1.drop.bad_length port.p0.drop.link_down port.p1.drop.link_down; do
                    echo "$(stat_value "$s0" "$k") $(stat_value "$s1" "$k")"; done | awk '{s += $2 - $1} END {print s}')
    fi
    dut_cpu=$(awk -v a="$d0" -v b="$d1" -v t="$dt" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / t * 100}')
    gen_cpu=$(awk -v a="$g0" -v b="$g1" -v t="$dt" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / t * 100}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dut" "$mode" "$size" "${gen_mpps:-NA}" "${cycles:-NA}" \
        "${dut_mpps:-NA}" "${drops:-NA}" "$dut_cpu" "$gen_cpu" "$(cut -d' ' -f1 /proc/loadavg)" "${fbytes:-NA}" "${per_loop:--}" "$steal_d" "$steal_g" "${rtt:-NA}" >>"$work/samples.tsv"
    printf '  %-7s DUT %s %-7s %4s B: %s Mpps, %s cycles/pkt (DUT-side %s Mpps, drops %s, DUT cpu %s%%, gen cpu %s%%, steal %s%%/%s%%, xcore rtt %s)\n' \
        "$id" "$dut" "$mode" "$size" "${gen_mpps:-NA}" "${cycles:-NA}" "${dut_mpps:-NA}" "${drops:-NA}" "$dut_cpu" "$gen_cpu" "$steal_d" "$steal_g" "$rtt" >&2
}

# ---------------------------------------------------------------------------
# Run: alternate A/B, flipping the order every repeat.

run_all() {
echo "$ELEMENT vs testpmd: REPEATS=$REPEATS WINDOW=${WINDOW}s WARMUP=${WARMUP}s, load $load_at_start; work dir $work" >&2
: >"$work/samples.tsv"
local n=0 rep order mode size dut
for rep in $(seq "$REPEATS"); do
    if [ $((rep % 2)) = 1 ]; then order="A B"; else order="B A"; fi
    for mode in $MODES; do
        for size in $SIZES; do
            for dut in $order; do
                n=$((n + 1))
                one_sample "$dut" "$mode" "$size" "s$n" || echo "  s$n failed" >&2
            done
        done
    done
done
elapsed=$(( $(date +%s) - t_start ))
# What the report needs besides samples.tsv, so that RENDER_FROM can redo it.
declare -p started elapsed rev built load_at_start busy_at_start REPEATS WINDOW WARMUP MODES SIZES bindir instance \
    GEN_CMD DUTA_CMD DUTB_CMD >"$work/meta.sh"
}

if [ -n "$RENDER_FROM" ]; then
    # shellcheck disable=SC1091
    . "$work/meta.sh"
else
    run_all
fi

# ---------------------------------------------------------------------------
# Report

# Clean samples: the DUT and the generator each had at least MIN_CPU % of their core and
# the hypervisor stole at most MAX_STEAL % of either vCPU. The medians use only those when a cell has any, else
# all of the cell's samples.
MIN_CPU=${MIN_CPU:-90}
MAX_STEAL=${MAX_STEAL:-5}
clean_awk='$8 + 0 >= min && $9 + 0 >= min && $13 + 0 <= steal && $14 + 0 <= steal'
CLEAN_AWK="\$8 + 0 >= $MIN_CPU && \$9 + 0 >= $MIN_CPU && \$13 + 0 <= $MAX_STEAL && \$14 + 0 <= $MAX_STEAL"   # the same, for cell_rows
MEDIAN_DIGITS=3
cell() { cell_rows "$work/samples.tsv" "$@"; }   # dut mode size: the cell's usable sample lines
median() { median_of "$work/samples.tsv" "$@"; }   # column dut mode size

{
    echo "# $ELEMENT (Sluice) vs DPDK testpmd io forwarding"
    echo
    echo "Generated by \`tools/bench/p2p-vs-testpmd.sh\` on $started in ${elapsed} s."
    echo
    echo "- Machine: $(machine_dpdk), sluice binary in $bindir" \
         "built $built from the work tree (HEAD was $rev when the benchmark ran)."
    echo "- Load average at start: **$load_at_start**. The machine is shared: other people's builds," \
         "tests and benchmarks ran at the same time, so absolute numbers are noisy;" \
         "the DUT's CPU share during each window is in the raw samples (100 % = it had its core)."
    echo "  Busiest processes at start:"
    busy_block
    echo "- $REPEATS samples per cell, A/B alternated (order flipped every repeat), fresh processes per sample," \
         "${WARMUP} s warm-up, ${WINDOW} s window. Medians below."
    echo
    echo "| mode | size | DPDK Mpps | Sluice Mpps | ratio | DPDK cycles/pkt | Sluice cycles/pkt | ratio | samples A / B |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for mode in $MODES; do
        for size in $SIZES; do
            am=$(fmt "$(median 4 A "$mode" "$size")" 3); bm=$(fmt "$(median 4 B "$mode" "$size")" 3)
            ac=$(fmt "$(median 5 A "$mode" "$size")" 1); bc=$(fmt "$(median 5 B "$mode" "$size")" 1)
            echo "| $mode | $size | $am | $bm | $(ratio "$am" "$bm") | $ac | $bc | $(ratio "$ac" "$bc") | $(cell A "$mode" "$size" | grep -c .) / $(cell B "$mode" "$size" | grep -c .) |"
        done
    done
    echo
    contended=$(awk -F'\t' -v min="$MIN_CPU" -v steal="$MAX_STEAL" "!($clean_awk)" "$work/samples.tsv" | wc -l)
    if [ "$contended" -gt 0 ]; then
        echo "**Warning: in $contended of $(wc -l <"$work/samples.tsv") samples the DUT or the generator got less than"
        echo "$MIN_CPU % of its CPU, or the hypervisor stole more than $MAX_STEAL % of a vCPU.** Other work ran on"
        echo "their cores (or the host ran something else on ours); a starved generator caps the rate, and"
        echo "TSC cycles keep counting while a poller is descheduled,"
        echo "so those samples measure the machine's load more than the DUTs. The medians leave them out"
        echo "(last column: samples used; a cell with no clean sample uses all of its samples)."
        echo "Reference from an idle machine of this kind: testpmd 10.6–13.8 Mpps, 156–215 cycles/pkt at 64 B."
    fi
    echo
    echo "Mpps: forwarded frames per second, both directions summed, as the generator counts them"
    echo "(sum of its two ports' Rx-pps over the window). Cycles/pkt: DUT busy TSC cycles per frame"
    echo "received (testpmd \`--record-core-cycles\`; sluice \`worker.0.busy_cycles / worker.0.busy_packets\`)."
    echo "Ratios are Sluice / DPDK: > 1 is better for Mpps, < 1 is better for cycles."
    echo
    echo "## Raw samples"
    echo
    echo "DUT-side Mpps: frames the DUT forwarded in the window by its own counters; drops: frames the"
    echo "DUT took in but could not place (testpmd TX-dropped; sluice drop.* counters). frames/loop (sluice"
    echo "only): Δworker.0.busy_packets / Δworker.0.loops, the average batch per turn of the worker loop."
    echo "xcore rtt: TSC cycles for one cache line to go cpu$GEN_CPU → cpu$DUT_CPU → cpu$GEN_CPU, measured just before the"
    echo "sample (\`tools/bench/xcore-latency.c\`); every ring access between generator and DUT pays half of it,"
    echo "and it moves 2–3× with where the hypervisor puts the two vCPUs — compare samples with similar values."
    echo
    echo "| DUT | mode | size | bytes/frame | gen Mpps | cycles/pkt | DUT-side Mpps | DUT drops | DUT cpu % | gen cpu % | steal % dut/gen cpu | load1 | frames/loop | xcore rtt | clean |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' -v min="$MIN_CPU" -v steal="$MAX_STEAL" "{n = (\$1 == \"A\") ? \"A dpdk\" : \"B sluice\"; c = ($clean_awk) ? \"yes\" : \"no\";"' printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s | %s | %s |\n", n, $2, $3, $11, $4, $5, $6, $7, $8, $9, $13, $14, $10, $12, ($15 == "" ? "-" : $15), c}' "$work/samples.tsv"
    echo
    echo "## Commands"
    echo
    echo "Generator and sink (started after the DUT, which listens on both sockets):"
    echo '```'
    echo "$GEN_CMD"
    echo "  set txpkts SIZE"
    echo "  set fwd io ; start tx_first 32        # mode io (closed loop)"
    echo "  set fwd flowgen ; start                # mode flowgen"
    echo "  show port stats all                    # after ${WARMUP} s: window start"
    echo "  show port stats all                    # ${WINDOW} s later: Rx-pps/Tx-pps of the window"
    echo '```'
    echo "DUT A (DPDK):"
    echo '```'
    echo "$DUTA_CMD"
    echo "  start ; clear fwd stats all (window start) ; show fwd stats all (window end)"
    echo '```'
    echo "DUT B (Sluice), stats read with \`sluice-stat --instance $instance --json\` at window start and end:"
    echo '```'
    echo "$DUTB_CMD"
    echo '```'
    echo "with this configuration:"
    echo '```ini'
    cat "$work/p2p.ini"
    echo '```'
} >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
echo "wrote $out (${elapsed} s)" >&2
