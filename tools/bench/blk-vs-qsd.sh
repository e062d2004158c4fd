#!/usr/bin/env bash
# shellcheck disable=SC2034,SC2154  # globals that bench-lib.sh sets or reads
# Sluice's vhost-user-blk export side by side with qemu-storage-daemon's: the same file,
# the same driver, the same CPUs.
#
#   tools/bench/blk-vs-qsd.sh [OUT.md]      (default tools/bench/results-blk.md)
#
#   cpu GEN_CPU: the driver, `sluice-gen blk load --socket S --rw randread|randwrite --bs 4k
#                --iodepth QD --seconds RUN --json` (virtio-blk over vhost-user as a VM's driver
#                would do it; it busy-polls the used ring; latency = publish of a request to
#                the poll that found it complete)
#   cpu DUT_CPU: backend A  qemu-storage-daemon under `taskset -c DUT_CPU` (every thread of it):
#                           file driver aio=io_uring cache.direct=on, raw, vhost-user-blk export,
#                           1 queue (QSD_IOTHREAD=1: the export in an iothread, which polls
#                           adaptively up to its poll-max-ns before it sleeps)
#                backend B  sluice --cores DUT_CPU --poll 0 (one worker busy-polling), [disk] +
#                           [blk] with 1 queue of 256
#
# Stores (STORES="tmpfs disk"):
#   tmpfs  a SIZE_MB file in TMPFS_DIR (/dev/shm), written in full first: no device below, so
#          what is left is the backend's own cost and the kernel's copy. The kernel here takes
#          O_DIRECT on tmpfs (since 6.6): both backends open it O_DIRECT like the disk file.
#   disk   a SIZE_MB file in DISK_DIR (/var/tmp, the root file system), written in full first,
#          opened with O_DIRECT by both (sluice always asks for O_DIRECT; qsd cache.direct=on):
#          no page cache takes part, so no cache state needs dropping between samples.
#   null   /dev/nullb0 (null_blk, memory_backed=0) when `modprobe null_blk` works; the report
#          says when it does not.
#
# Per repeat it runs, for each store, rw (randread, randwrite) and queue depth (1, 32), A and
# B with fresh processes (order flipped every repeat). Around the driver's run it reads the
# backend's utime+stime from /proc/PID/stat (all threads, io_uring workers included): busy
# cores = CPU seconds / wall seconds, CPU µs per I/O = busy cores / IOPS, IOPS per busy core =
# IOPS / busy cores. A busy-polling sluice burns its whole core whatever the load, so the
# last column is the one the issue's target is set in. sluice's own blk counters are read
# before and after (requests it completed, errors).
#
# Environment: REPEATS=2 RUN=5 (seconds per sample) RWS="randread randwrite" DEPTHS="1 32"
#   STORES="tmpfs disk" SIZE_MB=1024 TMPFS_DIR=/dev/shm DISK_DIR=/var/tmp DUT_CPU=1 GEN_CPU=0
#   MIN_CPU=90 MAX_STEAL=5 (clean samples: the driver had ≥ MIN_CPU % of its core, steal ≤
#   MAX_STEAL % on both) QSD_IOTHREAD=0 SLUICE_BIN_DIR KEEP_LOGS=1
#   NICE=-10: both backends and the driver run at this nice level (0: unchanged), so that other
#   people's builds on this shared 2-CPU machine take less of the two cores; the same for A and B
#   RENDER_FROM=DIR (rewrite OUT.md from a kept work directory; nothing runs)
# Exit: 0 done, 1 error, 77 a tool is missing.

