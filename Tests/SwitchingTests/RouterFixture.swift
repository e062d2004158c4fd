#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Memory
import Platform
import Ports
import Stats
import Switching
import Virtio
import XCTest

/// One member port of a test network: its MTU and the MAC it is configured with (nil: it
/// binds the first sender).
struct RouterTestPort {
    var mtu = 1500
    var mac: [UInt8]? = nil
}

/// A routed network of mock vhost guests driven in-process, one worker: each port is a
/// guest whose TX ring feeds the port's `RouterQueue` and whose RX ring gets what the
/// router sends it. Routes are given as (prefix, length, port).
final class RouterFixture {
    static let rxBufferSize = 2100
    static let routerMAC: [UInt8] = [0x02, 0x52, 0x54, 0x00, 0xAA, 0x01]

    let pool: Mempool
    let stats: StatsWriter
    let ports: [RouterTestPort]
    let memories: [MockMemory]
    let guestTX: [MockQueue]
    let guestRX: [MockQueue]
    let segs: [SegmentList]
    let punt: IndexRing
    let puntFD: Int32
    let shared: UnsafeMutablePointer<RouterShared>
    let view: UnsafeMutablePointer<RouterWorkerView>
    let queues: [RouterQueue]
    let allocFail: StatsCounter
    /// CLOCK_MONOTONIC the worker sees (ns); never 0.
    var now: UInt64 = 50_000_000_000
    let baseline: Int

    init(_ ports: [RouterTestPort], routes4: [(prefix: UInt32, length: Int, port: Int)],
         routes6: [(high: UInt64, low: UInt64, length: Int, port: Int)], global6: (UInt64, UInt64) = (0, 0),
         puntCapacity: Int = 64) throws {
        self.ports = ports
        pool = try Mempool(name: "rttest-\(UUID().uuidString.prefix(8))", count: 1024, caches: 2, policy: .off)
        stats = try StatsWriter(path: FileManager.default.temporaryDirectory.path + "/sluice-rttest-\(UUID().uuidString).stats",
                                slots: 1)
        var memories: [MockMemory] = [], tx: [MockQueue] = [], rx: [MockQueue] = [], segs: [SegmentList] = []
        for _ in ports {
            let m = try MockMemory(size: 8 << 20)
            memories.append(m)
            tx.append(MockQueue(memory: m, size: 256))
            let r = MockQueue(memory: m, size: 256)
            r.postRX(bufferSize: Self.rxBufferSize, count: 128)
            rx.append(r)
            segs.append(SegmentList.allocate())
            segs.append(SegmentList.allocate())
        }
        self.memories = memories; guestTX = tx; guestRX = rx; self.segs = segs
        punt = IndexRing.create(capacity: puntCapacity, producers: .multi, consumers: .single)
        puntFD = try EventFD.create()
        shared = .allocate(capacity: 1)
        shared.initialize(to: RouterShared(
            ports: ports.map { RouterPortInfo(maxFrame: $0.mtu + 14) },
            macs: ports.map { $0.mac.map(MACKey.from) ?? 0 },
            routes4: PrefixTable4(routes4), routes6: PrefixTable6(routes6),
            routerMAC: MACKey.from(Self.routerMAC), global6: global6, punt: punt, puntFD: puntFD))
        // The network's own ranges: 10.0.0.0/24 and fd00::/64 (the ports' addresses).
        shared.pointee.subnet4 = 0x0A00_0000
        shared.pointee.subnet4Mask = 0xFFFF_FF00
        shared.pointee.prefix6High = 0xFD00_0000_0000_0000
        shared.pointee.prefix6Mask = ~0
        let st = stats
        func counter(_ name: String) throws -> StatsCounter { st.counter(try st.lookup(name) ?? st.register(name), slot: 0) }
        var portCounters: [PortCounters] = []
        for i in ports.indices {
            portCounters.append(PortCounters(try PortCounters.names.map { try counter("port.p\(i).\($0)") }))
        }
        let routerCounters = RouterCounters(try RouterCounters.names.map { try counter("router.\($0)") })
        allocFail = try counter("alloc_fail")
        view = .allocate(capacity: 1)
        view.initialize(to: RouterWorkerView(
            routes: ports.indices.map { .local(.vhost(VhostTx(queue: rx[$0].queue, segs: segs[2 * $0 + 1])), fallback: nil, wakeFD: -1) },
            portCounters: portCounters, counters: routerCounters))
        let (sh, vw) = (shared, view)
        queues = ports.enumerated().map { i, p in
            RouterQueue(shared: sh, view: vw, port: i,
                        rx: .vhost(VhostRx(queue: tx[i].queue, segs: segs[2 * i], maxFrame: p.mtu + 18)),
                        tx: .vhost(VhostTx(queue: rx[i].queue, segs: segs[2 * i + 1])), inbound: nil)
        }
        baseline = pool.inUse
    }

