import Config
import Memory
import Platform
import Ports
import Stats
import Switching

/// `[switch NAME]`: a learning switch over its member ports.
struct SwitchBuilder: ElementBuilder {
    func specs(_ config: SluiceConfig) -> [ElementSpec] {
        config.switches.map { sc in
            ElementSpec(kind: "switch", name: sc.name, line: sc.line, ports: sc.ports,
                        fingerprint: "\(sc.ports) aging=\(sc.aging) max-macs=\(sc.maxMACs)")
        }
    }

    func build(_ spec: ElementSpec, _ plane: Dataplane) throws(EngineError) -> any RunningElement {
        guard let sc = plane.config.switches.first(where: { $0.name == spec.name }) else {
            throw EngineError("switch \(spec.name): not in \(plane.config.file)")
        }
        return try RunningSwitch(sc, plane: plane)
    }
}

/// A switch while the daemon runs: the shared state the workers use, the MAC table's
/// file, and the control thread's aging and link-state reactions.
final class RunningSwitch: RunningElement {
    let config: SwitchConfig
    let members: [any DataplanePort]
    let fdb: FdbSegment
    let counts: UnsafeMutableRawPointer
    let shared: UnsafeMutablePointer<SwitchShared>
    private var views: [UnsafeMutablePointer<SwitchWorkerView>] = []
    /// Rings into the owner of a member's queue 0, with the member's name.
    private var rings: [(IndexRing, PortTx, String)] = []
    private var wasUp: [Bool]
    private var flushPending: Set<Int> = []
    private var lastSweep: UInt64 = 0
    private let macs: StatsCounter, aged: StatsCounter, flushed: StatsCounter

    init(_ sc: SwitchConfig, plane: Dataplane) throws(EngineError) {
        config = sc
        var members: [any DataplanePort] = []
        for name in sc.ports {
            guard let p = plane.port(named: name) else {
                throw EngineError("\(plane.config.file):\(sc.line): switch \(sc.name): port \(name) did not start")
            }
            members.append(p)
        }
        guard members.count <= FdbLayout.maxPorts else {
            throw EngineError("\(plane.config.file):\(sc.line): switch \(sc.name): at most \(FdbLayout.maxPorts) ports")
        }
        self.members = members
        wasUp = members.map { _ in false }

        // The MAC table: twice the entries it may hold, so probe chains stay short.
        var capacity = 64
        while capacity < sc.maxMACs * 2 { capacity <<= 1 }
        do {
            fdb = try FdbSegment(path: FdbLayout.path(instance: plane.options.instance, switchName: sc.name),
                                 capacity: capacity, ports: sc.ports, aging: sc.aging)
        } catch { throw EngineError("switch \(sc.name): \(error.message)") }
        let countBytes = MacTable.countsBytes(ports: members.count)
        counts = .allocate(byteCount: countBytes, alignment: 64)
        counts.initializeMemory(as: UInt8.self, repeating: 0, count: countBytes)
        let table = MacTable(entries: fdb.entries, capacity: capacity, counts: counts, limit: sc.maxMACs)

        var infos: [SwitchPortInfo] = []
        var membership: [[Int]] = []
        for p in members {
            let c = p.config
            infos.append(SwitchPortInfo(
                accessVLAN: c.trunk == nil ? UInt16(c.accessVLAN) : 0,
                nativeVLAN: UInt16(c.nativeVLAN ?? 0), trunk: c.trunk != nil, monitor: c.monitor,
                lockedMAC: c.macLock ? c.mac.map { m in m.octets.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } } ?? 0 : 0,
                maxMACs: c.maxMACs.map { UInt32($0) } ?? UInt32.max, maxFrame: c.mtu + 14,
                floodLimit: c.floodLimit.map { UInt32(max(1, $0 / max(1, p.queuePairs))) } ?? 0))
            if c.monitor { membership.append([]) } else if let t = c.trunk {
                membership.append(t.all ? Array(1...4094) : t.ids)
            } else {
                membership.append([c.accessVLAN])
            }
        }
        shared = .allocate(capacity: 1)
        shared.initialize(to: SwitchShared(ports: infos, members: membership, table: table))

        macs = try plane.counter("switch.\(sc.name).macs", kind: .gauge, slot: plane.stats.controlSlot)
        aged = try plane.counter("switch.\(sc.name).aged", slot: plane.stats.controlSlot)
        flushed = try plane.counter("switch.\(sc.name).flushed", slot: plane.stats.controlSlot)