set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=bench-lib.sh
. "$root/tools/bench/bench-lib.sh"
out="${1:-$root/tools/bench/results-blk.md}"
REPEATS=${REPEATS:-2}; RUN=${RUN:-5}; DUT_CPU=${DUT_CPU:-1}; GEN_CPU=${GEN_CPU:-0}
RWS=${RWS:-randread randwrite}; DEPTHS=${DEPTHS:-1 32}; STORES=${STORES:-tmpfs disk}
SIZE_MB=${SIZE_MB:-1024}; TMPFS_DIR=${TMPFS_DIR:-/dev/shm}; DISK_DIR=${DISK_DIR:-/var/tmp}
QSD_IOTHREAD=${QSD_IOTHREAD:-0}; NICE=${NICE:--10}
PRIO=""; [ "$NICE" != 0 ] && PRIO="nice -n $NICE "
case "$REPEATS$RUN$DUT_CPU$GEN_CPU$SIZE_MB" in *[!0-9]*) echo "REPEATS, RUN, DUT_CPU, GEN_CPU, SIZE_MB must be integers" >&2; exit 1 ;; esac
RENDER_FROM=${RENDER_FROM:-}

if [ -z "$RENDER_FROM" ]; then
    for t in qemu-storage-daemon taskset python3; do
        command -v "$t" >/dev/null || { echo "SKIP: $t not found (apt-get install -y qemu-system-x86 util-linux python3)"; exit 77; }
    done
fi
find_sluice "$RENDER_FROM"
GEN="$bindir/sluice-gen"
if [ -z "$RENDER_FROM" ] && [ ! -x "$GEN" ]; then
    if [ -z "${SLUICE_BIN_DIR:-}" ]; then
        (cd "$root" && swift build -c release --product sluice-gen >&2) || { echo "swift build failed" >&2; exit 1; }
    fi
    [ -x "$GEN" ] || { echo "no sluice-gen in $bindir" >&2; exit 1; }
fi
note_run_start
if [ -n "$RENDER_FROM" ]; then
    work="$RENDER_FROM"; KEEP_LOGS=1
    [ -f "$work/samples.tsv" ] && [ -f "$work/meta.sh" ] || { echo "no samples.tsv/meta.sh in $work" >&2; exit 1; }
else
    work="$(mktemp -d /tmp/blk-vs-qsd.XXXXXX)"
fi
tag="blkb$$"; instance="$tag"
SOCK="$work/vda.sock"
DUT_PID=""; NULLB_LOADED=0
declare -A IMG=()

remove_leftovers() { rm -f "/dev/shm/sluice-$instance.stats" "$SOCK"; }
cleanup() {
    stop_pid "$DUT_PID"; DUT_PID=""
    remove_leftovers
    if [ -z "$RENDER_FROM" ]; then
        rm -f "$TMPFS_DIR/$tag.img" "$DISK_DIR/$tag.img"
        [ "$NULLB_LOADED" = 1 ] && rmmod null_blk 2>/dev/null
    fi
    drop_work
}
install_traps

# A float out of the driver's one-line JSON.
json_num() { sed -n "s/.*\"$2\":\(-\{0,1\}[0-9.]*\).*/\1/p" "$1"; }

# make_image PATH: SIZE_MB of random data, every block allocated (a sparse file's holes
# would read as zeros without any I/O).
make_image() {
    dd if=/dev/urandom of="$1" bs=1M count="$SIZE_MB" conv=fsync status=none || { echo "cannot write $1" >&2; return 1; }
}

if [ -z "$RENDER_FROM" ]; then
    NULL_NOTE=""
    for store in $STORES; do
        case "$store" in
            tmpfs) IMG[tmpfs]="$TMPFS_DIR/$tag.img"; make_image "${IMG[tmpfs]}" || exit 1 ;;
            disk) IMG[disk]="$DISK_DIR/$tag.img"; make_image "${IMG[disk]}" || exit 1 ;;
            null) ;;
            *) echo "unknown store '$store' (tmpfs, disk, null)" >&2; exit 1 ;;
        esac
    done
    # null_blk: a block device that completes every request at once without touching data.
    if [ -e /dev/nullb0 ]; then
        IMG[null]=/dev/nullb0
    elif msg=$(modprobe null_blk nr_devices=1 queue_mode=2 memory_backed=0 gb=$(( (SIZE_MB + 1023) / 1024 )) 2>&1) \
            && wait_for 5 test -b /dev/nullb0; then
        IMG[null]=/dev/nullb0; NULLB_LOADED=1
    else
        NULL_NOTE="modprobe null_blk does not work on this machine (${msg:-no /dev/nullb0}), so there is no null_blk run; tmpfs stands in for a device that costs nothing."
    fi
    if [ -n "${IMG[null]:-}" ] && [[ " $STORES " != *" null "* ]]; then STORES="$STORES null"; fi
    if [ -z "${IMG[null]:-}" ]; then STORES=$(echo " $STORES " | sed 's/ null / /; s/^ *//; s/ *$//'); fi
