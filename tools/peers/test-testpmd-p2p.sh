#!/usr/bin/env bash
# DPDK's testpmd as both VMs of a p2p link: two net_virtio_user ports (generator
# and sink, io forwarding, closed loop `start tx_first 32`) attached to sluice.
# Checks that frames flow both ways and that testpmd's counts agree with sluice's.
#   --mode server   sluice listens, testpmd connects (default)
#   --mode client   testpmd listens (server=1), sluice connects with backoff
#   --poll ARG      sluice --poll value, or "event" for event mode (default 0)
# Exit 0 pass, 1 fail, 77 skipped (prints one SKIP line).
set -euo pipefail
MODE=server; POLL=0; SIZE=64
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE=$2; shift 2 ;;
    --poll) POLL=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    *) echo "usage: $0 [--mode server|client] [--poll N|event] [--size BYTES]"; exit 2 ;;
  esac
done
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SLUICE_BIN_DIR:-$REPO/.build/debug}
command -v dpdk-testpmd >/dev/null || { echo "SKIP: no dpdk-testpmd (apt-get install dpdk)"; exit 77; }
[ -x "$BIN/sluice" ] || { echo "SKIP: no sluice binary in $BIN"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: dpdk-testpmd needs root"; exit 77; }

RUN=$(mktemp -d /tmp/sluice-tpmd.XXXXXX)
INST="tpmd$$"
PREFIX="tpmd$$"
SL_PID=""; TP_PID=""
cleanup() {
  [ -n "$TP_PID" ] && kill "$TP_PID" 2>/dev/null || true
  [ -n "$SL_PID" ] && kill "$SL_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$RUN" "/var/run/dpdk/$PREFIX"
}
trap cleanup EXIT

cat > "$RUN/p2p.ini" <<INI
[dataplane]
socket-dir = $RUN
instance = $INST
hugepages = auto
[port a]
type = vhost-user
socket = a.sock
mode = $MODE
[port b]
type = vhost-user
socket = b.sock
mode = $MODE
[p2p link]
ports = a, b
INI
POLLARGS=(--poll "$POLL"); [ "$POLL" = event ] && POLLARGS=()
SERVER=""; [ "$MODE" = client ] && SERVER=",server=1"

mkfifo "$RUN/cmd"
if [ "$MODE" = server ]; then
  "$BIN/sluice" --config "$RUN/p2p.ini" --cores 1 "${POLLARGS[@]}" 2>"$RUN/sluice.log" & SL_PID=$!
  for _ in $(seq 100); do [ -S "$RUN/b.sock" ] && break; sleep 0.05; done
fi
dpdk-testpmd --lcores 0@1,1@0 --no-pci --no-huge -m 512 --single-file-segments --file-prefix "$PREFIX" \
  --vdev "net_virtio_user0,path=$RUN/a.sock,queues=1$SERVER" --vdev "net_virtio_user1,path=$RUN/b.sock,queues=1$SERVER" \
  -- -i --total-num-mbufs=16384 < "$RUN/cmd" > "$RUN/testpmd.log" 2>&1 & TP_PID=$!
exec 3>"$RUN/cmd"
if [ "$MODE" = client ]; then
  sleep 1
  "$BIN/sluice" --config "$RUN/p2p.ini" --cores 1 "${POLLARGS[@]}" 2>"$RUN/sluice.log" & SL_PID=$!
fi
for _ in $(seq 200); do grep -q "Port 1: " "$RUN/testpmd.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
echo "set txpkts $SIZE" >&3
echo "start tx_first 32" >&3
sleep 3
echo "stop" >&3
sleep 1          # sluice drains what is still in flight
echo "show port stats all" >&3
sleep 1
echo "quit" >&3
exec 3>&-
wait "$TP_PID" || true; TP_PID=""

fail() { echo "FAIL: $*"; tail -20 "$RUN/testpmd.log"; tail -20 "$RUN/sluice.log"; exit 1; }
stat() { "$BIN/sluice-stat" --instance "$INST" | awk -v n="$1" '$1==n {print $2}'; }
# testpmd's final "show port stats all": per port RX-packets and TX-packets.
mapfile -t RX < <(grep -E "^ +RX-packets:" "$RUN/testpmd.log" | tail -2 | awk '{print $2}')
mapfile -t TX < <(grep -E "^ +TX-packets:" "$RUN/testpmd.log" | tail -2 | awk '{print $2}')
[ "${#TX[@]}" -eq 2 ] || fail "no port statistics from testpmd"
A_RX=$(stat port.a.rx_packets); B_RX=$(stat port.b.rx_packets)
A_TX=$(stat port.a.tx_packets); B_TX=$(stat port.b.tx_packets)
BAD=$(( $(stat port.a.drop.bad_desc) + $(stat port.b.drop.bad_desc) ))
echo "testpmd: port0 tx ${TX[0]} rx ${RX[0]}, port1 tx ${TX[1]} rx ${RX[1]}; sluice: a rx $A_RX tx $A_TX, b rx $B_RX tx $B_TX"
[ "${TX[0]}" -gt 10000 ] && [ "${TX[1]}" -gt 10000 ] || fail "too little traffic"
# Every frame testpmd handed to port N was taken by sluice from that guest.
[ "${TX[0]}" -eq "$A_RX" ] || fail "port0 TX ${TX[0]} != sluice a.rx_packets $A_RX"
[ "${TX[1]}" -eq "$B_RX" ] || fail "port1 TX ${TX[1]} != sluice b.rx_packets $B_RX"
# What sluice delivered to a guest, that guest received (give or take one ring in flight).
[ $(( B_TX - RX[1] )) -ge 0 ] && [ $(( B_TX - RX[1] )) -le 512 ] || fail "port1 RX ${RX[1]} vs sluice b.tx_packets $B_TX"
[ $(( A_TX - RX[0] )) -ge 0 ] && [ $(( A_TX - RX[0] )) -le 512 ] || fail "port0 RX ${RX[0]} vs sluice a.tx_packets $A_TX"
[ "$BAD" -eq 0 ] || fail "bad descriptors counted: $BAD"
kill -TERM "$SL_PID"; wait "$SL_PID" || fail "sluice exit status $?"; SL_PID=""
[ ! -e "/dev/shm/sluice-$INST.stats" ] || fail "stats segment left behind"
echo "PASS: testpmd p2p ($MODE mode, poll $POLL, ${SIZE} B): ${TX[0]}+${TX[1]} frames, counts agree"
