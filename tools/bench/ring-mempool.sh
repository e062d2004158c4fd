#!/usr/bin/env bash
# Sluice's IndexRing and Mempool side by side with DPDK 22.11's own autotests.
#
#   tools/bench/ring-mempool.sh [-r RUNS] [-x RING_REPEATS] [-d DIVISOR]
#                               [--scratch-path DIR | --bench BIN | --from RAWDIR] OUT.md
#
# Runs `dpdk-test` (Debian package dpdk) ring_perf_autotest and mempool_perf_autotest and
# `sluice-bench ring|mempool` alternately, RUNS rounds (default 3); in each round the ring
# pair (~10 s) runs RING_REPEATS times (default 3) and the mempool pair once, and which
# side goes first alternates. Takes the median of each row over all runs and writes a
# markdown table with ratios to OUT.md (and stdout). Raw outputs stay in a temporary
# directory whose path is printed.
#
#   --scratch-path DIR  passed to `swift build` (keep away from the main .build)
#   --bench BIN         use a prebuilt sluice-bench, build nothing
#   --from RAWDIR       only rebuild the table from the raw outputs of an earlier run
#
# mempool_perf_autotest times each of its ~720 rows for a fixed TIME_S = 5 s (about an
# hour per run). We run the unmodified binary with an LD_PRELOAD shim that divides
# rte_get_tsc_hz() by DIVISOR (default 25), which shortens each row's window to
# 5/DIVISOR s; the printed rate (objects / TIME_S) is multiplied back by DIVISOR. The
# run is stopped once the "with cache" section, the one we compare, has finished.
# sluice-bench uses the same window. ring_perf_autotest runs as is (fixed iterations).
set -euo pipefail

runs=3
ringreps=3
divisor=25
scratch=""
build=1
bench=""
from=""
out=""
usage="usage: $0 [-r RUNS] [-x RING_REPEATS] [-d DIVISOR] [--scratch-path DIR | --bench BIN | --from RAWDIR] OUT.md"
while [ $# -gt 0 ]; do
    case "$1" in
        -r) runs="$2"; shift 2 ;;
        -x) ringreps="$2"; shift 2 ;;
        -d) divisor="$2"; shift 2 ;;
        --scratch-path) scratch="$2"; shift 2 ;;
        --bench) bench="$2"; build=0; shift 2 ;;
        --from) from="$2"; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;
        *) out="$1"; shift ;;
    esac
done
[ -n "$out" ] || { echo "$usage" >&2; exit 2; }
case "$runs$ringreps$divisor" in
    *[!0-9]*) echo "RUNS, RING_REPEATS and DIVISOR must be integers" >&2; exit 2 ;;
esac
[ "$runs" -ge 1 ] && [ "$ringreps" -ge 1 ] && [ "$divisor" -ge 1 ] \
    || { echo "RUNS, RING_REPEATS and DIVISOR must be >= 1" >&2; exit 2; }
command -v python3 >/dev/null || { echo "missing python3" >&2; exit 1; }

root="$(cd "$(dirname "$0")/../.." && pwd)"
prefix="sluicebench$$"
dpdk_args=(--no-huge --no-pci -l 0-1 -m 512 --file-prefix "$prefix")
window=$(python3 -c "print(5 / $divisor)")

# --- build sluice-bench (release) -------------------------------------------------------
build_bench() {
    local flags=(-c release --product sluice-bench)
    [ -n "$scratch" ] && flags+=(--scratch-path "$scratch")
    if [ "$build" = 1 ]; then (cd "$root" && swift build "${flags[@]}" >&2); fi
    [ -n "$bench" ] || bench="$(cd "$root" && swift build "${flags[@]}" --show-bin-path)/sluice-bench"
    [ -x "$bench" ] || { echo "no $bench" >&2; exit 1; }
}

