#!/usr/bin/env bash
# Sluice's NVMe driver (VFIO, user space) against the guest kernel's nvme driver, in the same
# guest on the same emulated controller (issue #12, step 8).
#
#   tools/bench/nvme-vs-kernel.sh [OUT.md]        (default tools/bench/results-nvme.md)
#
# One q35 TCG guest (2 vCPUs, intel-iommu, QEMU's NVMe controller SN1234 with one namespace of
# NS_MB MiB of random bytes), booted with tools/guest/nvme-lib.sh as test-nvme.sh boots it;
# init.sh's role nvme-bench (tools/guest/nvme-bench-guest.sh) runs ROUNDS rounds of:
#
#   kernel  the controller on the kernel's nvme driver: tools/guest/kload (static C, built
#           here with gcc -static and liburing.a) reads 4 KiB at random aligned offsets of
#           /dev/nvme0n1 with O_DIRECT through io_uring, QD reads in flight, on cpu 0
#   poll    the controller on vfio-pci, `sluice --cores 1 --poll 0` exporting SN1234:n1
#           (its worker busy-polls cpu 1), driven by `sluice-gen blk load --rw randread
#           --bs 4k --iodepth QD --seconds SECS+2 --json --event` on cpu 0 (sleeping on its call
#           eventfd, as a guest's interrupt-driven virtio-blk driver would; GEN_POLL=1: without
#           --event, busy-polling its used ring, so that both vCPUs spin)
#   event   the same with sluice in event mode (no --poll; MSI-X)
#
# for each queue depth in DEPTHS; each driver runs SECS+2 seconds; odd rounds start with the
# kernel, even rounds with sluice. Over a window of SECS seconds in the middle of each run's
# load the guest counts /proc/stat's user+nice+system+irq+softirq jiffies (both vCPUs, USER_HZ
# 100): guest CPU µs per I/O = busy jiffies × 10 ms / (IOPS × window); likewise the driver's
# and sluice's own CPU time. For sluice also: sluice-stat --json before and after (worker busy_cycles, blk reads
# and latency buckets, nvme doorbells) and the guest's TSC rate (kload --tsc), so that
# sluice's own busy cycles per I/O stand next to the wall time per I/O. On the host, a sampler
# follows the guest's console and, at each run's begin and end marker, reads QEMU's CPU time
# (/proc/PID/stat, exited threads included) and its vCPU threads' ("CPU n/TCG"): what is left
# is the device model (main loop: the NVMe controller, IOMMU, interrupts; the I/O worker
# threads reading the image), set per I/O against sluice's cycles.
#
# Under TCG the guest kernel finds no usable TSC and reads the time from the emulated HPET (a
# trip into QEMU's device model per clock_gettime, under its big lock, which the NVMe model
# needs too); sluice and sluice-gen read the clock per request, kload twice. GUEST_CLOCK=tsc
# (default) boots the guest with clocksource=tsc tsc=reliable, as on KVM, where reading the
# clock costs no exit; GUEST_CLOCK=default keeps the kernel's choice (hpet).
#
# Environment: SECS=4 ROUNDS=3 DEPTHS="1 32" NS_MB=128 MEM=1G SMP=2 GEN_POLL=0 GUEST_CLOCK=tsc;
#   SLUICE_BIN_DIR (sluice, sluice-gen, sluice-stat; default <repo>/.build/release, built when
#   missing);
#   SLUICE_NVME_GUEST_DIR (as test-nvme.sh); KEEP_LOGS=1 keeps the run directory;
#   MAX_OTHER=0.3: a run during which other host processes used more cores than this is left
#   out of the medians where its cell has cleaner ones;
#   RENDER_FROM=DIR (rewrite OUT.md from a kept run directory; nothing runs).
# Exit: 0 done, 1 error, 77 skipped (one `SKIP: reason` line).
# shellcheck disable=SC2034  # SLUICE_KEEP: read by lib.sh's cleanup
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/tools/bench/results-nvme.md}
SECS=${SECS:-4}; ROUNDS=${ROUNDS:-3}; DEPTHS=${DEPTHS:-1 32}; NS_MB=${NS_MB:-128}
MEM=${MEM:-1G}; SMP=${SMP:-2}; GUEST_CLOCK=${GUEST_CLOCK:-tsc}; GEN_POLL=${GEN_POLL:-0}
case "$GUEST_CLOCK" in tsc|default) ;; *) echo "nvme-vs-kernel: GUEST_CLOCK is tsc or default" >&2; exit 1 ;; esac
RENDER_FROM=${RENDER_FROM:-}
case "$SECS$ROUNDS$NS_MB${DEPTHS// /}$GEN_POLL" in *[!0-9]*) echo "nvme-vs-kernel: SECS, ROUNDS, NS_MB and DEPTHS must be integers" >&2; exit 1 ;; esac
[ "$SMP" -ge 2 ] || { echo "nvme-vs-kernel: SMP must be at least 2 (the driver on cpu 0, sluice on cpu 1)" >&2; exit 1; }

