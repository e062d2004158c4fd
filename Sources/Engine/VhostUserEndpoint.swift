#if canImport(Glibc)
import Glibc
#endif
import Config
import Logging
import Platform
import Stats
import VhostUser

/// The socket side of one vhost-user device: listening (server mode) or connecting
/// with backoff (client mode), the one front-end connection, and its control counters.
/// A `[port]` of type vhost-user (virtio-net) and a `[blk]` export (virtio-blk) each
/// own one, around their `VhostUserDevice`. Control thread only.
final class VhostUserEndpoint {
    /// "port NAME", "blk NAME": how log lines name the owner.
    let label: String
    let device: VhostUserDevice
    let socketPath: String
    let mode: PortMode
    let socketAccess: SocketAccess
    let listenToken: UInt64
    let connectionToken: UInt64
    /// The listening socket (server mode), owned: closed with the endpoint or in `close`.
    private var listener: OwnedFD?
    private var listenFD: Int32 { listener?.raw ?? -1 }
    private(set) var connection: VhostUserBackendConnection?
    private var nextConnectAt: UInt64 = 0
    private var backoffNanos: UInt64 = 100_000_000
    /// Client mode: what the connect failures since the last connection said (rate-limited).
    private var reconnectLog = ReconnectLog()
    let connected: StatsCounter
    let badMessages: StatsCounter
    let refusedMessages: StatsCounter
    let connects: StatsCounter

    static let counterNames: [(String, CounterKind)] =
        [("connected", .gauge), ("vhost.bad_message", .counter), ("vhost.refused_message", .counter), ("vhost.connects", .counter)]

    /// `counters` in the order of `counterNames`.
    init(label: String, device: VhostUserDevice, socketPath: String, mode: PortMode, socketAccess: SocketAccess,
         listenToken: UInt64, connectionToken: UInt64, counters: [StatsCounter]) {
        self.label = label
        self.device = device
        self.socketPath = socketPath
        self.mode = mode
        self.socketAccess = socketAccess
        self.listenToken = listenToken
        self.connectionToken = connectionToken
        connected = counters[0]; badMessages = counters[1]; refusedMessages = counters[2]; connects = counters[3]
    }

    var isConnected: Bool { connection != nil }

    /// Server mode: listen now, the socket file owned and moded as configured.
    /// Client mode: the first connect happens in `tick`.
    func open(epoll: Epoll, logger: Logger) throws(EngineError) {
        guard mode == .server else { return }
        let dir = String(socketPath[..<(socketPath.lastIndex(of: "/") ?? socketPath.startIndex)])
        if !dir.isEmpty {
            do { try makeDirectories(dir) } catch {
                throw EngineError("\(label): socket directory \(error.description)")
            }
        }
        let access: UnixSocket.FileAccess
        switch SocketPermissions.resolve(socketAccess) {
        case .success(let resolved): access = resolved
        case .failure(let problem): throw EngineError("\(label): \(problem.message)")
        }
        do { listener = try UnixSocket.listen(path: socketPath, access: access) } catch {
            throw EngineError("\(label): cannot listen on \(socketPath): \(error.reason)")
        }
        do { try epoll.add(listenFD, token: listenToken) } catch {
            throw EngineError("\(label): \(error)")
        }
        logger.info("\(label): listening on \(socketPath) (\(SocketPermissions.describe(socketAccess)))")
    }

    /// A control-loop event for one of this endpoint's tokens.
    func handle(token: UInt64, epoll: Epoll, logger: Logger) {
        if token == listenToken { acceptReady(epoll: epoll, logger: logger) }
        else if token == connectionToken { connectionReady(epoll: epoll, logger: logger) }
    }

    /// The listening socket is readable: accept one front-end (a second one is refused).
    func acceptReady(epoll: Epoll, logger: Logger) {
        let socket: OwnedFD
        do { socket = try VhostUserChannel.acceptSocket(listenFD) } catch {
            logger.warning("\(label): accept: \(error.description)")
            return
        }
        if connection != nil {
            logger.warning("\(label): refusing a second front-end while one is connected")
            return   // `socket` closes here
        }
        attach(socket, epoll: epoll, logger: logger)
    }

