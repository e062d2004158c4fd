#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// Where packet memory comes from: huge pages when the host has them, normal
/// pages otherwise (`auto`), or a hard requirement (`on`).
public enum HugepagePolicy: String, Sendable { case auto, on, off }

public struct HugepageError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A shared, prefaulted block of memory backed by a memfd (so it can be passed to
/// another process), NUMA-local where libnuma says so.
public struct PacketMemory: Sendable {
    public let region: MappedRegion
    /// Set when `auto` fell back to normal pages: the one warning to print.
    public let warning: String?
    public let pageSize: Int
}

public enum Hugepages {
    /// The default huge page size in bytes, or nil if the kernel has none configured.
    public static var defaultPageSize: Int? {
        let size = sl_huge_default_size()
        return size > 0 ? Int(size) : nil
    }

    /// Free huge pages of the default size, from /proc/meminfo.
    public static var freePages: Int {
        guard let text = readSmallFile("/proc/meminfo") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("HugePages_Free:") {
            return Int(line.split(separator: " ").last ?? "0") ?? 0
        }
        return 0
    }

    /// Allocate `bytes` of packet memory under `policy`, bound to `numaNode` (-1: no binding).
    public static func allocate(bytes: Int, policy: HugepagePolicy, numaNode: Int = -1,
                                name: String = "sluice") throws(HugepageError) -> PacketMemory {
        var hugeFailure = "huge pages disabled (hugepages = off)"
        if policy != .off {
            if let page = defaultPageSize {
                let length = roundUp(bytes, to: page)
                switch tryHuge(length: length, page: page, node: numaNode, name: name) {
                case .success(let region):
                    return PacketMemory(region: region, warning: nil, pageSize: page)
                case .failure(let why):
                    hugeFailure = why.message
                }
            } else {
                hugeFailure = "no huge page size is configured on this host"
            }
            if policy == .on {
                throw HugepageError(message: "hugepages = on but \(hugeFailure); reserve some with 'echo 512 > /proc/sys/vm/nr_hugepages'")
            }
        }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = roundUp(bytes, to: page)
        let fd = sl_memfd_create(name, sl_memfd_cloexec_flag())
        guard fd >= 0 else { throw HugepageError(message: "memfd_create: \(SystemError("memfd_create"))") }
        guard ftruncate(fd, off_t(length)) == 0 else {
            let e = SystemError("ftruncate"); closeFD(fd)
            throw HugepageError(message: e.description)
        }
        do {
            let region = try MappedRegion.map(fd: fd, length: length, keepFD: true)
            prefault(region, node: numaNode, page: page)
            let warning = policy == .off ? nil :
                "no huge pages (\(hugeFailure)); packet memory uses normal 4 KiB pages — slower, but it works"
            return PacketMemory(region: region, warning: warning, pageSize: page)
        } catch {
            closeFD(fd)
            throw HugepageError(message: error.description)
        }
    }

    private static func tryHuge(length: Int, page: Int, node: Int, name: String) -> Result<MappedRegion, HugepageError> {
        let free = freePages
        if free * page < length {
            return .failure(HugepageError(message: "only \(free) free huge pages of \(page >> 10) KiB for \(length >> 20) MiB"))
        }
        let flags = sl_memfd_hugetlb_flags(page)
        var fd: Int32 = flags == 0 ? -1 : sl_memfd_create(name, flags)
        if fd < 0, let mount = sl_huge_mount_for(page) {
            // Older kernels: a hugetlbfs file, unlinked at once.
            let path = String(cString: mount) + "/\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            if fd >= 0 { unlink(path) }
        }
        if fd < 0 { return .failure(HugepageError(message: "cannot create a hugetlb file: \(SystemError("memfd_create"))")) }
        if ftruncate(fd, off_t(length)) != 0 {
            let e = SystemError("ftruncate(hugetlb)"); closeFD(fd)
            return .failure(HugepageError(message: e.description))
        }
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = SystemError("mmap(hugetlb)"); closeFD(fd)
            return .failure(HugepageError(message: e.description))
        }
        let region = MappedRegion(base: p, length: length, fd: fd, isHuge: true)
        prefault(region, node: node, page: page)
        return .success(region)
    }

    /// Bind to the NUMA node (before first touch) and touch every page so no fault
    /// happens on the hot path.
    private static func prefault(_ region: MappedRegion, node: Int, page: Int) {
        if node >= 0 { _ = sl_numa_bind_memory(region.base, region.length, Int32(node)) }
        var off = 0
        while off < region.length {
            region.base.storeBytes(of: 0, toByteOffset: off, as: UInt8.self)
            off += page
        }
    }

    @inline(__always)
    static func roundUp(_ n: Int, to m: Int) -> Int { (n + m - 1) / m * m }
}
