import Memory
import Ports
import Switching
import XCTest

/// The router's datapath (RouterQueue, RouterErrors, PrefixTable4/6) through mock vhost
/// guests: longest-prefix match against a brute-force reference, the exact bytes of ARP
/// and echo replies and of ICMP errors (checksums recomputed here), the TTL checksum
/// update, and the drop counter of each refusal.
final class RouterDatapathTests: XCTestCase {
    // Port k: 10.0.0.(k+2)/32 and fd00::(k+2)/128; port 1 also 10.1.0.0/24 and fd00:0:0:1::/64.
    static func addr4(_ k: Int) -> UInt32 { 0x0A00_0002 + UInt32(k) }
    static func addr6(_ k: Int) -> (UInt64, UInt64) { (0xFD00_0000_0000_0000, 2 + UInt64(k)) }
    static let routed4: UInt32 = 0x0A01_0000
    static let routed6: UInt64 = 0xFD00_0000_0000_0001

    /// Three ports: 0 configured with station 1, 1 and 2 learning; port 2 has MTU 1280.
    func makeNetwork(mtu2: Int = 1280, global6: (UInt64, UInt64) = (0, 0)) throws -> RouterFixture {
        var r4: [(prefix: UInt32, length: Int, port: Int)] = (0..<3).map { (Self.addr4($0), 32, $0) }
        r4.append((Self.routed4, 24, 1))
        var r6: [(high: UInt64, low: UInt64, length: Int, port: Int)] = (0..<3).map { (Self.addr6($0).0, Self.addr6($0).1, 128, $0) }
        r6.append((Self.routed6, 0, 64, 1))
        return try RouterFixture([RouterTestPort(mac: Net.station(1)), RouterTestPort(), RouterTestPort(mtu: mtu2)],
                                 routes4: r4, routes6: r6, global6: global6)
    }

    /// Ports 1 and 2 bind stations 2 and 3 (an ARP request each, answered).
    func bindAll(_ n: RouterFixture) {
        for p in 1...2 { n.send(p, arpRequest(from: Net.station(UInt8(p + 1)), Self.addr4(p))) }
        _ = n.receivedAll()
    }

    func arpRequest(from mac: [UInt8], _ spa: UInt32, target: UInt32 = Net.gateway4) -> [UInt8] {
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + mac + [0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1] + mac + Net.be32(spa)
            + [0, 0, 0, 0, 0, 0] + Net.be32(target) + [UInt8](repeating: 0, count: 18)
    }

    // MARK: Prefix tables

    func testPrefixTable4NestedDefaultAndHost() {
        let t = PrefixTable4([(0, 0, 9), (0x0A00_0000, 8, 1), (0x0A01_0000, 16, 2), (0x0A01_0200, 24, 3), (0x0A01_0203, 32, 4),
                              (0xC0A8_0101, 32, 5)])
        defer { t.destroy() }
        XCTAssertEqual(t.lookup(0x0A01_0203), 4)
        XCTAssertEqual(t.lookup(0x0A01_0204), 3)
        XCTAssertEqual(t.lookup(0x0A01_0304), 2)
        XCTAssertEqual(t.lookup(0x0A02_0304), 1)
        XCTAssertEqual(t.lookup(0x0B00_0000), 9)
        XCTAssertEqual(t.lookup(0xC0A8_0101), 5)
        XCTAssertEqual(t.lookup(0xC0A8_0102), 9)
        let empty = PrefixTable4([])
        defer { empty.destroy() }
        XCTAssertEqual(empty.lookup(0x0A01_0203), -1)
        let hostOnly = PrefixTable4([(0xC0A8_0101, 32, 7), (0xC0A8_0101, 32, 8)])   // a later duplicate wins
        defer { hostOnly.destroy() }
        XCTAssertEqual(hostOnly.lookup(0xC0A8_0101), 8)
        XCTAssertEqual(hostOnly.lookup(0xC0A8_0100), -1)
    }