# shellcheck source=tools/guest/lib.sh
source "$ROOT/tools/guest/lib.sh"
# shellcheck source=tools/guest/nvme-lib.sh
source "$ROOT/tools/guest/nvme-lib.sh"

if [ -n "$RENDER_FROM" ]; then
    WORK=$RENDER_FROM
    if [ ! -f "$WORK/markers.txt" ] || [ ! -f "$WORK/meta.sh" ]; then echo "no markers.txt/meta.sh in $WORK" >&2; exit 1; fi
else
    sl_need_root "QEMU guests, vfio-pci in the guest"
    sl_require qemu-system-x86_64 qemu-system-x86
    sl_require gcc gcc
    sl_require cpio cpio
    sl_require python3 python3
    [ -e /usr/include/liburing.h ] || sl_skip "no liburing.h (apt-get install liburing-dev): kload is built with it"
    if [ -z "${SLUICE_BIN_DIR:-}" ]; then
        SLUICE_BIN_DIR=$ROOT/.build/release
        for p in sluice sluice-gen sluice-stat; do
            [ -x "$SLUICE_BIN_DIR/$p" ] || (cd "$ROOT" && swift build -c release --product "$p" >&2) ||
                { echo "nvme-vs-kernel: swift build -c release --product $p failed" >&2; exit 1; }
        done
    fi
    sl_find_sluice
    [ -x "$SLUICE_BIN_DIR/sluice-gen" ] || sl_skip "no sluice-gen in $SLUICE_BIN_DIR"
    sl_setup nvbench
    WORK=$SL_RUN
    [ "${KEEP_LOGS:-0}" = 1 ] && SLUICE_KEEP=1
fi

# ---------------------------------------------------------------------------
# The run
if [ -z "$RENDER_FROM" ]; then
    load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
    busy_at_start=$(ps -eo pcpu,psr,args --sort=-pcpu | awk 'NR > 1 && NR <= 6 { printf "%s%% cpu%s %s\n", $1, $2, substr($0, index($0, $3), 90) }')
    started=$(date -u '+%Y-%m-%d %H:%M UTC')
    t_start=$(date +%s)
    rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')
    dirty=$(cd "$ROOT" && git status --porcelain -- Sources Package.swift 2>/dev/null | wc -l)
    built=$(date -u -r "$SLUICE_BIN_DIR/sluice" '+%Y-%m-%d %H:%M UTC')
    sl_log "nvme vs kernel: SECS=$SECS ROUNDS=$ROUNDS DEPTHS='$DEPTHS' NS_MB=$NS_MB, load $load_at_start; run dir $WORK"

    nvme_build_guest || { echo "nvme-vs-kernel: build-guest.sh $NVME_GUEST_DIR failed" >&2; exit 1; }
    NS1=$WORK/ns1.img
    head -c $((NS_MB * 1048576)) /dev/urandom >"$NS1"

    # The host-side sampler: at every NVB-MARK line of the console, QEMU's process CPU time,
    # each thread's (name, utime+stime ticks) and the host's busy ticks, one JSON line.
    cat >"$WORK/sampler.py" <<'EOF'
import json, os, sys, time
log, pid, out = sys.argv[1], sys.argv[2], sys.argv[3]
def ticks(path):
    s = open(path).read()
    return s[s.index("(") + 1:s.rindex(")")], s[s.rindex(")") + 2:].split()
def sample():
    name, f = ticks("/proc/%s/stat" % pid)
    threads = {}
    for tid in os.listdir("/proc/%s/task" % pid):
        try:
            n, tf = ticks("/proc/%s/task/%s/stat" % (pid, tid))
        except (OSError, ValueError):
            continue
        threads[tid] = [n, int(tf[11]) + int(tf[12])]
    cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return {"process": int(f[11]) + int(f[12]), "threads": threads,
            "host_busy": sum(cpu) - cpu[3] - cpu[4], "host_total": sum(cpu)}
pos, buf = 0, b""
with open(out, "w") as o:
    while os.path.exists("/proc/%s" % pid):
        try:
            with open(log, "rb") as f:
                f.seek(pos); chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        pos += len(chunk); buf += chunk
        *lines, buf = buf.split(b"\n")
        for l in lines:
            i = l.find(b"NVB-MARK ")
            if i >= 0:
                try:
                    s = sample()
                except (OSError, ValueError):
                    continue
                s["mark"] = l[i + 9:].decode(errors="replace").strip()
                o.write(json.dumps(s) + "\n"); o.flush()
        time.sleep(0.05)
