import Config
import Logging
import Platform
import Ports
import Stats
import VhostUser
import Virtio

/// A `[port]` of type vhost-user: a virtio-net device (its queues live as long as the
/// port) behind a `VhostUserEndpoint` (the socket and the front-end connection).
/// Control thread only.
final class VhostUserPort: DataplanePort {
    let id: Int
    let config: PortConfig
    let device: VhostUserDevice
    let endpoint: VhostUserEndpoint
    var socketPath: String { endpoint.socketPath }
    var connection: VhostUserBackendConnection? { endpoint.connection }

    private let scratch = ScratchLists()

    static let listenKind: UInt64 = 1, connectionKind: UInt64 = 2

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
    func kickFD(vring: Int) -> Int32 { device.kickFD(vring) }
    var isUp: Bool { endpoint.isConnected && device.queues.contains { $0.isLive } }

    func handle(kind: UInt64, epoll: Epoll, logger: Logger) {
        endpoint.handle(token: PortToken.make(port: id, kind: kind), epoll: epoll, logger: logger)
    }

    init(id: Int, config: PortConfig, counters: [StatsCounter]) {
        self.id = id
        self.config = config
        let mac: [UInt8]? = config.mac.map { $0.octets }
        device = VhostUserDevice(net: NetDeviceSpec(name: config.name, queuePairs: config.queues,
                                                    maxQueueSize: config.queueSize, maxRegions: config.dsMax,
                                                    mac: mac, mtu: config.mtu))
        endpoint = VhostUserEndpoint(label: "port \(config.name)", device: device, socketPath: config.socket ?? "",
                                     mode: config.mode, socketAccess: config.socketAccess,
                                     listenToken: PortToken.make(port: id, kind: Self.listenKind),
                                     connectionToken: PortToken.make(port: id, kind: Self.connectionKind),
                                     counters: counters)
    }

    static var controlCounterNames: [(String, CounterKind)] { VhostUserEndpoint.counterNames }

    func open(epoll: Epoll, logger: Logger) throws(EngineError) { try endpoint.open(epoll: epoll, logger: logger) }
    func detach(epoll: Epoll) { endpoint.detach(epoll: epoll) }
    func tick(now: UInt64, epoll: Epoll, logger: Logger) { endpoint.tick(now: now, epoll: epoll, logger: logger) }

    func close(epoll: Epoll) {
        defer { scratch.freeAll() }
        endpoint.close(epoll: epoll)
    }
}
