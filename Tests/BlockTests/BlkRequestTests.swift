// BlkRequestParser.parse on chains a driver lays out in mock guest memory: the layouts
// guests use (and the spec allows), and the ones a broken or hostile driver sends.
#if canImport(Glibc)
import Glibc
#endif
import Block
import Virtio
import XCTest

final class BlkRequestTests: XCTestCase {
    private var memory: BlkGuestMemory!
    private var ring: BlkRing!
    private var vq: Virtqueue!
    private var iov: UnsafeMutablePointer<iovec>!
    private var slot: UnsafeMutablePointer<BlkSlot>!
    /// 1 MiB export: sectors 0..<2048.
    private let target = BlockTarget(fd: -1, offsetBytes: 0, sizeBytes: 1 << 20, readOnly: false, blockSize: 512, isBlockDevice: false)
    private var readOnly: BlockTarget {
        BlockTarget(fd: -1, offsetBytes: 0, sizeBytes: 1 << 20, readOnly: true, blockSize: 512, isBlockDevice: false)
    }

    override func setUpWithError() throws {
        memory = try BlkGuestMemory(size: 8 << 20)
        ring = BlkRing(memory: memory, size: 256)
        vq = ring.makeVirtqueue()
        iov = .allocate(capacity: BlkRequestParser.iovCapacity)
        iov.initialize(repeating: iovec(), count: BlkRequestParser.iovCapacity)
        slot = .allocate(capacity: 1)
        slot.initialize(to: BlkSlot(iov: iov))
    }

    override func tearDown() {
        vq?.deallocate()
        iov?.deallocate()
        slot?.deallocate()
        ring = nil
        memory = nil
    }

    private func parse(_ head: UInt16, _ t: BlockTarget? = nil) -> BlkParse {
        BlkRequestParser.parse(vq, head: head, into: slot, target: t ?? target)
    }

    private func R(_ gpa: UInt64, _ len: Int) -> BlkBuf { BlkBuf(gpa: gpa, len: UInt32(len), write: false) }
    private func W(_ gpa: UInt64, _ len: Int) -> BlkBuf { BlkBuf(gpa: gpa, len: UInt32(len), write: true) }

    /// The device's pointer for guest address `gpa`.
    private func dev(_ gpa: UInt64) -> UnsafeMutableRawPointer { memory.devicePointer(gpa)! }

    /// The slot's data iovecs as (device pointer, length).
    private var dataIOV: [(UnsafeMutableRawPointer, Int)] {
        (0..<Int(max(slot.pointee.iovCount, 0))).map { (slot.pointee.iov[$0].iov_base!, slot.pointee.iov[$0].iov_len) }
    }

    private func assertIOV(_ expected: [(UInt64, Int)], file: StaticString = #filePath, line: UInt = #line) {
        let got = dataIOV
        XCTAssertEqual(got.count, expected.count, "iovec count", file: file, line: line)
        for (k, (g, e)) in zip(got, expected).enumerated() {
            XCTAssertEqual(g.0, dev(e.0), "iovec \(k) base", file: file, line: line)
            XCTAssertEqual(g.1, e.1, "iovec \(k) length", file: file, line: line)
        }
    }

    private func assertStatus(at gpa: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(slot.pointee.status.map { UnsafeMutableRawPointer($0) }, dev(gpa), "status byte", file: file, line: line)
    }

    private func data(_ n: Int) -> UInt64 { memory.alloc(n) }

