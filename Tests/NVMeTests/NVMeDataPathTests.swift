import XCTest
import Block
@testable import NVMe

/// Requests through `NVMeBlkBackend` against the model: data pointer shapes (PRP, SGL),
/// splits (MDTS, PRP-inexpressible chains), the other commands, data checked both ways.
final class NVMeDataPathTests: XCTestCase {
    typealias T = VirtioBlk.RequestType

    /// Write `pieces` at `sector`, check the namespace, read them back into other memory.
    private func roundTrip(_ h: QueueHarness, _ pieces: [(Int, Int)], sector: UInt64, readPieces: [(Int, Int)]? = nil,
                           file: StaticString = #filePath, line: UInt = #line) {
        let bytes = h.fill(pieces, seed: UInt8(truncatingIfNeeded: sector &+ 3))
        XCTAssertEqual(h.one(h.slot(T.output, sector: sector, pieces: pieces)), Int32(bytes.count), file: file, line: line)
        XCTAssertEqual(h.namespace(at: Int(sector) * 512, count: bytes.count), bytes, "namespace after write", file: file, line: line)
        let back = readPieces ?? pieces.map { ($0.0 + 0x400000, $0.1) }
        h.fill(back, seed: 0xEE)
        XCTAssertEqual(h.one(h.slot(T.input, sector: sector, pieces: back)), Int32(bytes.count), file: file, line: line)
        XCTAssertEqual(h.gathered(back), bytes, "guest memory after read", file: file, line: line)
    }

    func testPRPShapes() throws {
        let h = try QueueHarness(sgl: false)
        let g = UInt64(UInt(bitPattern: h.guest))
        var at = h.soft.ioCommands.count
        // One page: PRP1 only.
        roundTrip(h, [(0x10000, 4096)], sector: 8)
        var c = h.commands(from: at)[0]
        XCTAssertEqual(c.cdw0 >> 14 & 3, 0, "PRPs")
        XCTAssertEqual(c.prp1, g + 0x10000)
        XCTAssertEqual(c.prp2, 0)
        // Two pages: PRP2 is the second page.
        at = h.soft.ioCommands.count
        roundTrip(h, [(0x20000, 8192)], sector: 64)
        c = h.commands(from: at)[0]
        XCTAssertEqual(c.prp2, g + 0x21000)
        // Four pages: PRP2 points at a list.
        at = h.soft.ioCommands.count
        roundTrip(h, [(0x30000, 16384)], sector: 128)
        c = h.commands(from: at)[0]
        XCTAssertNotEqual(c.prp2, g + 0x31000)
        XCTAssertEqual(c.prp2 & 4095, 0, "the list starts a page")
        XCTAssertEqual(h.commands(from: at).count, 2, "one write, one read")
        // An odd first offset: 8 KiB from offset 512 spans three pages.
        at = h.soft.ioCommands.count
        roundTrip(h, [(0x40200, 8192)], sector: 200, readPieces: [(0x500A00, 8192)])
        c = h.commands(from: at)[0]
        XCTAssertEqual(c.prp1, g + 0x40200)
        XCTAssertEqual(h.pair.state.pointee.lists.load(fromByteOffset: 8, as: UInt64.self) & 4095, 0)
        XCTAssertEqual(h.commands(from: at).count, 2)
        XCTAssertEqual(h.counter("errors"), 0)
    }

    func testTwoMiBCommandFillsOnePRPListPage() throws {
        // MDTS 0: no controller limit, so the 2 MiB cap applies; from offset 512 that is 513 pages.
        let h = try QueueHarness(sgl: false) { $0.mdts = 0 }
        let at = h.soft.ioCommands.count
        roundTrip(h, [(0x100200, 2 << 20)], sector: 0, readPieces: [(0x500000, 2 << 20)])
        XCTAssertEqual(h.commands(from: at).count, 2, "one command each way")
        let before = h.soft.ioCommands.count
        roundTrip(h, [(0x100000, (2 << 20) + 4096)], sector: 8192, readPieces: [(0x500000, (2 << 20) + 4096)])
        XCTAssertEqual(h.commands(from: before).count, 4, "2 MiB + 4 KiB: two commands each way")
    }

