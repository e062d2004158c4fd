#!/bin/bash
# Real-peer check of the guest's blk role against qemu-storage-daemon as vhost-user-blk
# backend: (1) writable export, the guest writes random blocks, reads them back, and the host
# sees the same checksum in the image; (2) read-only export, the guest reads the same blocks
# and its write is refused.
#
#   tools/guest/demo-qsd-blk.sh        exit 0 when both checks pass (SLUICE_KEEP=1 keeps logs)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
BLOCKS=64    # 4 KiB blocks the guest writes and reads

sl_setup qsd-blk
sl_ensure_guest
sl_need_cmd qemu-storage-daemon qemu-system-common

fail() {
    sl_log "FAIL: $*"
    local f
    for f in "$SL_RUN"/*.log "$SL_RUN"/*.qemu; do
        [ -s "$f" ] && sl_show_tail "$f" 25
    done
    exit 1
}

IMG=$SL_RUN/disk.img
truncate -s 16M "$IMG"

# start_qsd on|off: export IMG over $SL_RUN/blk.sock; pid in QSD.
start_qsd() {
    rm -f "$SL_RUN/blk.sock"
    qemu-storage-daemon \
        --blockdev "driver=file,node-name=f0,filename=$IMG" \
        --blockdev driver=raw,node-name=d0,file=f0 \
        --export "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$SL_RUN/blk.sock,writable=$1,num-queues=1" \
        >"$SL_RUN/qsd-$1.log" 2>&1 &
    QSD=$!
    sl_track_pid "$QSD"
    sl_wait_path "$SL_RUN/blk.sock" 30 "$QSD" || fail "qemu-storage-daemon socket"
}

# ---- 1: writable ----
start_qsd on
sl_start_vm rw --blk-socket "$SL_RUN/blk.sock" --append "sl.role=blk sl.blocks=$BLOCKS"
VM=$SL_LAST_PID
line=$(sl_wait_marker "$SL_RUN/rw.log" 'BLK-(OK|FAIL)' "$BOOT_TIMEOUT" 0 "$VM") || fail "guest rw"
sl_log "rw: $line"
case "$line" in *BLK-OK*) ;; *) fail "guest rw: $line" ;; esac
guest_md5=$(echo "$line" | sed -n 's/.*md5=\([0-9a-f]*\).*/\1/p')
sl_wait_marker "$SL_RUN/rw.log" 'DONE' 30 0 >/dev/null || true
sl_stop_pid "$VM"
sl_stop_pid "$QSD"
host_md5=$(head -c $((BLOCKS * 4096)) "$IMG" | md5sum | cut -d' ' -f1)
[ "$guest_md5" = "$host_md5" ] || fail "image md5 $host_md5 != guest md5 $guest_md5"
sl_log "host image md5 $host_md5 matches the guest's"

# ---- 2: read-only ----
start_qsd off
sl_start_vm ro --blk-socket "$SL_RUN/blk.sock" --append "sl.role=blk sl.blk=ro sl.blocks=$BLOCKS"
VM=$SL_LAST_PID
line=$(sl_wait_marker "$SL_RUN/ro.log" 'DONE' "$BOOT_TIMEOUT" 0 "$VM") || fail "guest ro"
sl_markers "$SL_RUN/ro.log" >&2
sl_count_markers "$SL_RUN/ro.log" "BLK-READ md5=$host_md5" | grep -qx 1 || fail "ro read md5"
sl_count_markers "$SL_RUN/ro.log" 'BLK-RO-OK' | grep -qx 1 || fail "ro write not refused"
sl_log "PASS: rw write/read-back md5 $host_md5, ro read matches and write refused"
