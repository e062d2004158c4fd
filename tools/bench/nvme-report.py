#!/usr/bin/env python3
"""The report of tools/bench/nvme-vs-kernel.sh: reads a run directory (markers.txt, the
guest's console markers; host.jsonl, the host sampler's readings of QEMU's threads) and the
run's facts from the environment (meta.sh, exported by the script), writes OUT.md.

    nvme-report.py RUN_DIR OUT.md

Medians over the rounds; ratios are Sluice / kernel. Per-I/O CPU figures are taken over each
run's accounting window (the middle SECS seconds of the driver's load, see
tools/guest/nvme-bench-guest.sh) with I/Os = the driver's IOPS x the window's length.
"""
import json
import os
import re
import statistics
import sys

work, out = sys.argv[1], sys.argv[2]
meta = os.environ
marks = [l.rstrip("\n") for l in open(os.path.join(work, "markers.txt"))]


def kv(s):
    return dict(re.findall(r"(\w+)=([^ |]+)", s))


# ---- the guest's markers ----
tsc, ctrl, guest_cpus = None, "", 2
fails, runs, stats = [], [], {}
for l in marks:
    body = l[len("SLUICE-GUEST: "):] if l.startswith("SLUICE-GUEST: ") else l
    head, _, tail = body.partition(" | ")
    if head.startswith("NVB-TSC"):
        tsc = float(kv(head)["hz"])
    elif head.startswith("NVB-CTRL"):
        ctrl = head[len("NVB-CTRL "):]
        guest_cpus = int(kv(head).get("cpus", "2"))
    elif head.startswith(("NVB-FAIL", "ERROR", "MODULES-FAIL")):
        fails.append(body)
    elif head.startswith("NVB-RUN"):
        r = kv(head)
        r["result"] = tail
        runs.append(r)
    elif head.startswith("NVB-STAT"):
        k = kv(head)
        try:
            stats[(k["round"], k["path"], k["qd"], k["when"])] = json.loads(tail)["counters"]
        except (ValueError, KeyError):
            fails.append("unreadable sluice-stat output: " + tail[:200])

# ---- the host sampler: NVB-MARK text -> reading ----
host = {}
try:
    for l in open(os.path.join(work, "host.jsonl")):
        j = json.loads(l)
        host[j["mark"]] = j
except FileNotFoundError:
    pass
host_cpus = int(meta.get("HOST_CPUS", "2"))


def counter_sum(c, pattern):
    return sum(v for k, v in c.items() if re.fullmatch(pattern, k))


def hist_quantile(delta, q):
    """delta: {bucket's upper bound in µs (None: +Inf): requests}; the bound of quantile q."""
    total = sum(delta.values())
    if total == 0:
        return None
    acc = 0
    for ub in sorted(delta, key=lambda x: float("inf") if x is None else x):
        acc += delta[ub]
        if acc >= q * total:
            return ub
    return None


def host_view(row):
    key = "round=%s path=%s qd=%d" % (row["round"], row["path"], row["qd"])
    b, e = host.get("begin " + key), host.get("end " + key)
    if not b or not e:
        return
    vcpu = sum(e["threads"][t][1] - b["threads"][t][1] for t in e["threads"]
               if t in b["threads"] and e["threads"][t][0].startswith("CPU "))
    proc = e["process"] - b["process"]
    secs = (e["host_total"] - b["host_total"]) / 100 / host_cpus
    if secs <= 0:
        return
    row["h_vcpu_us"] = vcpu * 10000 / row["win_ios"]
    row["h_emu_us"] = (proc - vcpu) * 10000 / row["win_ios"]
    row["h_emu_cores"] = (proc - vcpu) / 100 / secs
    row["h_vcpu_cores"] = vcpu / 100 / secs
    row["h_other_cores"] = ((e["host_busy"] - b["host_busy"]) - proc) / 100 / secs