        // Every queue pair of every member gets one worker, round robin.
        var owners: [[Int]] = []
        for p in members {
            var qs: [Int] = []
            for q in 0..<p.queuePairs {
                let w = plane.nextWorkerIndex()
                qs.append(w)
                plane.own(transmitOf: p, queue: q, worker: w)
                try plane.own(receiveOf: p, queue: q, worker: w)
            }
            owners.append(qs)
        }
        // A ring into the owner of queue 0 of each port, for frames from workers that own
        // no queue of it (or whose queue the guest does not run).
        let workerCount = plane.workers.count
        var inbound: [IndexRing?] = members.map { _ in nil }
        for (i, p) in members.enumerated()
        where p.queuePairs > 1 || (0..<workerCount).contains(where: { !owners[i].contains($0) }) {
            let r = IndexRing.create(capacity: 1024, producers: .multi, consumers: .single)
            rings.append((r, p.tx(0), p.name))
            inbound[i] = r
        }
        for w in 0..<workerCount {
            var routes: [SwitchRoute] = []
            var portCounters: [PortCounters] = []
            for (i, p) in members.enumerated() {
                if let q = owners[i].firstIndex(of: w) {
                    let fallback = q == 0 ? nil : inbound[i]
                    routes.append(.local(p.tx(q), fallback: fallback, wakeFD: plane.workers[owners[i][0]].wakeFD))
                } else if let r = inbound[i] {
                    routes.append(.remote(r, wakeFD: plane.workers[owners[i][0]].wakeFD))
                } else {
                    routes.append(.down)
                }
                portCounters.append(try plane.portCounters(p.name, slot: w))
            }
            var sc_: [StatsCounter] = []
            for n in SwitchCounters.names { sc_.append(try plane.counter("switch.\(sc.name).\(n)", slot: w)) }
            let view = UnsafeMutablePointer<SwitchWorkerView>.allocate(capacity: 1)
            view.initialize(to: SwitchWorkerView(routes: routes, portCounters: portCounters, counters: SwitchCounters(sc_)))
            views.append(view)
        }
        for (i, p) in members.enumerated() {
            for q in 0..<p.queuePairs {
                let w = owners[i][q]
                let source = SwitchPortQueue(shared: shared, view: views[w], port: i, rx: p.rx(q), tx: p.tx(q),
                                             inbound: q == 0 ? inbound[i] : nil)
                try plane.addPollEntry(.make(source, PollEntry.switchQueue), worker: w, polling: p, queue: q)
            }
        }
    }

    func housekeeping(now: UInt64) {
        let seconds = now / 1_000_000_000
        fdb.setNow(seconds: seconds)
        for (i, p) in members.enumerated() {
            let up = p.isUp
            if wasUp[i] && !up { flushPending.insert(i) }
            wasUp[i] = up
        }
        if !flushPending.isEmpty || now &- lastSweep >= 1_000_000_000 {
            lastSweep = now
            let flush = flushPending
            flushPending.removeAll()
            let r = shared.pointee.table.sweep(now: UInt32(truncatingIfNeeded: seconds), aging: UInt32(config.aging),
                                               ports: members.count, flush: { flush.contains($0) })
            aged.add(UInt64(r.aged))
            flushed.add(UInt64(r.flushed))
        }
        macs.set(UInt64(shared.pointee.table.count))
    }

    var counterNames: [String] {
        (["macs", "aged", "flushed"] + SwitchCounters.names).map { "switch.\(config.name).\($0)" }
    }

    func teardown(_ plane: Dataplane) {
        for v in views { v.deinitialize(count: 1); v.deallocate() }
        views.removeAll()
        // Frames handed between workers and not sent yet: delivered now (the owner of the
        // queue is paused or stopped, so the control thread may write it); what does not
        // fit is dropped and counted there, like any frame (rx in = tx out + drops).
        let ctx = WorkerContext(worker: plane.workerCapacity, cache: plane.controlCache, now: 0, eventMode: false,
                                allocFail: .discard)
        for (r, tx, port) in rings {
            let counters = (try? plane.portCounters(port, slot: plane.stats.controlSlot)) ?? .discard
            while true {
                var batch = PacketBatch()
                let n = batch.withIndices { r.dequeueBurst($0, PacketBatch.capacity) }
                if n == 0 { break }
                batch.count = n
                _ = tx.transmit(&batch, ctx, counters)
            }
            tx.settle()
            r.destroy()
        }
        rings.removeAll()
        shared.pointee.deallocate()
        shared.deinitialize(count: 1)
        shared.deallocate()
        counts.deallocate()
        fdb.remove()
    }
}
