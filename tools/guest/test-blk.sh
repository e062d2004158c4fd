#!/bin/bash
# Real-guest test of a vhost-user-blk backend: a TCG QEMU guest with vhost-user-blk-pci disks
# against qemu-storage-daemon (BACKEND=qsd, the reference) or sluice (BACKEND=sluice, the same
# checks from `[disk]`/`[blk]` sections).
#
#   tools/guest/test-blk.sh [--backend qsd|sluice] [--phase all|disks|kill] [--log-level L]
#
#   --backend B   qsd (default: $BACKEND, else qsd) or sluice
#   --phase disks one guest boot with three disks (PCI slots 0x10, 0x11, 0x12):
#                 1. whole disk, writable: the guest writes 64 random 4 KiB blocks (64 KiB direct
#                    requests), reads them back (4 KiB direct), md5 matches; after the VM stops the
#                    host image holds the same bytes and nothing past them changed;
#                 2. GPT partition 2 of a 64 MiB sgdisk image (two partitions with chosen GUIDs,
#                    each filled with its own random pattern): sluice exports it by its partition
#                    GUID, qsd by raw offset/size; the guest sees exactly the partition's size and
#                    partition 2's first bytes, writes the disk's last 4 KiB block; on the host that
#                    block is in partition 2's last 4 KiB, the rest of partition 2, partition 1 and
#                    everything outside partition 2 are unchanged;
#                 3. read-only export (qsd writable=off, sluice read-only = true): the read matches
#                    the image, the write fails (refused by the guest kernel when the device offers
#                    VIRTIO_BLK_F_RO, else an error status), the image md5 is unchanged.
#                 sluice also: each disk's serial, the blk.<name>.* counters, SIGTERM exits 0.
#   --phase kill  backend in server mode, QEMU reconnect=1; the guest writes + reads back + compares
#                 one new 4 KiB block at a time (blocks 0, 1, 2, ...) for LOOP_SECS; after its first
#                 progress line (100 blocks) the backend gets SIGKILL and is started again (KILL_GAP s
#                 later) on the same socket and image; the loop must go on and finish, then read all
#                 its blocks again (those written before the kill from the restarted backend) and
#                 find them intact, with no I/O error in the guest's dmesg and one I/O that waited
#                 through the outage; the image must hold every block the guest wrote.
#   --phase all   disks, then kill (default)
#
# Environment: BACKEND, SLUICE_BIN_DIR (sluice, sluice-stat; default <repo>/.build/debug, then
# .build/release), BOOT_TIMEOUT (120), LOOP_SECS (12), KILL_GAP (0.5), SLUICE_KEEP=1 keeps the
# run directory. Output: progress on stderr, one `PASS ...` line on stdout (or `FAIL: ...`).
# Exit 0 pass, 1 fail, 2 bad usage, 77 skipped (one `SKIP: reason` line on stdout).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

BACKEND=${BACKEND:-qsd}
PHASE=all
LOG_LEVEL=info
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) BACKEND=${2:-}; shift ;;
        --phase) PHASE=${2:-}; shift ;;
        --log-level) LOG_LEVEL=${2:-}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "test-blk: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$BACKEND" in qsd|sluice) ;; *) echo "test-blk: --backend qsd|sluice" >&2; exit 2 ;; esac
case "$PHASE" in all|disks|kill) ;; *) echo "test-blk: --phase all|disks|kill" >&2; exit 2 ;; esac

# shellcheck source=lib.sh
source "$HERE/lib.sh"
sl_need_root "QEMU guests, /dev/shm"
sl_require qemu-system-x86_64 qemu-system-x86
sl_require sgdisk gdisk
if [ "$BACKEND" = qsd ]; then
    sl_require qemu-storage-daemon qemu-system-common
else
    sl_find_sluice
fi
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
LOOP_SECS=${LOOP_SECS:-12}
KILL_GAP=${KILL_GAP:-0.5}
CORES=0x1
POLL_OPT=(--poll 0)
INST="blktest-$$"
SHM=/dev/shm/sluice-$INST.stats

sl_setup "blk-$BACKEND"
sl_track_path "$SHM"
sl_ensure_guest >&2
LOG=$SL_RUN/sluice.log
SLUICE_PID=""
BPID=""          # the backend's pid (qsd or sluice)
VM=""
VM_NAME=""
RO_FLAG=""
SUMMARY=()

