#!/usr/bin/env bash
# Sluice's learning switch side by side with Open vSwitch (DPDK datapath, NORMAL action =
# learning switch), on the same generator, on the same CPU.
#
#   tools/bench/switch-vs-ovs.sh [OUT.md]      (default tools/bench/results-switch-ovs.md)
#
# Topology (as p2p-vs-testpmd.sh: the device under test (DUT) has cpu DUT_CPU to itself):
#
#   cpu GEN_CPU: one dpdk-testpmd, two net_virtio_user ports (MACs GEN_MAC0/1) = generator
#        AND sink: port 0 ──► S0 ──► DUT ──► S1 ──► port 1 (and back), io closed loop
#   cpu DUT_CPU: DUT A  ovs-vswitchd (DPDK build), bridge datapath_type=netdev, one PMD
#                       thread (pmd-cpu-mask), ports type=dpdkvhostuserclient: OVS connects,
#                       the generator's virtio-user ports listen (server=1)
#                DUT B  sluice, [switch] of two vhost-user ports in server mode
#
# For every repeat and frame size it runs A and B one after the other (the order flips every
# repeat), each with fresh DUT and generator processes (OVS keeps its ovsdb-server and
# database for the whole run, ovs-vswitchd is restarted per sample): warm-up, then a window
# of WINDOW seconds between two generator `show port stats all`. Mpps = the sum of the
# generator's two Rx-pps of that window. Busy cycles per packet over the same window:
# OVS `ovs-appctl dpif-netdev/pmd-stats-clear` at the start, `pmd-stats-show` at the end
# ("avg processing cycles per packet" = processing TSC cycles / packets received);
# Sluice delta worker.0.busy_cycles / delta worker.0.busy_packets.
#
# OVS runs entirely in a private directory (database, sockets, pid and log files:
# OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR point there) with the DPDK build of ovs-vswitchd
# started directly (no update-alternatives, nothing in /etc or /var/run), DPDK in
# --in-memory mode on a private hugetlbfs mount. Afterwards the daemons are stopped,
# the directory removed, the mount unmounted, and the huge page pool set back to its size
# before the run (when nobody else changed it meanwhile).
#
# Environment:
#   REPEATS=3 WINDOW=5 WARMUP=2 SIZES="64 1518" DUT_CPU=1 GEN_CPU=0 TX_FIRST=32
#   SLUICE_BIN_DIR  directory holding release `sluice` and `sluice-stat`
#                   (default: `swift build -c release` in the repository)
#   OVS_SOCKET_MEM=512  MB of huge pages for OVS's DPDK
#   MIN_CPU=90 MAX_STEAL=5  clean-sample thresholds (as p2p-vs-testpmd.sh)
#   INSTALL=1       install missing tools with `apt-get install -y dpdk openvswitch-switch-dpdk`
#   KEEP_LOGS=1     keep the work directory with every log
# Exit: 0 done, 1 error, 77 a tool is missing (one `SKIP: reason` line).

set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=p2p-config.sh
. "$root/tools/bench/p2p-config.sh"
# shellcheck source=bench-lib.sh
. "$root/tools/bench/bench-lib.sh"
out="${1:-$root/tools/bench/results-switch-ovs.md}"
bench_defaults
OVS_SOCKET_MEM=${OVS_SOCKET_MEM:-512}
case "$REPEATS$WINDOW$WARMUP$DUT_CPU$GEN_CPU$TX_FIRST$OVS_SOCKET_MEM" in *[!0-9]*) echo "REPEATS, WINDOW, WARMUP, DUT_CPU, GEN_CPU, TX_FIRST, OVS_SOCKET_MEM must be integers" >&2; exit 1 ;; esac

