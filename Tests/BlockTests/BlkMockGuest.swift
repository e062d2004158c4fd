// A small mock virtio-blk driver for BlockTests: guest memory in a memfd (mapped here,
// and either mapped for the device through a `GuestMemoryMap` or handed to a
// `VhostUserDevice` with SET_MEM_TABLE), one split ring inside it, and requests laid
// out as the test asks (header, data and status in any descriptors, direct or indirect).
#if canImport(Glibc)
import Glibc
#endif
import Block
import CSluice
import Foundation
import Memory
import Platform
import Ports
import Stats
import Virtio
import VhostUser
import XCTest

struct BlkMockError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Guest memory: one memfd region at guest-physical `gpaBase`, with a bump allocator.
final class BlkGuestMemory {
    static let gpaBase: UInt64 = 0x4000_0000
    static let userBase: UInt64 = 0x7f20_0000_0000

    /// The memfd (kept open: dup it for SET_MEM_TABLE).
    let fd: Int32
    let size: Int
    /// This test's own mapping of the memfd.
    let host: UnsafeMutableRawPointer
    /// The device-side view (for tests that drive a `Virtqueue` directly).
    let map: GuestMemoryMap
    private var nextOffset = 0

    init(size: Int = 8 << 20) throws {
        fd = sl_memfd_create("blk-mock-guest", sl_memfd_cloexec_flag())
        guard fd >= 0, ftruncate(fd, off_t(size)) == 0 else { throw BlkMockError("memfd: errno \(errno)") }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw BlkMockError("mmap: errno \(errno)")
        }
        host = p
        self.size = size
        map = GuestMemoryMap(maxRegions: 2)
        try map.add(guestPhys: Self.gpaBase, size: UInt64(size), userAddr: Self.userBase, mmapOffset: 0, fd: dup(fd))
    }

    deinit {
        munmap(host, size)
        close(fd)
    }

    var end: UInt64 { Self.gpaBase + UInt64(size) }

    /// The region as SET_MEM_TABLE describes it.
    var region: MemoryRegionDescriptor {
        MemoryRegionDescriptor(guestPhysAddr: Self.gpaBase, memorySize: UInt64(size), userspaceAddr: Self.userBase, mmapOffset: 0)
    }

    func user(_ gpa: UInt64) -> UInt64 { gpa - Self.gpaBase + Self.userBase }

    /// `bytes` of guest memory aligned to `align` (data buffers: 4096, so O_DIRECT takes them).
    func alloc(_ bytes: Int, align: Int = 4096) -> UInt64 {
        let start = (nextOffset + align - 1) / align * align
        precondition(start + bytes <= size, "mock guest memory exhausted")
        nextOffset = start + max(bytes, 1)
        return Self.gpaBase + UInt64(start)
    }

    func pointer(_ gpa: UInt64) -> UnsafeMutableRawPointer {
        precondition(gpa >= Self.gpaBase && gpa < end, "gpa 0x\(String(gpa, radix: 16)) outside mock guest memory")
        return host + Int(gpa - Self.gpaBase)
    }

    func write(_ bytes: [UInt8], at gpa: UInt64) {
        bytes.withUnsafeBytes { if $0.count > 0 { pointer(gpa).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    }

    func read(_ gpa: UInt64, _ len: Int) -> [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: pointer(gpa), count: len))
    }

    func fill(_ gpa: UInt64, _ len: Int, with byte: UInt8) {
        pointer(gpa).initializeMemory(as: UInt8.self, repeating: byte, count: len)
    }

    /// The device's pointer for `gpa` (its mapping of the same memfd is elsewhere).
    func devicePointer(_ gpa: UInt64) -> UnsafeMutableRawPointer? { map.table.translate(gpa, 1) }
}

/// One buffer of a chain, as the driver describes it.
struct BlkBuf {
    var gpa: UInt64
    var len: UInt32
    var write: Bool
}

