#!/usr/bin/env python3
"""Neighbor Discovery conformance of Sluice's router (RFC 4861, RFC 8106) against scapy.

  ndp.py gen DIR     write Router and Neighbor Solicitations built with scapy as
                     DIR/<case>.req (whole Ethernet frames); the Swift test (NDPScapyTests)
                     answers them in name order, 10 s apart, and writes DIR/<case>.reply (when
                     it sends a frame) and DIR/<case>.counters (one counter a line)
  ndp.py check DIR   parse every reply with scapy's ICMPv6 ND layers and check it; exit 1
                     naming each case that fails

The network (same as the Swift fixture): prefix fd00:1::/64, DNS fd00:1::53, domain
prod.internal, MTU 1500, router MAC 02:00:00:00:00:fe; the client's port is bound to
52:54:00:12:34:56.
"""
import os
import sys

from scapy.layers.inet6 import (IPv6, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptDNSSL,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS,
                                ICMPv6NDOptSrcLLAddr, in6_chksum, in6_getnsma, in6_getnsmac, inet_pton, inet_ntop, socket)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

ROUTER_MAC = "02:00:00:00:00:fe"
CLIENT_MAC = "52:54:00:12:34:56"
CLIENT_LL = "fe80::5054:ff:fe12:3456"
GLOBAL = "fd00:1::1"


def solicited_node(address):
    return inet_ntop(socket.AF_INET6, in6_getnsma(inet_pton(socket.AF_INET6, address)))


def icmp(msg, src=CLIENT_LL, dst="ff02::2", hlim=255):
    mac = in6_getnsmac(inet_pton(socket.AF_INET6, dst)) if dst.startswith("ff") else ROUTER_MAC
    return Ether(src=CLIENT_MAC, dst=mac) / IPv6(src=src, dst=dst, hlim=hlim) / msg


SLLA = ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC)
SN_GW = solicited_node("fe80::1")


def cut(packet, n):
    """`packet` with its ICMPv6 message short by `n` bytes; IPv6 length and checksum still valid."""
    ip = packet[IPv6]
    raw = bytearray(bytes(ip.payload)[:-n])
    raw[2:4] = b"\0\0"
    header = IPv6(src=ip.src, dst=ip.dst, hlim=ip.hlim, nh=58, plen=len(raw))
    raw[2:4] = in6_chksum(58, header, bytes(raw)).to_bytes(2, "big")
    return packet[Ether].copy().__class__(src=packet.src, dst=packet.dst) / header / Raw(bytes(raw))


CASES = {
    "01-rs": (icmp(ICMPv6ND_RS() / SLLA), "ra-unicast"),
    "02-rs-unspecified": (icmp(ICMPv6ND_RS(), src="::"), "ra-multicast"),
    "03-ns-gateway": (icmp(ICMPv6ND_NS(tgt="fe80::1") / SLLA, dst=SN_GW), ("na", "fe80::1", True)),
    "04-ns-dad": (icmp(ICMPv6ND_NS(tgt="fe80::1"), src="::", dst=SN_GW), ("na", "fe80::1", False)),
    "05-ns-global-unicast": (icmp(ICMPv6ND_NS(tgt=GLOBAL) / SLLA, dst=GLOBAL), ("na", GLOBAL, True)),
    "06-ns-other-target": (icmp(ICMPv6ND_NS(tgt="fd00:1::2") / SLLA, dst=solicited_node("fd00:1::2")), "none"),
    "07-na-not-answered": (icmp(ICMPv6ND_NA(tgt=CLIENT_LL, R=0, S=1, O=1), dst="fe80::1"), "none"),
    # Invalid per RFC 4861 §6.1.1 / §7.1.1: dropped and counted.
    "m01-rs-hop-limit-64": (icmp(ICMPv6ND_RS() / SLLA, hlim=64), "malformed"),
    "m02-rs-code-1": (icmp(ICMPv6ND_RS(code=1) / SLLA), "malformed"),
    "m03-rs-zero-length-option": (icmp(ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(len=0, lladdr=CLIENT_MAC)), "malformed"),
    "m04-rs-option-past-end": (icmp(ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(len=3, lladdr=CLIENT_MAC)), "malformed"),
    "m05-ns-hop-limit-64": (icmp(ICMPv6ND_NS(tgt="fe80::1") / SLLA, dst=SN_GW, hlim=64), "malformed"),
    "m06-ns-code-3": (icmp(ICMPv6ND_NS(tgt="fe80::1", code=3) / SLLA, dst=SN_GW), "malformed"),
    "m07-ns-truncated": (cut(icmp(ICMPv6ND_NS(tgt="fe80::1"), dst=SN_GW), 6), "malformed"),
    "m08-dad-with-source-lladdr": (icmp(ICMPv6ND_NS(tgt="fe80::1") / SLLA, src="::", dst=SN_GW), "malformed"),
    "m09-ns-multicast-target": (icmp(ICMPv6ND_NS(tgt="ff02::1") / SLLA, dst=solicited_node("ff02::1")), "malformed"),
}


