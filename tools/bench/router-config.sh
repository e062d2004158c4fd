# shellcheck shell=bash
# Sourced by router-vs-l3fwd.sh and alloc-check.sh (ELEMENT=router): the routed network
# they run, the generator frames that cross it, and the generator command.
#
# Addressing is DPDK l3fwd's built-in LPM table (198.18.0.0/24 -> port 0, 198.18.1.0/24
# -> port 1), so the same frames make both DUTs route every frame:
#   generator port 0 (virtio_user0, MAC RT_GEN_MAC0): 198.18.0.1 -> 198.18.1.1..254
#   generator port 1 (virtio_user1, MAC RT_GEN_MAC1): 198.18.1.1 -> 198.18.0.1..254
# Sluice's ports own those /24s as routed prefixes (the anti-spoofing check passes: each
# source address belongs to the port it arrives on) and have the generator's MACs
# configured (`mac =`). Frames are addressed to sluice's router MAC; l3fwd ignores the
# destination MAC.

RT_GEN_MAC0=02:00:00:00:0a:00
RT_GEN_MAC1=02:00:00:00:0a:01
RT_NETWORK=bench

# router_mac INSTANCE NETWORK: the router MAC sluice derives (Sources/Engine/RouterBuilder.swift,
# routerMAC(instance:network:): 64-bit FNV-1a over "sluice/INSTANCE/NETWORK", 02 + the low
# 40 bits). The scripts check it against sluice's "router MAC" log line.
router_mac() {
    python3 -c '
import sys
h = 0xcbf29ce484222325
for b in ("sluice/%s/%s" % (sys.argv[1], sys.argv[2])).encode():
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
print("02:" + ":".join("%02x" % ((h >> s) & 0xFF) for s in (32, 24, 16, 8, 0)))' "$1" "$2"
}

# write_router_config FILE CPU SOCKET_DIR INSTANCE: two server-mode vhost-user ports in
# [network bench], one worker on CPU, busy polling, no huge pages, state in SOCKET_DIR.
write_router_config() {
    cat >"$1" <<EOF
[dataplane]
cores = $2
poll = 0
; the DPDK side runs with --no-huge too
hugepages = off
socket-dir = $3
state-dir = $3/state
instance = $4

[port p0]
type = vhost-user
socket = s0.sock
mode = server
mac = $RT_GEN_MAC0
ipv4 = 10.0.0.2
routed-prefixes = 198.18.0.0/24

[port p1]
type = vhost-user
socket = s1.sock
mode = server
mac = $RT_GEN_MAC1
ipv4 = 10.0.0.3
routed-prefixes = 198.18.1.0/24

[network $RT_NETWORK]
ports = p0, p1
ipv4-subnet = 10.0.0.0/24
EOF
}

# write_route_pcap FILE SRC_MAC DST_MAC SRC_IP DST_NET24 FRAME_BYTES: 254 Ethernet/IPv4/UDP
# frames (FCS excluded), destination host .1 ... .254 of DST_NET24 (e.g. 198.18.1.0),
# TTL 64, a valid header checksum, UDP checksum 0, zero padding; a pcap file for
# DPDK's net_pcap (`infinite_rx=1` replays it for ever).
write_route_pcap() {
    python3 - "$@" <<'EOF'
import struct, sys
out, smac, dmac, sip, dnet, size = sys.argv[1:7]
size = int(size)
mac = lambda s: bytes(int(x, 16) for x in s.split(":"))
ip = lambda s: bytes(int(x) for x in s.split("."))
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
if not 60 <= size <= 9000:
    sys.exit("frame size %d out of 60...9000" % size)
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(254):
        dst = dnet.rsplit(".", 1)[0] + "." + str(1 + i)
        total = size - 14
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, i, 0, 64, 17, 0, ip(sip), ip(dst))
        h = h[:10] + struct.pack("!H", checksum(h)) + h[12:]
        udp = struct.pack("!HHHH", 1024 + i % 16, 1001, total - 20, 0)
        frame = mac(dmac) + mac(smac) + b"\x08\x00" + h + udp
        frame += bytes(size - len(frame))
        f.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)
EOF
}

# router_gen_cmd GEN_CPU MAIN_CPU PREFIX PCAP0 PCAP1 S0 S1: the generator and sink. Ports:
# 0 net_pcap (replays PCAP0), 1 virtio_user0 -> S0, 2 net_pcap (PCAP1), 3 virtio_user1 -> S1.
# `set fwd io` pairs 0<->1 and 2<->3: pcap frames go out on the virtio ports as fast as
# the DUT takes them (the rest are freed), and what the DUT routes back is received on
# ports 1 and 3 and dropped by net_pcap (no tx_pcap: it frees them). Forwarded Mpps =
# Rx-pps of ports 1 and 3.
router_gen_cmd() {
    echo "dpdk-testpmd --lcores 0@$2,1@$1 --no-pci --no-huge -m 512 --single-file-segments --file-prefix $3" \
         "--vdev net_pcap0,rx_pcap=$4,infinite_rx=1 --vdev net_virtio_user0,path=$6,queues=1,mac=$RT_GEN_MAC0" \
         "--vdev net_pcap1,rx_pcap=$5,infinite_rx=1 --vdev net_virtio_user1,path=$7,queues=1,mac=$RT_GEN_MAC1" \
         "-- -i --total-num-mbufs=16384"
}