    func testPrefixTable4RandomAgainstBruteForce() {
        var rng = SplitMix(state: 4)
        for round in 0..<20 {
            var routes: [(prefix: UInt32, length: Int, port: Int)] = []
            // Prefixes clustered under a few roots, so they nest.
            let roots = (0..<4).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
            for i in 0..<(1 + rng.below(300)) {
                let length = [0, 8, 12, 16, 20, 23, 24, 25, 28, 31, 32, rng.below(33)][rng.below(12)]
                if length == 0 && rng.below(4) != 0 { continue }
                let a = roots[rng.below(4)] ^ UInt32(truncatingIfNeeded: rng.next() >> UInt64(40 + rng.below(24)))
                routes.append((a, length, i))
            }
            let t = PrefixTable4(routes)
            func reference(_ a: UInt32) -> Int {
                var best = -1, bestLength = -1
                for r in routes {
                    let mask: UInt32 = r.length == 0 ? 0 : ~0 << UInt32(32 - r.length)
                    if a & mask == r.prefix & mask && r.length >= bestLength { best = r.port; bestLength = r.length }
                }
                return best
            }
            var probes = (0..<2000).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
            for r in routes { probes += [r.prefix, r.prefix ^ 1, r.prefix ^ 0x100, r.prefix ^ 0x8000_0000, roots[rng.below(4)]] }
            for a in probes where t.lookup(a) != reference(a) {
                XCTFail("round \(round): lookup(\(String(a, radix: 16))) = \(t.lookup(a)), reference \(reference(a))")
                break
            }
            t.destroy()
        }
    }

    func testPrefixTable6NestedDefaultAndHost() {
        let t = PrefixTable6([(0, 0, 0, 9), (0xFD00_0000_0000_0000, 0, 8, 1), (0xFD00_0000_0000_0001, 0, 64, 2),
                              (0xFD00_0000_0000_0001, 0xAB00_0000_0000_0000, 72, 3), (0xFD00_0000_0000_0001, 5, 128, 4),
                              (0xFD00_0000_0000_0001, 0xAB00_0000_0000_0007, 127, 5)])
        defer { t.destroy() }
        XCTAssertEqual(t.lookup(0xFD00_0000_0000_0001, 5), 4)
        XCTAssertEqual(t.lookup(0xFD00_0000_0000_0001, 4), 2)
        XCTAssertEqual(t.lookup(0xFD00_0000_0000_0001, 0xAB12_0000_0000_0000), 3)
        XCTAssertEqual(t.lookup(0xFD00_0000_0000_0001, 0xAB00_0000_0000_0006), 5)
        XCTAssertEqual(t.lookup(0xFD00_0000_0000_0001, 0xAB00_0000_0000_0008), 3)
        XCTAssertEqual(t.lookup(0xFD00_0000_0000_0002, 0), 1)
        XCTAssertEqual(t.lookup(0x2001_0DB8_0000_0000, 1), 9)
        let empty = PrefixTable6([])
        defer { empty.destroy() }
        XCTAssertEqual(empty.lookup(0xFD00_0000_0000_0001, 5), -1)
    }

    func testPrefixTable6RandomAgainstBruteForce() {
        var rng = SplitMix(state: 6)
        for round in 0..<20 {
            var routes: [(high: UInt64, low: UInt64, length: Int, port: Int)] = []
            let roots = (0..<4).map { _ in (rng.next(), rng.next()) }
            for i in 0..<(1 + rng.below(300)) {
                let length = [0, 16, 32, 48, 56, 63, 64, 65, 96, 112, 120, 127, 128, rng.below(129)][rng.below(14)]
                if length == 0 && rng.below(4) != 0 { continue }
                let root = roots[rng.below(4)]
                let flip = rng.below(128)
                let h = flip < 64 ? root.0 ^ (1 << UInt64(flip)) : root.0
                let l = flip >= 64 ? root.1 ^ (1 << UInt64(flip - 64)) : root.1
                routes.append((h, l, length, i))
            }
            let t = PrefixTable6(routes)
            func reference(_ h: UInt64, _ l: UInt64) -> Int {
                var best = -1, bestLength = -1
                for r in routes {
                    let mh: UInt64 = r.length >= 64 ? ~0 : (r.length == 0 ? 0 : ~0 << UInt64(64 - r.length))
                    let ml: UInt64 = r.length <= 64 ? 0 : ~0 << UInt64(128 - r.length)
                    if h & mh == r.high & mh && l & ml == r.low & ml && r.length >= bestLength { best = r.port; bestLength = r.length }
                }
                return best
            }
            var probes = (0..<1000).map { _ in (rng.next(), rng.next()) }
            for r in routes { probes += [(r.high, r.low), (r.high, r.low ^ 1), (r.high ^ 1, r.low), (r.high, r.low ^ (1 << 63))] }
            for (h, l) in probes where t.lookup(h, l) != reference(h, l) {
                XCTFail("round \(round): lookup(\(String(h, radix: 16)):\(String(l, radix: 16))) = \(t.lookup(h, l)), reference \(reference(h, l))")
                break
            }
            t.destroy()
        }
    }