    deinit {
        for q in queues { q.release() }
        while let i = punt.dequeue() { pool.cache(1).free(Packet(index: i)) }
        view.deinitialize(count: 1)
        view.deallocate()
        shared.pointee.deallocate()
        shared.deinitialize(count: 1)
        shared.deallocate()
        punt.destroy()
        close(puntFD)
        for s in segs { s.deallocate() }
        stats.remove()
    }

    var context: WorkerContext { WorkerContext(worker: 0, cache: pool.cache(0), now: now, eventMode: false, allocFail: allocFail) }

    /// Guest `p` transmits `frames`; the router polls that port.
    @discardableResult
    func send(_ p: Int, _ frames: [UInt8]...) -> Int { send(p, frames) }

    @discardableResult
    func send(_ p: Int, _ frames: [[UInt8]]) -> Int {
        var n = 0
        for chunk in stride(from: 0, to: frames.count, by: 64) {
            for f in frames[chunk..<min(frames.count, chunk + 64)] { guestTX[p].postTX(f) }
            while true {
                let w = queues[p].poll(context)
                if w == 0 { break }
                n += w
            }
        }
        return n
    }

    /// The frames guest `p` received since the last call (virtio header removed).
    func received(_ p: Int) -> [[UInt8]] {
        let q = guestRX[p]
        let used = q.takeUsed()
        let h = q.state.pointee.headerSize
        if !used.isEmpty { q.postRX(bufferSize: Self.rxBufferSize, count: used.count) }
        return used.map { Array(q.readChain(UInt16($0.id), Int($0.len)).dropFirst(h)) }
    }

    /// What every port received: [port: frames], ports with nothing left out.
    func receivedAll() -> [Int: [[UInt8]]] {
        var out: [Int: [[UInt8]]] = [:]
        for p in ports.indices {
            let r = received(p)
            if !r.isEmpty { out[p] = r }
        }
        return out
    }

    /// The frames punted to the control thread so far, with the port each is tagged with.
    func takePunted() -> [(port: Int, frame: [UInt8])] {
        var out: [(Int, [UInt8])] = []
        while let i = punt.dequeue() {
            let p = Packet(index: i)
            let port = Int(pool.ref.buffer(p).load(fromByteOffset: BufferLayout.portOffset, as: UInt16.self))
            out.append((port, [UInt8](UnsafeRawBufferPointer(start: pool.ref.data(p), count: pool.ref.length(p)))))
            pool.cache(1).free(p)
        }
        return out
    }

    func counter(_ p: Int, _ name: String) -> UInt64 { stats.lookup("port.p\(p).\(name)").map { stats.total($0) } ?? .max }
    func routerCounter(_ name: String) -> UInt64 { stats.lookup("router.\(name)").map { stats.total($0) } ?? .max }

    /// Non-zero drop counters, "p1.drop.ttl" → n.
    func drops() -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for p in ports.indices {
            for name in PortCounters.names where name.hasPrefix("drop.") && counter(p, name) != 0 { out["p\(p).\(name)"] = counter(p, name) }
        }
        return out
    }

    func assertNoLeak(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(pool.inUse, baseline, "mempool buffers in use", file: file, line: line)
        for p in ports.indices {
            XCTAssertEqual(view.pointee.staged[p].count, 0, "frames left staged for port \(p)", file: file, line: line)
        }
    }
}

// MARK: Frames (built here, checksums computed here: independent of the code under test)

enum Net {
    static let gateway4: UInt32 = 0xA9FE_0001
    static let gateway6: (UInt64, UInt64) = (0xFE80_0000_0000_0000, 1)

