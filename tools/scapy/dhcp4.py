#!/usr/bin/env python3
"""DHCPv4 conformance of Sluice's server, checked by an independent implementation (scapy).

    dhcp4.py gen DIR     write one client frame per case as DIR/<case>.req (Ethernet, no VLAN tag)
    dhcp4.py check DIR   parse DIR/<case>.reply with scapy's BOOTP/DHCP dissectors and check it,
                         and DIR/<case>.counters (one counter name a line) for every case

Between the two, something answers the requests in name order, with one server and one
lease store, for the network below: the Swift test ServicesTests.DHCPv4ScapyTests. A case
with no reply expected must have no .reply file; malformed ones must count dropped.malformed.
Exit status 0 when every check holds, 1 with one line per failed check.
"""
import ipaddress
import os
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, Raw, conf  # noqa: F401

conf.verb = 0

# The network the answering side must be configured with.
SUBNET = ipaddress.ip_network("10.0.0.0/24")
ROUTER_MAC = "02:00:00:00:00:fe"
GATEWAY = "169.254.0.1"
DNS = "10.0.0.53"
DOMAIN = b"prod.internal"
LEASE = 3600
MTU = 1500
ROUTES = ["169.254.0.1/32:0.0.0.0", "0.0.0.0/0:169.254.0.1"]

MAC_A, MAC_B, MAC_C, MAC_D = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c", "52:54:00:00:00:0d"
COOKIE = b"c\x82Sc"


def chaddr(mac):
    return bytes.fromhex(mac.replace(":", ""))


def frame(mac, bootp, src="0.0.0.0", dst="255.255.255.255", sport=68, dport=67):
    return Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / bootp


def request(mac, options, xid, flags=0, ciaddr="0.0.0.0", **kw):
    return frame(mac, BOOTP(chaddr=chaddr(mac), xid=xid, flags=flags, ciaddr=ciaddr) / DHCP(options=options + ["end"]), **kw)


def raw_options(mac, xid, data, cookie=COOKIE, **bootp):
    return frame(mac, BOOTP(chaddr=chaddr(mac), xid=xid, options=cookie, **bootp) / Raw(data))


