#!/bin/bash
# Validates sluice-gen's vhost-user frontend against a backend nobody here
# wrote: DPDK testpmd with two net_vhost ports, io-forwarding between them.
#
#   sluice-gen rx  → /…/g1.sock ← testpmd port 1 ← io ← port 0 ← /…/g0.sock ← sluice-gen tx
#
# Every case sends numbered frames with `tx` and checks with `rx --check-sequence`
# that each one arrives once, in order, with intact contents (64, 1518 and 9000
# bytes — the last spans 5 merged RX buffers — the split / indirect TX
# layouts, without EVENT_IDX / MRG_RXBUF, and two queue pairs). A last case checks `echo`
# against testpmd's flowgen engine.
#
# testpmd runs `io retry` with a long TX retry so that it waits for room in the
# receiver's ring instead of dropping (the receiver shares a CPU with the sender
# and may be descheduled for milliseconds): loss can then only come from the
# frontend, which is what this script tests. The ports have two queue pairs
# (queue q of port 0 is forwarded to queue q of port 1) for the multiqueue case.
#
# Usage: tools/sluice-gen/check-with-testpmd.sh        (from the repository root)
#   SLUICE_GEN=path/to/sluice-gen   use this binary (default: build it with swift build -c release)
#   KEEP_LOGS=1                     keep the log directory
# Exit: 0 all cases passed, 1 a case failed, 77 dpdk-testpmd is not installed (skip).

set -u
cd "$(dirname "$0")/../.."

if ! command -v dpdk-testpmd >/dev/null 2>&1; then
    echo "SKIP: dpdk-testpmd not found (apt-get install -y dpdk)"
    exit 77
fi

GEN=${SLUICE_GEN:-}
if [ -z "$GEN" ]; then
    swift build -c release --product sluice-gen >/dev/null || { echo "FAIL: swift build"; exit 1; }
    GEN="$(swift build -c release --show-bin-path)/sluice-gen"
fi
[ -x "$GEN" ] || { echo "FAIL: $GEN is not executable"; exit 1; }

WORK=$(mktemp -d /tmp/sluice-gen-check.XXXXXX)
PREFIX="slgen$$"
S0="$WORK/g0.sock"
S1="$WORK/g1.sock"
LOG="$WORK/testpmd.log"
TESTPMD_PID=""
FAILED=0

# CPUs: testpmd's forwarding lcore on the last CPU, its main lcore and the
# generators on the first.
LAST_CPU=$(( $(nproc) - 1 ))
FIRST_CPU=0
PIN="taskset -c $FIRST_CPU"

cleanup() {
    exec 3>&- 2>/dev/null
    if [ -n "$TESTPMD_PID" ] && kill -0 "$TESTPMD_PID" 2>/dev/null; then
        kill "$TESTPMD_PID" 2>/dev/null
        for _ in $(seq 30); do kill -0 "$TESTPMD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$TESTPMD_PID" 2>/dev/null
    fi
    rm -rf "/var/run/dpdk/$PREFIX"
    if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

testpmd() { echo "$*" >&3; }

# Waits until the testpmd log has `count` lines matching `pattern`.
wait_for_log() {
    local pattern=$1 count=$2 seconds=${3:-10}
    for _ in $(seq $((seconds * 10))); do
        [ "$(grep -c -- "$pattern" "$LOG" 2>/dev/null)" -ge "$count" ] && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------
mkfifo "$WORK/testpmd.in"
lcores="$FIRST_CPU,$LAST_CPU"
[ "$LAST_CPU" = 0 ] && lcores="0"
dpdk-testpmd -l "$lcores" --no-pci --no-huge -m 512 --file-prefix "$PREFIX" \
    --vdev "net_vhost0,iface=$S0,queues=2" --vdev "net_vhost1,iface=$S1,queues=2" \
    -- -i --rxq=2 --txq=2 --nb-cores=1 --total-num-mbufs=16384 --forward-mode=io <"$WORK/testpmd.in" >"$LOG" 2>&1 &
TESTPMD_PID=$!
exec 3>"$WORK/testpmd.in"
testpmd "set fwd io retry"
testpmd "set burst tx delay 1000 retry 5000"
testpmd "start"
if ! wait_for_log "io packet forwarding" 1 20 || [ ! -S "$S1" ]; then
    echo "FAIL: testpmd did not start"; tail -20 "$LOG"; exit 1
fi
echo "testpmd: io-retry forwarding $S0 -> $S1"

READY=0 # "virtio is now ready" lines seen for the receiver's socket

# run_case NAME COUNT SIZE [extra sluice-gen options for both sides]
run_case() {
    local name=$1 count=$2 size=$3; shift 3
    local rx_out="$WORK/$name.rx" tx_out="$WORK/$name.tx"
    timeout 120 $PIN "$GEN" rx --socket "$S1" --count "$count" --check-sequence --timeout 20 --queue-size 1024 \
        --json "$@" >"$rx_out" 2>&1 &
    local rx_pid=$!
    READY=$((READY + 1))
    if ! wait_for_log "$S1) virtio is now ready" "$READY" 10; then
        echo "FAIL $name: the receiver did not get ready"; cat "$rx_out"; kill "$rx_pid" 2>/dev/null; FAILED=1; return
    fi
    timeout 120 $PIN "$GEN" tx --socket "$S0" --count "$count" --size "$size" --json "$@" >"$tx_out" 2>&1
    local tx_rc=$?
    wait "$rx_pid"
    local rx_rc=$?
    if [ $tx_rc -eq 0 ] && [ $rx_rc -eq 0 ] && grep -q '"lost":0,"duplicated":0,"reordered":0,"corrupted":0' "$rx_out"; then
        echo "ok   $name: $(cat "$tx_out")"
        echo "     $name: $(cat "$rx_out")"
    else
        echo "FAIL $name (tx exit $tx_rc, rx exit $rx_rc)"; cat "$tx_out" "$rx_out"; FAILED=1
    fi
}

run_case 64B       10000 64
run_case 1518B     10000 1518
run_case 9000B      2000 9000
run_case split      3000 200  --tx-layout split
run_case indirect   3000 200  --tx-layout indirect
run_case no-evidx   3000 1518 --no-event-idx
run_case no-mrg     1000 9000 --no-mrg-rxbuf
run_case 2-queues  20000 128  --queues 2

# Echo: testpmd's flowgen engine sends on port 0 and counts what comes back.
testpmd "stop"
testpmd "set fwd flowgen"
testpmd "start"
wait_for_log "flowgen packet forwarding" 1 10
timeout 60 $PIN "$GEN" echo --socket "$S0" --count 5000 --timeout 20 --json >"$WORK/echo.out" 2>&1
echo_rc=$?
testpmd "stop"
if [ $echo_rc -eq 0 ] && grep -q '"echoed":5000' "$WORK/echo.out"; then
    echo "ok   echo: $(cat "$WORK/echo.out")"
else
    echo "FAIL echo (exit $echo_rc)"; cat "$WORK/echo.out"; FAILED=1
fi

testpmd "quit"
exec 3>&-
for _ in $(seq 50); do kill -0 "$TESTPMD_PID" 2>/dev/null || break; sleep 0.1; done
if [ $FAILED -eq 0 ]; then
    echo "PASS: all cases"
    exit 0
fi
echo "FAILED (log: $LOG)"
KEEP_LOGS=1
exit 1
