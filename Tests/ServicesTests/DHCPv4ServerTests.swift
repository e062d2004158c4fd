import Config
import XCTest
@testable import Services

final class DHCPv4ServerTests: XCTestCase {
    let now: UInt64 = 1_700_000_000
    let router = MACAddress("02:00:00:00:00:fe")!
    let vmMAC = MACAddress("52:54:00:12:34:56")!
    let network: NetworkServiceConfig = {
        var host = false
        return NetworkServiceConfig(name: "prod", ipv4Subnet: IPv4Prefix("10.0.0.0/24", hostBitsSet: &host),
                                    dns4: [IPv4Address("10.0.0.53")!, IPv4Address("10.0.0.54")!], domain: "prod.internal",
                                    leaseTime: 3600, mtu: 1500, routerMAC: MACAddress("02:00:00:00:00:fe")!)
    }()

    func server() throws -> DHCPv4Server { DHCPv4Server(network: network, leases: try LeaseStore(network: network, path: nil)) }
    var port: ServicePort { ServicePort(name: "vm1") }

    /// DISCOVER → OFFER and REQUEST → ACK, then the bytes RFC 2131/2132/3442 fix.
    func testDiscoverOfferRequestAckBytes() throws {
        let s = try server()
        var c = DHCPv4Client(mac: vmMAC)
        c.broadcast = true
        c.secs = 7  // replies carry 0
        let offer = s.handle(c.message(1), port: port, now: now)
        XCTAssertEqual(offer.counters, ["dhcp4.discover", "dhcp4.offer"])
        XCTAssertEqual(offer.events, [])
        let expected = try XCTUnwrap(LeaseStore(network: network, path: nil)
            .allocate4(mac: vmMAC, port: "vm1", requested: nil, staticAddress: nil, now: now))
        var payload: [UInt8] = [2, 1, 6, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x80, 0, 0, 0, 0, 0] + expected.octets
        payload += [UInt8](repeating: 0, count: 8) + vmMAC.octets + [UInt8](repeating: 0, count: 10 + 192) + [99, 130, 83, 99]
        let options: [UInt8] = [53, 1, 2, 54, 4, 169, 254, 0, 1, 51, 4, 0, 0, 0x0E, 0x10, 58, 4, 0, 0, 0x07, 0x08, 59, 4, 0, 0, 0x0C, 0x4E,
                                1, 4, 255, 255, 255, 255, 3, 4, 169, 254, 0, 1,
                                121, 14, 32, 169, 254, 0, 1, 0, 0, 0, 0, 0, 169, 254, 0, 1,
                                6, 8, 10, 0, 0, 53, 10, 0, 0, 54, 15, 13] + Array("prod.internal".utf8) + [26, 2, 0x05, 0xDC, 255]
        payload += options
        let frame = try XCTUnwrap(offer.frame)
        XCTAssertEqual(Array(frame[0..<14]), Frames.broadcastMAC.octets + router.octets + [0x08, 0x00])
        XCTAssertEqual(Array(frame[26..<34]), [169, 254, 0, 1, 255, 255, 255, 255])
        XCTAssertEqual(Array(frame[34..<38]), [0, 67, 0, 68])
        XCTAssertEqual(Array(frame[42...]), payload)
        XCTAssertNotNil(ParsedFrame(frame), "checksums valid")

        let ack = s.handle(c.message(3, DHCPv4Client.opt(54, .gateway) + DHCPv4Client.opt(50, expected)), port: port, now: now + 1)
        XCTAssertEqual(ack.counters, ["dhcp4.request", "dhcp4.ack"])
        XCTAssertEqual(ack.events, [.bound4(port: "vm1", mac: vmMAC, address: expected)])
        var ackPayload = payload
        ackPayload[242] = 5
        XCTAssertEqual(ack.frame.map { Array($0[42...]) }, ackPayload)
        XCTAssertEqual(s.leases.lease(for: vmMAC)?.state4, .bound)
        XCTAssertEqual(s.leases.lease(for: vmMAC)?.expiry4, now + 1 + 3600)
    }

