#!/usr/bin/env bash
# The main job, end to end: build sluice, start it with the p2p example config,
# attach two virtio-net "VMs" (sluice-gen, our in-process vhost-user front-end),
# send frames from one to the other through the p2p link, and read the live
# counters with sluice-stat; a file exported as a vhost-user-blk disk that sluice-gen
# writes, verifies and loads; then (as root) two network namespaces ping each other
# through a learning switch of two tap ports, and two more get their addresses from
# sluice's DHCP server and ping each other through its router. Installs what it needs
# on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
COUNT="${COUNT:-1000000}"
SIZE="${SIZE:-64}"
# Frames per second: the two "VMs" share one CPU here, so the sender is paced to what
# a receiver sleeping on interrupts takes; RATE=0 sends flat out (the p2p link then
# drops what the receiver has no buffers for, and counts it as drop.no_rx_buffer).
RATE="${RATE:-500000}"
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
"$BIN/sluice-gen" rx --socket "$SOCKDIR/vm2.sock" --queue-size 1024 --count "$COUNT" --timeout 3 --check-sequence &
RX_PID=$!
sleep 0.5
"$BIN/sluice-gen" tx --socket "$SOCKDIR/vm1.sock" --count "$COUNT" --size "$SIZE" --rate "$RATE"
if ! wait "$RX_PID"; then
  echo "demo: the receiver saw gaps — frames that arrived while its ring had no free buffer are dropped"
  echo "      by the p2p link and counted as port.vm2.drop.no_rx_buffer (below); none are reordered or corrupted."
fi
RX_PID=""

echo "demo: counters, read from /dev/shm by sluice-stat (no call into the daemon):"
"$BIN/sluice-stat" --instance p2p --filter port.
"$BIN/sluice-stat" --instance p2p --filter worker.

echo "demo: stopping sluice (SIGTERM)"
kill -TERM "$SLUICE_PID"; wait "$SLUICE_PID"; SLUICE_PID=""
if [ -e "$SOCKDIR/vm1.sock" ] || [ -e /dev/shm/sluice-p2p.stats ]; then echo "demo: left files behind"; exit 1; fi
echo "demo: p2p done — sockets and stats segment removed"

# Part 1b: a disk. A 64 MiB file exported as vhost-user-blk; sluice-gen attaches as a VM's
# virtio-blk driver would, writes a pattern, verifies it, reads the serial, and runs 2 s of
# 4 KiB random reads at queue depth 16; the blk counters come from shared memory.
BLKDIR=/tmp/sluice-demo-blk
rm -rf "$BLKDIR"; mkdir -p "$BLKDIR"
truncate -s 64M "$BLKDIR/disk.img"
cat >"$BLKDIR/blk.ini" <<EOF
[dataplane]
socket-dir = $BLKDIR
instance = demo-blk
hugepages = off

[disk img0]
file = $BLKDIR/disk.img

[blk vda]
device = disk:img0
socket = vda.sock
serial = demo-disk0
EOF
echo "demo: sluice --config $BLKDIR/blk.ini --cores $CORE --poll 0 (a [disk] exported as [blk vda])"
"$BIN/sluice" --config "$BLKDIR/blk.ini" --cores "$CORE" --poll 0 &
SLUICE_PID=$!
for _ in $(seq 50); do [ -S "$BLKDIR/vda.sock" ] && break; sleep 0.1; done
"$BIN/sluice-gen" blk info --socket "$BLKDIR/vda.sock" | head -3
"$BIN/sluice-gen" blk write --socket "$BLKDIR/vda.sock" --pattern 7 --offset 1m --length 8m
"$BIN/sluice-gen" blk verify --socket "$BLKDIR/vda.sock" --pattern 7 --offset 1m --length 8m
echo "demo: serial: $("$BIN/sluice-gen" blk id --socket "$BLKDIR/vda.sock")"
"$BIN/sluice-gen" blk load --socket "$BLKDIR/vda.sock" --rw randread --bs 4k --iodepth 16 --seconds 2
"$BIN/sluice-stat" --instance demo-blk --filter blk.vda. | grep -v "latency_us.* 0$"
kill -TERM "$SLUICE_PID"; wait "$SLUICE_PID"; SLUICE_PID=""
rm -rf "$BLKDIR"
echo "demo: blk done"

# Part 2: the learning switch with the host kernel on it. Two network namespaces, each
# behind a tap port of one switch, ping each other through sluice; the MAC table is
# read from shared memory.
if [ "$(id -u)" -ne 0 ]; then echo "demo: skipping the switch part (needs root for taps and namespaces)"; exit 0; fi
NS1=sl-demo1; NS2=sl-demo2; T1=sl-demo-t1; T2=sl-demo-t2
SWCONF=$(mktemp /tmp/sluice-demo-switch.XXXXXX.ini)
cleanup_switch() { cleanup; ip netns del "$NS1" 2>/dev/null || true; ip netns del "$NS2" 2>/dev/null || true; rm -f "$SWCONF"; }
trap cleanup_switch EXIT
printf '%s\n' "[dataplane]" "instance = demo-switch" "[port h1]" "type = tap" "interface = $T1" \
  "[port h2]" "type = tap" "interface = $T2" "[switch br0]" "ports = h1, h2" >"$SWCONF"