fail() {
    sl_log "FAIL ($BACKEND, phase $PHASE): $*"
    [ -z "$VM" ] || sl_markers "$SL_RUN/$VM_NAME.log" >&2
    # shellcheck disable=SC2119  # no extra sluice-stat options
    sl_fail_report
    echo "FAIL: $*"
    exit 1
}

MiB=1048576
# region_md5 FILE OFF LEN: md5 of LEN bytes of FILE from byte OFF.
region_md5() {
    dd if="$1" bs=$MiB iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none | md5sum | cut -d' ' -f1
}
file_md5() { md5sum <"$1" | cut -d' ' -f1; }
# field LINE KEY: the value of KEY=value in a marker line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# marker KIND SLOT: the guest's first `KIND ... slot=SLOT` line (empty if none).
marker() {
    sl_markers "$SL_RUN/$VM_NAME.log" | grep -E "^SLUICE-GUEST: $1 .* slot=$2\$" | head -n 1 || true
}

# need_marker KIND SLOT WHAT: that marker in LINE, or fail naming WHAT (and any BLK-FAIL for
# the slot).
need_marker() {
    LINE=$(marker "$1" "$2")
    if [ -z "$LINE" ]; then
        local why
        why=$(marker BLK-FAIL "$2")
        fail "$3: no $1 line from the guest${why:+ ($why)}"
    fi
}

# ---- images ----
WHOLE=$SL_RUN/whole.img
GPT=$SL_RUN/gpt.img
ROIMG=$SL_RUN/ro.img
LOOPIMG=$SL_RUN/loop.img
P1_GUID=5E1F0C2A-1111-4A4A-8B8B-0000000000A1
P2_GUID=5E1F0C2A-2222-4A4A-8B8B-0000000000A2
head -c $((16 * MiB)) /dev/urandom >"$WHOLE"
head -c $((8 * MiB)) /dev/urandom >"$ROIMG"
head -c $((16 * MiB)) /dev/urandom >"$LOOPIMG"

truncate -s $((64 * MiB)) "$GPT"
sgdisk -o -n 1:2048:+16M -t 1:8300 -u "1:$P1_GUID" -c 1:sluice-one \
    -n 2:0:+24M -t 2:8300 -u "2:$P2_GUID" -c 2:sluice-two "$GPT" >"$SL_RUN/sgdisk.out" 2>&1 ||
    fail "sgdisk: $(tail -n 1 "$SL_RUN/sgdisk.out")"
# part_bytes N: START and SIZE (bytes) of partition N; checks its unique GUID is GUID.
part_bytes() {
    local info first last guid
    info=$(sgdisk -i "$1" "$GPT")
    first=$(sed -n 's/^First sector: \([0-9]*\).*/\1/p' <<<"$info")
    last=$(sed -n 's/^Last sector: \([0-9]*\).*/\1/p' <<<"$info")
    guid=$(sed -n 's/^Partition unique GUID: \([0-9A-Fa-f-]*\).*/\1/p' <<<"$info")
    if [ -z "$first" ] || [ -z "$last" ]; then fail "sgdisk -i $1: no first/last sector in: $info"; fi
    [ "$guid" = "$2" ] || fail "partition $1 has GUID '$guid', wanted $2"
    START=$((first * 512))
    SIZE=$(((last - first + 1) * 512))
}
part_bytes 1 "$P1_GUID"; P1_START=$START; P1_SIZE=$SIZE
part_bytes 2 "$P2_GUID"; P2_START=$START; P2_SIZE=$SIZE
P2_END=$((P2_START + P2_SIZE))
GPT_SIZE=$(stat -c %s "$GPT")
head -c "$P1_SIZE" /dev/urandom >"$SL_RUN/pat1"
head -c "$P2_SIZE" /dev/urandom >"$SL_RUN/pat2"
dd if="$SL_RUN/pat1" of="$GPT" bs=$MiB seek="$P1_START" oflag=seek_bytes conv=notrunc status=none
dd if="$SL_RUN/pat2" of="$GPT" bs=$MiB seek="$P2_START" oflag=seek_bytes conv=notrunc status=none
sl_log "gpt.img: partition 1 at $P1_START+$P1_SIZE, partition 2 at $P2_START+$P2_SIZE ($GPT_SIZE bytes)"