    func testUnicastReplyWithoutBroadcastBitAndPaddingTo300() throws {
        var small = network
        small.dns4 = []
        small.domain = nil
        let s = DHCPv4Server(network: small, leases: try LeaseStore(network: small, path: nil))
        let r = try XCTUnwrap(DHCPv4Reply(s.handle(DHCPv4Client(mac: vmMAC).message(1), port: port, now: now).frame))
        XCTAssertEqual(r.frame.dstMAC, vmMAC)
        XCTAssertEqual(r.dstIP, r.yiaddr)
        XCTAssertEqual(r.srcIP, .gateway)
        XCTAssertEqual(r.frame.srcMAC, router)
        XCTAssertEqual(r.payload.count, 300)
        XCTAssertNil(r.option(6))
        XCTAssertNil(r.option(15))
    }

    func testParameterRequestListOrderAndClientIdentifierEcho() throws {
        let s = try server()
        let id: [UInt8] = [61, 7, 1] + vmMAC.octets
        let r = try XCTUnwrap(DHCPv4Reply(s.handle(DHCPv4Client(mac: vmMAC).message(1, [55, 7, 26, 6, 121, 3, 1, 249, 42] + id),
                                                   port: port, now: now).frame))
        XCTAssertEqual(r.codes, [53, 54, 51, 58, 59, 26, 6, 121, 3, 1, 249, 15, 61])
        XCTAssertEqual(r.option(249), r.option(121))
        XCTAssertEqual(r.option(61), Array(id[2...]))
    }

    func testInitRebootAndRenewAndRebind() throws {
        let s = try server()
        var c = DHCPv4Client(mac: vmMAC)
        let offered = try XCTUnwrap(DHCPv4Reply(s.handle(c.message(1), port: port, now: now).frame)).yiaddr
        // INIT-REBOOT for another address: NAK, broadcast.
        let nak = s.handle(c.message(3, DHCPv4Client.opt(50, IPv4Address("10.0.0.200")!)), port: port, now: now)
        XCTAssertEqual(nak.counters, ["dhcp4.request", "dhcp4.nak"])
        let n = try XCTUnwrap(DHCPv4Reply(nak.frame))
        XCTAssertEqual(n.type, 6)
        XCTAssertEqual(n.yiaddr, IPv4Address(0))
        XCTAssertEqual(n.dstIP, IPv4Address(0xFFFF_FFFF))
        XCTAssertEqual(n.frame.dstMAC, Frames.broadcastMAC)
        XCTAssertEqual(n.option(54), [169, 254, 0, 1])
        XCTAssertNil(n.option(51))
        // INIT-REBOOT for its own address: ACK.
        let ack = s.handle(c.message(3, DHCPv4Client.opt(50, offered)), port: port, now: now)
        XCTAssertEqual(ack.counters, ["dhcp4.request", "dhcp4.ack"])
        // RENEWING: unicast to the server, ciaddr set, ACK unicast to ciaddr with ciaddr kept.
        c.ciaddr = offered
        c.srcIP = offered
        c.dstIP = .gateway
        let renew = try XCTUnwrap(DHCPv4Reply(s.handle(c.message(3), port: port, now: now + 1800).frame))
        XCTAssertEqual(renew.type, 5)
        XCTAssertEqual(renew.dstIP, offered)
        XCTAssertEqual(renew.frame.dstMAC, vmMAC)
        XCTAssertEqual(renew.ciaddr, offered)
        XCTAssertEqual(renew.yiaddr, offered)
        XCTAssertEqual(s.leases.lease(for: vmMAC)?.expiry4, now + 1800 + 3600)
        // REBINDING: broadcast; still answered.
        c.dstIP = IPv4Address(0xFFFF_FFFF)
        let rebind = try XCTUnwrap(DHCPv4Reply(s.handle(c.message(3), port: port, now: now + 3200).frame))
        XCTAssertEqual(rebind.type, 5)
        // Renewing an address that is not its own: NAK.
        c.ciaddr = IPv4Address("10.0.0.201")!
        c.srcIP = c.ciaddr
        XCTAssertEqual(DHCPv4Reply(s.handle(c.message(3), port: port, now: now + 3300).frame)?.type, 6)
        // A REQUEST naming another server: silence (that offer was not ours).
        let other = s.handle(DHCPv4Client(mac: vmMAC).message(3, DHCPv4Client.opt(54, IPv4Address("10.0.0.1")!)
            + DHCPv4Client.opt(50, offered)), port: port, now: now)
        XCTAssertEqual(other, ServiceReply(counters: ["dhcp4.request"]))
    }

