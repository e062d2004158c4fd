import Foundation
import Memory
import Platform
import Ports
import Stats
import XCTest

/// GSO super-frames from an af-packet ring cut into segments (`Segmentation`):
/// TCPv4, TCPv6, UDP_L4, VLAN-tagged, resumed across bursts, and refused when
/// they do not parse. Every checksum is verified by recomputing it here, byte
/// by byte, independently of the code under test.
final class SegmentationTests: XCTestCase {
    private var pool: Mempool!
    private var stats: StatsWriter!
    private var counters: PortCounters!
    private var ctx: WorkerContext!

    override func setUpWithError() throws {
        pool = try Mempool(name: "seg", count: 512, caches: 1, policy: .off)
        let path = FileManager.default.temporaryDirectory.path + "/sluice-segtest-\(UUID().uuidString).stats"
        stats = try StatsWriter(path: path, slots: 1)
        var c: [StatsCounter] = []
        for name in PortCounters.names { c.append(stats.counter(try stats.register("port.p.\(name)"), slot: 0)) }
        counters = PortCounters(c)
        let allocFail = stats.counter(try stats.register("worker.alloc_fail"), slot: 0)
        ctx = WorkerContext(worker: 0, cache: pool.cache(0), now: 0, eventMode: false, allocFail: allocFail)
    }

    override func tearDown() {
        stats?.remove()
        super.tearDown()
    }

    private func counter(_ name: String) -> UInt64 { stats.total(stats.lookup("port.p.\(name)")!) }

    // MARK: - Frame building (big-endian by hand)

    enum L3 { case v4, v6 }

    struct Super {
        var bytes: [UInt8]
        var l3: Int
        var l4: Int
        var end: Int
        var gsoType: UInt8
        var gsoSize: Int
    }

