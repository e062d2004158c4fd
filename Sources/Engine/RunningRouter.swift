#if canImport(Glibc)
import Glibc
#endif
import Config
import Memory
import Platform
import Ports
import Services
import Stats
import Switching

/// A network while the daemon runs: the state its workers share (ports, bound MACs,
/// route tables), and on the control thread its services — DHCPv4, DHCPv6, router
/// advertisements and neighbour discovery — fed by the frames the workers punt, with
/// their answers queued back to the port's owner. Address bindings from DHCP become
/// routes (tables swapped while the workers are paused).
final class RunningRouter: RunningElement {
    let config: NetworkConfig
    let members: [any DataplanePort]
    unowned let plane: Dataplane
    let shared: UnsafeMutablePointer<RouterShared>
    let service: NetworkServiceConfig
    let leases: LeaseStore
    private let dhcp4: DHCPv4Server?
    private let dhcp6: DHCPv6Server?
    private let ndp: NDPResponder?
    private let leaseSegment: LeaseSegment?
    private var views: [UnsafeMutablePointer<RouterWorkerView>] = []
    /// Per member: the ring into the owner of its queue 0 (frames from other workers and
    /// from the services), its transmit side, and the owner's wake-up fd.
    private var inbound: [(ring: IndexRing, tx: PortTx, wakeFD: Int32)] = []
    private let puntFD: OwnedFD
    let wakeToken: UInt64
    /// Addresses bound by DHCP (the configured ones are always routed).
    private var dynamic4: [Int: IPv4Address] = [:]
    private var dynamic6: [Int: IPv6Address] = [:]
    private var wasUp: [Bool]
    private var lastRA: [UInt64]
    private var lastSolicit: [UInt64]
    private var lastExpiry: UInt64 = 0
    private var counters: [String: StatsCounter] = [:]
    private var lastPersistProblem: String?
    private var publishedGeneration: UInt64 = .max

    static let raInterval: UInt64 = 60_000_000_000
    static let solicitInterval: UInt64 = 5_000_000_000
    static let serviceCounterNames = [
        "dhcp4.discover", "dhcp4.offer", "dhcp4.request", "dhcp4.ack", "dhcp4.nak", "dhcp4.release", "dhcp4.decline",
        "dhcp4.inform", "dhcp4.refused", "dhcp6.solicit", "dhcp6.advertise", "dhcp6.request", "dhcp6.reply", "dhcp6.renew",
        "dhcp6.rebind", "dhcp6.release", "dhcp6.confirm", "dhcp6.information_request", "dhcp6.decline", "dhcp6.refused",
        "nd.adverts", "nd.refused", "nd.solicits", "ra.sent", "ra.suppressed", "dropped.malformed", "dhcp4.no_address",
    ]