    func testStaticAddressIsWhatThePortGets() throws {
        let s = try server()
        let fixed = IPv4Address("10.0.0.5")!
        let p = ServicePort(name: "vm1", mac: vmMAC, staticIPv4: fixed)
        s.leases.reserveStatics([p, ServicePort(name: "vm2")])
        let c = DHCPv4Client(mac: vmMAC)
        XCTAssertEqual(DHCPv4Reply(s.handle(c.message(1, DHCPv4Client.opt(50, IPv4Address("10.0.0.9")!)), port: p, now: now).frame)?.yiaddr, fixed)
        XCTAssertEqual(DHCPv4Reply(s.handle(c.message(3, DHCPv4Client.opt(50, IPv4Address("10.0.0.9")!)), port: p, now: now).frame)?.type, 6)
        let ack = s.handle(c.message(3, DHCPv4Client.opt(50, fixed)), port: p, now: now)
        XCTAssertEqual(ack.events, [.bound4(port: "vm1", mac: vmMAC, address: fixed)])
        // Another port asking for the static address is refused it.
        let other = DHCPv4Client(mac: MACAddress("52:54:00:00:00:02")!)
        let r = s.handle(other.message(3, DHCPv4Client.opt(50, fixed)), port: ServicePort(name: "vm2"), now: now)
        XCTAssertEqual(DHCPv4Reply(r.frame)?.type, 6)
        XCTAssertNotEqual(DHCPv4Reply(s.handle(other.message(1, DHCPv4Client.opt(50, fixed)), port: ServicePort(name: "vm2"), now: now).frame)?.yiaddr, fixed)
        // A static address is not quarantined by a DECLINE.
        XCTAssertEqual(s.handle(c.message(4, DHCPv4Client.opt(50, fixed)), port: p, now: now), ServiceReply(counters: ["dhcp4.decline"]))
    }

    func testReleaseAndDecline() throws {
        let s = try server()
        var c = DHCPv4Client(mac: vmMAC)
        let a = try XCTUnwrap(DHCPv4Reply(s.handle(c.message(1), port: port, now: now).frame)).yiaddr
        _ = s.handle(c.message(3, DHCPv4Client.opt(54, .gateway) + DHCPv4Client.opt(50, a)), port: port, now: now)
        c.ciaddr = a
        c.srcIP = a
        c.dstIP = .gateway
        let rel = s.handle(c.message(7, DHCPv4Client.opt(54, .gateway)), port: port, now: now + 5)
        XCTAssertEqual(rel, ServiceReply(counters: ["dhcp4.release"], events: [.released4(port: "vm1", mac: vmMAC, address: a)]))
        XCTAssertEqual(s.handle(c.message(7), port: port, now: now + 6), ServiceReply(counters: ["dhcp4.release"]), "only once")
        // Back again: the same address.
        c = DHCPv4Client(mac: vmMAC)
        XCTAssertEqual(DHCPv4Reply(s.handle(c.message(1), port: port, now: now + 10).frame)?.yiaddr, a)
        _ = s.handle(c.message(3, DHCPv4Client.opt(54, .gateway) + DHCPv4Client.opt(50, a)), port: port, now: now + 10)
        // DECLINE: the address goes into quarantine and the next offer is another one.
        let dec = s.handle(c.message(4, DHCPv4Client.opt(50, a) + DHCPv4Client.opt(54, .gateway)), port: port, now: now + 11)
        XCTAssertEqual(dec, ServiceReply(counters: ["dhcp4.decline"], events: [.released4(port: "vm1", mac: vmMAC, address: a)]))
        let next = try XCTUnwrap(DHCPv4Reply(s.handle(c.message(1), port: port, now: now + 12).frame)).yiaddr
        XCTAssertNotEqual(next, a)
        // A DECLINE of an address the MAC does not hold changes nothing.
        XCTAssertEqual(s.handle(c.message(4, DHCPv4Client.opt(50, IPv4Address("10.0.0.3")!)), port: port, now: now + 13),
                       ServiceReply(counters: ["dhcp4.decline"]))
    }