VSWITCHD=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
missing() {
    command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd"; return; }
    for t in ovsdb-tool ovsdb-server ovs-vsctl ovs-appctl; do command -v "$t" >/dev/null || { echo "$t"; return; }; done
    [ -x "$VSWITCHD" ] || echo "$VSWITCHD"
}
if [ -n "$(missing)" ] && [ "${INSTALL:-0}" = 1 ]; then
    apt-get install -y dpdk openvswitch-switch-dpdk >&2
fi
m="$(missing)"
[ -z "$m" ] || { echo "SKIP: $m not found (INSTALL=1, or apt-get install -y dpdk openvswitch-switch-dpdk)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (huge pages, hugetlbfs mount)"; exit 77; }
[ -d /sys/kernel/mm/hugepages/hugepages-2048kB ] || { echo "SKIP: no 2 MB huge pages in this kernel"; exit 77; }

find_sluice ""   # SLUICE_BIN_DIR or a release build
note_run_start
ovs_version="$("$VSWITCHD" --version 2>/dev/null | head -1)"

work="$(mktemp -d /tmp/switch-vs-ovs.XXXXXX)"
tag="swov$$"
gen_prefix="${tag}gen"; instance="$tag"
S0="$work/s0.sock"; S1="$work/s1.sock"
GEN_PID=""; DUT_PID=""; DUT_KIND=""
ovsdir="$work/ovs"; hugedir="$work/huge"
export OVS_RUNDIR="$ovsdir" OVS_DBDIR="$ovsdir" OVS_LOGDIR="$ovsdir" OVS_SYSCONFDIR="$ovsdir"
VSCTL="ovs-vsctl --db=unix:$ovsdir/db.sock --timeout=10"
APPCTL_VS="ovs-appctl -t $ovsdir/ovs-vswitchd.ctl"
APPCTL_DB="ovs-appctl -t $ovsdir/ovsdb-server.ctl"
huge_orig=""; huge_set=""; huge_mounted=0; dbserver_started=0

stop_vswitchd() {
    local pid
    pid=$(cat "$ovsdir/ovs-vswitchd.pid" 2>/dev/null)
    [ -n "$pid" ] || return 0
    $APPCTL_VS exit >/dev/null 2>&1
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    rm -f "$ovsdir/ovs-vswitchd.pid"
}

remove_leftovers() {
    rm -rf "/var/run/dpdk/$gen_prefix"
    rm -f "/dev/shm/sluice-$instance.stats" "$S0" "$S1"
}

