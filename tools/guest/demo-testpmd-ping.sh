#!/bin/bash
# Real-peer check of the test guests against a backend nobody here wrote: DPDK testpmd as a
# vhost-user-net backend with two ports forwarding to each other (io mode), the same job as
# sluice's p2p link. Guest A (10.0.0.1, role ping) pings guest B (10.0.0.2, role serve);
# then guest A is reset through its QEMU monitor and ping must resume after the reboot; then
# testpmd is killed (-KILL) and restarted, and ping must resume once QEMU has reconnected.
#
#   tools/guest/demo-testpmd-ping.sh            exit 0 when both checks pass
#   SLUICE_KEEP=1 tools/guest/demo-testpmd-ping.sh   keep the run directory (logs)
#   BACKEND_CLIENT=1 tools/guest/demo-testpmd-ping.sh QEMU listens, testpmd connects
#
# Template for sluice tests: replace the testpmd part with sluice, keep the guest part.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
# BACKEND_CLIENT=1: QEMU listens on the sockets (run-vm.sh --client-chardev) and testpmd
# connects to them (client=1), the setup for sluice in client mode.
BACKEND_CLIENT=${BACKEND_CLIENT:-0}
VDEV_OPT=""
VM_OPT=()
if [ "$BACKEND_CLIENT" = 1 ]; then
    VDEV_OPT=",client=1"
    VM_OPT=(--client-chardev)
fi
PING_TIMEOUT=${PING_TIMEOUT:-90}

sl_setup testpmd-ping
sl_ensure_guest
sl_need_cmd dpdk-testpmd dpdk

