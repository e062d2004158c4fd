#!/bin/bash
# Real-VM system test of sluice's p2p link: two QEMU guests (TCG) on two vhost-user ports
# joined by `[p2p link0]`; guest A (10.0.0.1, role ping) pings guest B (10.0.0.2, role serve).
#
#   tools/guest/test-sluice-p2p.sh [--mode server|client] [--phase all|ping|reset|restart]
#                                  [--poll-arg N|event] [--restart-poll-arg N|event]
#                                  [--log-level LEVEL]
#
#   --mode server   sluice listens, QEMU connects (chardev reconnect=1)           (default)
#   --mode client   QEMU listens (server=on,wait=off), sluice connects with backoff; sluice
#                   starts first, before the sockets exist
#   --phase ping    first PING-OK, then the counter check
#   --phase reset   + system_reset of guest A through its monitor: a second BOOT and a new PING-OK
#   --phase restart + sluice stopped with SIGTERM mid-ping (must exit 0 within 2 s and leave no
#                   socket of its own and no /dev/shm/sluice-<instance>.stats), started again;
#                   ping must resume
#   --phase all     ping, reset, restart                                          (default)
#   --poll-arg N    sluice --poll N (0 = busy poll, default); `event` = no --poll (event mode)
#   --restart-poll-arg N|event   the poll setting of the restarted sluice (default: the same),
#                   so one run covers two idle policies
#   --log-level L   sluice --log-level (default debug; the log is shown on failure)
#
# Every phase ends with: port counters of the running sluice moved (rx_packets > 0 on both
# ports, per sluice-stat --json) and drop.bad_desc = 0; then sluice is stopped with SIGTERM and
# checked the same way as in the restart phase.
#
# Environment: SLUICE_BIN_DIR (sluice, sluice-stat; default <repo>/.build/debug, then
# .build/release), SLUICE_CORES (default 1), BOOT_TIMEOUT (120), PING_TIMEOUT (60),
# CLIENT_DELAY (2: seconds sluice retries before the guests start, client mode),
# SLUICE_KEEP=1 keeps the run directory.
# Output: progress on stderr, one `PASS ...` line on stdout. Exit 0 pass, 1 fail,
# 2 bad usage, 77 skipped (a prerequisite is missing; one `SKIP: reason` line on stdout).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

MODE=server
PHASE=all
POLL_ARG=0
LOG_LEVEL=debug
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE=${2:-}; shift ;;
        --phase) PHASE=${2:-}; shift ;;
        --poll-arg) POLL_ARG=${2:-}; shift ;;
        --restart-poll-arg) RESTART_POLL_ARG=${2:-}; shift ;;
        --log-level) LOG_LEVEL=${2:-}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "test-sluice-p2p: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$MODE" in server|client) ;; *) echo "test-sluice-p2p: --mode server|client" >&2; exit 2 ;; esac
case "$PHASE" in all|ping|reset|restart) ;; *) echo "test-sluice-p2p: --phase all|ping|reset|restart" >&2; exit 2 ;; esac
RESTART_POLL_ARG=${RESTART_POLL_ARG:-$POLL_ARG}
# set_poll ARG: POLL_OPT = sluice's poll option for ARG (a number of µs, or event).
set_poll() {
    case "$1" in
        event) POLL_OPT=() ;;
        '' | *[!0-9]*) echo "test-sluice-p2p: --poll-arg/--restart-poll-arg take a number of µs or 'event'" >&2; exit 2 ;;
        *) POLL_OPT=(--poll "$1") ;;
    esac
}
set_poll "$RESTART_POLL_ARG"
set_poll "$POLL_ARG"

# shellcheck source=lib.sh
source "$HERE/lib.sh"
sl_need_root "QEMU guests, hugepages, /dev/shm"
sl_require qemu-system-x86_64 qemu-system-x86
sl_find_sluice
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
PING_TIMEOUT=${PING_TIMEOUT:-60}
CORES=${SLUICE_CORES:-1}
INST="systest-$$"
SHM=/dev/shm/sluice-$INST.stats
poll_name() { if [ "$1" = event ]; then echo event; else echo "poll=$1"; fi; }
POLL_NAME=$(poll_name "$POLL_ARG")
[ "$RESTART_POLL_ARG" = "$POLL_ARG" ] || POLL_NAME="$POLL_NAME restart-$(poll_name "$RESTART_POLL_ARG")"