    static func station(_ n: UInt8) -> [UInt8] { [0x02, 0, 0, 0, 0, n] }
    static func be16(_ v: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
    static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }
    static func be64(_ v: UInt64) -> [UInt8] { be32(UInt32(truncatingIfNeeded: v >> 32)) + be32(UInt32(truncatingIfNeeded: v)) }
    static func addr6(_ a: (UInt64, UInt64)) -> [UInt8] { be64(a.0) + be64(a.1) }
    static func word(_ f: [UInt8], _ at: Int) -> Int { Int(f[at]) << 8 | Int(f[at + 1]) }

    /// The one's complement sum of `bytes` plus `initial`, folded (not complemented).
    static func sum(_ bytes: ArraySlice<UInt8>, initial: UInt32 = 0) -> UInt16 {
        var s = UInt64(initial)
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex { s += UInt64(bytes[i]) << 8 | UInt64(bytes[i + 1]); i += 2 }
        if i < bytes.endIndex { s += UInt64(bytes[i]) << 8 }
        while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
        return UInt16(s)
    }

    static func pseudo6(_ f: [UInt8], length: Int) -> UInt32 { UInt32(sum(f[22..<54])) + UInt32(length) + 58 }

    /// Ethernet + IPv4 (20-byte header, valid checksum) + `l4`.
    static func ipv4(from src: [UInt8], to dst: [UInt8] = RouterFixture.routerMAC, _ s: UInt32, _ d: UInt32, proto: UInt8,
                     ttl: UInt8 = 64, df: Bool = false, id: Int = 0x1234, _ l4: [UInt8]) -> [UInt8] {
        var ip: [UInt8] = [0x45, 0] + be16(20 + l4.count) + be16(id) + (df ? [0x40, 0] : [0, 0]) + [ttl, proto, 0, 0]
        ip += be32(s) + be32(d)
        let c = ~sum(ip[...])
        ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xFF)
        return dst + src + [0x08, 0x00] + ip + l4
    }

    static func udp(_ sport: Int, _ dport: Int, payload: Int) -> [UInt8] {
        be16(sport) + be16(dport) + be16(8 + payload) + [0, 0] + (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
    }

    /// An ICMP message with a valid checksum.
    static func icmp(type: UInt8, code: UInt8 = 0, rest: [UInt8]) -> [UInt8] {
        var m = [type, code, 0, 0] + rest
        let c = ~sum(m[...])
        m[2] = UInt8(c >> 8); m[3] = UInt8(c & 0xFF)
        return m
    }

    /// Ethernet + IPv6 + `payload` (next header `next`).
    static func ipv6(from src: [UInt8], to dst: [UInt8] = RouterFixture.routerMAC, _ s: (UInt64, UInt64), _ d: (UInt64, UInt64),
                     next: UInt8, hop: UInt8 = 64, _ payload: [UInt8]) -> [UInt8] {
        dst + src + [0x86, 0xDD, 0x60, 0, 0, 0] + be16(payload.count) + [next, hop] + addr6(s) + addr6(d) + payload
    }

    /// IPv6 with an ICMPv6 message whose checksum is valid.
    static func icmp6(from src: [UInt8], to dst: [UInt8] = RouterFixture.routerMAC, _ s: (UInt64, UInt64), _ d: (UInt64, UInt64),
                      type: UInt8, hop: UInt8 = 64, rest: [UInt8]) -> [UInt8] {
        var f = ipv6(from: src, to: dst, s, d, next: 58, hop: hop, [type, 0, 0, 0] + rest)
        let c = ~sum(f[54...], initial: pseudo6(f, length: f.count - 54))
        f[56] = UInt8(c >> 8); f[57] = UInt8(c & 0xFF)
        return f
    }

    static func ipv4HeaderValid(_ f: [UInt8]) -> Bool { sum(f[14..<(14 + Int(f[14] & 15) * 4)]) == 0xFFFF }
    static func icmp4Valid(_ f: [UInt8]) -> Bool { sum(f[(14 + Int(f[14] & 15) * 4)..<(14 + word(f, 16))]) == 0xFFFF }
    static func icmp6Valid(_ f: [UInt8]) -> Bool { sum(f[54..<(54 + word(f, 18))], initial: pseudo6(f, length: word(f, 18))) == 0xFFFF }
}

/// A deterministic generator (SplitMix64), so a failing random case is the same next run.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
