#!/usr/bin/env python3
"""DHCPv6 conformance of Sluice's server against scapy (an independent implementation).

  dhcp6.py gen DIR     write client requests built with scapy as DIR/<case>.req (whole
                       Ethernet frames); the Swift test (DHCPv6ScapyTests) answers them in
                       name order with one server and writes DIR/<case>.reply (when it sends a
                       frame) and DIR/<case>.counters (the counters it bumped, one a line)
  dhcp6.py check DIR   parse every reply with scapy's DHCPv6 layers and check it against
                       RFC 8415 and the test network; exit 1 naming each case that fails

The network (same as the Swift fixture): prefix fd00:1::/64, DNS fd00:1::53, domain
prod.internal, lease time 3600 s, router MAC 02:00:00:00:00:fe; the client's port is bound
to 52:54:00:12:34:56.
"""
import ipaddress
import os
import sys

from scapy.layers.dhcp6 import (DHCP6_Advertise, DHCP6_Confirm, DHCP6_Decline, DHCP6_InfoRequest, DHCP6_Rebind,
                                DHCP6_Release, DHCP6_Renew, DHCP6_Reply, DHCP6_Request, DHCP6_Solicit, DHCP6OptClientId,
                                DHCP6OptDNSDomains, DHCP6OptDNSServers, DHCP6OptElapsedTime, DHCP6OptIA_NA,
                                DHCP6OptIAAddress, DHCP6OptOptReq, DHCP6OptPref, DHCP6OptRapidCommit, DHCP6OptServerId,
                                DHCP6OptStatusCode, DHCP6OptUnknown, DUID_LL, DUID_LLT)
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

ROUTER_MAC = "02:00:00:00:00:fe"
CLIENT_MAC = "52:54:00:12:34:56"
OTHER_MAC = "52:54:00:65:43:21"
CLIENT_LL = "fe80::5054:ff:fe12:3456"
PREFIX = ipaddress.ip_network("fd00:1::/64")
DNS = "fd00:1::53"
DOMAIN = "prod.internal."
LEASE = 3600
SERVER_DUID = DUID_LL(lladdr=ROUTER_MAC)
CLIENT_DUID = DUID_LLT(lladdr=CLIENT_MAC, timeval=0x2B3C4D5E)
TRID = 0xABCDEF


def frame(msg, src_mac=CLIENT_MAC, dst="ff02::1:2", dport=547):
    return Ether(src=src_mac, dst="33:33:00:01:00:02") / IPv6(src=CLIENT_LL, dst=dst) / UDP(sport=546, dport=dport) / msg


def cid():
    return DHCP6OptClientId(duid=CLIENT_DUID)


def sid():
    return DHCP6OptServerId(duid=SERVER_DUID)


def ia(*addresses, iaid=1):
    return DHCP6OptIA_NA(iaid=iaid, T1=0, T2=0, ianaopts=[DHCP6OptIAAddress(addr=a) for a in addresses])


ORO = DHCP6OptOptReq(reqopts=[23, 24])
ELAPSED = DHCP6OptElapsedTime()


def raw_udp(payload, src_mac=CLIENT_MAC):
    """A frame whose DHCPv6 payload is exactly `payload` (UDP length and checksum by scapy)."""
    return frame(Raw(payload), src_mac)


