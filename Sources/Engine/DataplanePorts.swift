import Config
import Logging
import Platform
import Ports
import Stats
import Switching
import VhostUser

/// A built element and what it was built from.
final class ElementRecord {
    let id: Int
    let spec: ElementSpec
    let running: any RunningElement
    init(id: Int, spec: ElementSpec, running: any RunningElement) {
        self.id = id
        self.spec = spec
        self.running = running
    }
}

/// A queue an element took: released (and its wake-up fd taken off the worker) when
/// the element stops.
struct QueueClaim {
    var port: Int
    var key: Int
    var worker: Int
    var receive: Bool
    var queue: Int
}

/// Config → running graph: every `[port]` becomes a `DataplanePort`, then each
/// element builder (p2p links, switches; later networks and blk exports) turns its
/// sections into poll sources on the workers.
extension Dataplane {
    /// One builder per section kind. A new kind of section is one more entry here.
    static let builders: [any ElementBuilder & Sendable] = [P2PBuilder(), SwitchBuilder(), RouterBuilder(), BlkBuilder()]

    /// A port object for `pc` with a fresh id (not opened yet).
    func makePort(_ pc: PortConfig) throws(EngineError) -> any DataplanePort {
        let id = nextPortID
        nextPortID += 1
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
            return port
        case .tap:
            return TapPort(id: id, config: pc)
        case .afPacket:
            return AfPacketPort(id: id, config: pc)
        }
    }

    /// Every counter name of a port, retired when the port is removed.
    func counterNames(ofPort name: String) -> [String] {
        PortCounters.names.map { "port.\(name).\($0)" }
            + VhostUserPort.controlCounterNames.map { "port.\(name).\($0.0)" }
            + (rxqNames[name].map(Array.init) ?? [])
    }

    func port(named name: String) -> (any DataplanePort)? { ports.first { $0.name == name } }
    func port(id: Int) -> (any DataplanePort)? { ports.first { $0.id == id } }

    /// The next worker in round-robin order.
    func nextWorkerIndex() -> Int {
        defer { nextWorker += 1 }
        return nextWorker % workers.count
    }

    // MARK: Elements

    /// Build `spec` with `builder`; its claims and poll entries are recorded under a new id.
    func startElement(_ spec: ElementSpec, builder: any ElementBuilder) throws(EngineError) {
        let id = nextElementID
        nextElementID += 1
        building = id
        defer { building = 0 }
        do {
            let running = try builder.build(spec, self)
            elements.append(ElementRecord(id: id, spec: spec, running: running))
        } catch {
            // Whatever the builder managed to add comes off again.
            removeEntries(owner: id)
            releaseClaims(of: id)
            throw error
        }
    }

    /// Take an element's entries off every worker, give its queues back and free what
    /// it holds. Workers must be paused or stopped.
    func stopElement(_ e: ElementRecord) {
        removeEntries(owner: e.id)
        releaseClaims(of: e.id)
        e.running.teardown(self)
    }

    private func removeEntries(owner: Int) {
        for w in workers { w.pollList.remove(owner: owner, w.context(now: 0)) }
    }

    private func releaseClaims(of element: Int) {
        for c in claims.removeValue(forKey: element) ?? [] {
            if queueOwner[c.port]?[c.key] == c.worker { queueOwner[c.port]?[c.key] = nil }
            if c.worker < workers.count, let e = blkExport(id: c.port) {
                for fd in [e.kickFD(c.queue), e.completionFD(c.queue)] where fd >= 0 { workers[c.worker].epoll.remove(fd) }
                continue
            }
            guard c.worker < workers.count, let p = port(id: c.port) else { continue }
            if c.receive, let fd = p.wakeFD(c.queue) { workers[c.worker].epoll.remove(fd) }
            if let v = p as? VhostUserPort {
                let kick = v.kickFD(vring: c.key)
                if kick >= 0 { workers[c.worker].epoll.remove(kick) }
            }
        }
    }

    // MARK: Queue ownership

    /// Record that `worker` polls queue pair `q` of `port` (receive side) and so must
    /// be woken by its kicks or its fd in event mode.
    func own(receiveOf port: any DataplanePort, queue q: Int, worker w: Int) throws(EngineError) {
        let key = Self.queueKey(port, q, transmit: false)
        queueOwner[port.id, default: [:]][key] = w
        claims[building, default: []].append(QueueClaim(port: port.id, key: key, worker: w, receive: true, queue: q))
        do {
            if let fd = port.wakeFD(q) {
                try workers[w].epoll.add(fd, token: PortToken.make(port: port.id, kind: 0x10 | UInt64(q)))
            }
            // A guest already running (the element is new or rebuilt by a reload): its kick
            // goes to the new owner now, not at its next SET_VRING_KICK.
            if let v = port as? VhostUserPort, case let kick = v.kickFD(vring: key), kick >= 0 {
                try workers[w].epoll.add(kick, token: UInt64(port.id) << 16 | UInt64(key))
            }
        } catch {
            throw EngineError("port \(port.name): \(error)")
        }
    }

    /// Record that `worker` writes queue pair `q` of `port` (transmit side).
    func own(transmitOf port: any DataplanePort, queue q: Int, worker w: Int) {
        let key = Self.queueKey(port, q, transmit: true)
        if queueOwner[port.id]?[key] == w { return }
        queueOwner[port.id, default: [:]][key] = w
        claims[building, default: []].append(QueueClaim(port: port.id, key: key, worker: w, receive: false, queue: q))
        // Buffers the guest adds wake the writer in event mode.
        if let v = port as? VhostUserPort, case let kick = v.kickFD(vring: key), kick >= 0 {
            do { try workers[w].epoll.add(kick, token: UInt64(port.id) << 16 | UInt64(key)) } catch {
                logger.warning("port \(port.name): queue \(key): \(error)")
            }
        }
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

    /// Put `entry` on worker `w`'s list for the element being built; it polls receive
    /// queue `q` of `port` (its packets and cycles are counted as `rxq.<port>.<q>.*`).
    func addPollEntry(_ entry: PollEntry, worker w: Int, polling port: any DataplanePort, queue q: Int) throws(EngineError) {
        let names = try addPollEntry(entry, worker: w, name: port.name, queue: q)
        rxqNames[port.name, default: []].formUnion(names)
    }

    /// The same for any queue named `rxq.<name>.<q>` (a blk export's); returns the counter names.
    func addPollEntry(_ entry: PollEntry, worker w: Int, name: String, queue q: Int) throws(EngineError) -> [String] {
        let prefix = "rxq.\(name).\(q)"
        let stats = QueueStats(packets: try counter("\(prefix).packets", slot: w),
                               busyCycles: try counter("\(prefix).busy_cycles", slot: w))
        try counter("\(prefix).worker", kind: .gauge, slot: self.stats.controlSlot).set(UInt64(w))
        guard workers[w].pollList.append(entry, owner: building, stats: stats) else {
            _ = entry.perform(.release, workers[w].context(now: 0))
            throw EngineError("worker \(w): poll list full")
        }
        return ["\(prefix).packets", "\(prefix).busy_cycles", "\(prefix).worker"]
    }

    func portCounters(_ port: String, slot: Int) throws(EngineError) -> PortCounters {
        var c: [StatsCounter] = []
        for n in PortCounters.names { c.append(try counter("port.\(port).\(n)", slot: slot)) }
        return PortCounters(c)
    }

    /// Event mode wakes the owning worker on a kick.
    func kickChanged(port: Int, queue: Int, old: Int32, new: Int32) {
        guard let w = queueOwner[port]?[queue], w < workers.count else { return }
        if old >= 0 { workers[w].epoll.remove(old) }
        if new >= 0 {
            do { try workers[w].epoll.add(new, token: UInt64(port) << 16 | UInt64(queue)) } catch {
                logger.warning("port \(self.port(id: port)?.name ?? "?"): queue \(queue): \(error)")
            }
        }
    }

    func handlePortEvent(token: UInt64, events: UInt32) {
        // A port removed by a reload earlier in this batch of events is simply gone.
        let id = PortToken.port(token)
        if let p = port(id: id) {
            p.handle(kind: PortToken.kind(token), epoll: controlEpoll, logger: logger)
        } else {
            blkExport(id: id)?.endpoint.handle(token: token, epoll: controlEpoll, logger: logger)
        }
    }

    func portHousekeeping() {
        let now = Clock.monotonicNanos()
        for p in ports { p.tick(now: now, epoll: controlEpoll, logger: logger) }
        for e in blkExports { e.endpoint.tick(now: now, epoll: controlEpoll, logger: logger) }
        for e in elements { e.running.housekeeping(now: now) }
    }
}