echo "demo: sluice --config $SWCONF --cores $CORE  (event mode: the worker sleeps until a frame arrives)"
"$BIN/sluice" --config "$SWCONF" --cores "$CORE" &
SLUICE_PID=$!
for _ in $(seq 50); do ip link show "$T2" >/dev/null 2>&1 && break; sleep 0.1; done
for i in 1 2; do
  ns=sl-demo$i; tap=sl-demo-t$i
  ip netns add "$ns"
  ip link set "$tap" netns "$ns"
  ip -n "$ns" link set "$tap" address "02:00:00:00:de:0$i"
  ip -n "$ns" addr add "10.250.0.$i/24" dev "$tap"
  ip -n "$ns" link set "$tap" up
done
ip netns exec "$NS1" ping -c 3 -i 0.2 -W 1 10.250.0.2
echo "demo: the switch's MAC table (sluice-stat --fdb br0):"
"$BIN/sluice-stat" --instance demo-switch --fdb br0
"$BIN/sluice-stat" --instance demo-switch --filter switch.
kill -TERM "$SLUICE_PID"; wait "$SLUICE_PID"; SLUICE_PID=""
ip netns del "$NS1"; ip netns del "$NS2"

# Part 3: a routed network. Two namespaces behind tap ports of [network demo] ask sluice's
# DHCP server for an address (dhclient), apply the /32 and option 121 routes it gives, and
# ping the gateway and each other through the router; the leases are read from shared memory.
# The ports name their MACs: a port without `mac` is bound to the first source MAC it sends,
# and a new tap's kernel side speaks (IPv6 DAD, MLD) from a random MAC before we set ours.
NETCONF=$(mktemp /tmp/sluice-demo-router.XXXXXX.ini)
STATE=$(mktemp -d /tmp/sluice-demo-state.XXXXXX)
cleanup_router() {
  cleanup_switch
  for i in 1 2; do [ -f "$STATE/dhclient$i.pid" ] && kill "$(cat "$STATE/dhclient$i.pid")" 2>/dev/null || true; done
  rm -rf "$NETCONF" "$STATE"
}
trap cleanup_router EXIT
printf '%s\n' "[dataplane]" "instance = demo-router" "state-dir = $STATE" \
  "[network demo]" "ports = h1, h2" "ipv4-subnet = 10.251.0.0/24" "dns = 10.251.0.53" "domain = demo.internal" \
  "[port h1]" "type = tap" "interface = $T1" "mac = 02:00:00:00:de:11" \
  "[port h2]" "type = tap" "interface = $T2" "mac = 02:00:00:00:de:12" >"$NETCONF"
echo "demo: sluice --config $NETCONF --cores $CORE  (a [network]: one gateway, DHCP, routing between the ports)"
"$BIN/sluice" --config "$NETCONF" --cores "$CORE" &
SLUICE_PID=$!
for _ in $(seq 50); do ip link show "$T2" >/dev/null 2>&1 && break; sleep 0.1; done
printf '#!/bin/sh\n[ "$reason" = BOUND ] && echo "$new_ip_address" > "%s/address.$interface"\nexit 0\n' "$STATE" >"$STATE/script"
chmod +x "$STATE/script"
ADDRS=()
for i in 1 2; do
  ns=sl-demo$i; tap=sl-demo-t$i
  ip netns add "$ns"
  ip link set "$tap" netns "$ns"
  ip -n "$ns" link set "$tap" address "02:00:00:00:de:1$i"
  ip -n "$ns" link set "$tap" up
  ip netns exec "$ns" dhclient -4 -1 -sf "$STATE/script" -lf "$STATE/dhclient$i.leases" -pf "$STATE/dhclient$i.pid" "$tap" \
    >"$STATE/dhclient$i.log" 2>&1 </dev/null
  a=$(cat "$STATE/address.$tap")
  echo "demo: $ns got $a/32 from sluice's DHCP server"
  ip -n "$ns" addr add "$a/32" dev "$tap"
  ip -n "$ns" route add 169.254.0.1/32 dev "$tap"
  ip -n "$ns" route add default via 169.254.0.1 dev "$tap"
  ADDRS+=("$a")
done
ip netns exec "$NS1" ping -c 2 -i 0.2 -W 1 169.254.0.1
ip netns exec "$NS1" ping -c 3 -i 0.2 -W 1 "${ADDRS[1]}"
echo "demo: the leases (sluice-stat --leases demo):"
"$BIN/sluice-stat" --instance demo-router --leases demo
"$BIN/sluice-stat" --instance demo-router --filter network.demo.
kill -TERM "$SLUICE_PID"; wait "$SLUICE_PID"; SLUICE_PID=""
echo "demo: done"