    init(_ nc: NetworkConfig, plane: Dataplane) throws(EngineError) {
        config = nc
        self.plane = plane
        var members: [any DataplanePort] = []
        for name in nc.ports {
            guard let p = plane.port(named: name) else {
                throw EngineError("\(plane.config.file):\(nc.line): network \(nc.name): port \(name) did not start")
            }
            members.append(p)
        }
        self.members = members
        wasUp = members.map { _ in false }
        lastRA = members.map { _ in 0 }
        lastSolicit = members.map { _ in 0 }
        let mac = routerMAC(instance: plane.options.instance, network: nc.name)
        plane.logger.info("network \(nc.name): router MAC \(mac)")
        service = NetworkServiceConfig(
            name: nc.name, ipv4Subnet: nc.ipv4Subnet, ipv6Prefix: nc.ipv6Prefix, dns4: nc.dns4, dns6: nc.dns6,
            domain: nc.domain, leaseTime: UInt32(nc.leaseTime), mtu: members.map(\.config.mtu).min() ?? 1500, routerMAC: mac)
        let stateDir = plane.config.dataplane.stateDirectory
        do {
            try makeDirectories(stateDir)
            leases = try LeaseStore(network: service, path: stateDir + "/leases-" + nc.name)
        } catch {
            throw EngineError("\(plane.config.file):\(nc.line): network \(nc.name): leases in \(stateDir): \(error)")
        }
        // Static addresses of every member are never handed to another.
        leases.reserveStatics(members.map { p in
            ServicePort(name: p.name, mac: p.config.mac, staticIPv4: p.config.addressing.ipv4, staticIPv6: p.config.addressing.ipv6)
        })
        dhcp4 = nc.ipv4Subnet == nil ? nil : DHCPv4Server(network: service, leases: leases)
        dhcp6 = nc.ipv6Prefix == nil ? nil : DHCPv6Server(network: service, leases: leases, serverDUID: [0, 3, 0, 1] + mac.octets)
        ndp = nc.ipv6Prefix == nil ? nil : NDPResponder(network: service)
        leaseSegment = try? LeaseSegment(path: LeaseSegment.path(instance: plane.options.instance, network: nc.name), capacity: 4096)

        do { puntFD = OwnedFD(adopting: try EventFD.create()) } catch { throw EngineError("network \(nc.name): \(error)") }
        wakeToken = ElementToken.make(plane.building)
        let punt = IndexRing.create(capacity: 1024, producers: .multi, consumers: .single)
        let global6 = service.routerIPv6Global.map { ($0.high, $0.low) } ?? (0, 0)
        let bound = members.map { $0.config.mac.map { MACKey.from($0.octets) } ?? 0 }
        shared = .allocate(capacity: 1)
        shared.initialize(to: RouterShared(
            ports: members.map { RouterPortInfo(maxFrame: $0.config.mtu + 14) }, macs: bound,
            routes4: PrefixTable4([]), routes6: PrefixTable6([]), routerMAC: MACKey.from(mac.octets), global6: global6,
            punt: punt, puntFD: puntFD.raw))
        if let s = nc.ipv4Subnet {
            shared.pointee.subnet4 = s.address.value
            shared.pointee.subnet4Mask = IPv4Prefix.mask(s.length)
        }
        if let p = nc.ipv6Prefix {
            // Prefixes up to /64 (the config allows longer; their first 64 bits decide here).
            shared.pointee.prefix6High = p.address.high
            shared.pointee.prefix6Mask = IPv6Prefix.mask(min(p.length, 64)).0
        }
        // Leases members still hold (a restart, a reload): routed again at once.
        let now = Self.realtimeSeconds()
        for l in leases.all {
            guard let i = members.firstIndex(where: { $0.name == l.port }) else { continue }
            if let a = l.ipv4, l.state4 == .bound, l.expiry4 > now { dynamic4[i] = a }
            if let a = l.ipv6, l.state6 == .bound, l.expiry6 > now { dynamic6[i] = a }
        }
        rebuildRoutes(paused: true)

        for n in Self.serviceCounterNames {
            counters[n] = try plane.counter("network.\(nc.name).\(n)", slot: plane.stats.controlSlot)
        }
        counters["leases"] = try plane.counter("network.\(nc.name).leases", kind: .gauge, slot: plane.stats.controlSlot)
        try wire(plane)
        do { try plane.controlEpoll.add(puntFD.raw, token: wakeToken) } catch { throw EngineError("network \(nc.name): \(error)") }
        publishLeases()
    }

    /// Workers: one per member queue (round robin), a ring into every member's queue-0
    /// owner, a view per worker, a poll entry per queue.
    private func wire(_ plane: Dataplane) throws(EngineError) {
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
        for (i, p) in members.enumerated() {
            inbound.append((IndexRing.create(capacity: 1024, producers: .multi, consumers: .single), p.tx(0),
                            plane.workers[owners[i][0]].wakeFD))
        }
        for w in 0..<plane.workers.count {
            var routes: [SwitchRoute] = []
            var portCounters: [PortCounters] = []
            for (i, p) in members.enumerated() {
                if let q = owners[i].firstIndex(of: w) {
                    routes.append(.local(p.tx(q), fallback: q == 0 ? nil : inbound[i].ring, wakeFD: inbound[i].wakeFD))
                } else {
                    routes.append(.remote(inbound[i].ring, wakeFD: inbound[i].wakeFD))
                }
                portCounters.append(try plane.portCounters(p.name, slot: w))
            }
            var rc: [StatsCounter] = []
            for n in RouterCounters.names { rc.append(try plane.counter("network.\(config.name).\(n)", slot: w)) }
            let view = UnsafeMutablePointer<RouterWorkerView>.allocate(capacity: 1)
            view.initialize(to: RouterWorkerView(routes: routes, portCounters: portCounters, counters: RouterCounters(rc)))
            views.append(view)
        }
        for (i, p) in members.enumerated() {
            for q in 0..<p.queuePairs {
                let w = owners[i][q]
                let source = RouterQueue(shared: shared, view: views[w], port: i, rx: p.rx(q), tx: p.tx(q),
                                         inbound: q == 0 ? inbound[i].ring : nil)
                try plane.addPollEntry(.make(source, PollEntry.router), worker: w, polling: p, queue: q)
            }
        }
    }