    private static func be16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    private static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    /// A super-frame as the kernel hands it with a virtio_net_hdr: IP lengths of
    /// the whole thing, L4 checksum field holding the pseudo-header sum (NEEDS_CSUM).
    static func superFrame(_ l3: L3, udp: Bool = false, tags: [UInt16] = [], payload: Int, mss: Int,
                           tcpFlags: UInt8 = 0x18, seq: UInt32 = 1000, ipID: Int = 0x1234, options: Int = 12) -> Super {
        var f: [UInt8] = [0x02, 0, 0, 0, 0xbb, 0x02, 0x02, 0, 0, 0, 0xaa, 0x01]
        var tpid = 0x88a8
        for (i, t) in tags.enumerated() {
            f += be16(tags.count == 2 && i == 0 ? tpid : 0x8100) + be16(Int(t))
            tpid = 0x8100
        }
        f += be16(l3 == .v4 ? 0x0800 : 0x86dd)
        let l3At = f.count
        let data = (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8 &+ 3) }
        var l4: [UInt8]
        let proto: UInt8 = udp ? 17 : 6
        if udp {
            l4 = be16(4000) + be16(5001) + be16(8 + payload) + [0, 0]
        } else {
            let thl = 20 + options
            l4 = be16(40000) + be16(5201) + be32(seq) + be32(777) + [UInt8(thl / 4) << 4, tcpFlags] + be16(502) + [0, 0, 0, 0]
            l4 += (0..<options).map { UInt8(1 + $0 % 3) }   // NOPs and such: copied as they are
        }
        let l4Header = l4.count
        let l4Len = l4Header + payload
        var pseudo: [UInt8]
        if l3 == .v4 {
            let src: [UInt8] = [10, 9, 0, 1], dst: [UInt8] = [10, 9, 0, 2]
            var ip: [UInt8] = [0x45, 0] + be16(20 + l4Len) + be16(ipID) + [0x40, 0, 64, proto, 0, 0] + src + dst
            let s = ~fold(sum16(ip)); ip[10] = UInt8(s >> 8); ip[11] = UInt8(s & 0xff)
            f += ip
            pseudo = src + dst + [0, proto] + be16(l4Len)
        } else {
            let src: [UInt8] = [0xfd, 0, 0, 9] + [UInt8](repeating: 0, count: 11) + [1]
            let dst: [UInt8] = [0xfd, 0, 0, 9] + [UInt8](repeating: 0, count: 11) + [2]
            f += [0x60, 0, 0, 0] + be16(l4Len) + [proto, 64] + src + dst
            pseudo = src + dst + [0, 0] + be16(l4Len) + [0, 0, 0, proto]
        }
        let l4At = f.count
        let partial = fold(sum16(pseudo))
        let at = udp ? 6 : 16
        l4[at] = UInt8(partial >> 8); l4[at + 1] = UInt8(partial & 0xff)
        f += l4 + data
        let type = udp ? ReceivedFrame.gsoUDPL4 : (l3 == .v4 ? ReceivedFrame.gsoTCPv4 : ReceivedFrame.gsoTCPv6)
        return Super(bytes: f, l3: l3At, l4: l4At, end: l4At + l4Header, gsoType: type, gsoSize: mss)
    }

    static func sum16(_ b: some Collection<UInt8>, _ initial: UInt32 = 0) -> UInt32 {
        var s = initial
        var hi = true
        for x in b { s += hi ? UInt32(x) << 8 : UInt32(x); hi.toggle() }
        return s
    }

    static func fold(_ s: UInt32) -> UInt16 {
        var s = s
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        return UInt16(s)
    }

    private static func u16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) << 8 | Int(b[at + 1]) }
    private static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    /// Run `cut` on `s` (from `start`) into `batch`; the segments' bytes are read back.
    private func cut(_ s: Super, from start: Int = 0, into batch: inout PacketBatch, gsoType: UInt8? = nil,
                     csumStart: Int? = nil) -> (Segmentation.Cut, [[UInt8]]) {
        let before = batch.count
        let r = s.bytes.withUnsafeBytes { raw in
            let f = ReceivedFrame(bytes: raw.baseAddress!, length: raw.count, wireLength: raw.count,
                                  vnetFlags: ReceivedFrame.needsChecksum, gsoType: gsoType ?? s.gsoType,
                                  gsoSize: UInt16(s.gsoSize), csumStart: UInt16(csumStart ?? s.l4),
                                  csumOffset: s.gsoType == ReceivedFrame.gsoUDPL4 ? 6 : 16)
            return Segmentation.cut(f, from: start, into: &batch, ctx, counters)
        }
        var out: [[UInt8]] = []
        let ref = pool.ref
        for i in before..<batch.count {
            let p = batch[i]
            out.append(Array(UnsafeRawBufferPointer(start: ref.frame(p), count: ref.length(p))))
        }
        return (r, out)
    }

    private func freeAll(_ batch: inout PacketBatch) {
        let n = batch.count
        batch.withIndices { ctx.cache.free($0, n) }
        batch.removeAll()
    }

    /// Every property a segment must have, checked against the super-frame.
    private func verify(_ segs: [[UInt8]], of s: Super, from firstIndex: Int = 0, total: Int? = nil,
                        file: StaticString = #filePath, line: UInt = #line) {
        let payload = s.bytes.count - s.end
        let count = total ?? max(1, (payload + s.gsoSize - 1) / s.gsoSize)
        let udp = s.gsoType == ReceivedFrame.gsoUDPL4
        let v6 = s.bytes[s.l3] >> 4 == 6
        for (k, g) in segs.enumerated() {
            let i = firstIndex + k
            let off = i * s.gsoSize
            let n = min(s.gsoSize, payload - off)
            let what = "segment \(i + 1)/\(count)"
            XCTAssertEqual(g.count, s.end + n, what, file: file, line: line)
            guard g.count == s.end + n else { continue }
            XCTAssertEqual(Array(g[s.end...]), Array(s.bytes[(s.end + off)..<(s.end + off + n)]), "\(what): payload", file: file, line: line)
            XCTAssertEqual(Array(g[0..<s.l3]), Array(s.bytes[0..<s.l3]), "\(what): Ethernet and tags", file: file, line: line)
            let l4Len = g.count - s.l4
            var pseudo: [UInt8]
            if v6 {
                XCTAssertEqual(Self.u16(g, s.l3 + 4), s.l4 - s.l3 - 40 + l4Len, "\(what): IPv6 payload length", file: file, line: line)
                pseudo = Array(g[(s.l3 + 8)..<(s.l3 + 40)]) + [0, 0] + Self.be16(l4Len) + [0, 0, 0, udp ? 17 : 6]
            } else {
                XCTAssertEqual(Self.u16(g, s.l3 + 2), g.count - s.l3, "\(what): IPv4 total length", file: file, line: line)
                XCTAssertEqual(Self.u16(g, s.l3 + 4), (Self.u16(s.bytes, s.l3 + 4) + i) & 0xffff, "\(what): IPv4 id", file: file, line: line)
                XCTAssertEqual(Self.fold(Self.sum16(g[s.l3..<s.l4])), 0xffff, "\(what): IPv4 header checksum", file: file, line: line)
                pseudo = Array(g[(s.l3 + 12)..<(s.l3 + 20)]) + [0, udp ? 17 : 6] + Self.be16(l4Len)
            }
            XCTAssertEqual(Self.fold(Self.sum16(g[s.l4...], Self.sum16(pseudo))), 0xffff, "\(what): L4 checksum", file: file, line: line)
            if udp {
                XCTAssertEqual(Self.u16(g, s.l4 + 4), l4Len, "\(what): UDP length", file: file, line: line)
                XCTAssertNotEqual(Self.u16(g, s.l4 + 6), 0, file: file, line: line)
            } else {
                XCTAssertEqual(Self.u32(g, s.l4 + 4), Self.u32(s.bytes, s.l4 + 4) &+ UInt32(off), "\(what): sequence", file: file, line: line)
                var flags = s.bytes[s.l4 + 13]
                if i != 0 { flags &= ~0x80 }
                if i != count - 1 { flags &= ~0x09 }
                XCTAssertEqual(g[s.l4 + 13], flags, "\(what): flags", file: file, line: line)
                // Everything else of the TCP header (ports, ack, window, options) is the super-frame's.
                XCTAssertEqual(Array(g[s.l4..<(s.l4 + 4)]), Array(s.bytes[s.l4..<(s.l4 + 4)]), file: file, line: line)
                XCTAssertEqual(Array(g[(s.l4 + 8)..<(s.l4 + 13)]), Array(s.bytes[(s.l4 + 8)..<(s.l4 + 13)]), file: file, line: line)
                XCTAssertEqual(Array(g[(s.l4 + 14)..<(s.l4 + 16)]), Array(s.bytes[(s.l4 + 14)..<(s.l4 + 16)]), file: file, line: line)
                XCTAssertEqual(Array(g[(s.l4 + 18)..<s.end]), Array(s.bytes[(s.l4 + 18)..<s.end]), file: file, line: line)
            }
        }
    }

    // MARK: - Tests

    func testTCPv4SuperFrameCutIntoMSSSegments() {
        // CWR|ACK|PSH|FIN: CWR stays on the first segment, PSH and FIN go to the last.
        let s = Self.superFrame(.v4, payload: 5000, mss: 1448, tcpFlags: 0x80 | 0x10 | 0x08 | 0x01, ipID: 0xfffe)
        var batch = PacketBatch()
        let (r, segs) = cut(s, into: &batch)
        XCTAssertTrue(r.finished)
        XCTAssertEqual(r.segments, 4)
        XCTAssertEqual(segs.map(\.count), [1514, 1514, 1514, 66 + 656])
        XCTAssertEqual(r.bytes, segs.reduce(0) { $0 + $1.count })
        verify(segs, of: s)   // the id wraps past 0xffff
        XCTAssertEqual(segs.map { $0[14 + 20 + 13] }, [0x90, 0x10, 0x10, 0x19])
        XCTAssertEqual(counter("drop.bad_length"), 0)
        freeAll(&batch)
    }

    func testTCPv6SuperFrame() {
        let s = Self.superFrame(.v6, payload: 64_000, mss: 1428, tcpFlags: 0x18, options: 0)
        var batch = PacketBatch()
        var segs: [[UInt8]] = []
        var start = 0
        // 45 segments: more than a batch holds; cut over two bursts.
        repeat {
            let (r, got) = cut(s, from: start, into: &batch)
            verify(got, of: s, from: segs.count)
            segs += got
            freeAll(&batch)
            start = r.resume
            if r.finished { break }
            XCTAssertEqual(r.segments, PacketBatch.capacity)
        } while true
        XCTAssertEqual(segs.count, (64_000 + 1427) / 1428)
        XCTAssertEqual(segs.first?.count, 14 + 40 + 20 + 1428)
    }

    func testTaggedFrames() {
        for (l3, tags) in [(L3.v4, [UInt16(0xa064)]), (.v6, [0x0064]), (.v4, [0x0010, 0x2064]), (.v6, [0x0010, 0x0064])] {
            let s = Self.superFrame(l3, tags: tags, payload: 3000, mss: 1400, tcpFlags: 0x19)
            var batch = PacketBatch()
            let (r, segs) = cut(s, into: &batch)
            XCTAssertTrue(r.finished, "\(l3) \(tags)")
            XCTAssertEqual(segs.count, 3, "\(l3) \(tags)")
            XCTAssertEqual(s.l3, 14 + 4 * tags.count)
            verify(segs, of: s)
            freeAll(&batch)
        }
    }

    func testUDPL4SuperFrame() {
        for l3 in [L3.v4, .v6] {
            let s = Self.superFrame(l3, udp: true, payload: 4001, mss: 1000)
            var batch = PacketBatch()
            let (r, segs) = cut(s, into: &batch)
            XCTAssertTrue(r.finished)
            XCTAssertEqual(segs.count, 5)
            verify(segs, of: s)
            freeAll(&batch)
        }
    }

    func testResumedCutEqualsUninterruptedCut() {
        let s = Self.superFrame(.v4, payload: 7000, mss: 1448, tcpFlags: 0x98)
        var whole = PacketBatch()
        let (_, all) = cut(s, into: &whole)
        freeAll(&whole)
        XCTAssertEqual(all.count, 5)

        // A batch with room for 2: the cut stops, then resumes in the next batch.
        var batch = PacketBatch()
        for _ in 0..<(PacketBatch.capacity - 2) { batch.append(ctx.cache.alloc()!) }
        let (r1, first) = cut(s, into: &batch)
        XCTAssertFalse(r1.finished)
        XCTAssertEqual(r1.segments, 2)
        XCTAssertEqual(r1.resume, 2 * 1448)
        XCTAssertTrue(batch.isFull)
        freeAll(&batch)
        let (r2, rest) = cut(s, from: r1.resume, into: &batch)
        XCTAssertTrue(r2.finished)
        XCTAssertEqual(first + rest, all)
        verify(first + rest, of: s)
        freeAll(&batch)
    }

    func testFramesThatCannotBeCutAreDroppedAndCounted() {
        let s = Self.superFrame(.v4, payload: 3000, mss: 1448)
        var batch = PacketBatch()
        // UFO (GSO_UDP) is not cut; nor is a TCPv6 type on an IPv4 frame; nor a
        // checksum start that is not the TCP header; nor an MSS of 0 or one that
        // does not fit a buffer.
        XCTAssertEqual(cut(s, into: &batch, gsoType: ReceivedFrame.gsoUDP).1.count, 0)
        XCTAssertEqual(cut(s, into: &batch, gsoType: ReceivedFrame.gsoTCPv6).1.count, 0)
        XCTAssertEqual(cut(s, into: &batch, csumStart: s.l4 + 4).1.count, 0)
        var zero = s; zero.gsoSize = 0
        XCTAssertEqual(cut(zero, into: &batch).1.count, 0)
        var jumbo = s; jumbo.gsoSize = 2000
        XCTAssertEqual(cut(jumbo, into: &batch).1.count, 0)
        var short = s; short.bytes = Array(s.bytes[0..<(s.l4 + 10)])
        XCTAssertEqual(cut(short, into: &batch).1.count, 0)
        var notIP = s; notIP.bytes[12] = 0x88; notIP.bytes[13] = 0xb5
        XCTAssertEqual(cut(notIP, into: &batch).1.count, 0)
        XCTAssertEqual(batch.count, 0)
        XCTAssertEqual(counter("drop.bad_length"), 7)
        // The ECN bit of the GSO type is fine.
        let (r, segs) = cut(s, into: &batch, gsoType: ReceivedFrame.gsoTCPv4 | ReceivedFrame.gsoECN)
        XCTAssertEqual(r.segments, 3)
        verify(segs, of: s)
        freeAll(&batch)
    }

    func testChecksumArithmeticMatchesByteWiseSum() {
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 1447, 1500] {
            let b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let expected = Self.fold(Self.sum16(b))
            let got = b.withUnsafeBytes { Segmentation.fold(Segmentation.sum($0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, n, 0)) }
            XCTAssertEqual(UInt16(bigEndian: got), expected, "length \(n)")
        }
    }
}
