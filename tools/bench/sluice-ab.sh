#!/usr/bin/env bash
# Two Sluice builds against the same testpmd generator, alternated: for judging a hot-path
# change before running the full comparison with DPDK (p2p-vs-testpmd.sh).
#
#   tools/bench/sluice-ab.sh DIR_A DIR_B [ROUNDS]     (default 5 rounds)
#
# DIR_A and DIR_B each hold a release `sluice` and `sluice-stat` (copy .build/release/
# before and after the change). Every round runs A then B (B then A on even rounds), each
# with fresh processes: sluice alone on cpu1 with a p2p link, the generator on cpu0
# (`dpdk-testpmd`, two net_virtio_user ports), 1.5 s warm-up, then SECONDS one-second
# readings of sluice's own counters. Prints each reading (Mpps forwarded, busy cycles per
# frame, frames per loop turn) and, per build, the median of all readings.
#
# Environment: MODE=io|flowgen (default io), SIZE=64, SECONDS_PER_RUN=3.
# On this 2-vCPU VM the readings swing 2x with the vCPUs' placement: use 5+ rounds and
# compare medians (and the cycles column, which moves less than Mpps).
# Exit: 0 done, 1 usage/error, 77 dpdk-testpmd missing.
set -u
# shellcheck source=p2p-config.sh
. "$(dirname "$0")/p2p-config.sh"
[ $# -ge 2 ] || { sed -n '2,17p' "$0"; exit 1; }
A=$1; B=$2; ROUNDS=${3:-5}
MODE=${MODE:-io}; SIZE=${SIZE:-64}; SECS=${SECONDS_PER_RUN:-3}
command -v dpdk-testpmd >/dev/null || { echo "SKIP: dpdk-testpmd not found (apt-get install -y dpdk)"; exit 77; }
for d in "$A" "$B"; do [ -x "$d/sluice" ] && [ -x "$d/sluice-stat" ] || { echo "no sluice/sluice-stat in $d" >&2; exit 1; }; done

work=$(mktemp -d /tmp/sluice-ab.XXXXXX)
readings="$work/readings"
: >"$readings"
DUT=""; GEN=""
cleanup() {
    [ -n "$GEN" ] && kill "$GEN" 2>/dev/null
    [ -n "$DUT" ] && kill "$DUT" 2>/dev/null
    wait 2>/dev/null
    rm -rf "/var/run/dpdk/ab$$gen" "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

value() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" <<<"$1"; }

one_run() {   # label dir
    local label=$1 dir=$2 inst="ab$$" i prev cur
    rm -f "$work"/*.sock "/dev/shm/sluice-$inst.stats"
    write_p2p_config "$work/p2p.ini" 1 "$work" "$inst"
    taskset -c 1 "$dir/sluice" --config "$work/p2p.ini" --cores 1 --poll 0 >"$work/dut.log" 2>&1 &
    DUT=$!
    for i in $(seq 50); do [ -S "$work/s0.sock" ] && [ -S "$work/s1.sock" ] && break; sleep 0.1; done
    rm -f "$work/gen.in"; mkfifo "$work/gen.in"
    dpdk-testpmd --lcores 0@1,1@0 --no-pci --no-huge -m 512 --single-file-segments --file-prefix "ab$$gen" \
        --vdev "net_virtio_user0,path=$work/s0.sock,queues=1" --vdev "net_virtio_user1,path=$work/s1.sock,queues=1" \
        -- -i --total-num-mbufs=16384 <"$work/gen.in" >"$work/gen.log" 2>&1 &
    GEN=$!
    exec 3>"$work/gen.in"
    for i in $(seq 100); do grep -q "Checking link" "$work/gen.log" && break; sleep 0.1; done
    sleep 0.5
    echo "set txpkts $SIZE" >&3
    if [ "$MODE" = io ]; then echo "set fwd io" >&3; echo "start tx_first 32" >&3; else echo "set fwd flowgen" >&3; echo "start" >&3; fi
    sleep 1.5
    prev=$("$dir/sluice-stat" --instance "$inst" --json)
    for i in $(seq "$SECS"); do
        sleep 1
        cur=$("$dir/sluice-stat" --instance "$inst" --json)
        awk -v l="$label" -v p0="$(value "$prev" port.p0.tx_packets)" -v p1="$(value "$cur" port.p0.tx_packets)" \
            -v q0="$(value "$prev" port.p1.tx_packets)" -v q1="$(value "$cur" port.p1.tx_packets)" \
            -v c0="$(value "$prev" worker.0.busy_cycles)" -v c1="$(value "$cur" worker.0.busy_cycles)" \
            -v b0="$(value "$prev" worker.0.busy_packets)" -v b1="$(value "$cur" worker.0.busy_packets)" \
            -v l0="$(value "$prev" worker.0.loops)" -v l1="$(value "$cur" worker.0.loops)" \
            'BEGIN {if (b1 > b0 && l1 > l0) printf "%s %.3f %.0f %.1f\n", l, (p1 - p0 + q1 - q0) / 1e6, (c1 - c0) / (b1 - b0), (b1 - b0) / (l1 - l0)}' \
            | tee -a "$readings"
        prev=$cur
    done
    { echo stop; echo quit; } >&3 2>/dev/null
    exec 3>&-
    for i in $(seq 30); do kill -0 "$GEN" 2>/dev/null || break; sleep 0.1; done
    kill "$GEN" 2>/dev/null; wait "$GEN" 2>/dev/null; GEN=""
    kill "$DUT" 2>/dev/null; wait "$DUT" 2>/dev/null; DUT=""
    rm -rf "/var/run/dpdk/ab$$gen"
}

echo "label Mpps cycles/frame frames/loop   ($MODE, $SIZE B, $ROUNDS rounds × $SECS readings)"
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then one_run A "$A"; one_run B "$B"; else one_run B "$B"; one_run A "$A"; fi
done
for l in A B; do
    awk -v l="$l" '$1 == l {print $2, $3}' "$readings" | sort -g | awk -v l="$l" \
        '{m[NR] = $1} END {if (NR) printf "%s: %d readings, median %.3f Mpps (min %.3f, max %.3f)\n", l, NR, m[int((NR + 1) / 2)], m[1], m[NR]}'
    awk -v l="$l" '$1 == l {print $3}' "$readings" | sort -g | awk -v l="$l" \
        '{m[NR] = $1} END {if (NR) printf "%s: median %.0f busy cycles/frame\n", l, m[int((NR + 1) / 2)]}'
done