# ---- backends ----
# start_qsd NAME EXPORT...: qemu-storage-daemon with the given --blockdev/--export arguments.
start_qsd() {
    local name=$1
    shift
    echo "==== $(date +%T) qemu-storage-daemon" >>"$SL_RUN/qsd-$name.log"
    qemu-storage-daemon "$@" </dev/null >>"$SL_RUN/qsd-$name.log" 2>&1 &
    BPID=$!
    sl_track_pid "$BPID"
}

# qsd_disk NODE FILE [RAW-OPTIONS]: --blockdev arguments for a file + raw node NODE.
qsd_disk() {
    echo "--blockdev driver=file,node-name=f$1,filename=$2 --blockdev driver=raw,node-name=$1,file=f$1${3:+,$3}"
}
# qsd_export NODE SOCKET WRITABLE
qsd_export() {
    echo "--export type=vhost-user-blk,id=e$1,node-name=$1,addr.type=unix,addr.path=$2,writable=$3,num-queues=1"
}

write_sluice_config() {   # FILE BODY
    {
        echo "; written by test-blk.sh"
        echo "[dataplane]"
        echo "socket-dir = $SL_RUN"
        echo "instance = $INST"
        echo
        printf '%s\n' "$2"
    } >"$1"
}

# start_backend CONFIG-NAME SOCKET...: start the backend for one phase and wait until it
# listens on every SOCKET (a stale socket file of a killed backend does not count).
start_backend() {
    local name=$1 s
    shift
    if [ "$BACKEND" = qsd ]; then
        # shellcheck disable=SC2046  # the helpers print separate arguments (no spaces in paths)
        case "$name" in
            disks) start_qsd disks $(qsd_disk dw "$WHOLE") \
                       $(qsd_disk dp "$GPT" "offset=$P2_START,size=$P2_SIZE") \
                       $(qsd_disk dr "$ROIMG") \
                       $(qsd_export dw "$SL_RUN/vda.sock" on) \
                       $(qsd_export dp "$SL_RUN/part2.sock" on) \
                       $(qsd_export dr "$SL_RUN/ro.sock" off) ;;
            kill) start_qsd kill $(qsd_disk dl "$LOOPIMG") $(qsd_export dl "$SL_RUN/loop.sock" on) ;;
        esac
    else
        if ! "$SLUICE" --check --config "$SL_RUN/$name.ini" --cores "$CORES" >"$SL_RUN/check.out" 2>&1; then
            sl_show_tail "$SL_RUN/$name.ini" 60
            fail "sluice --check $name.ini: $(grep -a -m 1 -i -E 'error|unknown' "$SL_RUN/check.out" || head -n 1 "$SL_RUN/check.out")"
        fi
        sl_start_sluice "$SL_RUN/$name.ini" "$SHM"
        BPID=$SLUICE_PID
    fi
    for s in "$@"; do
        sl_wait_listen "$BPID" "$s" 30 || fail "$BACKEND ($name) did not listen on $s"
    done
    sl_log "$BACKEND running (pid $BPID) for $name"
}

# stop_backend: qsd gets SIGTERM; sluice must exit 0 within 2 s of SIGTERM.
stop_backend() {
    if [ "$BACKEND" = sluice ]; then
        sl_sigterm_sluice
        sl_log "sluice stopped by SIGTERM in ${STOP_SECS}s, status 0"
        SLUICE_PID=""
    else
        sl_stop_pid "$BPID"
    fi
    BPID=""
}

# counter_is NAME OP VALUE: sluice's counter NAME compared with VALUE (OP -eq or -ge).
STATS_JSON=""
counter_is() {
    local v
    v=$(sl_counter "$STATS_JSON" "$1")
    [ -n "$v" ] || fail "sluice-stat has no counter $1"
    case "$2" in
        -eq) [ "$v" -eq "$3" ] ;;
        -ge) [ "$v" -ge "$3" ] ;;
    esac || fail "counter $1 = $v, wanted $2 $3"
}
read_stats() {
    STATS_JSON=$("$STAT" --instance "$INST" --json) || fail "sluice-stat --instance $INST --json failed"
}

