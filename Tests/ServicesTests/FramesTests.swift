import Config
import XCTest
@testable import Services

final class FramesTests: XCTestCase {
    private let mac1 = MACAddress("02:00:00:00:00:01")!, mac2 = MACAddress("02:00:00:00:00:02")!

    func testUDP4RoundTripsWithValidChecksums() throws {
        let f = Frames.udp4(srcMAC: mac1, dstMAC: mac2, src: IPv4Address("10.0.0.5")!, dst: IPv4Address("169.254.0.1")!,
                            srcPort: 68, dstPort: 67, payload: [1, 2, 3])
        let p = try XCTUnwrap(ParsedFrame(f))
        XCTAssertEqual(p.srcMAC, mac1)
        XCTAssertEqual(p.network, .ipv4(src: IPv4Address("10.0.0.5")!, dst: .gateway, ttl: 64))
        XCTAssertEqual(p.udpPayload.map(Array.init), [1, 2, 3])
        // UDP checksum over the pseudo-header verifies to zero.
        var pseudo: UInt32 = 0x0A00 &+ 0x0005 &+ 0xA9FE &+ 0x0001 &+ 17 &+ 11
        pseudo &+= 0
        XCTAssertEqual(Frames.checksum(f[34...], initial: pseudo), 0)
        var broken = f
        broken[24] ^= 0xFF
        XCTAssertNil(ParsedFrame(broken), "a bad IPv4 header checksum is refused")
        XCTAssertNil(ParsedFrame(Array(f.prefix(40))), "truncated")
    }

    func testICMPv6ChecksumIsVerified() throws {
        let f = Frames.icmp6(srcMAC: mac1, dstMAC: Frames.multicastMAC(Frames.allNodes), src: .gateway, dst: Frames.allNodes,
                             message: [133, 0, 0, 0, 0, 0, 0, 0])
        let p = try XCTUnwrap(ParsedFrame(f))
        guard case .icmpv6(let type, _, let r) = p.transport else { return XCTFail() }
        XCTAssertEqual(type, 133)
        XCTAssertEqual(r.count, 8)
        XCTAssertEqual(p.dstMAC.description, "33:33:00:00:00:01")
        var broken = f
        broken[f.count - 1] ^= 1
        XCTAssertNil(ParsedFrame(broken))
    }

    func testAddressText() {
        XCTAssertEqual(IPv6Address("fd00:1::5")?.description, "fd00:1::5")
        XCTAssertEqual(IPv6Address("fe80::1"), .gateway)
        XCTAssertEqual(IPv6Address("::"), .unspecified)
        XCTAssertEqual(IPv6Address("::ffff:10.0.0.1")?.low, 0x0000_ffff_0a00_0001)
        XCTAssertEqual(IPv6Address("1:0:0:2:0:0:0:3")?.description, "1:0:0:2::3")
        XCTAssertNil(IPv6Address("1::2::3"))
        XCTAssertNil(IPv6Address(":::1"))
        XCTAssertNil(IPv6Address("12345::"))
        XCTAssertNil(IPv4Address("10.0.0.256"))
        XCTAssertNil(IPv4Address("10.0.0.01"))
        var host = false
        XCTAssertEqual(IPv4Prefix("10.0.0.0/24", hostBitsSet: &host)?.size, 256)
        XCTAssertFalse(host)
        XCTAssertNotNil(IPv4Prefix("10.0.0.1/24", hostBitsSet: &host))
        XCTAssertTrue(host)
        let p6 = IPv6Prefix("fd00:1::/64", hostBitsSet: &host)!
        XCTAssertTrue(p6.contains(IPv6Address("fd00:1::5")!))
        XCTAssertFalse(p6.contains(IPv6Address("fd00:2::5")!))
    }
}