    // MARK: Answers in place

    func testARPRequestForTheGatewayGetsTheExactReply() throws {
        let n = try makeNetwork()
        let me = Net.station(2)
        n.send(1, arpRequest(from: me, Self.addr4(1)))
        let expected = me + RouterFixture.routerMAC + [0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2] + RouterFixture.routerMAC
            + Net.be32(Net.gateway4) + me + Net.be32(Self.addr4(1))
        XCTAssertEqual(n.received(1), [expected])
        XCTAssertEqual(n.routerCounter("arp.replies"), 1)
        // For another address, or not a request: nothing, counted.
        n.send(1, arpRequest(from: me, Self.addr4(1), target: Self.addr4(0)))
        var reply = arpRequest(from: me, Self.addr4(1))
        reply[21] = 2
        n.send(1, reply)
        XCTAssertEqual(n.receivedAll().count, 0)
        XCTAssertEqual(n.drops(), ["p1.drop.no_route": 2])
        n.assertNoLeak()
    }

    func testEcho4ReplyChecksumsRecomputed() throws {
        let n = try makeNetwork()
        // Ordinary payloads, and id 0 / seq 0 / no data: its reply's checksum is 0xFFFF
        // (an incremental update gives 0x0000, which receivers reject).
        let rests: [[UInt8]] = [[0x12, 0x34, 0, 1] + (0..<56).map { UInt8($0) }, [0, 0, 0, 0], [0xFF, 0xFF, 0xFF, 0xF7], [0, 0, 0, 1, 0xAB]]
        for rest in rests {
            let req = Net.ipv4(from: Net.station(1), Self.addr4(0), Net.gateway4, proto: 1, ttl: 9, Net.icmp(type: 8, rest: rest))
            n.send(0, req)
            let got = n.received(0)
            XCTAssertEqual(got.count, 1)
            guard let r = got.first else { continue }
            XCTAssertEqual(Array(r[0..<14]), Net.station(1) + RouterFixture.routerMAC + [0x08, 0x00])
            XCTAssertEqual(Array(r[26..<30]), Net.be32(Net.gateway4))
            XCTAssertEqual(Array(r[30..<34]), Net.be32(Self.addr4(0)))
            XCTAssertEqual(r[22], 64)
            XCTAssertEqual(r[34], 0)
            XCTAssertEqual(Array(r[38...]), rest)
            XCTAssertTrue(Net.ipv4HeaderValid(r), "IPv4 header checksum of the reply to \(rest.prefix(4))")
            XCTAssertTrue(Net.icmp4Valid(r), "ICMP checksum of the reply to \(rest.prefix(4)): \(Array(r[36..<38]))")
        }
        XCTAssertEqual(n.routerCounter("icmp.echo_replies"), UInt64(rests.count))
        // A request with a bad ICMP checksum is discarded.
        var bad = Net.ipv4(from: Net.station(1), Self.addr4(0), Net.gateway4, proto: 1, Net.icmp(type: 8, rest: [1, 2, 3, 4]))
        bad[37] ^= 1
        n.send(0, bad)
        XCTAssertEqual(n.received(0).count, 0)
        XCTAssertEqual(n.drops(), ["p0.drop.malformed": 1])
        n.assertNoLeak()
    }

