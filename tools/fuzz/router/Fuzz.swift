// libFuzzer target `router`: the L3 router's datapath (`RouterQueue.poll`: sender
// MAC binding and anti-spoofing, ARP and echo for the gateway, DHCP / neighbour
// discovery punted to the control thread, LPM routing with TTL / hop limit and
// checksum update, ICMP errors, hand-over between workers) over three or four mock
// vhost guests, with frames the input makes up.
//
// Routes: port k owns 10.0.0.(k+2)/32 and fd00::(k+2)/128; one port also has the
// routed prefixes 10.1.0.0/24 and fd00:0:0:1::/64. The router is 169.254.0.1 and
// fe80::1 (and fd00::1 when the global address is on), MAC 02:52:54:00:aa:01.
//
// Input layout:
//   byte 0  bits 0-3: port k has a configured MAC (02:00:00:00:00:k+1), else it
//           learns its first sender; bits 4-5: the port with the routed prefixes;
//           bit 6: the router has the global IPv6 address; bit 7: two workers (odd
//           ports on worker 1)
//   byte 1  two bits per port: MTU 1500, 1280, 9000, 576
//   byte 2  bits 0-2: guest RX buffers per port (× 9); bits 3-4: punt ring size
//           2, 8, 64, 1024; bit 5: three ports (else four)
//   then records, each an op byte and its bytes:
//     op bits 0-1  ingress port (mod the port count)
//     op bit 2     poll every port after posting
//     op bit 3     advance the clock by 0.3 s
//     op bit 4     compact: 8 bytes [kind, macs, src, dst, ttl, size, size-sel, seed]
//                  that Model.swift's `Compact` turns into a frame with consistent
//                  lengths and valid checksums; else raw: len_lo, len_hi, then
//                  (len % 2100) bytes of frame
//     op bits 6-7  1: the control thread drains the punt ring; 2: the ingress port's
//                  guest goes away (a learning port forgets its MAC); 3: both, after a poll
//
// Invariants (abort = a finding): no crash or ASan report; every frame a guest
// receives is explained by exactly one frame a guest sent (Oracle.swift: ARP reply,
// echo reply, ICMP error, or routed with TTL − 1, a valid header checksum, to a port
// its destination routes to, for the MAC bound there) and fits the port's MTU; every
// punted frame is an unmodified DHCP / ND frame from its port; after draining, every
// mempool buffer is back and nothing is left staged or queued; the counters add up
// (see `checkCounters`).
#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Memory
import Platform
import Ports
import RouterFuzzModel
import Stats
import Switching
import Virtio
import FuzzGuest

