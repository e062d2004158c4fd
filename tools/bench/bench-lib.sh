# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals set for, and read from, the sourcing script
# Sourced by p2p-vs-testpmd.sh, switch-vs-ovs.sh and switch-vs-bridge.sh: the sluice
# binaries, process control, the generator's session, counters, the sample loop, medians
# and the parts of the report they share. Uses the caller's globals where noted: root,
# work, GEN_PID, DUT_PID, REPEATS, SIZES, WARMUP, WINDOW, TX_FIRST, DUT_CPU, GEN_CPU.

# bench_defaults: REPEATS=3 WINDOW=5 WARMUP=2 SIZES="64 1518" DUT_CPU=1 GEN_CPU=0
# TX_FIRST=32, each unless the environment sets it.
bench_defaults() {
    REPEATS=${REPEATS:-3}
    WINDOW=${WINDOW:-5}
    WARMUP=${WARMUP:-2}
    SIZES=${SIZES:-64 1518}
    DUT_CPU=${DUT_CPU:-1}
    GEN_CPU=${GEN_CPU:-0}
    TX_FIRST=${TX_FIRST:-32}
}

# find_sluice [DIR]: bindir = DIR (a re-render: nothing runs, nothing is checked), else
# SLUICE_BIN_DIR, else a fresh `swift build -c release`; SLUICE and STAT the two binaries.
# Exits 1 when the build fails or the binaries are missing.
find_sluice() {
    bindir=${1:-${SLUICE_BIN_DIR:-}}
    if [ -z "$bindir" ]; then
        (cd "$root" && swift build -c release --product sluice >&2 && swift build -c release --product sluice-stat >&2) \
            || { echo "swift build failed" >&2; exit 1; }
        bindir="$(cd "$root" && swift build -c release --show-bin-path)"
    fi
    SLUICE="$bindir/sluice"
    STAT="$bindir/sluice-stat"
    if [ -z "${1:-}" ] && ! { [ -x "$SLUICE" ] && [ -x "$STAT" ]; }; then echo "no sluice/sluice-stat in $bindir" >&2; exit 1; fi
}

# note_run_start: what the report says about the start of the run (load, busiest
# processes, date, HEAD, the sluice binary's date).
note_run_start() {
    load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)"
    busy_at_start="$(busiest_processes)"
    started="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    t_start=$(date +%s)
    rev="$(cd "$root" && git rev-parse --short HEAD 2>/dev/null)"
    built="$(date -u -r "$SLUICE" '+%Y-%m-%d %H:%M:%S UTC' 2>/dev/null)"
}

# install_traps: `cleanup` (the caller's) on exit, exit 1 on INT/TERM, and no SIGPIPE: a
# testpmd that died must not kill us through its fifo.
install_traps() {
    trap cleanup EXIT
    trap 'exit 1' INT TERM
    trap '' PIPE
}
drop_work() { if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi; }