    func testInformGetsConfigurationWithoutLease() throws {
        let s = try server()
        var c = DHCPv4Client(mac: vmMAC)
        c.ciaddr = IPv4Address("10.0.0.5")!
        c.srcIP = c.ciaddr
        c.dstIP = .gateway
        let r = s.handle(c.message(8, [55, 2, 6, 15]), port: port, now: now)
        XCTAssertEqual(r.counters, ["dhcp4.inform", "dhcp4.ack"])
        XCTAssertEqual(r.events, [])
        let ack = try XCTUnwrap(DHCPv4Reply(r.frame))
        XCTAssertEqual(ack.type, 5)
        XCTAssertEqual(ack.yiaddr, IPv4Address(0))
        XCTAssertEqual(ack.ciaddr, c.ciaddr)
        XCTAssertEqual(ack.dstIP, c.ciaddr)
        XCTAssertEqual(ack.frame.dstMAC, vmMAC)
        XCTAssertEqual(ack.codes, [53, 54, 6, 15, 1, 3, 121, 26])
        XCTAssertNil(s.leases.lease(for: vmMAC), "INFORM allocates nothing")
    }

    func testSpoofedOrForeignClientsAreRefused() throws {
        let s = try server()
        let c = DHCPv4Client(mac: vmMAC)
        // chaddr is not the frame's source MAC.
        let spoof = c.frame(c.payload(options: [53, 1, 1, 255], chaddr: MACAddress("52:54:00:99:99:99")!))
        XCTAssertEqual(s.handle(spoof, port: port, now: now), ServiceReply(counters: ["dhcp4.discover", "dhcp4.refused"]))
        // The port is bound to another MAC.
        let bound = ServicePort(name: "vm1", mac: MACAddress("52:54:00:00:00:01")!)
        XCTAssertEqual(s.handle(c.message(1), port: bound, now: now), ServiceReply(counters: ["dhcp4.discover", "dhcp4.refused"]))
        XCTAssertNil(s.leases.lease(for: vmMAC))
    }

    func testNotForThisServer() throws {
        let s = try server()
        var c = DHCPv4Client(mac: vmMAC)
        c.dstPort = 68
        XCTAssertEqual(s.handle(c.message(1), port: port, now: now), .none)
        c = DHCPv4Client(mac: vmMAC)
        c.dstIP = IPv4Address("10.0.0.7")!
        XCTAssertEqual(s.handle(c.message(1), port: port, now: now), .none, "to another host's port 67: routed, not answered")
        let v6only = NetworkServiceConfig(name: "v6", routerMAC: router)
        let s6 = DHCPv4Server(network: v6only, leases: try LeaseStore(network: v6only, path: nil))
        XCTAssertEqual(s6.handle(DHCPv4Client(mac: vmMAC).message(1), port: port, now: now), .none)
    }

    func testExhaustedPoolIsCountedWithoutReply() throws {
        var host = false
        let tiny = NetworkServiceConfig(name: "t", ipv4Subnet: IPv4Prefix("10.0.0.0/30", hostBitsSet: &host), routerMAC: router)
        let s = DHCPv4Server(network: tiny, leases: try LeaseStore(network: tiny, path: nil))
        for n in 1...2 {
            XCTAssertNotNil(s.handle(DHCPv4Client(mac: MACAddress(bytes: (2, 0, 0, 0, 0, UInt8(n)))).message(1), port: port, now: now).frame)
        }
        XCTAssertEqual(s.handle(DHCPv4Client(mac: MACAddress(bytes: (2, 0, 0, 0, 0, 3))).message(1), port: port, now: now),
                       ServiceReply(counters: ["dhcp4.discover", "dhcp4.no_address"]))
    }