    func testChainsPRPsCannotExpressAreSplitAtSegmentBoundaries() throws {
        let h = try QueueHarness(sgl: false)
        // B starts inside a page, and ends inside one: cuts at 4096 and 5120 bytes.
        let chain = [(0x50000, 4096), (0x52200, 1024), (0x54000, 3072)]
        var at = h.soft.ioCommands.count
        roundTrip(h, chain, sector: 40, readPieces: [(0x450000, 4096), (0x452200, 1024), (0x454000, 3072)])
        let writes = h.commands(from: at).filter { $0.opcode == NVMeIOOpcode.write }
        XCTAssertEqual(writes.map { $0.cdw12 & 0xFFFF }, [7, 1, 5], "blocks per part (0's based)")
        XCTAssertEqual(writes.map { $0.cdw10 }, [40, 48, 50], "each part at its own LBA")
        XCTAssertEqual(h.pair.outstanding, 0)
        // Two pieces that continue each other mid-page are one run: one command, one page.
        at = h.soft.ioCommands.count
        roundTrip(h, [(0x60000, 2560), (0x60A00, 1536)], sector: 100, readPieces: [(0x460000, 2560), (0x460A00, 1536)])
        let c = h.commands(from: at)
        XCTAssertEqual(c.count, 2)
        XCTAssertEqual(c[0].prp2, 0)

        // A 4 KiB namespace: the cut at 5120 bytes is not on a block boundary.
        let h4 = try QueueHarness(nsid: 2, sgl: false)
        at = h4.soft.ioCommands.count
        XCTAssertEqual(h4.prepare(h4.slot(T.output, sector: 0, pieces: chain), head: 1), .failed)
        XCTAssertEqual(h4.pair.unexpressible, 1)
        XCTAssertEqual(h4.counter("errors"), 1)
        // PRP1 must be dword aligned.
        XCTAssertEqual(h4.prepare(h4.slot(T.output, sector: 0, pieces: [(0x70001, 4096)]), head: 1), .failed)
        XCTAssertEqual(h4.counter("errors"), 2)
        _ = h4.backend.submit()
        h4.soft.step()
        XCTAssertEqual(h4.soft.ioCommands.count, at, "nothing reached the controller")
        XCTAssertEqual(h4.pair.outstanding, 0)
    }

    func testSGLDataBlockAndLastSegment() throws {
        let h = try QueueHarness(sgl: true)
        XCTAssertTrue(h.pair.usesSGL)
        var at = h.soft.ioCommands.count
        roundTrip(h, [(0x10000, 4096)], sector: 8)
        var c = h.commands(from: at)[0]
        XCTAssertEqual(c.cdw0 >> 14 & 3, 1, "PSDT: SGL")
        XCTAssertEqual(c.prp2 >> 60, NVMeSGL.dataBlock)
        XCTAssertEqual(c.prp2 & 0xFFFF_FFFF, 4096)
        // The chain PRPs cannot carry in one command: one Last Segment of three Data Blocks.
        at = h.soft.ioCommands.count
        roundTrip(h, [(0x50000, 4096), (0x52200, 1024), (0x54000, 3072)], sector: 40)
        c = h.commands(from: at)[0]
        XCTAssertEqual(h.commands(from: at).count, 2)
        XCTAssertEqual(c.prp2 >> 60, NVMeSGL.lastSegment)
        XCTAssertEqual(c.prp2 & 0xFFFF_FFFF, 48)
        // Any byte alignment (SGLS = 01).
        roundTrip(h, [(0x70001, 4096)], sector: 300, readPieces: [(0x470003, 1000), (0x480000, 3096)])
        XCTAssertEqual(h.counter("errors"), 0)
    }

    func testSGLChoiceFollowsTheControllerAndTheSetting() throws {
        let noSGL = try QueueHarness(sgl: true) { $0.sgls = 0 }
        XCTAssertFalse(noSGL.pair.usesSGL, "no SGL support: PRPs")
        roundTrip(noSGL, [(0x10000, 8192)], sector: 16)
        XCTAssertEqual(noSGL.commands().last!.cdw0 >> 14 & 3, 0)
        // Dword-granular SGLs refuse odd addresses: the request fails here, not in the device.
        let dword = try QueueHarness(sgl: true) { $0.sgls = 2 }
        XCTAssertEqual(dword.prepare(dword.slot(T.input, sector: 0, pieces: [(0x70001, 4096)]), head: 1), .failed)
        XCTAssertEqual(dword.pair.unexpressible, 1)
        roundTrip(dword, [(0x70004, 4096)], sector: 0)
    }

