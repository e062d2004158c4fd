// BlkQueue end to end: a mock driver's ring, the real io_uring backend on a temporary
// file, counters in a stats segment. Statuses, used lengths, the bytes in the file,
// completions out of order, a head offered twice while in flight, drain().
#if canImport(Glibc)
import Glibc
#endif
import Block
import Platform
import Ports
import Virtio
import XCTest

final class BlkQueueTests: XCTestCase {
    private var backend: BlkTestBackend!
    private var memory: BlkGuestMemory!
    private var ring: BlkRing!
    private var vq: Virtqueue!
    private var queue: BlkQueue<UringBackend>!

    private func start(imageBytes: Int = 4 << 20, offsetBytes: UInt64 = 0, exportBytes: UInt64? = nil, readOnly: Bool = false) throws {
        backend = try BlkTestBackend(imageBytes: imageBytes, offsetBytes: offsetBytes, exportBytes: exportBytes, readOnly: readOnly)
        memory = try BlkGuestMemory(size: 16 << 20)
        ring = BlkRing(memory: memory, size: 256)
        vq = ring.makeVirtqueue()
        queue = BlkQueue(vq: vq, io: backend.io, backend: backend.uring)
    }

    override func tearDown() {
        if let queue { queue.drain(now: Clock.monotonicNanos()) }
        vq?.deallocate()
        queue = nil
        ring = nil
        memory = nil
        backend = nil
    }

