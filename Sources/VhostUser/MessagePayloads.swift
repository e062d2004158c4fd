// The fixed payload layouts of vhost-user.rst ("Payload" section), each with
// its byte size, a reader, a writer and the range checks the decoder applies.

/// "A vring state description": SET_VRING_NUM/BASE, GET_VRING_BASE (request
/// and reply), SET_VRING_ENABLE, SET_VRING_ENDIAN, VRING_KICK.
public struct VringState: Equatable, Sendable {
    public static let byteCount = 8
    public var index: UInt32
    public var num: UInt32

    public init(index: UInt32, num: UInt32) {
        self.index = index
        self.num = num
    }

    init(_ r: inout PayloadReader) {
        index = r.u32()
        num = r.u32()
    }

    func write(_ w: inout PayloadWriter) {
        w.u32(index)
        w.u32(num)
    }
}

/// "A vring address description" (`struct vhost_vring_addr`): SET_VRING_ADDR.
/// The three ring addresses are front-end user addresses (IOVAs with
/// `VIRTIO_F_IOMMU_PLATFORM`); `log` is a guest physical address.
public struct VringAddress: Equatable, Sendable {
    public static let byteCount = 40
    /// `VHOST_VRING_F_LOG`: log writes to the used ring. The only defined flag.
    public static let logFlag: UInt32 = 0x1

    public var index: UInt32
    public var flags: UInt32
    /// Descriptor table.
    public var desc: UInt64
    /// Used ring.
    public var used: UInt64
    /// Available ring.
    public var avail: UInt64
    /// Guest address for logging used-ring writes.
    public var log: UInt64

    public init(index: UInt32, flags: UInt32 = 0, desc: UInt64, used: UInt64, avail: UInt64, log: UInt64 = 0) {
        self.index = index
        self.flags = flags
        self.desc = desc
        self.used = used
        self.avail = avail
        self.log = log
    }

    init(_ r: inout PayloadReader) {
        index = r.u32()
        flags = r.u32()
        desc = r.u64()
        used = r.u64()
        avail = r.u64()
        log = r.u64()
    }

    func write(_ w: inout PayloadWriter) {
        w.u32(index)
        w.u32(flags)
        w.u64(desc)
        w.u64(used)
        w.u64(avail)
        w.u64(log)
    }

    var isLogging: Bool { flags & Self.logFlag != 0 }
}

/// "Memory region description" (`VhostUserMemoryRegion`): one entry of
/// SET_MEM_TABLE, and the region of ADD_MEM_REG / REM_MEM_REG.
///
/// A decoded descriptor has `memorySize > 0` and none of its three ranges
/// (`guestPhysAddr`, `userspaceAddr`, `mmapOffset` each plus `memorySize`)
/// wraps past 2^64, so the `…End` properties never overflow.
public struct MemoryRegionDescriptor: Equatable, Sendable {
    public static let byteCount = 32

    public var guestPhysAddr: UInt64
    public var memorySize: UInt64
    public var userspaceAddr: UInt64
    public var mmapOffset: UInt64

    public init(guestPhysAddr: UInt64, memorySize: UInt64, userspaceAddr: UInt64, mmapOffset: UInt64) {
        self.guestPhysAddr = guestPhysAddr
        self.memorySize = memorySize
        self.userspaceAddr = userspaceAddr
        self.mmapOffset = mmapOffset
    }

    init(_ r: inout PayloadReader) {
        guestPhysAddr = r.u64()
        memorySize = r.u64()
        userspaceAddr = r.u64()
        mmapOffset = r.u64()
    }

    func write(_ w: inout PayloadWriter) {
        w.u64(guestPhysAddr)
        w.u64(memorySize)
        w.u64(userspaceAddr)
        w.u64(mmapOffset)
    }

    /// One past the last guest physical address (valid after validation).
    public var guestPhysEnd: UInt64 { guestPhysAddr &+ memorySize }
    /// One past the last front-end user address (valid after validation).
    public var userspaceEnd: UInt64 { userspaceAddr &+ memorySize }
    /// One past the last byte used in the fd (valid after validation).
    public var mmapEnd: UInt64 { mmapOffset &+ memorySize }

    /// nil when the region is usable, else what is wrong with it.
    func problem() -> String? {
        if memorySize == 0 { return "memory_size is 0" }
        if guestPhysAddr.addingReportingOverflow(memorySize).overflow {
            return "guest_phys_addr 0x\(wireHex(guestPhysAddr)) + memory_size 0x\(wireHex(memorySize)) overflows"
        }
        if userspaceAddr.addingReportingOverflow(memorySize).overflow {
            return "userspace_addr 0x\(wireHex(userspaceAddr)) + memory_size 0x\(wireHex(memorySize)) overflows"
        }
        if mmapOffset.addingReportingOverflow(memorySize).overflow {
            return "mmap_offset 0x\(wireHex(mmapOffset)) + memory_size 0x\(wireHex(memorySize)) overflows"
        }
        return nil
    }

