#!/usr/bin/env bash
# Sluice's router ([network] of two vhost-user ports) side by side with DPDK's l3fwd
# example in LPM mode, on the same generator, on the same CPU.
#
#   tools/bench/router-vs-l3fwd.sh [OUT.md]      (default tools/bench/results-router.md)
#
#   cpu GEN_CPU: one dpdk-testpmd, `set fwd io`, four ports: two net_pcap ports replaying
#        routed frames (router-config.sh) into two net_virtio_user ports, which are
#        also the sink (what the DUT routes back is received and dropped):
#        pcap0 -> virtio_user0 -> S0 -> DUT -> S1 -> virtio_user1 (counted)   and back
#   cpu DUT_CPU: DUT A  l3fwd -L (LPM), two net_vhost ports, built here from the
#                       installed examples (dpdk-doc) against the installed libdpdk
#                DUT B  sluice --cores DUT_CPU --poll 0, two vhost-user ports in [network bench]
#
# An open loop: a router decrements the TTL, so a closed loop (testpmd io with tx_first,
# as p2p-vs-testpmd.sh uses) would die out after 63 passes. The generator offers frames as
# fast as it can make them; the DUT takes what it can (the rest is freed by the generator).
#
# Per repeat and size (64, 1518 bytes on the wire with FCS) it runs A and B with fresh
# processes (order flipped every repeat): WARMUP seconds of traffic, then a window of
# WINDOW seconds between two `show port stats all`. Forwarded Mpps = Rx-pps of the two
# virtio ports in that window. CPU cycles per forwarded frame, the same formula for both:
# TSC Hz x DUT CPU seconds in the window / frames forwarded (a saturated poller spends all
# its cycles on frames; l3fwd counts no busy cycles of its own). Sluice's own
# worker.0.busy_cycles / worker.0.busy_packets is in the raw samples.
#
# Environment: REPEATS=3 WINDOW=5 WARMUP=2 SIZES="64 1518" DUT_CPU=1 GEN_CPU=0
#   MIN_CPU=90 MAX_STEAL=5 (clean samples, as p2p-vs-testpmd.sh) SLUICE_BIN_DIR KEEP_LOGS=1
#   RENDER_FROM=DIR (rewrite OUT.md from a kept work directory; nothing runs)
# Exit: 0 done, 1 error, 77 a tool is missing.

set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=router-config.sh
. "$root/tools/bench/router-config.sh"
# shellcheck source=bench-lib.sh
. "$root/tools/bench/bench-lib.sh"
out="${1:-$root/tools/bench/results-router.md}"
bench_defaults
case "$REPEATS$WINDOW$WARMUP$DUT_CPU$GEN_CPU" in *[!0-9]*) echo "REPEATS, WINDOW, WARMUP, DUT_CPU, GEN_CPU must be integers" >&2; exit 1 ;; esac
RENDER_FROM=${RENDER_FROM:-}

if [ -z "$RENDER_FROM" ]; then
    for t in dpdk-testpmd pkg-config make cc python3; do
        command -v "$t" >/dev/null || { echo "SKIP: $t not found (apt-get install -y dpdk libdpdk-dev pkg-config make gcc python3)"; exit 77; }
    done
    pkg-config --exists libdpdk || { echo "SKIP: libdpdk.pc not found (apt-get install -y libdpdk-dev)"; exit 77; }
    examples=/usr/share/dpdk/examples/l3fwd
    if [ ! -f "$examples/l3fwd_lpm.c" ]; then
        echo "installing dpdk-doc (DPDK's example sources, for l3fwd)" >&2
        apt-get install -y dpdk-doc >/dev/null 2>&1 || true
        [ -f "$examples/l3fwd_lpm.c" ] || { echo "SKIP: $examples missing (apt-get install -y dpdk-doc)"; exit 77; }
    fi
fi

find_sluice "$RENDER_FROM"
note_run_start
if [ -n "$RENDER_FROM" ]; then
    work="$RENDER_FROM"; KEEP_LOGS=1
    [ -f "$work/samples.tsv" ] && [ -f "$work/meta.sh" ] || { echo "no samples.tsv/meta.sh in $work" >&2; exit 1; }
