// A mock guest driver for device-side tests: guest memory in a memfd mapped
// through `GuestMemoryMap`, split rings laid out inside it, and the driver's
// half of the ring protocol (post chains, publish avail.idx, read the used ring).
//
// The same file lives in VirtioTests and SwitchingTests (each test target needs
// its own copy); keep the two identical.
#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Virtio

struct MockError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A fresh memfd of `size` bytes (the caller closes it).
func makeMemfd(size: Int, name: String = "mock-guest") throws -> Int32 {
    let fd = sl_memfd_create(name, sl_memfd_cloexec_flag())
    guard fd >= 0 else { throw MockError("memfd_create failed: errno \(errno)") }
    guard ftruncate(fd, off_t(size)) == 0 else { close(fd); throw MockError("ftruncate failed: errno \(errno)") }
    return fd
}

/// Guest memory: one memfd region at guest-physical `gpaBase` (so addresses below
/// it are outside guest memory), plus optional extra regions, with a bump
/// allocator for rings and buffers.
final class MockMemory {
    static let gpaBase: UInt64 = 0x4000_0000
    static let userBase: UInt64 = 0x7f00_0000_0000

    let map: GuestMemoryMap
    let size: Int
    /// Host address of guest-physical `gpaBase`.
    let host: UnsafeMutableRawPointer
    private var nextOffset = 0
    /// Extra regions: (gpa, size, host).
    private(set) var extra: [(gpa: UInt64, size: UInt64, host: UnsafeMutableRawPointer)] = []

    init(size: Int = 4 << 20, maxRegions: Int = 8) throws {
        let fd = try makeMemfd(size: size)
        defer { close(fd) }
        map = GuestMemoryMap(maxRegions: maxRegions)
        // `add` consumes its fd: hand it a dup.
        try map.add(guestPhys: Self.gpaBase, size: UInt64(size), userAddr: Self.userBase, mmapOffset: 0, fd: dup(fd))
        guard let p = map.table.translate(Self.gpaBase, 1) else { throw MockError("region does not translate") }
        host = p
        self.size = size
    }

    var table: GuestMemoryTable { map.table }
    /// One past the last guest-physical byte of the main region.
    var end: UInt64 { Self.gpaBase + UInt64(size) }

    /// Map another region of `size` bytes at `gpa` (default: right after the main one).
    @discardableResult
    func addRegion(size: Int, at gpa: UInt64? = nil) throws -> UInt64 {
        let where_ = gpa ?? (extra.last.map { $0.gpa + $0.size } ?? end)
        let fd = try makeMemfd(size: size, name: "mock-guest-extra")
        defer { close(fd) }
        try map.add(guestPhys: where_, size: UInt64(size), userAddr: Self.userBase + where_, mmapOffset: 0, fd: dup(fd))
        guard let p = map.table.translate(where_, 1) else { throw MockError("extra region does not translate") }
        extra.append((where_, UInt64(size), p))
        return where_
    }

    /// Allocate `bytes` of guest memory aligned to `align`; returns its guest-physical address.
    func alloc(_ bytes: Int, align: Int = 16) -> UInt64 {
        let start = (nextOffset + align - 1) / align * align
        precondition(start + bytes <= size, "mock guest memory exhausted (\(size) bytes)")
        nextOffset = start + bytes
        return Self.gpaBase + UInt64(start)
    }

    /// Host pointer of a guest-physical address inside some region.
    func pointer(_ gpa: UInt64) -> UnsafeMutableRawPointer {
        if gpa >= Self.gpaBase && gpa < end { return host + Int(gpa - Self.gpaBase) }
        for r in extra where gpa >= r.gpa && gpa < r.gpa + r.size { return r.host + Int(gpa - r.gpa) }
        preconditionFailure("gpa 0x\(String(gpa, radix: 16)) is not in mock guest memory")
    }

