#if canImport(Glibc)
import Glibc
#endif

/// What fstat/stat say about a file: which file it is, and its size.
public struct FileStatus: Equatable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int(info.st_size)
    }
}

/// Files that processes share by mapping them (the segments in /dev/shm):
/// create, open, size, name, and map them.
public enum SharedFile {
    /// Creates `path` read-write; it must not exist yet (O_EXCL). `mode` goes
    /// through the umask, as open(2) does.
    public static func create(path: String, mode: mode_t) throws(SystemError) -> OwnedFD {
        let fd = try retryingEINTR("open \(path)") { open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
        return OwnedFD(adopting: fd)
    }

    /// Opens an existing `path` read-only.
    public static func openReadOnly(path: String) throws(SystemError) -> OwnedFD {
        let fd = try retryingEINTR("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        return OwnedFD(adopting: fd)
    }

    /// Sets the mode bits exactly (not filtered by the umask); errors ignored.
    public static func setMode(_ fd: Int32, _ mode: mode_t) {
        _ = fchmod(fd, mode)
    }

    /// Allocates every block of the first `size` bytes now (posix_fallocate),
    /// so a full file system fails here and not later as SIGBUS in a mapping.
    public static func allocate(_ fd: Int32, size: Int) throws(SystemError) {
        var code: Int32
        repeat { code = posix_fallocate(fd, 0, off_t(size)) } while code == EINTR
        if code != 0 { throw SystemError("posix_fallocate(\(size) bytes)", errno: code) }
    }

    /// Sets the file's size (ftruncate).
    public static func setSize(_ fd: Int32, _ size: Int) throws(SystemError) {
        _ = try retryingEINTR("ftruncate(\(size) bytes)") { ftruncate(fd, off_t(size)) }
    }

    /// fstat: the open file's identity and size.
    public static func status(_ fd: Int32) throws(SystemError) -> FileStatus {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SystemError("fstat") }
        return FileStatus(info)
    }

    /// stat: what `path` names now, or nil when nothing does (or it cannot be seen).
    public static func status(path: String) -> FileStatus? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStatus(info)
    }

    /// Renames `from` over `to` (atomically replacing it).
    public static func rename(_ from: String, to: String) throws(SystemError) {
        guard Glibc.rename(from, to) == 0 else { throw SystemError("rename \(from) to \(to)") }
    }

    /// Removes `path`, ignoring errors (it may be gone already).
    public static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Reads up to `capacity` bytes from the start of `path` (small /proc files);
    /// nil when it cannot be opened or read.
    public static func readPrefix(path: String, capacity: Int) -> [UInt8]? {
        guard let fd = try? openReadOnly(path: path) else { return nil }
        var buffer = [UInt8](repeating: 0, count: capacity)
        let count = buffer.withUnsafeMutableBytes { read(fd.raw, $0.baseAddress, $0.count) }
        guard count >= 0 else { return nil }
        return Array(buffer[0..<count])
    }
}

/// A shared mapping with no owner object: whoever maps it unmaps it, at a
/// point of its choosing (the stats segments keep their base pointer in
/// objects that decide when the memory may go).
public enum SharedMapping {
    /// Maps `length` bytes of `fd` from offset 0, shared.
    public static func map(fd: Int32, length: Int, writable: Bool) throws(SystemError) -> UnsafeMutableRawPointer {
        let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        guard let address = mmap(nil, length, protection, MAP_SHARED, fd, 0), address != MAP_FAILED else {
            throw SystemError("mmap(\(length) bytes)")
        }
        return address
    }

    /// Replaces the mapping with private zero pages at the same address:
    /// pointers into it stay valid, writes no longer reach the file.
    public static func detachFromFile(_ base: UnsafeMutableRawPointer, length: Int) {
        _ = mmap(base, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
    }

    public static func unmap(_ base: UnsafeMutableRawPointer, length: Int) {
        _ = munmap(base, length)
    }
}