/// A request laid out in guest memory: where its pieces are.
struct BlkPosted {
    var head: UInt16
    var header: UInt64
    /// The data buffers (device-readable for OUT, device-writable for IN), in order.
    var data: [BlkBuf]
    /// The status byte (nil when the chain has none).
    var status: UInt64?
}

/// The driver's side of one split ring of `size` entries in `memory`.
final class BlkRing {
    let memory: BlkGuestMemory
    let size: UInt16
    let descGPA: UInt64, availGPA: UInt64, usedGPA: UInt64
    private(set) var availIdx: UInt16 = 0
    var lastUsed: UInt16 = 0
    var nextDesc: UInt16 = 0

    init(memory: BlkGuestMemory, size: UInt16 = 256) {
        self.memory = memory
        self.size = size
        descGPA = memory.alloc(16 * Int(size), align: 4096)
        availGPA = memory.alloc(6 + 2 * Int(size), align: 4096)
        usedGPA = memory.alloc(6 + 8 * Int(size), align: 4096)
    }

    /// A device-side queue over this ring (for tests that drive a `Virtqueue` directly).
    func makeVirtqueue(indirect: Bool = true) -> Virtqueue {
        let q = Virtqueue.allocate()
        let s = q.state
        s.pointee.desc = memory.devicePointer(descGPA)
        s.pointee.avail = memory.devicePointer(availGPA)
        s.pointee.used = memory.devicePointer(usedGPA)
        s.pointee.memory = memory.map.table
        s.pointee.size = size
        s.pointee.mask = size &- 1
        s.pointee.indirect = indirect
        s.pointee.addressed = true
        s.pointee.started = true
        s.pointee.enabled = true
        return q
    }

    /// The ring's addresses as SET_VRING_ADDR gives them (front-end user addresses).
    func address(index: UInt32) -> VringAddress {
        VringAddress(index: index, desc: memory.user(descGPA), used: memory.user(usedGPA), avail: memory.user(availGPA))
    }

    func setDesc(_ i: UInt16, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16 = 0) {
        Self.writeDesc(memory.pointer(descGPA) + Int(i) * 16, addr: addr, len: len, flags: flags, next: next)
    }

    static func writeDesc(_ p: UnsafeMutableRawPointer, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        p.storeBytes(of: addr.littleEndian, as: UInt64.self)
        p.storeBytes(of: len.littleEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: flags.littleEndian, toByteOffset: 12, as: UInt16.self)
        p.storeBytes(of: next.littleEndian, toByteOffset: 14, as: UInt16.self)
    }

    /// Link `bufs` into a chain of the descriptor table starting at `head` (default: the
    /// next free slots, round robin); returns the head.
    @discardableResult
    func chain(_ bufs: [BlkBuf], head: UInt16? = nil) -> UInt16 {
        precondition(!bufs.isEmpty)
        let first = head ?? nextDesc
        var slots: [UInt16] = []
        for k in 0..<bufs.count { slots.append((first &+ UInt16(k)) & (size &- 1)) }
        if head == nil { nextDesc = (first &+ UInt16(bufs.count)) & (size &- 1) }
        for (k, b) in bufs.enumerated() {
            var flags: UInt16 = b.write ? VringDescFlag.write : 0
            if k + 1 < bufs.count { flags |= VringDescFlag.next }
            setDesc(slots[k], addr: b.gpa, len: b.len, flags: flags, next: k + 1 < bufs.count ? slots[k + 1] : 0)
        }
        return first
    }

    /// Put `bufs` in an indirect table (fresh guest memory) behind one descriptor.
    @discardableResult
    func indirectChain(_ bufs: [BlkBuf], head: UInt16? = nil) -> UInt16 {
        let table = memory.alloc(16 * bufs.count, align: 16)
        for (k, b) in bufs.enumerated() {
            var flags: UInt16 = b.write ? VringDescFlag.write : 0
            if k + 1 < bufs.count { flags |= VringDescFlag.next }
            Self.writeDesc(memory.pointer(table) + 16 * k, addr: b.gpa, len: b.len, flags: flags, next: UInt16(k + 1))
        }
        let h = head ?? nextDesc
        if head == nil { nextDesc = (h &+ 1) & (size &- 1) }
        setDesc(h, addr: table, len: UInt32(16 * bufs.count), flags: VringDescFlag.indirect)
        return h
    }