    func testEcho6ReplyChecksumRecomputed() throws {
        let n = try makeNetwork(global6: (0xFD00_0000_0000_0000, 1))
        let ll: (UInt64, UInt64) = (0xFE80_0000_0000_0000, 0x0000_00FF_FE00_0002)
        let cases: [((UInt64, UInt64), (UInt64, UInt64))] = [(ll, Net.gateway6), (Self.addr6(1), Net.gateway6),
                                                              (Self.addr6(1), (0xFD00_0000_0000_0000, 1))]
        for (i, (src, dst)) in cases.enumerated() {
            let rest: [UInt8] = [0, 7, 0, UInt8(i)] + (0..<UInt8(20 * i)).map { $0 }
            n.send(1, Net.icmp6(from: Net.station(2), src, dst, type: 128, hop: 255, rest: rest))
            let got = n.received(1)
            XCTAssertEqual(got.count, 1, "case \(i)")
            guard let r = got.first else { continue }
            XCTAssertEqual(Array(r[0..<12]), Net.station(2) + RouterFixture.routerMAC)
            XCTAssertEqual(Array(r[22..<38]), Net.addr6(dst))
            XCTAssertEqual(Array(r[38..<54]), Net.addr6(src))
            XCTAssertEqual(r[21], 64)
            XCTAssertEqual(r[54], 129)
            XCTAssertEqual(Array(r[58...]), rest)
            XCTAssertTrue(Net.icmp6Valid(r), "ICMPv6 checksum of the reply, case \(i)")
        }
        // From an address of another port: not answered.
        n.send(1, Net.icmp6(from: Net.station(2), Self.addr6(0), Net.gateway6, type: 128, rest: [0, 0, 0, 0]))
        XCTAssertEqual(n.received(1).count, 0)
        XCTAssertEqual(n.drops(), ["p1.drop.no_route": 1])
        n.assertNoLeak()
    }

    // MARK: Routing

    func testTTLDecrementMatchesFullRecomputation() throws {
        let n = try makeNetwork()
        bindAll(n)
        var rng = SplitMix(state: 1624)
        var sent: [[UInt8]] = []
        for i in 0..<1200 {
            var f = Net.ipv4(from: Net.station(1), Self.addr4(0), Self.routed4 | UInt32(rng.below(256)), proto: UInt8(rng.below(256)),
                             ttl: UInt8(2 + rng.below(254)), df: rng.below(2) == 0, id: rng.below(65536), Net.udp(1, 2, payload: 4))
            f[15] = UInt8(rng.below(256))   // TOS
            f[24] = 0; f[25] = 0
            // Most headers are steered so that their checksum is 0x0000 before, or after, the
            // decrement, or 0xFFFE / 0x0001 after: pick the ID that makes the rest sum to the value.
            if i % 5 != 0 {
                let after = i % 5 != 1
                let target: UInt16 = [0, 0xFFFF, 0xFFFF, 0x0001, 0xFFFE][i % 5]
                f[18] = 0; f[19] = 0
                if after { f[22] -= 1 }
                let s = Net.sum(f[14..<34])
                let id = Int(Net.sum([UInt8(target >> 8), UInt8(target & 0xFF)][...], initial: UInt32(~s)))
                f[18] = UInt8(id >> 8); f[19] = UInt8(id & 0xFF)
                if after { f[22] += 1 }
            }
            let c = ~Net.sum(f[14..<34])
            f[24] = UInt8(c >> 8); f[25] = UInt8(c & 0xFF)
            XCTAssertTrue(Net.ipv4HeaderValid(f))
            sent.append(f)
        }
        var got: [[UInt8]] = []
        for chunk in stride(from: 0, to: sent.count, by: 100) {
            n.send(0, Array(sent[chunk..<min(sent.count, chunk + 100)]))
            got += n.received(1)
        }
        XCTAssertEqual(got.count, sent.count)
        XCTAssertEqual(n.routerCounter("routed_packets"), UInt64(sent.count))
        for (s, r) in zip(sent, got) {
            var expected = s
            expected.replaceSubrange(0..<12, with: Net.station(2) + RouterFixture.routerMAC)
            expected[22] -= 1
            expected[24] = 0; expected[25] = 0
            let c = ~Net.sum(expected[14..<34])
            expected[24] = UInt8(c >> 8); expected[25] = UInt8(c & 0xFF)
            if r != expected {
                XCTFail("TTL \(s[22]) checksum \(Array(s[24..<26])) → \(Array(r[24..<26])), full recomputation \(Array(expected[24..<26]))")
                break
            }
        }
        n.assertNoLeak()
    }

