#if canImport(Glibc)
import Glibc
#endif

/// What maps host memory for the device: the VFIO container in the daemon, a recording
/// or identity map in tests.
public protocol NVMeIOMMU: AnyObject {
    func map(host: UnsafeMutableRawPointer, iova: UInt64, bytes: Int) throws(NVMeError)
    func unmap(iova: UInt64, bytes: Int) throws(NVMeError)
}

/// IOVAs for one container: a bump allocator inside the ranges the IOMMU reports. The
/// guest's IOMMU is 39 bits wide by default (docs/nvme-plan.md §1), so process addresses
/// cannot be used as IOVAs. Never hands out page 0 (a zero address looks like a missing
/// pointer) or the MSI window 0xFEE00000–0xFEEFFFFF. Regions of 2 MiB and more start
/// 2 MiB aligned (the IOMMU can use large pages). Freeing returns space only for the
/// newest region; older holes are left unused — address space is plentiful, mappings
/// change only at start, reload and guest memory-table changes.
public final class NVMeIOVASpace {
    public static let msiWindow: ClosedRange<UInt64> = 0xFEE0_0000...0xFEEF_FFFF
    public static let page: UInt64 = 4096
    public static let largeAlignment: UInt64 = 2 << 20

    /// Usable ranges, page aligned, without page 0 and the MSI window.
    public let ranges: [ClosedRange<UInt64>]
    private var rangeIndex = 0
    private var next: UInt64
    /// The last region handed out (what `free` can give back).
    private var last: (iova: UInt64, end: UInt64, previousNext: UInt64, previousRange: Int)?
    public private(set) var allocatedBytes: UInt64 = 0
    /// Bytes freed but not reusable (holes below the bump pointer).
    public private(set) var leakedBytes: UInt64 = 0

    public init(ranges: [ClosedRange<UInt64>]) {
        var usable: [ClosedRange<UInt64>] = []
        func add(_ lo: UInt64, _ hi: UInt64) {
            let start = max((lo &+ Self.page &- 1) & ~(Self.page &- 1), Self.page)
            guard hi >= start, hi &- start >= Self.page &- 1 else { return }
            let end = (hi &+ 1) & ~(Self.page &- 1)   // exclusive, page aligned
            guard end > start else { return }
            usable.append(start...(end &- 1))
        }
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if r.overlaps(Self.msiWindow) {
                if r.lowerBound < Self.msiWindow.lowerBound { add(r.lowerBound, Self.msiWindow.lowerBound &- 1) }
                if r.upperBound > Self.msiWindow.upperBound { add(Self.msiWindow.upperBound &+ 1, r.upperBound) }
            } else {
                add(r.lowerBound, r.upperBound)
            }
        }
        self.ranges = usable
        next = usable.first?.lowerBound ?? 0
    }

    /// A fresh IOVA for `bytes` (rounded up to pages).
    public func allocate(bytes: Int) throws(NVMeError) -> UInt64 {
        guard bytes > 0 else { throw NVMeError("IOVA allocation of \(bytes) bytes") }
        let size = (UInt64(bytes) &+ Self.page &- 1) & ~(Self.page &- 1)
        let align = size >= Self.largeAlignment ? Self.largeAlignment : Self.page
        var i = rangeIndex
        var cursor = next
        while i < ranges.count {
            let r = ranges[i]
            let start = max((cursor &+ align &- 1) & ~(align &- 1), r.lowerBound)
            if start >= r.lowerBound, start <= r.upperBound, r.upperBound &- start >= size &- 1 {
                last = (start, start &+ size, next, rangeIndex)
                rangeIndex = i
                next = start &+ size
                allocatedBytes &+= size
                return start
            }
            i &+= 1
            if i < ranges.count { cursor = ranges[i].lowerBound }
        }
        throw NVMeError("no IOVA space left for \(size) bytes (\(allocatedBytes) bytes allocated in \(ranges.count) range(s))")
    }

    /// Give back a region from `allocate`.
    public func free(iova: UInt64, bytes: Int) {
        let size = (UInt64(bytes) &+ Self.page &- 1) & ~(Self.page &- 1)
        allocatedBytes &-= min(size, allocatedBytes)
        if let l = last, l.iova == iova, l.end == iova &+ size {
            next = l.previousNext
            rangeIndex = l.previousRange
            last = nil
        } else {
            leakedBytes &+= size
        }
    }
}

/// DMA memory for queues, PRP/SGL list pages and Identify buffers: anonymous memory
/// mapped into the IOMMU. Small buffers are carved out of 2 MiB chunks (one IOMMU
/// mapping and, where the host has them, one huge page each; VFIO containers allow
/// only ~65535 mappings), large ones get a region of their own. Huge pages are tried
/// first (`MAP_HUGETLB` with 2 MiB pages) and plain pages used when none are free.
/// `space` nil: IOVA = host address (an identity IOMMU, as the tests' controller model
/// uses). Control thread only.
public final class NVMeDMAPool: DMAAllocator {
    public static let chunkBytes = 2 << 20
    static let pagesPerChunk = chunkBytes / 4096

