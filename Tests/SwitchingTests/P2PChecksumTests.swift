import Switching
import Virtio
import XCTest

/// Partial checksums (NEEDS_CSUM) across a p2p link: completed in software for a
/// receiver without GUEST_CSUM, passed through to one with it, and never a crash
/// when the sender lies about the offsets.
final class P2PChecksumTests: XCTestCase {
    /// A frame whose L4 checksum field holds the pseudo-header sum, as a driver
    /// sends it with NEEDS_CSUM, plus where the checksum lives.
    struct PartialFrame {
        var bytes: [UInt8]
        var csumStart: Int
        var csumOffset: Int
        var pseudo: [UInt8]
        var name: String
    }

    enum Kind: CaseIterable { case udp4, tcp4, udp6 }

    private static func sum16(_ b: [UInt8], _ initial: UInt32 = 0) -> UInt32 {
        var s = initial
        var i = 0
        while i < b.count {
            s += UInt32(b[i]) << 8 | (i + 1 < b.count ? UInt32(b[i + 1]) : 0)
            i += 2
        }
        return s
    }

    private static func fold(_ s: UInt32) -> UInt16 {
        var s = s
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        return UInt16(s)
    }

    private static func be16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    static func partialFrame(_ kind: Kind, payload: Int, seed: UInt8 = 0) -> PartialFrame {
        let data = (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ Int(seed) &+ 5) }
        let isTCP = kind == .tcp4
        let proto: UInt8 = isTCP ? 6 : 17
        var l4: [UInt8]
        let l4Len = (isTCP ? 20 : 8) + payload
        if isTCP {
            l4 = be16(40000) + be16(80) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18] + be16(65535) + [0, 0, 0, 0]
        } else {
            l4 = be16(1234) + be16(5678) + be16(l4Len) + [0, 0]
        }
        l4 += data
        var frame: [UInt8] = [0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1]
        var pseudo: [UInt8]
        if kind == .udp6 {
            let src: [UInt8] = [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [1]
            let dst: [UInt8] = [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [2]
            frame += [0x86, 0xdd, 0x60, 0, 0, 0] + be16(l4Len) + [proto, 64] + src + dst
            pseudo = src + dst + [0, 0] + be16(l4Len) + [0, 0, 0, proto]
        } else {
            let src: [UInt8] = [10, 0, 0, 1], dst: [UInt8] = [10, 0, 0, 2]
            var ip: [UInt8] = [0x45, 0] + be16(20 + l4Len) + [0, 1, 0x40, 0, 64, proto, 0, 0] + src + dst
            let ipsum = ~fold(sum16(ip))
            ip[10] = UInt8(ipsum >> 8); ip[11] = UInt8(ipsum & 0xff)
            frame += [0x08, 0x00] + ip
            pseudo = src + dst + [0, proto] + be16(l4Len)
        }
        let start = frame.count
        let offset = isTCP ? 16 : 6
        let partial = fold(sum16(pseudo))   // not complemented: the device finishes it
        l4[offset] = UInt8(partial >> 8); l4[offset + 1] = UInt8(partial & 0xff)
        return PartialFrame(bytes: frame + l4, csumStart: start, csumOffset: offset, pseudo: pseudo, name: "\(kind)/\(payload)")
    }

    /// The checksum in `frame` is right: pseudo-header + L4 sums to 0xffff.
    private static func verifies(_ frame: [UInt8], _ p: PartialFrame) -> Bool {
        fold(sum16(Array(frame[p.csumStart...]), sum16(p.pseudo))) == 0xffff
    }

    private func needsCsumHeader(_ p: PartialFrame, size: Int) -> [UInt8] {
        netHeader(flags: VirtioNetHeader.needsCsum, csumStart: UInt16(p.csumStart), csumOffset: UInt16(p.csumOffset), size: size)
    }

    // MARK: Software completion

    func testChecksumCompletedForReceiverWithoutGuestCsum() throws {
        // (A header, B header, B mergeable with small buffers, TX split)
        let setups: [(hA: Int, hB: Int, merge: Bool, split: [Int], what: String)] = [
            (12, 12, false, [], "fast path: one buffer each side"),
            (12, 12, false, [12, 5, 33, 1], "odd TX cuts"),
            (10, 12, false, [10], "10-byte sender header apart"),
            (12, 10, false, [12, 41], "10-byte receiver header"),
            (12, 12, true, [], "mergeable receiver, 512-byte buffers"),
        ]
        for s in setups {
            for kind in Kind.allCases {
                for payload in [0, 1, 17, 1000, 1400] {
                    let f = try P2PFixture(a: GuestFeatures(headerSize: s.hA), b: GuestFeatures(headerSize: s.hB, mergeable: s.merge))
                    let p = Self.partialFrame(kind, payload: payload, seed: UInt8(payload & 0xff))
                    XCTAssertFalse(Self.verifies(p.bytes, p), "the sent frame carries only the partial sum")
                    f.txA.postTX(p.bytes, header: needsCsumHeader(p, size: s.hA), split: s.split)
                    f.rxB.postRX(bufferSize: s.merge ? 512 : 2048, count: 4)
                    XCTAssertEqual(f.link.poll(), 1)
                    let what = "\(s.what), \(p.name)"
                    guard let r = f.received().first else { XCTFail("\(what): nothing received"); continue }
                    XCTAssertTrue(Self.verifies(r.frame, p), "\(what): checksum does not verify")
                    var expected = p.bytes
                    let at = p.csumStart + p.csumOffset
                    expected[at] = r.frame[at]; expected[at + 1] = r.frame[at + 1]
                    assertBytes(r.frame, expected, "\(what): only the checksum field changes")
                    XCTAssertEqual(r.header[0], VirtioNetHeader.dataValid, "\(what): DATA_VALID, not NEEDS_CSUM")
                }
            }
        }
    }

    func testPartialChecksumPassedThroughWithGuestCsum() throws {
        for (hA, hB) in [(12, 12), (10, 12), (12, 10)] {
            for kind in Kind.allCases {
                let f = try P2PFixture(a: GuestFeatures(headerSize: hA), b: GuestFeatures(headerSize: hB, guestCsum: true))
                let p = Self.partialFrame(kind, payload: 200)
                f.txA.postTX(p.bytes, header: needsCsumHeader(p, size: hA))
                f.rxB.postRX(bufferSize: 2048, count: 1)
                XCTAssertEqual(f.link.poll(), 1)
                guard let r = f.received().first else { XCTFail("nothing received"); continue }
                assertBytes(r.frame, p.bytes, "\(kind) \(hA)→\(hB): frame unchanged")
                XCTAssertEqual(Array(r.header.prefix(10)), Array(needsCsumHeader(p, size: 12).prefix(10)),
                               "\(kind) \(hA)→\(hB): NEEDS_CSUM with the same offsets")
            }
        }
    }

    /// RFC 768: a computed UDP checksum of 0 is sent as 0xffff (0 means "no
    /// checksum"). Linux's skb_checksum_help does the same for every protocol
    /// (0 and 0xffff are the same number in ones' complement).
    func testComputedZeroChecksumIsSentAsAllOnes() throws {
        var p = Self.partialFrame(.udp4, payload: 64)
        // Tune the last payload word so the final checksum comes out as 0.
        let n = p.bytes.count
        p.bytes[n - 2] = 0; p.bytes[n - 1] = 0
        let c = ~Self.fold(Self.sum16(Array(p.bytes[p.csumStart...])))
        p.bytes[n - 2] = UInt8(c >> 8); p.bytes[n - 1] = UInt8(c & 0xff)
        let f = try P2PFixture()
        f.txA.postTX(p.bytes, header: needsCsumHeader(p, size: 12))
        f.rxB.postRX(bufferSize: 2048)
        XCTAssertEqual(f.link.poll(), 1)
        guard let r = f.received().first else { return XCTFail("nothing received") }
        let at = p.csumStart + p.csumOffset
        XCTAssertTrue(Self.verifies(r.frame, p))
        XCTAssertEqual([r.frame[at], r.frame[at + 1]], [0xff, 0xff], "UDP checksum 0 would mean 'not checksummed'")
    }

    // MARK: Lying headers

    func testLyingChecksumOffsetsDoNotCrashOrCorrupt() throws {
        let p = Self.partialFrame(.udp4, payload: 100)
        let len = p.bytes.count
        let lies: [(start: Int, offset: Int)] = [
            (0xffff, 0xffff), (0xffff, 0), (0, 0xffff), (len, 0), (len - 1, 0), (len - 2, 1),
            (10, len), (len - 3, 2), (0, len - 2), (0, 0),
        ]
        for b in [GuestFeatures(), GuestFeatures(guestCsum: true), GuestFeatures(mergeable: true)] {
            for lie in lies {
                let f = try P2PFixture(b: b)
                let hdr = netHeader(flags: VirtioNetHeader.needsCsum, csumStart: UInt16(lie.start), csumOffset: UInt16(lie.offset))
                f.txA.postTX(p.bytes, header: hdr, split: [12, 3])
                // Mergeable: 64-byte buffers, so a field far into the frame is in another chain.
                f.rxB.postRX(bufferSize: b.mergeable ? 64 : 2048, count: 8)
                XCTAssertEqual(f.link.poll(), 1)
                let got = f.received()
                XCTAssertEqual(got.count, 1, "lie \(lie)")
                guard let r = got.first else { continue }
                XCTAssertEqual(r.frame.count, len, "lie \(lie)")
                // Only the two bytes at start+offset may change, and only if they are inside the frame.
                let at = lie.start + lie.offset
                var expected = p.bytes
                if at + 2 <= len { expected[at] = r.frame[at]; expected[at + 1] = r.frame[at + 1] }
                assertBytes(r.frame, expected, "lie \(lie)")
                XCTAssertEqual(f.counter("b", "tx_packets"), 1)
            }
        }
    }

    /// A receiver that did not negotiate GUEST_CSUM must never see NEEDS_CSUM
    /// (§5.1.6.4.1): when the device cannot complete the checksum (offsets out
    /// of the frame, or the field is not in the first RX chain) it must clear the
    /// flag, not forward the sender's.
    func testReceiverWithoutGuestCsumNeverSeesNeedsCsum() throws {
        let p = Self.partialFrame(.tcp4, payload: 300)
        let lies: [(start: Int, offset: Int)] = [(0xffff, 0xffff), (p.bytes.count - 1, 0), (10, 5000)]
        for contiguous in [true, false] {
            for lie in lies {
                let f = try P2PFixture()
                let hdr = netHeader(flags: VirtioNetHeader.needsCsum, csumStart: UInt16(lie.start), csumOffset: UInt16(lie.offset))
                f.txA.postTX(p.bytes, header: hdr, split: contiguous ? [] : [12])
                f.rxB.postRX(bufferSize: 2048)
                XCTAssertEqual(f.link.poll(), 1)
                guard let r = f.received().first else { XCTFail("nothing received"); continue }
                XCTAssertEqual(r.header[0] & VirtioNetHeader.needsCsum, 0,
                               "lie \(lie), \(contiguous ? "fast" : "slow") path: NEEDS_CSUM forwarded to a receiver without GUEST_CSUM")
            }
        }
    }

    /// GSO fields from the sender (HOST_TSO is not offered, so a driver must not
    /// set them) must not reach a receiver that negotiated no GUEST_TSO/UFO:
    /// §5.1.6.4.1 "the device MUST set gso_type to VIRTIO_NET_HDR_GSO_NONE".
    func testGsoFieldsFromTheSenderAreNotForwarded() throws {
        for (hA, hB, split) in [(12, 12, [Int]()), (12, 12, [12]), (10, 12, [10])] {
            let f = try P2PFixture(a: GuestFeatures(headerSize: hA), b: GuestFeatures(headerSize: hB))
            let hdr = netHeader(gsoType: 1 /* TCPV4 */, hdrLen: 54, gsoSize: 1448, size: hA)
            f.txA.postTX(testFrame(200), header: hdr, split: split)
            f.rxB.postRX(bufferSize: 2048)
            XCTAssertEqual(f.link.poll(), 1)
            guard let r = f.received().first else { XCTFail("nothing received"); continue }
            XCTAssertEqual(r.header[1], 0, "\(hA)→\(hB) split \(split): gso_type forwarded")
            XCTAssertEqual(Array(r.header[2..<6]), [0, 0, 0, 0], "\(hA)→\(hB) split \(split): hdr_len/gso_size forwarded")
        }
    }
}