rows = []
for r in runs:
    path, qd, rnd = r["path"], int(r["qd"]), r["round"]
    row = {"path": path, "qd": qd, "round": rnd}
    if path == "kernel":
        k = kv(r["result"])
        row.update(iops=float(k["iops"]), ios=int(k["ios"]), mean=float(k["mean_us"]), p50=float(k["p50_us"]),
                   p99=float(k["p99_us"]), errors=int(k["errors"]))
    else:
        j = json.loads(r["result"])
        row.update(iops=j["iops"], ios=j["requests"], mean=j["mean_us"], p50=j["p50_us"], p99=j["p99_us"],
                   errors=j["errors"])
        b, a = stats.get((rnd, path, str(qd), "before")), stats.get((rnd, path, str(qd), "after"))
        if b and a:
            def d(p):
                return counter_sum(a, p) - counter_sum(b, p)
            row["sluice_reqs"] = d(r"blk\.n1\.(reads|writes)")
            row["busy_cycles"] = d(r"worker\.\d+\.busy_cycles")
            row["idle_cycles"] = d(r"worker\.\d+\.idle_cycles")
            row["doorbells"] = d(r"nvme\..*\.doorbells")
            row["errors"] += d(r"nvme\..*\.(errors|timeouts)") + d(r"blk\.n1\.errors\..*")
            hist = {}
            for key in a:
                m = re.fullmatch(r"blk\.n1\.latency_us\.(lt|ge)_(\d+)", key)
                if m:
                    hist[int(m.group(2)) if m.group(1) == "lt" else None] = a[key] - b.get(key, 0)
            row["s_p50"], row["s_p99"] = hist_quantile(hist, 0.5), hist_quantile(hist, 0.99)
            if row["sluice_reqs"]:
                row["cyc_io"] = row["busy_cycles"] / row["sluice_reqs"]
                row["db_io"] = row["doorbells"] / row["sluice_reqs"]
    win = int(r["win_cs"]) / 100
    row.update(win=win, in_load=r["in_load"] == "1", busy_j=int(r["busy_j"]), total_j=int(r["total_j"]),
               idle_j=int(r.get("idle_j", "0")),
               irq_j=int(r["irq_j"]), softirq_j=int(r["softirq_j"]), sluice_j=int(r["sluice_j"]), drv_j=int(r["drv_j"]))
    row["win_ios"] = row["iops"] * win
    if row["win_ios"] > 0:
        row["tick_us_io"] = row["busy_j"] * 10000 / row["win_ios"]
        row["nonidle_j"] = guest_cpus * win * 100 - row["idle_j"]
        row["cpu_us_io"] = row["nonidle_j"] * 10000 / row["win_ios"]
        row["busy_vcpus"] = row["nonidle_j"] / (win * 100)
        row["drv_us_io"] = row["drv_j"] * 10000 / row["win_ios"]
        if path != "kernel":
            row["sluice_us_io"] = row["sluice_j"] * 10000 / row["win_ios"]
        host_view(row)
    rows.append(row)


# A run is clean when other host processes used at most MAX_OTHER cores during its window (the
# host sampler's reading; a run without one counts as clean). Medians use a cell's clean runs
# when it has any, else all of its runs.
max_other = float(meta.get("MAX_OTHER", "0.3"))
for r in rows:
    r["clean"] = r.get("h_other_cores") is None or r["h_other_cores"] <= max_other


def cell(path, qd):
    c = [r for r in rows if r["path"] == path and r["qd"] == qd]
    return [r for r in c if r["clean"]] or c


def values(path, qd, key):
    return [r[key] for r in cell(path, qd) if r.get(key) is not None]


def med(path, qd, key):
    v = values(path, qd, key)
    return statistics.median(v) if v else None


def spread(path, qd, key, f):
    v = values(path, qd, key)
    return " (%s–%s)" % (f % min(v), f % max(v)) if len(v) > 1 else ""


def fmt(v, f="%.1f"):
    return "NA" if v is None else f % v


