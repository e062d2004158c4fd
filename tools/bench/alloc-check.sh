#!/usr/bin/env bash
# Does the worker's poll loop allocate or retain per packet? And how many
# instructions does a forwarded packet cost, next to DPDK?
#
#   tools/bench/alloc-check.sh [OUT.md]       (default tools/bench/results-alloc.md)
#
# 1. sluice (release) runs under `valgrind --tool=callgrind --separate-threads=yes
#    --toggle-collect=<Worker.run>` on cpu DUT_CPU with a p2p link between two
#    vhost-user ports; one dpdk-testpmd on cpu GEN_CPU with two net_virtio_user
#    ports loops frames through it (`set fwd io`, `start tx_first 1`: a closed loop,
#    so the rate is whatever valgrind lets the DUT forward). After a warm-up,
#    `callgrind_control --zero` starts a BUSY window and `--dump` ends it; sluice-stat
#    samples inside it give the packets. The generator then stops and an IDLE window
#    (same ports, no traffic) measures what an empty poll costs.
#    The worker thread's dumps are parsed for call counts (`calls=` lines summed per
#    callee, with callers): malloc & co and the Swift runtime's retain/release/alloc.
# 2. (DPDK=1, default) the same with `dpdk-testpmd` io forwarding between two
#    net_vhost ports as the DUT (whole process under callgrind; its forwarding lcore
#    is the busiest thread; packets from `clear/show fwd stats all`).
#
# Instructions per forwarded packet, net of empty polls (deterministic, unlike
# wall-clock rates on a shared machine):
#     (Ir_busy - turns_busy * Ir_idle / turns_idle) / packets
# where a turn is one pass of the forwarding loop over both directions (sluice: the
# worker.0.loops counter, sampled inside each window; testpmd: rte_vhost_dequeue_burst
# calls / 2, one per stream).
#
# ELEMENT=router: sluice's [network] between the two ports (router-config.sh); the generator
# replays routed frames from two net_pcap ports (an open loop: a router decrements the TTL,
# so a closed loop would die out) and DPDK=0 is implied (no l3fwd under callgrind).
#
# ELEMENT=blk: sluice exports a BLK_MB file on tmpfs ([disk] + [blk vda], one queue of 256);
# the driver is `sluice-gen blk load --rw rw --bs 4k --iodepth IODEPTH` on GEN_CPU (half
# reads, half writes, random offsets), stopped with SIGSTOP for the idle window (still
# connected: the queue stays live and is polled empty), SIGCONT + SIGINT after it. Per-request
# figures divide by blk.vda.reads + blk.vda.writes (a request is taken and completed in two
# different polls, so worker.0.busy_packets counts it twice). DPDK=0 is implied. callgrind
# counts the worker's user-space instructions only: the io_uring_enter system call's kernel
# side (and the kernel's copy of the data) is not in the figures.
#
# Environment: WINDOW=10 IDLE=5 WARMUP=5 (seconds of valgrind time), SIZE=64,
#   DPDK=1, DUT_CPU=1 GEN_CPU=0, IODEPTH=32 BLK_MB=64 (ELEMENT=blk), SLUICE_BIN_DIR (default: swift build -c release),
#   KEEP_LOGS=1 keeps the work directory (callgrind files included).
# Exit: 0 report written (whatever the counts), 1 error, 77 a tool is missing.

set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=p2p-config.sh
. "$root/tools/bench/p2p-config.sh"
# shellcheck source=router-config.sh
. "$root/tools/bench/router-config.sh"
out="${1:-$root/tools/bench/results-alloc.md}"
WINDOW=${WINDOW:-10}; IDLE=${IDLE:-5}; WARMUP=${WARMUP:-5}; SIZE=${SIZE:-64}; DPDK=${DPDK:-1}
DUT_CPU=${DUT_CPU:-1}; GEN_CPU=${GEN_CPU:-0}
ELEMENT=${ELEMENT:-p2p}
IODEPTH=${IODEPTH:-32}; BLK_MB=${BLK_MB:-64}
gen_tool=dpdk-testpmd; [ "$ELEMENT" = blk ] && gen_tool=taskset
for t in $gen_tool valgrind callgrind_control callgrind_annotate python3 objcopy; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not found (apt-get install -y dpdk valgrind python3 binutils)"; exit 77; }
done