    static func realtimeSeconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec)
    }

    // MARK: Routes

    /// Configured addresses and routed prefixes, plus what DHCP bound, as new tables.
    private func rebuildRoutes(paused: Bool) {
        var r4: [(prefix: UInt32, length: Int, port: Int)] = []
        var r6: [(high: UInt64, low: UInt64, length: Int, port: Int)] = []
        for (i, p) in members.enumerated() {
            let a = p.config.addressing
            if let v4 = a.ipv4 { r4.append((v4.value, 32, i)) } else if let v4 = dynamic4[i] { r4.append((v4.value, 32, i)) }
            if let v6 = a.ipv6 { r6.append((v6.high, v6.low, 128, i)) } else if let v6 = dynamic6[i] { r6.append((v6.high, v6.low, 128, i)) }
            for r in a.routed4 { r4.append((r.address.value, r.length, i)) }
            for r in a.routed6 { r6.append((r.address.high, r.address.low, r.length, i)) }
        }
        let t4 = PrefixTable4(r4), t6 = PrefixTable6(r6)
        let old4 = shared.pointee.routes4, old6 = shared.pointee.routes6
        let swap = { self.shared.pointee.routes4 = t4; self.shared.pointee.routes6 = t6 }
        if paused { swap() } else { plane.quiesce(swap) }
        old4.destroy()
        old6.destroy()
    }

    private func apply(_ events: [AddressEvent]) {
        var changed = false
        for e in events {
            switch e {
            case .bound4(let port, _, let a):
                if let i = members.firstIndex(where: { $0.name == port }), dynamic4[i] != a { dynamic4[i] = a; changed = true }
            case .released4(let port, _, let a):
                if let i = members.firstIndex(where: { $0.name == port }), dynamic4[i] == a { dynamic4[i] = nil; changed = true }
            case .bound6(let port, _, let a):
                if let i = members.firstIndex(where: { $0.name == port }), dynamic6[i] != a { dynamic6[i] = a; changed = true }
            case .released6(let port, _, let a):
                if let i = members.firstIndex(where: { $0.name == port }), dynamic6[i] == a { dynamic6[i] = nil; changed = true }
            }
        }
        if changed { rebuildRoutes(paused: false) }
        if !events.isEmpty { publishLeases() }
    }

    private func publishLeases() {
        publishedGeneration = leases.generation
        let all = leases.all
        counters["leases"]?.set(UInt64(all.count))
        leaseSegment?.publish(all.map { l in
            LeaseRow(mac: l.mac.octets, ipv4: l.ipv4?.octets, ipv6: l.ipv6?.bytes, port: l.port, expiry4: l.expiry4,
                     expiry6: l.expiry6, bound4: l.state4 == .bound, bound6: l.state6 == .bound)
        })
    }

    // MARK: Punted frames

    var wakeFD: Int32? { puntFD.raw }

    /// The workers handed frames over: answer each with the service it is for.
    func handleWakeup() {
        EventFD.drain(puntFD.raw)
        let pool = plane.mempool.ref
        let now = Self.realtimeSeconds()
        while let index = shared.pointee.punt.dequeue() {
            let p = Packet(index: index)
            let port = Int(pool.buffer(p).load(fromByteOffset: BufferLayout.portOffset, as: UInt16.self))
            let frame = [UInt8](UnsafeRawBufferPointer(start: pool.frame(p), count: pool.length(p)))
            plane.controlCache.free(p)
            guard port < members.count else { continue }
            answer(frame, from: port, now: now)
        }
    }

    func servicePort(_ i: Int) -> ServicePort {
        let p = members[i]
        let mac = shared.pointee.boundMAC(i)
        return ServicePort(name: p.name, mac: mac == 0 ? nil : MACAddress(bytes: Self.tuple(MACKey.octets(mac))),
                           staticIPv4: p.config.addressing.ipv4, staticIPv6: p.config.addressing.ipv6)
    }

    static func tuple(_ o: [UInt8]) -> (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) { (o[0], o[1], o[2], o[3], o[4], o[5]) }

    private func answer(_ frame: [UInt8], from i: Int, now: UInt64) {
        guard let parsed = ParsedFrame(frame) else {
            counters["dropped.malformed"]?.increment()
            return
        }
        let port = servicePort(i)
        var reply = ServiceReply.none
        switch parsed.transport {
        case .udp(_, 67, _): reply = dhcp4?.handle(parsed, port: port, now: now) ?? .none
        case .udp(_, 547, _): reply = dhcp6?.handle(parsed, port: port, now: now) ?? .none
        case .icmpv6: reply = ndp?.handle(parsed, port: port, now: now) ?? .none
        default: counters["dropped.malformed"]?.increment()
        }
        for c in reply.counters { counters[c]?.increment() }
        apply(reply.events)
        if let problem = leases.persistProblem, problem != lastPersistProblem {
            plane.logger.error("network \(config.name): \(problem)")
        }
        lastPersistProblem = leases.persistProblem
        if leases.generation != publishedGeneration { publishLeases() }
        if let f = reply.frame { send(f, to: i) }
    }

    /// Queue a frame the control thread built for member `i` (its queue-0 owner sends it).
    func send(_ frame: [UInt8], to i: Int) {
        guard frame.count <= BufferLayout.dataRoom, let p = plane.controlCache.alloc() else { return }
        let pool = plane.mempool.ref
        frame.withUnsafeBytes { pool.data(p).copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
        pool.setReceived(p, length: frame.count)
        if inbound[i].ring.enqueue(p.index) {
            EventFD.signal(inbound[i].wakeFD)
        } else {
            plane.controlCache.free(p)
        }
    }

    // MARK: Housekeeping

    func housekeeping(now: UInt64) {
        for (i, p) in members.enumerated() {
            let up = p.isUp
            if wasUp[i] && !up && p.config.mac == nil {
                // The guest went away: the next one may bring another MAC.
                shared.pointee.setBoundMAC(i, 0)
            }
            if up && (!wasUp[i] || now &- lastRA[i] >= Self.raInterval), let ndp {
                lastRA[i] = now
                send(ndp.routerAdvertisement(to: servicePort(i)), to: i)
                counters["ra.sent"]?.increment()
            }
            // A port with an IPv6 address but no bound MAC yet (a guest that has not sent a
            // frame): ask it, so its answer binds the MAC and traffic to it can flow.
            if up, shared.pointee.boundMAC(i) == 0, let ndp, now &- lastSolicit[i] >= Self.solicitInterval,
               let target = p.config.addressing.ipv6 ?? dynamic6[i] {
                lastSolicit[i] = now
                send(ndp.neighborSolicitation(for: target, port: servicePort(i)), to: i)
                counters["nd.solicits"]?.increment()
            }
            wasUp[i] = up
        }
        if now &- lastExpiry >= 1_000_000_000 {
            lastExpiry = now
            apply(leases.expire(now: Self.realtimeSeconds()))
        }
    }

    var counterNames: [String] {
        (Self.serviceCounterNames + ["leases"] + RouterCounters.names).map { "network.\(config.name).\($0)" }
    }

    func teardown(_ plane: Dataplane) {
        plane.controlEpoll.remove(puntFD.raw)
        for v in views { v.deinitialize(count: 1); v.deallocate() }
        views.removeAll()
        let ctx = WorkerContext(worker: plane.workerCapacity, cache: plane.controlCache, now: 0, eventMode: false, allocFail: .discard)
        for (i, entry) in inbound.enumerated() {
            let c = (try? plane.portCounters(members[i].name, slot: plane.stats.controlSlot)) ?? .discard
            while true {
                var batch = PacketBatch()
                let n = batch.withIndices { entry.ring.dequeueBurst($0, PacketBatch.capacity) }
                if n == 0 { break }
                batch.count = n
                _ = entry.tx.transmit(&batch, ctx, c)
            }
            entry.tx.settle()
            entry.ring.destroy()
        }
        inbound.removeAll()
        while let index = shared.pointee.punt.dequeue() { plane.controlCache.free(Packet(index: index)) }
        shared.pointee.punt.destroy()
        shared.pointee.deallocate()
        shared.deinitialize(count: 1)
        shared.deallocate()
        leaseSegment?.remove()
    }
}
