import XCTest
import Block
@testable import NVMe

/// IOVA allocation, the DMA pool over an IOMMU, the IOVA table, and a queue pair whose
/// device addresses are not host addresses.
final class NVMeDMATests: XCTestCase {
    func testIOVASpaceAvoidsPageZeroAndTheMSIWindow() throws {
        let space = NVMeIOVASpace(ranges: [0...0xFEDF_FFFF, 0xFEF0_0000...0x7F_FFFF_FFFF])
        XCTAssertEqual(space.ranges.first?.lowerBound, 4096, "page 0 is never handed out")
        XCTAssertFalse(space.ranges.contains { $0.overlaps(NVMeIOVASpace.msiWindow) })
        let a = try space.allocate(bytes: 100)
        XCTAssertEqual(a, 4096)
        let b = try space.allocate(bytes: 4096)
        XCTAssertEqual(b, 8192)
        let big = try space.allocate(bytes: 3 << 20)
        XCTAssertEqual(big % (2 << 20), 0, "large regions 2 MiB aligned")
        XCTAssertGreaterThan(big, b)
        // Freeing the newest region gives its space back; an older one is left as a hole.
        space.free(iova: big, bytes: 3 << 20)
        XCTAssertEqual(try space.allocate(bytes: 3 << 20), big)
        space.free(iova: a, bytes: 100)
        XCTAssertEqual(space.leakedBytes, 4096)

        // A range crossing the MSI window is split around it.
        let split = NVMeIOVASpace(ranges: [0xFED0_0000...0xFEFF_FFFF])
        XCTAssertEqual(split.ranges, [0xFED0_0000...0xFEDF_FFFF, 0xFEF0_0000...0xFEFF_FFFF])
        XCTAssertEqual(try split.allocate(bytes: 1 << 20), 0xFED0_0000)
        XCTAssertEqual(try split.allocate(bytes: 4096), 0xFEF0_0000, "skips the window")
        XCTAssertThrowsError(try split.allocate(bytes: 2 << 20)) { e in
            XCTAssertTrue("\(e)".hasPrefix("no IOVA space left for 2097152 bytes"), "\(e)")
        }
        XCTAssertTrue(NVMeIOVASpace(ranges: []).ranges.isEmpty)
    }

    func testDMAPoolSharesChunksAndUnmapsOnFree() throws {
        let iommu = TestIOMMU()
        let space = NVMeIOVASpace(ranges: [0...0x7F_FFFF_FFFF])
        let pool = NVMeDMAPool(iommu: iommu, space: space, hugePages: false)
        let a = try pool.allocate(bytes: 64 * 16)
        let b = try pool.allocate(bytes: 5000)
        XCTAssertEqual(iommu.mapCalls, 1, "small buffers share one mapped chunk")
        XCTAssertEqual(a.bytes, 4096)
        XCTAssertEqual(b.bytes, 8192)
        XCTAssertEqual(b.iova - a.iova, UInt64(b.host - a.host), "IOVA and host move together inside a chunk")
        XCTAssertNotEqual(a.iova, UInt64(UInt(bitPattern: a.host)))
        XCTAssertEqual(iommu.host(b.iova, bytes: 8192), b.host)
        b.host.storeBytes(of: 0xFF, as: UInt8.self)
        pool.free(b)
        let c = try pool.allocate(bytes: 4096)
        XCTAssertEqual(c.host, b.host, "freed pages are reused")
        XCTAssertEqual(c.host.load(as: UInt8.self), 0, "and zeroed")
        let big = try pool.allocate(bytes: 4 << 20)
        XCTAssertEqual(iommu.mapCalls, 2)
        XCTAssertEqual(big.iova % (2 << 20), 0)
        pool.free(big)
        XCTAssertEqual(iommu.unmapCalls, 1, "a large region is unmapped when freed")
        pool.releaseAll()
        XCTAssertEqual(iommu.maps.count, 0)
        XCTAssertEqual(pool.unmapFailures, 0)
        // IOVA = host address without a space (identity IOMMU).
        let identity = NVMeDMAPool(iommu: TestIOMMU(), space: nil, hugePages: false)
        let d = try identity.allocate(bytes: 4096)
        XCTAssertEqual(d.iova, UInt64(UInt(bitPattern: d.host)))
        // A refused mapping is an error, and the IOVA is not lost.
        iommu.failMaps = true
        let used = space.allocatedBytes
        XCTAssertThrowsError(try pool.allocate(bytes: 4096))
        XCTAssertEqual(space.allocatedBytes, used)
    }