bindir=${SLUICE_BIN_DIR:-}
if [ -z "$bindir" ]; then
    (cd "$root" && swift build -c release --product sluice >&2 && swift build -c release --product sluice-stat >&2 \
        && { [ "$ELEMENT" != blk ] || swift build -c release --product sluice-gen >&2; }) \
        || { echo "swift build failed" >&2; exit 1; }
    bindir="$(cd "$root" && swift build -c release --show-bin-path)"
fi
STAT="$bindir/sluice-stat"
[ -x "$bindir/sluice" ] && [ -x "$STAT" ] || { echo "no sluice/sluice-stat in $bindir" >&2; exit 1; }
[ "$ELEMENT" != blk ] || [ -x "$bindir/sluice-gen" ] || { echo "no sluice-gen in $bindir" >&2; exit 1; }

work="$(mktemp -d /tmp/alloc-check.XXXXXX)"
tag="alloc$$"; instance="$tag"; gen_prefix="${tag}gen"; dut_prefix="${tag}dut"
S0="$work/s0.sock"; S1="$work/s1.sock"
DUT_PID=""; GEN_PID=""; DUT_FIFO=0
started="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)"
# Valgrind 3.19 cannot read the DWARF 5 that Swift's clang writes ("unhandled dwarf2
# abbrev form code 0x1b") and gives up: run a copy without debug info (the symbol
# table, which is all callgrind needs for function names, stays).
SLUICE="$work/sluice"
objcopy --strip-debug "$bindir/sluice" "$SLUICE" || { echo "objcopy failed" >&2; exit 1; }

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
quit_fifo() {   # pid fd
    [ -n "$1" ] || return 0
    { echo quit >&"$2"; } 2>/dev/null
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    eval "exec $2>&-" 2>/dev/null
    stop_pid "$1"
}
blk_gen_end() {
    [ -n "$GEN_PID" ] || return 0
    kill -CONT "$GEN_PID" 2>/dev/null; kill -INT "$GEN_PID" 2>/dev/null
    gen_gone() { ! kill -0 "$GEN_PID" 2>/dev/null; }
    wait_for 30 gen_gone
    stop_pid "$GEN_PID"; GEN_PID=""
}
stop_all() {
    [ "$ELEMENT" = blk ] && blk_gen_end
    quit_fifo "$GEN_PID" 3; GEN_PID=""
    if [ "$DUT_FIFO" = 1 ]; then quit_fifo "$DUT_PID" 4; else stop_pid "$DUT_PID"; fi
    DUT_PID=""; DUT_FIFO=0
    for p in "$gen_prefix" "$dut_prefix"; do
        rm -rf "/var/run/dpdk/$p"
        for m in $(awk '$3 == "hugetlbfs" {print $2}' /proc/mounts); do rm -f "$m/$p"map_* 2>/dev/null; done
    done
    rm -f "/dev/shm/sluice-$instance.stats" "$S0" "$S1"
}
cleanup() {
    stop_all
    [ -n "${BLK_IMG:-}" ] && rm -f "$BLK_IMG"
    if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
trap '' PIPE

wait_for() {   # seconds command...: poll every 0.1 s; give up early when command returns 2
    local s=$1 rc; shift
    for _ in $(seq $((s * 10))); do "$@"; rc=$?; [ $rc = 0 ] && return 0; [ $rc = 2 ] && return 1; sleep 0.1; done
    return 1
}
log_has() { grep -aq -- "$2" "$1" 2>/dev/null; }
dut_up() { kill -0 "$DUT_PID" 2>/dev/null || return 2; [ -S "$S0" ] && [ -S "$S1" ]; }
stat_value() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"; }

# ELEMENT: p2p (default), switch (known unicast: the generator's ports carry their own
# MACs and name each other as peers), switch-tap (every frame flooded: the peers are
# unknown, and a tap port gets a copy of each).
BLK_IMG=""
if [ "$ELEMENT" = blk ]; then
    DPDK=0
    S0="$work/vda.sock"; S1="$S0"
    BLK_IMG="/dev/shm/$tag.img"
    dd if=/dev/urandom of="$BLK_IMG" bs=1M count="$BLK_MB" status=none || { echo "cannot write $BLK_IMG" >&2; exit 1; }
    cat >"$work/p2p.ini" <<EOF
[dataplane]
cores = $DUT_CPU
poll = 0
hugepages = off
socket-dir = $work
instance = $instance

[disk img0]
file = $BLK_IMG
block-size = 512

[blk vda]
device = disk:img0
socket = vda.sock
mode = server
queues = 1
queue-size = 256
EOF
elif [ "$ELEMENT" = router ]; then
    DPDK=0
    write_router_config "$work/p2p.ini" "$DUT_CPU" "$work" "$instance"
    rmac=$(router_mac "$instance" "$RT_NETWORK")
    write_route_pcap "$work/p0.pcap" "$RT_GEN_MAC0" "$rmac" 198.18.0.1 198.18.1.0 "$SIZE" \
        && write_route_pcap "$work/p1.pcap" "$RT_GEN_MAC1" "$rmac" 198.18.1.1 198.18.0.0 "$SIZE" \
        || { echo "cannot write the generator's frames" >&2; exit 1; }
else
    write_p2p_config "$work/p2p.ini" "$DUT_CPU" "$work" "$instance" "$ELEMENT"
fi
GEN_MACS=""; GEN_PEERS=""
case "$ELEMENT" in
    switch) GEN_MACS=1; GEN_PEERS="--eth-peer=0,02:00:00:00:0a:01 --eth-peer=1,02:00:00:00:0a:00" ;;
    switch-tap) GEN_MACS=1; GEN_PEERS="--eth-peer=0,02:00:00:00:0b:01 --eth-peer=1,02:00:00:00:0b:00" ;;