fi

qsd_cmd() {   # image
    local iot="" exp=""
    if [ "$QSD_IOTHREAD" = 1 ]; then iot="--object iothread,id=io0"; exp=",iothread=io0"; fi
    echo "${PRIO}taskset -c $DUT_CPU qemu-storage-daemon $iot --blockdev driver=file,node-name=f0,filename=$1,aio=io_uring,cache.direct=on --blockdev driver=raw,node-name=d0,file=f0 --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$SOCK,writable=on,num-queues=1$exp"
}
# SLUICE_POLL: 0 (busy polling, default), N (µs between polls) or event (no --poll: sleep on
# kicks and completions). SLUICE_TASKSET=0: do not confine the whole process to DUT_CPU (the
# worker is pinned there by --cores anyway; the control thread and the io_uring kernel workers
# may then run elsewhere, and their CPU time still counts in busy cores).
SLUICE_POLL=${SLUICE_POLL:-0}
SLUICE_TASKSET=${SLUICE_TASKSET:-1}
sluice_cmd() {
    local poll="--poll $SLUICE_POLL" pin="taskset -c $DUT_CPU "
    [ "$SLUICE_POLL" = event ] && poll=""
    [ "$SLUICE_TASKSET" = 0 ] && pin=""
    echo "${PRIO}${pin}$SLUICE --config $work/blk.ini --cores $DUT_CPU $poll --instance $instance"
}
write_config() {   # image
    cat >"$work/blk.ini" <<EOF
[dataplane]
socket-dir = $work

[disk img0]
file = $1
block-size = 512

[blk vda]
device = disk:img0
socket = vda.sock
mode = server
read-only = false
queues = 1
queue-size = 256
serial = bench-vda
EOF
}
gen_cmd() {   # rw depth
    echo "${PRIO}taskset -c $GEN_CPU $GEN blk load --socket $SOCK --rw $1 --bs 4k --iodepth $2 --seconds $RUN --json"
}
dut_up() { kill -0 "$DUT_PID" 2>/dev/null && [ -S "$SOCK" ]; }

# start_dut A|B STORE LOG
start_dut() {
    remove_leftovers
    if [ "$1" = A ]; then
        local cmd; cmd=$(qsd_cmd "${IMG[$2]}")
        $cmd >"$3" 2>&1 &
        DUT_PID=$!
        wait_for 10 dut_up
    else
        write_config "${IMG[$2]}"
        local cmd; cmd=$(sluice_cmd)
        $cmd >"$3" 2>&1 &
        DUT_PID=$!
        wait_for 20 dut_up && wait_for 10 log_has "$3" "running"
    fi
}
blk_total() {   # stats.json: requests sluice completed (reads + writes)
    echo $(( $(stat_value "$1" blk.vda.reads) + $(stat_value "$1" blk.vda.writes) ))
}
blk_errors() {
    echo $(( $(stat_value "$1" blk.vda.errors.ioerr) + $(stat_value "$1" blk.vda.errors.unsupp) ))
}