fail() {
    sl_log "FAIL: $*"
    local f
    for f in "$SL_RUN"/*.log "$SL_RUN"/*.qemu; do
        [ -s "$f" ] && sl_show_tail "$f" 25
    done
    exit 1
}

# ---- backend: testpmd, two vhost-user ports (it listens on both sockets) ----
# start_testpmd: (re)start testpmd with its stdin on a fifo held open by fd TPIN; pid in TESTPMD.
start_testpmd() {
    rm -f "$SL_RUN/testpmd.in"
    [ "$BACKEND_CLIENT" = 1 ] || rm -f "$SL_RUN/vh0.sock" "$SL_RUN/vh1.sock"
    mkfifo "$SL_RUN/testpmd.in"
    local off
    off=$(sl_log_size "$SL_RUN/testpmd.log")
    dpdk-testpmd -l 0-1 --no-pci --no-huge -m 512 --file-prefix "sluice-demo-$$" \
        --vdev "net_vhost0,iface=$SL_RUN/vh0.sock,queues=1$VDEV_OPT" \
        --vdev "net_vhost1,iface=$SL_RUN/vh1.sock,queues=1$VDEV_OPT" \
        -- -i --forward-mode=io --total-num-mbufs=16384 \
        <"$SL_RUN/testpmd.in" >>"$SL_RUN/testpmd.log" 2>&1 &
    TESTPMD=$!
    sl_track_pid "$TESTPMD"
    exec {TPIN}>"$SL_RUN/testpmd.in"    # keeps testpmd's stdin open
    if [ "$BACKEND_CLIENT" = 0 ]; then
        sl_wait_path "$SL_RUN/vh0.sock" 30 "$TESTPMD" || fail "testpmd socket vh0"
        sl_wait_path "$SL_RUN/vh1.sock" 30 "$TESTPMD" || fail "testpmd socket vh1"
    fi
    sl_wait_marker "$SL_RUN/testpmd.log" 'testpmd> ' 30 "$off" "$TESTPMD" >/dev/null || fail "testpmd prompt"
    tp start
    sl_wait_marker "$SL_RUN/testpmd.log" 'io packet forwarding' 10 "$off" "$TESTPMD" >/dev/null ||
        fail "testpmd start"
    sl_log "testpmd forwarding (pid $TESTPMD)"
}
tp() { printf '%s\n' "$*" >&"$TPIN"; }
sl_track_path "/var/run/dpdk/sluice-demo-$$"    # EAL runtime dir of this --file-prefix
start_testpmd

# ---- guests ----
sl_start_vm b "${VM_OPT[@]}" --socket "$SL_RUN/vh1.sock" --mac 52:54:00:53:00:02 \
    --append "sl.role=serve sl.ip=10.0.0.2/24 sl.timeout=300"
VM_B=$SL_LAST_PID
sl_start_vm a "${VM_OPT[@]}" --socket "$SL_RUN/vh0.sock" --mac 52:54:00:53:00:01 \
    --append "sl.role=ping sl.ip=10.0.0.1/24 sl.peer=10.0.0.2 sl.count=5 sl.round=10 sl.timeout=300"
VM_A=$SL_LAST_PID

line=$(sl_wait_marker "$SL_RUN/b.log" 'SERVE-READY' "$BOOT_TIMEOUT" 0 "$VM_B") || fail "guest b not ready"
sl_log "b: $line"
line=$(sl_wait_marker "$SL_RUN/a.log" 'SLUICE-GUEST: BOOT' "$BOOT_TIMEOUT" 0 "$VM_A") || fail "guest a did not boot"
sl_log "a: $line"
line=$(sl_wait_marker "$SL_RUN/a.log" 'PING-OK' "$PING_TIMEOUT" 0 "$VM_A") || fail "no ping before reset"
sl_log "a: $line"
T_FIRST=$(sl_elapsed)

# ---- reboot guest A and check that ping resumes ----
off=$(sl_log_size "$SL_RUN/a.log")
sl_log "system_reset guest a"
sl_monitor "$SL_RUN/a.mon" system_reset >/dev/null || fail "monitor command"
T_RESET=$(sl_elapsed)
line=$(sl_wait_marker "$SL_RUN/a.log" 'SLUICE-GUEST: BOOT' "$BOOT_TIMEOUT" "$off" "$VM_A") ||
    fail "guest a did not boot again"
sl_log "a: $line"
line=$(sl_wait_marker "$SL_RUN/a.log" 'PING-OK' "$PING_TIMEOUT" "$off" "$VM_A") || fail "ping did not resume"
sl_log "a: $line"
T_RESUMED=$(sl_elapsed)

# ---- crash and restart the backend; QEMU (reconnect=1) or testpmd (client=1) reconnects ----
off=$(sl_log_size "$SL_RUN/a.log")
sl_log "kill -KILL testpmd (backend crash)"
kill -KILL "$TESTPMD"
wait "$TESTPMD" 2>/dev/null || true
exec {TPIN}>&-
line=$(sl_wait_marker "$SL_RUN/a.log" 'PING-FAIL' "$PING_TIMEOUT" "$off" "$VM_A") ||
    fail "ping did not fail while the backend was down"
sl_log "a: $line"
T_CRASH_SEEN=$(sl_elapsed)
start_testpmd
off=$(sl_log_size "$SL_RUN/a.log")
line=$(sl_wait_marker "$SL_RUN/a.log" 'PING-OK' "$PING_TIMEOUT" "$off" "$VM_A") ||
    fail "ping did not resume after the backend restart"
sl_log "a: $line"
T_BACKEND=$(sl_elapsed)

# ---- report ----
tp stop
sl_stop_pid "$VM_A"
sl_stop_pid "$VM_B"
tp quit
for _ in $(seq 100); do kill -0 "$TESTPMD" 2>/dev/null || break; sleep 0.1; done
sl_log "testpmd forward statistics (port 0 = guest a, port 1 = guest b):"
grep -a -E -A2 'Forward statistics for port' "$SL_RUN/testpmd.log" | grep -a -E 'port|packets' >&2 || true
sl_log "guest a markers:"
sl_markers "$SL_RUN/a.log" >&2
sl_log "guest b markers:"
sl_markers "$SL_RUN/b.log" >&2
boots=$(sl_count_markers "$SL_RUN/a.log" 'SLUICE-GUEST: BOOT')
[ "$boots" -eq 2 ] || fail "guest a booted $boots times, expected 2"
sl_log "PASS: first PING-OK at ${T_FIRST}s; guest reset at ${T_RESET}s, ping resumed at ${T_RESUMED}s;" \
    "backend killed, PING-FAIL seen at ${T_CRASH_SEEN}s, ping resumed after restart at ${T_BACKEND}s"