else
    work="$(mktemp -d /tmp/router-vs-l3fwd.XXXXXX)"
fi
tag="rtb$$"
gen_prefix="${tag}gen"; dut_prefix="${tag}dut"; instance="$tag"
S0="$work/s0.sock"; S1="$work/s1.sock"
GEN_PID=""; DUT_PID=""

remove_leftovers() {
    local p m
    for p in "$gen_prefix" "$dut_prefix"; do
        rm -rf "/var/run/dpdk/$p"
        for m in $(awk '$3 == "hugetlbfs" {print $2}' /proc/mounts); do rm -f "$m/$p"map_* 2>/dev/null; done
    done
    rm -f "/dev/shm/sluice-$instance.stats" "$S0" "$S1"
}
cleanup() {
    quit_testpmd "$GEN_PID" 3; GEN_PID=""
    stop_pid "$DUT_PID"; DUT_PID=""
    remove_leftovers
    drop_work
}
install_traps

if [ -z "$RENDER_FROM" ]; then
    # l3fwd out of tree, against the installed libdpdk. DPDK 22.11's l3fwd asks every port
    # for IPv4/UDP/TCP Rx checksum offload unconditionally and exits when a port lacks it;
    # net_vhost has no IPv4 one, so that request is taken out (sed, in the copy). Nothing
    # else changes: the LPM path never reads the checksum flags.
    mkdir -p "$work/l3fwd-src"
    cp -r "$examples" "$work/l3fwd-src/l3fwd"
    [ -d "$examples/../common" ] && cp -r "$examples/../common" "$work/l3fwd-src/common"
    sed -i 's/\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,/.offloads = 0,/' "$work/l3fwd-src/l3fwd/main.c"
    grep -q '\.offloads = 0,' "$work/l3fwd-src/l3fwd/main.c" || { echo "l3fwd main.c changed: the offload edit did not apply" >&2; exit 1; }
    (cd "$work/l3fwd-src/l3fwd" && make >"$work/l3fwd-build.log" 2>&1) || { echo "l3fwd build failed:" >&2; tail "$work/l3fwd-build.log" >&2; exit 1; }
    L3FWD="$work/l3fwd-src/l3fwd/build/l3fwd"

    # TSC frequency (for l3fwd's cycles: it has no cycle counters).
    cat >"$work/tsc.c" <<'EOF'
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>
int main(void) {
    struct timespec a, b, d = {0, 300000000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    unsigned long long t0 = __rdtsc();
    nanosleep(&d, NULL);
    unsigned long long t1 = __rdtsc();
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.0f\n", (t1 - t0) / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9));
    return 0;
}
EOF
    cc -O2 -o "$work/tsc" "$work/tsc.c" && TSC_HZ=$("$work/tsc") || { echo "cannot measure the TSC frequency" >&2; exit 1; }
    ROUTER_MAC=$(router_mac "$instance" "$RT_NETWORK")
    write_router_config "$work/router.ini" "$DUT_CPU" "$work" "$instance"
    for size in $SIZES; do
        write_route_pcap "$work/p0-$size.pcap" "$RT_GEN_MAC0" "$ROUTER_MAC" 198.18.0.1 198.18.1.0 $((size - 4)) \
            && write_route_pcap "$work/p1-$size.pcap" "$RT_GEN_MAC1" "$ROUTER_MAC" 198.18.1.1 198.18.0.0 $((size - 4)) \
            || { echo "cannot write the generator's frames" >&2; exit 1; }
    done
    GEN_CMD_SHOWN="$(router_gen_cmd "$GEN_CPU" "$DUT_CPU" "$gen_prefix" "$work/p0-SIZE.pcap" "$work/p1-SIZE.pcap" "$S0" "$S1")"
    DUTA_CMD="taskset -c $DUT_CPU $L3FWD -l $DUT_CPU --no-pci --no-huge -m 512 --file-prefix $dut_prefix --vdev net_vhost0,iface=$S0,queues=1 --vdev net_vhost1,iface=$S1,queues=1 -- -p 0x3 --config=(0,0,$DUT_CPU),(1,0,$DUT_CPU) -L --parse-ptype --eth-dest=0,$RT_GEN_MAC0 --eth-dest=1,$RT_GEN_MAC1"
    DUTB_CMD="taskset -c $DUT_CPU $SLUICE --config $work/router.ini --cores $DUT_CPU --poll 0"
    XCORE=""
    cc -O2 -pthread -o "$work/xcore-latency" "$root/tools/bench/xcore-latency.c" 2>/dev/null && XCORE="$work/xcore-latency"
fi

# start_dut A|B LOG: the DUT listening on S0/S1
start_dut() {
    if [ "$1" = A ]; then
        stdbuf -oL $DUTA_CMD >"$2" 2>&1 &
        DUT_PID=$!
        wait_for 20 sockets_exist && wait_for 10 log_has "$2" "Checking link status"
    else
        stdbuf -oL $DUTB_CMD >"$2" 2>&1 &
        DUT_PID=$!
        wait_for 20 sockets_exist && wait_for 10 log_has "$2" "running" || return 1
        # The frames were addressed to the MAC the script derived: sluice must agree.
        grep -q "network $RT_NETWORK: router MAC $ROUTER_MAC" "$2" \
            || { echo "sluice's router MAC is not $ROUTER_MAC (see its log)" >&2; return 1; }
    fi
}

# The window's Rx-pps of ports 1 and 3 (the virtio ports) from the last `show port stats all`.
virtio_window_mpps() {
    grep -ao 'Rx-pps: *[0-9]*' "$1" | awk '{v[NR] = $2} END {if (NR >= 8) printf "%.3f", (v[NR - 2] + v[NR]) / 1e6; else print "NA"}'
}
virtio_window_fbytes() {
    paste <(grep -ao 'Rx-pps: *[0-9]*' "$1" | awk '{print $2}') <(grep -ao 'Rx-bps: *[0-9]*' "$1" | awk '{print $2}') \
        | awk '{p[NR] = $1; b[NR] = $2} END {n = p[NR - 2] + p[NR]; if (n > 0) printf "%.0f", (b[NR - 2] + b[NR]) / n / 8; else print "NA"}'
}
delta() { awk -v a="$(stat_value "$1" "$3")" -v b="$(stat_value "$2" "$3")" 'BEGIN {print b - a}'; }

# one_sample DUT SIZE ID: appends to $work/samples.tsv
#   dut size - gen_mpps cycles_per_frame busy_cycles dut_mpps drops dut_cpu gen_cpu load1 bytes steal_d steal_g rtt
one_sample() {
    local dut=$1 size=$2 id=$3 glog="$work/$3.gen.log" dlog="$work/$3.dut.log"
    remove_leftovers
    local rtt=NA
    [ -n "$XCORE" ] && rtt=$("$XCORE" "$GEN_CPU" "$DUT_CPU" 300 2>/dev/null || echo NA)
    if ! start_dut "$dut" "$dlog"; then
        echo "FAIL $id: DUT $dut did not start" >&2; tail -5 "$dlog" >&2; stop_pid "$DUT_PID"; DUT_PID=""; return 1
    fi
    if ! start_gen "$(router_gen_cmd "$GEN_CPU" "$DUT_CPU" "$gen_prefix" "$work/p0-$size.pcap" "$work/p1-$size.pcap" "$S0" "$S1")" "$glog"; then
        echo "FAIL $id: generator did not start" >&2; tail -5 "$glog" >&2
        quit_testpmd "$GEN_PID" 3; GEN_PID=""; stop_pid "$DUT_PID"; DUT_PID=""; return 1
    fi
    sleep 0.5
    echo "set fwd io" >&3
    echo "start" >&3
    sleep "$WARMUP"
    echo "show port stats all" >&3
    local t0 d0 g0 sd0 sg0
    t0=$(now); d0=$(cpu_ticks "$DUT_PID"); g0=$(cpu_ticks "$GEN_PID")
    sd0=$(steal_ticks "$DUT_CPU"); sg0=$(steal_ticks "$GEN_CPU")
    [ "$dut" = B ] && "$STAT" --instance "$instance" --json >"$work/$id.s0.json"
    sleep "$WINDOW"
    echo "show port stats all" >&3
    [ "$dut" = B ] && "$STAT" --instance "$instance" --json >"$work/$id.s1.json"
    local t1 d1 g1 steal_d steal_g
    t1=$(now); d1=$(cpu_ticks "$DUT_PID"); g1=$(cpu_ticks "$GEN_PID")
    steal_d=$(steal_pct "$sd0" "$(steal_ticks "$DUT_CPU")"); steal_g=$(steal_pct "$sg0" "$(steal_ticks "$GEN_CPU")")
    gen_done
    stop_pid "$DUT_PID"; DUT_PID=""

    local hz dt gen_mpps fbytes dut_cpu gen_cpu cycles busy="-" dut_mpps="-" drops="-"
    hz=$(getconf CLK_TCK)
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    gen_mpps=$(virtio_window_mpps "$glog")
    fbytes=$(virtio_window_fbytes "$glog")
    dut_cpu=$(awk -v a="$d0" -v b="$d1" -v t="$dt" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / t * 100}')
    gen_cpu=$(awk -v a="$g0" -v b="$g1" -v t="$dt" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / t * 100}')
    cycles=$(awk -v a="$d0" -v b="$d1" -v hz="$hz" -v tsc="$TSC_HZ" -v m="$gen_mpps" -v t="$dt" \
        'BEGIN {if (m + 0 > 0) printf "%.1f", (b - a) / hz * tsc / (m * 1e6 * t); else print "NA"}')
    if [ "$dut" = B ]; then
        local s0="$work/$id.s0.json" s1="$work/$id.s1.json" k
        busy=$(sluice_cycles "$s0" "$s1")
        dut_mpps=$(awk -v n="$(delta "$s0" "$s1" "network.$RT_NETWORK.routed_packets")" -v t="$dt" 'BEGIN {printf "%.3f", n / t / 1e6}')
        # Every drop counter of both ports: no_rx_buffer (a full generator ring) is load;
        # anything else (spoofed_src, no_route, malformed ...) would be a setup error.
        drops=""
        for k in $(grep -o '"port\.p[01]\.drop\.[a-z_]*"' "$s1" | tr -d '"' | sort -u); do
            local n; n=$(delta "$s0" "$s1" "$k")
            [ "${n:-0}" != 0 ] && drops="$drops${drops:+,}${k#port.}=$n"
        done
        drops=${drops:-0}
    fi
    printf '%s\t%s\t-\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dut" "$size" "${gen_mpps:-NA}" "${cycles:-NA}" "$busy" \
        "$dut_mpps" "$drops" "$dut_cpu" "$gen_cpu" "$(cut -d' ' -f1 /proc/loadavg)" "${fbytes:-NA}" "$steal_d" "$steal_g" "${rtt:-NA}" >>"$work/samples.tsv"
    printf '  %-4s DUT %s %4s B: %s Mpps, %s cycles/frame (sluice busy %s; routed %s Mpps; drops %s; DUT cpu %s%%, gen cpu %s%%, steal %s%%/%s%%, xcore %s)\n' \
        "$id" "$dut" "$size" "${gen_mpps:-NA}" "${cycles:-NA}" "$busy" "$dut_mpps" "$drops" "$dut_cpu" "$gen_cpu" "$steal_d" "$steal_g" "$rtt" >&2
}

if [ -n "$RENDER_FROM" ]; then
    # shellcheck disable=SC1091
    . "$work/meta.sh"
else
    echo "router vs l3fwd: REPEATS=$REPEATS WINDOW=${WINDOW}s WARMUP=${WARMUP}s, load $load_at_start; work dir $work" >&2
    : >"$work/samples.tsv"
    n=0
    for rep in $(seq "$REPEATS"); do
        if [ $((rep % 2)) = 1 ]; then order="A B"; else order="B A"; fi
        for size in $SIZES; do
            for dut in $order; do
                n=$((n + 1))
                one_sample "$dut" "$size" "s$n" || echo "  s$n failed" >&2
            done
        done
    done
    elapsed=$(( $(date +%s) - t_start ))
    load_at_end="$(cut -d' ' -f1-3 /proc/loadavg)"
    cp "$work/router.ini" "$work/router.ini.kept" 2>/dev/null
    declare -p started elapsed rev built load_at_start load_at_end busy_at_start REPEATS WINDOW WARMUP SIZES bindir instance \
        GEN_CMD_SHOWN DUTA_CMD DUTB_CMD TSC_HZ ROUTER_MAC >"$work/meta.sh"
fi

# ---------------------------------------------------------------------------
# Report (columns of samples.tsv: 1 dut, 2 size, 3 -, 4 gen Mpps, 5 cycles/frame,
# 6 sluice busy cycles/pkt, 7 routed Mpps, 8 drops, 9 dut cpu, 10 gen cpu, 11 load1,
# 12 bytes/frame, 13 steal dut, 14 steal gen, 15 xcore rtt)

MIN_CPU=${MIN_CPU:-90}
MAX_STEAL=${MAX_STEAL:-5}
clean_awk='$9 + 0 >= min && $10 + 0 >= min && $13 + 0 <= steal && $14 + 0 <= steal'
CLEAN_AWK="\$9 + 0 >= $MIN_CPU && \$10 + 0 >= $MIN_CPU && \$13 + 0 <= $MAX_STEAL && \$14 + 0 <= $MAX_STEAL"
MEDIAN_DIGITS=3
# samples.tsv rows are "dut size - ...": cell_rows keys on columns 1-3 (dut, variant, size)
# so the rows are re-keyed as dut, "-", size for it.
keyed="$work/samples.keyed.tsv"
awk -F'\t' 'BEGIN {OFS = "\t"} {t = $2; $2 = $3; $3 = t; print}' "$work/samples.tsv" >"$keyed"
median() { median_of "$keyed" "$1" "$2" - "$3"; }
count() { cell_rows "$keyed" "$1" - "$2" | grep -c .; }

{
    echo "# Router (Sluice) vs DPDK l3fwd (LPM)"
    echo
    echo "Generated by \`tools/bench/router-vs-l3fwd.sh\` on $started in ${elapsed} s."
    echo
    echo "- Machine: $(machine_dpdk), TSC $(awk -v h="$TSC_HZ" 'BEGIN {printf "%.3f GHz", h / 1e9}'), sluice binary in $bindir" \
         "built $built from the work tree (HEAD was $rev when the benchmark ran)."
    echo "- Load average at start **$load_at_start**, at end $load_at_end. The machine is shared (other builds and"
    echo "  benchmarks ran at the same time); busiest processes at start:"
    busy_block
    echo "- $REPEATS samples per cell, A/B alternated (order flipped every repeat), fresh processes per sample," \
         "${WARMUP} s warm-up, ${WINDOW} s window. Medians of the clean samples (DUT and generator ≥ $MIN_CPU % of their CPU," \
         "steal ≤ $MAX_STEAL %); a cell without any uses all of its samples."
    echo
    echo "| size | l3fwd Mpps | Sluice Mpps | ratio | l3fwd cycles/frame | Sluice cycles/frame | ratio | Sluice busy cycles/pkt | samples A / B |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for size in $SIZES; do
        am=$(fmt "$(median 4 A "$size")" 3); bm=$(fmt "$(median 4 B "$size")" 3)
        ac=$(fmt "$(median 5 A "$size")" 1); bc=$(fmt "$(median 5 B "$size")" 1)
        bb=$(fmt "$(median 6 B "$size")" 1)
        echo "| $size | $am | $bm | $(ratio "$am" "$bm") | $ac | $bc | $(ratio "$ac" "$bc") | $bb | $(count A "$size") / $(count B "$size") |"
    done
    echo
    contended=$(awk -F'\t' -v min="$MIN_CPU" -v steal="$MAX_STEAL" "!($clean_awk)" "$work/samples.tsv" | wc -l)
    if [ "$contended" -gt 0 ]; then
        echo "**In $contended of $(wc -l <"$work/samples.tsv") samples the DUT or the generator got less than $MIN_CPU % of its"
        echo "CPU, or steal exceeded $MAX_STEAL %;** the medians leave those out where a cell has clean ones."
        echo
    fi
    echo "Mpps: frames routed per second, both directions summed, as the generator counts them (Rx-pps of its"
    echo "two virtio ports over the window). Cycles/frame: TSC Hz × CPU seconds the DUT process used in the window /"
    echo "frames routed — the same formula for both (l3fwd has no cycle counters); a saturated poller spends its"
    echo "whole core on frames. Sluice busy cycles/pkt: its own worker.0.busy_cycles / worker.0.busy_packets."
    echo "Ratios are Sluice / l3fwd: > 1 is better for Mpps, < 1 is better for cycles."
    echo
    echo "What each DUT does per frame (not the same work):"
    echo "- l3fwd (LPM, SSE path, 22.11): software packet-type parse (\`--parse-ptype\`), one DIR-24-8 lookup of the"
    echo "  destination (four frames at a time), TTL − 1 with the checksum bumped by one, the version/IHL and total"
    echo "  length checked (RFC 1812 5.2.2), MACs written; no source check, no header checksum check, no ARP/ICMP."
    echo "- Sluice: the source MAC checked against the port's bound MAC, the destination against the router MAC,"
    echo "  the IPv4 header validated including its checksum, a longest-prefix match of the *source* (anti-spoofing:"
    echo "  it must belong to the arriving port) and of the destination (\`PrefixTable4\`, DIR-16-8-8: one to three"
    echo "  loads), TTL, MTU, TTL − 1 with an RFC 1624 checksum update, MACs written,"
    echo "  per-port and per-network counters."
    echo
    echo "## Raw samples"
    echo
    echo "routed Mpps: sluice's network.$RT_NETWORK.routed_packets over the window. drops: sluice's port drop counters"
    echo "that moved (no_rx_buffer = the generator's receive ring was full; any other reason would mean a wrong setup)."
    echo "xcore rtt: TSC cycles for a cache line to go cpu$GEN_CPU → cpu$DUT_CPU → back (\`xcore-latency.c\`), before the sample."
    echo
    echo "| DUT | size | bytes/frame | gen Mpps | cycles/frame | sluice busy cycles/pkt | routed Mpps | drops | DUT cpu % | gen cpu % | steal % dut/gen | load1 | xcore rtt | clean |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"
    awk -F'\t' -v min="$MIN_CPU" -v steal="$MAX_STEAL" "{n = (\$1 == \"A\") ? \"A l3fwd\" : \"B sluice\"; c = ($clean_awk) ? \"yes\" : \"no\";"' printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s | %s |\n", n, $2, $12, $4, $5, $6, $7, $8, $9, $10, $13, $14, $11, $15, c}' "$work/samples.tsv"
    echo
    echo "## Commands"
    echo
    echo "Generator and sink (started after the DUT; SIZE-byte frames = the wire size less 4 bytes of FCS, 254 per port"
    echo "in \`p0-SIZE.pcap\` / \`p1-SIZE.pcap\`: 198.18.0.1 → 198.18.1.1–254 from port 0 and 198.18.1.1 → 198.18.0.1–254 from"
    echo "port 1, destination MAC the router MAC $ROUTER_MAC):"
    echo '```'
    echo "$GEN_CMD_SHOWN"
    echo "  set fwd io ; start"
    echo "  show port stats all                    # after ${WARMUP} s: window start"
    echo "  show port stats all                    # ${WINDOW} s later: Rx-pps of ports 1 and 3"
    echo '```'
    echo "DUT A, DPDK's l3fwd from /usr/share/dpdk/examples/l3fwd (dpdk-doc), built with its Makefile against the installed"
    echo "libdpdk after removing the Rx checksum offload request (net_vhost does not offer it; 22.11 l3fwd exits otherwise):"
    echo '```'
    echo "$DUTA_CMD"
    echo '```'
    echo "DUT B, Sluice (counters read with \`sluice-stat --instance $instance --json\` at window start and end):"
    echo '```'
    echo "$DUTB_CMD"
    echo '```'
    echo '```ini'
    cat "$work/router.ini.kept" 2>/dev/null || cat "$work/router.ini"
    echo '```'
} >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
echo "wrote $out (${elapsed} s)" >&2
