#!/usr/bin/env bash
# The router's IPv4 prefix table (PrefixTable4, DIR-16-8-8) next to DPDK's rte_lpm
# (DIR-24-8) on the same kind of route set: DPDK's `lpm_perf_autotest` (dpdk-test) makes
# ~1M random prefixes with a real routing table's spread of lengths and times single,
# bulk and x4 lookups of random addresses; `sluice-bench lpm` builds a PrefixTable4 from a
# random set with the same number of prefixes per length (read from the autotest's own
# "Route distribution" output of this run) and times single lookups the same way
# (batches of 4,096 random addresses, TSC cycles per lookup). Both single-threaded, on CPU.
#
#   tools/bench/lpm-vs-fib.sh [OUT.md]      (default: print only)
#
# Environment: REPEATS=3, CPU=1, SLUICE_BIN_DIR (release sluice-bench; default: swift build -c release), KEEP_LOGS=1.
# Exit: 0 done, 1 error, 77 dpdk-test missing.

set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-}"
REPEATS=${REPEATS:-3}; CPU=${CPU:-1}
command -v dpdk-test >/dev/null || { echo "SKIP: dpdk-test not found (apt-get install -y dpdk)"; exit 77; }
bindir=${SLUICE_BIN_DIR:-}
if [ -z "$bindir" ]; then
    (cd "$root" && swift build -c release --product sluice-bench >&2) || { echo "swift build failed" >&2; exit 1; }
    bindir="$(cd "$root" && swift build -c release --show-bin-path)"
fi
BENCH="$bindir/sluice-bench"
[ -x "$BENCH" ] || { echo "no sluice-bench in $bindir" >&2; exit 1; }
work="$(mktemp -d /tmp/lpm-vs-fib.XXXXXX)"
prefix="lpmb$$"
cleanup() {
    rm -rf "/var/run/dpdk/$prefix"
    if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
started="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"; load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)"

: >"$work/dpdk.tsv"; : >"$work/sluice.tsv"
for rep in $(seq "$REPEATS"); do
    log="$work/dpdk-$rep.log"
    # One lcore: the autotest's multi-writer RCU parts need more and are skipped.
    echo lpm_perf_autotest | stdbuf -oL taskset -c "$CPU" dpdk-test -l "$CPU" --no-huge -m 2048 --no-pci \
        --file-prefix "$prefix" >"$log" 2>&1
    rm -rf "/var/run/dpdk/$prefix"
    single=$(sed -n 's/^Average LPM Lookup: \([0-9.]*\) cycles.*/\1/p' "$log" | head -1)
    bulk=$(sed -n 's/^BULK LPM Lookup: \([0-9.]*\) cycles.*/\1/p' "$log" | head -1)
    x4=$(sed -n 's/^LPM LookupX4: \([0-9.]*\) cycles.*/\1/p' "$log" | head -1)
    fails=$(sed -n 's/^Average LPM Lookup: .*fails = \([0-9.]*\)%.*/\1/p' "$log" | head -1)
    routes=$(sed -n 's/^No\. routes = \([0-9]*\).*/\1/p' "$log" | head -1)
    added=$(sed -n 's/^Unique added entries = \([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$single" ] || { echo "dpdk-test lpm_perf_autotest printed no lookup result (see $log)" >&2; KEEP_LOGS=1; exit 1; }
    # "DEPTH QUANTITY (PERCENT)" rows: the counts per length 1..32.
    depths=$(awk '/^Route distribution per prefix width/ {on = 1; next} on && /^[0-9][0-9]? +[0-9]+ \(/ {c[$1 + 0] = $2; n++} on && n == 32 {exit}
                  END {for (i = 1; i <= 32; i++) printf "%s%d", (i > 1 ? "," : ""), c[i] + 0}' "$log")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$single" "$bulk" "$x4" "$fails" "$routes" "$added" >>"$work/dpdk.tsv"
    line=$(taskset -c "$CPU" "$BENCH" lpm --depths "$depths" --cpu "$CPU" --seed "$rep") || { echo "sluice-bench lpm failed" >&2; exit 1; }
    echo "  $rep: DPDK single $single, bulk $bulk, x4 $x4 cycles (fails $fails %); sluice: $line" >&2
    echo "$line" | awk '{for (i = 2; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
        print v["cycles_per_lookup"] "\t" v["misses_pct"] "\t" v["routes"] "\t" v["distinct"] "\t" v["build_ms"] "\t" v["memory_kib"] "\t" v["groups"]}' >>"$work/sluice.tsv"
    echo "$depths" >"$work/depths.txt"
done
med() { awk -F'\t' -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
d1=$(med "$work/dpdk.tsv" 1); d2=$(med "$work/dpdk.tsv" 2); d3=$(med "$work/dpdk.tsv" 3); s1=$(med "$work/sluice.tsv" 1)
report() {
    echo "## IPv4 longest-prefix match: PrefixTable4 vs DPDK rte_lpm (\`tools/bench/lpm-vs-fib.sh\`)"
    echo
    echo "$started, load average at start $load_at_start; both pinned to cpu $CPU, single thread; $REPEATS runs, medians."
    echo "DPDK: \`echo lpm_perf_autotest | dpdk-test -l $CPU --no-huge -m 2048 --no-pci\` ($(dpkg-query -W -f '${Version}' dpdk 2>/dev/null));"
    echo "$(awk -F'\t' 'NR == 1 {print $5}' "$work/dpdk.tsv") random routes, $(awk -F'\t' 'NR == 1 {print $6}' "$work/dpdk.tsv") added."
    echo "Sluice: \`sluice-bench lpm --depths <the autotest's counts per length>\`: $(awk -F'\t' 'NR == 1 {print $3 " random routes (" $4 " distinct), built in " $5 " ms, " $7 " groups of 256, " $6 " KiB"}' "$work/sluice.tsv")."
    echo
    echo "| lookup | DPDK rte_lpm cycles | Sluice PrefixTable4 cycles | Sluice / DPDK |"
    echo "|---|---:|---:|---:|"
    echo "| single (one address at a time) | $d1 | $s1 | $(awk -v a="$d1" -v b="$s1" 'BEGIN {printf "%.2f", b / a}') |"
    echo "| DPDK bulk (32 at a time) | $d2 | – | $(awk -v a="$d2" -v b="$s1" 'BEGIN {printf "%.2f", b / a}') (vs single) |"
    echo "| DPDK x4 (SSE, 4 at a time) | $d3 | – | $(awk -v a="$d3" -v b="$s1" 'BEGIN {printf "%.2f", b / a}') (vs single) |"
    echo
    echo "Runs (cycles per lookup; DPDK single/bulk/x4, miss %; Sluice single, miss %):"
    echo
    paste "$work/dpdk.tsv" "$work/sluice.tsv" | awk -F'\t' '{printf "- DPDK %s / %s / %s (%s %%), Sluice %s (%s %%)\n", $1, $2, $3, $4, $7, $8}'
    echo
    echo "Prefixes per length (1…32) used by both: \`$(cat "$work/depths.txt")\`"
}
if [ -n "$out" ]; then report >"$out"; cat "$out"; else report; fi
