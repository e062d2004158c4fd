#if canImport(Glibc)
import Glibc
#endif
import Config
import Logging
import Platform
import Ports
import Stats
import VhostUser
import Virtio

/// A `[port]` of type vhost-user: its device (queues live as long as the port),
/// the socket (listening in server mode, connecting with backoff in client mode)
/// and the current front-end connection. Control thread only.
final class VhostUserPort: DataplanePort {
    let id: Int
    let config: PortConfig
    let device: VhostNetDevice
    let socketPath: String
    /// The listening socket (server mode), owned: closed with the port or in `close`.
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

    private let scratch = ScratchLists()

    static let listenKind: UInt64 = 1, connectionKind: UInt64 = 2
    var listenToken: UInt64 { PortToken.make(port: id, kind: Self.listenKind) }
    var connectionToken: UInt64 { PortToken.make(port: id, kind: Self.connectionKind) }

    // Virtio-net numbering: queue pair q is RX virtqueue 2q (frames to the guest) and
    // TX virtqueue 2q + 1 (frames from the guest).
    var queuePairs: Int { config.queues }
    var maxFrame: Int { config.mtu + 18 }
    static func rxVring(_ q: Int) -> Int { 2 * q + 1 }
    static func txVring(_ q: Int) -> Int { 2 * q }
    func rx(_ q: Int) -> PortRx {
        .vhost(VhostRx(queue: device.queues[Self.rxVring(q)], segs: scratch.make(), maxFrame: maxFrame))
    }
    func tx(_ q: Int) -> PortTx { .vhost(VhostTx(queue: device.queues[Self.txVring(q)], segs: scratch.make())) }
    func wakeFD(_ q: Int) -> Int32? { nil }
    /// The guest's current kick eventfd of virtqueue `vring` (-1: none yet).
    func kickFD(vring: Int) -> Int32 {
        vring < device.queues.count ? device.queues[vring].state.pointee.kickFD : -1
    }
    var isUp: Bool { connection != nil && device.queues.contains { $0.isLive } }

    func handle(kind: UInt64, epoll: Epoll, logger: Logger) {
        switch kind {
        case Self.listenKind: acceptReady(epoll: epoll, logger: logger)
        case Self.connectionKind: connectionReady(epoll: epoll, logger: logger)
        default: break
        }
    }

    init(id: Int, config: PortConfig, counters: [StatsCounter]) {
        self.id = id
        self.config = config
        socketPath = config.socket ?? ""
        let mac: [UInt8]? = config.mac.map { $0.octets }
        device = VhostNetDevice(spec: NetDeviceSpec(name: config.name, queuePairs: config.queues,
                                                    maxQueueSize: config.queueSize, maxRegions: config.dsMax,
                                                    mac: mac, mtu: config.mtu))
        connected = counters[0]; badMessages = counters[1]; refusedMessages = counters[2]; connects = counters[3]
    }

    static let controlCounterNames: [(String, CounterKind)] =
        [("connected", .gauge), ("vhost.bad_message", .counter), ("vhost.refused_message", .counter), ("vhost.connects", .counter)]

    /// Server mode: listen now, the socket file owned and moded as configured.
    /// Client mode: the first connect happens in `tick`.
    func open(epoll: Epoll, logger: Logger) throws(EngineError) {
        guard config.mode == .server else { return }
        let dir = String(socketPath[..<(socketPath.lastIndex(of: "/") ?? socketPath.startIndex)])
        if !dir.isEmpty {
            do { try makeDirectories(dir) } catch {
                throw EngineError("port \(config.name): socket directory \(error.description)")
            }
        }
        let access: UnixSocket.FileAccess
        switch SocketPermissions.resolve(config.socketAccess) {
        case .success(let resolved): access = resolved
        case .failure(let problem): throw EngineError("port \(config.name): \(problem.message)")
        }
        do { listener = try UnixSocket.listen(path: socketPath, access: access) } catch {
            throw EngineError("port \(config.name): cannot listen on \(socketPath): \(error.reason)")
        }
        do { try epoll.add(listenFD, token: listenToken) } catch {
            throw EngineError("port \(config.name): \(error)")
        }
        logger.info("port \(config.name): listening on \(socketPath) (\(SocketPermissions.describe(config.socketAccess)))")
    }

    /// The listening socket is readable: accept one front-end (a second one is refused).
    func acceptReady(epoll: Epoll, logger: Logger) {
        let socket: OwnedFD
        do { socket = try VhostUserChannel.acceptSocket(listenFD) } catch {
            logger.warning("port \(config.name): accept: \(error.description)")
            return
        }
        if connection != nil {
            logger.warning("port \(config.name): refusing a second front-end while one is connected")
            return   // `socket` closes here
        }
        attach(socket, epoll: epoll, logger: logger)
    }

    private func attach(_ socket: consuming OwnedFD, epoll: Epoll, logger: Logger) {
        let fd = socket.raw
        let conn = VhostUserBackendConnection(owning: socket, device: device)
        do { try epoll.add(fd, token: connectionToken) } catch {
            logger.error("port \(config.name): \(error)")
            conn.close()
            return
        }
        connection = conn
        connected.set(1)
        connects.increment()
        backoffNanos = 100_000_000
        if config.mode == .client {
            let tries = reconnectLog.connected()
            logger.info("port \(config.name): connected to \(socketPath)\(tries > 1 ? " after \(tries) attempts" : "")")
        } else {
            logger.info("port \(config.name): front-end connected")
        }
    }

    /// The connection is readable: handle one message.
    func connectionReady(epoll: Epoll, logger: Logger) {
        guard let conn = connection else { return }
        switch conn.service() {
        case .handled(let failure):
            logger.trace("port \(config.name): \(VhostUserRequest.describe(conn.lastRequest))")
            if let failure {
                refusedMessages.increment()
                logger.warning("port \(config.name): refused \(failure)")
            }
        case .closed:
            logger.info("port \(config.name): front-end disconnected")
            detach(epoll: epoll)
        case .protocolError(let why):
            badMessages.increment()
            logger.warning("port \(config.name): dropping the connection: \(why)")
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
        guard config.mode == .client, connection == nil, now >= nextConnectAt else { return }
        do {
            attach(try VhostUserChannel.connectSocket(path: socketPath), epoll: epoll, logger: logger)
        } catch {
            switch reconnectLog.failed(now: now) {
            case .first:
                logger.info("port \(config.name): cannot connect to \(socketPath): \(error.description); retrying")
            case .still(let attempts):
                logger.info("port \(config.name): still cannot connect to \(socketPath) after \(attempts) attempts: \(error.description)")
            case .quiet:
                logger.debug("port \(config.name): connect \(socketPath): \(error.description)")
            }
            nextConnectAt = now &+ backoffNanos
            backoffNanos = min(backoffNanos * 2, 2_000_000_000)
        }
    }

    func close(epoll: Epoll) {
        defer { scratch.freeAll() }
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