    func testDMAPoolTriesHugePages() throws {
        let pool = NVMeDMAPool(iommu: TestIOMMU(), space: nil, hugePages: true)
        let a = try pool.allocate(bytes: 4096)
        XCTAssertEqual(pool.hugeMappings + pool.plainMappings, 1, "huge pages when the host has them, plain otherwise")
        a.host.storeBytes(of: 1, as: UInt64.self)
        pool.releaseAll()
    }

    func testIOVATable() throws {
        let t = NVMeIOVATable.allocate()
        defer { t.deallocate() }
        let p = UnsafeMutableRawPointer(bitPattern: 0x7000_0000)!
        XCTAssertNil(t.translate(p, bytes: 1), "empty table")
        try t.update(regions: [NVMeIOVARegion(host: p, bytes: 0x10000, iova: 0x4000_0000),
                               NVMeIOVARegion(host: p + 0x20000, bytes: 0x1000, iova: 0x5000_0000)])
        XCTAssertEqual(t.count, 2)
        XCTAssertEqual(t.translate(p + 0x100, bytes: 0x200), 0x4000_0100)
        XCTAssertEqual(t.translate(p + 0xFF00, bytes: 0x100), 0x4000_FF00)
        XCTAssertNil(t.translate(p + 0xFF00, bytes: 0x101), "crosses the end")
        XCTAssertNil(t.translate(p - 1, bytes: 2), "before the start")
        XCTAssertNil(t.translate(p + 0x10000, bytes: 1), "between regions")
        XCTAssertEqual(t.translate(p + 0x20800, bytes: 0x800), 0x5000_0800)
        XCTAssertThrowsError(try t.update(regions: Array(repeating: NVMeIOVARegion(host: p, bytes: 1, iova: 0), count: 65)))
        XCTAssertThrowsError(try t.update(regions: [NVMeIOVARegion(host: p, bytes: 0, iova: 0)]))
        XCTAssertEqual(t.count, 2, "a refused update leaves the table")
        try t.update(regions: [])
        XCTAssertNil(t.translate(p + 0x100, bytes: 1))
    }

    /// Every device address goes through the test IOMMU (queues, lists, guest memory at
    /// its own IOVA): a host address used as an IOVA anywhere would not translate.
    func testQueuePairWithIOVAsThatAreNotHostAddresses() throws {
        let iommu = TestIOMMU()
        let space = NVMeIOVASpace(ranges: [0...0x7F_FFFF_FFFF])
        let pool = NVMeDMAPool(iommu: iommu, space: space, hugePages: false)
        let guestIOVA = try space.allocate(bytes: QueueHarness.guestBytes)
        for sgl in [false, true] {
            let h = try QueueHarness(sgl: sgl, shadow: true, dma: pool, iommu: iommu, guestIOVA: guestIOVA) {
                $0.mdts = 2
            }
            let pieces = [(0x1200, 3584), (0x3000, 8192), (0x8000, 4608)]
            let bytes = h.fill(pieces, seed: 1)
            let at = h.soft.ioCommands.count
            XCTAssertEqual(h.one(h.slot(VirtioBlk.RequestType.output, sector: 32, pieces: pieces)), Int32(bytes.count))
            XCTAssertEqual(h.namespace(at: 32 * 512, count: bytes.count), bytes)
            for c in h.commands(from: at) { XCTAssertLessThan(c.prp1, 1 << 39, "an IOVA, not a process address") }
            let back = [(0x300000, bytes.count)]
            XCTAssertEqual(h.one(h.slot(VirtioBlk.RequestType.input, sector: 32, pieces: back)), Int32(bytes.count))
            XCTAssertEqual(h.gathered(back), bytes)
            try h.pair.delete()
            try iommu.unmap(iova: guestIOVA, bytes: QueueHarness.guestBytes)
        }
    }
}
