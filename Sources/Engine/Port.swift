import Config
import Logging
import Platform
import Ports
import Virtio

/// A `[port]` while the daemon runs: it owns its fds, sockets and queues, numbers
/// its queues, answers control-loop events for its tokens, and lends each queue's
/// receive and transmit sides to the worker that owns the queue. Control thread only.
///
/// Kinds: vhost-user (a VM), tap (the host kernel), af-packet (an existing host
/// interface). A new kind (a NIC driver) is one more class conforming here.
protocol DataplanePort: AnyObject {
    var id: Int { get }
    var config: PortConfig { get }
    /// Queue pairs the port offers (each polled by one worker).
    var queuePairs: Int { get }
    /// Largest frame the port may send into the data plane (MTU + Ethernet + one tag).
    var maxFrame: Int { get }
    /// The worker-side receive (frames from the port) of queue pair `q`.
    func rx(_ q: Int) -> PortRx
    /// The worker-side transmit (frames to the port) of queue pair `q`.
    func tx(_ q: Int) -> PortTx
    /// An fd that becomes readable when queue pair `q` has frames, for the owning
    /// worker's epoll in event mode (host ports). Vhost-user kicks come and go with the
    /// guest and are registered through the device hooks instead.
    func wakeFD(_ q: Int) -> Int32?
    /// Start: listen, create or attach the interface. Errors name the port.
    func open(epoll: Epoll, logger: Logger) throws(EngineError)
    /// A control-loop event for one of this port's tokens (`kind` is the low byte).
    func handle(kind: UInt64, epoll: Epoll, logger: Logger)
    /// ~10×/s: reconnects, link state.
    func tick(now: UInt64, epoll: Epoll, logger: Logger)
    /// Whether frames can flow (a guest with running queues, an interface that is up).
    var isUp: Bool { get }
    /// Stop and release everything (workers are stopped or the port is off their lists).
    func close(epoll: Epoll)
}

extension DataplanePort {
    var name: String { config.name }
}

/// epoll tokens of ports in the control loop: (id + 1) << 8 | kind, never 0 and never
/// the signal token.
enum PortToken {
    static func make(port: Int, kind: UInt64) -> UInt64 { UInt64(port + 1) << 8 | kind }
    static func port(_ token: UInt64) -> Int { Int(token >> 8) - 1 }
    static func kind(_ token: UInt64) -> UInt64 { token & 0xff }
}

/// Scratch segment lists a port lends to the workers, freed when the port closes.
final class ScratchLists {
    private var lists: [SegmentList] = []
    func make() -> SegmentList {
        let s = SegmentList.allocate()
        lists.append(s)
        return s
    }
    func freeAll() {
        for s in lists { s.deallocate() }
        lists.removeAll()
    }
}
