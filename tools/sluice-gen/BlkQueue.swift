import Block
import VhostUser

/// Deliberate mistakes in a request's chain, for probing a backend's checks.
struct BlkChainShape {
    /// Put a status descriptor at the end of the chain.
    var status = true
    /// Bytes of the status descriptor (1 in a valid request).
    var statusLength: UInt32 = 1
    /// Make the data of a read device-readable (a valid read's is writable).
    var dataReadableForRead = false

    static let valid = BlkChainShape()
}

/// One completed request.
struct BlkCompletion {
    var tag: Int
    /// The status byte, or nil when the device left the sentinel in place
    /// (it wrote no status).
    var status: UInt8?
    /// Bytes the device says it wrote into the chain (used element len).
    var written: UInt32
}

/// One request queue of a blk device: a split virtqueue (`DriverQueue`) plus
/// `depth` data buffers, each owned by one request in flight (its tag).
///
/// Every request is a chain (virtio 1.2 §5.2.6): the 16-byte header
/// (device-readable), the data split into segments of at most
/// `segmentBytes` (readable for writes, writable for reads), the status
/// byte (writable). Header and status live in the slot of the chain's head
/// descriptor, at `headerOffset` and `statusOffset`; with `indirect` the
/// chain is one ring descriptor pointing at a table at `tableOffset` of that
/// slot. Completions come back in any order: the used element's id (the
/// head) leads back to the tag.
final class BlkQueue {
    static let headerOffset = 0
    static let statusOffset = 16
    static let tableOffset = 64
    /// What the status byte holds until the device writes it.
    static let sentinel: UInt8 = 0xff

    let ring: DriverQueue
    let data: UnsafeMutableRawPointer
    let dataGPA: UInt64
    let bufferStride: Int
    let depth: Int
    let segmentBytes: Int
    let indirect: Bool
    private var freeTags: [Int]
    /// The tag of each chain head in flight, -1 for none.
    private var tagOfHead: [Int]
    /// Used elements whose id was no request in flight.
    private(set) var strayCompletions = 0

    init(ring: DriverQueue, data: UnsafeMutableRawPointer, dataGPA: UInt64, bufferStride: Int, depth: Int,
         segmentBytes: Int, indirect: Bool) {
        self.ring = ring
        self.data = data
        self.dataGPA = dataGPA
        self.bufferStride = bufferStride
        self.depth = depth
        self.segmentBytes = segmentBytes
        self.indirect = indirect
        freeTags = Array((0..<depth).reversed())
        tagOfHead = Array(repeating: -1, count: ring.size)
    }

    /// Requests in flight.
    var inFlight: Int { depth - freeTags.count }
    var hasFreeTag: Bool { !freeTags.isEmpty }

    /// The data buffer of `tag`.
    @inline(__always)
    func buffer(_ tag: Int) -> UnsafeMutableRawPointer { data + tag * bufferStride }

    func acquireTag() -> Int? { freeTags.popLast() }
    func releaseTag(_ tag: Int) { freeTags.append(tag) }

    /// Builds the chain of one request whose data (if any) is the first
    /// `dataLength` bytes of `tag`'s buffer and makes it available. Not
    /// visible to the device before `publish()`. False when the ring has no
    /// room (not with a tag in hand and a valid shape: depth is sized for it).
    func submit(tag: Int, type: UInt32, sector: UInt64, dataLength: Int, deviceWrites: Bool,
                shape: BlkChainShape = .valid) -> Bool {
        precondition(dataLength <= bufferStride, "request data larger than its buffer")
        let segments = dataLength == 0 ? 0 : (dataLength + segmentBytes - 1) / segmentBytes
        let count = 1 + segments + (shape.status ? 1 : 0)
        guard let head = ring.allocateChain(indirect ? 1 : count) else { return false }
        let slot = ring.slot(head)
        let slotGPA = ring.slotGPA(head)
        // struct virtio_blk_outhdr: type, ioprio, sector (little endian).
        slot.storeBytes(of: type.littleEndian, toByteOffset: Self.headerOffset, as: UInt32.self)
        slot.storeBytes(of: UInt32(0), toByteOffset: Self.headerOffset + 4, as: UInt32.self)
        slot.storeBytes(of: sector.littleEndian, toByteOffset: Self.headerOffset + 8, as: UInt64.self)
        slot.storeBytes(of: Self.sentinel, toByteOffset: Self.statusOffset, as: UInt8.self)

        let write = DriverQueueLayout.descriptorWrite
        let dataFlags: UInt16 = deviceWrites && !shape.dataReadableForRead ? write : 0
        let bufferGPA = dataGPA &+ UInt64(tag * bufferStride)
        var descriptor = head
        var index = 0
        // Writes entry `index` of the chain: a ring descriptor, or an entry of the indirect table.
        func put(_ address: UInt64, _ length: UInt32, _ flags: UInt16) {
            let last = index == count - 1
            if indirect {
                let e = slot + Self.tableOffset + 16 * index
                e.storeBytes(of: address, as: UInt64.self)
                e.storeBytes(of: length, toByteOffset: 8, as: UInt32.self)
                e.storeBytes(of: flags | (last ? 0 : DriverQueueLayout.descriptorNext), toByteOffset: 12, as: UInt16.self)
                e.storeBytes(of: UInt16(last ? 0 : index + 1), toByteOffset: 14, as: UInt16.self)
            } else {
                ring.setDescriptor(descriptor, address: address, length: length,
                                   flags: flags | (last ? 0 : DriverQueueLayout.descriptorNext))
                if !last { descriptor = ring.following(descriptor) }
            }
            index += 1
        }
        put(slotGPA &+ UInt64(Self.headerOffset), UInt32(VirtioBlk.headerSize), 0)
        var offset = 0
        while offset < dataLength {
            let n = min(segmentBytes, dataLength - offset)
            put(bufferGPA &+ UInt64(offset), UInt32(n), dataFlags)
            offset += n
        }
        if shape.status { put(slotGPA &+ UInt64(Self.statusOffset), shape.statusLength, write) }
        if indirect {
            ring.setDescriptor(head, address: slotGPA &+ UInt64(Self.tableOffset), length: UInt32(16 * count),
                               flags: DriverQueueLayout.descriptorIndirect)
        }
        tagOfHead[Int(head)] = tag
        ring.makeAvailable(head: head)
        return true
    }

    /// Shows what was submitted to the device (one avail.idx store, a kick
    /// unless the device suppressed it).
    func publish() { ring.publish() }

    /// The next completed request, if the device has returned one. Its tag
    /// is still held: release it with `releaseTag` after reading the buffer.
    func complete() -> BlkCompletion? {
        while let (head, written) = ring.takeUsed() {
            let tag = tagOfHead[Int(head)]
            let status = ring.slot(head).load(fromByteOffset: Self.statusOffset, as: UInt8.self)
            ring.release(head: head)
            tagOfHead[Int(head)] = -1
            guard tag >= 0 else {
                strayCompletions += 1
                continue
            }
            return BlkCompletion(tag: tag, status: status == Self.sentinel ? nil : status, written: written)
        }
        return nil
    }
}