esac
mac0=""; mac1=""
[ -n "$GEN_MACS" ] && { mac0=",mac=02:00:00:00:0a:00"; mac1=",mac=02:00:00:00:0a:01"; }

# callgrind does not demangle Swift: match Worker.run by its mangled name.
TOGGLE='*6Engine6WorkerC3run*'
VG="taskset -c $DUT_CPU valgrind --tool=callgrind --separate-threads=yes"
SLUICE_CMD="$VG --toggle-collect=$TOGGLE --callgrind-out-file=$work/sluice.cg $SLUICE --config $work/p2p.ini --cores $DUT_CPU --poll 0"
TESTPMD_CMD="$VG --callgrind-out-file=$work/dpdk.cg dpdk-testpmd --lcores 0@$DUT_CPU,1@$DUT_CPU --no-pci --no-huge -m 512 --file-prefix $dut_prefix --vdev net_vhost0,iface=$S0,queues=1 --vdev net_vhost1,iface=$S1,queues=1 -- -i --total-num-mbufs=16384 --forward-mode=io"
GEN_CMD="dpdk-testpmd --lcores 0@$DUT_CPU,1@$GEN_CPU --no-pci --no-huge -m 512 --single-file-segments --file-prefix $gen_prefix --vdev net_virtio_user0,path=$S0,queues=1$mac0 --vdev net_virtio_user1,path=$S1,queues=1$mac1 -- -i --total-num-mbufs=16384 $GEN_PEERS"
GEN_START="set txpkts $SIZE ; set fwd io ; start tx_first 1"
if [ "$ELEMENT" = blk ]; then
    GEN_CMD="taskset -c $GEN_CPU $bindir/sluice-gen blk load --socket $S0 --rw rw --bs 4k --iodepth $IODEPTH --seconds 3600 --json"
    GEN_START="(idle window: kill -STOP; at the end kill -CONT, kill -INT)"
elif [ "$ELEMENT" = router ]; then
    GEN_CMD="$(router_gen_cmd "$GEN_CPU" "$DUT_CPU" "$gen_prefix" "$work/p0.pcap" "$work/p1.pcap" "$S0" "$S1")"
    GEN_START="set fwd io ; start"
fi