    /// Whether the guest physical ranges of two valid regions share a byte.
    func overlapsGuestRange(of other: MemoryRegionDescriptor) -> Bool {
        guestPhysAddr < other.guestPhysEnd && other.guestPhysAddr < guestPhysEnd
    }
}

/// "Virtio device config space": GET_CONFIG (request and reply), SET_CONFIG.
/// `payload.count` is the `size` field; a decoded value has
/// `1 <= size` and `offset + size <= 256`.
public struct DeviceConfigSpace: Equatable, Sendable {
    /// offset, size, flags.
    public static let headerByteCount = 12
    /// Flags value 0: a write of a writable field by the front-end.
    public static let flagWritable: UInt32 = 0
    /// Flags value 1: a write during live migration (may touch read-only fields).
    public static let flagMigration: UInt32 = 1

    public var offset: UInt32
    public var flags: UInt32
    public var payload: [UInt8]

    public init(offset: UInt32, flags: UInt32 = 0, payload: [UInt8]) {
        self.offset = offset
        self.flags = flags
        self.payload = payload
    }

    /// A GET_CONFIG request for `size` bytes at `offset` (payload zero-filled,
    /// as QEMU sends it).
    public init(offset: UInt32, size: Int) {
        self.init(offset: offset, flags: 0, payload: [UInt8](repeating: 0, count: size))
    }

    public var size: UInt32 { UInt32(truncatingIfNeeded: payload.count) }

    func write(_ w: inout PayloadWriter) {
        w.u32(offset)
        w.u32(size)
        w.u32(flags)
        w.raw(payload)
    }
}

/// "Inflight description" (`VhostUserInflight`): GET_INFLIGHT_FD (request and
/// reply) and SET_INFLIGHT_FD. 20 bytes of fields plus 4 bytes of trailing
/// padding that C compilers add, which every peer puts on the wire.
public struct InflightDescription: Equatable, Sendable {
    public static let byteCount = 24

    public var mmapSize: UInt64
    public var mmapOffset: UInt64
    public var numQueues: UInt16
    public var queueSize: UInt16

    public init(mmapSize: UInt64, mmapOffset: UInt64, numQueues: UInt16, queueSize: UInt16) {
        self.mmapSize = mmapSize
        self.mmapOffset = mmapOffset
        self.numQueues = numQueues
        self.queueSize = queueSize
    }

    init(_ r: inout PayloadReader) {
        mmapSize = r.u64()
        mmapOffset = r.u64()
        numQueues = r.u16()
        queueSize = r.u16()
        r.skip(4)
    }

    func write(_ w: inout PayloadWriter) {
        w.u64(mmapSize)
        w.u64(mmapOffset)
        w.u16(numQueues)
        w.u16(queueSize)
        w.zeros(4)
    }
}

/// "Log description" (`VhostUserLog`): SET_LOG_BASE with LOG_SHMFD.
/// A decoded value has `mmapSize > 0` and `mmapOffset + mmapSize` in range.
public struct LogDescription: Equatable, Sendable {
    public static let byteCount = 16

    public var mmapSize: UInt64
    public var mmapOffset: UInt64

    public init(mmapSize: UInt64, mmapOffset: UInt64) {
        self.mmapSize = mmapSize
        self.mmapOffset = mmapOffset
    }

    init(_ r: inout PayloadReader) {
        mmapSize = r.u64()
        mmapOffset = r.u64()
    }

    func write(_ w: inout PayloadWriter) {
        w.u64(mmapSize)
        w.u64(mmapOffset)
    }
}

/// "An IOTLB message" (`struct vhost_iotlb_msg`, 30 bytes of fields padded to
/// 32): IOTLB_MSG. A decoded value has `permissions <= 3` and `type` in 1...4.
public struct IOTLBMessage: Equatable, Sendable {
    public static let byteCount = 32

    public var iova: UInt64
    public var size: UInt64
    public var userAddr: UInt64
    /// 0 none, 1 read, 2 write, 3 read/write.
    public var permissions: UInt8
    /// 1 miss, 2 update, 3 invalidate, 4 access fail.
    public var type: UInt8

    public init(iova: UInt64, size: UInt64, userAddr: UInt64, permissions: UInt8, type: UInt8) {
        self.iova = iova
        self.size = size
        self.userAddr = userAddr
        self.permissions = permissions
        self.type = type
    }

    init(_ r: inout PayloadReader) {
        iova = r.u64()
        size = r.u64()
        userAddr = r.u64()
        permissions = r.u8()
        type = r.u8()
        r.skip(6)
    }

    func write(_ w: inout PayloadWriter) {
        w.u64(iova)
        w.u64(size)
        w.u64(userAddr)
        w.u8(permissions)
        w.u8(type)
        w.zeros(6)
    }
}

/// "Device state transfer parameters": SET_DEVICE_STATE_FD.
public struct DeviceStateTransfer: Equatable, Sendable {
    public static let byteCount = 8
    /// 0 save (back-end to front-end), 1 load.
    public var direction: UInt32
    /// 0 stopped.
    public var phase: UInt32

    public init(direction: UInt32, phase: UInt32) {
        self.direction = direction
        self.phase = phase
    }
}
