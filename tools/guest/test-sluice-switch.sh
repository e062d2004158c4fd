#!/bin/bash
# Real-VM system test of sluice's learning switch: two QEMU guests (TCG) on vhost-user ports vm1
# and vm2 and a tap port host0 (moved into a network namespace) on `[switch br0]`.
#
#   tools/guest/test-sluice-switch.sh [--poll-arg N|event] [--log-level LEVEL]
#
#   guest A  vm1  02:00:00:00:01:01  10.0.0.1/24  role ping, peers 10.0.0.2 and 10.0.0.3 in turn
#   guest B  vm2  02:00:00:00:01:02  10.0.0.2/24  role serve
#   netns    host0 (tap sl-g<pid>)  02:00:00:00:01:03  10.0.0.3/24
#
# Checks, in order:
#   reach    guest A gets PING-OK from B and from the namespace; the namespace pings both
#            guests (ping -c 3, all replies within 10 s each)
#   fdb      `sluice-stat --fdb br0` lists the three MACs on vm1, vm2, host0 and nothing else
#            (but the tap's first MAC on host0: the host kernel may send from it before the
#            tap is moved and given its fixed MAC); switch.br0.macs = the number of entries
#   reset    guest A rebooted by system_reset on its monitor while it pings and the namespace
#            pings it: switch.br0.flushed grows, vm1's MAC leaves the table while vm2's and
#            host0's stay; after the new BOOT guest A pings both peers again, the namespace
#            pings it, and its MAC is learned again on vm1
#   stop     SIGTERM: sluice exits 0 within 2 s and leaves no socket, no
#            /dev/shm/sluice-<instance>.* file and no tap interface behind
# After reach and reset: rx_packets > 0 on every port, drop.bad_desc = 0 on the vhost-user ports.
#
#   --poll-arg N    sluice --poll N (0 = busy poll, default); `event` = no --poll (event mode)
#   --log-level L   sluice --log-level (default debug; the log is shown on failure)
#
# Environment: SLUICE_BIN_DIR (sluice, sluice-stat; default <repo>/.build/debug, then
# .build/release), SLUICE_CORES (default 1), BOOT_TIMEOUT (120), PING_TIMEOUT (60),
# FLUSH_TIMEOUT (15), SLUICE_KEEP=1 keeps the run directory.
# Output: progress on stderr, one `PASS ...` line on stdout. Exit 0 pass, 1 fail,
# 2 bad usage, 77 skipped (a prerequisite is missing; one `SKIP: reason` line on stdout).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

POLL_ARG=0
LOG_LEVEL=debug
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --poll-arg) POLL_ARG=${2:-}; shift ;;
        --log-level) LOG_LEVEL=${2:-}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "test-sluice-switch: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$POLL_ARG" in
    event) POLL_OPT=(); POLL_NAME=event ;;
    '' | *[!0-9]*) echo "test-sluice-switch: --poll-arg takes a number of µs or 'event'" >&2; exit 2 ;;
    *) POLL_OPT=(--poll "$POLL_ARG"); POLL_NAME="poll=$POLL_ARG" ;;
esac

# shellcheck source=lib.sh
source "$HERE/lib.sh"
sl_need_root "QEMU guests, tap, network namespaces, /dev/shm"
sl_require qemu-system-x86_64 qemu-system-x86
sl_require ip iproute2
sl_require ping iputils-ping
sl_need_tun
sl_find_sluice
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
PING_TIMEOUT=${PING_TIMEOUT:-60}
FLUSH_TIMEOUT=${FLUSH_TIMEOUT:-15}
CORES=${SLUICE_CORES:-1}
INST="swtest-$$"
SHM_STATS=/dev/shm/sluice-$INST.stats
NS="sl-sw-$$"
TAP="sl-g$$"
MAC_A=02:00:00:00:01:01
MAC_B=02:00:00:00:01:02
MAC_NS=02:00:00:00:01:03

sl_setup "sluice-switch"
# Whatever happens: no namespace and no shared-memory file of this instance stay behind
# (sl_cleanup runs these after sluice and the guests are stopped).
sl_on_cleanup "rm -f /dev/shm/sluice-$INST.*"
sl_on_cleanup "ip netns del $NS 2>/dev/null"
sl_ensure_guest >&2
SOCK_A=$SL_RUN/vm1.sock
SOCK_B=$SL_RUN/vm2.sock
LOG=$SL_RUN/sluice.log
SLUICE_PID=""
VM_A=""
VM_B=""