# one_sample DUT STORE RW DEPTH ID: appends to $work/samples.tsv
#   1 dut  2 store/rw  3 depth  4 iops  5 p50  6 p99  7 busy cores  8 cpu µs/io  9 iops/busy core
#   10 gen cpu %  11 steal dut  12 steal gen  13 load1  14 errors  15 sluice requests  16 mean µs  17 requests
one_sample() {
    local dut=$1 store=$2 rw=$3 depth=$4 id=$5 dlog="$work/$5.dut.log" gjson="$work/$5.gen.json"
    if ! start_dut "$dut" "$store" "$dlog"; then
        echo "FAIL $id: backend $dut did not start" >&2; tail -5 "$dlog" >&2; stop_pid "$DUT_PID"; DUT_PID=""; return 1
    fi
    local hz t0 t1 d0 d1 sd0 sg0 steal_d steal_g s_req="-"
    hz=$(getconf CLK_TCK)
    [ "$dut" = B ] && "$STAT" --instance "$instance" --json >"$work/$id.s0.json"
    sd0=$(steal_ticks "$DUT_CPU"); sg0=$(steal_ticks "$GEN_CPU")
    t0=$(now); d0=$(cpu_ticks "$DUT_PID")
    # the driver in the foreground; its own CPU from its /proc entry just before it exits is
    # not reachable, so `time`'s figures are taken instead (TIMEFORMAT: user+sys seconds).
    local gcpu gcmd
    gcmd=$(gen_cmd "$rw" "$depth")
    gcpu=$( { TIMEFORMAT='%U %S'; time $gcmd >"$gjson" 2>"$work/$id.gen.err"; } 2>&1 )
    t1=$(now); d1=$(cpu_ticks "$DUT_PID")
    steal_d=$(steal_pct "$sd0" "$(steal_ticks "$DUT_CPU")"); steal_g=$(steal_pct "$sg0" "$(steal_ticks "$GEN_CPU")")
    if [ "$dut" = B ]; then
        "$STAT" --instance "$instance" --json >"$work/$id.s1.json"
        s_req=$(( $(blk_total "$work/$id.s1.json") - $(blk_total "$work/$id.s0.json") ))
        local e=$(( $(blk_errors "$work/$id.s1.json") - $(blk_errors "$work/$id.s0.json") ))
        [ "$e" != 0 ] && s_req="$s_req (errors $e)"
    fi
    stop_pid "$DUT_PID"; DUT_PID=""
    local iops p50 p99 mean req errs
    iops=$(json_num "$gjson" iops); p50=$(json_num "$gjson" p50_us); p99=$(json_num "$gjson" p99_us)
    mean=$(json_num "$gjson" mean_us); req=$(json_num "$gjson" requests); errs=$(json_num "$gjson" errors)
    if [ -z "$iops" ]; then
        echo "FAIL $id: the driver printed no result:" >&2; tail -3 "$work/$id.gen.err" >&2; return 1
    fi
    local wall busy cpuio ipc gen_cpu
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    busy=$(awk -v a="$d0" -v b="$d1" -v hz="$hz" -v w="$wall" 'BEGIN {printf "%.3f", (b - a) / hz / w}')
    cpuio=$(awk -v b="$busy" -v i="$iops" 'BEGIN {if (i > 0) printf "%.2f", b / i * 1e6; else print "NA"}')
    ipc=$(awk -v b="$busy" -v i="$iops" 'BEGIN {if (b > 0) printf "%.0f", i / b; else print "NA"}')
    gen_cpu=$(echo "$gcpu" | awk -v w="$wall" '{printf "%.0f", ($1 + $2) / w * 100}')
    printf '%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dut" "$store" "$rw" "$depth" \
        "$iops" "$p50" "$p99" "$busy" "$cpuio" "$ipc" "$gen_cpu" "$steal_d" "$steal_g" "$(cut -d' ' -f1 /proc/loadavg)" \
        "${errs:-NA}" "$s_req" "$mean" "$req" >>"$work/samples.tsv"
    printf '  %-4s %s %-5s %-9s QD%-2s: %8s IOPS, p50 %s p99 %s µs; backend %s cores, %s µs CPU/IO, %s IOPS/busy core; gen cpu %s%%, steal %s%%/%s%%, load %s%s\n' \
        "$id" "$dut" "$store" "$rw" "$depth" "$iops" "$p50" "$p99" "$busy" "$cpuio" "$ipc" "$gen_cpu" "$steal_d" "$steal_g" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$([ "$dut" = B ] && echo "; sluice counted $s_req")" >&2
}

if [ -n "$RENDER_FROM" ]; then
    # shellcheck disable=SC1090
    . "$work/meta.sh"
