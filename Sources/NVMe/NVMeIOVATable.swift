/// One guest memory region as the device sees it: host address, length, IOVA.
public struct NVMeIOVARegion: Sendable, Equatable {
    public var host: UInt
    public var bytes: UInt64
    public var iova: UInt64
    public init(host: UnsafeMutableRawPointer, bytes: Int, iova: UInt64) {
        self.host = UInt(bitPattern: host); self.bytes = UInt64(bytes); self.iova = iova
    }
}

/// A table entry (24 bytes).
@frozen
public struct NVMeIOVAEntry: BitwiseCopyable {
    public var host: UInt
    public var bytes: UInt64
    public var iova: UInt64
}

/// Host address → IOVA for the buffers of guest requests: the guest's memory regions
/// as the integrator mapped them into the IOMMU. One allocation (a count, then up to
/// `capacity` entries), shared by every queue of an export; the hot path scans it
/// linearly (guests have a handful of regions). `update` runs on the control thread
/// while the workers that translate through it are paused (the memory-table hook).
@frozen
public struct NVMeIOVATable: BitwiseCopyable, @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public static let capacity = 64
    /// The entries start one cache line in (the count sits alone in the first).
    @usableFromInline static let entriesOffset = 64

    public init(base: UnsafeMutableRawPointer) { self.base = base }

    public static func allocate() -> NVMeIOVATable {
        let bytes = entriesOffset + capacity * MemoryLayout<NVMeIOVAEntry>.stride
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return NVMeIOVATable(base: p)
    }

    public func deallocate() { base.deallocate() }

    @inlinable
    public var count: Int { base.load(as: Int.self) }

    @inlinable
    var entries: UnsafeMutablePointer<NVMeIOVAEntry> {
        (base + Self.entriesOffset).assumingMemoryBound(to: NVMeIOVAEntry.self)
    }

    public var regions: [NVMeIOVAEntry] { (0..<count).map { entries[$0] } }

    /// Replace the table with `regions` (empty: the guest has no memory the device may
    /// reach). Too many regions, or an empty or wrapping one, is an error naming it.
    public func update(regions: [NVMeIOVARegion]) throws(NVMeError) {
        guard regions.count <= Self.capacity else {
            throw NVMeError("\(regions.count) guest memory regions; the NVMe IOVA table holds \(Self.capacity)")
        }
        for r in regions {
            guard r.bytes > 0, UInt64(r.host).addingReportingOverflow(r.bytes).overflow == false,
                  r.iova.addingReportingOverflow(r.bytes).overflow == false else {
                throw NVMeError("guest memory region at 0x\(String(r.host, radix: 16)) (\(r.bytes) bytes, IOVA 0x\(String(r.iova, radix: 16))) is empty or wraps")
            }
        }
        base.storeBytes(of: 0, as: Int.self)
        for (i, r) in regions.enumerated() { entries[i] = NVMeIOVAEntry(host: r.host, bytes: r.bytes, iova: r.iova) }
        base.storeBytes(of: regions.count, as: Int.self)
    }

    /// The IOVA of `bytes` bytes at `p`, or nil when they are not inside one region.
    @inlinable
    public func translate(_ p: UnsafeMutableRawPointer, bytes: Int) -> UInt64? {
        let a = UInt64(UInt(bitPattern: p))
        let n = count
        let e = entries
        var i = 0
        while i < n {
            let off = a &- UInt64(e[i].host)
            // One unsigned compare covers a < host (the difference wraps to a huge value).
            if off < e[i].bytes && UInt64(bytes) <= e[i].bytes &- off { return e[i].iova &+ off }
            i &+= 1
        }
        return nil
    }
}