    func testMDTSSplitsAndPartsCompleteTogether() throws {
        // MDTS 1: 8 KiB commands.
        let h = try QueueHarness(sgl: false) { $0.mdts = 1 }
        XCTAssertEqual(h.pair.maxTransfer, 8192)
        var at = h.soft.ioCommands.count
        roundTrip(h, [(0x80000, 32768)], sector: 16)
        let writes = h.commands(from: at).filter { $0.opcode == NVMeIOOpcode.write }
        XCTAssertEqual(writes.map { $0.cdw12 & 0xFFFF }, [15, 15, 15, 15])
        XCTAssertEqual(writes.map { $0.cdw10 }, [16, 32, 48, 64])
        // Split inside a segment that starts mid-page: parts of 8, 8 and 4 KiB.
        at = h.soft.ioCommands.count
        roundTrip(h, [(0x90200, 20480)], sector: 400, readPieces: [(0x490200, 20480)])
        XCTAssertEqual(h.commands(from: at).filter { $0.opcode == NVMeIOOpcode.read }.map { $0.cdw12 & 0xFFFF }, [15, 15, 7])
        XCTAssertEqual(h.counter("submissions"), 14)
        XCTAssertEqual(h.counter("completions"), 14)
        // SGL mode splits the same way.
        let s = try QueueHarness(sgl: true) { $0.mdts = 1 }
        at = s.soft.ioCommands.count
        roundTrip(s, [(0x80000, 10240), (0x90000, 6144)], sector: 0)
        XCTAssertEqual(s.commands(from: at).filter { $0.opcode == NVMeIOOpcode.write }.map { $0.cdw12 & 0xFFFF }, [15, 15])
    }

    func testAnErrorStatusFailsTheWholeRequestOnce() throws {
        let h = try QueueHarness(sgl: false) { $0.mdts = 1; $0.errorLBA = (1, 20) }
        XCTAssertEqual(h.one(h.slot(T.output, sector: 16, pieces: [(0x80000, 32768)])), -EIO)
        XCTAssertEqual(h.counter("errors"), 1, "one request failed")
        XCTAssertEqual(h.counter("completions"), 4, "all four parts completed")
        XCTAssertEqual(h.pair.state.pointee.lastErrorStatus, NVMeStatus.unrecoveredRead)
        XCTAssertEqual(h.run(answers: 1, steps: 5).count, 0, "answered once")
        // Past the end of the namespace: LBA out of range, also -EIO.
        let big = h.target(sizeBytes: UInt64(h.soft.namespaceBytes(1)) + 8192)
        XCTAssertEqual(h.one(h.slot(T.input, sector: 16384, pieces: [(0x10000, 4096)]), target: big), -EIO)
        XCTAssertEqual(h.pair.state.pointee.lastErrorStatus, NVMeStatus.lbaOutOfRange)
        XCTAssertEqual(h.pair.state.pointee.freeCIDCount, h.pair.depth - 1)
    }