sl_setup "sluice-p2p-$MODE"
sl_track_path "$SHM"
sl_ensure_guest >&2
SOCK_A=$SL_RUN/a.sock
SOCK_B=$SL_RUN/b.sock
LOG=$SL_RUN/sluice.log
SLUICE_PID=""

fail() {
    sl_log "FAIL ($MODE, $POLL_NAME, phase $PHASE): $*"
    # shellcheck disable=SC2119  # no extra sluice-stat options
    sl_fail_report
    echo "FAIL: $*"
    exit 1
}

# ---- sluice ----
cat >"$SL_RUN/p2p.ini" <<EOF
; written by test-sluice-p2p.sh
[dataplane]
hugepages = auto
instance = $INST

[port a]
type = vhost-user
socket = $SOCK_A
mode = $MODE
mac = 02:00:00:00:00:0a

[port b]
type = vhost-user
socket = $SOCK_B
mode = $MODE
mac = 02:00:00:00:00:0b

[p2p link0]
ports = a, b
EOF

# start_sluice: start sluice (log appended to $LOG), wait for its stats segment and, in
# server mode, for its sockets. Pid in SLUICE_PID.
start_sluice() {
    sl_start_sluice "$SL_RUN/p2p.ini" "$SHM"
    if [ "$MODE" = server ]; then sl_wait_listening "$SOCK_A" "$SOCK_B"; fi
    sl_log "sluice running (pid $SLUICE_PID, ${POLL_OPT[*]:-event mode})"
}

# stop_sluice: SIGTERM; it must exit with status 0 within 2 s and remove its stats segment
# and (server mode) its sockets. Leaves the stop time in STOP_SECS.
stop_sluice() {
    sl_sigterm_sluice
    [ ! -e "$SHM" ] || fail "sluice left $SHM behind"
    if [ "$MODE" = server ]; then
        if [ -e "$SOCK_A" ] || [ -e "$SOCK_B" ]; then
            fail "sluice left its socket(s) behind: $(ls "$SL_RUN"/*.sock)"
        fi
    else
        if [ ! -S "$SOCK_A" ] || [ ! -S "$SOCK_B" ]; then fail "QEMU's listening sockets vanished"; fi
    fi
    sl_log "sluice stopped by SIGTERM in ${STOP_SECS}s, status 0, nothing left behind"
}

counter() { sl_counter "$@"; }