    func write(_ bytes: [UInt8], at gpa: UInt64) {
        bytes.withUnsafeBytes { pointer(gpa).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    func read(_ gpa: UInt64, _ len: Int) -> [UInt8] {
        let p = pointer(gpa)
        return (0..<len).map { p.load(fromByteOffset: $0, as: UInt8.self) }
    }

    func fill(_ gpa: UInt64, _ len: Int, with byte: UInt8) {
        pointer(gpa).initializeMemory(as: UInt8.self, repeating: byte, count: len)
    }
}

/// What the mock guest negotiated, as the device's queue state records it.
struct GuestFeatures {
    var headerSize = 12
    var mergeable = false
    var guestCsum = false
    var eventIdx = false
    var indirect = true
}

/// One descriptor as the driver writes it.
struct Desc {
    var addr: UInt64
    var len: UInt32
    var flags: UInt16 = 0
    var next: UInt16 = 0
}

/// The driver's side of one split virtqueue, plus the device's `Virtqueue` over it.
final class MockQueue {
    let memory: MockMemory
    let size: UInt16
    let descGPA: UInt64
    let availGPA: UInt64
    let usedGPA: UInt64
    /// The device-side queue (state filled as a negotiated, running queue).
    let queue: Virtqueue
    /// The driver's shadow of avail.idx.
    private(set) var availIdx: UInt16 = 0
    /// used.idx the driver has read up to.
    var lastUsed: UInt16 = 0
    private var nextDesc: UInt16 = 0
    /// Buffers of every chain posted, by head (to read back what the device wrote).
    private(set) var buffers: [UInt16: [(gpa: UInt64, len: UInt32)]] = [:]

    init(memory: MockMemory, size: UInt16 = 256, features: GuestFeatures = GuestFeatures()) {
        precondition(size > 0 && size & (size &- 1) == 0)
        self.memory = memory
        self.size = size
        let n = Int(size)
        descGPA = memory.alloc(16 * n, align: 16)
        availGPA = memory.alloc(6 + 2 * n, align: 2)
        usedGPA = memory.alloc(6 + 8 * n, align: 4)
        queue = Virtqueue.allocate()
        let s = queue.state
        s.pointee.desc = memory.pointer(descGPA)
        s.pointee.avail = memory.pointer(availGPA)
        s.pointee.used = memory.pointer(usedGPA)
        s.pointee.memory = memory.table
        s.pointee.size = size
        s.pointee.mask = size &- 1
        s.pointee.headerSize = features.headerSize
        s.pointee.mergeable = features.mergeable
        s.pointee.guestCsum = features.guestCsum
        s.pointee.eventIdx = features.eventIdx
        s.pointee.indirect = features.indirect
        s.pointee.addressed = true
        s.pointee.started = true
        s.pointee.enabled = true
    }

    deinit { queue.deallocate() }

    var state: UnsafeMutablePointer<VirtqueueState> { queue.state }

    // MARK: Descriptors

    func setDescriptor(_ i: UInt16, _ d: Desc) {
        precondition(i < size)
        writeDescriptor(memory.pointer(descGPA) + Int(i) * 16, d)
    }

    func descriptor(_ i: UInt16) -> Desc {
        let p = memory.pointer(descGPA) + Int(i) * 16
        return Desc(addr: p.loadUnaligned(as: UInt64.self), len: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
                    flags: p.loadUnaligned(fromByteOffset: 12, as: UInt16.self),
                    next: p.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
    }

    /// Write a descriptor table (an indirect table) at `gpa`.
    func writeTable(_ descs: [Desc], at gpa: UInt64) {
        for (i, d) in descs.enumerated() { writeDescriptor(memory.pointer(gpa) + i * 16, d) }
    }

    private func writeDescriptor(_ p: UnsafeMutableRawPointer, _ d: Desc) {
        p.storeBytes(of: d.addr.littleEndian, as: UInt64.self)
        p.storeBytes(of: d.len.littleEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: d.flags.littleEndian, toByteOffset: 12, as: UInt16.self)
        p.storeBytes(of: d.next.littleEndian, toByteOffset: 14, as: UInt16.self)
    }

    /// The next free descriptor slot (slots are handed out round-robin).
    func takeDescriptorSlot() -> UInt16 {
        let i = nextDesc
        nextDesc = (nextDesc &+ 1) & (size &- 1)
        return i
    }

    /// Link `bufs` into a chain in the descriptor table; returns the head (not published).
    func makeChain(_ bufs: [(gpa: UInt64, len: UInt32)], writable: Bool) -> UInt16 {
        precondition(!bufs.isEmpty)
        let slots = bufs.map { _ in takeDescriptorSlot() }
        for (k, b) in bufs.enumerated() {
            var flags: UInt16 = writable ? VringDescFlag.write : 0
            if k + 1 < bufs.count { flags |= VringDescFlag.next }
            setDescriptor(slots[k], Desc(addr: b.gpa, len: b.len, flags: flags, next: k + 1 < bufs.count ? slots[k + 1] : 0))
        }
        buffers[slots[0]] = bufs
        return slots[0]
    }

    /// Put `bufs` in an indirect table (in fresh guest memory) behind one descriptor.
    func makeIndirectChain(_ bufs: [(gpa: UInt64, len: UInt32)], writable: Bool) -> UInt16 {
        let table = memory.alloc(16 * bufs.count, align: 16)
        var descs: [Desc] = []
        for (k, b) in bufs.enumerated() {
            var flags: UInt16 = writable ? VringDescFlag.write : 0
            if k + 1 < bufs.count { flags |= VringDescFlag.next }
            descs.append(Desc(addr: b.gpa, len: b.len, flags: flags, next: UInt16(k + 1 < bufs.count ? k + 1 : 0)))
        }
        writeTable(descs, at: table)
        let head = takeDescriptorSlot()
        setDescriptor(head, Desc(addr: table, len: UInt32(16 * bufs.count), flags: VringDescFlag.indirect))
        buffers[head] = bufs
        return head
    }

    // MARK: Avail ring

    /// Put `head` in the next avail slot and publish avail.idx (release).
    func publish(_ head: UInt16) {
        memory.pointer(availGPA).storeBytes(of: head, toByteOffset: 4 + Int(availIdx & (size &- 1)) * 2, as: UInt16.self)
        availIdx &+= 1
        sl_store_release_u16(memory.pointer(availGPA) + 2, availIdx)
    }

    /// Write avail slot `slot` without publishing (a hostile guest's raw write).
    func setAvailSlot(_ slot: Int, head: UInt16) {
        memory.pointer(availGPA).storeBytes(of: head, toByteOffset: 4 + (slot & Int(size &- 1)) * 2, as: UInt16.self)
    }

    /// Overwrite avail.idx with any value (a hostile guest).
    func setAvailIdx(_ v: UInt16) {
        availIdx = v
        sl_store_release_u16(memory.pointer(availGPA) + 2, v)
    }

    /// Start both indices at `base` (as after SET_VRING_BASE), to test wrap-around.
    func setBase(_ base: UInt16) {
        availIdx = base
        lastUsed = base
        sl_store_release_u16(memory.pointer(availGPA) + 2, base)
        sl_store_release_u16(memory.pointer(usedGPA) + 2, base)
        state.pointee.lastAvail = base
        state.pointee.usedIdx = base
        state.pointee.signalledUsed = base
    }

    var availFlags: UInt16 {
        get { memory.pointer(availGPA).load(as: UInt16.self) }
        set { memory.pointer(availGPA).storeBytes(of: newValue, as: UInt16.self) }
    }

    /// used_event: the trailing u16 of the avail ring.
    var usedEvent: UInt16 {
        get { memory.pointer(availGPA).load(fromByteOffset: 4 + 2 * Int(size), as: UInt16.self) }
        set { memory.pointer(availGPA).storeBytes(of: newValue, toByteOffset: 4 + 2 * Int(size), as: UInt16.self) }
    }

    // MARK: Used ring

    var usedIdx: UInt16 { sl_load_acquire_u16(memory.pointer(usedGPA) + 2) }
    var usedFlags: UInt16 { memory.pointer(usedGPA).load(as: UInt16.self) }
    /// avail_event: the trailing u16 of the used ring.
    var availEvent: UInt16 { memory.pointer(usedGPA).load(fromByteOffset: 4 + 8 * Int(size), as: UInt16.self) }

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

    /// The first `len` bytes the device wrote into the chain at `head`.
    func readChain(_ head: UInt16, _ len: Int) -> [UInt8] {
        var out: [UInt8] = []
        for b in buffers[head] ?? [] where out.count < len {
            out += memory.read(b.gpa, min(Int(b.len), len - out.count))
        }
        return out
    }

    // MARK: Frames

    /// Post a TX frame: `header` (zero-padded to the header size) then `frame`,
    /// cut into buffers of the given sizes (the last takes the rest).
    @discardableResult
    func postTX(_ frame: [UInt8], header: [UInt8]? = nil, split: [Int] = [], indirect: Bool = false,
                publish doPublish: Bool = true) -> UInt16 {
        let h = state.pointee.headerSize
        var bytes = header ?? []
        bytes += [UInt8](repeating: 0, count: max(0, h - bytes.count))
        bytes = Array(bytes.prefix(h)) + frame
        var bufs: [(gpa: UInt64, len: UInt32)] = []
        var offset = 0
        for piece in split where offset + piece < bytes.count {
            bufs.append(placeBytes(Array(bytes[offset..<(offset + piece)])))
            offset += piece
        }
        bufs.append(placeBytes(Array(bytes[offset...])))
        let head = indirect ? makeIndirectChain(bufs, writable: false) : makeChain(bufs, writable: false)
        if doPublish { publish(head) }
        return head
    }

    /// Post `count` RX chains, each of `segments` writable buffers of `bufferSize` bytes
    /// (pre-filled with 0xa5 so stale bytes show).
    @discardableResult
    func postRX(bufferSize: Int, count: Int = 1, segments: Int = 1, indirect: Bool = false) -> [UInt16] {
        (0..<count).map { _ in
            let bufs = (0..<segments).map { _ -> (gpa: UInt64, len: UInt32) in
                let gpa = memory.alloc(bufferSize)
                memory.fill(gpa, bufferSize, with: 0xa5)
                return (gpa, UInt32(bufferSize))
            }
            let head = indirect ? makeIndirectChain(bufs, writable: true) : makeChain(bufs, writable: true)
            publish(head)
            return head
        }
    }

    private func placeBytes(_ b: [UInt8]) -> (gpa: UInt64, len: UInt32) {
        let gpa = memory.alloc(max(b.count, 1))
        memory.write(b, at: gpa)
        return (gpa, UInt32(b.count))
    }
}

/// A virtio-net header of `size` bytes (10 or 12), little endian.
func netHeader(flags: UInt8 = 0, gsoType: UInt8 = 0, hdrLen: UInt16 = 0, gsoSize: UInt16 = 0,
               csumStart: UInt16 = 0, csumOffset: UInt16 = 0, numBuffers: UInt16 = 0, size: Int = 12) -> [UInt8] {
    var h: [UInt8] = [flags, gsoType]
    for v in [hdrLen, gsoSize, csumStart, csumOffset, numBuffers] { h += [UInt8(v & 0xff), UInt8(v >> 8)] }
    return Array(h.prefix(size))
}

/// An Ethernet frame of `length` bytes with a recognisable pattern.
func testFrame(_ length: Int, seed: UInt8 = 0) -> [UInt8] {
    precondition(length >= 14)
    var f: [UInt8] = [0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xb5]
    f += (14..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ 1) }
    return f
}