    func testFlushWriteZeroesAndDiscard() throws {
        let h = try QueueHarness { $0.namespaces[1] = (262144, 9) }
        var at = h.soft.ioCommands.count
        XCTAssertEqual(h.one(h.slot(T.flush, sector: 0)), 0)
        XCTAssertEqual(h.commands(from: at).map { $0.opcode }, [NVMeIOOpcode.flush])
        XCTAssertEqual(h.commands(from: at)[0].nsid, 1)
        XCTAssertEqual(h.soft.flushes, 1)

        h.setNamespace(at: 0, pattern(8192, seed: 9))
        at = h.soft.ioCommands.count
        XCTAssertEqual(h.one(h.rangeSlot(T.writeZeroes, sector: 2, sectors: 2, unmap: true)), 0)
        XCTAssertEqual(h.one(h.rangeSlot(T.writeZeroes, sector: 6, sectors: 1)), 0)
        XCTAssertEqual(h.one(h.rangeSlot(T.discard, sector: 10, sectors: 3)), 0)
        let c = h.commands(from: at)
        XCTAssertEqual(c.map { $0.opcode }, [NVMeIOOpcode.writeZeroes, NVMeIOOpcode.writeZeroes, NVMeIOOpcode.datasetManagement])
        XCTAssertEqual(c[0].cdw12, 1 | NVMeCommand.writeZeroesDeallocate, "2 blocks, deallocate")
        XCTAssertEqual(c[1].cdw12, 0, "1 block, no deallocate")
        XCTAssertEqual(c[2].cdw11, NVMeCommand.dsmDeallocate)
        var expect = pattern(8192, seed: 9)
        for s in [2, 3, 6, 10, 11, 12] { for i in 0..<512 { expect[s * 512 + i] = 0 } }
        XCTAssertEqual(h.namespace(at: 0, count: 8192), expect)

        // More than 65536 blocks: Write Zeroes is split (NLB is 16 bits).
        at = h.soft.ioCommands.count
        XCTAssertEqual(h.one(h.rangeSlot(T.writeZeroes, sector: 100, sectors: 100_000)), 0)
        XCTAssertEqual(h.commands(from: at).map { $0.cdw12 & 0xFFFF }, [0xFFFF, UInt32(100_000 - 65536 - 1)])
        XCTAssertEqual(h.commands(from: at).map { $0.cdw10 }, [100, 100 + 65536])
        // GET_ID and unknown types are not the backend's.
        XCTAssertEqual(h.prepare(h.slot(T.getID, sector: 0, pieces: [(0, 20)]), head: 1), .failed)
    }

    func testMisalignedRequestsOnA4KiBNamespaceFail() throws {
        let h = try QueueHarness(nsid: 2)
        XCTAssertEqual(h.blockSize, 4096)
        XCTAssertEqual(h.prepare(h.slot(T.input, sector: 1, pieces: [(0x10000, 4096)]), head: 1), .failed, "sector not on a block")
        XCTAssertEqual(h.prepare(h.slot(T.input, sector: 0, pieces: [(0x10000, 512)]), head: 1), .failed, "length not whole blocks")
        XCTAssertEqual(h.prepare(h.slot(T.input, sector: 0, pieces: [(0x10000, 4096)]), head: 1, target: h.target(offsetBytes: 512)),
                       .failed, "export offset not on a block")
        XCTAssertEqual(h.prepare(h.rangeSlot(T.discard, sector: 4, sectors: 8), head: 1), .failed)
        XCTAssertEqual(h.counter("errors"), 4)
        let at = h.soft.ioCommands.count
        h.setNamespace(at: 8192, pattern(4096, seed: 5))
        XCTAssertEqual(h.one(h.slot(T.input, sector: 0, pieces: [(0x10000, 4096)]), target: h.target(offsetBytes: 4096)), 4096)
        XCTAssertEqual(h.commands(from: at).map { $0.cdw10 }, [1], "export offset 4096 + sector 0 = LBA 1")
        XCTAssertEqual(h.one(h.slot(T.input, sector: 16, pieces: [(0x20000, 4096)])), 4096)
        XCTAssertEqual(h.gathered([(0x20000, 4096)]), pattern(4096, seed: 5))
    }

    func testMemoryOutsideTheIOVATableFails() throws {
        let h = try QueueHarness()
        let outside = UnsafeMutableRawPointer.allocate(byteCount: 8192, alignment: 4096)
        defer { outside.deallocate() }
        let s = h.slot(T.input, sector: 0, pieces: [(0, 4096)])
        s.pointee.iov[0] = iovec(iov_base: outside, iov_len: 4096)
        XCTAssertEqual(h.prepare(s, head: 1), .failed)
        // Straddling the end of the region.
        XCTAssertEqual(h.prepare(h.slot(T.input, sector: 0, pieces: [(QueueHarness.guestBytes - 2048, 4096)]), head: 1), .failed)
        XCTAssertEqual(h.counter("errors"), 2)
    }
}
