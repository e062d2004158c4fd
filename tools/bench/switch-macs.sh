#!/usr/bin/env bash
# MAC learning + lookup cost of the switch with 1 vs many learned source addresses.
#
#   tools/bench/switch-macs.sh [OUT.md]       (default tools/bench/results-switch-macs.md)
#
# DUT: release sluice alone on cpu DUT_CPU (1), busy polling, one worker, a switch br0 of
# two vhost-user ports a and b (max-macs 4096, aging 300). On cpu GEN_CPU (0):
#   generator  sluice-gen tx into port a, 64-byte frames, --macs 1 or --macs MANY (4000),
#              to the sink's MAC;
#   sink       SINK=rx (default): sluice-gen rx on port b (event driven: it sleeps when
#              idle, leaving the CPU to the generator), `--announce SINK_MAC` first, so
#              the switch knows SINK_MAC on b and every frame is a learn of a known source
#              plus a lookup hit (Δa.flood_packets stays 0).
#              SINK=testpmd: dpdk-testpmd rxonly on port b with mac=SINK_MAC, `start
#              tx_first 1` to be learned. It busy-polls the generator's CPU, so the
#              generator gets half of it at best and sleeps on ring-full: far lower,
#              noisier rates (kept for comparison).
# Per repeat (REPEATS, 3) both cases run with fresh processes, order alternated; after
# WARMUP s (3) two `sluice-stat --json` readings WINDOW s (5) apart give busy cycles per
# frame (Δworker.0.busy_cycles / Δworker.0.busy_packets) and Mpps (Δport.b.tx_packets /
# window). Also recorded: Δport.b.drop.no_rx_buffer (sink off the CPU), the switch's
# macs gauge and table_full, and the CPU share sluice got in the window. Medians per case.
#
# Environment: REPEATS, WINDOW, WARMUP, MANY, SINK, DUT_CPU, GEN_CPU, SLUICE_BIN_DIR (with
# release sluice, sluice-stat and sluice-gen; default: swift build -c release here),
# KEEP_LOGS=1. Exit 0 done, 1 error, 77 a prerequisite missing.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$REPO/tools/bench/results-switch-macs.md}
REPEATS=${REPEATS:-3}; WINDOW=${WINDOW:-5}; WARMUP=${WARMUP:-3}; MANY=${MANY:-4000}
SINK=${SINK:-rx}; DUT_CPU=${DUT_CPU:-1}; GEN_CPU=${GEN_CPU:-0}
SINK_MAC=02:00:00:00:bb:02   # last byte differs from every generator source (02:00:xx:xx:xx:01)
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (/dev/shm, dpdk-testpmd)"; exit 77; }
if [ "$SINK" = testpmd ]; then
    command -v dpdk-testpmd >/dev/null || { echo "SKIP: no dpdk-testpmd (apt-get install -y dpdk)"; exit 77; }
fi
if [ -z "${SLUICE_BIN_DIR:-}" ]; then
    (cd "$REPO" && swift build -c release) >&2 || exit 1
    SLUICE_BIN_DIR=$REPO/.build/release
fi
BIN=$SLUICE_BIN_DIR
for b in sluice sluice-stat sluice-gen; do
    [ -x "$BIN/$b" ] || { echo "no $b in $BIN" >&2; exit 1; }
done

