#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// One vhost-user connection over a connected unix stream socket: reads and
/// writes whole messages with their SCM_RIGHTS fds.
///
/// The socket may be blocking or non-blocking. On a non-blocking socket a
/// message that is only partly there is waited for, at most
/// `ioTimeoutMilliseconds` per wait, so a peer that stops mid-message cannot
/// hold the control thread forever.
///
/// fds: `receive` hands out the fds of a complete, well-framed message; when
/// it throws it has closed every fd it got. Pass the fds on to
/// `VhostUserMessage.decode` (or `VhostUserReply.decode`), which then owns them.
///
/// Used by one thread at a time (the control thread, or a test's front-end);
/// `@unchecked Sendable` so it can be handed from one thread to another.
public final class VhostUserChannel: @unchecked Sendable {
    public typealias RawMessage = (header: VhostUserHeader, payload: [UInt8], fds: [Int32])

    /// The socket. Owned by the channel: closed by `close()` or `deinit`.
    public let fd: Int32
    public var ioTimeoutMilliseconds: Int32 = 5_000
    private var isClosed = false

    public init(fd: Int32) {
        self.fd = fd
    }

    deinit { close() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        _ = Glibc.close(fd)
    }

    // MARK: Receiving

    /// Reads one message: the 12-byte header with any fds, then exactly
    /// `size` bytes of payload. Returns nil on an orderly EOF between messages.
    public func receive() throws(VhostUserProtocolError) -> RawMessage? {
        var fds: [Int32] = []
        do throws(VhostUserProtocolError) {
            var headerBytes = [UInt8](repeating: 0, count: VhostUserHeader.byteCount)
            let got = try readFully(&headerBytes, fds: &fds)
            if got == 0 {
                closeUnheldFDs(fds, except: [])
                return nil
            }
            guard got == VhostUserHeader.byteCount else {
                throw VhostUserProtocolError(.truncated, "connection closed after \(got) of 12 header bytes")
            }
            let header = VhostUserHeader(request: headerBytes.loadLE32(at: 0),
                                         flags: headerBytes.loadLE32(at: 4),
                                         size: headerBytes.loadLE32(at: 8))
            guard header.size <= UInt32(VhostUserLimits.maxPayloadSize) else {
                throw VhostUserProtocolError(.payloadTooLarge, request: header.request,
                                             "payload size \(header.size) is over the \(VhostUserLimits.maxPayloadSize)-byte limit")
            }
            var payload = [UInt8](repeating: 0, count: Int(header.size))
            let read = try readFully(&payload, fds: &fds)
            guard read == payload.count else {
                throw VhostUserProtocolError(.truncated, request: header.request,
                                             "connection closed after \(read) of \(payload.count) payload bytes")
            }
            return (header, payload, fds)
        } catch {
            closeUnheldFDs(fds, except: [])
            throw error
        }
    }

    /// Receives and decodes one front-end request (the back-end's read).
    /// Returns nil on an orderly EOF.
    public func receiveMessage() throws(VhostUserProtocolError) -> (header: VhostUserHeader, message: VhostUserMessage)? {
        guard let (header, payload, fds) = try receive() else { return nil }
        return (header, try VhostUserMessage.decode(header: header, payload: payload, fds: fds))
    }

