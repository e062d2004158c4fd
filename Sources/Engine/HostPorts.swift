import Config
import Logging
import Platform
import Ports

/// A `type = tap` port: sluice creates (or attaches to) a tap interface, so the host
/// kernel is one more station on a switch or one end of a p2p link.
final class TapPort: DataplanePort {
    let id: Int
    let config: PortConfig
    private var device: TapDevice?
    private var up = false

    init(id: Int, config: PortConfig) {
        self.id = id
        self.config = config
    }

    /// `queues` > 1: a multiqueue tap, one fd (and one worker) per queue.
    var queuePairs: Int { config.queues }
    var maxFrame: Int { config.mtu + 18 }
    var interface: String { config.interface ?? config.name }

    func open(epoll: Epoll, logger: Logger) throws(EngineError) {
        do { device = try TapDevice.open(name: interface, mtu: config.mtu, queues: config.queues) } catch {
            throw EngineError("port \(config.name): tap \(interface): \(error)")
        }
        up = true
        logger.info("port \(config.name): tap interface \(interface) \(device?.created == false ? "attached" : "created")")
    }

    func rx(_ q: Int) -> PortRx { if let io = device?.io(queue: q) { .tap(io) } else { .none } }
    func tx(_ q: Int) -> PortTx { if let io = device?.io(queue: q) { .tap(io) } else { .none } }
    func wakeFD(_ q: Int) -> Int32? { device?.io(queue: q).fd }
    func handle(kind: UInt64, epoll: Epoll, logger: Logger) {}

    /// A tap moved into another network namespace keeps working through our fd but is
    /// no longer visible here by name: then its state is unknown and taken as up.
    func tick(now: UInt64, epoll: Epoll, logger: Logger) {
        guard NetInterface.index(interface) != nil else { return }
        up = watchLink(interface, was: up, port: config.name, logger: logger)
    }

    var isUp: Bool { device != nil && up }

    func close(epoll: Epoll) { device = nil }
}

/// A `type = af-packet` port: an existing host interface (a NIC, one end of a veth
/// pair) attached with an AF_PACKET socket and mmap'ed rings, promiscuous while attached.
final class AfPacketPort: DataplanePort {
    let id: Int
    let config: PortConfig
    private var socket: PacketSocket?
    private var up = false

    init(id: Int, config: PortConfig) {
        self.id = id
        self.config = config
    }

    var queuePairs: Int { 1 }
    var maxFrame: Int { config.mtu + 18 }
    var interface: String { config.interface ?? config.name }

    func open(epoll: Epoll, logger: Logger) throws(EngineError) {
        do { socket = try PacketSocket.open(interface: interface, frameSize: 2048 + 128, rxFrameSize: PacketSocket.gsoFrameSize) } catch {
            throw EngineError("port \(config.name): af-packet \(interface): \(error)")
        }
        up = NetInterface.isUp(interface)
        logger.info("port \(config.name): attached to \(interface) (AF_PACKET, TPACKET_V3 rings, vnet headers: GSO frames segmented)\(up ? "" : "; the interface is down")")
    }

    func rx(_ q: Int) -> PortRx { if let io = socket?.io { .packet(io) } else { .none } }
    func tx(_ q: Int) -> PortTx { if let io = socket?.io { .packet(io) } else { .none } }
    func wakeFD(_ q: Int) -> Int32? { socket?.io.fd }
    func handle(kind: UInt64, epoll: Epoll, logger: Logger) {}

    /// The socket stays bound while the interface goes down and up; frames flow again
    /// when it is back. The switch flushes the port's MAC entries on the way down.
    func tick(now: UInt64, epoll: Epoll, logger: Logger) {
        up = watchLink(interface, was: up, port: config.name, logger: logger)
    }

    var isUp: Bool { socket != nil && up }

    func close(epoll: Epoll) { socket = nil }
}

/// The link state of a host interface now; a change is logged.
private func watchLink(_ interface: String, was: Bool, port: String, logger: Logger) -> Bool {
    let now = NetInterface.isUp(interface)
    if now != was { logger.info("port \(port): \(interface) is \(now ? "up" : "down")") }
    return now
}