# --- the time-window shim for mempool_perf_autotest -------------------------------------
build_shim() {
    cat > "$work/tscshim.c" <<'SHIM'
/* Divide DPDK's TSC frequency by $TSC_HZ_DIVISOR: timed windows get that much shorter. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
uint64_t rte_get_tsc_hz(void) {
    static uint64_t (*real)(void);
    static uint64_t divisor = 1;
    if (!real) {
        real = (uint64_t (*)(void))dlvsym(RTLD_NEXT, "rte_get_tsc_hz", "DPDK_23");
        const char *s = getenv("TSC_HZ_DIVISOR");
        divisor = s ? strtoull(s, 0, 10) : 1;
        if (divisor == 0) divisor = 1;
    }
    return real() / divisor;
}
SHIM
    echo 'DPDK_23 { global: rte_get_tsc_hz; local: *; };' > "$work/tscshim.map"
    gcc -O2 -shared -fPIC -Wl,--version-script="$work/tscshim.map" \
        -o "$work/libtscshim.so" "$work/tscshim.c" -ldl
}

# --- one run of each side ----------------------------------------------------------------
dpdk_ring() {
    dpdk-test "${dpdk_args[@]}" < <(echo ring_perf_autotest) > "$work/dpdk-ring-$1.txt" 2>&1
    grep -q "Test OK" "$work/dpdk-ring-$1.txt" \
        || { echo "ring_perf_autotest failed, see $work/dpdk-ring-$1.txt" >&2; exit 1; }
}

dpdk_mempool() {
    local f="$work/dpdk-mempool-$1.txt" pid waited=0
    TSC_HZ_DIVISOR="$divisor" LD_PRELOAD="$work/libtscshim.so" \
        dpdk-test "${dpdk_args[@]}" < <(echo mempool_perf_autotest) > "$f" 2>&1 &
    pid=$!
    # Stop after the "with cache" section: the next section header marks its end.
    until grep -q "with user-owned cache" "$f" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
        waited=$((waited + 1))
        if [ "$waited" -gt 3600 ]; then echo "mempool_perf_autotest takes too long" >&2; break; fi
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -q "with user-owned cache" "$f" \
        || { echo "mempool_perf_autotest did not finish its cache section, see $f" >&2; exit 1; }
}

sluice_ring() { "$bench" ring --sizes 8,32 --cpus 0,1 > "$work/sluice-ring-$1.txt"; }

sluice_mempool() {
    "$bench" mempool --cores 1,2 --bulk 1,32 --keep 32,128,512 --seconds "$window" --cpus 0,1 \
        > "$work/sluice-mempool-$1.txt"
}

# --- rounds: alternate which side goes first ---------------------------------------------
run_rounds() {
    {
        echo "divisor=$divisor"
        echo "window=$window"
        echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "started=$(date -u '+%Y-%m-%d %H:%M UTC')"
    } > "$work/meta"
    local i j
    for i in $(seq 1 "$runs"); do
        echo "round $i/$runs" >&2
        for j in $(seq 1 "$ringreps"); do
            if [ $(((i + j) % 2)) = 0 ]; then
                dpdk_ring "$i.$j"; sluice_ring "$i.$j"
            else
                sluice_ring "$i.$j"; dpdk_ring "$i.$j"
            fi
        done
        if [ $((i % 2)) = 1 ]; then
            dpdk_mempool "$i"; sluice_mempool "$i"
        else
            sluice_mempool "$i"; dpdk_mempool "$i"
        fi
    done
    {
        echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "ended=$(date -u '+%Y-%m-%d %H:%M UTC')"
    } >> "$work/meta"
}

if [ -n "$from" ]; then
    work="$from"
    [ -f "$work/meta" ] || { echo "$work/meta is missing: not a raw output directory" >&2; exit 1; }
else
    for tool in dpdk-test gcc swift; do
        command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y dpdk gcc)" >&2; exit 1; }
    done
    build_bench
    work="$(mktemp -d /tmp/ring-mempool.XXXXXX)"
    echo "raw outputs: $work" >&2
    trap 'rm -rf "/var/run/dpdk/$prefix"' EXIT
    build_shim
    run_rounds
fi

# --- medians and the table ---------------------------------------------------------------
python3 - "$work" > "$out" <<'EOF'
import glob, re, statistics, subprocess, sys
work = sys.argv[1]
meta = dict(line.rstrip("\n").split("=", 1) for line in open(f"{work}/meta") if "=" in line)
divisor, window = int(meta["divisor"]), meta["window"]

def ring_rows(path, prefix):
    """{(section, label): value} for the lines of one API family (the first section set)."""
    rows, section = {}, None
    for line in open(path):
        line = line.strip()
        m = re.match(r"### Testing (.*) ###", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(re.escape(prefix) + r": (.*): ([0-9.]+)$", line)
        if m and (section, m.group(1)) not in rows:
            rows[(section, m.group(1))] = float(m.group(2))
        m = re.match(r"Total count \(size: (\d+)\): (\d+)", line)
        if m and ("all", m.group(1)) not in rows:
            rows[("all", m.group(1))] = float(m.group(2))
    return rows

def mempool_rows(path, scale):
    rows, on = {}, False
    for line in open(path):
        if line.startswith("start performance test"):
            on = "(with cache)" in line
            continue
        m = re.match(r"mempool_autotest cache=\d+ cores=(\d+) n_get_bulk=(\d+) n_put_bulk=(\d+) "
                     r"n_keep=(\d+) constant_n=0 rate_persec=(\d+)", line)
        if on and m:
            key = tuple(int(x) for x in m.groups()[:4])
            rows.setdefault(key, int(m.group(5)) * scale)   # first of DPDK's "2" and "max" rows
    return rows

def collect(kind, side):
    out = []
    for p in sorted(glob.glob(f"{work}/{side}-{kind}-*.txt")):
        if kind == "ring":
            out.append(ring_rows(p, "legacy APIs" if side == "dpdk" else "sluice"))
        else:
            out.append(mempool_rows(p, divisor if side == "dpdk" else 1))
    return out

def stats(samples, key):
    vals = [s[key] for s in samples if key in s]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)

def fmt(v, big):
    if not big:
        return f"{v:.1f}"
    if v >= 1e7:
        return f"{v / 1e6:.0f}M"
    return f"{v / 1e6:.1f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"

def cell(st, big):
    if st is None:
        return "–"
    med, lo, hi = st
    return f"**{fmt(med, big)}** ({fmt(lo, big)}–{fmt(hi, big)})"

lines = []
def row(name, unit, d, s, lower_is_better, big=False):
    if d and s:
        # Medians, and best against best (least disturbed run of each side).
        speed = d[0] / s[0] if lower_is_better else s[0] / d[0]
        best = d[1] / s[1] if lower_is_better else s[2] / d[2]
        ratio, bestratio = f"**{speed:.2f}×**", f"{best:.2f}×"
    else:
        ratio = bestratio = "–"
    lines.append(f"| {name} | {unit} | {cell(d, big)} | {cell(s, big)} | {ratio} | {bestratio} |")

dr, sr = collect("ring", "dpdk"), collect("ring", "sluice")
dm, sm = collect("mempool", "dpdk"), collect("mempool", "sluice")

turn = "cycles / enq+deq"
header = "| DPDK 22.11 median (min–max) | Sluice median (min–max) | Sluice speed vs DPDK, medians | best vs best |"
lines.append("| Ring test | Unit " + header)
lines.append("|---|---|---|---|---|---|")
for mode in ("SP/SC", "MP/MC"):
    row(f"1 core, {mode} single element", turn, stats(dr, ("single element enq/deq", f"{mode}: single")),
        stats(sr, ("single element enq/deq", f"{mode}: single")), True)
    for size in (8, 32):
        for kind in ("burst", "bulk"):
            key = (f"{kind} enq/deq", f"{mode}: {kind} (size: {size})")
            row(f"1 core, {mode} {kind} {size}", f"{turn} of {size}", stats(dr, key), stats(sr, key), True)
    key = ("empty bulk deq", f"{mode}: bulk (size: 8)")
    row(f"1 core, {mode} empty bulk-8 dequeue", "cycles / call", stats(dr, key), stats(sr, key), True)
for size in (8, 32):
    for mode in ("SP/SC", "MP/MC"):
        key = ("using two physical cores", f"{mode}: bulk (size: {size})")
        row(f"2 cores, {mode} bulk {size} (enq cpu0, deq cpu1)", "cycles / entry (enq + deq)",
            stats(dr, key), stats(sr, key), True)
for size in (8, 32):
    row(f"2 cores, both MP/MC bulk {size} enq+deq on one ring", "turns / 100 ms (sum)",
        stats(dr, ("all", str(size))), stats(sr, ("all", str(size))), False, big=True)

lines.append("")
lines.append("| Mempool test (per-thread cache) | Unit " + header)
lines.append("|---|---|---|---|---|---|")
for cores in (1, 2):
    for bulk in (1, 32):
        for keep in (32, 128, 512):
            key = (cores, bulk, bulk, keep)
            row(f"{cores} core{'s' if cores > 1 else ''}, get/put bulk {bulk}, n_keep {keep}",
                "objects / s", stats(dm, key), stats(sm, key), False, big=True)

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"

print("\n".join(lines))
print()
print(f"- Date: {meta.get('started', '?')} to {meta.get('ended', '?')}; {len(dm)} rounds "
      f"({len(dr)} ring runs and {len(dm)} mempool runs per side), DPDK and Sluice alternated; "
      f"mempool window {window} s per row on both sides (DPDK's TIME_S scaled by 1/{divisor}).")
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
dpdk_version = sh("dpkg-query -W -f='${Version}' dpdk")
swift_version = sh("swift --version 2>&1 | head -1")
print(f"- Host: {sh('nproc')} vCPUs ({cpu}), kernel {sh('uname -r')}; "
      f"load average (1, 5, 15 min) before {meta.get('load_before', '?')}, after {meta.get('load_after', '?')}.")
print(f"- DPDK {dpdk_version} (`dpdk-test`, legacy 8-byte-pointer ring API); "
      f"{swift_version}, `swift build -c release`.")
print("- Speed vs DPDK: DPDK cycles ÷ Sluice cycles, or Sluice rate ÷ DPDK rate; above 1× Sluice is faster. "
      "Best vs best compares each side's least disturbed run (lowest cycles, highest rate).")
EOF
cat "$out"
echo "table written to $out (raw outputs in $work)" >&2
