import Config
import Logging
import Platform
import Stats
import Switching
import VhostUser
import Virtio

/// Config → running graph: ports, their devices, and p2p links split into
/// directions on workers' poll lists.
extension Dataplane {
    func buildPorts() throws(EngineError) {
        for (id, pc) in config.ports.enumerated() {
            guard pc.type == .vhostUser else {
                throw EngineError("\(config.file):\(pc.line): port \(pc.name): type \(pc.type.rawValue) is not implemented yet (only vhost-user ports run today)")
            }
            var control: [StatsCounter] = []
            for (name, kind) in VhostUserPort.controlCounterNames {
                control.append(try counter("port.\(pc.name).\(name)", kind: kind, slot: stats.controlSlot))
            }
            let port = VhostUserPort(id: id, config: pc, counters: control)
            port.device.hooks = DeviceHooks(
                quiesce: { [unowned self] body in self.quiesce(body) },
                kickChanged: { [unowned self] queue, old, new in self.kickChanged(port: id, queue: queue, old: old, new: new) })
            ports.append(port)
        }
        var nextWorker = 0
        for link in config.p2p {
            guard let a = ports.first(where: { $0.config.name == link.a }),
                  let b = ports.first(where: { $0.config.name == link.b }) else {
                throw EngineError("\(config.file):\(link.line): p2p \(link.name): unknown port")
            }
            for (src, dst) in [(a, b), (b, a)] {
                for q in 0..<src.config.queues {
                    let rx = q % dst.config.queues
                    // One worker per destination RX queue, so every queue has exactly one owner.
                    let w = queueOwner[dst.id]?[2 * rx] ?? { defer { nextWorker += 1 }; return nextWorker % workers.count }()
                    queueOwner[dst.id, default: [:]][2 * rx] = w
                    queueOwner[src.id, default: [:]][2 * q + 1] = w
                    let direction = P2PDirection(
                        src: src.device.queues[2 * q + 1], dst: dst.device.queues[2 * rx],
                        srcCounters: try portCounters(src.config.name, slot: w),
                        dstCounters: try portCounters(dst.config.name, slot: w),
                        maxFrame: src.config.mtu + 18)
                    let slot = UnsafeMutablePointer<P2PDirection>.allocate(capacity: 1)
                    slot.initialize(to: direction)
                    guard workers[w].pollList.append(.p2p(slot)) else {
                        throw EngineError("worker \(w): poll list full")
                    }
                }
            }
        }
        // Ports not on any link still count, so sluice-stat shows them.
        for p in ports where queueOwner[p.id] == nil {
            _ = try portCounters(p.config.name, slot: 0)
        }
        for p in ports { try p.open(epoll: controlEpoll, logger: logger) }
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
                logger.warning("port \(ports[port].config.name): queue \(queue): \(error)")
            }
        }
    }

    func handlePortEvent(token: UInt64, events: UInt32) {
        let id = Int(token >> 8) - 1
        guard id >= 0, id < ports.count else { return }
        switch token & 0xff {
        case VhostUserPort.listenKind: ports[id].acceptReady(epoll: controlEpoll, logger: logger)
        case VhostUserPort.connectionKind: ports[id].connectionReady(epoll: controlEpoll, logger: logger)
        default: break
        }
    }

    func portHousekeeping() {
        let now = Clock.monotonicNanos()
        for p in ports { p.tick(now: now, epoll: controlEpoll, logger: logger) }
    }

    func closePorts() {
        for p in ports { p.close(epoll: controlEpoll) }
    }
}
