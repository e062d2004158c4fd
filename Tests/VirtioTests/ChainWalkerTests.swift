#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Virtio
import XCTest

/// `walkChain` against valid chains and everything a hostile guest can put in a
/// descriptor table. A bad chain is `.badDescriptor`, never a hang or a crash.
final class ChainWalkerTests: XCTestCase {
    private var memory: MockMemory!
    private var q: MockQueue!
    private var segs: SegmentList!

    override func setUpWithError() throws {
        memory = try MockMemory(size: 1 << 20)
        q = MockQueue(memory: memory, size: 16)
        segs = SegmentList.allocate()
    }

    override func tearDown() {
        segs.deallocate()
        q = nil
        memory = nil
    }

    private func buffer(_ len: Int) -> (gpa: UInt64, len: UInt32) {
        (memory.alloc(max(len, 1)), UInt32(len))
    }

    private func walk(_ head: UInt16, writes: Bool = false) -> ChainError {
        q.queue.walkChain(head: head, deviceWrites: writes, into: segs)
    }

    private func assertSegments(_ expected: [(gpa: UInt64, len: UInt32)], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(segs.count, expected.count, "segment count", file: file, line: line)
        XCTAssertEqual(segs.totalLength, expected.reduce(0) { $0 + Int($1.len) }, "total length", file: file, line: line)
        for (i, e) in expected.enumerated() where i < segs.count {
            XCTAssertEqual(segs.pointer(i), memory.pointer(e.gpa), "segment \(i) pointer", file: file, line: line)
            XCTAssertEqual(segs.length(i), Int(e.len), "segment \(i) length", file: file, line: line)
        }
    }

    // MARK: Valid chains

    func testOneTwoAndManyDescriptorChains() {
        for n in [1, 2, 7, 16] {
            let bufs = (0..<n).map { buffer(100 + $0) }
            let head = q.makeChain(bufs, writable: false)
            XCTAssertEqual(walk(head), .none, "\(n) descriptors")
            assertSegments(bufs)
        }
        let rx = (0..<3).map { _ in buffer(2048) }
        XCTAssertEqual(walk(q.makeChain(rx, writable: true), writes: true), .none)
        assertSegments(rx)
    }

    func testChainOfExactlyQueueSizeDescriptorsIsAccepted() {
        let bufs = (0..<16).map { _ in buffer(64) }
        let head = q.makeChain(bufs, writable: false)
        XCTAssertEqual(walk(head), .none)
        XCTAssertEqual(segs.count, 16)
    }

    func testZeroLengthDescriptorsAddNoSegment() {
        let a = buffer(10), b = buffer(20)
        let head = q.makeChain([a, (a.gpa, 0), b, (0, 0)], writable: false)   // len 0 at any address is skipped
        XCTAssertEqual(walk(head), .none)
        assertSegments([a, b])
    }

    func testIndirectTable() {
        let bufs = (0..<5).map { buffer(300 + $0) }
        let head = q.makeIndirectChain(bufs, writable: false)
        XCTAssertEqual(walk(head), .none)
        assertSegments(bufs)
        let rx = [buffer(1000), buffer(1000)]
        XCTAssertEqual(walk(q.makeIndirectChain(rx, writable: true), writes: true), .none)
        assertSegments(rx)
    }

    func testIndirectDescriptorIgnoresItsOwnWriteFlag() {
        // §2.7.5.3.2: the device ignores the write-only flag of a descriptor that points to a table.
        let bufs = [buffer(64)]
        let head = q.makeIndirectChain(bufs, writable: false)
        var d = q.descriptor(head)
        d.flags |= VringDescFlag.write
        q.setDescriptor(head, d)
        XCTAssertEqual(walk(head), .none)
    }

    func testIndirectRefusedWhenNotNegotiated() {
        q.state.pointee.indirect = false
        XCTAssertEqual(walk(q.makeIndirectChain([buffer(64)], writable: false)), .badDescriptor)
    }

    func testWalkReusesTheSegmentListFromScratch() {
        _ = walk(q.makeChain([buffer(10), buffer(10), buffer(10)], writable: false))
        XCTAssertEqual(walk(16), .badDescriptor)
        XCTAssertEqual(segs.count, 0, "a refused head leaves no stale segments")
        let one = buffer(5)
        XCTAssertEqual(walk(q.makeChain([one], writable: false)), .none)
        assertSegments([one])
    }

    // MARK: Indices

    func testHeadOutOfRange() {
        for head: UInt16 in [16, 17, 255, 0x8000, 0xffff] {
            XCTAssertEqual(walk(head), .badDescriptor, "head \(head)")
        }
    }

    func testNextOutOfRange() {
        let a = buffer(10)
        for next: UInt16 in [16, 0xffff] {
            q.setDescriptor(3, Desc(addr: a.gpa, len: 10, flags: VringDescFlag.next, next: next))
            XCTAssertEqual(walk(3), .badDescriptor, "next \(next)")
        }
    }

