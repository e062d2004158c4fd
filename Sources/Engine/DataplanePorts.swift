import Config
import Logging
import Platform
import Ports
import Stats
import Switching
import VhostUser

/// Config → running graph: every `[port]` becomes a `DataplanePort`, then each
/// element builder (p2p links, switches; later networks and blk exports) turns its
/// sections into poll sources on the workers.
extension Dataplane {
    /// One builder per section kind. A new kind of section is one more entry here.
    static let builders: [any ElementBuilder & Sendable] = [P2PBuilder(), SwitchBuilder()]

    func buildPorts() throws(EngineError) {
        for (id, pc) in config.ports.enumerated() {
            switch pc.type {
            case .vhostUser:
                var control: [StatsCounter] = []
                for (name, kind) in VhostUserPort.controlCounterNames {
                    control.append(try counter("port.\(pc.name).\(name)", kind: kind, slot: stats.controlSlot))
                }
                let port = VhostUserPort(id: id, config: pc, counters: control)
                port.device.hooks = DeviceHooks(
                    quiesce: { [unowned self] body in self.quiesce(body) },
                    kickChanged: { [unowned self] queue, old, new in self.kickChanged(port: id, queue: queue, old: old, new: new) })
                ports.append(port)
            case .tap:
                ports.append(TapPort(id: id, config: pc))
            case .afPacket:
                ports.append(AfPacketPort(id: id, config: pc))
            }
        }
        // Host ports must exist before their queues are handed to workers.
        for p in ports { try p.open(epoll: controlEpoll, logger: logger) }
        for b in Self.builders { elements += try b.build(self) }
        // Ports on no element still count, so sluice-stat shows them.
        for p in ports where queueOwner[p.id] == nil {
            _ = try portCounters(p.name, slot: 0)
        }
    }

    func port(named name: String) -> (any DataplanePort)? { ports.first { $0.name == name } }

    /// The next worker in round-robin order.
    func nextWorkerIndex() -> Int {
        defer { nextWorker += 1 }
        return nextWorker % workers.count
    }

    /// Record that `worker` polls queue pair `q` of `port` (receive side) and so must
    /// be woken by its kicks or its fd in event mode.
    func own(receiveOf port: any DataplanePort, queue q: Int, worker w: Int) throws(EngineError) {
        queueOwner[port.id, default: [:]][Self.queueKey(port, q, transmit: false)] = w
        if let fd = port.wakeFD(q) {
            do { try workers[w].epoll.add(fd, token: PortToken.make(port: port.id, kind: 0x10 | UInt64(q))) } catch {
                throw EngineError("port \(port.name): \(error)")
            }
        }
    }

    /// Record that `worker` writes queue pair `q` of `port` (transmit side).
    func own(transmitOf port: any DataplanePort, queue q: Int, worker w: Int) {
        queueOwner[port.id, default: [:]][Self.queueKey(port, q, transmit: true)] = w
    }

    /// The worker that writes queue pair `q` of `port`, if one does yet.
    func transmitOwner(_ port: any DataplanePort, queue q: Int) -> Int? {
        queueOwner[port.id]?[Self.queueKey(port, q, transmit: true)]
    }

    /// Keys of `queueOwner`: vhost-user ports by virtqueue index (kicks are registered by
    /// it); host ports by queue pair, transmit sides offset by 1000.
    static func queueKey(_ port: any DataplanePort, _ q: Int, transmit: Bool) -> Int {
        if port is VhostUserPort { return transmit ? VhostUserPort.txVring(q) : VhostUserPort.rxVring(q) }
        return transmit ? 1000 + q : q
    }

    func addPollEntry(_ entry: PollEntry, worker w: Int) throws(EngineError) {
        guard workers[w].pollList.append(entry) else { throw EngineError("worker \(w): poll list full") }
    }

    func portCounters(_ port: String, slot: Int) throws(EngineError) -> PortCounters {
        var c: [StatsCounter] = []
        for n in PortCounters.names { c.append(try counter("port.\(port).\(n)", slot: slot)) }
        return PortCounters(c)
    }

    /// Pause every running worker, run `body`, resume them (control thread). Workers
    /// park at a loop boundary, so no burst is ever half done when `body` runs.
    func quiesce(_ body: () -> Void) {
        for w in workers { w.pause() }
        body()
        for w in workers { w.resume() }
    }

    /// Event mode wakes the owning worker on a kick.
    func kickChanged(port: Int, queue: Int, old: Int32, new: Int32) {
        guard let w = queueOwner[port]?[queue] else { return }
        if old >= 0 { workers[w].epoll.remove(old) }
        if new >= 0 {
            do { try workers[w].epoll.add(new, token: UInt64(port) << 16 | UInt64(queue)) } catch {
                logger.warning("port \(ports[port].name): queue \(queue): \(error)")
            }
        }
    }

    func handlePortEvent(token: UInt64, events: UInt32) {
        let id = PortToken.port(token)
        guard id >= 0, id < ports.count else { return }
        ports[id].handle(kind: PortToken.kind(token), epoll: controlEpoll, logger: logger)
    }

    func portHousekeeping() {
        let now = Clock.monotonicNanos()
        for p in ports { p.tick(now: now, epoll: controlEpoll, logger: logger) }
        for e in elements { e.housekeeping(now: now) }
    }

    func closePorts() {
        for p in ports { p.close(epoll: controlEpoll) }
        for e in elements { e.teardown() }
        elements.removeAll()
    }
}
