import Config
import XCTest
@testable import Services

final class DHCPv6ServerTests: XCTestCase {
    typealias F = V6Fixture
    private var leases = DHCPv6MemoryLeases(prefix: F.prefix)
    private lazy var server = DHCPv6Server(network: F.network, leases: leases, serverDUID: F.serverDUID)

    private let serverIDOption = F.option(2, F.serverDUID)
    private let clientIDOption = F.option(1, F.clientDUID)
    private let firstAddress = IPv6Address("fd00:1::2")!

    /// The reply's UDP payload after checking the framing: Ethernet to the client from the
    /// router MAC, fe80::1 port 547 to the client's address and port, valid checksum.
    private func payload(_ r: ServiceReply, to mac: MACAddress = F.clientMAC, dst: IPv6Address = F.clientLL,
                         port: UInt16 = 546, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
        let bytes = try XCTUnwrap(r.frame, "no reply frame", file: file, line: line)
        let p = try XCTUnwrap(ParsedFrame(bytes), file: file, line: line)
        XCTAssertEqual(p.dstMAC, mac, file: file, line: line)
        XCTAssertEqual(p.srcMAC, F.routerMAC, file: file, line: line)
        XCTAssertEqual(p.network, .ipv6(src: .gateway, dst: dst, hopLimit: 255), file: file, line: line)
        guard case .udp(let sp, let dp, let range) = p.transport else { XCTFail("not UDP", file: file, line: line); return [] }
        XCTAssertEqual(sp, 547, file: file, line: line)
        XCTAssertEqual(dp, port, file: file, line: line)
        XCTAssertEqual(Frames.pseudoChecksum6(src: .gateway, dst: dst, next: 17, body: bytes[54...]), 0, "UDP checksum",
                       file: file, line: line)
        return Array(bytes[range])
    }