def ratio(a, b):
    return "NA" if not a or b is None else "%.2f" % (b / a)


def kiops(v):
    return "NA" if v is None else "%.1fk" % (v / 1000)


def runs(path, qd):
    c = [r for r in rows if r["path"] == path and r["qd"] == qd]
    return "%d / %d" % (sum(1 for r in c if r["clean"]), len(c))


def busy_us(path, qd):
    c = med(path, qd, "cyc_io")
    return c / tsc * 1e6 if (c is not None and tsc) else None


depths = [int(x) for x in meta["DEPTHS"].split()]
gen_poll = meta.get("GEN_POLL") == "1"
paths = [("kernel", "kernel nvme driver (kload, io_uring)"),
         ("poll", "Sluice `--poll 0`, sluice-gen " + ("busy-polling" if gen_poll else "`--event`")),
         ("event", "Sluice event mode (MSI-X), sluice-gen `--event`")]
o = []
w = o.append
w("# NVMe: Sluice's VFIO driver vs the guest kernel's nvme driver")
w("")
w("Generated by `%s` on %s in %s s (the guest ran %s s)." % (
    meta["command_line"], meta["started"], meta["elapsed"], meta["guest_secs"]))
w("")
w("- Host: %s. Guest: q35 TCG, %s vCPUs, %s, intel-iommu, QEMU NVMe controller SN1234 with one %s MiB namespace"
  " (a raw file of random bytes, in the host's page cache after the first reads)." % (
      meta["machine"], meta["SMP"], meta["MEM"], meta["NS_MB"]))
w("- In the guest: %s; TSC %s." % (ctrl, "%.3f GHz (kload --tsc)" % (tsc / 1e9) if tsc else "unknown"))
w("- Sluice binaries in `%s` built %s (HEAD %s%s)." % (
    meta["SLUICE_BIN_DIR"], meta["built"], meta["rev"],
    "" if meta["dirty"] == "0" else ", plus %s uncommitted file(s) under Sources/ and Package.swift" % meta["dirty"]))
# The busiest processes at the start, those that used at least 1 % of a CPU.
busiest = [l for l in meta["busy_at_start"].splitlines() if re.match(r"\s*([0-9.]+)%", l)
           and float(re.match(r"\s*([0-9.]+)%", l).group(1)) >= 1.0]
w("- Load average at start **%s**, at end %s (a %d-CPU host shared with other builds and tests); %s" % (
    meta["load_at_start"], meta["load_at_end"], host_cpus,
    "busiest processes at start:" if busiest else "no process used 1 % of a CPU or more at the start."))
if busiest:
    w("  ```")
    for l in busiest:
        w("  " + l)
    w("  ```")
w("- %s round(s); each driver runs %d s of 4 KiB random reads over the whole namespace, CPU accounted over %s s in the"
  " middle of it; odd rounds kernel first, even rounds Sluice first. Medians over the rounds, (min–max) where there are"
  " several; a run during which other host processes used more than %.2f cores is left out where its cell has"
  " others (clean / runs)." % (meta["ROUNDS"], int(meta["SECS"]) + 2, meta["SECS"], max_other))
if any(not r["in_load"] for r in rows):
    w("- **%d run(s) ended before their window closed** (see in load = no below)." % sum(1 for r in rows if not r["in_load"]))
if fails:
    w("- **Failures in the guest:** " + "; ".join(f[:300] for f in fails))