    /// Publish `requests`, poll until `count` used entries arrived and nothing is in flight.
    private func run(_ requests: [BlkPosted], expect count: Int? = nil, file: StaticString = #filePath, line: UInt = #line)
        -> [(id: UInt32, len: UInt32)] {
        for r in requests { ring.publish(r.head) }
        let want = count ?? requests.count
        var used: [(id: UInt32, len: UInt32)] = []
        let ok = backend.poll(queue) {
            used += ring.takeUsed()
            return used.count >= want && backend.io.pointee.pending == 0 && backend.io.pointee.prepared == 0
        }
        XCTAssertTrue(ok, "timed out: \(used.count) of \(want) completions", file: file, line: line)
        return used
    }

    private func usedLen(_ used: [(id: UInt32, len: UInt32)], _ r: BlkPosted) -> UInt32? {
        used.first { $0.id == UInt32(r.head) }?.len
    }

    func testWriteThenReadBack() throws {
        try start()
        let data = blkPattern(sector: 8, bytes: 8192, seed: 3)
        let w = ring.request(type: VirtioBlk.RequestType.output, sector: 8, segments: [4096, 4096], payload: data)
        var used = run([w])
        XCTAssertEqual(ring.status(of: w), VirtioBlk.Status.ok)
        XCTAssertEqual(usedLen(used, w), 1, "a write's used length is the status byte")
        XCTAssertEqual(backend.image.bytes(at: 8 * 512, count: 8192), data, "the file holds the data at sector 8")
        XCTAssertEqual(backend.image.bytes(at: 0, count: 4096), [UInt8](repeating: 0, count: 4096), "nothing before it")

        let r = ring.request(type: VirtioBlk.RequestType.input, sector: 8, segments: [4096, 2048, 2048])
        used = run([r])
        XCTAssertEqual(ring.status(of: r), VirtioBlk.Status.ok)
        XCTAssertEqual(usedLen(used, r), 8193, "data plus the status byte")
        XCTAssertEqual(ring.dataBytes(of: r), data)

        XCTAssertEqual(backend.counter("writes"), 1)
        XCTAssertEqual(backend.counter("reads"), 1)
        XCTAssertEqual(backend.counter("write_bytes"), 8192)
        XCTAssertEqual(backend.counter("read_bytes"), 8192)
        XCTAssertEqual(backend.counter("errors.ioerr"), 0)
        XCTAssertEqual(backend.counter("inflight"), 0)
        let latencies = LatencyBuckets.names.map { backend.counter($0) }.reduce(0, +)
        XCTAssertEqual(latencies, 2, "every completion lands in a latency bucket")
    }

    func testStatusesOfEveryKindOfRequest() throws {
        try start()
        backend.image.write([UInt8](repeating: 0x77, count: 8192), at: 64 * 512)
        func range(_ type: UInt32, sector: UInt64, sectors: UInt32, flags: UInt32 = 0) -> BlkPosted {
            var seg: [UInt8] = []
            for i in 0..<8 { seg.append(UInt8(truncatingIfNeeded: sector >> (8 * UInt64(i)))) }
            for i in 0..<4 { seg.append(UInt8(truncatingIfNeeded: sectors >> (8 * UInt32(i)))) }
            for i in 0..<4 { seg.append(UInt8(truncatingIfNeeded: flags >> (8 * UInt32(i)))) }
            return ring.request(type: type, sector: 0, segments: [16], payload: seg)
        }
        let outside = ring.request(type: VirtioBlk.RequestType.input, sector: 8192, segments: [512])
        let straddle = ring.request(type: VirtioBlk.RequestType.output, sector: 8191, segments: [1024],
                                    payload: [UInt8](repeating: 1, count: 1024))
        let unknown = ring.request(type: 99, sector: 0, segments: [512])
        let id = ring.request(type: VirtioBlk.RequestType.getID, sector: 0, segments: [64])
        let flush = ring.request(type: VirtioBlk.RequestType.flush, sector: 0, segments: [])
        let discard = range(VirtioBlk.RequestType.discard, sector: 64, sectors: 8)
        let zeroes = range(VirtioBlk.RequestType.writeZeroes, sector: 72, sectors: 8)
        let discardUnmap = range(VirtioBlk.RequestType.discard, sector: 0, sectors: 8, flags: 1)
        let h = ring.header(type: VirtioBlk.RequestType.output, sector: 0)
        let noStatus = BlkPosted(head: ring.chain([BlkBuf(gpa: h, len: 16, write: false)]), header: h, data: [], status: nil)

        let all = [outside, straddle, unknown, id, flush, discard, zeroes, discardUnmap, noStatus]
        let used = run(all)
        XCTAssertEqual(used.count, all.count, "every request comes back exactly once")
        XCTAssertEqual(ring.status(of: outside), VirtioBlk.Status.ioErr)
        XCTAssertEqual(usedLen(used, outside), 1)
        XCTAssertEqual(ring.status(of: straddle), VirtioBlk.Status.ioErr)
        XCTAssertEqual(ring.status(of: unknown), VirtioBlk.Status.unsupp)
        XCTAssertEqual(usedLen(used, unknown), 1)
        XCTAssertEqual(ring.status(of: id), VirtioBlk.Status.ok)
        XCTAssertEqual(usedLen(used, id), 21, "20 serial bytes and the status")
        XCTAssertEqual(Array(memory.read(id.data[0].gpa, 21)),
                       Array(BlkTestBackend.serial.utf8) + [UInt8](repeating: 0, count: 20 - BlkTestBackend.serial.utf8.count) + [0xa5],
                       "the serial, zero-padded to 20 bytes, nothing past it")
        XCTAssertEqual(ring.status(of: flush), VirtioBlk.Status.ok)
        XCTAssertEqual(ring.status(of: discard), VirtioBlk.Status.ok)
        XCTAssertEqual(ring.status(of: zeroes), VirtioBlk.Status.ok)
        XCTAssertEqual(ring.status(of: discardUnmap), VirtioBlk.Status.unsupp)
        XCTAssertEqual(usedLen(used, noStatus), 0, "no status byte: returned with length 0")
        XCTAssertEqual(backend.image.bytes(at: 64 * 512, count: 8192), [UInt8](repeating: 0, count: 8192),
                       "discard and write zeroes read back as zeroes")
        XCTAssertEqual(backend.image.bytes(at: 8191 * 512, count: 512), [UInt8](repeating: 0, count: 512), "the straddling write wrote nothing")

        XCTAssertEqual(backend.counter("errors.ioerr"), 2)
        XCTAssertEqual(backend.counter("errors.unsupp"), 2)
        XCTAssertEqual(backend.counter("drop.bad_chain"), 1)
        XCTAssertEqual(backend.counter("get_id"), 1)
        XCTAssertEqual(backend.counter("flushes"), 1)
        XCTAssertEqual(backend.counter("discards"), 1)
        XCTAssertEqual(backend.counter("write_zeroes"), 1)
        XCTAssertEqual(backend.counter("reads") + backend.counter("writes"), 0)
    }

    func testCompletionsOutOfOrderAndHeadsReused() throws {
        try start()
        let big = blkPattern(sector: 0, bytes: 1 << 20, seed: 9)
        backend.image.write(big, at: 0)
        let a = ring.request(type: VirtioBlk.RequestType.input, sector: 0, segments: [1 << 20])
        let b = ring.request(type: VirtioBlk.RequestType.getID, sector: 0, segments: [20])
        let c = ring.request(type: 1234, sector: 0, segments: [])
        let d = ring.request(type: VirtioBlk.RequestType.input, sector: 2048, segments: [4096])
        let used = run([a, b, c, d])
        XCTAssertEqual(used.count, 4)
        // b and c are answered while a and d are with the kernel: they come back first.
        XCTAssertEqual(used.prefix(2).map { $0.id }, [UInt32(b.head), UInt32(c.head)])
        XCTAssertEqual(Set(used.suffix(2).map { $0.id }), [UInt32(a.head), UInt32(d.head)])
        XCTAssertEqual(ring.dataBytes(of: a), big)
        XCTAssertEqual(usedLen(used, a), (1 << 20) + 1)
        XCTAssertEqual(ring.dataBytes(of: d), [UInt8](repeating: 0, count: 4096))

        // The same heads again (their slots were freed), the other way round.
        for r in [d, a] {
            memory.fill(r.data[0].gpa, Int(r.data[0].len), with: 0)
            memory.fill(r.status!, 1, with: 0xee)
        }
        let again = run([d, a])
        XCTAssertEqual(Set(again.map { $0.id }), [UInt32(a.head), UInt32(d.head)])
        XCTAssertEqual(ring.status(of: a), VirtioBlk.Status.ok)
        XCTAssertEqual(ring.dataBytes(of: a), big)
        XCTAssertEqual(backend.counter("reads"), 4)
    }

    func testTheSameHeadOfferedTwiceWhileInFlight() throws {
        try start()
        let data = blkPattern(sector: 16, bytes: 65536)
        backend.image.write(data, at: 16 * 512)
        let r = ring.request(type: VirtioBlk.RequestType.input, sector: 16, segments: [65536])
        ring.publish(r.head)   // run() publishes it a second time: both in one poll
        let used = run([r], expect: 1)
        // Poll a while longer: nothing more may come back.
        backend.poll(queue, seconds: 0.2) { false }
        let late = ring.takeUsed()
        XCTAssertEqual(used.count + late.count, 1, "one completion for the head")
        XCTAssertEqual(backend.counter("drop.bad_chain"), 1, "the second offer is counted")
        XCTAssertEqual(ring.status(of: r), VirtioBlk.Status.ok)
        XCTAssertEqual(ring.dataBytes(of: r), data)
        XCTAssertEqual(backend.counter("reads"), 1)
        // The slot is free again.
        memory.fill(r.status!, 1, with: 0xee)
        XCTAssertEqual(run([r]).count, 1)
        XCTAssertEqual(ring.status(of: r), VirtioBlk.Status.ok)
    }

    func testHeadsPastTheRingAreAnsweredWithoutTouchingSlots() throws {
        try start()
        // A hostile avail ring: heads 256 and 65535 (the ring has 256 entries, the model 256 slots).
        ring.publish(256)
        ring.publish(UInt16.max)
        let ok = ring.request(type: VirtioBlk.RequestType.flush, sector: 0, segments: [])
        ring.publish(ok.head)
        backend.poll(queue, seconds: 0.5) { ring.usedIdx == 1 && backend.counter("flushes") == 1 }
        XCTAssertEqual(backend.counter("drop.bad_chain"), 2)
        XCTAssertEqual(ring.status(of: ok), VirtioBlk.Status.ok)
        let used = ring.takeUsed()
        XCTAssertEqual(used.map { $0.id }, [UInt32(ok.head)], "nothing is returned for heads the device has no slot for")
    }

    func testDrainCompletesEverythingWithTheKernel() throws {
        try start()
        var writes: [BlkPosted] = []
        for i in 0..<8 {
            let sector = UInt64(i) * 128
            writes.append(ring.request(type: VirtioBlk.RequestType.output, sector: sector, segments: [65536],
                                       payload: blkPattern(sector: sector, bytes: 65536, seed: UInt8(i))))
        }
        for w in writes { ring.publish(w.head) }
        XCTAssertEqual(queue.poll(backend.context), 8, "one poll takes all eight")
        XCTAssertEqual(ring.usedIdx, 0, "nothing completed in the poll that submitted them")
        XCTAssertEqual(backend.io.pointee.pending + backend.io.pointee.prepared, 8)
        XCTAssertEqual(backend.counter("inflight"), 8)
        queue.drain(now: Clock.monotonicNanos())
        XCTAssertEqual(backend.io.pointee.pending, 0)
        XCTAssertEqual(backend.counter("inflight"), 0)
        let used = ring.takeUsed()
        XCTAssertEqual(Set(used.map { $0.id }), Set(writes.map { UInt32($0.head) }), "drain publishes every completion")
        for (i, w) in writes.enumerated() {
            XCTAssertEqual(ring.status(of: w), VirtioBlk.Status.ok)
            XCTAssertEqual(backend.image.bytes(at: i * 65536, count: 65536), blkPattern(sector: UInt64(i) * 128, bytes: 65536, seed: UInt8(i)))
        }
        XCTAssertEqual(backend.counter("writes"), 8)
    }

    func testABurstIsAtMost32Requests() throws {
        try start()
        let flushes = (0..<40).map { _ in ring.request(type: VirtioBlk.RequestType.flush, sector: 0, segments: []) }
        for f in flushes { ring.publish(f.head) }
        XCTAssertEqual(queue.poll(backend.context), BlkQueue<UringBackend>.burst)
        XCTAssertEqual(vq.state.pointee.lastAvail, UInt16(BlkQueue<UringBackend>.burst))
        backend.poll(queue) { backend.counter("flushes") == 40 && ring.usedIdx == 40 }
        XCTAssertEqual(ring.takeUsed().count, 40)
        XCTAssertTrue(flushes.allSatisfy { ring.status(of: $0) == VirtioBlk.Status.ok })
    }

    func testAPartitionExportStaysInsideItsRange() throws {
        // Sectors 0..<2048 of the export are bytes [1 MiB, 2 MiB) of a 3 MiB file.
        try start(imageBytes: 3 << 20, offsetBytes: 1 << 20, exportBytes: 1 << 20)
        backend.image.write([UInt8](repeating: 0x11, count: 4096), at: (1 << 20) - 4096)
        backend.image.write([UInt8](repeating: 0x22, count: 4096), at: 2 << 20)
        let first = ring.request(type: VirtioBlk.RequestType.output, sector: 0, segments: [4096],
                                 payload: blkPattern(sector: 0, bytes: 4096))
        let last = ring.request(type: VirtioBlk.RequestType.output, sector: 2040, segments: [4096],
                                payload: blkPattern(sector: 2040, bytes: 4096))
        let past = ring.request(type: VirtioBlk.RequestType.output, sector: 2041, segments: [4096],
                                payload: [UInt8](repeating: 0xff, count: 4096))
        let readPast = ring.request(type: VirtioBlk.RequestType.input, sector: 2048, segments: [512])
        let h = ring.header(type: VirtioBlk.RequestType.writeZeroes, sector: 0)
        var seg = [UInt8](repeating: 0, count: 16)
        seg[0] = 0xfc; seg[1] = 0x07; seg[8] = 8   // sector 2044, 8 sectors: past the end
        let segGPA = memory.alloc(16)
        memory.write(seg, at: segGPA)
        let st = ring.statusByte()
        let zeroesPast = BlkPosted(head: ring.chain([BlkBuf(gpa: h, len: 16, write: false), BlkBuf(gpa: segGPA, len: 16, write: false),
                                                     BlkBuf(gpa: st, len: 1, write: true)]), header: h, data: [], status: st)
        _ = run([first, last, past, readPast, zeroesPast])
        XCTAssertEqual(ring.status(of: first), VirtioBlk.Status.ok)
        XCTAssertEqual(ring.status(of: last), VirtioBlk.Status.ok)
        XCTAssertEqual(ring.status(of: past), VirtioBlk.Status.ioErr)
        XCTAssertEqual(ring.status(of: readPast), VirtioBlk.Status.ioErr)
        XCTAssertEqual(ring.status(of: zeroesPast), VirtioBlk.Status.ioErr)
        XCTAssertEqual(backend.image.bytes(at: 1 << 20, count: 4096), blkPattern(sector: 0, bytes: 4096))
        XCTAssertEqual(backend.image.bytes(at: (1 << 20) + 2040 * 512, count: 4096), blkPattern(sector: 2040, bytes: 4096))
        XCTAssertEqual(backend.image.bytes(at: (1 << 20) - 4096, count: 4096), [UInt8](repeating: 0x11, count: 4096), "before the export")
        XCTAssertEqual(backend.image.bytes(at: 2 << 20, count: 4096), [UInt8](repeating: 0x22, count: 4096), "after the export")
    }

    func testReadOnlyExportRefusesWritesAndKeepsTheFile() throws {
        try start(readOnly: true)
        let w = ring.request(type: VirtioBlk.RequestType.output, sector: 0, segments: [4096], payload: [UInt8](repeating: 0x5a, count: 4096))
        let r = ring.request(type: VirtioBlk.RequestType.input, sector: 0, segments: [4096])
        _ = run([w, r])
        XCTAssertEqual(ring.status(of: w), VirtioBlk.Status.ioErr)
        XCTAssertEqual(ring.status(of: r), VirtioBlk.Status.ok)
        XCTAssertEqual(backend.image.bytes(at: 0, count: 4096), [UInt8](repeating: 0, count: 4096))
        XCTAssertEqual(backend.counter("errors.ioerr"), 1)
        XCTAssertEqual(backend.model.features & VirtioBlk.Feature.ro, VirtioBlk.Feature.ro, "VIRTIO_BLK_F_RO offered")
        XCTAssertEqual(backend.model.features & (VirtioBlk.Feature.discard | VirtioBlk.Feature.writeZeroes), 0)
    }

    /// virtio puts no alignment rule on data buffers: a write whose data follows the header
    /// in one descriptor (data at +16) and a read into a buffer at an odd address must work
    /// whether or not the disk was opened with O_DIRECT.
    func testUnalignedGuestBuffers() throws {
        try start()
        let data = blkPattern(sector: 4, bytes: 1024, seed: 5)
        let buf = memory.alloc(16 + 1024)
        memory.write(memory.read(ring.header(type: VirtioBlk.RequestType.output, sector: 4), 16) + data, at: buf)
        let st = ring.statusByte()
        let w = BlkPosted(head: ring.chain([BlkBuf(gpa: buf, len: 16 + 1024, write: false), BlkBuf(gpa: st, len: 1, write: true)]),
                          header: buf, data: [], status: st)
        _ = run([w])
        XCTAssertEqual(ring.status(of: w), VirtioBlk.Status.ok, "write with data at +16 (O_DIRECT: \(backend.file.directIO))")
        XCTAssertEqual(backend.image.bytes(at: 4 * 512, count: 1024), data)

        let odd = memory.alloc(1024 + 1) + 1
        let h = ring.header(type: VirtioBlk.RequestType.input, sector: 4), st2 = ring.statusByte()
        let r = BlkPosted(head: ring.chain([BlkBuf(gpa: h, len: 16, write: false), BlkBuf(gpa: odd, len: 1024, write: true),
                                            BlkBuf(gpa: st2, len: 1, write: true)]), header: h, data: [BlkBuf(gpa: odd, len: 1024, write: true)], status: st2)
        _ = run([r])
        XCTAssertEqual(ring.status(of: r), VirtioBlk.Status.ok, "read into a buffer at an odd address (O_DIRECT: \(backend.file.directIO))")
        XCTAssertEqual(ring.dataBytes(of: r), data)
    }
}