cleanup() {
    quit_testpmd "$GEN_PID" 3; GEN_PID=""
    stop_pid "$DUT_PID"; DUT_PID=""
    stop_vswitchd
    if [ "$dbserver_started" = 1 ]; then
        local pid; pid=$(cat "$ovsdir/ovsdb-server.pid" 2>/dev/null)
        $APPCTL_DB exit >/dev/null 2>&1
        [ -n "$pid" ] && for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    fi
    remove_leftovers
    rm -rf /var/run/dpdk/ovs-vswitchd-dpdk 2>/dev/null   # --in-memory leaves none; just in case
    if [ "$huge_mounted" = 1 ]; then
        rm -f "$hugedir"/* 2>/dev/null
        umount "$hugedir" 2>/dev/null || echo "warning: could not unmount $hugedir" >&2
    fi
    if [ -n "$huge_set" ] && [ "$(cat /proc/sys/vm/nr_hugepages)" = "$huge_set" ]; then
        echo "$huge_orig" >/proc/sys/vm/nr_hugepages
    fi
    rm -rf "$ovsdir"
    drop_work
}
install_traps

# ---------------------------------------------------------------------------
# Commands (also written to the report)

GEN_MAC0=02:00:00:00:0a:00; GEN_MAC1=02:00:00:00:0a:01
gen_cmd() {   # extra vdev args (",server=1" for OVS, whose ports are vhost-user clients)
    echo "dpdk-testpmd --lcores 0@$DUT_CPU,1@$GEN_CPU --no-pci --no-huge -m 512 --single-file-segments --file-prefix $gen_prefix --vdev net_virtio_user0,path=$S0,queues=1$1,mac=$GEN_MAC0 --vdev net_virtio_user1,path=$S1,queues=1$1,mac=$GEN_MAC1 -- -i --total-num-mbufs=16384 --eth-peer=0,$GEN_MAC1 --eth-peer=1,$GEN_MAC0"
}
GEN_CMD_A="$(gen_cmd ,server=1)"
GEN_CMD_B="$(gen_cmd "")"
OVS_EXTRA="--no-pci --huge-unlink --huge-dir $hugedir"
OVS_SETUP=(
    "ovsdb-tool create $ovsdir/conf.db /usr/share/openvswitch/vswitch.ovsschema"
    "ovsdb-server $ovsdir/conf.db --remote=punix:$ovsdir/db.sock --pidfile=$ovsdir/ovsdb-server.pid --unixctl=$ovsdir/ovsdb-server.ctl --log-file=$ovsdir/ovsdb-server.log --detach"
    "$VSCTL --no-wait init"
    "$VSCTL --no-wait set Open_vSwitch . other_config:dpdk-init=true other_config:dpdk-lcore-mask=0x$(printf %x $((1 << GEN_CPU))) other_config:pmd-cpu-mask=0x$(printf %x $((1 << DUT_CPU))) other_config:dpdk-socket-mem=$OVS_SOCKET_MEM"
    "$VSCTL --no-wait add-br br0 -- set bridge br0 datapath_type=netdev -- add-port br0 p0 -- set Interface p0 type=dpdkvhostuserclient options:vhost-server-path=$S0 mtu_request=1504 -- add-port br0 p1 -- set Interface p1 type=dpdkvhostuserclient options:vhost-server-path=$S1 mtu_request=1504"
)
DUTA_CMD="$VSWITCHD unix:$ovsdir/db.sock --pidfile=$ovsdir/ovs-vswitchd.pid --unixctl=$ovsdir/ovs-vswitchd.ctl --log-file=$ovsdir/ovs-vswitchd.log --detach"
DUTB_CMD="taskset -c $DUT_CPU $SLUICE --config $work/switch.ini --cores $DUT_CPU --poll 0"
write_p2p_config "$work/switch.ini" "$DUT_CPU" "$work" "$instance" switch

# ---------------------------------------------------------------------------
# OVS: huge pages, private hugetlbfs mount, database

setup_ovs() {
    local need free
    need=$(( OVS_SOCKET_MEM / 2 + 16 ))
    huge_orig=$(cat /proc/sys/vm/nr_hugepages)
    free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
    if [ "$free" -lt "$need" ]; then
        huge_set=$(( huge_orig + need - free ))
        [ "$huge_set" -lt 1024 ] && huge_set=1024
        echo "$huge_set" >/proc/sys/vm/nr_hugepages
        free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
        [ "$free" -ge "$need" ] || { echo "only $free free 2 MB huge pages after raising the pool to $huge_set; OVS needs $need" >&2; return 1; }
    fi
    mkdir -p "$ovsdir" "$hugedir"
    mount -t hugetlbfs -o pagesize=2M nodev "$hugedir" || { echo "cannot mount hugetlbfs on $hugedir" >&2; return 1; }
    huge_mounted=1
    local c
    for c in "${OVS_SETUP[@]}"; do
        $c >>"$ovsdir/setup.log" 2>&1 || { echo "OVS setup failed: $c" >&2; tail -5 "$ovsdir/setup.log" >&2; return 1; }
        case "$c" in ovsdb-server*) dbserver_started=1 ;; esac
    done
    # dpdk-extra holds spaces: set it outside the word-split command list.
    $VSCTL --no-wait set Open_vSwitch . "other_config:dpdk-extra=$OVS_EXTRA" >>"$ovsdir/setup.log" 2>&1
}

# ---------------------------------------------------------------------------
# One sample

links_up() {
    [ "$($VSCTL get Interface p0 link_state 2>/dev/null)" = up ] && [ "$($VSCTL get Interface p1 link_state 2>/dev/null)" = up ]
}
pmd_started() { log_has "$ovsdir/ovs-vswitchd.log" "PMD thread on numa_id"; }

start_dut() {   # A|B log
    local dut=$1 log=$2
    DUT_KIND=$dut
    if [ "$dut" = A ]; then
        : >"$ovsdir/ovs-vswitchd.log"
        $DUTA_CMD >"$log" 2>&1 || return 1
        DUT_PID=""
        wait_for 30 pmd_started
    else
        stdbuf -oL $DUTB_CMD >"$log" 2>&1 &
        DUT_PID=$!
        wait_for 20 sockets_exist && wait_for 10 log_has "$log" "running"
    fi
}


stop_dut() {
    if [ "$DUT_KIND" = A ]; then cp "$ovsdir/ovs-vswitchd.log" "$1" 2>/dev/null; stop_vswitchd; else stop_pid "$DUT_PID"; fi
    DUT_PID=""
}

# samples.tsv: dut mode size gen_mpps cycles dut_mpps dut_cpu gen_cpu load1 fbytes steal_d steal_g
one_sample() {
    local dut=$1 size=$2 id=$3
    local glog="$work/$id.gen.log" dlog="$work/$id.dut.log" gcmd
    if [ "$dut" = A ]; then gcmd=$GEN_CMD_A; else gcmd=$GEN_CMD_B; fi
    start_sample "$dut" "$id" "$gcmd" "$dlog" || return 1
    if [ "$dut" = A ] && ! wait_for 20 links_up; then
        echo "FAIL $id: OVS vhost-user ports did not come up" >&2
        quit_testpmd "$GEN_PID" 3; GEN_PID=""; stop_dut "$dlog"; return 1
    fi
    local dpid
    if [ "$dut" = A ]; then dpid=$(cat "$ovsdir/ovs-vswitchd.pid"); else dpid=$DUT_PID; fi
    gen_io "$size"

    # --- window start
    echo "show port stats all" >&3
    local t0 d0 g0 sd0 sg0
    t0=$(now); d0=$(cpu_ticks "$dpid"); g0=$(cpu_ticks "$GEN_PID")
    sd0=$(steal_ticks "$DUT_CPU"); sg0=$(steal_ticks "$GEN_CPU")
    if [ "$dut" = A ]; then $APPCTL_VS dpif-netdev/pmd-stats-clear >/dev/null; else "$STAT" --instance "$instance" --json >"$work/$id.s0.json"; fi
    sleep "$WINDOW"
    # --- window end
    echo "show port stats all" >&3
    local t1 d1 g1 steal_d steal_g
    if [ "$dut" = A ]; then $APPCTL_VS dpif-netdev/pmd-stats-show >"$work/$id.pmd.txt"; else "$STAT" --instance "$instance" --json >"$work/$id.s1.json"; fi
    t1=$(now); d1=$(cpu_ticks "$dpid"); g1=$(cpu_ticks "$GEN_PID")
    steal_d=$(steal_pct "$sd0" "$(steal_ticks "$DUT_CPU")"); steal_g=$(steal_pct "$sg0" "$(steal_ticks "$GEN_CPU")")
    gen_done
    stop_dut "$dlog"

    local dt gen_mpps cycles dut_mpps dut_cpu gen_cpu hz fbytes
    hz=$(getconf CLK_TCK)
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    gen_mpps=$(gen_window_mpps "$glog")
    fbytes=$(gen_window_fbytes "$glog")
    if [ "$dut" = A ]; then
        # The PMD thread's section (the "main thread" one follows it).
        cycles=$(awk '/^pmd thread/ {p = 1} /^main thread/ {p = 0} p && /avg processing cycles per packet:/ {print $6; exit}' "$work/$id.pmd.txt")
        dut_mpps=$(awk -v t="$dt" '/^pmd thread/ {p = 1} /^main thread/ {p = 0} p && /packets received:/ {printf "%.3f", $3 / t / 1e6; exit}' "$work/$id.pmd.txt")
    else
        cycles=$(sluice_cycles "$work/$id.s0.json" "$work/$id.s1.json")
        dut_mpps=$(sluice_tx_mpps "$work/$id.s0.json" "$work/$id.s1.json" "$dt")
    fi
    # OVS: the whole ovs-vswitchd process (PMD + main + handler threads); 100 % = one core.
    dut_cpu=$(awk -v a="$d0" -v b="$d1" -v t="$dt" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / t * 100}')
    gen_cpu=$(awk -v a="$g0" -v b="$g1" -v t="$dt" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / t * 100}')
    printf '%s\tio\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dut" "$size" "${gen_mpps:-NA}" "${cycles:-NA}" "${dut_mpps:-NA}" \
        "$dut_cpu" "$gen_cpu" "$(cut -d' ' -f1 /proc/loadavg)" "${fbytes:-NA}" "$steal_d" "$steal_g" >>"$work/samples.tsv"
    printf '  %-5s DUT %s %4s B: %s Mpps, %s cycles/pkt (DUT-side %s Mpps, DUT cpu %s%%, gen cpu %s%%, steal %s%%/%s%%)\n' \
        "$id" "$dut" "$size" "${gen_mpps:-NA}" "${cycles:-NA}" "${dut_mpps:-NA}" "$dut_cpu" "$gen_cpu" "$steal_d" "$steal_g" >&2
}

# ---------------------------------------------------------------------------
# Run

setup_ovs || exit 1
run_samples "switch vs OVS-DPDK" "A B" "B A"

# ---------------------------------------------------------------------------
# Report

MIN_CPU=${MIN_CPU:-90}
MAX_STEAL=${MAX_STEAL:-5}
# Clean: DUT and generator each had >= MIN_CPU % of a core, steal <= MAX_STEAL % on both vCPUs.
CLEAN_AWK="\$7 + 0 >= $MIN_CPU && \$8 + 0 >= $MIN_CPU && \$11 + 0 <= $MAX_STEAL && \$12 + 0 <= $MAX_STEAL"
S="$work/samples.tsv"
{
    echo "# Learning switch: Sluice vs Open vSwitch (DPDK datapath, NORMAL)"
    echo
    echo "Generated by \`tools/bench/switch-vs-ovs.sh\` on $started in ${elapsed} s."
    echo
    echo "- Machine: $(machine_dpdk), $ovs_version," \
         "sluice binary in $bindir built $built (HEAD was $rev when the benchmark ran)."
    echo "- Load average at start **$load_at_start**, at end **$load_at_end** (2 vCPUs: anything above ~0 means other"
    echo "  work competed with the DUT and the generator). Busiest processes at start:"
    busy_block
    echo "- $REPEATS samples per cell, A/B alternated (order flipped every repeat), fresh processes per sample," \
         "${WARMUP} s warm-up, ${WINDOW} s window, io closed loop (\`start tx_first $TX_FIRST\`). Medians (range)."
    echo
    echo "| size | OVS Mpps | Sluice Mpps | ratio | OVS cycles/pkt | Sluice cycles/pkt | ratio | samples A / B |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    for size in $SIZES; do
        am=$(fmt "$(median_of "$S" 4 A io "$size")" 3); bm=$(fmt "$(median_of "$S" 4 B io "$size")" 3)
        ac=$(fmt "$(median_of "$S" 5 A io "$size")" 1); bc=$(fmt "$(median_of "$S" 5 B io "$size")" 1)
        echo "| $size | $am ($(range_of "$S" 4 A io "$size")) | $bm ($(range_of "$S" 4 B io "$size")) | $(ratio "$am" "$bm") | $ac ($(range_of "$S" 5 A io "$size")) | $bc ($(range_of "$S" 5 B io "$size")) | $(ratio "$ac" "$bc") | $(cell_rows "$S" A io "$size" | grep -c .) / $(cell_rows "$S" B io "$size" | grep -c .) |"
    done
    echo
    contended=$(awk -F'\t' "!($CLEAN_AWK)" "$S" | wc -l)
    if [ "$contended" -gt 0 ]; then
        echo "**Warning: in $contended of $(wc -l <"$S") samples the DUT or the generator got less than $MIN_CPU % of"
        echo "a core, or more than $MAX_STEAL % of a vCPU was stolen.** Those samples measure the machine's load more"
        echo "than the switches; medians leave them out when a cell has clean samples (last column: samples used)."
        echo "Reference from an idle machine of this kind (measured before this project): OVS-DPDK 8.3–9.7 Mpps, 240–260 cycles/packet at 64 B."
        echo
    fi
    echo "Mpps: frames forwarded per second, both directions summed, as the generator counts them (sum of"
    echo "its two ports' Rx-pps over the window). Cycles/pkt: the DUT's busy TSC cycles per frame — OVS"
    echo "\`pmd-stats-show\` \"avg processing cycles per packet\" (PMD processing cycles / packets received, after"
    echo "\`pmd-stats-clear\` at window start); Sluice \`worker.0.busy_cycles / worker.0.busy_packets\`."
    echo "Ratios are Sluice / OVS: > 1 is better for Mpps, < 1 is better for cycles."
    echo
    echo "## Raw samples"
    echo
    echo "DUT-side Mpps: OVS PMD packets received / window; Sluice port tx_packets / window. DUT cpu %: the"
    echo "DUT process (for OVS all of ovs-vswitchd's threads) over the window, 100 % = one core."
    echo
    echo "| DUT | size | bytes/frame | gen Mpps | cycles/pkt | DUT-side Mpps | DUT cpu % | gen cpu % | steal % dut/gen cpu | load1 | clean |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' "{n = (\$1 == \"A\") ? \"A ovs\" : \"B sluice\"; c = ($CLEAN_AWK) ? \"yes\" : \"no\";"' printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s |\n", n, $3, $10, $4, $5, $6, $7, $8, $11, $12, $9, c}' "$S"
    echo
    echo "## Commands"
    echo
    echo "DUT A (OVS), set up once per run in a private directory (OVS_RUNDIR=OVS_DBDIR=OVS_LOGDIR=$ovsdir),"
    echo "huge pages from a private hugetlbfs mount ($hugedir):"
    echo '```'
    for c in "${OVS_SETUP[@]}"; do echo "$c"; done
    echo "$VSCTL --no-wait set Open_vSwitch . other_config:dpdk-extra=\"$OVS_EXTRA\""
    echo '```'
    echo "then per sample:"
    echo '```'
    echo "$DUTA_CMD"
    echo "$APPCTL_VS dpif-netdev/pmd-stats-clear   # window start"
    echo "$APPCTL_VS dpif-netdev/pmd-stats-show    # window end"
    echo "$APPCTL_VS exit"
    echo '```'
    echo "Generator and sink for A (its ports listen; OVS connects):"
    echo '```'
    echo "$GEN_CMD_A"
    echo '```'
    echo "DUT B (Sluice), stats read with \`sluice-stat --instance $instance --json\` at window start and end:"
    echo '```'
    echo "$DUTB_CMD"
    echo '```'
    echo '```ini'
    cat "$work/switch.ini"
    echo '```'
    echo "Generator and sink for B (started after the DUT, which listens on both sockets):"
    echo '```'
    echo "$GEN_CMD_B"
    echo '```'
    echo "Generator commands, both DUTs:"
    gen_io_commands
} >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
echo "wrote $out (${elapsed} s)" >&2