# wait_done WHAT: the guest's DONE line (while the guest and the backend run), and no BLK-FAIL.
wait_done() {
    local line rc=0
    line=$(sl_wait_marker "$SL_RUN/$VM_NAME.log" 'SLUICE-GUEST: DONE' "$BOOT_TIMEOUT" 0 "$VM $BPID") || rc=$?
    if [ "$rc" != 0 ]; then
        sl_alive "$BPID" || fail "$1: $BACKEND (pid $BPID) exited before the guest finished"
        sl_alive "$VM" || fail "$1: QEMU (pid $VM) exited before the guest finished: $(tail -n 1 "$SL_RUN/$VM_NAME.qemu")"
        fail "$1: the guest did not finish within ${BOOT_TIMEOUT}s (no DONE line)"
    fi
    sl_markers "$SL_RUN/$VM_NAME.log" >&2
    case "$line" in *" fail=0"*) ;; *) fail "$1: $line; $(sl_markers "$SL_RUN/$VM_NAME.log" | grep BLK-FAIL | head -n 1)" ;; esac
}

# ---- phase disks: whole disk rw, GPT partition 2, read-only ----
phase_disks() {
    local whole_rest ro_md5 out1 out2 p1_md5 line md5 sectors blk
    whole_rest=$(region_md5 "$WHOLE" $((64 * 4096)) $((16 * MiB - 64 * 4096)))
    ro_md5=$(file_md5 "$ROIMG")
    out1=$(region_md5 "$GPT" 0 "$P2_START")
    out2=$(region_md5 "$GPT" "$P2_END" $((GPT_SIZE - P2_END)))
    p1_md5=$(file_md5 "$SL_RUN/pat1")

    write_sluice_config "$SL_RUN/disks.ini" "[disk whole]
file = $WHOLE
block-size = 512

[disk gpt]
file = $GPT
block-size = 512

[disk roimg]
file = $ROIMG
block-size = 512

[blk vda]
device = disk:whole
socket = vda.sock
mode = server
read-only = false
queues = 1
queue-size = 256
serial = sl-whole

[blk part2]
device = $P2_GUID
socket = part2.sock
mode = server
queues = 1
serial = sl-part2

[blk ro]
device = disk:roimg
socket = ro.sock
mode = server
read-only = true
serial = sl-ro"
    start_backend disks "$SL_RUN/vda.sock" "$SL_RUN/part2.sock" "$SL_RUN/ro.sock"
    VM_NAME="disks"
    sl_start_vm disks --blk-socket "$SL_RUN/vda.sock" --blk-socket "$SL_RUN/part2.sock" \
        --blk-socket "$SL_RUN/ro.sock" --append "sl.role=blk sl.blkchk=10:rw:64,11:tail:16,12:ro:64"
    VM=$SL_LAST_PID
    wait_done "disks"

    if [ "$BACKEND" = sluice ]; then
        for pair in 10:sl-whole 11:sl-part2 12:sl-ro; do
            need_marker BLK-DEV "${pair%%:*}" "serial"; line=$LINE
            [ "$(field "$line" serial)" = "${pair#*:}" ] || fail "disk at slot ${pair%%:*}: serial '$(field "$line" serial)', wanted ${pair#*:}"
        done
        need_marker BLK-DEV 12 "ro flag"
        RO_FLAG=$(field "$LINE" ro)
        read_stats
        counter_is blk.vda.write_bytes -eq $((64 * 4096))
        counter_is blk.vda.writes -ge 1
        counter_is blk.vda.read_bytes -ge $((64 * 4096))
        counter_is blk.part2.write_bytes -eq 4096
        counter_is blk.part2.read_bytes -ge $((17 * 4096))
        counter_is blk.ro.read_bytes -ge $((64 * 4096))
        counter_is blk.ro.write_bytes -eq 0
        if [ "$RO_FLAG" = 1 ]; then
            counter_is blk.ro.writes -eq 0     # the guest kernel refused the write
            counter_is blk.ro.errors.ioerr -eq 0
        else                                   # sluice answered the write with an error
            counter_is blk.ro.errors.ioerr -ge 0
            counter_is blk.ro.errors.unsupp -ge 0
            [ $(($(sl_counter "$STATS_JSON" blk.ro.errors.ioerr) + $(sl_counter "$STATS_JSON" blk.ro.errors.unsupp))) -ge 1 ] ||
                fail "read-only disk without VIRTIO_BLK_F_RO: no errors.ioerr/errors.unsupp for the refused write"
        fi
        counter_is blk.ro.inflight -eq 0
        for blk in vda part2; do
            counter_is "blk.$blk.errors.ioerr" -eq 0
            counter_is "blk.$blk.errors.unsupp" -eq 0
            counter_is "blk.$blk.inflight" -eq 0
        done
        sl_log "counters: vda wrote 262144 bytes, part2 4096, ro none; no errors on vda/part2, nothing in flight"
    fi
    sl_stop_pid "$VM"
    VM=""
    stop_backend

    # 1. whole disk
    need_marker BLK-OK 10 "whole disk"; line=$LINE
    md5=$(field "$line" md5)
    [ "$(region_md5 "$WHOLE" 0 $((64 * 4096)))" = "$md5" ] ||
        fail "whole disk: the image's first 64 blocks do not have the guest's md5 $md5"
    [ "$(region_md5 "$WHOLE" $((64 * 4096)) $((16 * MiB - 64 * 4096)))" = "$whole_rest" ] ||
        fail "whole disk: bytes past the guest's 64 blocks changed"
    sl_log "1. whole disk: guest md5 $md5 = image, rest unchanged"
    SUMMARY+=("whole disk md5 $md5 = image")

    # 2. GPT partition 2
    need_marker BLK-DEV 11 "partition"; line=$LINE
    sectors=$(field "$line" sectors)
    [ "$sectors" = $((P2_SIZE / 512)) ] || fail "partition: guest sees $sectors sectors, partition 2 has $((P2_SIZE / 512))"
    need_marker BLK-READ 11 "partition"; line=$LINE
    [ "$(field "$line" md5)" = "$(head -c $((16 * 4096)) "$SL_RUN/pat2" | md5sum | cut -d' ' -f1)" ] ||
        fail "partition: the guest's first 16 blocks are not partition 2's pattern ($line)"
    need_marker BLK-TAIL-OK 11 "partition"; line=$LINE
    [ "$(field "$line" block)" = $((P2_SIZE / 4096 - 1)) ] || fail "partition: guest wrote block $(field "$line" block), not the last"
    [ "$(region_md5 "$GPT" $((P2_END - 4096)) 4096)" = "$(field "$line" md5)" ] ||
        fail "partition: the last 4 KiB of partition 2 on the host are not what the guest wrote"
    [ "$(region_md5 "$GPT" "$P2_START" $((P2_SIZE - 4096)))" = "$(head -c $((P2_SIZE - 4096)) "$SL_RUN/pat2" | md5sum | cut -d' ' -f1)" ] ||
        fail "partition: partition 2 changed outside its last block"
    [ "$(region_md5 "$GPT" "$P1_START" "$P1_SIZE")" = "$p1_md5" ] || fail "partition: partition 1 changed"
    [ "$(region_md5 "$GPT" 0 "$P2_START")" = "$out1" ] || fail "partition: bytes before partition 2 changed"
    [ "$(region_md5 "$GPT" "$P2_END" $((GPT_SIZE - P2_END)))" = "$out2" ] || fail "partition: bytes after partition 2 changed"
    sl_log "2. partition 2: $sectors sectors, its pattern, last block written in place; partition 1 and the rest unchanged"
    SUMMARY+=("partition 2: $sectors sectors, tail write in place, partition 1 and outside unchanged")

    # 3. read-only (the write may be refused by the guest kernel, VIRTIO_BLK_F_RO, or fail with an
    # error status from the backend)
    need_marker BLK-READ 12 "read-only"; line=$LINE
    [ "$(field "$line" md5)" = "$(region_md5 "$ROIMG" 0 $((64 * 4096)))" ] || fail "read-only: the guest's read does not match the image ($line)"
    need_marker BLK-RO-OK 12 "read-only"; line=$LINE
    RO_FLAG=$(field "$(marker BLK-DEV 12)" ro)
    [ "$(file_md5 "$ROIMG")" = "$ro_md5" ] || fail "read-only: the image changed"
    sl_log "3. read-only: read matches, ${line#*BLK-RO-OK }, image unchanged"
    SUMMARY+=("read-only: read matches, write refused (guest ro=$RO_FLAG), image unchanged")
}