else
    echo "blk vs qsd: REPEATS=$REPEATS RUN=${RUN}s STORES='$STORES', load $load_at_start; work dir $work" >&2
    [ -n "$NULL_NOTE" ] && echo "  $NULL_NOTE" >&2
    : >"$work/samples.tsv"
    n=0
    for rep in $(seq "$REPEATS"); do
        if [ $((rep % 2)) = 1 ]; then order="A B"; else order="B A"; fi
        for store in $STORES; do
            for rw in $RWS; do
                for depth in $DEPTHS; do
                    for dut in $order; do
                        n=$((n + 1))
                        one_sample "$dut" "$store" "$rw" "$depth" "s$n" || echo "  s$n failed" >&2
                    done
                done
            done
        done
    done
    elapsed=$(( $(date +%s) - t_start ))
    load_at_end="$(cut -d' ' -f1-3 /proc/loadavg)"
    QSD_SHOWN="$(qsd_cmd IMAGE)"; SLUICE_SHOWN="$(sluice_cmd)"; GEN_SHOWN="$(gen_cmd RW QD)"
    write_config IMAGE; cp "$work/blk.ini" "$work/blk.ini.kept"
    declare -p started elapsed rev built load_at_start load_at_end busy_at_start REPEATS RUN STORES RWS DEPTHS \
        SIZE_MB TMPFS_DIR DISK_DIR QSD_IOTHREAD NICE NULL_NOTE QSD_SHOWN SLUICE_SHOWN GEN_SHOWN bindir >"$work/meta.sh"
fi

# ---------------------------------------------------------------------------
# Report
MIN_CPU=${MIN_CPU:-90}
MAX_STEAL=${MAX_STEAL:-5}
CLEAN_AWK="\$10 + 0 >= $MIN_CPU && \$11 + 0 <= $MAX_STEAL && \$12 + 0 <= $MAX_STEAL"
MEDIAN_DIGITS=2
med() { median_of "$work/samples.tsv" "$1" "$2" "$3" "$4"; }   # column dut store/rw depth
cnt() { cell_rows "$work/samples.tsv" "$1" "$2" "$3" | grep -c .; }
kiops() { awk -v v="$1" 'BEGIN {if (v == "NA" || v == "") print "NA"; else printf "%.1fk", v / 1000}'; }
qsd_name="qsd"; [ "$QSD_IOTHREAD" = 1 ] && qsd_name="qsd (iothread)"