start_gen() {
    if [ "$ELEMENT" = blk ]; then
        $GEN_CMD >"$work/$1.gen.log" 2>&1 &
        GEN_PID=$!
        # up when sluice has completed a request
        blk_moving() { kill -0 "$GEN_PID" 2>/dev/null || return 2; "$STAT" --instance "$instance" --json >"$work/up.json" 2>/dev/null \
            && [ "$(stat_value "$work/up.json" blk.vda.reads)" -gt 0 ] 2>/dev/null; }
        wait_for 60 blk_moving || { echo "sluice-gen blk load did not start" >&2; tail "$work/$1.gen.log" >&2; return 1; }
        return 0
    fi
    mkfifo "$work/gen.in"
    stdbuf -oL $GEN_CMD <"$work/gen.in" >"$work/$1.gen.log" 2>&1 &
    GEN_PID=$!
    exec 3>"$work/gen.in"; rm -f "$work/gen.in"
    wait_for 60 log_has "$work/$1.gen.log" "Checking link statuses" || { echo "generator did not start" >&2; tail "$work/$1.gen.log" >&2; return 1; }
    echo "$GEN_START" | tr ';' '\n' | sed 's/^ *//' >&3
}

# measure OUTER-BEFORE INNER-BEFORE INNER-AFTER OUTER-AFTER [IDLE-BEFORE IDLE-AFTER]:
#   busy window, then idle window. The hooks sample the DUT's counters just outside and
#   just inside the callgrind windows (callgrind_control takes ~0.1 s; over WINDOW
#   seconds the two differ by a few %).
measure() {
    sleep "$WARMUP"
    $1
    callgrind_control --zero "$DUT_PID" >/dev/null
    $2
    sleep "$WINDOW"
    $3
    callgrind_control --dump=busy "$DUT_PID" >/dev/null
    $4
    gen_stop; sleep 1
    callgrind_control --zero "$DUT_PID" >/dev/null
    ${5:-:}
    sleep "$IDLE"
    ${6:-:}
    callgrind_control --dump=idle "$DUT_PID" >/dev/null
}

# gen_stop: the traffic stops (testpmd: `stop`; sluice-gen blk load: SIGSTOP, so the device
# stays connected and its queue live but nothing new is offered: the idle window then costs
# what a live, empty blk queue costs; blk_gen_end lets it go on and end).
gen_stop() {
    if [ "$ELEMENT" = blk ]; then
        kill -STOP "$GEN_PID" 2>/dev/null
    else
        echo "stop" >&3
    fi
}

# --- 1. sluice ----------------------------------------------------------------------------
echo "alloc-check: sluice under callgrind (load $load_at_start)" >&2
$SLUICE_CMD >"$work/sluice.log" 2>&1 &
DUT_PID=$!
wait_for 120 dut_up || { echo "sluice did not start under valgrind" >&2; tail "$work/sluice.log" >&2; exit 1; }
start_gen sluice || exit 1
sample() { "$STAT" --instance "$instance" --json >"$work/sluice.$1.json"; }
measure "sample o0" "sample s0" "sample s1" "sample o1" "sample i0" "sample i1"
stop_all
s_packets=$(( $(stat_value "$work/sluice.s1.json" worker.0.busy_packets) - $(stat_value "$work/sluice.s0.json" worker.0.busy_packets) ))
s_outer=$(( $(stat_value "$work/sluice.o1.json" worker.0.busy_packets) - $(stat_value "$work/sluice.o0.json" worker.0.busy_packets) ))
s_turns=$(( $(stat_value "$work/sluice.s1.json" worker.0.loops) - $(stat_value "$work/sluice.s0.json" worker.0.loops) ))
s_turns_idle=$(( $(stat_value "$work/sluice.i1.json" worker.0.loops) - $(stat_value "$work/sluice.i0.json" worker.0.loops) ))
if [ "$ELEMENT" = blk ]; then
    blk_req() { echo $(( $(stat_value "$1" blk.vda.reads) + $(stat_value "$1" blk.vda.writes) )); }
    s_packets=$(( $(blk_req "$work/sluice.s1.json") - $(blk_req "$work/sluice.s0.json") ))
    s_outer=$(( $(blk_req "$work/sluice.o1.json") - $(blk_req "$work/sluice.o0.json") ))
    s_errors=$(( $(stat_value "$work/sluice.o1.json" blk.vda.errors.ioerr) + $(stat_value "$work/sluice.o1.json" blk.vda.errors.unsupp) ))