# ---- phase kill: SIGKILL + restart of the backend during the guest's write+verify loop ----
phase_kill() {
    local off line t0 t1 gap before blocks slowest
    write_sluice_config "$SL_RUN/kill.ini" "[disk loopimg]
file = $LOOPIMG
block-size = 512

[blk loop]
device = disk:loopimg
socket = loop.sock
mode = server
queues = 1
serial = sl-loop"
    start_backend kill "$SL_RUN/loop.sock"
    VM_NAME="kill"
    sl_start_vm kill --blk-socket "$SL_RUN/loop.sock" --reconnect 1 \
        --append "sl.role=blk sl.blkchk=10:loop:4096 sl.loopsecs=$LOOP_SECS"
    VM=$SL_LAST_PID
    sl_wait_marker "$SL_RUN/kill.log" 'BLK-LOOP-START' "$BOOT_TIMEOUT" 0 "$VM $BPID" >/dev/null ||
        fail "kill: the guest's loop did not start"
    line=$(sl_wait_marker "$SL_RUN/kill.log" 'BLK-LOOP-PROGRESS|BLK-FAIL' 60 0 "$VM $BPID") ||
        fail "kill: no progress from the guest's loop"
    case "$line" in *BLK-FAIL*) fail "kill: before the kill: $line" ;; esac
    sl_log "kill: $line"
    before=$(field "$line" iter)
    [ "$(sl_count_markers "$SL_RUN/kill.log" 'BLK-LOOP-OK')" = 0 ] || fail "kill: the loop ended before the kill"
    off=$(sl_log_size "$SL_RUN/kill.log")
    t0=$(date +%s.%N)
    kill -KILL "$BPID"
    wait "$BPID" 2>/dev/null || true
    sl_log "kill: $BACKEND (pid $BPID) killed with SIGKILL"
    sleep "$KILL_GAP"
    start_backend kill "$SL_RUN/loop.sock"
    t1=$(date +%s.%N)
    gap=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    sl_log "kill: $BACKEND listening again ${gap}s after the kill"
    line=$(sl_wait_marker "$SL_RUN/kill.log" 'BLK-LOOP-PROGRESS|BLK-LOOP-OK|BLK-FAIL' 60 "$off" "$VM $BPID") ||
        fail "kill: the guest's loop did not go on after the restart"
    case "$line" in *BLK-FAIL*) fail "kill: after the restart: $line" ;; esac
    wait_done "kill"
    need_marker BLK-LOOP-OK 10 "kill"; line=$LINE
    need_marker BLK-DMESG-OK 10 "kill: guest dmesg"
    if [ "$BACKEND" = sluice ]; then
        read_stats
        counter_is blk.loop.writes -ge 1
        counter_is blk.loop.errors.ioerr -eq 0
        counter_is blk.loop.inflight -eq 0
    fi
    blocks=$(field "$line" blocks)
    slowest=$(field "$line" slowest_ms)
    [ "$blocks" -gt "$before" ] || fail "kill: the guest wrote $blocks blocks in all, no more than the $before before the kill"
    # One write or read must have waited for the restarted backend (else the kill missed the I/O).
    awk -v s="$slowest" -v g="$KILL_GAP" 'BEGIN { exit !(s >= g * 500) }' ||
        fail "kill: the guest's slowest I/O took $slowest ms; none waited through the ${KILL_GAP}s outage"
    sl_stop_pid "$VM"
    VM=""
    stop_backend
    [ "$(region_md5 "$LOOPIMG" 0 $((blocks * 4096)))" = "$(field "$line" md5)" ] ||
        fail "kill: the image's first $blocks blocks are not what the guest wrote"
    sl_log "kill: $blocks blocks written + verified ($before before the kill), all read again intact, slowest I/O $slowest ms; image = guest's writes"
    SUMMARY+=("kill -9 mid-loop: listening again after ${gap}s, $blocks blocks written+verified ($before before the kill, slowest I/O $slowest ms), all read back intact afterwards, no I/O error, image = guest's writes")
}

case "$PHASE" in
    all) phase_disks; phase_kill ;;
    disks) phase_disks ;;
    kill) phase_kill ;;
esac
summary=$(printf '%s; ' "${SUMMARY[@]}")
echo "PASS test-blk $BACKEND phase=$PHASE: ${summary%; }"