    func testHostileInputsAreCountedNeverAnswered() throws {
        let s = try server()
        var c = DHCPv4Client(mac: vmMAC)
        let malformed = ServiceReply(counters: ["dropped.malformed"])
        let cases: [(String, [UInt8])] = [
            ("truncated option", c.payload(options: [53, 1, 1, 61, 7, 1, 2])),
            ("length past the end", c.payload(options: [53, 1, 1, 55, 200, 1, 3, 255])),
            ("no end option", c.payload(options: [53, 1, 1])),
            ("pad only", c.payload(options: [0, 0, 0, 0, 0, 0])),
            ("end only", c.payload(options: [255])),
            ("no magic cookie", c.payload(options: [53, 1, 1, 255], cookie: [0, 0, 0, 0])),
            ("no cookie, no options", Array(c.payload(options: []).prefix(236))),
            ("op BOOTREPLY", c.payload(options: [53, 1, 1, 255], op: 2)),
            ("huge hlen", c.payload(options: [53, 1, 1, 255], hlen: 255)),
            ("an OFFER from a client", c.payload(options: [53, 1, 2, 255])),
            ("an ACK from a client", c.payload(options: [53, 1, 5, 255])),
            ("message type 200", c.payload(options: [53, 1, 200, 255])),
            ("message type of length 2", c.payload(options: [53, 2, 1, 1, 255])),
            ("requested address of length 3", c.payload(options: [53, 1, 1, 50, 3, 10, 0, 0, 255])),
            ("client id of length 1", c.payload(options: [53, 1, 1, 61, 1, 1, 255])),
            ("bad overload", c.payload(options: [53, 1, 1, 52, 1, 9, 255])),
            ("overload into an empty file field", c.payload(options: [53, 1, 1, 52, 1, 1, 255])),
            ("REQUEST without address", c.payload(options: [53, 1, 3, 255])),
            ("REQUEST to us without requested address", c.payload(options: [53, 1, 3, 54, 4, 169, 254, 0, 1, 255])),
            ("empty payload", []),
            ("one byte", [1]),
        ]
        for (name, payload) in cases {
            XCTAssertEqual(s.handle(c.frame(payload), port: port, now: now), malformed, name)
        }
        c.srcPort = 67
        XCTAssertEqual(s.handle(c.message(1), port: port, now: now), malformed, "from port 67 (a relay)")
        XCTAssertNil(s.leases.lease(for: vmMAC))
    }

    func testOptionOverloadAndConcatenationAreUnderstood() throws {
        let s = try server()
        let c = DHCPv4Client(mac: vmMAC)
        var p = c.payload(options: [53, 1, 1, 52, 1, 1, 55, 1, 6, 55, 1, 121, 255])
        // Option overload: the file field holds more options (here a requested address).
        let requested = IPv4Address("10.0.0.99")!
        p.replaceSubrange(108..<115, with: [50, 4] + requested.octets + [255])
        let r = try XCTUnwrap(DHCPv4Reply(s.handle(c.frame(p), port: port, now: now).frame))
        XCTAssertEqual(r.yiaddr, requested)
        XCTAssertEqual(Array(r.codes.prefix(7)), [53, 54, 51, 58, 59, 6, 121], "two 55 options concatenated (RFC 3396)")
    }

    /// Random damage to valid requests never traps, and every reply parses and goes back
    /// to the requester with an address of the pool.
    func testMutatedRequestsNeverTrap() throws {
        let s = try server()
        var rng = SystemRandomNumberGenerator()
        let c = DHCPv4Client(mac: vmMAC)
        let seeds = [c.payload(options: [53, 1, 1, 55, 4, 1, 3, 121, 6, 61, 7, 1] + vmMAC.octets + [255]),
                     c.payload(options: [53, 1, 3, 54, 4, 169, 254, 0, 1, 50, 4, 10, 0, 0, 9, 255]),
                     c.payload(options: [53, 1, 8, 255])]
        for i in 0..<20_000 {
            var p = seeds[i % seeds.count]
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: p[Int.random(in: 0..<p.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: p = Array(p.prefix(Int.random(in: 0...p.count, using: &rng)))
                case 2: p.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 236...p.count, using: &rng))
                default: if p.count > 240 { p[Int.random(in: 240..<p.count, using: &rng)] = [0, 255, 53, 52, 50][Int.random(in: 0..<5, using: &rng)] }
                }
                if p.count < 240 { break }
            }
            let reply = s.handle(c.frame(p), port: port, now: now + UInt64(i))
            if let f = reply.frame {
                let r = try XCTUnwrap(DHCPv4Reply(f))
                XCTAssertTrue(r.frame.dstMAC == vmMAC || r.frame.dstMAC == Frames.broadcastMAC)
                XCTAssertEqual(Array(r.chaddr.prefix(6)), vmMAC.octets)
                XCTAssertTrue(r.yiaddr.value == 0 || network.ipv4Subnet!.contains(r.yiaddr), "\(r.yiaddr)")
            }
        }
    }
}
