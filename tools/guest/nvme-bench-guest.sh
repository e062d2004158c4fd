# shellcheck shell=sh
# Guest side of tools/bench/nvme-vs-kernel.sh, sourced by init.sh for sl.role=nvme-bench
# after nvme-guest.sh (whose nvt_alive, nvt_messages, nvt_namespaces and nvt_wait_namespaces
# it uses, with init.sh's say, vfio_bind, vfio_driver, now_cs, OK and FAIL). The bench's
# archive carries both files in /etc/sluice/, /usr/bin/kload (tools/guest/kload.c, static),
# sluice, sluice-gen and sluice-stat with their libraries, and /etc/sluice/nvbench/:
#
#   plan        SECS ROUNDS GEN_POLL DEPTHS... (seconds per run, rounds, 1 = sluice-gen busy-polls
#               its used ring while sluice busy-polls (else it sleeps on its call eventfd,
#               --event, in every run), queue depths)
#   poll.ini    sluice's configuration for both runs (the controller's one namespace as
#               socket /run/nvb/n1.sock, instance nvb); poll = `--poll 0`, event = no --poll
#
# One round: the kernel's nvme driver (kload: O_DIRECT 4 KiB random reads through io_uring
# on /dev/nvme0n1, on cpu 0), then the controller on vfio-pci and sluice on cpu 1 (busy
# polling, then event mode), driven by `sluice-gen blk load` on cpu 0, then back to nvme. Odd
# rounds start with the kernel, even ones with sluice.
#
# Each driver runs SECS + 2 seconds; the CPU accounting covers a window of SECS seconds in
# the middle of its load, so that neither its set-up nor sluice's (connecting, mapping the
# driver's memory for the IOMMU, which is slow under TCG) nor the teardown counts: the window
# opens 0.5 s after the I/O started (kernel: after kload started; sluice: once sluice's
# blk.n1.reads counter moved) and closes SECS seconds later, while the driver still runs.
# At both ends: the guest's /proc/stat (busy = user+nice+system+irq+softirq jiffies of both
# vCPUs, USER_HZ 100), the driver's and sluice's utime+stime (/proc/PID/stat) and the uptime.
#
# Markers (`SLUICE-GUEST: ` then):
#   NVB-TSC hz=N                                  (kload --tsc: the guest's TSC rate)
#   NVB-CTRL bdf=... group=N namespaces=N cpus=N clocksource=... available=...
#   NVB-RUN round=R path=kernel|poll|event qd=N win_cs=N busy_j=N idle_j=N total_j=N irq_j=N
#           softirq_j=N sys_j=N user_j=N sluice_j=N drv_j=N in_load=0|1 | <KLOAD line or
#           sluice-gen's JSON>
#       win_cs: the window's length (centiseconds of uptime); idle_j: idle+iowait jiffies (all
#       vCPUs, measured, not sampled); sluice_j: sluice's utime+stime
#       jiffies in the window (0 for kernel); drv_j: the driver's (kload or sluice-gen);
#       in_load=0: the driver had already exited when the window closed (the window is then
#       not all load)
#   NVB-STAT round=R path=poll|event qd=N when=before|after | <sluice-stat --json>, taken
#       before the driver starts and after it exits
#   NVB-MARK begin|end round=R path=... qd=N   (at the window's ends: the host reads QEMU's
#           per-thread CPU time when it sees them)
#   NVB-START round=R path=... secs=T / NVB-STOP round=R path=... rc=N
#   NVB-FAIL <text>   (then NVB-LOG | <sluice log line>, up to 20)

NVB_DIR=/etc/sluice/nvbench
NVB_SOCKS=/run/nvb

nvb_fail() { say "NVB-FAIL $*"; FAIL=$((FAIL + 1)); }

# nvb_cpu: CPU_BUSY CPU_IDLE CPU_TOTAL CPU_IRQ CPU_SOFT CPU_SYS CPU_USER from the first line
# of /proc/stat. The busy fields are sampled at timer ticks; idle and iowait are measured
# (NOHZ idle accounting), so "all - idle" stays right when ticks are lost.
nvb_cpu() {
    # shellcheck disable=SC2034  # the fields after steal (guest) are not used
    read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
    CPU_BUSY=$((user + nice + system + irq + softirq))
    CPU_IDLE=$((idle + iowait))
    CPU_TOTAL=$((CPU_BUSY + idle + iowait + steal))
    CPU_IRQ=$irq; CPU_SOFT=$softirq; CPU_SYS=$system; CPU_USER=$((user + nice))
}