w("")
w("## IOPS and guest CPU per I/O")
w("")
w("| path | QD | IOPS | ratio | p50 / p99 µs | guest busy vCPUs | guest CPU µs/IO | ratio | (ticks) µs/IO | ratio | driver CPU µs/IO | Sluice CPU µs/IO | clean / runs |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for qd in depths:
    ki, kc, kt = med("kernel", qd, "iops"), med("kernel", qd, "cpu_us_io"), med("kernel", qd, "tick_us_io")
    for p, name in paths:
        i, c, t = med(p, qd, "iops"), med(p, qd, "cpu_us_io"), med(p, qd, "tick_us_io")
        k = p == "kernel"
        w("| %s | %d | %s%s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, qd, kiops(i), spread(p, qd, "iops", "%.0f"), "–" if k else "**" + ratio(ki, i) + "**",
            fmt(med(p, qd, "p50")), fmt(med(p, qd, "p99")), fmt(med(p, qd, "busy_vcpus"), "%.2f"), fmt(c),
            "–" if k else "**" + ratio(kc, c) + "**", fmt(t), "–" if k else ratio(kt, t), fmt(med(p, qd, "drv_us_io")),
            "–" if k else fmt(med(p, qd, "sluice_us_io")), runs(p, qd)))
w("")
w("IOPS and latency are the driver's (kload: submission to reaping; sluice-gen: publishing a request to the poll that"
  " found it used). Ratios are Sluice / kernel (> 1 better for IOPS, < 1 better for CPU). Guest CPU: all of the"
  " guest's time in the window that was not idle — %d vCPUs × window − idle − iowait jiffies (/proc/stat; the kernel"
  " measures idle time, it does not sample it) — per I/O (IOPS × window), everything the guest ran, the driver"
  " program and interrupts included; busy vCPUs = the same / window (at most %d). (ticks): the sampled"
  " user+nice+system+irq+softirq jiffies × 10 ms per I/O instead; under TCG timer ticks are lost on a busy vCPU"
  " (total j in the raw table) and short bursts between idle periods are undersampled, so this column reads low,"
  " most of all for the kernel path. Driver and Sluice CPU: utime+stime of that process (/proc/PID/stat, measured) in"
  " the window, per I/O; interrupt work done while the CPU was idle is charged to neither." % (guest_cpus, guest_cpus))
w("")
w("## Sluice's own cycles per I/O vs the wall time per I/O")
w("")
w("| path | QD | wall µs per I/O (1/IOPS) | Sluice busy cycles/IO | = µs | share of wall | Sluice blk latency p50 / p99 µs (bucket) | doorbells/IO |")
w("|---|---:|---:|---:|---:|---:|---:|---:|")
for qd in depths:
    for p, name in paths[1:]:
        i = med(p, qd, "iops")
        wall = 1e6 / i if i else None
        us = busy_us(p, qd)
        w("| %s | %d | %s | %s%s | %s | %s | < %s / < %s | %s |" % (
            name, qd, fmt(wall), fmt(med(p, qd, "cyc_io"), "%.0f"), spread(p, qd, "cyc_io", "%.0f"), fmt(us, "%.2f"),
            "%.0f %%" % (us / wall * 100) if (us is not None and wall) else "NA",
            fmt(med(p, qd, "s_p50"), "%.0f"), fmt(med(p, qd, "s_p99"), "%.0f"), fmt(med(p, qd, "db_io"), "%.2f")))
w("")
w("Busy cycles: the growth of `worker.N.busy_cycles` (TSC cycles in the worker's loop turns that moved at least one"
  " request or completion — the MMIO doorbell writes included, which under TCG run QEMU's device code in the vCPU"
  " thread) over the whole driver run / the requests Sluice completed (`blk.n1.reads`); µs at the guest's TSC rate."
  " Share of wall: that time against 1/IOPS; the rest of each I/O's time is the emulated controller, the emulated"
  " IOMMU and interrupts, and the driver. Sluice blk latency: Sluice's own histogram (request taken from the ring to"
  " completion published), the upper bound of the power-of-two bucket. Doorbells/IO: MMIO doorbell writes"
  " (`nvme.*.doorbells`) per request.")
