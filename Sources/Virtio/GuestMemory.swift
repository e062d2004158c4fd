#if canImport(Glibc)
import Glibc
#endif
import Platform

/// One guest memory region as the front-end described it, mapped here.
@frozen
public struct GuestRegion: BitwiseCopyable, Sendable {
    public var guestPhys: UInt64
    public var size: UInt64
    /// The front-end's own virtual address of the region (vring addresses use these).
    public var userAddr: UInt64
    /// Where the region's first byte lives in this process.
    public var host: UInt

    public init(guestPhys: UInt64, size: UInt64, userAddr: UInt64, host: UInt) {
        self.guestPhys = guestPhys; self.size = size; self.userAddr = userAddr; self.host = host
    }
}

/// The region table the hot path translates through: a pointer to a count and up to
/// `capacity` regions. A plain value; the owning `GuestMemoryMap` keeps it alive.
///
/// Every translation checks the whole range [addr, addr+len) lies inside one
/// region, with overflow-safe arithmetic; anything else is nil (a counted drop).
@frozen
public struct GuestMemoryTable: BitwiseCopyable, @unchecked Sendable {
    public static let capacity = 32
    @usableFromInline let raw: UnsafeMutableRawPointer   // [UInt64 count][GuestRegion × capacity]

    @usableFromInline var regions: UnsafeMutablePointer<GuestRegion> {
        (raw + 64).assumingMemoryBound(to: GuestRegion.self)
    }

    @inlinable public var count: Int { Int(raw.load(as: UInt64.self)) }

    static func allocate() -> GuestMemoryTable {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 64 + capacity * MemoryLayout<GuestRegion>.stride, alignment: 64)
        p.storeBytes(of: 0, as: UInt64.self)
        return GuestMemoryTable(raw: p)
    }

    @usableFromInline init(raw: UnsafeMutableRawPointer) { self.raw = raw }

    func deallocate() { raw.deallocate() }

    /// Translate a guest-physical range to a host pointer, or nil. Always inlined: it is
    /// called for every descriptor, and as a call it costs more than its loop.
    @inlinable @inline(__always)
    public func translate(_ gpa: UInt64, _ len: UInt32) -> UnsafeMutableRawPointer? {
        let n = count
        let r = regions
        var i = 0
        while i < n {
            let off = gpa &- r[i].guestPhys
            // gpa >= start and off + len <= size, without overflow: off < size is checked
            // first (wrapping subtraction makes gpa < start a huge off), then len fits the rest.
            if gpa >= r[i].guestPhys && off < r[i].size && UInt64(len) <= r[i].size &- off {
                return UnsafeMutableRawPointer(bitPattern: r[i].host &+ UInt(off))
            }
            i &+= 1
        }
        return nil
    }

    /// Translate a front-end virtual address range (vring addresses), or nil.
    public func translateUser(_ va: UInt64, _ len: UInt64) -> UnsafeMutableRawPointer? {
        for i in 0..<count {
            let r = regions[i]
            let off = va &- r.userAddr
            if va >= r.userAddr && off < r.size && len <= r.size &- off {
                return UnsafeMutableRawPointer(bitPattern: r.host &+ UInt(off))
            }
        }
        return nil
    }
}

public struct GuestMemoryError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Owner of a connection's guest memory mappings (control plane). Mapping is
/// done here; the table it publishes is what queues read.
public final class GuestMemoryMap: @unchecked Sendable {
    public let table = GuestMemoryTable.allocate()
    private var mappings: [MappedRegion?] = []
    public let maxRegions: Int

    public init(maxRegions: Int) {
        self.maxRegions = min(maxRegions, GuestMemoryTable.capacity)
    }

    deinit { table.deallocate() }

    public var regionCount: Int { table.count }

    /// The regions mapped now (control thread).
    public var currentRegions: [GuestRegion] { (0..<table.count).map { table.regions[$0] } }

    /// Map one region from `fd` (the fd is consumed: closed after mmap either way).
    /// Rejects overlap with existing regions and more than `maxRegions`.
    public func add(guestPhys: UInt64, size: UInt64, userAddr: UInt64, mmapOffset: UInt64, fd: Int32) throws(GuestMemoryError) {
        defer { closeFD(fd) }
        guard table.count < maxRegions else {
            throw GuestMemoryError(message: "too many memory regions (ds-max \(maxRegions))")
        }
        guard size > 0, guestPhys.addingReportingOverflow(size).overflow == false,
              userAddr.addingReportingOverflow(size).overflow == false else {
            throw GuestMemoryError(message: "memory region overflows the address space")
        }
        // Rings are checked for alignment as front-end addresses; keep host addresses congruent.
        guard mmapOffset & 63 == 0, userAddr & 63 == 0 else {
            throw GuestMemoryError(message: "memory region mmap_offset/userspace_addr not 64-byte aligned")
        }
        let (mapLen, o) = mmapOffset.addingReportingOverflow(size)
        guard !o, mapLen <= UInt64(Int.max) else { throw GuestMemoryError(message: "memory region mmap range overflows") }
        for i in 0..<table.count {
            let r = table.regions[i]
            if guestPhys < r.guestPhys &+ r.size && r.guestPhys < guestPhys &+ size {
                throw GuestMemoryError(message: "memory region 0x\(String(guestPhys, radix: 16)) overlaps an existing region")
            }
        }
        // The fd's size must cover what we map, else touching it would SIGBUS the daemon.
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, UInt64(st.st_size) < mapLen {
            throw GuestMemoryError(message: "memory region fd is \(st.st_size) bytes, smaller than offset+size \(mapLen)")
        }
        let region: MappedRegion
        do { region = try MappedRegion.map(fd: fd, length: Int(mapLen)) } catch {
            throw GuestMemoryError(message: "cannot map guest memory: \(error)")
        }
        let n = table.count
        table.regions[n] = GuestRegion(guestPhys: guestPhys, size: size, userAddr: userAddr,
                                       host: UInt(bitPattern: region.base) &+ UInt(mmapOffset))
        mappings.append(region)
        table.raw.storeBytes(of: UInt64(n + 1), as: UInt64.self)
    }

    /// Remove the region that matches exactly (REM_MEM_REG). Returns false if none does.
    public func remove(guestPhys: UInt64, size: UInt64) -> Bool {
        let n = table.count
        for i in 0..<n where table.regions[i].guestPhys == guestPhys && table.regions[i].size == size {
            for j in i..<(n - 1) { table.regions[j] = table.regions[j + 1] }
            mappings.remove(at: i)
            table.raw.storeBytes(of: UInt64(n - 1), as: UInt64.self)
            return true
        }
        return false
    }

    /// Unmap everything (memory table replaced, or the front-end went away).
    public func removeAll() {
        table.raw.storeBytes(of: 0, as: UInt64.self)
        mappings.removeAll()
    }
}