{
    echo "# vhost-user-blk: Sluice vs qemu-storage-daemon"
    echo
    echo "Generated by \`tools/bench/blk-vs-qsd.sh\` on $started in ${elapsed} s."
    echo
    echo "- Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)," \
         "$(qemu-storage-daemon --version 2>/dev/null | head -1); sluice binaries in $bindir built $built (HEAD was $rev)."
    echo "- Load average at start **$load_at_start**, at end $load_at_end. The machine is shared (other builds and"
    echo "  tests ran at the same time); busiest processes at start:"
    busy_block
    [ "${NICE:-0}" != 0 ] && echo "- Both backends and the driver ran at nice $NICE (the same for A and B) so that other builds took less of the cores."
    echo "- $REPEATS samples per cell, backends alternated (order flipped every repeat), fresh processes per sample,"
    echo "  ${RUN} s of 4 KiB random I/O each, ${SIZE_MB} MiB file written in full beforehand. Medians of the clean samples"
    echo "  (driver ≥ $MIN_CPU % of its CPU, steal ≤ $MAX_STEAL % on both CPUs); a cell without any uses all of its samples."
    [ -n "$NULL_NOTE" ] && echo "- $NULL_NOTE"
    echo
    echo "| store | rw | QD | $qsd_name IOPS | Sluice IOPS | ratio | $qsd_name p50 / p99 µs | Sluice p50 / p99 µs | $qsd_name busy cores | Sluice busy cores | $qsd_name CPU µs/IO | Sluice CPU µs/IO | $qsd_name IOPS/busy core | Sluice IOPS/busy core | **ratio** | samples A / B |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for store in $STORES; do
        for rw in $RWS; do
            for depth in $DEPTHS; do
                c="$store/$rw"
                ai=$(med 4 A "$c" "$depth"); bi=$(med 4 B "$c" "$depth")
                ac=$(med 9 A "$c" "$depth"); bc=$(med 9 B "$c" "$depth")
                echo "| $store | $rw | $depth | $(kiops "$ai") | $(kiops "$bi") | $(ratio "$ai" "$bi") |" \
                     "$(fmt "$(med 5 A "$c" "$depth")" 1) / $(fmt "$(med 6 A "$c" "$depth")" 1) |" \
                     "$(fmt "$(med 5 B "$c" "$depth")" 1) / $(fmt "$(med 6 B "$c" "$depth")" 1) |" \
                     "$(fmt "$(med 7 A "$c" "$depth")" 2) | $(fmt "$(med 7 B "$c" "$depth")" 2) |" \
                     "$(fmt "$(med 8 A "$c" "$depth")" 1) | $(fmt "$(med 8 B "$c" "$depth")" 1) |" \
                     "$(kiops "$ac") | $(kiops "$bc") | **$(ratio "$ac" "$bc")** | $(cnt A "$c" "$depth") / $(cnt B "$c" "$depth") |"
            done
        done
    done
    echo
    contended=$(awk -F'\t' "!($CLEAN_AWK)" "$work/samples.tsv" | wc -l)
    if [ "$contended" -gt 0 ]; then
        echo "**In $contended of $(wc -l <"$work/samples.tsv") samples the driver got less than $MIN_CPU % of its CPU, or"
        echo "steal exceeded $MAX_STEAL %;** the medians leave those out where a cell has clean ones."
        echo
    fi
    echo "IOPS, p50, p99: the driver's (sluice-gen blk load) completed requests per second and latency from"
    echo "publishing a request to the poll that found it used. Busy cores: the backend process's CPU seconds"
    echo "(utime + stime of all its threads, io_uring workers included, from /proc/PID/stat) / wall seconds of"
    echo "the driver's run. CPU µs/IO = busy cores / IOPS; IOPS/busy core = IOPS / busy cores. A busy-polling"
    echo "Sluice worker uses its whole core at any load, so at QD1 its CPU per I/O is mostly polling; the kernel's"
    echo "work for an O_DIRECT request done in interrupt context is counted for neither. Ratios are Sluice / $qsd_name"
    echo "(> 1 better, for IOPS and IOPS per busy core)."
    echo
    echo "## Raw samples"
    echo
    echo "sluice counted: blk.vda.reads + blk.vda.writes over the run (sluice-stat), which should equal the driver's requests."
    echo
    echo "| backend | store/rw | QD | IOPS | requests | sluice counted | errors | p50 µs | p99 µs | mean µs | busy cores | CPU µs/IO | IOPS/busy core | gen cpu % | steal % dut/gen | load1 | clean |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' -v q="$qsd_name" "{n = (\$1 == \"A\") ? \"A \" q : \"B sluice\"; c = ($CLEAN_AWK) ? \"yes\" : \"no\";"' printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s |\n", n, $2, $3, $4, $17, $15, $14, $5, $6, $16, $7, $8, $9, $10, $11, $12, $13, c}' "$work/samples.tsv"
    echo
    echo "## Commands"
    echo
    echo "Files: tmpfs \`$TMPFS_DIR/<tag>.img\`, disk \`$DISK_DIR/<tag>.img\` (${SIZE_MB} MiB from /dev/urandom, fsynced)."
    echo
    echo "Driver (RW = randread or randwrite, QD = 1 or 32):"
    echo '```'
    echo "$GEN_SHOWN"
    echo '```'
    echo "Backend A:"
    echo '```'
    echo "$QSD_SHOWN"
    echo '```'
    echo "Backend B (counters read with \`sluice-stat --instance <tag> --json\` before and after the driver):"
    echo '```'
    echo "$SLUICE_SHOWN"
    echo '```'
    echo '```ini'
    cat "$work/blk.ini.kept"
    echo '```'
} >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
echo "wrote $out (${elapsed} s)" >&2