fi
s_fwd=$(( $(stat_value "$work/sluice.s1.json" port.p0.tx_packets) + $(stat_value "$work/sluice.s1.json" port.p1.tx_packets) \
        - $(stat_value "$work/sluice.s0.json" port.p0.tx_packets) - $(stat_value "$work/sluice.s0.json" port.p1.tx_packets) ))

# --- 2. testpmd ---------------------------------------------------------------------------
d_packets=0
if [ "$DPDK" = 1 ]; then
    echo "alloc-check: dpdk-testpmd under callgrind" >&2
    mkfifo "$work/dut.in"
    $TESTPMD_CMD <"$work/dut.in" >"$work/dpdk.log" 2>&1 &
    DUT_PID=$!; DUT_FIFO=1
    exec 4>"$work/dut.in"; rm -f "$work/dut.in"
    echo "start" >&4
    wait_for 120 dut_up || { echo "testpmd did not start under valgrind" >&2; tail "$work/dpdk.log" >&2; exit 1; }
    start_gen dpdk || exit 1
    dpdk_before() { echo "clear fwd stats all" >&4; }
    dpdk_after() { echo "show fwd stats all" >&4; sleep 0.1; }
    measure : dpdk_before dpdk_after :
    stop_all
    d_packets=$(awk '/Accumulated forward statistics/ {getline; print $2; exit}' "$work/dpdk.log")
fi

# --- analysis -------------------------------------------------------------------------------
# pick FILE-PREFIX TRIGGER: the thread dump of that trigger with the most instructions
pick() {
    local best="" bestir=-1 f ir
    for f in "$1".*; do
        grep -aq "^desc: Trigger: dump $2\$" "$f" 2>/dev/null || continue
        ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
        [ "${ir:-0}" -gt "$bestir" ] && { best=$f; bestir=${ir:-0}; }
    done
    echo "$best"
}
s_busy=$(pick "$work/sluice.cg" busy); s_idle=$(pick "$work/sluice.cg" idle)
d_busy=""; d_idle=""
[ "$DPDK" = 1 ] && { d_busy=$(pick "$work/dpdk.cg" busy); d_idle=$(pick "$work/dpdk.cg" idle); }
[ -n "$s_busy" ] && [ -n "$s_idle" ] || { echo "no sluice callgrind dumps in $work" >&2; KEEP_LOGS=1; exit 1; }
# --toggle-collect names Worker.run: if the compiler ever inlines it into its thread
# closure, nothing is collected and every count would read 0. Refuse to report that.
if [ "$(awk '/^(summary|totals):/ {print $2; exit}' "$s_busy")" = 0 ] || ! grep -q '6Engine6WorkerC3run' "$s_busy"; then
    echo "callgrind collected nothing under Worker.run (symbol renamed or inlined? see $TOGGLE)" >&2; KEEP_LOGS=1; exit 1
fi

UNIT=packet; UNIT_SRC='`worker.0.busy_packets`'
[ "$ELEMENT" = blk ] && { UNIT=request; UNIT_SRC='`blk.vda.reads` + `blk.vda.writes`'; }
UNIT="$UNIT" UNIT_SRC="$UNIT_SRC" SLUICE_LABEL="Sluice $ELEMENT" python3 - "$s_busy" "$s_idle" "$s_packets" "$d_busy" "$d_idle" "${d_packets:-0}" "$s_turns" "$s_turns_idle" >"$work/analysis.md" <<'EOF'
import os, re, sys, collections
s_busy, s_idle, s_packets, d_busy, d_idle, d_packets, s_turns, s_turns_idle = sys.argv[1:9]
s_packets, d_packets, s_turns, s_turns_idle = int(s_packets), int(d_packets), int(s_turns), int(s_turns_idle)
WATCH = ["malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc",
         "swift_allocObject", "swift_deallocObject", "swift_slowAlloc", "swift_slowDealloc",
         "swift_retain", "swift_release", "swift_retain_n", "swift_release_n",
         "swift_bridgeObjectRetain", "swift_bridgeObjectRelease",
         "swift_unknownObjectRetain", "swift_unknownObjectRelease",
         "swift_beginAccess", "swift_endAccess", "swift_isUniquelyReferenced_nonNull_native"]