def gen(directory):
    os.makedirs(directory, exist_ok=True)
    for name, (packet, _) in CASES.items():
        with open(os.path.join(directory, name + ".req"), "wb") as f:
            f.write(bytes(packet))


class Failure(Exception):
    pass


def expect(condition, what):
    if not condition:
        raise Failure(what)


def nd_options(msg):
    found, layer = [], msg.payload
    while layer and not isinstance(layer, Raw):
        found.append(layer)
        layer = layer.payload
    return found


def check_common(data, src, dst, mac):
    pkt = Ether(data)
    expect(pkt.src == ROUTER_MAC and pkt.dst == mac, f"MACs {pkt.src} -> {pkt.dst}")
    expect(pkt[IPv6].src == src and pkt[IPv6].dst == dst, f"IPv6 {pkt[IPv6].src} -> {pkt[IPv6].dst}")
    expect(pkt[IPv6].hlim == 255, f"hop limit {pkt[IPv6].hlim}")
    copy = Ether(data)
    del copy[IPv6].payload.cksum
    expect(Ether(bytes(copy))[IPv6].payload.cksum == pkt[IPv6].payload.cksum, "ICMPv6 checksum")
    return pkt


def check_ra(pkt):
    expect(ICMPv6ND_RA in pkt, "not a Router Advertisement")
    ra = pkt[ICMPv6ND_RA]
    expect(ra.code == 0 and ra.chlim == 64 and ra.M == 1 and ra.O == 1, f"code {ra.code} chlim {ra.chlim} M {ra.M} O {ra.O}")
    expect(ra.routerlifetime == 1800 and ra.reachabletime == 0 and ra.retranstimer == 0, "lifetimes and timers")
    opts = nd_options(ra)
    kinds = [type(o) for o in opts]
    expect(kinds == [ICMPv6NDOptSrcLLAddr, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS, ICMPv6NDOptDNSSL],
           f"options {[k.__name__ for k in kinds]}")
    expect(opts[0].lladdr == ROUTER_MAC, "source link-layer address")
    expect(opts[1].mtu == 1500, "MTU")
    p = opts[2]
    expect(p.prefix == "fd00:1::" and p.prefixlen == 64, f"prefix {p.prefix}/{p.prefixlen}")
    expect(p.L == 0 and p.A == 0, f"prefix L={p.L} A={p.A}: must be neither on-link nor autonomous")
    expect(p.validlifetime == 86400 and p.preferredlifetime == 14400, "prefix lifetimes")
    expect(opts[3].dns == ["fd00:1::53"] and opts[3].lifetime == 1800, f"RDNSS {opts[3].dns} {opts[3].lifetime}")
    expect(opts[4].searchlist == ["prod.internal."] and opts[4].lifetime == 1800,
           f"DNSSL {opts[4].searchlist} {opts[4].lifetime}")


def check_case(name, kind, directory):
    reply_path = os.path.join(directory, name + ".reply")
    counters = open(os.path.join(directory, name + ".counters")).read().split()
    has_reply = os.path.exists(reply_path)
    if kind in ("malformed", "none"):
        expect(not has_reply, "a reply was sent")
        if kind == "malformed":
            expect("dropped.malformed" in counters, f"counter dropped.malformed (got {counters})")
        else:
            expect(counters == [], f"no counter (got {counters})")
        return
    expect(has_reply, f"no reply (counters {counters})")
    data = open(reply_path, "rb").read()
    if kind == "ra-unicast":
        check_ra(check_common(data, "fe80::1", CLIENT_LL, CLIENT_MAC))
        expect(counters == ["ra.sent"], f"counters {counters}")
    elif kind == "ra-multicast":
        check_ra(check_common(data, "fe80::1", "ff02::1", "33:33:00:00:00:01"))
    elif kind[0] == "na":
        target, solicited = kind[1], kind[2]
        dst, mac = (CLIENT_LL, CLIENT_MAC) if solicited else ("ff02::1", "33:33:00:00:00:01")
        pkt = check_common(data, target, dst, mac)
        expect(ICMPv6ND_NA in pkt, "not a Neighbor Advertisement")
        na = pkt[ICMPv6ND_NA]
        expect(na.tgt == target, f"target {na.tgt}")
        expect(na.R == 1 and na.O == 1 and na.S == (1 if solicited else 0), f"flags R={na.R} S={na.S} O={na.O}")
        opts = nd_options(na)
        expect(len(opts) == 1 and isinstance(opts[0], ICMPv6NDOptDstLLAddr) and opts[0].lladdr == ROUTER_MAC,
               "target link-layer address option with the router MAC")
        expect(counters == ["nd.adverts"], f"counters {counters}")
    else:
        raise Failure(f"unknown expectation {kind}")


def check(directory):
    failed = 0
    for name, (_, kind) in CASES.items():
        try:
            check_case(name, kind, directory)
            print(f"ok   {name}")
        except (Failure, OSError, AttributeError, IndexError) as e:
            failed += 1
            print(f"FAIL {name}: {e}")
    print(f"ndp: {len(CASES) - failed}/{len(CASES)} cases conform")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "check"):
        sys.exit(__doc__)
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2]))
