// Inflight tracking of a blk device through its vhost-user messages: GET/SET_INFLIGHT_FD,
// requests taken and completed as the area records them, and a back-end that "crashes"
// (is dropped without completing) replaced by a new device adopting the same area: the
// requests it left are served again, oldest first, and lastAvail skips them.
#if canImport(Glibc)
import Glibc
#endif
import Block
import CSluice
import Memory
import Platform
import Ports
import Virtio
import VhostUser
import XCTest

final class InflightTests: XCTestCase {
    private var image: BlkTempImage!
    private var file: BlockFile!
    private var memory: BlkGuestMemory!
    private var ring: BlkRing!
    private var pool: Mempool!
    /// The front-end's copy of the area (it keeps the fd across back-end restarts).
    private var areaFD: Int32 = -1
    private var area: UnsafeMutableRawPointer?
    private var areaDescription = InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 1, queueSize: 256)
    private var devices: [VhostUserDevice] = []

    override func setUpWithError() throws {
        image = try BlkTempImage(bytes: 4 << 20)
        file = try BlockFile(path: image.path, writable: true)
        memory = try BlkGuestMemory(size: 8 << 20)
        ring = BlkRing(memory: memory, size: 256)
        pool = try Mempool(name: "inflight", count: 64, caches: 1, policy: .off)
    }

    override func tearDown() {
        // Devices are dropped last to first; a "crashed" one then finishes its requests
        // into memory nobody checks any more.
        while !devices.isEmpty { devices.removeLast() }
        if let area { munmap(area, Int(areaDescription.mmapSize)) }
        if areaFD >= 0 { close(areaFD) }
        ring = nil
        memory = nil
        file = nil
        image?.remove()
    }

    private func done(_ o: VhostUserDevice.Outcome, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        if case .failed(let why) = o { XCTFail("\(what): \(why)", file: file, line: line) }
    }

    private func makeDevice(queues: Int = 1) throws -> VhostUserDevice {
        let target = BlockTarget(fd: file.fd, offsetBytes: 0, sizeBytes: 4 << 20, readOnly: false, blockSize: 512, isBlockDevice: false)
        let d = try VhostUserDevice.blk(BlkDeviceSpec(name: "t", queues: queues, queueSize: 256, maxRegions: 8,
                                                      serial: "s", target: target))
        devices.append(d)
        return d
    }

    /// Connect a device as QEMU's vhost-user-blk does: features, the inflight area (GET
    /// on the first connection, SET every time), memory, queue 0 from `base`, kick, enable.
    private func connect(_ d: VhostUserDevice, base: UInt16 = 0, getArea: Bool) throws {
        done(d.handle(.setOwner), "SET_OWNER")
        guard case .reply(.u64(let offer)) = d.handle(.getProtocolFeatures) else { return XCTFail("GET_PROTOCOL_FEATURES") }
        let want: VhostUserProtocolFeature = [.inflightSHMFD, .config, .mq]
        XCTAssertEqual(offer & want.rawValue, want.rawValue, "the blk device offers INFLIGHT_SHMFD")
        done(d.handle(.setProtocolFeatures(want.rawValue)), "SET_PROTOCOL_FEATURES")
        done(d.handle(.setFeatures(VirtioFeature.version1 | VirtioFeature.indirectDesc | VirtioFeature.protocolFeatures)), "SET_FEATURES")
        if getArea {
            guard case .reply(.inflight(let desc, let fd)) = d.handle(.getInflightFD(areaDescription)) else {
                return XCTFail("GET_INFLIGHT_FD gave no area")
            }
            XCTAssertEqual(desc.numQueues, areaDescription.numQueues)
            XCTAssertGreaterThanOrEqual(Int(desc.mmapSize),
                                        Int(desc.numQueues) * InflightRegion.queueRegionSize(queueSize: Int(desc.queueSize)))
            areaDescription = desc
            // The reply's fd stays the device's (its mapping keeps it): the front-end's own copy.
            areaFD = dup(fd)
            guard let p = mmap(nil, Int(desc.mmapSize), PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(desc.mmapOffset)),
                  p != MAP_FAILED else { return XCTFail("mmap of the inflight area") }
            area = p
        }
        done(d.handle(.setInflightFD(areaDescription, fd: dup(areaFD))), "SET_INFLIGHT_FD")
        done(d.handle(.setMemTable([memory.region], fds: [dup(memory.fd)])), "SET_MEM_TABLE")
        done(d.handle(.setVringNum(VringState(index: 0, num: UInt32(ring.size)))), "SET_VRING_NUM")
        done(d.handle(.setVringAddr(ring.address(index: 0))), "SET_VRING_ADDR")
        done(d.handle(.setVringBase(VringState(index: 0, num: UInt32(base)))), "SET_VRING_BASE")
        done(d.handle(.setVringKick(index: 0, fd: nil)), "SET_VRING_KICK")
        done(d.handle(.setVringEnable(VringState(index: 0, num: 1))), "SET_VRING_ENABLE")
    }

    private func queue(_ d: VhostUserDevice) -> BlkQueue<UringBackend> { d.blkModel!.uringQueue(0)! }

    private var context: WorkerContext {
        WorkerContext(worker: 0, cache: pool.cache(0), now: Clock.monotonicNanos(), eventMode: false, allocFail: .discard)
    }

    private func poll(_ q: BlkQueue<UringBackend>, seconds: Double = 5, until cond: () -> Bool) -> Bool {
        let deadline = Clock.monotonicNanos() + UInt64(seconds * 1e9)
        while !cond() {
            if Clock.monotonicNanos() > deadline { return false }
            if q.poll(context) == 0 { usleep(100) }
        }
        return true
    }

    // The area, queue 0: version u16 @8, desc_num @10, last_batch_head @12, used_idx @14,
    // desc[i] @16+16i {inflight u8, …, counter u64 @8}.
    private func areaU16(_ at: Int, queue: Int = 0) -> UInt16 {
        area!.load(fromByteOffset: queue * InflightRegion.queueRegionSize(queueSize: Int(areaDescription.queueSize)) + at, as: UInt16.self)
    }
    private func inflightFlag(_ head: UInt16) -> UInt8 { area!.load(fromByteOffset: 16 + Int(head) * 16, as: UInt8.self) }
    private func inflightCounter(_ head: UInt16) -> UInt64 { area!.load(fromByteOffset: 16 + Int(head) * 16 + 8, as: UInt64.self) }

    private func write(_ sector: UInt64, head: UInt16, seed: UInt8) -> BlkPosted {
        ring.request(type: VirtioBlk.RequestType.output, sector: sector, segments: [4096],
                     payload: blkPattern(sector: sector, bytes: 4096, seed: seed), head: head)
    }

    func testTheAreaRecordsRequestsUntilTheyComplete() throws {
        let d = try makeDevice()
        try connect(d, getArea: true)
        XCTAssertEqual(areaU16(8), 1, "version set when the queue starts on a new area")
        XCTAssertEqual(areaU16(10), 256, "desc_num")
        let q = queue(d)
        let reqs = [write(0, head: 50, seed: 1), write(8, head: 3, seed: 2), write(16, head: 20, seed: 3)]
        for r in reqs { ring.publish(r.head) }
        XCTAssertEqual(q.poll(context), 3)
        for r in reqs { XCTAssertEqual(inflightFlag(r.head), 1, "head \(r.head) in flight") }
        XCTAssertEqual(reqs.map { inflightCounter($0.head) }, [0, 1, 2], "counters in the order taken")
        XCTAssertTrue(poll(q) { ring.usedIdx == 3 })
        for r in reqs {
            XCTAssertEqual(inflightFlag(r.head), 0, "head \(r.head) completed")
            XCTAssertEqual(ring.status(of: r), VirtioBlk.Status.ok)
        }
        XCTAssertEqual(areaU16(14), 3, "used_idx follows the ring")
        XCTAssertTrue(reqs.map { $0.head }.contains(areaU16(12)), "last_batch_head is one of the heads")
    }

    func testACrashedBackendsRequestsAreServedAgainInOrder() throws {
        let first = try makeDevice()
        try connect(first, getArea: true)
        // Taken in this order: 40 (a write), 7 (GET_ID, answered at once), 22 (a write).
        let a = write(64, head: 40, seed: 7)
        let id = ring.request(type: VirtioBlk.RequestType.getID, sector: 0, segments: [20], head: 7)
        let b = write(72, head: 22, seed: 8)
        for r in [a, id, b] { ring.publish(r.head) }
        XCTAssertEqual(queue(first).poll(context), 3)
        XCTAssertEqual(ring.usedIdx, 1, "only GET_ID completed")
        XCTAssertEqual(ring.takeUsed().map { $0.id }, [7])
        XCTAssertEqual(inflightFlag(40), 1)
        XCTAssertEqual(inflightFlag(22), 1)
        XCTAssertEqual(inflightFlag(7), 0)

        // The back-end dies here: `first` is never polled again. A new one adopts the area;
        // QEMU restarts the ring from used.idx.
        for r in [a, b] { memory.fill(r.status!, 1, with: 0xee) }
        let second = try makeDevice()
        try connect(second, base: ring.usedIdx, getArea: false)
        let s = second.queues[0].state
        XCTAssertEqual(s.pointee.resubmitCount, 2)
        XCTAssertEqual((0..<s.pointee.resubmitCount).map { s.pointee.resubmit![$0] }, [40, 22], "oldest first, not by head")
        XCTAssertEqual(s.pointee.lastAvail, 3, "the avail ring continues after the requests in flight")

        let flush = ring.request(type: VirtioBlk.RequestType.flush, sector: 0, segments: [], head: 60)
        ring.publish(flush.head)
        let q = queue(second)
        var used: [(id: UInt32, len: UInt32)] = []
        XCTAssertTrue(poll(q) { used += ring.takeUsed(); return used.count >= 3 && second.blkModel!.io[0].pointee.pending == 0 })
        _ = poll(q, seconds: 0.1) { false }
        used += ring.takeUsed()
        XCTAssertEqual(used.map { $0.id }.sorted(), [22, 40, 60], "each once; GET_ID not again")
        for r in [a, b, flush] { XCTAssertEqual(ring.status(of: r), VirtioBlk.Status.ok) }
        XCTAssertEqual(image.bytes(at: 64 * 512, count: 4096), blkPattern(sector: 64, bytes: 4096, seed: 7))
        XCTAssertEqual(image.bytes(at: 72 * 512, count: 4096), blkPattern(sector: 72, bytes: 4096, seed: 8))
        for h: UInt16 in [7, 22, 40, 60] { XCTAssertEqual(inflightFlag(h), 0, "head \(h)") }
        XCTAssertEqual(areaU16(14), ring.usedIdx)
    }

    func testAHeadInTheUsedRingButNotTheAreaIsNotServedAgain() throws {
        let first = try makeDevice()
        try connect(first, getArea: true)
        let a = write(0, head: 10, seed: 1)
        let id = ring.request(type: VirtioBlk.RequestType.getID, sector: 0, segments: [20], head: 30)
        ring.publish(a.head)
        ring.publish(id.head)
        XCTAssertEqual(queue(first).poll(context), 2)
        XCTAssertEqual(ring.usedIdx, 1)
        // The crash hit GET_ID's completion after used.idx was published: the area still
        // has it in flight, with the used_idx before it and last_batch_head = 30.
        area!.storeBytes(of: 1, toByteOffset: 16 + 30 * 16, as: UInt8.self)
        area!.storeBytes(of: 0, toByteOffset: 14, as: UInt16.self)
        XCTAssertEqual(areaU16(12), 30)

        let second = try makeDevice()
        try connect(second, base: ring.usedIdx, getArea: false)
        let s = second.queues[0].state
        XCTAssertEqual((0..<s.pointee.resubmitCount).map { s.pointee.resubmit![$0] }, [10], "head 30 was done")
        XCTAssertEqual(s.pointee.lastAvail, 2)
        XCTAssertEqual(inflightFlag(30), 0, "the area is repaired")
        XCTAssertEqual(areaU16(14), 1)
        XCTAssertTrue(poll(queue(second)) { ring.usedIdx == 2 })
        XCTAssertEqual(ring.usedEntry(1).id, 10)
        XCTAssertEqual(ring.status(of: a), VirtioBlk.Status.ok)
        XCTAssertEqual(second.blkModel!.io[0].pointee.pending, 0)
    }

    func testANewAreaServesNothingAgain() throws {
        let d = try makeDevice()
        try connect(d, base: 5, getArea: true)
        let s = d.queues[0].state
        XCTAssertEqual(s.pointee.resubmitCount, 0)
        XCTAssertEqual(s.pointee.lastAvail, 5)
        XCTAssertNotNil(s.pointee.inflight)
        XCTAssertEqual(areaU16(14), 5)
    }

    func testAnAreaTooSmallOrForTooManyQueuesIsRefused() throws {
        let d = try makeDevice()
        try connect(d, getArea: true)
        let fd = sl_memfd_create("small", sl_memfd_cloexec_flag())
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(ftruncate(fd, 4096), 0)
        if case .done = d.handle(.setInflightFD(InflightDescription(mmapSize: 64, mmapOffset: 0, numQueues: 1, queueSize: 256), fd: dup(fd))) {
            XCTFail("an area smaller than one queue's region was taken")
        }
        if case .done = d.handle(.setInflightFD(InflightDescription(mmapSize: 4096, mmapOffset: 0, numQueues: 2, queueSize: 8), fd: dup(fd))) {
            XCTFail("an area for more queues than the device has was taken")
        }
        if case .done = d.handle(.setInflightFD(InflightDescription(mmapSize: 8192, mmapOffset: 0, numQueues: 1, queueSize: 8), fd: dup(fd))) {
            XCTFail("an area larger than its fd was taken")
        }
        close(fd)
    }

    /// The area is shared with the front-end, which may rewrite it at any time: desc_num
    /// in particular. The back-end must not index past its queue's region (nor the
    /// mapping) with heads up to the ring size, whatever desc_num says now.
    func testDescNumRewrittenByTheFrontEndDoesNotMoveWritesOutOfTheRegion() throws {
        let d = try makeDevice(queues: 2)
        // Two queues of 4 descriptors: 128 bytes each; queue 0's ring has 256 entries.
        areaDescription = InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 2, queueSize: 4)
        try connect(d, getArea: true)
        let regionSize = InflightRegion.queueRegionSize(queueSize: 4)
        XCTAssertEqual(regionSize, 128)
        let queue1Before = [UInt8](UnsafeRawBufferPointer(start: area! + regionSize, count: regionSize))
        area!.storeBytes(of: UInt16.max, toByteOffset: 10, as: UInt16.self)   // desc_num of queue 0
        let q = queue(d)
        let flushes = [UInt16(0), 2, 4, 6].map { ring.request(type: VirtioBlk.RequestType.flush, sector: 0, segments: [], head: $0) }
        for f in flushes { ring.publish(f.head) }
        XCTAssertTrue(poll(q) { ring.usedIdx == 4 })
        // Head 6 of queue 0 at 16 + 6 * 16 = 112: inside. Heads past 6 would not be.
        let late = ring.request(type: VirtioBlk.RequestType.flush, sector: 0, segments: [], head: 10)
        ring.publish(late.head)
        XCTAssertTrue(poll(q) { ring.usedIdx == 5 })
        XCTAssertEqual(ring.status(of: late), VirtioBlk.Status.ok)
        let queue1After = [UInt8](UnsafeRawBufferPointer(start: area! + regionSize, count: regionSize))
        XCTAssertEqual(queue1After, queue1Before, "queue 0's head 10 was recorded in queue 1's region")
    }
}