def parse(path):
    """Total Ir, calls per callee, calls per (caller, callee) of one callgrind file."""
    names = {}
    def name(spec):
        m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
        if not m: return spec
        if m.group(2) is not None: names[m.group(1)] = m.group(2)
        return names.get(m.group(1), spec)
    total = 0; calls = collections.Counter(); edges = collections.Counter(); fn = callee = None
    for line in open(path, errors="replace"):
        if line.startswith("fn="): fn = name(line[3:].rstrip("\n"))
        elif line.startswith("cfn="): callee = name(line[4:].rstrip("\n"))
        elif line.startswith("calls="):
            n = int(line[6:].split()[0]); c = callee.split("'")[0]
            calls[c] += n; edges[(fn.split("'")[0], c)] += n
        elif line.startswith("summary:") or line.startswith("totals:"): total = int(line.split()[1])
    return total, calls, edges

def per(v, d, f="{:.4f}"): return f.format(v / d) if d else "NA"
U = os.environ.get("UNIT", "packet"); USRC = os.environ.get("UNIT_SRC", "`worker.0.busy_packets`")

def net(busy, idle, packets, bp, ip):
    """bp, ip: loop turns in the busy and the idle window."""
    bt = parse(busy)[0]; it = parse(idle)[0]
    idle_per_turn = it / ip if ip else float("nan")
    netpp = (bt - bp * idle_per_turn) / packets if packets and ip else float("nan")
    return dict(busy_ir=bt, busy_turns=bp, idle_ir=it, idle_turns=ip, idle_per_turn=idle_per_turn,
                gross=bt / packets if packets else float("nan"), net=netpp, packets=packets)
total, calls, edges = parse(s_busy)
print(f"### Sluice worker thread, busy window: {s_packets} {U}s taken ({USRC})\n")
print(f"| callee (from Worker.run, inclusive) | calls | per {U} |")
print("|---|---:|---:|")
for w in WATCH:
    print(f"| `{w}` | {calls.get(w, 0)} | {per(calls.get(w, 0), s_packets)} |")
found = [w for w in WATCH if calls.get(w, 0)]
if found:
    print("\nWhere they come from (caller → callee: calls):\n")
    for (a, b), n in edges.most_common():
        if b in found: print(f"- `{a}` → `{b}`: {n}")
else:
    print("\n**None**: the worker made no call to an allocator or to the Swift reference-counting runtime in the window.")
print(f"\nEvery call the worker thread made in the busy window (caller → callee: calls, per {U}):\n")
for (a, b), n in edges.most_common(20):
    if n: print(f"- `{a}` → `{b}`: {n} ({per(n, s_packets, '{:.2f}')})")