    /// Fills `buffer` from the socket, appending any fds that arrive to `fds`.
    /// Returns the bytes read: `buffer.count`, or fewer on EOF.
    private func readFully(_ buffer: inout [UInt8], fds: inout [Int32]) throws(VhostUserProtocolError) -> Int {
        var offset = 0
        var received = [Int32](repeating: -1, count: VhostUserLimits.maxFileDescriptors)
        while offset < buffer.count {
            var count = Int32(VhostUserLimits.maxFileDescriptors - fds.count)
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                received.withUnsafeMutableBufferPointer { fdsOut -> Int in
                    guard let base = raw.baseAddress, let out = fdsOut.baseAddress else { return -1 }
                    return sl_recv_with_fds(fd, base + offset, raw.count - offset, out, &count)
                }
            }
            if n == -2 {
                // The shim closed the fds of this read; the caller closes the rest.
                throw VhostUserProtocolError(.tooManyFileDescriptors,
                                             "more than \(VhostUserLimits.maxFileDescriptors) fds, or truncated control data")
            }
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK {
                    try wait(for: Int16(POLLIN), what: "receive")
                    continue
                }
                throw Self.systemError("recvmsg", errno: e)
            }
            fds.append(contentsOf: received.prefix(Int(count)))
            if n == 0 { break }
            offset += n
        }
        return offset
    }

    // MARK: Sending

    /// Sends one message: header and payload in one write with the fds
    /// attached, then whatever part of it the kernel did not take at once.
    /// The fds stay open (the caller still owns them).
    public func send(header: VhostUserHeader, payload: [UInt8], fds: [Int32] = []) throws(VhostUserProtocolError) {
        guard Int(header.size) == payload.count else {
            throw VhostUserProtocolError(.badHeader, request: header.request,
                                         "header size \(header.size) but \(payload.count) payload bytes to send")
        }
        guard fds.count <= VhostUserLimits.maxFileDescriptors else {
            throw VhostUserProtocolError(.tooManyFileDescriptors, request: header.request,
                                         "\(fds.count) fds to send, limit \(VhostUserLimits.maxFileDescriptors)")
        }
        try sendAll(header.encoded() + payload, fds: fds)
    }

    /// Sends a front-end request with its fds.
    public func send(_ message: VhostUserMessage, needsReply: Bool = false) throws(VhostUserProtocolError) {
        let payload = message.encodedPayload()
        try send(header: message.header(payloadSize: payload.count, needsReply: needsReply),
                 payload: payload, fds: message.fileDescriptors)
    }

    /// Sends a back-end reply to `request` with its fds.
    public func sendReply(_ reply: VhostUserReply, to request: UInt32) throws(VhostUserProtocolError) {
        let payload = reply.encodedPayload()
        try send(header: VhostUserHeader(request: request, size: payload.count, isReply: true),
                 payload: payload, fds: reply.fileDescriptors)
    }

    private func sendAll(_ bytes: [UInt8], fds: [Int32]) throws(VhostUserProtocolError) {
        var offset = 0
        var pending = fds
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                pending.withUnsafeBufferPointer { fdsIn -> Int in
                    guard let base = raw.baseAddress else { return -1 }
                    return sl_send_with_fds(fd, base + offset, raw.count - offset, fdsIn.baseAddress, Int32(fdsIn.count))
                }
            }
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK {
                    try wait(for: Int16(POLLOUT), what: "send")
                    continue
                }
                throw Self.systemError("sendmsg", errno: e)
            }
            if n == 0 { throw VhostUserProtocolError(.truncated, "sendmsg wrote nothing") }
            pending = [] // the fds went with the first byte written
            offset += n
        }
    }

    // MARK: Front-end convenience

    /// Sends a request and, when one is due, waits for its reply and checks
    /// it: the request's own reply, or a u64 status if `needsReply` is set.
    /// Returns nil when no reply is due.
    public func request(_ message: VhostUserMessage, needsReply: Bool = false) throws(VhostUserProtocolError) -> VhostUserReply? {
        try send(message, needsReply: needsReply)
        let code = message.requestCode
        guard VhostUserReply.expectedShape(replyingTo: code, needsReply: needsReply) != nil else { return nil }
        guard let (header, payload, fds) = try receive() else {
            throw VhostUserProtocolError(.truncated, request: code, "connection closed while waiting for the reply")
        }
        let reply = try VhostUserReply.decode(header: header, payload: payload, fds: fds,
                                              replyingTo: code, needsReply: needsReply)
        if case .getConfig(let asked) = message, case .config(let got) = reply, got.size != asked.size {
            throw VhostUserProtocolError(.unexpectedReply, request: code,
                                         "reply: \(got.size) config bytes for \(asked.size) asked")
        }
        return reply
    }

    // MARK: Waiting

    private func wait(for events: Int16, what: String) throws(VhostUserProtocolError) {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let r = poll(&p, 1, ioTimeoutMilliseconds)
            if r > 0 { return }
            if r == 0 {
                throw VhostUserProtocolError(.timedOut, "\(what): peer stalled mid-message for \(ioTimeoutMilliseconds) ms")
            }
            let e = errno
            if e != EINTR { throw Self.systemError("poll", errno: e) }
        }
    }

    static func systemError(_ call: String, errno e: Int32) -> VhostUserProtocolError {
        VhostUserProtocolError(.system(errno: e), "\(call): \(String(cString: strerror(e)))")
    }
}