private func fail(_ what: String) -> Never {
    fputs("router fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private let maxPorts = 4
private let mtus = [1500, 1280, 9000, 576]


private let guests = (0..<maxPorts).map { FuzzGuest("fuzz-router-\($0)") }
/// Caches: worker 0, worker 1, the control thread.
private let pool: Mempool = {
    do { return try Mempool(name: "fuzz-router", count: 2048, caches: 3, policy: .off) } catch { fail("mempool: \(error)") }
}()
private let stats: StatsWriter = {
    do {
        let w = try StatsWriter(path: "/tmp/sluice-fuzz-router-\(getpid()).stats", slots: 2)
        w.remove()
        return w
    } catch { fail("stats: \(error)") }
}()
private func counterID(_ name: String) -> CounterID {
    do { return try stats.lookup(name) ?? stats.register(name) } catch { fail("register: \(error)") }
}
private let portIDs = (0..<maxPorts).map { p in PortCounters.names.map { counterID("port.p\(p).\($0)") } }
private let routerIDs = RouterCounters.names.map { counterID("router.\($0)") }
private let portCounters: [[PortCounters]] = (0..<2).map { w in
    (0..<maxPorts).map { p in PortCounters(portIDs[p].map { stats.counter($0, slot: w) }) }
}
private let routerCounters = (0..<2).map { w in RouterCounters(routerIDs.map { stats.counter($0, slot: w) }) }
private let allocFail = (0..<2).map { stats.counter(counterID("alloc_fail"), slot: $0) }
private let segs = (0..<(2 * maxPorts)).map { _ in SegmentList.allocate() }
private let inboundRings = (0..<maxPorts).map { _ in IndexRing.create(capacity: 4096, producers: .multi, consumers: .single) }
private let puntRings = [2, 8, 64, 1024].map { IndexRing.create(capacity: $0, producers: .multi, consumers: .single) }
private let puntFD: Int32 = { do { return try EventFD.create() } catch { fail("eventfd: \(error)") } }()

private func key(_ mac: [UInt8]) -> UInt64 { MACKey.from(mac) }

/// A snapshot of every counter, per slot.
private func snapshot() -> (ports: [[[UInt64]]], router: [[UInt64]]) {
    ((0..<2).map { w in portIDs.map { $0.map { stats.counter($0, slot: w).value } } },
     (0..<2).map { w in routerIDs.map { stats.counter($0, slot: w).value } })
}

@_cdecl("LLVMFuzzerTestOneInput")
public func routerFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzTargetName = "router"
    guard let data, size >= 3 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let portCount = input[2] & 0x20 != 0 ? 3 : 4
    let configured = (0..<portCount).map { input[0] >> $0 & 1 != 0 }
    let routedPort = Int(input[0] >> 4 & 3) % portCount
    let global = input[0] & 0x40 != 0
    let workers = input[0] & 0x80 != 0 ? 2 : 1
    let owner = (0..<portCount).map { workers == 2 ? $0 & 1 : 0 }
    let mtu = (0..<portCount).map { mtus[Int(input[1] >> (2 * $0) & 3)] }
    let limits = mtu.map { $0 + 14 }
    let rxLimit = mtu.map { min($0 + 18, BufferLayout.dataRoom) }   // what VhostRx accepts
    let puntRing = puntRings[Int(input[2] >> 3 & 3)]
    for g in guests { g.reset(rxCount: Int(input[2] & 7) * 9) }

    let model = RouteModel(ports: portCount, routedPort: routedPort)
    let oracle = Oracle(routes: model, limits: limits, global: global)
    for p in 0..<portCount where configured[p] { oracle.everBound[p].insert(station(p + 1)) }
    let shared = UnsafeMutablePointer<RouterShared>.allocate(capacity: 1)
    shared.initialize(to: RouterShared(
        ports: limits.map { RouterPortInfo(maxFrame: $0) },
        macs: (0..<portCount).map { configured[$0] ? key(station($0 + 1)) : 0 },
        routes4: PrefixTable4(model.v4), routes6: PrefixTable6(model.v6),
        routerMAC: key(routerMACBytes), global6: global ? global6 : (0, 0), punt: puntRing, puntFD: puntFD))
    var views: [UnsafeMutablePointer<RouterWorkerView>] = []
    for w in 0..<workers {
        let routes: [SwitchRoute] = (0..<portCount).map { p in
            owner[p] == w ? .local(.vhost(VhostTx(queue: guests[p].rx, segs: segs[2 * p + 1])), fallback: nil, wakeFD: -1)
                : .remote(inboundRings[p], wakeFD: -1)
        }
        let v = UnsafeMutablePointer<RouterWorkerView>.allocate(capacity: 1)
        v.initialize(to: RouterWorkerView(routes: routes, portCounters: Array(portCounters[w][0..<portCount]),
                                          counters: routerCounters[w]))
        views.append(v)
    }
    let queues = (0..<portCount).map { p in
        RouterQueue(shared: shared, view: views[owner[p]], port: p,
                    rx: .vhost(VhostRx(queue: guests[p].tx, segs: segs[2 * p], maxFrame: mtu[p] + 18)),
                    tx: .vhost(VhostTx(queue: guests[p].rx, segs: segs[2 * p + 1])),
                    inbound: workers > 1 ? inboundRings[p] : nil)
    }
    defer {
        for q in queues { q.release() }
        for v in views { v.deinitialize(count: 1); v.deallocate() }
        shared.pointee.deallocate()
        shared.deinitialize(count: 1)
        shared.deallocate()
    }
    let baseline = pool.inUse
    let before = snapshot()
    let start: UInt64 = 100_000_000_000
    var now = start
    var posted = [Int](repeating: 0, count: portCount)
    var rejected = [Int](repeating: 0, count: portCount)   // VhostRx: shorter than 14 or longer than it takes
    var oversize = [Int](repeating: 0, count: portCount)   // taken, but longer than the port's MTU allows
    var delivered = [Int](repeating: 0, count: portCount)

    func learnBindings() {
        for p in 0..<portCount {
            let k = shared.pointee.boundMAC(p)
            if k != 0 { oracle.everBound[p].insert(MACKey.octets(k)) }
        }
    }

    func pollAll(drain: Bool) {
        var rounds = 0
        repeat {
            var work = 0
            for p in 0..<portCount {
                let w = owner[p]
                let ctx = WorkerContext(worker: w, cache: pool.cache(w), now: now, eventMode: false, allocFail: allocFail[w])
                work += queues[p].poll(ctx)
            }
            learnBindings()
            for q in 0..<portCount {
                for f in guests[q].takeReceived(allowEmpty: false) {
                    delivered[q] += 1
                    if let problem = oracle.received(f, at: q) { fail(problem) }
                }
            }
            rounds += 1
            if work == 0 { break }
            if rounds > 1000 { fail("polling does not settle") }
        } while drain || guests[0..<portCount].contains(where: { $0.txPending > 0 })
    }

    func drainPunts() {
        let control = pool.cache(2)
        while let index = puntRing.dequeue() {
            let p = Packet(index: index)
            guard pool.ref.owns(index) else { fail("punt ring holds \(index), not a buffer") }
            let port = Int(pool.ref.buffer(p).load(fromByteOffset: BufferLayout.portOffset, as: UInt16.self))
            let f = [UInt8](UnsafeRawBufferPointer(start: pool.ref.data(p), count: pool.ref.length(p)))
            if let problem = oracle.punted(f, port: port) { fail(problem) }
            control.free(p)
        }
    }

    var at = 3
    while at < size {
        let op = input[at]
        at += 1
        let p = Int(op & 3) % portCount
        var frame: [UInt8]
        if op & 0x10 != 0 {
            var r = [UInt8](repeating: 0, count: 8)
            for k in 0..<8 where at + k < size { r[k] = input[at + k] }
            at += 8
            frame = Compact(r, port: p, ports: portCount).build(limits: limits)
        } else {
            guard at + 2 <= size else { break }
            let length = (Int(input[at + 1]) << 8 | Int(input[at])) % 2100
            at += 2
            let take = min(length, size - at)
            frame = [UInt8](UnsafeRawBufferPointer(rebasing: input[at..<(at + take)]))
            at += take
        }
        if guests[p].txPending >= Int(queueSize) - 1 { pollAll(drain: false) }
        if guests[p].txPending >= Int(queueSize) - 1 { continue }
        if op & 8 != 0 { now += 300_000_000 }
        posted[p] += 1
        if frame.count < 14 || frame.count > rxLimit[p] { rejected[p] += 1 } else if frame.count > limits[p] { oversize[p] += 1 }
        oracle.record(frame, ingress: p)
        guests[p].postTX(frame)
        if op & 4 != 0 || op >> 6 == 3 { pollAll(drain: false) }
        if op >> 6 & 1 != 0 { drainPunts() }
        if op >> 6 & 2 != 0 && !configured[p] { shared.pointee.setBoundMAC(p, 0) }
    }
    pollAll(drain: true)
    drainPunts()

    for r in inboundRings where r.count != 0 { fail("inbound ring left with \(r.count) frames") }
    for v in views { for p in 0..<portCount where v.pointee.staged[p].count != 0 { fail("frames left staged for port \(p)") } }
    guard pool.inUse == baseline else { fail("mempool: \(pool.inUse - baseline) buffers not returned") }
    checkCounters(before: before, after: snapshot(), ports: portCount, posted: posted, rejected: rejected, oversize: oversize,
                  delivered: delivered, oracle: oracle, elapsed: now - start)
    return 0
}

/// The counters add up. Per port p (rx = frames taken, tx = frames given):
///   rx(p) = posted(p) − rejected(p);  bad_length(p) = rejected(p) + oversize(p);  bad_desc(p) = 0;
///   tx(p) = frames guest p received.
/// Every frame taken ends in exactly one place:
///   Σ rx = routed + arp + echo + punted + Σ(malformed + spoofed_src + no_route + vlan + ttl + mtu
///          + no_buffer [a full punt ring] + oversize)
/// Everything the router staged (its answers, the routed frames, its ICMP errors) is given or dropped:
///   routed + arp + echo + icmp_errors = Σ(tx + no_rx_buffer + link_down)
/// Together (the identity a reader of the counters can check):
///   Σ rx + icmp_errors = Σ tx + Σ(every drop) − Σ rejected + punted
/// And the judge agrees: what the guests received of each kind is what the router counted,
/// less what found no RX buffer; every punted frame reached the control thread; ICMP errors
/// stay within the rate limit (100 a second per worker, bursts of 100).
private func checkCounters(before: (ports: [[[UInt64]]], router: [[UInt64]]), after: (ports: [[[UInt64]]], router: [[UInt64]]),
                           ports: Int, posted: [Int], rejected: [Int], oversize: [Int], delivered: [Int], oracle: Oracle,
                           elapsed: UInt64) {
    func port(_ p: Int, _ name: String) -> Int {
        let i = PortCounters.names.firstIndex(of: name)!
        return (0..<2).reduce(0) { $0 + Int(after.ports[$1][p][i] &- before.ports[$1][p][i]) }
    }
    func router(_ name: String, slot: Int? = nil) -> Int {
        let i = RouterCounters.names.firstIndex(of: name)!
        return (slot.map { [$0] } ?? [0, 1]).reduce(0) { $0 + Int(after.router[$1][i] &- before.router[$1][i]) }
    }
    func sum(_ name: String) -> Int { (0..<ports).reduce(0) { $0 + port($1, name) } }
    var table = ""
    for p in 0..<ports {
        table += "p\(p):"
        for n in PortCounters.names where port(p, n) != 0 { table += " \(n)=\(port(p, n))" }
        table += "; "
    }
    for n in RouterCounters.names { table += "\(n)=\(router(n)) " }
    func check(_ ok: Bool, _ what: String) { if !ok { fail("\(what) [\(table)]") } }
    if getenv("ROUTER_FUZZ_VERBOSE") != nil {
        fputs("router fuzz: \(table)\n  judged: \(Outcome.allCases.map { "\($0)=\(oracle.count($0))" }.joined(separator: " "))\n", stderr)
    }

    for p in 0..<ports {
        check(port(p, "rx_packets") == posted[p] - rejected[p], "p\(p) rx_packets != \(posted[p]) posted − \(rejected[p]) rejected")
        check(port(p, "drop.bad_length") == rejected[p] + oversize[p],
              "p\(p) drop.bad_length != \(rejected[p]) rejected + \(oversize[p]) over the MTU")
        check(port(p, "drop.bad_desc") == 0, "p\(p) drop.bad_desc")
        check(port(p, "tx_packets") == delivered[p], "p\(p) tx_packets != \(delivered[p]) frames the guest received")
    }
    let rx = sum("rx_packets"), tx = sum("tx_packets")
    let routed = router("routed_packets"), arp = router("arp.replies"), echo = router("icmp.echo_replies")
    let punted = router("punted"), errors = router("icmp.errors")
    let reasons = ["drop.malformed", "drop.spoofed_src", "drop.no_route", "drop.vlan", "drop.ttl", "drop.mtu", "drop.no_buffer",
                   "drop.other_network", "drop.flood_limit"].reduce(0) { $0 + sum($1) }
    let over = oversize.reduce(0, +)
    check(rx == routed + arp + echo + punted + reasons + over, "Σ rx_packets != answered + routed + punted + dropped")
    let staged = tx + sum("drop.no_rx_buffer") + sum("drop.link_down")
    check(routed + arp + echo + errors == staged, "routed + replies + errors != Σ(tx + no_rx_buffer + link_down)")
    let drops = PortCounters.names.filter { $0.hasPrefix("drop.") }.reduce(0) { $0 + sum($1) }
    check(rx + errors == tx + drops - rejected.reduce(0, +) + punted, "Σ rx + icmp.errors != Σ tx + Σ drops − rejected + punted")
    // Frames for the control thread beyond a queue's punt rate are dropped as flood_limit.
    check(punted == oracle.count(.punted), "punted \(punted), the control thread got \(oracle.count(.punted))")
    let lost = [(arp, oracle.count(.arp)), (echo, oracle.count(.echo4) + oracle.count(.echo6)),
                (errors, oracle.count(.error4) + oracle.count(.error6)),
                (routed, oracle.count(.routed4) + oracle.count(.routed6))]
    check(lost.allSatisfy { $0.0 >= $0.1 }, "guests received more of a kind than the router counted: \(lost)")
    check(lost.reduce(0) { $0 + $1.0 - $1.1 } == sum("drop.no_rx_buffer") + sum("drop.link_down"),
          "counted − received \(lost) != no_rx_buffer + link_down")
    for w in 0..<2 {
        let limit = 100 + Int(elapsed * 100 / 1_000_000_000)
        check(router("icmp.errors", slot: w) <= limit, "worker \(w) sent more ICMP errors than the limit (\(limit))")
    }
}
