#!/usr/bin/env python3
"""Send raw Ethernet frames out of one interface (for switch system tests).

usage: send-frames.py [--vlan VID] IFACE DST_MAC COUNT SRC_MAC [SRC_MAC...]

For each source MAC, in order, sends COUNT minimum-size frames (60 bytes, local
experimental EtherType 0x88b5) from that source to DST_MAC through an AF_PACKET
socket bound to IFACE; with --vlan, each frame carries an 802.1Q tag with that
VLAN ID. Needs CAP_NET_RAW. Prints one line: "sent N frames".
"""
import socket
import sys


def mac_bytes(text):
    parts = text.split(":")
    if len(parts) != 6:
        raise SystemExit(f"bad MAC address: {text}")
    return bytes(int(p, 16) for p in parts)


def main(argv):
    argv = argv[1:]
    tag = b""
    if argv[:1] == ["--vlan"] and len(argv) > 1:
        tag = b"\x81\x00" + (int(argv[1]) & 0x0FFF).to_bytes(2, "big")
        argv = argv[2:]
    if len(argv) < 4:
        raise SystemExit(__doc__.strip().splitlines()[2])
    iface, dst, count, sources = argv[0], mac_bytes(argv[1]), int(argv[2]), [mac_bytes(m) for m in argv[3:]]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sent = 0
    for src in sources:
        for _ in range(count):
            sock.send(dst + src + tag + b"\x88\xb5" + bytes(46))
            sent += 1
    sock.close()
    print(f"sent {sent} frames")


if __name__ == "__main__":
    main(sys.argv)