    private func rangeSegment(sector: UInt64, sectors: UInt32, flags: UInt32) -> UInt64 {
        var b: [UInt8] = []
        for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: sector >> (8 * UInt64(i)))) }
        for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: sectors >> (8 * UInt32(i)))) }
        for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: flags >> (8 * UInt32(i)))) }
        let gpa = memory.alloc(16, align: 16)
        memory.write(b, at: gpa)
        return gpa
    }

    // MARK: Good layouts

    func testFlushIsHeaderAndStatusAlone() {
        let h = ring.header(type: VirtioBlk.RequestType.flush, sector: 0), st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(h, 16), W(st, 1)])), .ok)
        XCTAssertEqual(slot.pointee.type, VirtioBlk.RequestType.flush)
        XCTAssertEqual(slot.pointee.bytes, 0)
        XCTAssertEqual(slot.pointee.iovCount, 0)
        assertStatus(at: st)
    }

    func testWriteWithHeaderAndDataInOneDescriptor() {
        let buf = memory.alloc(16 + 1024)
        // Header bytes in front of the data, one readable descriptor.
        let hdr = memory.read(ring.header(type: VirtioBlk.RequestType.output, sector: 7), 16)
        memory.write(hdr, at: buf)
        let st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(buf, 16 + 1024), W(st, 1)])), .ok)
        XCTAssertEqual(slot.pointee.type, VirtioBlk.RequestType.output)
        XCTAssertEqual(slot.pointee.sector, 7)
        XCTAssertEqual(slot.pointee.bytes, 1024)
        assertIOV([(buf + 16, 1024)])
        assertStatus(at: st)
    }

    func testReadWithDataSplitOverManyDescriptors() {
        let sizes = [100, 412, 512, 1536, 7, 505]   // 3072 bytes: only the sum must be whole sectors
        let r = ring.request(type: VirtioBlk.RequestType.input, sector: 100, segments: sizes)
        XCTAssertEqual(parse(r.head), .ok)
        XCTAssertEqual(slot.pointee.bytes, 3072)
        XCTAssertEqual(slot.pointee.sector, 100)
        assertIOV(r.data.map { ($0.gpa, Int($0.len)) })
        assertStatus(at: r.status!)
    }

    func testHeaderSplitOverTwoDescriptorsAndSharingTheFirstData() {
        // Split inside the sector field: both halves count.
        let huge = BlockTarget(fd: -1, offsetBytes: 0, sizeBytes: 1 << 50, readOnly: false, blockSize: 512, isBlockDevice: false)
        let a = memory.alloc(12), b = memory.alloc(4 + 512)
        let hdr = memory.read(ring.header(type: VirtioBlk.RequestType.output, sector: 0x0000_0102_0304_0506), 16)
        memory.write(Array(hdr[0..<12]), at: a)
        memory.write(Array(hdr[12..<16]), at: b)
        let st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(a, 12), R(b, 4 + 512), W(st, 1)]), huge), .ok)
        XCTAssertEqual(slot.pointee.sector, 0x0000_0102_0304_0506)
        assertIOV([(b + 4, 512)])
    }

    func testStatusSharesTheLastDataDescriptor() {
        let h = ring.header(type: VirtioBlk.RequestType.input, sector: 2)
        let d1 = data(512), d2 = data(513)
        XCTAssertEqual(parse(ring.chain([R(h, 16), W(d1, 512), W(d2, 513)])), .ok)
        XCTAssertEqual(slot.pointee.bytes, 1024)
        assertIOV([(d1, 512), (d2, 512)])
        assertStatus(at: d2 + 512)
    }

    func testZeroLengthDescriptorsAreSkipped() {
        let h = ring.header(type: VirtioBlk.RequestType.input, sector: 2)
        let d = data(512), st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(h, 16), R(h, 0), W(d, 512), W(d, 0), W(st, 1)])), .ok)
        assertIOV([(d, 512)])
        assertStatus(at: st)
    }

    func testIndirectTable() {
        let r = ring.request(type: VirtioBlk.RequestType.input, sector: 8, segments: [4096, 512], indirect: true)
        XCTAssertEqual(parse(r.head), .ok)
        XCTAssertEqual(slot.pointee.bytes, 4608)
        assertIOV(r.data.map { ($0.gpa, Int($0.len)) })
        assertStatus(at: r.status!)
    }

    func testLastSectorAndExactlyMaxBytes() {
        XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.input, sector: 2047, segments: [512]).head), .ok)
        // 32 MiB in 8 descriptors over the same 4 MiB of guest memory, on a 64 MiB export.
        let big = BlockTarget(fd: -1, offsetBytes: 0, sizeBytes: 64 << 20, readOnly: false, blockSize: 512, isBlockDevice: false)
        let h = ring.header(type: VirtioBlk.RequestType.input, sector: 0), d = data(4 << 20), st = ring.statusByte()
        let bufs = [R(h, 16)] + Array(repeating: W(d, 4 << 20), count: 8) + [W(st, 1)]
        XCTAssertEqual(parse(ring.chain(bufs), big), .ok)
        XCTAssertEqual(Int(slot.pointee.bytes), BlkRequestParser.maxBytes)
        let over = [R(h, 16)] + Array(repeating: W(d, 4 << 20), count: 8) + [W(d, 512), W(st, 1)]
        XCTAssertEqual(parse(ring.chain(over), big), .ioerr, "more than maxBytes")
    }

    func testSegMaxDataSegmentsAndOneMore() {
        let h = ring.header(type: VirtioBlk.RequestType.input, sector: 0), d = data(512), st = ring.statusByte()
        let ok = [R(h, 16)] + Array(repeating: W(d, 512), count: BlkRequestParser.segMax) + [W(st, 1)]
        XCTAssertEqual(parse(ring.chain(ok)), .ok)
        XCTAssertEqual(Int(slot.pointee.iovCount), BlkRequestParser.segMax)
        let tooMany = [R(h, 16)] + Array(repeating: W(d, 512), count: BlkRequestParser.segMax + 1) + [W(st, 1)]
        XCTAssertEqual(parse(ring.chain(tooMany)), .ioerr)
        assertStatus(at: st)
        // Far more descriptors than the slot has iovecs: still an answer, in the status byte.
        let way = [R(h, 16)] + Array(repeating: W(d, 512), count: 250) + [W(st, 1)]
        XCTAssertEqual(parse(ring.chain(way)), .ioerr)
        assertStatus(at: st)
    }

    func testGetIDAnswersAtMost20Bytes() {
        for (n, want) in [(20, 20), (8, 8), (64, 20)] {
            let r = ring.request(type: VirtioBlk.RequestType.getID, sector: 0, segments: [n])
            XCTAssertEqual(parse(r.head), .ok, "GET_ID into \(n) bytes")
            XCTAssertEqual(Int(slot.pointee.bytes), want)
        }
        let noRoom = ring.request(type: VirtioBlk.RequestType.getID, sector: 0, segments: [])
        XCTAssertEqual(parse(noRoom.head), .ioerr, "GET_ID without a buffer")
        let readable = ring.request(type: VirtioBlk.RequestType.output, sector: 0, segments: [20])
        memory.write(memory.read(ring.header(type: VirtioBlk.RequestType.getID, sector: 0), 16), at: readable.header)
        XCTAssertEqual(parse(readable.head), .ioerr, "GET_ID with device-readable data")
    }

    func testDiscardAndWriteZeroesRanges() {
        for type in [VirtioBlk.RequestType.discard, VirtioBlk.RequestType.writeZeroes] {
            let h = ring.header(type: type, sector: 999), st = ring.statusByte()
            let seg = rangeSegment(sector: 16, sectors: 32, flags: 0)
            XCTAssertEqual(parse(ring.chain([R(h, 16), R(seg, 16), W(st, 1)])), .ok, "type \(type)")
            XCTAssertEqual(slot.pointee.sector, 16, "the range's sector, not the header's")
            XCTAssertEqual(slot.pointee.bytes, 32)
            XCTAssertEqual(slot.pointee.iovCount, 0)
            // The segment split over two descriptors.
            let a = memory.alloc(16)
            memory.write(memory.read(seg, 5), at: a)
            let b = memory.alloc(16)
            memory.write(memory.read(seg + 5, 11), at: b)
            XCTAssertEqual(parse(ring.chain([R(h, 16), R(a, 5), R(b, 11), W(st, 1)])), .ok, "split segment, type \(type)")
            XCTAssertEqual(slot.pointee.sector, 16)
            XCTAssertEqual(slot.pointee.bytes, 32)
        }
        // Write zeroes may unmap (write_zeroes_may_unmap = 1): the flag is kept for the backend.
        let h = ring.header(type: VirtioBlk.RequestType.writeZeroes, sector: 0), st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(h, 16), R(rangeSegment(sector: 0, sectors: 8, flags: 1), 16), W(st, 1)])), .ok)
        XCTAssertEqual(slot.pointee.iovCount, -1, "unmap requested")
    }

    // MARK: Bad layouts

    func testNoWritableDescriptorIsABadChain() {
        let h = ring.header(type: VirtioBlk.RequestType.output, sector: 0), d = data(512)
        XCTAssertEqual(parse(ring.chain([R(h, 16), R(d, 512)])), .badChain)
        XCTAssertNil(slot.pointee.status)
        // A zero-length "status" is no status either.
        XCTAssertEqual(parse(ring.chain([R(h, 16), R(d, 512), W(ring.statusByte(), 0)])), .badChain)
        XCTAssertNil(slot.pointee.status)
    }

    func testZeroLengthStatusAfterReadDataTakesTheLastDataByte() {
        // The status is the last byte of the last writable buffer: here the data's; what
        // remains (511 bytes) is not whole sectors.
        let h = ring.header(type: VirtioBlk.RequestType.input, sector: 0), d = data(512), st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(h, 16), W(d, 512), W(st, 0)])), .ioerr)
        assertStatus(at: d + 511)
    }

    func testReadableAfterWritable() {
        let h = ring.header(type: VirtioBlk.RequestType.output, sector: 0), d = data(512), st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(h, 16), W(st, 1), R(d, 512), W(st, 1)])), .ioerr)
        assertStatus(at: st)
    }

    func testDirectionsOfTheData() {
        // IN with device-readable data.
        let h = ring.header(type: VirtioBlk.RequestType.input, sector: 0), d = data(1024), st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(h, 16), R(d, 512), W(st, 1)])), .ioerr, "IN, readable data")
        XCTAssertEqual(parse(ring.chain([R(h, 16), R(d, 512), W(d + 512, 512), W(st, 1)])), .ioerr, "IN, data both ways")
        // OUT with device-writable data.
        let o = ring.header(type: VirtioBlk.RequestType.output, sector: 0)
        XCTAssertEqual(parse(ring.chain([R(o, 16), W(d, 512), W(st, 1)])), .ioerr, "OUT, writable data")
        XCTAssertEqual(parse(ring.chain([R(o, 16), R(d, 512), W(d + 512, 512), W(st, 1)])), .ioerr, "OUT, data both ways")
        assertStatus(at: st)
    }

    func testLengthsNotWholeSectors() {
        for n in [1, 500, 513, 4095] {
            XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.input, sector: 0, segments: [n]).head), .ioerr, "IN \(n)")
            XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.output, sector: 0, segments: [n]).head), .ioerr, "OUT \(n)")
        }
    }

    func testZeroLengthTransfers() {
        XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.input, sector: 0, segments: []).head), .ioerr)
        XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.output, sector: 0, segments: []).head), .ioerr)
    }

    func testShortHeader() {
        let h = ring.header(type: VirtioBlk.RequestType.flush, sector: 0), st = ring.statusByte()
        XCTAssertEqual(parse(ring.chain([R(h, 15), W(st, 1)])), .ioerr)
        assertStatus(at: st)
        XCTAssertEqual(parse(ring.chain([W(st, 1)])), .ioerr, "status alone")
    }

    func testSectorRangePastTheEnd() {
        let cases: [(UInt64, Int)] = [
            (2048, 512),               // first sector past the end
            (2047, 1024),              // straddles the end
            (UInt64.max, 512),         // sector + count overflows
            (UInt64.max - 1, 1024),
            (UInt64.max >> 9, 512),    // the byte offset would overflow
            (1 << 55, 512),
        ]
        for (sector, n) in cases {
            for type in [VirtioBlk.RequestType.input, VirtioBlk.RequestType.output] {
                let r = ring.request(type: type, sector: sector, segments: [n])
                XCTAssertEqual(parse(r.head), .ioerr, "type \(type) sector \(sector) bytes \(n)")
                assertStatus(at: r.status!)
            }
        }
    }

    func testDiscardAndWriteZeroesRefusals() {
        func range(_ type: UInt32, _ sector: UInt64, _ n: UInt32, _ flags: UInt32, segmentBytes: Int = 16) -> UInt16 {
            let h = ring.header(type: type, sector: 0), st = ring.statusByte()
            let seg = rangeSegment(sector: sector, sectors: n, flags: flags)
            return ring.chain([R(h, 16), R(seg, segmentBytes), W(st, 1)])
        }
        let discard = VirtioBlk.RequestType.discard, wz = VirtioBlk.RequestType.writeZeroes
        XCTAssertEqual(parse(range(discard, 0, 8, VirtioBlk.writeZeroesUnmap)), .unsupp, "discard with the unmap flag")
        XCTAssertEqual(parse(range(discard, 0, 8, 2)), .unsupp, "discard with a reserved flag")
        XCTAssertEqual(parse(range(wz, 0, 8, 2)), .unsupp, "write zeroes with a reserved flag")
        XCTAssertEqual(parse(range(wz, 0, 8, 0x8000_0001)), .unsupp, "write zeroes with unmap and a reserved flag")
        for type in [discard, wz] {
            XCTAssertEqual(parse(range(type, 0, 0, 0)), .ioerr, "no sectors")
            XCTAssertEqual(parse(range(type, 2040, 9, 0)), .ioerr, "straddles the end")
            XCTAssertEqual(parse(range(type, UInt64.max, 1, 0)), .ioerr, "overflows")
            XCTAssertEqual(parse(range(type, 0, UInt32(BlkRequestParser.maxBytes >> 9) + 1, 0),
                                 BlockTarget(fd: -1, offsetBytes: 0, sizeBytes: 1 << 30, readOnly: false, blockSize: 512, isBlockDevice: false)),
                           .ioerr, "more than max_discard_sectors")
            XCTAssertEqual(parse(range(type, 0, 8, 0, segmentBytes: 15)), .ioerr, "short segment")
            // Two segments (max_discard_seg is 1).
            let h = ring.header(type: type, sector: 0), st = ring.statusByte()
            let s1 = rangeSegment(sector: 0, sectors: 8, flags: 0), s2 = rangeSegment(sector: 8, sectors: 8, flags: 0)
            XCTAssertEqual(parse(ring.chain([R(h, 16), R(s1, 16), R(s2, 16), W(st, 1)])), .ioerr, "two segments")
            XCTAssertEqual(parse(ring.chain([R(h, 16), R(s1, 16), W(s2, 16), W(st, 1)])), .ioerr, "writable data")
        }
    }

    func testReadOnlyTargetRefusesWrites() {
        let ro = readOnly
        XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.output, sector: 0, segments: [512]).head, ro), .ioerr)
        for type in [VirtioBlk.RequestType.discard, VirtioBlk.RequestType.writeZeroes] {
            let h = ring.header(type: type, sector: 0), st = ring.statusByte()
            XCTAssertEqual(parse(ring.chain([R(h, 16), R(rangeSegment(sector: 0, sectors: 8, flags: 0), 16), W(st, 1)]), ro), .ioerr,
                           "type \(type) on a read-only export")
            assertStatus(at: st)
        }
        XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.input, sector: 0, segments: [512]).head, ro), .ok)
        XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.flush, sector: 0, segments: []).head, ro), .ok)
        XCTAssertEqual(parse(ring.request(type: VirtioBlk.RequestType.getID, sector: 0, segments: [20]).head, ro), .ok)
    }

    func testUnknownTypesAreUnsupported() {
        for type: UInt32 in [2, 3, 5, 7, 9, 10, 12, 14, 15, 16, 99, 0x8000_0000, UInt32.max] {
            let r = ring.request(type: type, sector: 0, segments: [512])
            XCTAssertEqual(parse(r.head), .unsupp, "type \(type)")
            assertStatus(at: r.status!)
        }
        let flushWithData = ring.request(type: VirtioBlk.RequestType.flush, sector: 0, segments: [512])
        XCTAssertEqual(parse(flushWithData.head), .ioerr, "flush with data")
    }

    func testBrokenChainsAreBadChains() {
        let h = ring.header(type: VirtioBlk.RequestType.flush, sector: 0), st = ring.statusByte()
        // A loop: 10 → 11 → 10.
        ring.setDesc(10, addr: h, len: 16, flags: VringDescFlag.next, next: 11)
        ring.setDesc(11, addr: st, len: 1, flags: VringDescFlag.next | VringDescFlag.write, next: 10)
        XCTAssertEqual(parse(10), .badChain, "loop")
        // Head and next out of the table.
        XCTAssertEqual(parse(256), .badChain, "head past the ring")
        XCTAssertEqual(parse(UInt16.max), .badChain, "head 65535")
        ring.setDesc(12, addr: h, len: 16, flags: VringDescFlag.next, next: 300)
        XCTAssertEqual(parse(12), .badChain, "next past the ring")
        // Buffers outside guest memory, or wrapping the address space.
        XCTAssertEqual(parse(ring.chain([R(h, 16), W(0x1000, 1)])), .badChain, "status below guest memory")
        XCTAssertEqual(parse(ring.chain([R(h, 16), W(memory.end - 1, 2)])), .badChain, "status straddling the end")
        XCTAssertEqual(parse(ring.chain([R(UInt64.max - 7, 16), W(st, 1)])), .badChain, "address wraps")
        XCTAssertEqual(parse(ring.chain([R(h, Int(UInt32.max)), W(st, 1)])), .badChain, "4 GiB descriptor")
    }

    func testBrokenIndirectTables() {
        let h = ring.header(type: VirtioBlk.RequestType.flush, sector: 0), st = ring.statusByte()
        let table = memory.alloc(64, align: 16)
        RingWrite.desc(memory, table, 0, addr: h, len: 16, flags: VringDescFlag.next, next: 1)
        RingWrite.desc(memory, table, 1, addr: st, len: 1, flags: VringDescFlag.write, next: 0)
        ring.setDesc(20, addr: table, len: 32, flags: VringDescFlag.indirect)
        XCTAssertEqual(parse(20), .ok, "the table itself is fine")
        vq.state.pointee.indirect = false
        XCTAssertEqual(parse(20), .badChain, "INDIRECT_DESC not negotiated")
        vq.state.pointee.indirect = true
        ring.setDesc(21, addr: table, len: 32, flags: VringDescFlag.indirect | VringDescFlag.next, next: 22)
        XCTAssertEqual(parse(21), .badChain, "indirect with NEXT")
        ring.setDesc(23, addr: table, len: 24, flags: VringDescFlag.indirect)
        XCTAssertEqual(parse(23), .badChain, "length not a multiple of 16")
        ring.setDesc(24, addr: table, len: 0, flags: VringDescFlag.indirect)
        XCTAssertEqual(parse(24), .badChain, "empty table")
        ring.setDesc(25, addr: memory.alloc(16 * 257, align: 16), len: 16 * 257, flags: VringDescFlag.indirect)
        XCTAssertEqual(parse(25), .badChain, "table longer than the ring")
        // Nested: the table points at another table.
        let outer = memory.alloc(16, align: 16)
        RingWrite.desc(memory, outer, 0, addr: table, len: 32, flags: VringDescFlag.indirect, next: 0)
        ring.setDesc(26, addr: outer, len: 16, flags: VringDescFlag.indirect)
        XCTAssertEqual(parse(26), .badChain, "nested indirect")
        // A loop inside the table.
        let loop = memory.alloc(32, align: 16)
        RingWrite.desc(memory, loop, 0, addr: h, len: 16, flags: VringDescFlag.next, next: 1)
        RingWrite.desc(memory, loop, 1, addr: st, len: 1, flags: VringDescFlag.write | VringDescFlag.next, next: 0)
        ring.setDesc(27, addr: loop, len: 32, flags: VringDescFlag.indirect)
        XCTAssertEqual(parse(27), .badChain, "loop in the table")
        // next past the table's end.
        let short = memory.alloc(32, align: 16)
        RingWrite.desc(memory, short, 0, addr: h, len: 16, flags: VringDescFlag.next, next: 2)
        ring.setDesc(28, addr: short, len: 32, flags: VringDescFlag.indirect)
        XCTAssertEqual(parse(28), .badChain, "next past the table")
    }

    func testParsingDoesNotWriteGuestMemory() {
        let r = ring.request(type: VirtioBlk.RequestType.input, sector: 4, segments: [512, 512])
        let before = ring.dataBytes(of: r) + [ring.status(of: r)!]
        XCTAssertEqual(parse(r.head), .ok)
        XCTAssertEqual(ring.dataBytes(of: r) + [ring.status(of: r)!], before)
        let bad = ring.request(type: 77, sector: 4, segments: [512])
        XCTAssertEqual(parse(bad.head), .unsupp)
        XCTAssertEqual(ring.status(of: bad), 0xee, "the parser only locates the status byte")
    }
}

/// Descriptors written anywhere in guest memory (indirect tables).
enum RingWrite {
    static func desc(_ m: BlkGuestMemory, _ table: UInt64, _ i: Int, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        BlkRing.writeDesc(m.pointer(table) + 16 * i, addr: addr, len: len, flags: flags, next: next)
    }
}
