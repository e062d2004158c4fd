import Virtio
import XCTest

/// Byte access across segment boundaries: copySegments, gather/scatter and the
/// software checksum, against plain-array references.
final class SegmentIOTests: XCTestCase {
    private var blocks: [UnsafeMutableRawPointer] = []
    private var lists: [SegmentList] = []

    override func tearDown() {
        blocks.forEach { $0.deallocate() }
        lists.forEach { $0.deallocate() }
        blocks = []; lists = []
    }

    /// A segment list holding `bytes`, cut at `cuts` (segment lengths; the rest in a last segment).
    private func segments(_ bytes: [UInt8], cuts: [Int]) -> SegmentList {
        let list = SegmentList.allocate()
        lists.append(list)
        var offset = 0
        var lengths = cuts.filter { $0 > 0 }
        lengths.append(bytes.count - lengths.reduce(0, +))
        for len in lengths where len > 0 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: len, alignment: 1)
            blocks.append(p)
            for i in 0..<len { p.storeBytes(of: bytes[offset + i], toByteOffset: i, as: UInt8.self) }
            XCTAssertTrue(list.append(p, UInt32(len)))
            offset += len
        }
        return list
    }

    private func contents(_ list: SegmentList) -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<list.count { for k in 0..<list.length(i) { out.append(list.pointer(i).load(fromByteOffset: k, as: UInt8.self)) } }
        return out
    }

    private func referenceChecksum(_ b: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var i = b.startIndex
        while i < b.endIndex {
            let hi = UInt32(b[i]) << 8
            let lo = i + 1 < b.endIndex ? UInt32(b[i + 1]) : 0
            sum += hi | lo
            i += 2
        }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    private func randomBytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255) } }

    private func randomCuts(total: Int) -> [Int] {
        var cuts: [Int] = []
        var left = total
        while left > 0 && cuts.count < 8 {
            let c = Int.random(in: 1...max(1, min(left, 300)))
            cuts.append(c); left -= c
        }
        return cuts
    }

    func testSegmentListCapacity() {
        let list = SegmentList.allocate()
        defer { list.deallocate() }
        let p = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
        defer { p.deallocate() }
        for _ in 0..<SegmentList.capacity { XCTAssertTrue(list.append(p, 1)) }
        XCTAssertFalse(list.append(p, 1))
        XCTAssertEqual(list.count, SegmentList.capacity)
        XCTAssertEqual(list.totalLength, SegmentList.capacity)
        list.reset()
        XCTAssertEqual(list.count, 0)
        XCTAssertEqual(list.totalLength, 0)
    }

    func testChecksumMatchesReferenceAcrossOddCuts() {
        for _ in 0..<300 {
            let bytes = randomBytes(Int.random(in: 0...1600))
            let list = segments(bytes, cuts: randomCuts(total: bytes.count))
            let start = Int.random(in: 0...bytes.count)
            let length = Int.random(in: 0...(bytes.count - start))
            XCTAssertEqual(internetChecksum(list, start: start, length: length),
                           referenceChecksum(bytes[start..<(start + length)]), "start \(start) length \(length)")
        }
    }

    func testChecksumOfAKnownIPv4Header() {
        // RFC 1071 style example: an IPv4 header whose checksum field holds 0xb861.
        let hdr: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                            0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7]
        XCTAssertEqual(internetChecksum(segments(hdr, cuts: [3, 7]), start: 0, length: 20), 0, "a correct header sums to 0")
        var zeroed = hdr; zeroed[10] = 0; zeroed[11] = 0
        XCTAssertEqual(internetChecksum(segments(zeroed, cuts: [1, 1, 1]), start: 0, length: 20), 0xb861)
    }

    func testCopySegmentsAtOffsets() {
        for _ in 0..<200 {
            let src = randomBytes(Int.random(in: 1...2000))
            let dstSize = Int.random(in: 1...2500)
            let s = segments(src, cuts: randomCuts(total: src.count))
            let d = segments([UInt8](repeating: 0xa5, count: dstSize), cuts: randomCuts(total: dstSize))
            let so = Int.random(in: 0...src.count), dOff = Int.random(in: 0...dstSize)
            let length = Int.random(in: 0...(src.count - so))
            let copied = copySegments(from: s, srcOffset: so, to: d, dstOffset: dOff, length: length)
            XCTAssertEqual(copied, min(length, dstSize - dOff))
            var expected = [UInt8](repeating: 0xa5, count: dstSize)
            expected.replaceSubrange(dOff..<(dOff + copied), with: src[so..<(so + copied)])
            XCTAssertEqual(contents(d), expected)
        }
    }

    func testGatherAndScatter() {
        let bytes = randomBytes(100)
        let list = segments(bytes, cuts: [3, 5, 1, 50])
        var out = [UInt8](repeating: 0, count: 12)
        XCTAssertTrue(out.withUnsafeMutableBytes { gatherBytes(list, offset: 2, into: $0.baseAddress!, 12) })
        XCTAssertEqual(out, Array(bytes[2..<14]))
        XCTAssertFalse(out.withUnsafeMutableBytes { gatherBytes(list, offset: 95, into: $0.baseAddress!, 12) }, "past the end")
        let patch: [UInt8] = [1, 2, 3, 4, 5, 6, 7]
        XCTAssertTrue(patch.withUnsafeBytes { scatterBytes(list, offset: 6, from: $0.baseAddress!, 7) })
        var expected = bytes; expected.replaceSubrange(6..<13, with: patch)
        XCTAssertEqual(contents(list), expected)
        XCTAssertFalse(patch.withUnsafeBytes { scatterBytes(list, offset: 98, from: $0.baseAddress!, 7) })
        XCTAssertFalse(patch.withUnsafeBytes { scatterBytes(list, offset: 500, from: $0.baseAddress!, 7) })
    }
}
