#!/usr/bin/env bash
# The main job, end to end: build sluice, start it with the p2p example config,
# attach two virtio-net "VMs" (sluice-gen, our in-process vhost-user front-end),
# send frames from one to the other through the p2p link, and read the live
# counters with sluice-stat. Installs what it needs on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
COUNT="${COUNT:-1000000}"
SIZE="${SIZE:-64}"
echo "demo: building (release)…"
swift build -c release --product sluice >/dev/null
swift build -c release --product sluice-stat >/dev/null
swift build -c release --product sluice-gen >/dev/null
BIN="$PWD/.build/release"
CONFIG=Configs/p2p.ini
SOCKDIR=/tmp/sluice
CORE=$(( $(nproc) - 1 ))

cleanup() { [ -n "${SLUICE_PID:-}" ] && kill "$SLUICE_PID" 2>/dev/null || true; [ -n "${RX_PID:-}" ] && kill "$RX_PID" 2>/dev/null || true; }
trap cleanup EXIT

echo "demo: sluice --config $CONFIG --cores $CORE --poll 0"
"$BIN/sluice" --config "$CONFIG" --cores "$CORE" --poll 0 &
SLUICE_PID=$!
for _ in $(seq 50); do [ -S "$SOCKDIR/vm2.sock" ] && break; sleep 0.1; done

echo "demo: VM 'vm2' receives, VM 'vm1' sends $COUNT frames of $SIZE bytes"
"$BIN/sluice-gen" rx --socket "$SOCKDIR/vm2.sock" --count "$COUNT" --timeout 60 --check-sequence &
RX_PID=$!
sleep 0.5
"$BIN/sluice-gen" tx --socket "$SOCKDIR/vm1.sock" --count "$COUNT" --size "$SIZE"
wait "$RX_PID"; RX_PID=""

echo "demo: counters, read from /dev/shm by sluice-stat (no call into the daemon):"
"$BIN/sluice-stat" --instance p2p --filter port.
"$BIN/sluice-stat" --instance p2p --filter worker.

echo "demo: stopping sluice (SIGTERM)"
kill -TERM "$SLUICE_PID"; wait "$SLUICE_PID"; SLUICE_PID=""
if [ -e "$SOCKDIR/vm1.sock" ] || [ -e /dev/shm/sluice-p2p.stats ]; then echo "demo: left files behind"; exit 1; fi
echo "demo: done — sockets and stats segment removed"