EOF
    OVL=$WORK/ovl
    mkdir -p "$OVL/usr/bin" "$OVL/etc/sluice/nvbench"
    gcc -O2 -Wall -static -o "$OVL/usr/bin/kload" "$ROOT/tools/guest/kload.c" -luring ||
        { echo "nvme-vs-kernel: gcc -static kload.c -luring failed (liburing-dev, libc6-dev)" >&2; exit 1; }
    install -m 0644 "$ROOT/tools/guest/nvme-guest.sh" "$OVL/etc/sluice/nvme-guest.sh"
    install -m 0644 "$ROOT/tools/guest/nvme-bench-guest.sh" "$OVL/etc/sluice/nvme-bench-guest.sh"
    echo "$SECS $ROUNDS $GEN_POLL $DEPTHS" >"$OVL/etc/sluice/nvbench/plan"
    # One worker (cpu 1, from --cores), one blk queue of 256 entries; the controller's I/O
    # queue keeps its default depth (256) and MSI-X, which event mode sleeps on.
    cat >"$OVL/etc/sluice/nvbench/poll.ini" <<'EOF'
; written by tools/bench/nvme-vs-kernel.sh (cores and --poll come from the command line)
[dataplane]
socket-dir = /run/nvb
instance = nvb

[nvme]
pci = 0000:00:04.0
interrupts = msix

[blk n1]
device = SN1234:n1
socket = n1.sock
queues = 1
queue-size = 256
serial = nvb-n1
EOF
    nvme_add_binaries "$OVL" sluice sluice-gen sluice-stat
    nvme_pack "$OVL"
    sl_log "archive ready: $NVME_SIZES"

    BOOT_TIMEOUT=$((120 + ROUNDS * (3 * $(wc -w <<<"$DEPTHS") * (SECS + 10) + 60)))
    t0=$(date +%s)
    CLOCK_APPEND=""
    [ "$GUEST_CLOCK" = tsc ] && CLOCK_APPEND=" clocksource=tsc tsc=reliable"
    nvme_start_vm nvb "$MEM" "$SMP" "sl.role=nvme-bench sl.timeout=$BOOT_TIMEOUT$CLOCK_APPEND" "$NS1"
    VM=$SL_LAST_PID
    python3 "$WORK/sampler.py" "$WORK/nvb.log" "$VM" "$WORK/host.jsonl" </dev/null 2>"$WORK/sampler.err" &
    sl_track_pid $!
    rc=0
    line=$(sl_wait_marker "$WORK/nvb.log" 'SLUICE-GUEST: DONE' "$BOOT_TIMEOUT" 0 "$VM") || rc=$?
    guest_secs=$(( $(date +%s) - t0 ))
    for _ in $(seq 100); do sl_alive "$VM" || break; sleep 0.1; done
    sl_stop_pid "$VM"
    sl_markers "$WORK/nvb.log" >"$WORK/markers.txt"
    if [ "$rc" != 0 ]; then
        grep -v -E 'NVB-(STAT|RUN)' "$WORK/markers.txt" | tail -n 20 >&2
        echo "nvme-vs-kernel: the guest did not finish (no DONE line after $BOOT_TIMEOUT s); run dir kept" >&2
        SLUICE_KEEP=1
        exit 1
    fi
    sl_log "guest ran $guest_secs s: $line"
    load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)
    elapsed=$(( $(date +%s) - t_start ))
    machine="$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r), $(qemu-system-x86_64 --version | head -n 1)"
    command_line=$(printf 'SECS=%s ROUNDS=%s DEPTHS="%s" NS_MB=%s GEN_POLL=%s GUEST_CLOCK=%s tools/bench/nvme-vs-kernel.sh' \
        "$SECS" "$ROUNDS" "$DEPTHS" "$NS_MB" "$GEN_POLL" "$GUEST_CLOCK")
    cp "$OVL/etc/sluice/nvbench/poll.ini" "$WORK/poll.ini"
    HOST_CPUS=$(nproc)
    declare -p HOST_CPUS started elapsed guest_secs rev dirty built load_at_start load_at_end busy_at_start SECS ROUNDS \
        DEPTHS NS_MB MEM SMP GEN_POLL GUEST_CLOCK machine command_line SLUICE_BIN_DIR >"$WORK/meta.sh"
else
    # shellcheck disable=SC1091
    . "$WORK/meta.sh"
fi

# ---------------------------------------------------------------------------
# The report (nvme-report.py): medians over the rounds; ratios sluice / kernel.
HOST_CPUS=${HOST_CPUS:-$(nproc)}
MAX_OTHER=${MAX_OTHER:-0.3}
export MAX_OTHER HOST_CPUS started elapsed guest_secs rev dirty built load_at_start load_at_end busy_at_start SECS ROUNDS \
    DEPTHS NS_MB MEM SMP GEN_POLL GUEST_CLOCK machine command_line SLUICE_BIN_DIR
python3 "$HERE/nvme-report.py" "$WORK" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
sl_log "wrote $OUT"
