# Sourced by switch-vs-ovs.sh and switch-vs-bridge.sh: process control, counters and
# medians shared by the two switch baselines (the same helpers p2p-vs-testpmd.sh uses).

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
now() { date +%s.%N; }
# utime+stime of a process (all its threads), clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "utime stime" of a process, clock ticks
cpu_ticks2() { awk '{print $14, $15}' "/proc/$1/stat" 2>/dev/null || echo "0 0"; }
# "steal total" jiffies of one CPU: time the hypervisor ran something else on our vCPU.
steal_ticks() { awk -v c="cpu$1" '$1 == c {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
steal_pct() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; if (t > 0) printf "%.0f", (y[1] - x[1]) / t * 100; else print "NA"}'; }
stat_value() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"; }   # json-file counter

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
median_of() {   # file column dut variant size
    cell_rows "$1" "$3" "$4" "$5" | awk -F'\t' -v c="$2" '$c != "NA" && $c != "" && $c != "-" {print $c}' \
        | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
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