fail() {
    sl_log "FAIL ($POLL_NAME): $*"
    sl_fail_report --fdb br0
    echo "FAIL: $*"
    exit 1
}

# ---- sluice ----
cat >"$SL_RUN/switch.ini" <<EOF
; written by test-sluice-switch.sh
[dataplane]
hugepages = auto
instance = $INST

[port vm1]
type = vhost-user
socket = $SOCK_A
mac = $MAC_A

[port vm2]
type = vhost-user
socket = $SOCK_B
mac = $MAC_B

[port host0]
type = tap
interface = $TAP

[switch br0]
ports = vm1, vm2, host0
aging = 300
EOF

sl_start_sluice "$SL_RUN/switch.ini" "$SHM_STATS"
sl_wait_listening "$SOCK_A" "$SOCK_B"
sl_wait_path "/sys/class/net/$TAP" 20 "$SLUICE_PID" || fail "sluice did not create tap $TAP"
sl_log "sluice running (pid $SLUICE_PID, ${POLL_OPT[*]:-event mode}); tap $TAP"

# ---- the namespace with the tap ----
# The tap's own first MAC: the host kernel may send from it (IPv6 router solicitations) before
# the tap reaches the namespace, so the switch may have learned it on host0.
MAC_TAP0=$(cat "/sys/class/net/$TAP/address")
ip netns add "$NS" || fail "ip netns add $NS"
ip link set "$TAP" netns "$NS" || fail "ip link set $TAP netns $NS"
ip -n "$NS" link set lo up
ip -n "$NS" link set "$TAP" address "$MAC_NS" || fail "set $MAC_NS on $TAP"
ip -n "$NS" addr add 10.0.0.3/24 dev "$TAP" || fail "address 10.0.0.3/24 on $TAP"
ip -n "$NS" link set "$TAP" up || fail "$TAP up in $NS"
sl_log "namespace $NS: $TAP $MAC_NS 10.0.0.3/24 up"

# ---- guests (QEMU connects; reconnect=1 waits for the socket) ----
sl_start_vm b --reconnect 1 --socket "$SOCK_B" --mac "$MAC_B" \
    --append "sl.role=serve sl.ip=10.0.0.2/24 sl.timeout=0"
VM_B=$SL_LAST_PID
sl_start_vm a --reconnect 1 --socket "$SOCK_A" --mac "$MAC_A" \
    --append "sl.role=ping sl.ip=10.0.0.1/24 sl.peer=10.0.0.2,10.0.0.3 sl.count=2 sl.round=8 sl.timeout=0"
VM_A=$SL_LAST_PID
ALL="$VM_A $VM_B $SLUICE_PID"

# ---- helpers ----
# stat_read: JSON = sluice-stat --json of the running instance.
stat_read() { JSON=$("$STAT" --instance "$INST" --json) || fail "sluice-stat --instance $INST --json failed"; }

counter() { sl_counter "$@"; }

# fdb_port MAC: the port the switch has MAC on (empty when not in the table). FDB = the table.
fdb_read() { FDB=$("$STAT" --instance "$INST" --fdb br0) || fail "sluice-stat --fdb br0 failed"; }
fdb_port() { awk -v m="$1" '$1 == m { print $3 }' <<<"$FDB"; }
fdb_count() { awk 'NR > 1 && $1 ~ /^[0-9a-f][0-9a-f]:/ { n++ } END { print n + 0 }' <<<"$FDB"; }

# wait_guest_ping PEER WHAT FROM: a PING-OK of guest A for PEER after byte FROM of its log.
wait_guest_ping() {
    local re="PING-OK ${1//./\\.} "
    LINE=$(sl_wait_marker "$SL_RUN/a.log" "$re" "$PING_TIMEOUT" "$3" "$ALL") ||
        fail "guest a: no PING-OK $1 $2 within ${PING_TIMEOUT}s"
    sl_log "a: $LINE"
}

# ns_ping ADDR WHAT: from the namespace, 3 replies from ADDR within 10 s.
ns_ping() {
    local out
    out=$(ip netns exec "$NS" ping -n -c 3 -i 0.2 -w 10 "$1" 2>&1) ||
        fail "namespace cannot ping $1 $2: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
    sl_log "$NS -> $1 $2: $(grep -a -E 'packets transmitted' <<<"$out")"
}

