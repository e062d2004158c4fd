#if canImport(Glibc)
import Glibc
#endif

/// Small state files replaced as a whole: a reader (or a restarted daemon) sees the
/// old content or the new one, never a mix, also across a crash or a power cut.
public enum AtomicFile {
    /// Writes `bytes` to a temporary file in the same directory, fsyncs it, renames it
    /// over `path` and fsyncs the directory (so the rename itself is durable).
    public static func write(path: String, bytes: [UInt8], mode: mode_t = 0o644) throws(SystemError) {
        let (directory, name) = split(path)
        let temporary = "\(directory)/.\(name).tmp-\(getpid())"
        let fd = try retryingEINTR("open \(temporary)") {
            open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        }
        let file = OwnedFD(adopting: fd)
        do throws(SystemError) {
            var done = 0
            while done < bytes.count {
                let n = try retryingEINTR("write \(temporary)") {
                    bytes.withUnsafeBytes { Glibc.write(file.raw, $0.baseAddress! + done, $0.count - done) }
                }
                if n == 0 { throw SystemError("write \(temporary)", errno: EIO) }
                done += n
            }
            _ = try retryingEINTR("fsync \(temporary)") { fsync(file.raw) }
            file.close()
            try SharedFile.rename(temporary, to: path)
        } catch {
            SharedFile.remove(temporary)
            throw error
        }
        let dirFD = try retryingEINTR("open \(directory)") { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        let dir = OwnedFD(adopting: dirFD)
        _ = try retryingEINTR("fsync \(directory)") { fsync(dir.raw) }
    }

    /// The whole content of `path`; nil when it does not exist.
    public static func read(path: String) throws(SystemError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw SystemError("open \(path)")
        }
        let file = OwnedFD(adopting: fd)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try retryingEINTR("read \(path)") {
                chunk.withUnsafeMutableBytes { Glibc.read(file.raw, $0.baseAddress, $0.count) }
            }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// Creates `path` and its missing parents (mode 0755); an existing directory is fine.
    public static func makeDirectories(_ path: String) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir \(prefix)") }
        }
    }

    /// ("dir", "name") of a path; "." for a bare name.
    static func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }
}