    func testRoutedIPv6HopLimit() throws {
        let n = try makeNetwork()
        bindAll(n)
        let f = Net.ipv6(from: Net.station(2), Self.addr6(1), Self.addr6(0), next: 17, hop: 2, Net.udp(1, 2, payload: 10))
        n.send(1, f)
        var expected = f
        expected.replaceSubrange(0..<12, with: Net.station(1) + RouterFixture.routerMAC)
        expected[21] = 1
        XCTAssertEqual(n.received(0), [expected])
        // Out of the routed /64 of port 1, to port 2.
        n.send(1, Net.ipv6(from: Net.station(2), (Self.routed6, 99), Self.addr6(2), next: 6, Net.udp(1, 2, payload: 30)))
        XCTAssertEqual(n.received(2).count, 1)
        XCTAssertEqual(n.routerCounter("routed_packets"), 2)
        n.assertNoLeak()
    }

    // MARK: Refusals and ICMP errors

    /// The ICMP error the router must send `sender` (at `mac`) about `original`.
    func icmp4Error(to mac: [UInt8], _ sender: UInt32, type: UInt8, code: UInt8, rest: UInt32 = 0, about original: [UInt8]) -> [UInt8] {
        let ihl = Int(original[14] & 15) * 4
        let quoted = Array(original[14..<(14 + min(ihl + 8, Net.word(original, 16)))])
        var ip: [UInt8] = [0x45, 0xC0] + Net.be16(28 + quoted.count) + [0, 0, 0, 0, 64, 1, 0, 0] + Net.be32(Net.gateway4) + Net.be32(sender)
        let c = ~Net.sum(ip[...])
        ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xFF)
        return mac + RouterFixture.routerMAC + [0x08, 0x00] + ip + Net.icmp(type: type, code: code, rest: Net.be32(rest) + quoted)
    }

    func icmp6Error(to mac: [UInt8], from router: (UInt64, UInt64) = Net.gateway6, type: UInt8, rest: UInt32 = 0,
                    about original: [UInt8], quote: Int? = nil) -> [UInt8] {
        let quoted = Array(original[14..<(14 + (quote ?? (original.count - 14)))])
        let sender = (UInt64(bigEndian: original.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 22, as: UInt64.self) }),
                      UInt64(bigEndian: original.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 30, as: UInt64.self) }))
        var f = Net.ipv6(from: RouterFixture.routerMAC, to: mac, router, sender, next: 58, [type, 0, 0, 0] + Net.be32(rest) + quoted)
        let c = ~Net.sum(f[54...], initial: Net.pseudo6(f, length: f.count - 54))
        f[56] = UInt8(c >> 8); f[57] = UInt8(c & 0xFF)
        return f
    }

    func testTTLExpiredDropsAndSendsTimeExceeded() throws {
        let n = try makeNetwork()
        bindAll(n)
        let f = Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(1), proto: 17, ttl: 1, Net.udp(7, 9, payload: 40))
        n.send(0, f)
        XCTAssertEqual(n.receivedAll(), [0: [icmp4Error(to: Net.station(1), Self.addr4(0), type: 11, code: 0, about: f)]])
        let g = Net.ipv6(from: Net.station(2), Self.addr6(1), Self.addr6(0), next: 17, hop: 1, Net.udp(7, 9, payload: 40))
        n.send(1, g)
        XCTAssertEqual(n.receivedAll(), [1: [icmp6Error(to: Net.station(2), type: 3, about: g)]])
        XCTAssertEqual(n.drops(), ["p0.drop.ttl": 1, "p1.drop.ttl": 1])
        XCTAssertEqual(n.routerCounter("icmp.errors"), 2)
        // Never an error about an ICMP error.
        n.send(0, Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(1), proto: 1, ttl: 1, Net.icmp(type: 3, code: 1, rest: [0, 0, 0, 0])))
        XCTAssertEqual(n.receivedAll().count, 0)
        XCTAssertEqual(n.drops()["p0.drop.ttl"], 2)
        n.assertNoLeak()
    }

    func testICMPv6ErrorFitsTheSendersMTU() throws {
        let n = try makeNetwork(mtu2: 576)
        bindAll(n)
        let g = Net.ipv6(from: Net.station(3), Self.addr6(2), Self.addr6(0), next: 17, hop: 1, Net.udp(1, 2, payload: 576 - 48))
        n.send(2, g)
        // 576 − 40 − 8 bytes of it quoted: the error is exactly the port's MTU.
        XCTAssertEqual(n.receivedAll(), [2: [icmp6Error(to: Net.station(3), type: 3, about: g, quote: 576 - 48)]])
        XCTAssertEqual(n.drops(), ["p2.drop.ttl": 1])
        n.assertNoLeak()
    }

    func testNoRouteSendsUnreachable() throws {
        let n = try makeNetwork(global6: (0xFD00_0000_0000_0000, 1))
        bindAll(n)
        let f = Net.ipv4(from: Net.station(2), Self.routed4 | 9, 0x0A00_0063, proto: 6, Net.udp(1, 2, payload: 20))
        n.send(1, f)
        XCTAssertEqual(n.receivedAll(), [1: [icmp4Error(to: Net.station(2), Self.routed4 | 9, type: 3, code: 1, about: f)]])
        let g = Net.ipv6(from: Net.station(2), Self.addr6(1), (0x2001_0DB8_0000_0000, 1), next: 17, Net.udp(1, 2, payload: 1500 - 62))
        n.send(1, g)
        // Quoted as far as the IPv6 minimum MTU allows; from the global address.
        XCTAssertEqual(n.receivedAll(), [1: [icmp6Error(to: Net.station(2), from: (0xFD00_0000_0000_0000, 1), type: 1, about: g, quote: 1232)]])
        // 10.0.0.99 is in the network's subnet (no port has it); 2001:db8::1 is in no range of it.
        XCTAssertEqual(n.drops(), ["p1.drop.no_route": 1, "p1.drop.other_network": 1])
        n.assertNoLeak()
    }

    func testTooBigWithDFSaysTheMTU() throws {
        let n = try makeNetwork(mtu2: 1280)
        bindAll(n)
        let big = Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(2), proto: 17, df: true, Net.udp(1, 2, payload: 1400 - 28))
        n.send(0, big)
        XCTAssertEqual(n.receivedAll(), [0: [icmp4Error(to: Net.station(1), Self.addr4(0), type: 3, code: 4, rest: 1280, about: big)]])
        XCTAssertEqual(n.drops(), ["p2.drop.mtu": 1])   // counted at the port it could not go to
        // Without DF: dropped too (the router does not fragment), without an error.
        n.send(0, Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(2), proto: 17, df: false, Net.udp(1, 2, payload: 1400 - 28)))
        XCTAssertEqual(n.receivedAll().count, 0)
        // Exactly the MTU passes.
        n.send(0, Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(2), proto: 17, df: true, Net.udp(1, 2, payload: 1280 - 28)))
        XCTAssertEqual(n.received(2).map(\.count), [1294])
        let big6 = Net.ipv6(from: Net.station(2), Self.addr6(1), Self.addr6(2), next: 17, Net.udp(1, 2, payload: 1300))
        n.send(1, big6)
        XCTAssertEqual(n.receivedAll(), [1: [icmp6Error(to: Net.station(2), type: 2, rest: 1280, about: big6, quote: 1232)]])
        XCTAssertEqual(n.drops(), ["p2.drop.mtu": 3])
        n.assertNoLeak()
    }

    func testSpoofedSenderAndUnboundDestination() throws {
        let n = try makeNetwork()
        let ok = Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(1), proto: 17, Net.udp(1, 2, payload: 8))
        // Port 1 has not bound a MAC yet: nowhere to deliver, no error either.
        n.send(0, ok)
        XCTAssertEqual(n.receivedAll().count, 0)
        XCTAssertEqual(n.drops(), ["p0.drop.no_route": 1])
        bindAll(n)
        // Port 0 is configured with station 1: another MAC is refused.
        n.send(0, Net.ipv4(from: Net.station(9), Self.addr4(0), Self.addr4(1), proto: 17, Net.udp(1, 2, payload: 8)))
        // Port 1 bound station 2: a second station is refused, so is a group source MAC.
        n.send(1, Net.ipv4(from: Net.station(7), Self.addr4(1), Self.addr4(0), proto: 17, Net.udp(1, 2, payload: 8)))
        n.send(1, Net.ipv4(from: [0x03, 0, 0, 0, 0, 2], Self.addr4(1), Self.addr4(0), proto: 17, Net.udp(1, 2, payload: 8)))
        // The right MAC with another port's address, v4 and v6.
        n.send(0, Net.ipv4(from: Net.station(1), Self.addr4(2), Self.addr4(1), proto: 17, Net.udp(1, 2, payload: 8)))
        n.send(2, Net.ipv6(from: Net.station(3), Self.addr6(0), Self.addr6(1), next: 17, Net.udp(1, 2, payload: 8)))
        XCTAssertEqual(n.receivedAll().count, 0)
        XCTAssertEqual(n.drops(), ["p0.drop.no_route": 1, "p0.drop.spoofed_src": 2, "p1.drop.spoofed_src": 2, "p2.drop.spoofed_src": 1])
        // Unicast to a MAC other than the router's: no one listens.
        n.send(0, Net.ipv4(from: Net.station(1), to: Net.station(2), Self.addr4(0), Self.addr4(1), proto: 17, Net.udp(1, 2, payload: 8)))
        XCTAssertEqual(n.drops()["p0.drop.no_route"], 2)
        n.send(0, ok)
        XCTAssertEqual(n.received(1).count, 1)
        n.assertNoLeak()
    }

    func testOversizeMalformedAndPunted() throws {
        let n = try makeNetwork()
        bindAll(n)
        // Longer than the port's MTU (the port takes 4 more bytes, room for a tag): refused.
        n.send(0, Net.ipv4(from: Net.station(1), Self.addr4(0), Net.gateway4, proto: 1, Net.icmp(type: 8, rest: [UInt8](repeating: 1, count: 1500 - 20 - 4 + 2))))
        var badSum = Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(1), proto: 17, Net.udp(1, 2, payload: 8))
        badSum[24] ^= 0x40
        var badLength = Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(1), proto: 17, Net.udp(1, 2, payload: 8))
        badLength[17] = 200
        let cut = Array(Net.ipv6(from: Net.station(1), Self.addr6(0), Self.addr6(1), next: 17, [1, 2]).dropLast())
        n.send(0, badSum, badLength, cut)
        XCTAssertEqual(n.receivedAll().count, 0)
        XCTAssertEqual(n.drops(), ["p0.drop.bad_length": 1, "p0.drop.malformed": 3])
        // DHCP to the server port and a neighbour solicitation go to the control thread, unchanged.
        let dhcp = Net.ipv4(from: Net.station(2), to: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], 0, 0xFFFF_FFFF, proto: 17, Net.udp(68, 67, payload: 300))
        let ns = Net.icmp6(from: Net.station(3), to: [0x33, 0x33, 0xFF, 0, 0, 1], (0xFE80_0000_0000_0000, 3), (0xFF02_0000_0000_0000, 0x1_FF00_0001),
                           type: 135, hop: 255, rest: [0, 0, 0, 0] + Net.addr6(Net.gateway6))
        n.send(1, dhcp)
        n.send(2, ns)
        let punted = n.takePunted()
        XCTAssertEqual(punted.map(\.port), [1, 2])
        XCTAssertEqual(punted.map(\.frame), [dhcp, ns])
        XCTAssertEqual(n.routerCounter("punted"), 2)
        XCTAssertEqual(n.receivedAll().count, 0)
        n.assertNoLeak()
    }

    func testICMPErrorsAreRateLimited() throws {
        let n = try makeNetwork()
        bindAll(n)
        let expired = (0..<150).map { Net.ipv4(from: Net.station(1), Self.addr4(0), Self.addr4(1), proto: 17, ttl: 1, id: $0, Net.udp(1, 2, payload: 8)) }
        n.send(0, expired)
        XCTAssertEqual(n.received(0).count, 100)
        XCTAssertEqual(n.counter(0, "drop.ttl"), 150)
        n.now += 500_000_000   // half a second: 50 more
        n.send(0, expired)
        XCTAssertEqual(n.received(0).count, 50)
        XCTAssertEqual(n.routerCounter("icmp.errors"), 150)
        n.assertNoLeak()
    }
}