# Each case: the request, and what the reply must be. Cases run in name order on one
# server, so the REQUEST/RENEW/... after the SOLICIT find the address bound.
CASES = {
    "01-solicit": (frame(DHCP6_Solicit(trid=TRID) / ELAPSED / cid() / ia() / ORO), "advertise"),
    "02-solicit-rapid-commit": (frame(DHCP6_Solicit(trid=TRID) / ELAPSED / cid() / DHCP6OptRapidCommit() / ia() / ORO),
                                "reply-rapid"),
    "03-request": (frame(DHCP6_Request(trid=TRID) / ELAPSED / cid() / sid() / ia("fd00:1::2") / ORO), "reply-address"),
    "04-renew": (frame(DHCP6_Renew(trid=TRID) / ELAPSED / cid() / sid() / ia("fd00:1::2") / ORO), "reply-address"),
    "05-rebind": (frame(DHCP6_Rebind(trid=TRID) / ELAPSED / cid() / ia("fd00:1::2") / ORO), "reply-address"),
    "06-confirm-on-link": (frame(DHCP6_Confirm(trid=TRID) / ELAPSED / cid() / ia("fd00:1::2")), ("status", 0)),
    "07-confirm-not-on-link": (frame(DHCP6_Confirm(trid=TRID) / ELAPSED / cid() / ia("fd00:9::2")), ("status", 4)),
    "08-information-request": (frame(DHCP6_InfoRequest(trid=TRID) / ELAPSED / cid() / ORO), "reply-info"),
    "09-release": (frame(DHCP6_Release(trid=TRID) / ELAPSED / cid() / sid() / ia("fd00:1::2")), ("status", 0)),
    "10-renew-after-release": (frame(DHCP6_Renew(trid=TRID) / cid() / sid() / ia("fd00:1::2")), "reply-address"),
    "11-decline": (frame(DHCP6_Decline(trid=TRID) / cid() / sid() / ia("fd00:1::2")), ("status", 0)),
    "12-unknown-options-ignored": (frame(DHCP6_Solicit(trid=TRID) / DHCP6OptUnknown(optcode=250, data=b"hello") / cid()
                                         / ia() / DHCP6OptUnknown(optcode=0xFFFF, data=b"")), "advertise"),
    "13-unicast-request": (frame(DHCP6_Request(trid=TRID) / cid() / sid() / ia(), dst="fe80::1"), ("status", 5)),
    # Malformed, or not for the server: no reply.
    "m01-truncated-option": (raw_udp(bytes(DHCP6_Solicit(trid=TRID) / cid() / ia())[:-7]), "malformed"),
    "m02-option-length-past-end": (frame(DHCP6_Solicit(trid=TRID) / DHCP6OptClientId(duid=CLIENT_DUID, optlen=200)),
                                   "malformed"),
    "m03-ia-length-past-end": (frame(DHCP6_Solicit(trid=TRID) / cid() / DHCP6OptIA_NA(iaid=1, optlen=90)), "malformed"),
    "m04-no-client-id": (frame(DHCP6_Solicit(trid=TRID) / ia()), "malformed"),
    "m05-server-id-in-solicit": (frame(DHCP6_Solicit(trid=TRID) / cid() / sid() / ia()), "malformed"),
    "m06-huge-ia-count": (frame(DHCP6_Solicit(trid=TRID) / cid() / b"".join(bytes(ia(iaid=i)) for i in range(40))),
                          "malformed"),
    "m07-reply-sent-to-server": (frame(DHCP6_Reply(trid=TRID) / cid() / sid()), "malformed"),
    "m08-advertise-sent-to-server": (frame(DHCP6_Advertise(trid=TRID) / cid() / sid()), "malformed"),
    "m09-only-a-type-byte": (raw_udp(b"\x01"), "malformed"),
    "m10-ia-in-information-request": (frame(DHCP6_InfoRequest(trid=TRID) / cid() / ia()), "malformed"),
    "m11-wrong-port": (frame(DHCP6_Solicit(trid=TRID) / cid() / ia(), dport=548), "none"),
    "m12-request-for-another-server": (frame(DHCP6_Request(trid=TRID) / cid()
                                             / DHCP6OptServerId(duid=DUID_LL(lladdr="02:11:22:33:44:55")) / ia()),
                                       "ignored"),
    "m13-other-mac": (frame(DHCP6_Solicit(trid=TRID) / cid() / ia(), src_mac=OTHER_MAC), "refused"),
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


def options(msg, cls):
    """Every option of class `cls` at the top level of a DHCPv6 message."""
    found, layer = [], msg.payload
    while layer and not isinstance(layer, Raw):
        if type(layer) is cls:  # exact: DHCP6OptServerId subclasses DHCP6OptClientId
            found.append(layer)
        layer = layer.payload
    return found


def check_frame(name, data):
    pkt = Ether(data)
    expect(pkt.dst == CLIENT_MAC and pkt.src == ROUTER_MAC, f"MACs {pkt.src} -> {pkt.dst}")
    expect(IPv6 in pkt and pkt[IPv6].src == "fe80::1" and pkt[IPv6].dst == CLIENT_LL, "IPv6 addresses")
    expect(UDP in pkt and pkt[UDP].sport == 547 and pkt[UDP].dport == 546, "UDP ports")
    # scapy recomputes the checksum of a copy with the field cleared.
    copy = Ether(data)
    del copy[UDP].chksum
    expect(Ether(bytes(copy))[UDP].chksum == pkt[UDP].chksum, "UDP checksum")
    msg = pkt[UDP].payload
    expect(msg.trid == TRID, f"transaction ID {msg.trid:#x}")
    client = options(msg, DHCP6OptClientId)
    expect(len(client) == 1 and bytes(client[0].duid) == bytes(CLIENT_DUID), "client ID echoed")
    server = options(msg, DHCP6OptServerId)
    expect(len(server) == 1 and bytes(server[0].duid) == bytes(SERVER_DUID), "server ID (DUID-LL of the router MAC)")
    return msg


def check_address_ia(msg):
    ias = options(msg, DHCP6OptIA_NA)
    expect(len(ias) == 1, f"{len(ias)} IA_NA")
    expect(ias[0].iaid == 1 and ias[0].T1 == LEASE // 2 and ias[0].T2 == LEASE * 4 // 5, "IAID, T1 0.5, T2 0.8")
    addrs = [o for o in ias[0].ianaopts if isinstance(o, DHCP6OptIAAddress)]
    expect(len(addrs) == 1, "one IAADDR")
    a = ipaddress.ip_address(addrs[0].addr)
    expect(a in PREFIX and a != PREFIX.network_address and a != PREFIX.network_address + 1, f"{a} from the pool")
    expect(addrs[0].preflft == LEASE and addrs[0].validlft == LEASE, "lifetimes = lease time")
    return a


def check_config(msg):
    dns = options(msg, DHCP6OptDNSServers)
    expect(len(dns) == 1 and dns[0].dnsservers == [DNS], "DNS servers option 23")
    dom = options(msg, DHCP6OptDNSDomains)
    expect(len(dom) == 1 and dom[0].dnsdomains == [DOMAIN], "domain list option 24")


def check_case(name, kind, directory):
    reply_path = os.path.join(directory, name + ".reply")
    counters = open(os.path.join(directory, name + ".counters")).read().split()
    has_reply = os.path.exists(reply_path)
    if kind in ("malformed", "none", "ignored", "refused"):
        expect(not has_reply, "a reply was sent")
        wanted = {"malformed": "dropped.malformed", "refused": "dhcp6.refused"}.get(kind)
        if wanted:
            expect(wanted in counters, f"counter {wanted} (got {counters})")
        elif kind == "none":
            expect(counters == [], f"no counter (got {counters})")
        else:
            expect("dropped.malformed" not in counters, f"counted as malformed ({counters})")
        return
    expect(has_reply, f"no reply (counters {counters})")
    msg = check_frame(name, open(reply_path, "rb").read())
    if kind == "advertise":
        expect(isinstance(msg, DHCP6_Advertise), f"{msg.name}, not ADVERTISE")
        check_address_ia(msg)
        check_config(msg)
        pref = options(msg, DHCP6OptPref)
        expect(len(pref) == 1 and pref[0].prefval == 255, "preference 255")
    elif kind == "reply-rapid":
        expect(isinstance(msg, DHCP6_Reply), f"{msg.name}, not REPLY")
        expect(len(options(msg, DHCP6OptRapidCommit)) == 1, "rapid commit option in the REPLY")
        check_address_ia(msg)
        check_config(msg)
    elif kind == "reply-address":
        expect(isinstance(msg, DHCP6_Reply), f"{msg.name}, not REPLY")
        expect(str(check_address_ia(msg)) == "fd00:1::2", "the same address again")
        check_config(msg)
    elif kind == "reply-info":
        expect(isinstance(msg, DHCP6_Reply), f"{msg.name}, not REPLY")
        expect(not options(msg, DHCP6OptIA_NA), "no IA in an INFORMATION-REQUEST reply")
        check_config(msg)
    elif isinstance(kind, tuple) and kind[0] == "status":
        expect(isinstance(msg, DHCP6_Reply), f"{msg.name}, not REPLY")
        st = options(msg, DHCP6OptStatusCode)
        expect(len(st) == 1 and st[0].statuscode == kind[1],
               f"status {[s.statuscode for s in st]}, want {kind[1]}")
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
    print(f"dhcp6: {len(CASES) - failed}/{len(CASES)} cases conform")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "check"):
        sys.exit(__doc__)
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2]))