stop_pid() {   # pid: ask, then insist
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

quit_testpmd() {   # pid fd: `quit`, then stop_pid
    local pid=$1 fd=$2
    [ -n "$pid" ] || return 0
    { echo "quit" >&"$fd"; } 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    eval "exec $fd>&-" 2>/dev/null
    stop_pid "$pid"
}

wait_for() {   # seconds command...: poll every 0.1 s
    local seconds=$1; shift
    for _ in $(seq $((seconds * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}
log_has() { grep -q -- "$2" "$1" 2>/dev/null; }
sockets_exist() { [ -S "$S0" ] && [ -S "$S1" ]; }
now() { date +%s.%N; }
# utime+stime of a process (all its threads), clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "utime stime" of a process, clock ticks
cpu_ticks2() { awk '{print $14, $15}' "/proc/$1/stat" 2>/dev/null || echo "0 0"; }
# "steal total" jiffies of one CPU: time the hypervisor ran something else on our vCPU.
steal_ticks() { awk -v c="cpu$1" '$1 == c {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
steal_pct() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; if (t > 0) printf "%.0f", (y[1] - x[1]) / t * 100; else print "NA"}'; }
stat_value() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"; }   # json-file counter

# start_gen command log: the generator, reading commands from fd 3, up when its ports are.
start_gen() {
    mkfifo "$work/gen.in"
    stdbuf -oL $1 <"$work/gen.in" >"$2" 2>&1 &
    GEN_PID=$!
    exec 3>"$work/gen.in"
    rm -f "$work/gen.in"
    wait_for 20 log_has "$2" "Checking link statuses"
}

# start_sample dut id generator-command stop_dut-argument: fresh leftovers, then the
# caller's start_dut DUT LOG and the generator; on a failure both are stopped again (the
# caller's stop_dut ARG) and it returns 1.
start_sample() {
    local dut=$1 id=$2 glog="$work/$2.gen.log" dlog="$work/$2.dut.log"
    remove_leftovers
    if ! start_dut "$dut" "$dlog"; then
        echo "FAIL $id: DUT $dut did not start" >&2; tail -5 "$dlog" >&2; stop_dut "$4"; return 1
    fi
    if ! start_gen "$3" "$glog"; then
        echo "FAIL $id: generator did not start" >&2; tail -5 "$glog" >&2
        quit_testpmd "$GEN_PID" 3; GEN_PID=""; stop_dut "$4"; return 1
    fi
}

# gen_io size: io closed loop of SIZE-byte frames, TX_FIRST bursts, then WARMUP seconds.
gen_io() {
    sleep 0.5
    echo "set txpkts $1" >&3
    echo "set fwd io" >&3
    echo "start tx_first $TX_FIRST" >&3
    sleep "$WARMUP"
}
# gen_done: stop the traffic and the generator.
gen_done() {
    sleep 0.3
    echo "stop" >&3
    sleep 0.3
    quit_testpmd "$GEN_PID" 3; GEN_PID=""
}

# run_samples label odd-order even-order: REPEATS x SIZES x DUTs into $work/samples.tsv, the
# DUT order flipped every repeat (one_sample DUT SIZE ID, the caller's); sets elapsed and
# load_at_end.
run_samples() {
    echo "$1: REPEATS=$REPEATS WINDOW=${WINDOW}s WARMUP=${WARMUP}s, load $load_at_start; work dir $work" >&2
    : >"$work/samples.tsv"
    local n=0 rep order size dut
    for rep in $(seq "$REPEATS"); do
        if [ $((rep % 2)) = 1 ]; then order=$2; else order=$3; fi
        for size in $SIZES; do
            for dut in $order; do
                n=$((n + 1))
                one_sample "$dut" "$size" "s$n" || echo "  s$n failed" >&2
            done
        done
    done
    elapsed=$(( $(date +%s) - t_start ))
    load_at_end="$(cut -d' ' -f1-3 /proc/loadavg)"
}

# Window rates from a testpmd generator log: the last two `show port stats all` blocks.
gen_window_mpps() {
    grep -ao 'Rx-pps: *[0-9]*' "$1" | awk '{v[NR] = $2} END {if (NR >= 4) printf "%.3f", (v[NR] + v[NR-1]) / 1e6; else print "NA"}'
}
gen_window_fbytes() {   # bytes per frame as the generator counted them
    local bps
    bps=$(grep -ao 'Rx-bps: *[0-9]*' "$1" | awk '{v[NR] = $2} END {print v[NR] + v[NR-1]}')
    grep -ao 'Rx-pps: *[0-9]*' "$1" | awk -v b="${bps:-0}" '{v[NR] = $2} END {p = v[NR] + v[NR-1]; if (p > 0) printf "%.0f", b / p / 8; else print "NA"}'
}

# Sluice busy cycles per packet, forwarded Mpps and frames per loop between two stats files.
sluice_cycles() {
    awk -v c0="$(stat_value "$1" worker.0.busy_cycles)" -v c1="$(stat_value "$2" worker.0.busy_cycles)" \
        -v p0="$(stat_value "$1" worker.0.busy_packets)" -v p1="$(stat_value "$2" worker.0.busy_packets)" \
        'BEGIN {if (p1 > p0) printf "%.1f", (c1 - c0) / (p1 - p0); else print "NA"}'
}
sluice_tx_mpps() {   # s0.json s1.json seconds
    awk -v a0="$(stat_value "$1" port.p0.tx_packets)" -v a1="$(stat_value "$2" port.p0.tx_packets)" \
        -v b0="$(stat_value "$1" port.p1.tx_packets)" -v b1="$(stat_value "$2" port.p1.tx_packets)" -v t="$3" \
        'BEGIN {printf "%.3f", ((a1 - a0) + (b1 - b0)) / t / 1e6}'
}

# Medians over a samples.tsv: rows whose first three columns are DUT, mode/variant, size.
# CLEAN_AWK (an awk condition) selects the undisturbed rows; a cell with none uses all rows.
cell_rows() {   # file dut variant size
    local good
    good=$(awk -F'\t' -v d="$2" -v m="$3" -v s="$4" "\$1 == d && \$2 == m && \$3 == s && (${CLEAN_AWK:-1})" "$1")
    if [ -n "$good" ]; then echo "$good"; else awk -F'\t' -v d="$2" -v m="$3" -v s="$4" '$1 == d && $2 == m && $3 == s' "$1"; fi
}
median_of() {   # file column dut variant size (MEDIAN_DIGITS=4: decimals of a two-value mean)
    cell_rows "$1" "$3" "$4" "$5" | awk -F'\t' -v c="$2" '$c != "NA" && $c != "" && $c != "-" {print $c}' \
        | sort -g | awk -v d="${MEDIAN_DIGITS:-4}" '{v[NR] = $1} END {if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf("%." d "f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}
range_of() {   # file column dut variant size: "min–max" over the used rows
    cell_rows "$1" "$3" "$4" "$5" | awk -F'\t' -v c="$2" '$c != "NA" && $c != "" && $c != "-" {print $c}' \
        | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "–"; else if (NR == 1) print "–"; else printf "%s–%s", v[1], v[NR]}'
}
fmt() { awk -v v="$1" -v d="$2" 'BEGIN {if (v == "NA" || v == "") print "NA"; else printf("%." d "f", v)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a + 0 > 0 && b != "NA") printf "%.2f", b / a; else print "NA"}'; }
busiest_processes() {
    ps -eo pcpu,psr,args --sort=-pcpu | awk 'NR>1 && NR<=6 {printf "%s%% cpu%s %s\n", $1, $2, substr($0, index($0,$3), 90)}'
}

# Report pieces. machine_dpdk: "N CPUs (model), kernel K, DPDK V".
machine_dpdk() {
    echo "$(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)," \
         "DPDK $(dpkg-query -W -f '${Version}' dpdk 2>/dev/null || echo '?')"
}
busy_block() {   # busy_at_start as an indented code block
    echo '  ```'
    echo "$busy_at_start" | sed 's/^/  /'
    echo '  ```'
}
gen_io_commands() {   # the generator's commands in gen_io and the window, as a code block
    echo '```'
    echo "set txpkts SIZE ; set fwd io ; start tx_first $TX_FIRST"
    echo "show port stats all      # after ${WARMUP} s: window start"
    echo "show port stats all      # ${WINDOW} s later: Rx-pps of the window"
    echo "stop ; quit"
    echo '```'
}