rows = [(os.environ.get("SLUICE_LABEL", "Sluice p2p"), net(s_busy, s_idle, s_packets, s_turns, s_turns_idle), "`worker.0.loops` sampled inside each window")]
if d_busy and d_idle:
    deq = "rte_vhost_dequeue_burst"
    rows.append(("DPDK testpmd io", net(d_busy, d_idle, d_packets, parse(d_busy)[1].get(deq, 0) // 2,
                 parse(d_idle)[1].get(deq, 0) // 2), f"`{deq}` calls / 2 (two streams)"))
what = "forwarded packet (callgrind Ir, DUT forwarding thread)" if U == "packet" else "request (callgrind Ir, the worker thread)"
print(f"\n### Instructions per {what}\n")
print(f"| DUT | {U}s | busy Ir | loop turns (busy) | idle Ir | loop turns (idle) | Ir per empty turn | Ir/{U} gross | **Ir/{U} net** |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for n, r, _ in rows:
    print(f"| {n} | {r['packets']} | {r['busy_ir']} | {r['busy_turns']} | {r['idle_ir']} | {r['idle_turns']} | "
          f"{r['idle_per_turn']:.1f} | {r['gross']:.0f} | **{r['net']:.0f}** |")
if len(rows) == 2 and rows[1][1]["net"] > 0:
    print(f"\nSluice / DPDK, net instructions per packet: **{rows[0][1]['net'] / rows[1][1]['net']:.2f}**")
print(("\nA turn is one pass over both directions" if U == "packet" else "\nA turn is one pass of the worker loop") + "; counted as: " + "; ".join(f"{n}: {p}" for n, _, p in rows) + ".")
print("Under valgrind the batches differ from a native run (the DUT is many times slower); the net figure")
print(f"removes the cost of empty turns, so it is the per-{U} work itself.")
EOF
callgrind_annotate --inclusive=yes "$s_busy" 2>/dev/null | awk '/^Ir  *file:function/ {on = 1} on && /^$/ {exit} on' | head -25 >"$work/annotate.txt"
demangle() { if command -v swift >/dev/null; then swift demangle --simplified 2>/dev/null || cat; else cat; fi; }

{
    if [ "$ELEMENT" = blk ]; then echo "# Allocations, reference counting and instructions per request in the blk poll loop"
    else echo "# Allocations, reference counting and instructions per packet in the poll loop"; fi
    echo
    echo "Generated by \`tools/bench/alloc-check.sh\` on $started (load average at start $load_at_start;"
    echo "the machine is shared with other people's builds and tests — callgrind counts instructions,"
    echo "so the counts below do not depend on that load)."
    echo "sluice $(cd "$root" && git rev-parse --short HEAD 2>/dev/null) work tree (binary from \`$bindir\`, built $(date -u -r "$bindir/sluice" '+%H:%M:%S UTC'));"
    if [ "$ELEMENT" = router ]; then
        echo "${SIZE}-byte frames (FCS excluded) routed by sluice's [network $RT_NETWORK], offered by testpmd replaying"
        echo "them from two net_pcap ports (router-config.sh: 198.18.0.1 → 198.18.1.x and back), \`set fwd io\`, \`start\`;"
    elif [ "$ELEMENT" = blk ]; then
        echo "4 KiB random reads and writes (half each) on a ${BLK_MB} MiB file on tmpfs exported by sluice's [blk vda],"
        echo "driven by \`sluice-gen blk load\` at iodepth $IODEPTH;"
    else
        echo "${SIZE}-byte frames looped by testpmd (\`set fwd io\`, \`start tx_first 1\`) through the DUT;"
    fi
    echo "busy window ${WINDOW} s and idle window ${IDLE} s of valgrind time after ${WARMUP} s of warm-up."
    if [ "$ELEMENT" = blk ]; then
        echo "Requests sluice completed (blk.vda.reads + writes) between samples just inside the callgrind window:"
        echo "$s_packets, just outside it: $s_outer (per-request figures use the inside count); blk.vda.errors"
        echo "(ioerr + unsupp) at the end of the busy window: ${s_errors:-NA}. callgrind counts user-space instructions:"
        echo "the kernel's side of io_uring_enter and of the data copy is not in these figures."
    else
        echo "Sluice frames forwarded in the busy window (port tx_packets, both ports): $s_fwd; frames taken"
        echo "between samples just inside the callgrind window: $s_packets, just outside it: $s_outer"
        echo "(per-packet figures use the inside count, so they may be high by the difference)."
        echo "testpmd's packets come from \`clear fwd stats all\` / \`show fwd stats all\` sent just inside its window."
    fi
    echo
    demangle <"$work/analysis.md"
    echo
    echo "### callgrind_annotate --inclusive=yes, Sluice worker thread, busy window"
    echo
    echo '```'
    demangle <"$work/annotate.txt"
    echo '```'
    echo
    echo "### Commands"
    echo
    echo '```'
    echo "$SLUICE_CMD"
    [ "$DPDK" = 1 ] && echo "$TESTPMD_CMD   # then: start"
    echo "$GEN_CMD"
    echo "  $GEN_START"
    echo "callgrind_control --zero PID ; (window) ; callgrind_control --dump=busy PID"
    echo "  (generator: stop) ; callgrind_control --zero PID ; (idle) ; callgrind_control --dump=idle PID"
    echo '```'
} >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
echo "wrote $out" >&2