// MARK: - Unix socket helpers

extension VhostUserChannel {
    /// Creates a listening unix socket at `path` (close-on-exec, mode 0660).
    /// A stale socket file nobody listens on is removed first; a live one,
    /// or a file that is not a socket, is an error.
    public static func listen(path: String, backlog: Int32 = 8) throws(VhostUserProtocolError) -> Int32 {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw VhostUserProtocolError(.system(errno: EEXIST), "\(path) exists and is not a socket")
            }
            if let live = try? connect(path: path) {
                _ = Glibc.close(live)
                throw VhostUserProtocolError(.system(errno: EADDRINUSE), "\(path): another process is listening")
            }
            if unlink(path) != 0 && errno != ENOENT { throw systemError("unlink \(path)", errno: errno) }
        }
        var addr = try socketAddress(path)
        let fd = try newSocket()
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if bound != 0 {
            let e = errno
            _ = Glibc.close(fd)
            throw systemError("bind \(path)", errno: e)
        }
        if chmod(path, 0o660) != 0 || Glibc.listen(fd, backlog) != 0 {
            let e = errno
            _ = Glibc.close(fd)
            _ = unlink(path)
            throw systemError("listen \(path)", errno: e)
        }
        return fd
    }

    /// Connects to the unix socket at `path` (close-on-exec, blocking).
    public static func connect(path: String) throws(VhostUserProtocolError) -> Int32 {
        var addr = try socketAddress(path)
        let fd = try newSocket()
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if r != 0 {
            var e = errno
            if e == EINTR {
                // The connection goes on in the background: wait for it.
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                while poll(&p, 1, -1) < 0 && errno == EINTR {}
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                if getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len) == 0 && soError == 0 { return fd }
                e = soError
            }
            _ = Glibc.close(fd)
            throw systemError("connect \(path)", errno: e)
        }
        return fd
    }

    /// Accepts one connection (close-on-exec), retrying on EINTR.
    /// (Glibc's Swift overlay has no `accept4`; FD_CLOEXEC is set right after.)
    public static func accept(_ listenFD: Int32) throws(VhostUserProtocolError) -> Int32 {
        while true {
            let fd = Glibc.accept(listenFD, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                return fd
            }
            let e = errno
            if e != EINTR && e != ECONNABORTED { throw systemError("accept", errno: e) }
        }
    }

    /// A connected pair of unix stream sockets (close-on-exec), for tests and
    /// for in-process front-ends.
    public static func socketPair() throws(VhostUserProtocolError) -> (Int32, Int32) {
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0 else {
            throw systemError("socketpair", errno: errno)
        }
        return (sv[0], sv[1])
    }

    private static func newSocket() throws(VhostUserProtocolError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw systemError("socket", errno: errno) }
        return fd
    }

    private static func socketAddress(_ path: String) throws(VhostUserProtocolError) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw VhostUserProtocolError(.system(errno: ENAMETOOLONG),
                                         "socket path must be 1...\(capacity - 1) bytes without NUL: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return addr
    }
}