    private func hex(_ s: String) -> [UInt8] {
        let digits = Array(s.filter { $0.isHexDigit })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// Options of a reply body (the message header skipped).
    private func options(_ body: [UInt8]) -> [(UInt16, [UInt8])] {
        (DHCPv6.options(body, 4..<body.count) ?? []).map { ($0.code, Array(body[$0.data])) }
    }

    private func statusCode(_ body: [UInt8]) -> UInt16? {
        options(body).first { $0.0 == 13 }.map { UInt16($0.1[0]) << 8 | UInt16($0.1[1]) }
    }

    private func solicit(rapid: Bool = false) -> [UInt8] {
        F.message(1, clientIDOption + F.option(8, [0, 0]) + (rapid ? F.option(14, []) : []) + F.iaNA()
                  + F.option(6, [0, 23, 0, 24]))
    }

    func testSolicitGetsAdvertiseByteForByte() throws {
        let r = server.handle(F.frame(solicit()), port: F.port, now: 1000)
        XCTAssertEqual(r.counters, ["dhcp6.solicit", "dhcp6.advertise"])
        XCTAssertEqual(r.events, [], "an ADVERTISE commits nothing")
        XCTAssertTrue(leases.commits.isEmpty)
        let expected = hex("""
            02 123456
            0001 000e 0001 0001 2b3c4d5e 525400123456
            0002 000a 0003 0001 0200000000fe
            0007 0001 ff
            0003 0028 00000001 00000708 00000b40
                0005 0018 fd000001000000000000000000000002 00000e10 00000e10
            0017 0010 fd000001000000000000000000000053
            0018 000f 0470726f6408696e7465726e616c00
            """)
        XCTAssertEqual(try payload(r), expected)
    }

    func testRapidCommitSolicitGetsReplyAndBinds() throws {
        let r = server.handle(F.frame(solicit(rapid: true)), port: F.port, now: 1000)
        XCTAssertEqual(r.counters, ["dhcp6.solicit", "dhcp6.reply"])
        XCTAssertEqual(r.events, [.bound6(port: "vm1", mac: F.clientMAC, address: firstAddress)])
        let body = try payload(r)
        XCTAssertEqual(body[0], 7)
        XCTAssertEqual(options(body).map(\.0), [1, 2, 14, 3, 23, 24], "rapid commit echoed, no preference")
        XCTAssertEqual(leases.commits.first?.until, 1000 + 3600)
    }

    func testRequestRenewRebindKeepTheAddress() throws {
        let request = F.message(3, clientIDOption + serverIDOption + F.iaNA([firstAddress]))
        let r = server.handle(F.frame(request), port: F.port, now: 10)
        XCTAssertEqual(r.counters, ["dhcp6.request", "dhcp6.reply"])
        XCTAssertEqual(r.events, [.bound6(port: "vm1", mac: F.clientMAC, address: firstAddress)])
        let expectedIA = hex("""
            0003 0028 00000001 00000708 00000b40
                0005 0018 fd000001000000000000000000000002 00000e10 00000e10
            """)
        XCTAssertEqual(Array(try payload(r)[(4 + 18 + 14)...].prefix(44)), expectedIA)

        // RENEW naming the address and a stale one: ours renewed, the stale one with lifetimes 0.
        let stale = IPv6Address("fd00:1::77")!
        let renew = F.message(5, clientIDOption + serverIDOption + F.iaNA([firstAddress, stale]))
        let rr = server.handle(F.frame(renew), port: F.port, now: 2000)
        XCTAssertEqual(rr.counters, ["dhcp6.renew", "dhcp6.reply"])
        XCTAssertEqual(rr.events, [.bound6(port: "vm1", mac: F.clientMAC, address: firstAddress)])
        let ia = try XCTUnwrap(options(try payload(rr)).first { $0.0 == 3 }).1
        XCTAssertEqual(Array(ia[12...]), hex("""
            0005 0018 fd000001000000000000000000000002 00000e10 00000e10
            0005 0018 fd000001000000000000000000000077 00000000 00000000
            """))
        XCTAssertEqual(leases.commits.last?.until, 2000 + 3600)

        // REBIND carries no server ID and still gets the same address.
        let rebind = F.message(6, clientIDOption + F.iaNA([firstAddress]))
        let rb = server.handle(F.frame(rebind), port: F.port, now: 3000)
        XCTAssertEqual(rb.counters, ["dhcp6.rebind", "dhcp6.reply"])
        XCTAssertEqual(rb.events, [.bound6(port: "vm1", mac: F.clientMAC, address: firstAddress)])
    }

    func testRequestForAnotherServerIsIgnored() {
        let request = F.message(3, clientIDOption + F.option(2, [0, 3, 0, 1, 1, 2, 3, 4, 5, 6]) + F.iaNA())
        let r = server.handle(F.frame(request), port: F.port, now: 10)
        XCTAssertNil(r.frame)
        XCTAssertEqual(r.counters, ["dhcp6.request"])
        XCTAssertTrue(leases.commits.isEmpty)
    }

    func testReleaseAndDecline() throws {
        _ = server.handle(F.frame(solicit(rapid: true)), port: F.port, now: 1)
        let release = F.message(8, clientIDOption + serverIDOption + F.iaNA([firstAddress]))
        let r = server.handle(F.frame(release), port: F.port, now: 2)
        XCTAssertEqual(r.counters, ["dhcp6.release", "dhcp6.reply"])
        XCTAssertEqual(r.events, [.released6(port: "vm1", mac: F.clientMAC, address: firstAddress)])
        let body = try payload(r)
        XCTAssertEqual(Array(body[(4 + 18 + 14)...]), F.option(13, [0, 0] + Array("released".utf8)))

        // Nothing bound any more: the IA gets NoBinding.
        let again = server.handle(F.frame(release), port: F.port, now: 3)
        XCTAssertEqual(again.events, [])
        let ia = try XCTUnwrap(options(try payload(again)).first { $0.0 == 3 }).1
        XCTAssertEqual(Array(ia[12...]), F.option(13, [0, 3] + Array("no binding".utf8)))

        _ = server.handle(F.frame(solicit(rapid: true)), port: F.port, now: 4)
        let decline = F.message(9, clientIDOption + serverIDOption + F.iaNA([firstAddress]))
        let d = server.handle(F.frame(decline), port: F.port, now: 5)
        XCTAssertEqual(d.counters, ["dhcp6.decline", "dhcp6.reply"])
        XCTAssertEqual(d.events, [.released6(port: "vm1", mac: F.clientMAC, address: firstAddress)])
        XCTAssertEqual(statusCode(try payload(d)), 0)
    }

    func testConfirmChecksTheLink() throws {
        let on = server.handle(F.frame(F.message(4, clientIDOption + F.iaNA([IPv6Address("fd00:1::99")!]))), port: F.port, now: 1)
        XCTAssertEqual(on.counters, ["dhcp6.confirm", "dhcp6.reply"])
        let body = try payload(on)
        XCTAssertEqual(Array(body[(4 + 18 + 14)...]), F.option(13, [0, 0] + Array("all addresses on link".utf8)))

        let off = server.handle(F.frame(F.message(4, clientIDOption + F.iaNA([firstAddress, IPv6Address("fd00:2::5")!]))),
                                port: F.port, now: 1)
        XCTAssertEqual(statusCode(try payload(off)), 4, "NotOnLink")

        let none = server.handle(F.frame(F.message(4, clientIDOption + F.iaNA())), port: F.port, now: 1)
        XCTAssertNil(none.frame, "a CONFIRM without addresses gets no reply (RFC 8415 §18.3.3)")
        XCTAssertEqual(none.counters, ["dhcp6.confirm"])
    }

    func testInformationRequestGetsOptionsOnly() throws {
        let r = server.handle(F.frame(F.message(11, clientIDOption + F.option(6, [0, 23, 0, 24]))), port: F.port, now: 1)
        XCTAssertEqual(r.counters, ["dhcp6.information_request", "dhcp6.reply"])
        XCTAssertEqual(try payload(r), hex("""
            07 123456
            0001 000e 0001 0001 2b3c4d5e 525400123456
            0002 000a 0003 0001 0200000000fe
            0017 0010 fd000001000000000000000000000053
            0018 000f 0470726f6408696e7465726e616c00
            """))
        XCTAssertTrue(leases.byMAC.isEmpty, "no address is allocated")
        // An IA in an INFORMATION-REQUEST breaks RFC 8415 §16.12.
        let bad = server.handle(F.frame(F.message(11, clientIDOption + F.iaNA())), port: F.port, now: 1)
        XCTAssertEqual(bad.counters, ["dhcp6.information_request", "dropped.malformed"])
        XCTAssertNil(bad.frame)
    }

    func testUnicastRules() throws {
        let request = F.message(3, clientIDOption + serverIDOption + F.iaNA())
        let r = server.handle(F.frame(request, dst: .gateway), port: F.port, now: 1)
        XCTAssertEqual(try payload(r), F.message(7, clientIDOption + serverIDOption + F.option(13, [0, 5] + Array("use multicast".utf8))))
        XCTAssertEqual(r.events, [])
        let s = server.handle(F.frame(solicit(), dst: .gateway), port: F.port, now: 1)
        XCTAssertEqual(s.counters, ["dhcp6.solicit", "dropped.malformed"], "SOLICIT must be multicast")
        XCTAssertEqual(server.handle(F.frame(solicit(), dst: IPv6Address("fd00:1::9")!), port: F.port, now: 1), .none,
                       "not addressed to the router")
    }

    func testOnlyTheBoundMACIsAnswered() throws {
        let r = server.handle(F.frame(solicit(), srcMAC: F.otherMAC), port: F.port, now: 1)
        XCTAssertEqual(r, ServiceReply(counters: ["dhcp6.refused"]))
        // A port without a bound MAC answers whoever asks, to that MAC.
        let open = ServicePort(name: "vm2")
        let o = server.handle(F.frame(solicit(), srcMAC: F.otherMAC), port: open, now: 1)
        _ = try payload(o, to: F.otherMAC)
    }

    func testAllocationIsStablePerMACAndStaticIsHonoured() throws {
        func address(_ r: ServiceReply) throws -> IPv6Address {
            let ia = try XCTUnwrap(options(try payload(r, to: r.frame.flatMap { ParsedFrame($0)?.dstMAC } ?? F.clientMAC))
                .first { $0.0 == 3 }).1
            return try XCTUnwrap(IPv6Address(bytes: Array(ia[16..<32])))
        }
        let a1 = try address(server.handle(F.frame(solicit()), port: F.port, now: 1))
        let a2 = try address(server.handle(F.frame(solicit()), port: F.port, now: 2))
        XCTAssertEqual(a1, a2)
        let other = ServicePort(name: "vm2", mac: F.otherMAC)
        let b = try address(server.handle(F.frame(solicit(), srcMAC: F.otherMAC), port: other, now: 3))
        XCTAssertNotEqual(a1, b)
        let fixed = ServicePort(name: "vm3", mac: MACAddress("52:54:00:00:00:03")!, staticIPv6: IPv6Address("fd00:1::5"))
        let s = try address(server.handle(F.frame(solicit(), srcMAC: fixed.mac!), port: fixed, now: 4))
        XCTAssertEqual(s, IPv6Address("fd00:1::5"))
    }

    func testNoAddressesAvailable() throws {
        leases.capacity = 0
        let adv = server.handle(F.frame(solicit()), port: F.port, now: 1)
        let body = try payload(adv)
        XCTAssertEqual(body[0], 2)
        XCTAssertFalse(options(body).contains { $0.0 == 3 }, "no IA in an ADVERTISE without addresses")
        XCTAssertEqual(statusCode(body), 2)
        let req = server.handle(F.frame(F.message(3, clientIDOption + serverIDOption + F.iaNA())), port: F.port, now: 1)
        let ia = try XCTUnwrap(options(try payload(req)).first { $0.0 == 3 }).1
        XCTAssertEqual(Array(ia[12...]), F.option(13, [0, 2] + Array("no addresses available".utf8)))
        XCTAssertEqual(req.events, [])
        // A store answering outside the pool (or the router's own address) is not believed.
        leases.capacity = 10
        for bogus in ["fd00:2::5", "fd00:1::", "fd00:1::1"] {
            leases.forced = IPv6Address(bogus)
            let r = server.handle(F.frame(solicit(rapid: true)), port: F.port, now: 1)
            XCTAssertEqual(statusCode(try payload(r)), 2, bogus)
            XCTAssertEqual(r.events, [], bogus)
        }
    }

    func testPrefixDelegationIsRefusedPerIA() throws {
        let pd = F.option(25, F.u32(7) + F.u32(0) + F.u32(0))
        let r = server.handle(F.frame(F.message(1, clientIDOption + F.iaNA() + pd)), port: F.port, now: 1)
        let ias = options(try payload(r)).filter { $0.0 == 3 || $0.0 == 25 }
        XCTAssertEqual(ias.count, 2)
        XCTAssertEqual(ias[1].1, F.u32(7) + F.u32(0) + F.u32(0) + F.option(13, [0, 6] + Array("no prefixes delegated".utf8)))
    }

    func testHostileMessagesAreDroppedAndCounted() {
        let cases: [(String, [UInt8])] = [
            ("header only, truncated", [1, 0x12, 0x34]),
            ("option length past the end", F.message(1, clientIDOption + [0, 3, 0x10, 0])),
            ("option header cut", F.message(1, clientIDOption + [0, 3, 0])),
            ("IA_NA too short", F.message(1, clientIDOption + F.option(3, [0, 0, 0, 1]))),
            ("IAADDR past its IA", F.message(1, clientIDOption + F.option(3, F.u32(1) + F.u32(0) + F.u32(0) + [0, 5, 0, 24]))),
            ("IAADDR too short", F.message(1, clientIDOption + F.option(3, F.u32(1) + F.u32(0) + F.u32(0) + F.option(5, [1, 2])))),
            ("too many IAs", F.message(1, clientIDOption + (0..<5).flatMap { F.iaNA(iaid: UInt32($0)) })),
            ("too many addresses", F.message(1, clientIDOption + F.iaNA((0..<5).map { IPv6Address(high: 1, low: UInt64($0)) }))),
            ("no client ID", F.message(1, F.iaNA())),
            ("two client IDs", F.message(1, clientIDOption + clientIDOption + F.iaNA())),
            ("empty client ID", F.message(1, F.option(1, []) + F.iaNA())),
            ("server ID in SOLICIT", F.message(1, clientIDOption + serverIDOption + F.iaNA())),
            ("REQUEST without server ID", F.message(3, clientIDOption + F.iaNA())),
            ("rapid commit with data", F.message(1, clientIDOption + F.option(14, [1]) + F.iaNA())),
            ("an ADVERTISE sent to the server", F.message(2, clientIDOption + serverIDOption)),
            ("a REPLY sent to the server", F.message(7, clientIDOption + serverIDOption)),
            ("RELAY-FORW", F.message(12, [])),
            ("type 0", F.message(0, clientIDOption)),
            ("type 255", F.message(255, clientIDOption)),
        ]
        for (what, payload) in cases {
            let r = server.handle(F.frame(payload), port: F.port, now: 1)
            XCTAssertNil(r.frame, what)
            XCTAssertEqual(r.counters.last, "dropped.malformed", what)
            XCTAssertEqual(r.events, [], what)
        }
        XCTAssertTrue(leases.commits.isEmpty)
        // A source that is not link-local, port 0, or a multicast MAC (no bound MAC).
        XCTAssertEqual(server.handle(F.frame(solicit(), src: IPv6Address("fd00:1::9")!), port: F.port, now: 1).counters,
                       ["dropped.malformed"])
        XCTAssertEqual(server.handle(F.frame(solicit(), srcPort: 0), port: F.port, now: 1).counters, ["dropped.malformed"])
        XCTAssertEqual(server.handle(F.frame(solicit(), srcMAC: MACAddress("33:33:00:00:00:01")!), port: ServicePort(name: "x"),
                                     now: 1).counters, ["dropped.malformed"])
        // Not for the server at all: nothing counted.
        XCTAssertEqual(server.handle(F.frame(solicit(), dstPort: 546), port: F.port, now: 1), .none)
        XCTAssertEqual(server.handle(F.frame(solicit(), dstPort: 67), port: F.port, now: 1), .none)
        let v4 = ParsedFrame(Frames.udp4(srcMAC: F.clientMAC, dstMAC: Frames.broadcastMAC, src: IPv4Address(0), dst: IPv4Address(~0),
                                         srcPort: 546, dstPort: 547, payload: solicit()))!
        XCTAssertEqual(server.handle(v4, port: F.port, now: 1), .none)
    }

    func testUnknownOptionsAreIgnored() throws {
        let r = server.handle(F.frame(F.message(1, F.option(0xFFFF, [1, 2, 3]) + clientIDOption + F.option(99, []) + F.iaNA())),
                              port: F.port, now: 1)
        XCTAssertEqual(r.counters, ["dhcp6.solicit", "dhcp6.advertise"])
        _ = try payload(r)
    }

    /// Random and mutated messages: never a trap; every reply parses, goes back to the
    /// client, and carries only pool addresses (or the client's own with lifetimes 0).
    func testMutatedMessagesNeverTrap() throws {
        var rng = SystemRandomNumberGenerator()
        let seeds = [solicit(), solicit(rapid: true), F.message(3, clientIDOption + serverIDOption + F.iaNA([firstAddress])),
                     F.message(5, clientIDOption + serverIDOption + F.iaNA([firstAddress])),
                     F.message(8, clientIDOption + serverIDOption + F.iaNA([firstAddress])),
                     F.message(4, clientIDOption + F.iaNA([firstAddress])), F.message(11, clientIDOption)]
        for i in 0..<20000 {
            var m = seeds[i % seeds.count]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: m[Int.random(in: 0..<m.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: m = Array(m.prefix(Int.random(in: 0...m.count, using: &rng)))
                default: m += (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
                if m.isEmpty { m = [1] }
            }
            let r = server.handle(F.frame(m), port: F.port, now: UInt64(i))
            guard let f = r.frame else { continue }
            let p = try XCTUnwrap(ParsedFrame(f))
            XCTAssertEqual(p.dstMAC, F.clientMAC)
            let body = try payload(r)
            XCTAssertEqual(Array(body[1...3]), Array(m[1...3]), "transaction ID echoed")
            for (code, data) in options(body) where code == 3 && data.count > 12 {
                for inner in DHCPv6.options(data, 12..<data.count) ?? [] where inner.code == 5 {
                    let a = IPv6Address(bytes: Array(data[inner.data.prefix(16)]))!
                    if data[inner.data.lowerBound + 16..<inner.data.lowerBound + 24].contains(where: { $0 != 0 }) {
                        XCTAssertTrue(F.prefix.contains(a) && a.low > 1, "\(a) handed out")
                    }
                }
            }
        }
    }
}