    private struct Chunk {
        var host: UnsafeMutableRawPointer
        var iova: UInt64
        var bytes: Int
        var huge: Bool
        /// Page use of a shared chunk; nil for a region of one allocation.
        var used: [Bool]?
    }

    public let iommu: NVMeIOMMU
    public let space: NVMeIOVASpace?
    public let tryHugePages: Bool
    private var chunks: [Chunk] = []
    /// Mappings made in huge pages and in plain pages.
    public private(set) var hugeMappings = 0
    public private(set) var plainMappings = 0
    /// unmap failures while freeing (the memory is then kept, never reused).
    public private(set) var unmapFailures = 0

    public init(iommu: NVMeIOMMU, space: NVMeIOVASpace?, hugePages: Bool = true) {
        self.iommu = iommu
        self.space = space
        tryHugePages = hugePages
    }

    deinit { releaseAll() }

    public func allocate(bytes: Int) throws(NVMeError) -> DMABuffer {
        guard bytes > 0 else { throw NVMeError("DMA allocation of \(bytes) bytes") }
        let size = (bytes + 4095) & ~4095
        if size > Self.chunkBytes / 2 {
            let c = try newChunk(bytes: (size + Self.chunkBytes - 1) & ~(Self.chunkBytes - 1), shared: false)
            chunks.append(c)
            return DMABuffer(host: c.host, iova: c.iova, bytes: size)
        }
        let pages = size / 4096
        for i in chunks.indices where chunks[i].used != nil {
            if let first = Self.findRun(chunks[i].used!, pages) {
                return take(chunk: i, first: first, pages: pages)
            }
        }
        chunks.append(try newChunk(bytes: Self.chunkBytes, shared: true))
        return take(chunk: chunks.count - 1, first: 0, pages: pages)
    }

    public func free(_ buffer: DMABuffer) {
        guard let i = chunks.firstIndex(where: { buffer.host >= $0.host && buffer.host < $0.host + $0.bytes }) else { return }
        if chunks[i].used == nil {
            let c = chunks.remove(at: i)
            release(c)
            return
        }
        let first = (buffer.host - chunks[i].host) / 4096
        for p in first..<min(first + (buffer.bytes + 4095) / 4096, Self.pagesPerChunk) { chunks[i].used![p] = false }
    }

    /// Unmap and release every chunk (buffers handed out become invalid).
    public func releaseAll() {
        for c in chunks { release(c) }
        chunks.removeAll()
    }

    private func take(chunk i: Int, first: Int, pages: Int) -> DMABuffer {
        for p in first..<(first + pages) { chunks[i].used![p] = true }
        let host = chunks[i].host + first * 4096
        host.initializeMemory(as: UInt8.self, repeating: 0, count: pages * 4096)
        return DMABuffer(host: host, iova: chunks[i].iova + UInt64(first * 4096), bytes: pages * 4096)
    }

    private static func findRun(_ used: [Bool], _ pages: Int) -> Int? {
        var run = 0
        for p in 0..<used.count {
            run = used[p] ? 0 : run + 1
            if run == pages { return p - pages + 1 }
        }
        return nil
    }

    private func newChunk(bytes: Int, shared: Bool) throws(NVMeError) -> Chunk {
        var huge = false
        var p: UnsafeMutableRawPointer?
        if tryHugePages {
            // MAP_HUGE_2MB: 21 << MAP_HUGE_SHIFT (26), whatever the default huge page size is.
            let m = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | Int32(21 << 26), -1, 0)
            if let m, m != MAP_FAILED { p = m; huge = true }
        }
        if p == nil {
            let m = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let m, m != MAP_FAILED else {
                throw NVMeError("DMA memory: mmap of \(bytes) bytes failed: \(String(cString: strerror(errno)))")
            }
            p = m
        }
        let host = p!
        var iova = UInt64(UInt(bitPattern: host))
        do throws(NVMeError) {
            if let space { iova = try space.allocate(bytes: bytes) }
        } catch {
            munmap(host, bytes)
            throw error
        }
        do throws(NVMeError) {
            try iommu.map(host: host, iova: iova, bytes: bytes)
        } catch {
            space?.free(iova: iova, bytes: bytes)
            munmap(host, bytes)
            throw error
        }
        if huge { hugeMappings += 1 } else { plainMappings += 1 }
        return Chunk(host: host, iova: iova, bytes: bytes, huge: huge,
                     used: shared ? [Bool](repeating: false, count: Self.pagesPerChunk) : nil)
    }

    private func release(_ c: Chunk) {
        do throws(NVMeError) {
            try iommu.unmap(iova: c.iova, bytes: c.bytes)
        } catch {
            // The device may still reach it: keep the memory rather than reuse it.
            unmapFailures += 1
            return
        }
        space?.free(iova: c.iova, bytes: c.bytes)
        if c.huge { hugeMappings -= 1 } else { plainMappings -= 1 }
        munmap(c.host, c.bytes)
    }
}