    private func attach(_ socket: consuming OwnedFD, epoll: Epoll, logger: Logger) {
        let fd = socket.raw
        let conn = VhostUserBackendConnection(owning: socket, device: device)
        do { try epoll.add(fd, token: connectionToken) } catch {
            logger.error("\(label): \(error)")
            conn.close()
            return
        }
        connection = conn
        connected.set(1)
        connects.increment()
        backoffNanos = 100_000_000
        if mode == .client {
            let tries = reconnectLog.connected()
            logger.info("\(label): connected to \(socketPath)\(tries > 1 ? " after \(tries) attempts" : "")")
        } else {
            logger.info("\(label): front-end connected")
        }
    }

    /// The connection is readable: handle one message.
    func connectionReady(epoll: Epoll, logger: Logger) {
        guard let conn = connection else { return }
        switch conn.service() {
        case .handled(let failure):
            logger.trace("\(label): \(VhostUserRequest.describe(conn.lastRequest))")
            if let failure {
                refusedMessages.increment()
                logger.warning("\(label): refused \(failure)")
            }
        case .closed:
            logger.info("\(label): front-end disconnected")
            detach(epoll: epoll)
        case .protocolError(let why):
            badMessages.increment()
            logger.warning("\(label): dropping the connection: \(why)")
            detach(epoll: epoll)
        }
    }

    func detach(epoll: Epoll) {
        guard let conn = connection else { return }
        epoll.remove(conn.fd)
        conn.close()
        connection = nil
        connected.set(0)
        nextConnectAt = Clock.monotonicNanos() &+ backoffNanos
    }

    /// Client mode: (re)connect with exponential backoff (0.1 s … 2 s).
    func tick(now: UInt64, epoll: Epoll, logger: Logger) {
        guard mode == .client, connection == nil, now >= nextConnectAt else { return }
        do {
            attach(try VhostUserChannel.connectSocket(path: socketPath), epoll: epoll, logger: logger)
        } catch {
            switch reconnectLog.failed(now: now) {
            case .first:
                logger.info("\(label): cannot connect to \(socketPath): \(error.description); retrying")
            case .still(let attempts):
                logger.info("\(label): still cannot connect to \(socketPath) after \(attempts) attempts: \(error.description)")
            case .quiet:
                logger.debug("\(label): connect \(socketPath): \(error.description)")
            }
            nextConnectAt = now &+ backoffNanos
            backoffNanos = min(backoffNanos * 2, 2_000_000_000)
        }
    }

    /// Disconnect, stop the device's queues and stop listening (the socket file is removed).
    func close(epoll: Epoll) {
        detach(epoll: epoll)
        device.reset()
        // The engine is going away: the device must not call back into it.
        device.hooks = .direct
        if listenFD >= 0 {
            epoll.remove(listenFD)
            listener = nil
            unlink(socketPath)
        }
    }
}

/// mkdir -p: each missing directory is made with mode 0755. The error names
/// the directory and says why (`/run/x: cannot create: Permission denied`).
func makeDirectories(_ path: String) throws(EngineError) {
    var current = ""
    for part in path.split(separator: "/") {
        current += "/" + part
        var st = stat()
        if stat(current, &st) == 0 {
            if st.st_mode & S_IFMT != S_IFDIR { throw EngineError("\(path): cannot create: \(current) is not a directory") }
            continue
        }
        if mkdir(current, 0o755) != 0 {
            let e = errno
            if e == EEXIST { continue }
            throw EngineError("\(path): cannot create: \(String(cString: strerror(e)))\(current == path ? "" : " (at \(current))")")
        }
    }
}

/// Rate limit for client-mode connect failures: the first one of a series,
/// then at most one every `interval`; `connected` ends the series.
struct ReconnectLog {
    static let interval: UInt64 = 30_000_000_000

    enum Verdict: Equatable { case first, still(attempts: Int), quiet }

    private(set) var attempts = 0
    private var lastLogged: UInt64 = 0

    mutating func failed(now: UInt64) -> Verdict {
        attempts += 1
        if attempts == 1 {
            lastLogged = now
            return .first
        }
        if now &- lastLogged >= Self.interval {
            lastLogged = now
            return .still(attempts: attempts)
        }
        return .quiet
    }

    /// Ends the series; returns the attempts it took (the successful one included).
    mutating func connected() -> Int {
        defer { attempts = 0 }
        return attempts + 1
    }
}
