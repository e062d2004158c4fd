#if canImport(Glibc)
import Glibc
#endif

/// An mmap()ed range that is unmapped exactly once, when its owner goes away.
/// Control-plane object: the hot path keeps only the raw base pointer, and the
/// owner guarantees the mapping outlives every worker that uses it.
public final class MappedRegion: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let length: Int
    /// The fd the mapping came from, if the owner wants to keep it (e.g. to pass
    /// it to another process); closed on deinit. -1 when none.
    public let fd: Int32
    /// True when backed by huge pages.
    public let isHuge: Bool

    public init(base: UnsafeMutableRawPointer, length: Int, fd: Int32 = -1, isHuge: Bool = false) {
        self.base = base
        self.length = length
        self.fd = fd
        self.isHuge = isHuge
    }

    /// Map `length` bytes of `fd` at `offset`.
    public static func map(fd: Int32, length: Int, offset: Int = 0, writable: Bool = true,
                           keepFD: Bool = false, populate: Bool = false) throws(SystemError) -> MappedRegion {
        let prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        var flags = MAP_SHARED
        if populate { flags |= MAP_POPULATE }
        guard let p = mmap(nil, length, prot, flags, fd, off_t(offset)), p != MAP_FAILED else {
            throw SystemError("mmap(\(length) bytes)")
        }
        return MappedRegion(base: p, length: length, fd: keepFD ? fd : -1)
    }

    /// Anonymous private memory (tests, scratch).
    public static func anonymous(length: Int) throws(SystemError) -> MappedRegion {
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              p != MAP_FAILED else { throw SystemError("mmap(anonymous \(length) bytes)") }
        return MappedRegion(base: p, length: length)
    }

    deinit {
        munmap(base, length)
        closeFD(fd)
    }
}