    func testLoopsAreRefusedNotFollowed() {
        let a = buffer(10)
        // Self loop.
        q.setDescriptor(0, Desc(addr: a.gpa, len: 10, flags: VringDescFlag.next, next: 0))
        XCTAssertEqual(walk(0), .badDescriptor)
        // Two-cycle.
        q.setDescriptor(1, Desc(addr: a.gpa, len: 10, flags: VringDescFlag.next, next: 2))
        q.setDescriptor(2, Desc(addr: a.gpa, len: 10, flags: VringDescFlag.next, next: 1))
        XCTAssertEqual(walk(1), .badDescriptor)
        // A loop of zero-length descriptors adds no segment: only the step limit stops it.
        for i: UInt16 in 0..<16 { q.setDescriptor(i, Desc(addr: 0, len: 0, flags: VringDescFlag.next, next: (i + 1) % 16)) }
        XCTAssertEqual(walk(5), .badDescriptor)
        // A tail that enters a loop halfway.
        q.setDescriptor(15, Desc(addr: a.gpa, len: 1, flags: VringDescFlag.next, next: 10))
        XCTAssertEqual(walk(15), .badDescriptor)
    }

    func testLoopInsideIndirectTable() {
        let a = buffer(10)
        let table = memory.alloc(64)
        q.writeTable([Desc(addr: a.gpa, len: 10, flags: VringDescFlag.next, next: 1),
                      Desc(addr: a.gpa, len: 10, flags: VringDescFlag.next, next: 2),
                      Desc(addr: 0, len: 0, flags: VringDescFlag.next, next: 3),
                      Desc(addr: 0, len: 0, flags: VringDescFlag.next, next: 2)], at: table)
        q.setDescriptor(0, Desc(addr: table, len: 64, flags: VringDescFlag.indirect))
        XCTAssertEqual(walk(0), .badDescriptor)
        // next past the end of the table.
        q.writeTable([Desc(addr: a.gpa, len: 10, flags: VringDescFlag.next, next: 4)], at: table)
        XCTAssertEqual(walk(0), .badDescriptor)
    }

    // MARK: Indirect rules (§2.7.5.3)

    func testNestedIndirectRefused() {
        let inner = memory.alloc(16)
        q.writeTable([Desc(addr: buffer(10).gpa, len: 10)], at: inner)
        let outer = memory.alloc(16)
        q.writeTable([Desc(addr: inner, len: 16, flags: VringDescFlag.indirect)], at: outer)
        q.setDescriptor(0, Desc(addr: outer, len: 16, flags: VringDescFlag.indirect))
        XCTAssertEqual(walk(0), .badDescriptor)
    }

    func testIndirectWithNextRefused() {
        let table = memory.alloc(16)
        q.writeTable([Desc(addr: buffer(10).gpa, len: 10)], at: table)
        q.setDescriptor(0, Desc(addr: table, len: 16, flags: VringDescFlag.indirect | VringDescFlag.next, next: 1))
        q.setDescriptor(1, Desc(addr: buffer(10).gpa, len: 10))
        XCTAssertEqual(walk(0), .badDescriptor)
    }

    func testIndirectLengthMustBeWholeDescriptors() {
        let table = memory.alloc(64)
        q.writeTable([Desc(addr: buffer(10).gpa, len: 10)], at: table)
        for len: UInt32 in [0, 1, 8, 15, 17, 24, 31] {
            q.setDescriptor(0, Desc(addr: table, len: len, flags: VringDescFlag.indirect))
            XCTAssertEqual(walk(0), .badDescriptor, "indirect len \(len)")
        }
        q.setDescriptor(0, Desc(addr: table, len: 16, flags: VringDescFlag.indirect))
        XCTAssertEqual(walk(0), .none)
    }

    func testIndirectTableOutsideGuestMemory() {
        for addr in [0, MockMemory.gpaBase - 16, memory.end, memory.end - 8, UInt64.max - 15] {
            q.setDescriptor(0, Desc(addr: addr, len: 16, flags: VringDescFlag.indirect))
            XCTAssertEqual(walk(0), .badDescriptor, "table at 0x\(String(addr, radix: 16))")
        }
    }

    /// A huge indirect table (all of guest memory) whose entries loop with zero
    /// lengths: no segment is ever added, so only the step limit ends the walk. A
    /// chain is at most queue-size descriptors long (§2.7.5.3.1), so the walk must
    /// stop after at most that many steps, not after len/16.
    func testHugeIndirectTableLoopIsCutShort() throws {
        let big = try MockMemory(size: 1 << 30)   // sparse memfd: only touched pages are allocated
        let bq = MockQueue(memory: big, size: 256)
        let table = big.alloc(16)
        bq.writeTable([Desc(addr: 0, len: 0, flags: VringDescFlag.next, next: 0)], at: table)
        let tableLen = UInt32(big.end - table) & ~15
        bq.setDescriptor(0, Desc(addr: table, len: tableLen, flags: VringDescFlag.indirect))
        let start = Date()
        XCTAssertEqual(bq.queue.walkChain(head: 0, deviceWrites: false, into: segs), .badDescriptor)
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertLessThan(elapsed, 0.05, "walking one looping indirect chain took \(elapsed) s (\(tableLen / 16) steps): a guest can stall a worker")
    }

