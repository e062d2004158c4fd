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

    /// Server mode: listen now. Client mode: the first connect happens in `tick`.
    func open(epoll: Epoll, logger: Logger) throws(EngineError) {
        guard config.mode == .server else { return }
        let dir = String(socketPath[..<(socketPath.lastIndex(of: "/") ?? socketPath.startIndex)])
        if !dir.isEmpty { makeDirectories(dir) }
        do { listener = try VhostUserChannel.listenSocket(path: socketPath) } catch {
            throw EngineError("port \(config.name): cannot listen on \(socketPath): \(error.description)")
        }
        do { try epoll.add(listenFD, token: listenToken) } catch {
            throw EngineError("port \(config.name): \(error)")
        }
        logger.info("port \(config.name): listening on \(socketPath)")
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
        logger.info("port \(config.name): front-end connected")
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
            if backoffNanos >= 1_000_000_000 && nextConnectAt != 0 {
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

/// mkdir -p (best effort; a failure shows up as the listen error).
func makeDirectories(_ path: String) {
    var current = ""
    for part in path.split(separator: "/") {
        current += "/" + part
        _ = mkdir(current, 0o755)
    }
}