# check_ports WHEN: rx_packets > 0 on every port; drop.bad_desc = 0 where the port has it.
check_ports() {
    local json p rx tx bad
    stat_read
    json=$JSON
    COUNTERS=""
    for p in vm1 vm2 host0; do
        rx=$(counter "$json" "port.$p.rx_packets")
        tx=$(counter "$json" "port.$p.tx_packets")
        bad=$(counter "$json" "port.$p.drop.bad_desc")
        if [ -z "$rx" ] || [ -z "$tx" ]; then fail "counters of port $p missing ($1): $json"; fi
        [ "$rx" -gt 0 ] || fail "port.$p.rx_packets = 0 ($1): $json"
        [ -z "$bad" ] || [ "$bad" = 0 ] || fail "port.$p.drop.bad_desc = $bad ($1): $json"
        COUNTERS="$COUNTERS $p:rx=$rx,tx=$tx"
    done
    COUNTERS=${COUNTERS# }
    sl_log "port counters ($1): $COUNTERS"
}

# ---- 1. reach: A -> B, A -> ns, ns -> A, ns -> B ----
sl_guest_line b 'SERVE-READY' 0 "guest b not ready"
sl_guest_line a 'SLUICE-GUEST: BOOT' 0 "guest a did not boot"
wait_guest_ping 10.0.0.2 "(first)" 0
wait_guest_ping 10.0.0.3 "(first)" 0
T_REACH_A=$(sl_elapsed)
ns_ping 10.0.0.1 "(first)"
ns_ping 10.0.0.2 "(first)"
T_REACH=$(sl_elapsed)
check_ports "reach"
SUMMARY="reach: A->B,A->ns at ${T_REACH_A}s, ns->A,ns->B at ${T_REACH}s"

# ---- 2. the MAC table ----
fdb_read
sl_log "fdb br0:"$'\n'"$FDB"
for pair in "$MAC_A vm1" "$MAC_B vm2" "$MAC_NS host0"; do
    set -- $pair
    got=$(fdb_port "$1")
    [ "$got" = "$2" ] || fail "fdb: $1 is on '${got:-nothing}', expected $2:"$'\n'"$FDB"
done
# Nothing else, except the tap's first MAC on host0.
others=$(awk -v a="$MAC_A" -v b="$MAC_B" -v c="$MAC_NS" -v t="$MAC_TAP0" \
    'NR > 1 && $1 ~ /^[0-9a-f][0-9a-f]:/ && $1 != a && $1 != b && $1 != c && !($1 == t && $3 == "host0")' <<<"$FDB")
[ -z "$others" ] || fail "fdb has unexpected addresses: $others"
n=$(fdb_count)
stat_read
json=$JSON
gauge=$(counter "$json" switch.br0.macs)
[ "$gauge" = "$n" ] || fail "switch.br0.macs = '$gauge', but the fdb lists $n addresses"
LEARNED0=$(counter "$json" switch.br0.learned)
FLUSHED0=$(counter "$json" switch.br0.flushed)
[ -n "$LEARNED0" ] && [ -n "$FLUSHED0" ] || fail "switch.br0.learned/flushed missing: $json"
sl_log "fdb ok: the 3 MACs on the right ports ($n entries, tap's first MAC $MAC_TAP0 $([ "$n" = 4 ] && echo "also on host0" || echo "not learned")); learned=$LEARNED0 flushed=$FLUSHED0"
SUMMARY="$SUMMARY; fdb: 3 MACs on vm1/vm2/host0"

# ---- 3. reset guest A mid-traffic ----
# Traffic through the reset: A's own ping loop, and the namespace pinging A all along.
ip netns exec "$NS" ping -n -i 0.2 -w 90 10.0.0.1 >"$SL_RUN/ns-a.ping" 2>&1 &
BG_PING=$!
sl_track_pid "$BG_PING"
off=$(sl_log_size "$SL_RUN/a.log")
wait_guest_ping 10.0.0.2 "(before the reset)" "$off"
off=$(sl_log_size "$SL_RUN/a.log")
t0=$(sl_elapsed)
sl_reset_guest a

# vm1's queues stop: within FLUSH_TIMEOUT flushed grows and vm1's MAC leaves the table, while
# the entries of vm2 and host0 stay. Looked at every 0.1 s until guest A boots again.
end=$(($(date +%s) + FLUSH_TIMEOUT))
FLUSHED1=$FLUSHED0
SEEN_GONE=0
while :; do
    stat_read
    json=$JSON
    FLUSHED1=$(counter "$json" switch.br0.flushed)
    fdb_read
    if [ "$FLUSHED1" -gt "$FLUSHED0" ] && [ -z "$(fdb_port "$MAC_A")" ]; then
        SEEN_GONE=1
        break
    fi
    [ "$(sl_count_markers "$SL_RUN/a.log" 'SLUICE-GUEST: BOOT' "$off")" = 0 ] || break
    [ "$(date +%s)" -lt "$end" ] || break
    sl_alive $ALL || fail "a process exited during the reset: $(sl_first_gone $ALL)"
    sleep 0.1
done
t_flush=$(awk -v a="$t0" -v b="$(sl_elapsed)" 'BEGIN { printf "%.1f", b - a }')
if [ "$SEEN_GONE" != 1 ]; then
    fail "after system_reset of guest a: switch.br0.flushed $FLUSHED0 -> $FLUSHED1, vm1's $MAC_A on '$(fdb_port "$MAC_A")' (${t_flush}s later, guest a booted again: $(sl_count_markers "$SL_RUN/a.log" 'SLUICE-GUEST: BOOT' "$off")):"$'\n'"$FDB"
fi
[ "$(fdb_port "$MAC_B")" = vm2 ] || fail "vm2's $MAC_B was dropped by vm1's flush:"$'\n'"$FDB"
[ "$(fdb_port "$MAC_NS")" = host0 ] || fail "host0's $MAC_NS was dropped by vm1's flush:"$'\n'"$FDB"
sl_log "flushed $FLUSHED0 -> $FLUSHED1 ${t_flush}s after system_reset; $MAC_A gone, vm2 and host0 kept"

sl_guest_line a 'SLUICE-GUEST: BOOT' "$off" "guest a did not boot again after system_reset"
off=$(sl_log_size "$SL_RUN/a.log")
wait_guest_ping 10.0.0.2 "after the reset" "$off"
wait_guest_ping 10.0.0.3 "after the reset" "$off"
ns_ping 10.0.0.1 "after the reset"
t1=$(sl_elapsed)
boots=$(sl_count_markers "$SL_RUN/a.log" 'SLUICE-GUEST: BOOT')
[ "$boots" -eq 2 ] || fail "guest a booted $boots times, expected 2"
fdb_read
[ "$(fdb_port "$MAC_A")" = vm1 ] || fail "after the reset $MAC_A is on '$(fdb_port "$MAC_A")', expected vm1:"$'\n'"$FDB"
stat_read
json=$JSON
LEARNED1=$(counter "$json" switch.br0.learned)
[ "$LEARNED1" -gt "$LEARNED0" ] || fail "switch.br0.learned did not grow ($LEARNED0 -> $LEARNED1) after the reset"
kill -INT "$BG_PING" 2>/dev/null || true    # ping prints its summary on SIGINT
sleep 0.3
sl_stop_pid "$BG_PING"
bg=$(grep -a -E 'packets transmitted' "$SL_RUN/ns-a.ping" || true)
sl_log "fdb after the reset: $MAC_A on vm1 again; learned $LEARNED0 -> $LEARNED1; ns->A during the reset: ${bg:-?}"
check_ports "after reset"
SUMMARY="$SUMMARY; reset: flushed $FLUSHED0->$FLUSHED1 after ${t_flush}s, ping back and $MAC_A on vm1 after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"

# ---- 4. SIGTERM ----
fails=$(sl_count_markers "$SL_RUN/a.log" 'PING-FAIL')
sl_sigterm_sluice
if [ -e "$SOCK_A" ] || [ -e "$SOCK_B" ]; then
    fail "sluice left its socket(s) behind: $(ls "$SL_RUN"/*.sock)"
fi
left=$(ls /dev/shm/sluice-"$INST".* 2>/dev/null || true)
[ -z "$left" ] || fail "sluice left shared memory behind: $left"
if ip -n "$NS" link show "$TAP" >/dev/null 2>&1; then fail "tap $TAP still exists after sluice exited"; fi
sl_log "sluice stopped by SIGTERM in ${STOP_SECS}s, status 0, no socket, no /dev/shm/sluice-$INST.*, no tap"
SUMMARY="$SUMMARY; stop ${STOP_SECS}s status 0, nothing left; PING-FAIL rounds $fails"

sl_finish
echo "PASS test-sluice-switch $POLL_NAME: $SUMMARY; total $(sl_elapsed)s"