work=$(mktemp -d /tmp/sluice-swmacs.XXXXXX)
PREFIX="swmacs$$"
DUT=""; GEN=""; SNK=""
cleanup() {
    for p in $GEN $SNK $DUT; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "/var/run/dpdk/$PREFIX"
    if [ -n "${KEEP_LOGS:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

value() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" <<<"$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

cat >"$work/switch.ini" <<EOF
[dataplane]
hugepages = off
socket-dir = $work
instance = $PREFIX
[port a]
type = vhost-user
socket = a.sock
[port b]
type = vhost-user
socket = b.sock
[switch br0]
ports = a, b
max-macs = 4096
aging = 300
EOF

DUT_CMD="taskset -c $DUT_CPU $BIN/sluice --config switch.ini --cores $DUT_CPU --poll 0"
if [ "$SINK" = testpmd ]; then
    SINK_CMD="taskset -c $GEN_CPU dpdk-testpmd --lcores 0@$GEN_CPU,1@$GEN_CPU --no-pci --no-huge -m 256 --single-file-segments --file-prefix $PREFIX --vdev net_virtio_user0,path=b.sock,queues=1,mac=$SINK_MAC -- -i --total-num-mbufs=8192   # set fwd rxonly; start tx_first 1"
else
    SINK_CMD="taskset -c $GEN_CPU $BIN/sluice-gen rx --socket b.sock --timeout 30 --announce $SINK_MAC"
fi
GEN_CMD="taskset -c $GEN_CPU $BIN/sluice-gen tx --socket a.sock --src-mac 02:00:00:00:00:01 --dst-mac $SINK_MAC --size 64 --macs N"

one_run() {   # macs → one line: macs cycles mpps no_rx_buffer macs_gauge table_full dut_cpu%
    local macs=$1 i s0 s1 t0 t1
    rm -f "$work"/*.sock "/dev/shm/sluice-$PREFIX".*
    (cd "$work" && exec taskset -c "$DUT_CPU" "$BIN/sluice" --config switch.ini --cores "$DUT_CPU" --poll 0) \
        >"$work/dut.log" 2>&1 &
    DUT=$!
    for i in $(seq 100); do [ -S "$work/a.sock" ] && [ -S "$work/b.sock" ] && break; sleep 0.05; done
    if [ "$SINK" = testpmd ]; then
        rm -f "$work/sink.in"; mkfifo "$work/sink.in"
        taskset -c "$GEN_CPU" dpdk-testpmd --lcores "0@$GEN_CPU,1@$GEN_CPU" --no-pci --no-huge -m 256 \
            --single-file-segments --file-prefix "$PREFIX" \
            --vdev "net_virtio_user0,path=$work/b.sock,queues=1,mac=$SINK_MAC" \
            -- -i --total-num-mbufs=8192 <"$work/sink.in" >"$work/sink.log" 2>&1 &
        SNK=$!
        exec 3>"$work/sink.in"
        for i in $(seq 100); do grep -q "Port 0: " "$work/sink.log" && break; sleep 0.1; done
        echo "set fwd rxonly" >&3
        echo "start tx_first 1" >&3
    else
        taskset -c "$GEN_CPU" "$BIN/sluice-gen" rx --socket "$work/b.sock" --timeout 30 --announce "$SINK_MAC" \
            >"$work/sink.log" 2>&1 &
        SNK=$!
    fi
    sleep 1
    taskset -c "$GEN_CPU" "$BIN/sluice-gen" tx --socket "$work/a.sock" --src-mac 02:00:00:00:00:01 \
        --dst-mac "$SINK_MAC" --size 64 --macs "$macs" >"$work/gen.log" 2>&1 &
    GEN=$!
    sleep "$WARMUP"
    s0=$("$BIN/sluice-stat" --instance "$PREFIX" --json); t0=$(cpu_ticks "$DUT")
    sleep "$WINDOW"
    s1=$("$BIN/sluice-stat" --instance "$PREFIX" --json); t1=$(cpu_ticks "$DUT")
    [ -n "${KEEP_LOGS:-}" ] && "$BIN/sluice-stat" --instance "$PREFIX" >"$work/stat-$macs-$(date +%s).txt"
    awk -v m="$macs" -v w="$WINDOW" -v hz="$(getconf CLK_TCK)" \
        -v c0="$(value "$s0" worker.0.busy_cycles)" -v c1="$(value "$s1" worker.0.busy_cycles)" \
        -v b0="$(value "$s0" worker.0.busy_packets)" -v b1="$(value "$s1" worker.0.busy_packets)" \
        -v x0="$(value "$s0" port.b.tx_packets)" -v x1="$(value "$s1" port.b.tx_packets)" \
        -v n0="$(value "$s0" port.b.drop.no_rx_buffer)" -v n1="$(value "$s1" port.b.drop.no_rx_buffer)" \
        -v f0="$(value "$s0" port.a.flood_packets)" -v f1="$(value "$s1" port.a.flood_packets)" \
        -v g="$(value "$s1" switch.br0.macs)" -v tf="$(value "$s1" switch.br0.table_full)" \
        -v t0="$t0" -v t1="$t1" \
        'BEGIN { if (b1 > b0) printf "%s %.1f %.3f %d %d %d %d %.0f\n", m, (c1 - c0) / (b1 - b0), (x1 - x0) / w / 1e6,
                 n1 - n0, f1 - f0, g, tf, 100 * (t1 - t0) / hz / w;
                 else printf "%s nan nan 0 0 %d %d 0\n", m, g, tf }'
    kill -INT "$GEN" 2>/dev/null; wait "$GEN" 2>/dev/null; GEN=""
    if [ "$SINK" = testpmd ]; then
        { echo stop; echo quit; } >&3 2>/dev/null; exec 3>&-
        for i in $(seq 30); do kill -0 "$SNK" 2>/dev/null || break; sleep 0.1; done
    fi
    kill "$SNK" 2>/dev/null; wait "$SNK" 2>/dev/null; SNK=""
    kill "$DUT" 2>/dev/null; wait "$DUT" 2>/dev/null; DUT=""
    rm -rf "/var/run/dpdk/$PREFIX"
}

samples="$work/samples"
: >"$samples"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# macs cycles/frame Mpps b.no_rx_buffer a.flooded switch.macs table_full dut_cpu%" >&2
for r in $(seq "$REPEATS"); do
    if [ $((r % 2)) -eq 1 ]; then order="1 $MANY"; else order="$MANY 1"; fi
    for m in $order; do
        line=$(one_run "$m")
        echo "repeat $r: $line" >&2
        echo "$r $line" >>"$samples"
    done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
med() { awk -v m="$1" -v c="$2" '$2 == m {print $c}' "$samples" | median; }
c1=$(med 1 3); cM=$(med "$MANY" 3); p1=$(med 1 4); pM=$(med "$MANY" 4)
ratio=$(awk -v a="$c1" -v b="$cM" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "nan" }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r != "nan" && r <= 1.2 && r >= 0.8) ? "within 20 %" : "NOT within 20 %" }')
{
    echo "# Switch: busy cycles per frame with 1 vs $MANY source MACs"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null), $(nproc) CPUs,"
    echo "sink $SINK, $REPEATS repeats alternated, warm-up $WARMUP s, window $WINDOW s, 64-byte frames;"
    echo "load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after (other work on the machine"
    echo "takes CPU from the busy poller: see the sluice CPU % column; TSC cycles keep counting while"
    echo "it is descheduled, so low-CPU samples inflate cycles/frame)."
    echo
    echo "| source MACs | busy cycles/frame (median) | Mpps to port b (median) |"
    echo "|---|---|---|"
    echo "| 1 | $c1 | $p1 |"
    echo "| $MANY | $cM | $pM |"
    echo
    echo "Ratio $MANY/1 of cycles per frame: **$ratio** ($verdict; target: within 20 %)."
    echo
    echo "## Samples"
    echo
    echo "| repeat | macs | cycles/frame | Mpps | Δb.drop.no_rx_buffer | Δa.flood_packets | switch.br0.macs | table_full | sluice CPU % |"
    echo "|---|---|---|---|---|---|---|---|---|"
    awk '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}' "$samples"
    echo
    echo "## Command lines (in a temporary directory holding switch.ini)"
    echo
    echo '```'
    echo "tools/bench/switch-macs.sh   # REPEATS=$REPEATS WINDOW=$WINDOW WARMUP=$WARMUP MANY=$MANY SINK=$SINK"
    echo "$DUT_CMD"
    echo "$SINK_CMD"
    echo "$GEN_CMD          # N = 1 or $MANY"
    echo "sluice-stat --instance INST --json     # at WARMUP and WARMUP+WINDOW s"
    echo '```'
    echo
    echo "switch.ini:"
    echo
    echo '```ini'
    sed "s|$work|DIR|; s|$PREFIX|INST|" "$work/switch.ini"
    echo '```'
} >"$OUT"
cat "$OUT"