# nvb_proc_j PID: PROC_J = utime+stime of a process in jiffies (0 when it is gone); no fork.
nvb_proc_j() {
    PROC_J=0
    [ "$1" != 0 ] && [ -r "/proc/$1/stat" ] || return 0
    read -r l <"/proc/$1/stat" || return 0
    # fields after the ")" of the command name: 12 = utime, 13 = stime
    # shellcheck disable=SC2086  # split into fields on purpose
    set -- ${l##*) }
    [ $# -ge 13 ] && PROC_J=$(( ${12} + ${13} ))
}

# nvb_reads: READS = sluice's blk.n1.reads (sluice-stat).
nvb_reads() {
    READS=$(/usr/bin/sluice-stat --instance nvb --json 2>/dev/null | grep -o '"blk\.n1\.reads":[0-9]*' | cut -d: -f2)
    READS=${READS:-0}
}

# nvb_run ROUND PATH QD SPID CMD...: run CMD (the driver: its last output line is the result)
# in the background, account the window described at the top; SPID is sluice's (or 0).
nvb_run() {
    r=$1; path=$2; qd=$3; spid=$4; shift 4
    [ "$spid" = 0 ] || nvb_reads
    r0=$READS
    "$@" </dev/null >/tmp/nvb.out 2>/tmp/nvb.err &
    gpid=$!
    if [ "$spid" != 0 ]; then
        now_cs; st=$NOW
        while nvt_alive "$gpid" && [ $((NOW - st)) -lt 3000 ]; do
            nvb_reads; [ "$READS" -gt "$r0" ] && break
            usleep 100000; now_cs
        done
    fi
    usleep 500000
    say "NVB-MARK begin round=$r path=$path qd=$qd"
    nvb_proc_j "$spid"; s0=$PROC_J; nvb_proc_j "$gpid"; d0=$PROC_J
    nvb_cpu; b0=$CPU_BUSY; t0=$CPU_TOTAL; z0=$CPU_IDLE; i0=$CPU_IRQ; x0=$CPU_SOFT; y0=$CPU_SYS; u0=$CPU_USER
    now_cs; w0=$NOW
    sleep "$NVB_SECS"
    now_cs; w1=$NOW
    nvb_cpu
    nvb_proc_j "$gpid"; d1=$PROC_J; nvb_proc_j "$spid"; s1=$PROC_J
    inload=1; nvt_alive "$gpid" || inload=0
    say "NVB-MARK end round=$r path=$path qd=$qd"
    wait "$gpid"; rc=$?
    res=$(grep -E '^(KLOAD|\{)' /tmp/nvb.out | tail -n 1)
    if [ "$rc" != 0 ] || [ -z "$res" ]; then
        nvb_fail "round=$r path=$path qd=$qd rc=$rc | $(tail -n 3 /tmp/nvb.err /tmp/nvb.out | tr '\n' '|' | cut -c1-400)"
        return 1
    fi
    say "NVB-RUN round=$r path=$path qd=$qd win_cs=$((w1 - w0)) busy_j=$((CPU_BUSY - b0)) idle_j=$((CPU_IDLE - z0)) total_j=$((CPU_TOTAL - t0)) irq_j=$((CPU_IRQ - i0)) softirq_j=$((CPU_SOFT - x0)) sys_j=$((CPU_SYS - y0)) user_j=$((CPU_USER - u0)) sluice_j=$((s1 - s0)) drv_j=$((d1 - d0)) in_load=$inload | $res"
    OK=$((OK + 1))
}

# nvb_kernel ROUND: every depth through the kernel driver.
nvb_kernel() {
    ns=$(nvt_namespaces "$NVB_DEV" | head -n 1)
    if [ -z "$ns" ] || [ ! -b "/dev/$ns" ]; then nvb_fail "round=$1 path=kernel: no namespace block device"; return; fi
    for qd in $NVB_DEPTHS; do
        nvb_run "$1" kernel "$qd" 0 /usr/bin/kload --dev "/dev/$ns" --qd "$qd" --bs 4096 --secs $((NVB_SECS + 2)) --cpu 0 --seed "$1"
    done
}

# nvb_stat ROUND PATH QD WHEN: sluice's counters as one marker line.
nvb_stat() {
    say "NVB-STAT round=$1 path=$2 qd=$3 when=$4 | $(/usr/bin/sluice-stat --instance nvb --json 2>&1 | tr -d '\n')"
}

# nvb_sluice ROUND PATH: sluice on the controller (poll: --poll 0; event: no --poll), every
# depth driven by sluice-gen, SIGTERM.
nvb_sluice() {
    r=$1; path=$2
    poll=""; gflag=""
    if [ "$path" = poll ]; then poll="--poll 0"; fi
    if [ "$path" = event ] || [ "$NVB_GEN_POLL" = 0 ]; then gflag="--event"; fi
    rm -rf "$NVB_SOCKS"; mkdir -p "$NVB_SOCKS"
    echo "==== round $r $path" >>/tmp/sluice-nvb.log
    now_cs; st=$NOW
    # shellcheck disable=SC2086  # poll: empty or two words
    /usr/bin/sluice --config "$NVB_DIR/poll.ini" --cores 1 $poll --instance nvb </dev/null >>/tmp/sluice-nvb.log 2>&1 &
    spid=$!
    while [ ! -S "$NVB_SOCKS/n1.sock" ]; do
        now_cs
        if ! nvt_alive "$spid" || [ $((NOW - st)) -gt 3000 ]; then
            nvb_fail "round=$r path=$path sluice did not listen within 30 s | $(nvt_messages /tmp/sluice-nvb.log)"
            kill -KILL "$spid" 2>/dev/null; wait "$spid"
            tail -n 20 /tmp/sluice-nvb.log | while IFS= read -r l; do say "NVB-LOG | $l"; done
            return
        fi
        usleep 100000
    done
    say "NVB-START round=$r path=$path secs=$(nvt_secs "$st") pid=$spid"
    for qd in $NVB_DEPTHS; do
        nvb_stat "$r" "$path" "$qd" before
        # shellcheck disable=SC2086  # gflag: empty or one word
        nvb_run "$r" "$path" "$qd" "$spid" taskset -c 0 /usr/bin/sluice-gen blk load --socket "$NVB_SOCKS/n1.sock" \
            --rw randread --bs 4k --iodepth "$qd" --seconds $((NVB_SECS + 2)) --seed "$r" --json $gflag
        nvb_stat "$r" "$path" "$qd" after
    done
    kill -TERM "$spid"
    now_cs; st=$NOW
    while nvt_alive "$spid" && [ $((NOW - st)) -lt 1000 ]; do usleep 50000; now_cs; done
    nvt_alive "$spid" && kill -KILL "$spid"
    wait "$spid"; rc=$?
    say "NVB-STOP round=$r path=$path rc=$rc"
    if [ "$rc" != 0 ]; then
        nvb_fail "round=$r path=$path sluice exited with $rc after SIGTERM"
        tail -n 20 /tmp/sluice-nvb.log | while IFS= read -r l; do say "NVB-LOG | $l"; done
    fi
}

# nvb_to_vfio / nvb_to_nvme ROUND: move the controller; 1 when it did not move.
nvb_to_vfio() {
    vfio_bind "$NVB_BDF" vfio-pci && [ -c "/dev/vfio/$NVB_GROUP" ] && return 0
    nvb_fail "round=$1 $NVB_BDF did not bind vfio-pci (driver=$(vfio_driver "$NVB_BDF"))"; return 1
}
nvb_to_nvme() {
    echo "" >"$NVB_DEV/driver_override"
    if vfio_bind "$NVB_BDF" nvme && nvt_wait_namespaces "$NVB_DEV" 1; then return 0; fi
    nvb_fail "round=$1 $NVB_BDF did not come back on nvme (driver=$(vfio_driver "$NVB_BDF"))"; return 1
}

# nvb_sluice_both ROUND: busy polling, then event mode, on vfio-pci; back on nvme afterwards.
nvb_sluice_both() {
    nvb_to_vfio "$1" || return 1
    nvb_sluice "$1" poll
    nvb_sluice "$1" event
    nvb_to_nvme "$1"
}

role_nvme_bench() {
    mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm    # sluice's stats segment
    read -r NVB_SECS NVB_ROUNDS NVB_GEN_POLL NVB_DEPTHS <"$NVB_DIR/plan"
    NVB_BDF=""
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/class")" = 0x010802 ] && { NVB_BDF=${d##*/}; break; }
    done
    if [ -z "$NVB_BDF" ]; then nvb_fail "no NVMe controller (PCI class 010802)"; return; fi
    NVB_DEV=/sys/bus/pci/devices/$NVB_BDF
    NVB_GROUP=$(readlink "$NVB_DEV/iommu_group"); NVB_GROUP=${NVB_GROUP##*/}
    nvt_wait_namespaces "$NVB_DEV" 1 || true
    cs=/sys/devices/system/clocksource/clocksource0
    say "NVB-CTRL bdf=$NVB_BDF group=${NVB_GROUP:-none} namespaces=$(nvt_namespaces "$NVB_DEV" | wc -l) cpus=$(nproc) clocksource=$(cat $cs/current_clocksource) available=$(tr ' ' ',' <$cs/available_clocksource | sed 's/,*$//')"
    if [ -z "$NVB_GROUP" ]; then nvb_fail "$NVB_BDF has no IOMMU group (intel-iommu device + intel_iommu=on)"; return; fi
    say "NVB-TSC $(/usr/bin/kload --tsc | sed 's/^KLOAD tsc_//')"
    r=1
    while [ "$r" -le "$NVB_ROUNDS" ]; do
        if [ $((r % 2)) = 1 ]; then
            nvb_kernel "$r"
            nvb_sluice_both "$r" || return
        else
            nvb_sluice_both "$r" || return
            nvb_kernel "$r"
        fi
        r=$((r + 1))
    done
}