w("")
w("## The host's view: QEMU's CPU time per I/O")
w("")
w("| path | QD | wall µs per I/O | device model: host CPU µs/IO (cores) | vCPU threads: host CPU µs/IO (cores) | Sluice busy µs/IO | other host processes (cores) |")
w("|---|---:|---:|---:|---:|---:|---:|")
for qd in depths:
    for p, name in paths:
        i = med(p, qd, "iops")
        w("| %s | %d | %s | %s (%s) | %s (%s) | %s | %s |" % (
            name, qd, fmt(1e6 / i if i else None), fmt(med(p, qd, "h_emu_us")), fmt(med(p, qd, "h_emu_cores"), "%.2f"),
            fmt(med(p, qd, "h_vcpu_us")), fmt(med(p, qd, "h_vcpu_cores"), "%.2f"),
            "–" if p == "kernel" else fmt(busy_us(p, qd), "%.2f"), fmt(med(p, qd, "h_other_cores"), "%.2f")))
w("")
w("Read on the host when the guest's window markers appear on its console (tens of ms late, against %s s windows):"
  " QEMU's process CPU time (/proc/PID/stat, exited threads included) minus its vCPU threads' (`CPU n/TCG`,"
  " `-name …,debug-threads=on`) is the device model — the main loop running the NVMe controller model, the IOMMU and"
  " interrupt emulation, and the I/O worker threads reading the image. The vCPU threads run the TCG-translated guest"
  " code (driver, Sluice, guest kernel) and the MMIO accesses' device code. Cores = CPU seconds / wall seconds. Other"
  " host processes: the host's busy time minus QEMU's (other builds and tests on this shared machine)." % meta["SECS"])
w("")
w("## Raw runs")
w("")
w("| round | path | QD | IOPS | I/Os | errors | mean / p50 / p99 µs | window s | in load | other host cores | clean | busy j (ticks) | idle j | total j | irq j | softirq j | driver j | Sluice j | Sluice requests | busy cycles | idle cycles | doorbells |")
w("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    w("| %s | %s | %d | %.0f | %d | %d | %s / %s / %s | %.2f | %s | %s | %s | %d | %d | %d | %d | %d | %d | %s | %s | %s | %s | %s |" % (
        r["round"], r["path"], r["qd"], r["iops"], r["ios"], r["errors"], fmt(r["mean"]), fmt(r["p50"]), fmt(r["p99"]),
        r["win"], "yes" if r["in_load"] else "**no**", fmt(r.get("h_other_cores"), "%.2f"), "yes" if r["clean"] else "no", r["busy_j"], r["idle_j"], r["total_j"], r["irq_j"], r["softirq_j"], r["drv_j"],
        "–" if r["path"] == "kernel" else r["sluice_j"], r.get("sluice_reqs", "–"), r.get("busy_cycles", "–"),
        r.get("idle_cycles", "–"), r.get("doorbells", "–")))
w("")
w("total j: all jiffies the guest accounted in the window (%d vCPUs × 100 per second if no tick was lost; TCG delays"
  " timer interrupts on a busy host, so fewer)." % guest_cpus)
w("")
w("## Commands")
w("")
w("```")
w("swift build -c release --product sluice; swift build -c release --product sluice-gen; swift build -c release --product sluice-stat")
w(meta["command_line"])
w("```")
w("In the guest (tools/guest/nvme-bench-guest.sh), per round and queue depth QD (S = %d):" % (int(meta["SECS"]) + 2))
w("```")
w("kload --dev /dev/nvme0n1 --qd QD --bs 4096 --secs S --cpu 0 --seed ROUND")
w("sluice --config /etc/sluice/nvbench/poll.ini --cores 1 --poll 0 --instance nvb      # event mode: without --poll")
w("taskset -c 0 sluice-gen blk load --socket /run/nvb/n1.sock --rw randread --bs 4k --iodepth QD --seconds S --seed ROUND --json%s"
  % ("                    # event mode: + --event" if gen_poll else " --event"))
w("sluice-stat --instance nvb --json                                                   # before and after each sluice-gen run")
w("```")
w("```ini")
w(open(os.path.join(work, "poll.ini")).read().rstrip("\n"))
w("```")
with open(out, "w") as f:
    f.write("\n".join(o) + "\n")
