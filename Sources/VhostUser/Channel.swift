#if canImport(Glibc)
import Glibc
#endif
import Platform

/// One vhost-user connection over a connected unix stream socket: reads and
/// writes whole messages with their SCM_RIGHTS fds. The socket calls are
/// Platform's `UnixSocket`; this type speaks the protocol over them and turns
/// their `SystemError`s into `VhostUserProtocolError`s.
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

    /// The socket, for polling and epoll; owned by the channel (`socket`).
    public let fd: Int32
    public var ioTimeoutMilliseconds: Int32 = 5_000
    /// Closed by `close()` or when the channel goes away.
    private var socket: OwnedFD?

    /// Takes ownership of the connected socket `fd`.
    public convenience init(fd: Int32) {
        self.init(owning: OwnedFD(adopting: fd))
    }

    public init(owning socket: consuming OwnedFD) {
        fd = socket.raw
        self.socket = consume socket
    }

    public func close() {
        socket = nil
    }

    // MARK: Receiving

    /// Reads one message: the 12-byte header with any fds, then exactly
    /// `size` bytes of payload. Returns nil on an orderly EOF between messages.
    public func receive() throws(VhostUserProtocolError) -> RawMessage? {
        // Closes every fd received so far if this returns nil or throws.
        var fds = OwnedFDs()
        var headerBytes = [UInt8](repeating: 0, count: VhostUserHeader.byteCount)
        let got = try readFully(&headerBytes, fds: &fds)
        if got == 0 { return nil }
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
        return (header, payload, fds.release())
    }

    /// Receives and decodes one front-end request (the back-end's read).
    /// Returns nil on an orderly EOF.
    public func receiveMessage() throws(VhostUserProtocolError) -> (header: VhostUserHeader, message: VhostUserMessage)? {
        guard let (header, payload, fds) = try receive() else { return nil }
        return (header, try VhostUserMessage.decode(header: header, payload: payload, fds: fds))
    }

    /// Fills `buffer` from the socket, adding any fds that arrive to `fds`.
    /// Returns the bytes read: `buffer.count`, or fewer on EOF.
    private func readFully(_ buffer: inout [UInt8], fds: inout OwnedFDs) throws(VhostUserProtocolError) -> Int {
        var offset = 0
        while offset < buffer.count {
            let room = VhostUserLimits.maxFileDescriptors - fds.count
            let result = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) -> Int? in
                    try UnixSocket.receive(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[offset...]),
                                           fds: &fds, maxFDs: room)
                }
            }
            let n: Int?
            do { n = try result.get() } catch {
                if error.errno == EMSGSIZE {
                    // The fds of this read are closed; `receive` closes the rest.
                    throw VhostUserProtocolError(.tooManyFileDescriptors,
                                                 "more than \(VhostUserLimits.maxFileDescriptors) fds, or truncated control data")
                }
                throw Self.protocolError(error)
            }
            guard let n else {
                try wait(for: Poll.readable, what: "receive")
                continue
            }
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
            let result = bytes.withUnsafeBytes { raw in
                Result { () throws(SystemError) -> Int? in
                    try UnixSocket.send(fd, UnsafeRawBufferPointer(rebasing: raw[offset...]), fds: pending)
                }
            }
            let sent: Int?
            do { sent = try result.get() } catch { throw Self.protocolError(error) }
            guard let n = sent else {
                try wait(for: Poll.writable, what: "send")
                continue
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
        let fired: Int16?
        do { fired = try Poll.wait(fd, for: events, timeoutMilliseconds: ioTimeoutMilliseconds) } catch {
            throw Self.protocolError(error)
        }
        if fired == nil {
            throw VhostUserProtocolError(.timedOut, "\(what): peer stalled mid-message for \(ioTimeoutMilliseconds) ms")
        }
    }

    /// A failed socket call as a protocol error: `.system(errno:)` with the
    /// call and its reason (or Platform's own explanation).
    static func protocolError(_ error: SystemError) -> VhostUserProtocolError {
        VhostUserProtocolError(.system(errno: error.errno), error.reason)
    }
}

// MARK: - Unix socket set-up

extension VhostUserChannel {
    /// Creates a listening unix socket at `path` (close-on-exec, mode 0660).
    /// A stale socket file nobody listens on is removed first; a live one,
    /// or a file that is not a socket, is an error.
    public static func listenSocket(path: String, backlog: Int32 = 8) throws(VhostUserProtocolError) -> OwnedFD {
        do { return try UnixSocket.listen(path: path, backlog: backlog) } catch { throw protocolError(error) }
    }

    /// Connects to the unix socket at `path` (close-on-exec, blocking).
    public static func connectSocket(path: String) throws(VhostUserProtocolError) -> OwnedFD {
        do { return try UnixSocket.connect(path: path) } catch { throw protocolError(error) }
    }

    /// Accepts one connection (close-on-exec), retrying on EINTR.
    public static func acceptSocket(_ listenFD: Int32) throws(VhostUserProtocolError) -> OwnedFD {
        do { return try UnixSocket.accept(listenFD) } catch { throw protocolError(error) }
    }

    // Raw-fd forms, for callers that keep fds as Int32: the caller owns the
    // returned fd and closes it (or hands it to `init(fd:)`).

    /// `listenSocket(path:backlog:)`, handing the fd over raw.
    public static func listen(path: String, backlog: Int32 = 8) throws(VhostUserProtocolError) -> Int32 {
        try listenSocket(path: path, backlog: backlog).release()
    }

    /// `connectSocket(path:)`, handing the fd over raw.
    public static func connect(path: String) throws(VhostUserProtocolError) -> Int32 {
        try connectSocket(path: path).release()
    }

    /// `acceptSocket(_:)`, handing the fd over raw.
    public static func accept(_ listenFD: Int32) throws(VhostUserProtocolError) -> Int32 {
        try acceptSocket(listenFD).release()
    }

    /// A connected pair of unix stream sockets (close-on-exec), for tests and
    /// for in-process front-ends; the caller owns both.
    public static func socketPair() throws(VhostUserProtocolError) -> (Int32, Int32) {
        let pair: UnixSocket.Pair
        do { pair = try UnixSocket.pair() } catch { throw protocolError(error) }
        return (pair.first.release(), pair.second.release())
    }
}