    /// Put `head` in the next avail slot and publish avail.idx.
    func publish(_ head: UInt16) {
        memory.pointer(availGPA).storeBytes(of: head.littleEndian, toByteOffset: 4 + Int(availIdx & (size &- 1)) * 2, as: UInt16.self)
        availIdx &+= 1
        sl_store_release_u16(memory.pointer(availGPA) + 2, availIdx)
    }

    var usedIdx: UInt16 { sl_load_acquire_u16(memory.pointer(usedGPA) + 2) }

    func usedEntry(_ idx: UInt16) -> (id: UInt32, len: UInt32) {
        let e = memory.pointer(usedGPA) + 4 + Int(idx & (size &- 1)) * 8
        return (e.load(as: UInt32.self), e.load(fromByteOffset: 4, as: UInt32.self))
    }

    /// Used entries published since the last call.
    func takeUsed() -> [(id: UInt32, len: UInt32)] {
        var out: [(id: UInt32, len: UInt32)] = []
        let end = usedIdx
        while lastUsed != end {
            out.append(usedEntry(lastUsed))
            lastUsed &+= 1
        }
        return out
    }

    // MARK: Requests

    /// A 16-byte `virtio_blk_outhdr` in fresh guest memory.
    func header(type: UInt32, sector: UInt64) -> UInt64 {
        let gpa = memory.alloc(16, align: 16)
        var b: [UInt8] = []
        for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: type >> (8 * UInt32(i)))) }
        b += [0, 0, 0, 0]   // ioprio
        for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: sector >> (8 * UInt64(i)))) }
        memory.write(b, at: gpa)
        return gpa
    }

    /// A status byte in fresh guest memory, preset to 0xee (so "not written" shows).
    func statusByte() -> UInt64 {
        let gpa = memory.alloc(1, align: 1)
        memory.fill(gpa, 1, with: 0xee)
        return gpa
    }

    /// The usual layout: header, data in `segments` pieces (sizes given, 4096-aligned
    /// buffers; readable for OUT-like types, writable for IN/GET_ID), status; `payload`
    /// fills readable data. Not published.
    func request(type: UInt32, sector: UInt64, segments: [Int], payload: [UInt8] = [], indirect: Bool = false,
                 head: UInt16? = nil) -> BlkPosted {
        let deviceWrites = type == VirtioBlk.RequestType.input || type == VirtioBlk.RequestType.getID
        let h = header(type: type, sector: sector)
        var data: [BlkBuf] = []
        var at = 0
        for n in segments {
            let gpa = memory.alloc(n)
            if deviceWrites {
                memory.fill(gpa, n, with: 0xa5)
            } else {
                let piece = Array(payload[min(at, payload.count)..<min(at + n, payload.count)])
                memory.write(piece, at: gpa)
            }
            at += n
            data.append(BlkBuf(gpa: gpa, len: UInt32(n), write: deviceWrites))
        }
        let st = statusByte()
        let bufs = [BlkBuf(gpa: h, len: 16, write: false)] + data + [BlkBuf(gpa: st, len: 1, write: true)]
        let hd = indirect ? indirectChain(bufs, head: head) : chain(bufs, head: head)
        return BlkPosted(head: hd, header: h, data: data, status: st)
    }

    func status(of r: BlkPosted) -> UInt8? { r.status.map { memory.read($0, 1)[0] } }

    /// The bytes the data buffers of `r` hold now.
    func dataBytes(of r: BlkPosted) -> [UInt8] {
        r.data.flatMap { memory.read($0.gpa, Int($0.len)) }
    }
}

