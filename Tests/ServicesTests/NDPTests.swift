import Config
import XCTest
@testable import Services

final class NDPTests: XCTestCase {
    typealias F = V6Fixture
    private let nd = NDPResponder(network: F.network)
    private let global = IPv6Address("fd00:1::1")!

    private func hex(_ s: String) -> [UInt8] {
        let digits = Array(s.filter { $0.isHexDigit })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// An ICMPv6 message from the client (checksum filled in).
    private func icmp(_ message: [UInt8], src: IPv6Address = F.clientLL, dst: IPv6Address, hopLimit: UInt8 = 255,
                      srcMAC: MACAddress = F.clientMAC) -> ParsedFrame {
        let dstMAC = dst.high >> 56 == 0xFF ? Frames.multicastMAC(dst) : F.routerMAC
        return ParsedFrame(Frames.ip6(srcMAC: srcMAC, dstMAC: dstMAC, src: src, dst: dst, next: 58, hopLimit: hopLimit,
                                      body: message, checksumOffset: 2))!
    }

    private func rs(options: [UInt8] = [1, 1] + F.clientMAC.octets) -> [UInt8] { [133, 0, 0, 0, 0, 0, 0, 0] + options }

    private func ns(_ target: IPv6Address, options: [UInt8] = [1, 1] + F.clientMAC.octets) -> [UInt8] {
        [135, 0, 0, 0, 0, 0, 0, 0] + target.bytes + options
    }

    /// The ICMPv6 message of a reply after checking its framing and checksum.
    private func message(_ bytes: [UInt8]?, mac: MACAddress, src: IPv6Address = .gateway, dst: IPv6Address,
                         file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
        let f = try XCTUnwrap(bytes, "no frame", file: file, line: line)
        let p = try XCTUnwrap(ParsedFrame(f), "the reply does not parse", file: file, line: line)
        XCTAssertEqual(p.dstMAC, mac, file: file, line: line)
        XCTAssertEqual(p.srcMAC, F.routerMAC, file: file, line: line)
        XCTAssertEqual(p.network, .ipv6(src: src, dst: dst, hopLimit: 255), file: file, line: line)
        guard case .icmpv6(_, _, let r) = p.transport else { XCTFail("not ICMPv6", file: file, line: line); return [] }
        var m = Array(f[r])
        m[2] = 0; m[3] = 0  // checksum verified by ParsedFrame; compared as zero
        return m
    }

    private let expectedRA = """
        86 00 0000 40 c0 0708 00000000 00000000
        01 01 0200000000fe
        05 01 0000 000005dc
        03 04 40 00 00015180 00003840 00000000 fd000001000000000000000000000000
        19 03 0000 00000708 fd000001000000000000000000000053
        1f 03 0000 00000708 0470726f6408696e7465726e616c00 00
        """

    func testRouterSolicitationGetsAdvertisementByteForByte() throws {
        let r = nd.handle(icmp(rs(), dst: NDPResponder.allRouters), port: F.port, now: 100)
        XCTAssertEqual(r.counters, ["ra.sent"])
        XCTAssertEqual(r.events, [])
        XCTAssertEqual(try message(r.frame, mac: F.clientMAC, dst: F.clientLL), hex(expectedRA))
    }

    func testSolicitationFromUnspecifiedGoesToAllNodes() throws {
        let r = nd.handle(icmp(rs(options: []), src: .unspecified, dst: NDPResponder.allRouters), port: F.port, now: 100)
        XCTAssertEqual(try message(r.frame, mac: Frames.multicastMAC(Frames.allNodes), dst: Frames.allNodes), hex(expectedRA))
        XCTAssertEqual(try message(nd.routerAdvertisement(to: F.port), mac: Frames.multicastMAC(Frames.allNodes),
                                   dst: Frames.allNodes), hex(expectedRA), "the periodic RA is the same message")
    }

    func testSolicitedAdvertisementsAreRateLimitedPerPort() {
        let frame = icmp(rs(), dst: NDPResponder.allRouters)
        XCTAssertEqual(nd.handle(frame, port: F.port, now: 100).counters, ["ra.sent"])
        XCTAssertEqual(nd.handle(frame, port: F.port, now: 101), ServiceReply(counters: ["ra.suppressed"]))
        XCTAssertEqual(nd.handle(frame, port: F.port, now: 102).counters, ["ra.suppressed"])
        let other = ServicePort(name: "vm2")
        XCTAssertEqual(nd.handle(frame, port: other, now: 102).counters, ["ra.sent"], "another port is another link")
        XCTAssertEqual(nd.handle(frame, port: F.port, now: 103).counters, ["ra.sent"], "3 s later")
    }

    func testRAWithoutOptionalParts() throws {
        let bare = NDPResponder(network: NetworkServiceConfig(name: "n", mtu: 9000, routerMAC: F.routerMAC))
        let m = try message(bare.routerAdvertisement(to: F.port), mac: Frames.multicastMAC(Frames.allNodes), dst: Frames.allNodes)
        XCTAssertEqual(m, hex("86 00 0000 40 c0 0708 00000000 00000000 01 01 0200000000fe 05 01 0000 00002328"))
        let tiny = NDPResponder(network: NetworkServiceConfig(name: "n", domain: "bad..name", mtu: 576, routerMAC: F.routerMAC))
        let t = try message(tiny.routerAdvertisement(to: F.port), mac: Frames.multicastMAC(Frames.allNodes), dst: Frames.allNodes)
        XCTAssertEqual(t.count, 24, "no MTU option below 1280, no DNSSL for a name that cannot be encoded")
    }

    func testNeighborSolicitationForTheGatewayByteForByte() throws {
        let r = nd.handle(icmp(ns(.gateway), dst: NDPResponder.solicitedNode(.gateway)), port: F.port, now: 1)
        XCTAssertEqual(r.counters, ["nd.adverts"])
        XCTAssertEqual(try message(r.frame, mac: F.clientMAC, dst: F.clientLL), hex("""
            88 00 0000 e0 000000 fe800000000000000000000000000001
            02 01 0200000000fe
            """))
        // Unicast NUD to the router's global address, answered from it.
        let g = nd.handle(icmp(ns(global), dst: global), port: F.port, now: 1)
        XCTAssertEqual(try message(g.frame, mac: F.clientMAC, src: global, dst: F.clientLL), hex("""
            88 00 0000 e0 000000 fd000001000000000000000000000001
            02 01 0200000000fe
            """))
    }

    func testDuplicateAddressDetectionProbe() throws {
        let r = nd.handle(icmp(ns(.gateway, options: []), src: .unspecified, dst: NDPResponder.solicitedNode(.gateway)),
                          port: F.port, now: 1)
        XCTAssertEqual(r.counters, ["nd.adverts"])
        XCTAssertEqual(try message(r.frame, mac: Frames.multicastMAC(Frames.allNodes), dst: Frames.allNodes), hex("""
            88 00 0000 a0 000000 fe800000000000000000000000000001
            02 01 0200000000fe
            """), "S=0 to all nodes")
        // A DAD probe for a guest's own address is not the router's business.
        let mine = IPv6Address("fd00:1::2")!
        XCTAssertEqual(nd.handle(icmp(ns(mine, options: []), src: .unspecified, dst: NDPResponder.solicitedNode(mine)),
                                 port: F.port, now: 1), .none)
    }

    func testOtherNeighborDiscoveryIsNotAnswered() {
        let other = IPv6Address("fd00:1::9")!
        XCTAssertEqual(nd.handle(icmp(ns(other), dst: NDPResponder.solicitedNode(other)), port: F.port, now: 1), .none)
        let na: [UInt8] = [136, 0, 0, 0, 0x20, 0, 0, 0] + F.clientLL.bytes
        XCTAssertEqual(nd.handle(icmp(na, dst: .gateway), port: F.port, now: 1), .none)
        let ra: [UInt8] = [134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(nd.handle(icmp(ra, dst: Frames.allNodes), port: F.port, now: 1), .none)
        let echo: [UInt8] = [128, 0, 0, 0, 0, 1, 0, 1]
        XCTAssertEqual(nd.handle(icmp(echo, dst: .gateway), port: F.port, now: 1), .none)
        XCTAssertEqual(nd.handle(icmp(rs(), dst: IPv6Address("ff02::1")!), port: F.port, now: 1), .none, "RS not to routers")
        XCTAssertEqual(nd.handle(icmp(ns(.gateway), dst: Frames.allNodes), port: F.port, now: 1), .none,
                       "NS to neither the solicited-node group nor the target")
    }

    func testInvalidMessagesAreDroppedAndCounted() {
        let sn = NDPResponder.solicitedNode(.gateway)
        var badCode = rs()
        badCode[1] = 1
        var nsBadCode = ns(.gateway)
        nsBadCode[1] = 9
        let cases: [(String, ParsedFrame)] = [
            ("RS hop limit 64", icmp(rs(), dst: NDPResponder.allRouters, hopLimit: 64)),
            ("NS hop limit 254", icmp(ns(.gateway), dst: sn, hopLimit: 254)),
            ("RS code 1", icmp(badCode, dst: NDPResponder.allRouters)),
            ("NS code 9", icmp(nsBadCode, dst: sn)),
            ("RS option of length 0", icmp(rs(options: [1, 0, 0, 0, 0, 0, 0, 0]), dst: NDPResponder.allRouters)),
            ("NS option of length 0", icmp(ns(.gateway, options: [14, 0, 1, 2, 3, 4, 5, 6]), dst: sn)),
            ("RS option past the end", icmp(rs(options: [1, 2] + F.clientMAC.octets), dst: NDPResponder.allRouters)),
            ("RS option header cut", icmp(rs(options: [1]), dst: NDPResponder.allRouters)),
            ("RS too short", icmp([133, 0, 0, 0, 0, 0], dst: NDPResponder.allRouters)),
            ("NS too short", icmp(Array(ns(.gateway).prefix(20)), dst: sn)),
            ("NS for a multicast target", icmp(ns(Frames.allNodes), dst: NDPResponder.solicitedNode(Frames.allNodes))),
            ("DAD probe with a source link-layer option", icmp(ns(.gateway), src: .unspecified, dst: sn)),
            ("DAD probe not to the solicited-node group", icmp(ns(.gateway, options: []), src: .unspecified, dst: .gateway)),
            ("RS from unspecified with a link-layer option", icmp(rs(), src: .unspecified, dst: NDPResponder.allRouters)),
            ("RS from a multicast source", icmp(rs(), src: Frames.allNodes, dst: NDPResponder.allRouters)),
        ]
        for (what, frame) in cases {
            XCTAssertEqual(nd.handle(frame, port: F.port, now: 1), ServiceReply(counters: ["dropped.malformed"]), what)
        }
    }

    func testOnlyTheBoundMACIsAnswered() {
        let r = nd.handle(icmp(ns(.gateway), dst: NDPResponder.solicitedNode(.gateway), srcMAC: F.otherMAC), port: F.port, now: 1)
        XCTAssertEqual(r, ServiceReply(counters: ["nd.refused"]))
    }

    func testRouterNeighborSolicitation() throws {
        let target = IPv6Address("fd00:1::2")!
        let sn = NDPResponder.solicitedNode(target)
        XCTAssertEqual(sn, IPv6Address("ff02::1:ff00:2"))
        let m = try message(nd.neighborSolicitation(for: target, port: F.port), mac: Frames.multicastMAC(sn), dst: sn)
        XCTAssertEqual(Frames.multicastMAC(sn).description, "33:33:ff:00:00:02")
        XCTAssertEqual(m, hex("87 00 0000 00000000 fd000001000000000000000000000002 01 01 0200000000fe"))
    }

    /// Mutated solicitations: never a trap, and a reply is always NDP from the router to the
    /// solicitor (or all nodes) with the prefix neither on-link nor autonomous.
    func testMutatedMessagesNeverTrap() throws {
        var rng = SystemRandomNumberGenerator()
        let sn = NDPResponder.solicitedNode(.gateway)
        let seeds: [(ParsedFrame)] = [icmp(rs(), dst: NDPResponder.allRouters), icmp(ns(.gateway), dst: sn),
                                      icmp(ns(.gateway, options: []), src: .unspecified, dst: sn)]
        for i in 0..<20000 {
            var b = seeds[i % seeds.count].bytes
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0 where b.count > 54: b[Int.random(in: 54..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: b = Array(b.prefix(Int.random(in: 54...b.count, using: &rng)))
                default: b += (0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            }
            // Re-frame the mutated ICMPv6 body with a valid checksum so it gets past the parser.
            let hop: UInt8 = i % 7 == 0 ? 64 : 255
            let src = IPv6Address(bytes: Array(seeds[i % seeds.count].bytes[22..<38]))!
            let dst = IPv6Address(bytes: Array(seeds[i % seeds.count].bytes[38..<54]))!
            guard b.count >= 58 else { continue }
            let frame = icmp(Array(b[54...]), src: src, dst: dst, hopLimit: hop)
            let r = nd.handle(frame, port: ServicePort(name: "p\(i)"), now: 1)
            guard let out = r.frame else { continue }
            let p = try XCTUnwrap(ParsedFrame(out))
            guard case .icmpv6(let type, 0, let range) = p.transport, case .ipv6(let s, let d, 255) = p.network else {
                return XCTFail("reply is not NDP")
            }
            XCTAssertTrue(s == .gateway || s == global)
            XCTAssertTrue(d == src || d == Frames.allNodes)
            XCTAssertTrue(type == 134 || type == 136)
            if type == 134 { XCTAssertEqual(try message(out, mac: p.dstMAC, dst: d), hex(expectedRA)) }
            if type == 136 { XCTAssertEqual(Array(out[range].dropFirst(8).prefix(16)), IPv6Address.gateway.bytes) }
        }
    }
}
