#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// Unix stream sockets: listen on a path, connect, accept, socket pairs, and
/// sends and receives that carry fds (SCM_RIGHTS). Every socket is
/// close-on-exec; every new fd comes back as an `OwnedFD`.
public enum UnixSocket {
    /// The most fds one send or receive carries (the C shim's control buffer).
    public static let maxFDsPerMessage = 32

    /// Two connected sockets.
    @frozen
    public struct Pair: ~Copyable, Sendable {
        public var first: OwnedFD
        public var second: OwnedFD
    }

    // MARK: Setting up

    /// Owner, group and permission bits a listening socket's file gets.
    public struct FileAccess: Sendable, Equatable {
        /// nil: keep (the creating process's).
        public var uid: uid_t?
        public var gid: gid_t?
        public var mode: mode_t

        public init(uid: uid_t? = nil, gid: gid_t? = nil, mode: mode_t = 0o660) {
            self.uid = uid
            self.gid = gid
            self.mode = mode
        }
    }

    /// Creates a listening socket at `path`, its file owned and moded as
    /// `access` says (default: mode 0660). A stale socket file nobody listens
    /// on is removed first; a live one (EADDRINUSE), or a file that is not a
    /// socket (EEXIST), is an error.
    ///
    /// Owner, group and mode are set between bind(2) and listen(2): until
    /// listen, a connect is refused whatever the file's permissions, so no
    /// client gets in under the wrong ones.
    public static func listen(path: String, backlog: Int32 = 8, access: FileAccess = FileAccess()) throws(SystemError) -> OwnedFD {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw SystemError("lstat \(path)", errno: EEXIST, message: "\(path) exists and is not a socket")
            }
            let live: Bool
            do { _ = try connect(path: path); live = true } catch { live = false }
            if live {
                throw SystemError("connect \(path)", errno: EADDRINUSE, message: "\(path): another process is listening")
            }
            if unlink(path) != 0 && Glibc.errno != ENOENT { throw SystemError("unlink \(path)") }
        }
        var addr = try address(path)
        let fd = try newSocket()
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if bound != 0 { throw SystemError("bind \(path)") }
        do { try applyAccess(access, path: path) } catch {
            _ = unlink(path)
            throw error
        }
        if Glibc.listen(fd.raw, backlog) != 0 {
            let e = Glibc.errno
            _ = unlink(path)
            throw SystemError("listen \(path)", errno: e)
        }
        return fd
    }

    /// chown and chmod of the socket file just bound (neither follows a symlink).
    private static func applyAccess(_ access: FileAccess, path: String) throws(SystemError) {
        if access.uid != nil || access.gid != nil {
            // (uid_t)-1 / (gid_t)-1 leave that id as it is.
            if lchown(path, access.uid ?? uid_t.max, access.gid ?? gid_t.max) != 0 {
                let who = [access.uid.map { "owner \($0)" }, access.gid.map { "group \($0)" }].compactMap { $0 }
                let e = Glibc.errno
                throw SystemError("chown \(path)", errno: e,
                                  message: "cannot give \(path) \(who.joined(separator: " and ")): \(String(cString: strerror(e)))\(e == EPERM ? " (needs root or CAP_CHOWN)" : "")")
            }
        }
        // Not through a symlink either: fchmodat with AT_SYMLINK_NOFOLLOW (glibc 2.32+ does it
        // through /proc/self/fd); where that is not supported, chmod once lstat shows a socket.
        var r = fchmodat(AT_FDCWD, path, access.mode, AT_SYMLINK_NOFOLLOW)
        if r != 0 && (Glibc.errno == EOPNOTSUPP || Glibc.errno == ENOSYS) {
            var st = stat()
            if lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK {
                r = chmod(path, access.mode)
            } else {
                errno = ELOOP
            }
        }
        if r != 0 {
            let e = Glibc.errno
            throw SystemError("chmod \(path)", errno: e,
                              message: "cannot set mode \(String(access.mode, radix: 8)) on \(path): \(String(cString: strerror(e)))")
        }
    }

    /// Connects to the socket at `path` (blocking). An EINTR during the
    /// connect is waited out: the connection goes on in the background.
    public static func connect(path: String) throws(SystemError) -> OwnedFD {
        var addr = try address(path)
        let fd = try newSocket()
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if r != 0 {
            var e = Glibc.errno
            if e == EINTR {
                var p = pollfd(fd: fd.raw, events: Int16(POLLOUT), revents: 0)
                while Glibc.poll(&p, 1, -1) < 0 && Glibc.errno == EINTR {}
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                if getsockopt(fd.raw, SOL_SOCKET, SO_ERROR, &soError, &len) == 0 && soError == 0 { return fd }
                e = soError
            }
            throw SystemError("connect \(path)", errno: e)
        }
        return fd
    }

    /// Accepts one connection (close-on-exec), retrying on EINTR and on a
    /// connection aborted before it was taken.
    /// (Glibc's Swift overlay has no `accept4`; FD_CLOEXEC is set right after.)
    public static func accept(_ listener: Int32) throws(SystemError) -> OwnedFD {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                return OwnedFD(adopting: fd)
            }
            let e = Glibc.errno
            if e != EINTR && e != ECONNABORTED { throw SystemError("accept", errno: e) }
        }
    }

    /// A connected pair of stream sockets.
    public static func pair() throws(SystemError) -> Pair {
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0 else {
            throw SystemError("socketpair")
        }
        return Pair(first: OwnedFD(adopting: sv[0]), second: OwnedFD(adopting: sv[1]))
    }

    /// Removes a socket file, ignoring errors (it may be gone already).
    public static func removeFile(_ path: String) {
        _ = unlink(path)
    }

    // MARK: Moving bytes and fds

    /// One sendmsg(2) of `bytes` with `fds` attached (they stay open: the
    /// caller still owns them), EINTR retried, no SIGPIPE. Returns the bytes
    /// the kernel took, or nil when a non-blocking socket is full (EAGAIN).
    public static func send(_ socket: Int32, _ bytes: UnsafeRawBufferPointer, fds: [Int32] = []) throws(SystemError) -> Int? {
        guard let base = bytes.baseAddress else { return 0 }
        let n = fds.withUnsafeBufferPointer { sl_send_with_fds(socket, base, bytes.count, $0.baseAddress, Int32($0.count)) }
        if n >= 0 { return n }
        let e = Glibc.errno
        if e == EAGAIN || e == EWOULDBLOCK { return nil }
        throw SystemError("sendmsg", errno: e)
    }

    /// One recvmsg(2) into `buffer`, EINTR retried; any fds that came with
    /// the bytes (close-on-exec) are appended to `fds`, at most `maxFDs`.
    /// Returns the bytes read (0: end of stream), or nil when a non-blocking
    /// socket has nothing (EAGAIN).
    /// More than `maxFDs` fds, or truncated control data: every fd of this
    /// read is closed and the error has errno EMSGSIZE.
    public static func receive(_ socket: Int32, into buffer: UnsafeMutableRawBufferPointer,
                               fds: inout OwnedFDs, maxFDs: Int) throws(SystemError) -> Int? {
        guard let base = buffer.baseAddress else { return 0 }
        let room = max(0, min(maxFDs, maxFDsPerMessage))
        var received = [Int32](repeating: -1, count: max(room, 1))
        var count = Int32(room)
        let n = received.withUnsafeMutableBufferPointer { sl_recv_with_fds(socket, base, buffer.count, $0.baseAddress, &count) }
        if n == -2 {
            throw SystemError("recvmsg", errno: EMSGSIZE,
                              message: "recvmsg: more than \(room) fds, or truncated control data")
        }
        if n < 0 {
            let e = Glibc.errno
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError("recvmsg", errno: e)
        }
        fds.append(adopting: received.prefix(Int(count)))
        return n
    }

    // MARK: Helpers

    private static func newSocket() throws(SystemError) -> OwnedFD {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        return OwnedFD(adopting: fd)
    }

    private static func address(_ path: String) throws(SystemError) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw SystemError("socket path", errno: ENAMETOOLONG,
                              message: "socket path must be 1...\(capacity - 1) bytes without NUL: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return addr
    }
}