    // MARK: Addresses

    func testBufferOutsideGuestMemory() {
        let cases: [(UInt64, UInt32)] = [
            (0, 1), (MockMemory.gpaBase - 1, 1), (MockMemory.gpaBase - 4, 8),
            (memory.end, 1), (memory.end + 4096, 64), (0xffff_ffff_ffff_0000, 64),
        ]
        for (addr, len) in cases {
            q.setDescriptor(0, Desc(addr: addr, len: len))
            XCTAssertEqual(walk(0), .badDescriptor, "buffer 0x\(String(addr, radix: 16)) len \(len)")
        }
    }

    func testAddressPlusLengthOverflowingUInt64() {
        for (addr, len): (UInt64, UInt32) in [(UInt64.max, 1), (UInt64.max - 10, 100), (UInt64.max - 0xffff_fffe, 0xffff_ffff)] {
            q.setDescriptor(0, Desc(addr: addr, len: len))
            XCTAssertEqual(walk(0), .badDescriptor, "buffer 0x\(String(addr, radix: 16)) len \(len)")
        }
        // A length bigger than the region from a valid start.
        q.setDescriptor(0, Desc(addr: MockMemory.gpaBase, len: UInt32.max))
        XCTAssertEqual(walk(0), .badDescriptor)
    }

    func testBufferStraddlingTheEndOfARegion() throws {
        q.setDescriptor(0, Desc(addr: memory.end - 10, len: 20))
        XCTAssertEqual(walk(0), .badDescriptor)
        q.setDescriptor(0, Desc(addr: memory.end - 20, len: 20))
        XCTAssertEqual(walk(0), .none, "the last bytes of the region are fine")
        // Two regions adjacent in guest-physical space are not adjacent in this
        // process: a buffer across the boundary must be refused, not read past a mapping.
        let second = try memory.addRegion(size: 1 << 16)
        XCTAssertEqual(second, memory.end)
        q.setDescriptor(0, Desc(addr: memory.end - 8, len: 16))
        XCTAssertEqual(walk(0), .badDescriptor)
        q.setDescriptor(0, Desc(addr: second, len: 16))
        XCTAssertEqual(walk(0), .none)
        XCTAssertEqual(segs.pointer(0), memory.pointer(second))
    }

    func testNoMemoryTable() {
        let head = q.makeChain([buffer(10)], writable: false)
        q.state.pointee.memory = nil
        XCTAssertEqual(walk(head), .badDescriptor)
    }

    // MARK: Direction and size

    func testWrongDirection() {
        let a = buffer(64)
        // A writable buffer in a TX chain, first or later.
        XCTAssertEqual(walk(q.makeChain([a], writable: true)), .badDescriptor)
        let mixed = q.makeChain([a, a], writable: false)
        var d = q.descriptor(q.descriptor(mixed).next)
        d.flags |= VringDescFlag.write
        q.setDescriptor(q.descriptor(mixed).next, d)
        XCTAssertEqual(walk(mixed), .badDescriptor)
        // A readable buffer in an RX chain, directly or in an indirect table.
        XCTAssertEqual(walk(q.makeChain([a], writable: false), writes: true), .badDescriptor)
        XCTAssertEqual(walk(q.makeIndirectChain([a, a], writable: false), writes: true), .badDescriptor)
    }

    func testMoreThanSixtyFourSegments() {
        let big = MockQueue(memory: memory, size: 128)
        let a = buffer(8)
        let ok = big.makeChain(Array(repeating: a, count: SegmentList.capacity), writable: false)
        XCTAssertEqual(big.queue.walkChain(head: ok, deviceWrites: false, into: segs), .none)
        XCTAssertEqual(segs.count, 64)
        let over = big.makeChain(Array(repeating: a, count: SegmentList.capacity + 1), writable: false)
        XCTAssertEqual(big.queue.walkChain(head: over, deviceWrites: false, into: segs), .badDescriptor)
        let overIndirect = big.makeIndirectChain(Array(repeating: a, count: 100), writable: false)
        XCTAssertEqual(big.queue.walkChain(head: overIndirect, deviceWrites: false, into: segs), .badDescriptor)
    }

    // MARK: Misaligned indirect table

    /// An indirect table at an address that is not 8-aligned must be read with
    /// unaligned loads (an aligned load through it traps in debug builds).
    func testMisalignedIndirectTableDoesNotTrap() throws {
        let a = buffer(10)
        let table = memory.alloc(48) + 1
        q.writeTable([Desc(addr: a.gpa, len: 10)], at: table)
        q.setDescriptor(0, Desc(addr: table, len: 16, flags: VringDescFlag.indirect))
        let r = walk(0)
        XCTAssertTrue(r == .badDescriptor || (r == .none && segs.totalLength == 10))
    }
}