def cases():
    """name -> (frame, expectation). Names sort in the order the cases are answered."""
    disc = [("message-type", "discover")]
    return {
        "01-discover": (request(MAC_A, disc + [("param_req_list", [1, 3, 6, 15, 26, 121, 51, 54])], 1, flags=0x8000),
                        {"type": 2, "broadcast": True}),
        "02-request-selecting": (request(MAC_B, [("message-type", "request"), ("requested_addr", "10.0.0.77"),
                                                 ("server_id", GATEWAY)], 2),
                                 {"type": 5, "yiaddr": "10.0.0.77", "to": ("10.0.0.77", MAC_B)}),
        "03-request-option-55-order": (request(MAC_C, disc + [("param_req_list", [121, 6, 3, 1, 15])], 3),
                                       {"type": 2, "order": ["classless_static_routes", "name_server", "router",
                                                             "subnet_mask", "domain", "interface-mtu"]}),
        "04-inform": (request(MAC_B, [("message-type", "inform")], 4, ciaddr="10.0.0.77", src="10.0.0.77", dst=GATEWAY),
                      {"type": 5, "yiaddr": "0.0.0.0", "inform": True, "to": ("10.0.0.77", MAC_B)}),
        "05-request-renewing": (request(MAC_B, [("message-type", "request")], 5, ciaddr="10.0.0.77", src="10.0.0.77",
                                        dst=GATEWAY),
                                {"type": 5, "yiaddr": "10.0.0.77", "ciaddr": "10.0.0.77", "to": ("10.0.0.77", MAC_B)}),
        "06-request-foreign-address": (request(MAC_A, [("message-type", "request"), ("requested_addr", "192.168.1.10")], 6),
                                       {"type": 6}),
        "07-release": (request(MAC_B, [("message-type", "release"), ("server_id", GATEWAY)], 7, ciaddr="10.0.0.77",
                               src="10.0.0.77", dst=GATEWAY),
                       {"reply": False, "counter": "dhcp4.release"}),
        "08-discover-after-release": (request(MAC_B, disc, 8), {"type": 2, "yiaddr": "10.0.0.77"}),
        "09-client-identifier": (request(MAC_D, disc + [("client_id", b"\x01" + chaddr(MAC_D))], 9),
                                 {"type": 2, "client_id": b"\x01" + chaddr(MAC_D)}),
        "10-oversized-options": (request(MAC_D, disc + [("hostname", b"h" * 255), ("vendor_class_id", b"v" * 255)], 10),
                                 {"type": 2}),
        "11-rebinding": (request(MAC_B, [("message-type", "request")], 11, ciaddr="10.0.0.77", src="10.0.0.77"),
                         {"type": 5, "yiaddr": "10.0.0.77"}),
        "20-truncated-options": (raw_options(MAC_A, 20, b"\x35\x01\x01\x3d\x07\x01\x02"), {"malformed": True}),
        "21-option-length-past-end": (raw_options(MAC_A, 21, b"\x35\x01\x01\x37\xc8\x01\x03\xff"), {"malformed": True}),
        "22-no-end-option": (raw_options(MAC_A, 22, b"\x35\x01\x01"), {"malformed": True}),
        "23-pad-only": (raw_options(MAC_A, 23, b"\x00" * 32), {"malformed": True}),
        "24-no-magic-cookie": (raw_options(MAC_A, 24, b"\x35\x01\x01\xff", cookie=b""), {"malformed": True}),
        "25-wrong-op": (frame(MAC_A, BOOTP(op=2, chaddr=chaddr(MAC_A), xid=25) / DHCP(options=disc + ["end"])),
                        {"malformed": True}),
        "26-huge-hlen": (frame(MAC_A, BOOTP(hlen=255, chaddr=chaddr(MAC_A), xid=26) / DHCP(options=disc + ["end"])),
                         {"malformed": True}),
        "27-server-message-type": (request(MAC_A, [("message-type", "offer")], 27), {"malformed": True}),
        "28-no-message-type": (request(MAC_A, [("hostname", b"x")], 28), {"malformed": True}),
        "29-short-bootp": (frame(MAC_A, Raw(bytes(BOOTP(chaddr=chaddr(MAC_A), xid=29))[:100])), {"malformed": True}),
        "30-wrong-source-port": (request(MAC_A, disc, 30, sport=1234), {"malformed": True}),
        "31-wrong-destination-port": (request(MAC_A, disc, 31, dport=68), {"reply": False, "counters": []}),
        "32-spoofed-chaddr": (frame(MAC_A, BOOTP(chaddr=chaddr(MAC_D), xid=32) / DHCP(options=disc + ["end"])),
                              {"reply": False, "counter": "dhcp4.refused"}),
    }


def gen(directory):
    os.makedirs(directory, exist_ok=True)
    for name, (pkt, _) in cases().items():
        with open(os.path.join(directory, name + ".req"), "wb") as f:
            f.write(bytes(pkt))
    print(f"dhcp4.py: {len(cases())} requests in {directory}")


def options_of(reply):
    return [o for o in reply[DHCP].options if isinstance(o, tuple)]