/// A recognisable payload: byte i of sector s depends on both and on `seed`.
func blkPattern(sector: UInt64, bytes: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<bytes).map { i in
        UInt8(truncatingIfNeeded: (Int(sector) + i / 512) &* 131 &+ (i % 512) &* 7 &+ Int(seed) &* 29 &+ 1)
    }
}

/// A temporary disk image of `bytes` (zeroes), removed by `remove()`.
final class BlkTempImage {
    let path: String
    let directory: String

    init(bytes: Int) throws {
        directory = NSTemporaryDirectory() + "sluice-blktest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/disk.img"
        guard FileManager.default.createFile(atPath: path, contents: nil), truncate(path, off_t(bytes)) == 0 else {
            throw BlkMockError("cannot create \(path)")
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    /// What the file holds at `offset` (plain pread, not through the export).
    func bytes(at offset: Int, count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, off_t(offset)) }
        return n == count ? out : []
    }

    func write(_ bytes: [UInt8], at offset: Int) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
    }
}

/// What a blk queue test needs around a `VirtioBlkModel`: the disk image, the model (its
/// io_uring per queue), counters in a real stats segment (unlinked at once), a worker
/// context, and polling with a deadline.
final class BlkTestBackend {
    let image: BlkTempImage
    let file: BlockFile
    let target: BlockTarget
    let device: VhostUserDevice
    let model: VirtioBlkModel
    let stats: StatsWriter
    let pool: Mempool
    /// Queue 0's counters by name (`BlkCounters.names`).
    private(set) var counters: [String: StatsCounter] = [:]
    static let serial = "vm1-disk0"

    init(imageBytes: Int = 4 << 20, offsetBytes: UInt64 = 0, exportBytes: UInt64? = nil, readOnly: Bool = false,
         queueSize: Int = 256) throws {
        image = try BlkTempImage(bytes: imageBytes)
        file = try BlockFile(path: image.path, writable: !readOnly)
        target = BlockTarget(fd: file.fd, offsetBytes: offsetBytes, sizeBytes: exportBytes ?? (UInt64(imageBytes) - offsetBytes),
                             readOnly: readOnly, blockSize: 512, isBlockDevice: false)
        device = try VhostUserDevice.blk(BlkDeviceSpec(name: "t", queues: 1, queueSize: queueSize, maxRegions: 8,
                                                       serial: Self.serial, target: target))
        model = device.blkModel!
        stats = try StatsWriter(path: NSTemporaryDirectory() + "sluice-blktest-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).stats",
                                slots: 1)
        stats.remove()
        pool = try Mempool(name: "blktest", count: 64, caches: 1, policy: .off)
        var list: [StatsCounter] = []
        for name in BlkCounters.allNames {
            let c = stats.counter(try stats.register("blk.t.\(name)", kind: BlkCounters.kind(name)), slot: 0)
            counters[name] = c
            list.append(c)
        }
        model.io[0].pointee.counters.latency.free()   // the placeholder, as the engine does
        model.io[0].pointee.counters = BlkCounters(list)
    }

    deinit { image.remove() }

    var io: UnsafeMutablePointer<BlkIO> { model.io[0] }
    var uring: UringBackend { (model.backends[0] as! UringBackendControl).backend }

    func counter(_ name: String) -> UInt64 { counters[name]!.value }

    var context: WorkerContext {
        WorkerContext(worker: 0, cache: pool.cache(0), now: Clock.monotonicNanos(), eventMode: false, allocFail: .discard)
    }

    /// Poll `queue` until `done()` or `seconds` pass; false on timeout.
    @discardableResult
    func poll(_ queue: BlkQueue<UringBackend>, seconds: Double = 5, until done: () -> Bool) -> Bool {
        let deadline = Clock.monotonicNanos() + UInt64(seconds * 1e9)
        while !done() {
            if Clock.monotonicNanos() > deadline { return false }
            if queue.poll(context) == 0 { usleep(100) }
        }
        return true
    }
}