# check_counters WHEN: rx_packets > 0 on both ports, drop.bad_desc = 0. Sets COUNTERS.
check_counters() {
    local json p rx tx bad
    json=$("$STAT" --instance "$INST" --json) || fail "sluice-stat --instance $INST failed ($1)"
    COUNTERS=""
    for p in a b; do
        rx=$(counter "$json" "port.$p.rx_packets")
        tx=$(counter "$json" "port.$p.tx_packets")
        bad=$(counter "$json" "port.$p.drop.bad_desc")
        if [ -z "$rx" ] || [ -z "$tx" ] || [ -z "$bad" ]; then fail "counters of port $p missing ($1): $json"; fi
        [ "$rx" -gt 0 ] || fail "port.$p.rx_packets = 0 after ping ($1): $json"
        [ "$bad" = 0 ] || fail "port.$p.drop.bad_desc = $bad ($1): $json"
        COUNTERS="$COUNTERS $p:rx=$rx,tx=$tx"
    done
    COUNTERS=${COUNTERS# }
    sl_log "counters ($1): $COUNTERS, drop.bad_desc 0; $json"
}

# wait_ping WHAT FROM: a PING-OK of guest A after byte FROM of its log; the line in LINE.
wait_ping() {
    LINE=$(sl_wait_marker "$SL_RUN/a.log" 'PING-OK' "$PING_TIMEOUT" "$2" "$VM_A $VM_B $SLUICE_PID") ||
        fail "no PING-OK $1 within ${PING_TIMEOUT}s"
    sl_log "a: $LINE"
}

# In client mode sluice starts first and retries until QEMU's sockets appear (backoff):
# the guests start CLIENT_DELAY seconds later, so several connects fail first.
VM_OPT=()
if [ "$MODE" = client ]; then
    VM_OPT=(--client-chardev)
    start_sluice
    sleep "${CLIENT_DELAY:-2}"
    sl_alive "$SLUICE_PID" || fail "sluice exited while its sockets were missing"
fi
# Server mode: reconnect=1 lets QEMU wait for the sockets at start-up and reconnect after a
# sluice restart (run-vm.sh's default); sluice starts first all the same.
[ "$MODE" = server ] && { VM_OPT=(--reconnect 1); start_sluice; }

# ---- guests ----
sl_start_vm b "${VM_OPT[@]}" --socket "$SOCK_B" --mac 52:54:00:53:00:02 \
    --append "sl.role=serve sl.ip=10.0.0.2/24 sl.timeout=0"
VM_B=$SL_LAST_PID
sl_start_vm a "${VM_OPT[@]}" --socket "$SOCK_A" --mac 52:54:00:53:00:01 \
    --append "sl.role=ping sl.ip=10.0.0.1/24 sl.peer=10.0.0.2 sl.count=3 sl.round=8 sl.timeout=0"
VM_A=$SL_LAST_PID
ALL="$VM_A $VM_B $SLUICE_PID"

sl_guest_line b 'SERVE-READY' 0 "guest b not ready"
sl_guest_line a 'SLUICE-GUEST: BOOT' 0 "guest a did not boot"
T_BOOT=$(sl_elapsed)
wait_ping "(first)" 0
T_FIRST=$(sl_elapsed)
check_counters "first ping"
SUMMARY="first PING-OK at ${T_FIRST}s (guest a booted at ${T_BOOT}s) [$COUNTERS]"

# ---- reset guest A ----
if [ "$PHASE" = all ] || [ "$PHASE" = reset ]; then
    off=$(sl_log_size "$SL_RUN/a.log")
    t0=$(sl_elapsed)
    sl_reset_guest a
    sl_guest_line a 'SLUICE-GUEST: BOOT' "$off" "guest a did not boot again after system_reset"
    off=$(sl_log_size "$SL_RUN/a.log")
    wait_ping "after the guest reset" "$off"
    boots=$(sl_count_markers "$SL_RUN/a.log" 'SLUICE-GUEST: BOOT')
    [ "$boots" -eq 2 ] || fail "guest a booted $boots times, expected 2"
    check_counters "after reset"
    t1=$(sl_elapsed)
    SUMMARY="$SUMMARY; reset: ping back after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"
fi

# ---- restart sluice mid-ping ----
if [ "$PHASE" = all ] || [ "$PHASE" = restart ]; then
    off=$(sl_log_size "$SL_RUN/a.log")
    wait_ping "before the restart" "$off"    # ping is running right now
    t0=$(sl_elapsed)
    sl_log "SIGTERM sluice mid-ping"
    stop_sluice
    RESTART_STOP=$STOP_SECS
    set_poll "$RESTART_POLL_ARG"
    start_sluice
    ALL="$VM_A $VM_B $SLUICE_PID"
    # A round may straddle the restart: the second PING-OK after it is all new traffic.
    off=$(sl_log_size "$SL_RUN/a.log")
    wait_ping "after the sluice restart" "$off"
    off=$(sl_log_size "$SL_RUN/a.log")
    wait_ping "(second round) after the sluice restart" "$off"
    t1=$(sl_elapsed)
    check_counters "after restart"
    SUMMARY="$SUMMARY; restart: stop ${RESTART_STOP}s, ping back after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s [$COUNTERS]"
fi

# ---- final stop with live front-ends, then the guests ----
fails=$(sl_count_markers "$SL_RUN/a.log" 'PING-FAIL')
stop_sluice
SUMMARY="$SUMMARY; final stop ${STOP_SECS}s; PING-FAIL rounds ${fails}"
sl_finish
echo "PASS test-sluice-p2p mode=$MODE $POLL_NAME phase=$PHASE: $SUMMARY; total $(sl_elapsed)s"