def check_reply(name, req, exp, data, fail):
    reply = Ether(data)
    if BOOTP not in reply or DHCP not in reply:
        return fail("scapy finds no BOOTP/DHCP in the reply")
    ip, udp, bootp = reply[IP], reply[UDP], reply[BOOTP]
    if reply.src != ROUTER_MAC or ip.src != GATEWAY or (udp.sport, udp.dport) != (67, 68):
        fail(f"reply from {reply.src} {ip.src}:{udp.sport} to port {udp.dport}")
    # Checksums as scapy computes them.
    again = Ether(bytes(reply))
    del again[IP].chksum
    del again[UDP].chksum
    again = Ether(bytes(again))
    if again[IP].chksum != ip.chksum or again[UDP].chksum != udp.chksum:
        fail("IP or UDP checksum wrong")
    if bootp.op != 2 or bootp.xid != req[BOOTP].xid or bootp.chaddr[:6] != req[BOOTP].chaddr[:6]:
        fail(f"op {bootp.op}, xid {bootp.xid}, chaddr {bootp.chaddr[:6].hex()}: not a reply to this request")
    opts = options_of(reply)
    got = dict(opts)
    if got.get("message-type") != exp["type"]:
        return fail(f"message type {got.get('message-type')}, expected {exp['type']}")
    if got.get("server_id") != GATEWAY:
        fail(f"server identifier {got.get('server_id')}")
    if exp["type"] == 6:
        if bootp.yiaddr != "0.0.0.0" or reply.dst != "ff:ff:ff:ff:ff:ff" or ip.dst != "255.255.255.255":
            fail(f"NAK with yiaddr {bootp.yiaddr} to {reply.dst} {ip.dst} (must be broadcast)")
        return
    if "yiaddr" in exp and bootp.yiaddr != exp["yiaddr"]:
        fail(f"yiaddr {bootp.yiaddr}, expected {exp['yiaddr']}")
    if not exp.get("inform"):
        y = ipaddress.ip_address(bootp.yiaddr)
        if y not in SUBNET or y in (SUBNET.network_address, SUBNET.broadcast_address):
            fail(f"yiaddr {y} not a usable address of {SUBNET}")
        if (got.get("lease_time"), got.get("renewal_time"), got.get("rebinding_time")) != (LEASE, LEASE // 2, LEASE * 7 // 8):
            fail(f"lease/T1/T2 {got.get('lease_time')}/{got.get('renewal_time')}/{got.get('rebinding_time')}")
    elif "lease_time" in got:
        fail("an ACK to INFORM carries a lease time (RFC 2131 4.3.5)")
    if "ciaddr" in exp and bootp.ciaddr != exp["ciaddr"]:
        fail(f"ciaddr {bootp.ciaddr}, expected {exp['ciaddr']}")
    expected = {"subnet_mask": "255.255.255.255", "router": GATEWAY, "name_server": DNS, "domain": DOMAIN,
                "interface-mtu": MTU, "classless_static_routes": ROUTES}
    for key, value in expected.items():
        if got.get(key) != value:
            fail(f"option {key} = {got.get(key)!r}, expected {value!r}")
    if exp.get("broadcast"):
        if reply.dst != "ff:ff:ff:ff:ff:ff" or ip.dst != "255.255.255.255":
            fail(f"broadcast bit set, reply to {reply.dst} {ip.dst}")
    elif "to" in exp:
        if (ip.dst, reply.dst) != exp["to"]:
            fail(f"reply to {ip.dst} at {reply.dst}, expected {exp['to'][0]} at {exp['to'][1]}")
    else:
        if ip.dst != bootp.yiaddr or reply.dst != req.src:
            fail(f"unicast reply to {ip.dst} at {reply.dst}, expected yiaddr {bootp.yiaddr} at {req.src}")
    if "order" in exp:
        names = [k for k, _ in opts if k not in ("message-type", "server_id", "lease_time", "renewal_time", "rebinding_time")]
        if names[: len(exp["order"])] != exp["order"]:
            fail(f"options in order {names}, expected {exp['order']} first (option 55)")
    if "client_id" in exp and got.get("client_id") != exp["client_id"]:
        fail(f"client identifier {got.get('client_id')!r} not echoed (RFC 6842)")


def check(directory):
    failures = []
    for name, (req, exp) in cases().items():
        def fail(message, name=name):
            failures.append(f"{name}: {message}")
        reply_path = os.path.join(directory, name + ".reply")
        counters_path = os.path.join(directory, name + ".counters")
        if not os.path.exists(counters_path):
            fail("not answered (no .counters file)")
            continue
        with open(counters_path) as f:
            counters = f.read().split()
        has_reply = os.path.exists(reply_path)
        if exp.get("malformed"):
            if has_reply:
                fail("malformed request answered")
            if counters != ["dropped.malformed"]:
                fail(f"counters {counters}, expected ['dropped.malformed']")
            continue
        if exp.get("reply") is False:
            if has_reply:
                fail("answered, expected silence")
            if "counter" in exp and exp["counter"] not in counters:
                fail(f"counters {counters} lack {exp['counter']}")
            if "counters" in exp and counters != exp["counters"]:
                fail(f"counters {counters}, expected {exp['counters']}")
            continue
        if not has_reply:
            fail(f"no reply (counters {counters})")
            continue
        with open(reply_path, "rb") as f:
            check_reply(name, req, exp, f.read(), fail)
    for line in failures:
        print("FAIL", line)
    print(f"dhcp4.py: {len(cases())} cases, {len(failures)} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "check"):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(64)
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
        sys.exit(0)
    sys.exit(check(sys.argv[2]))
