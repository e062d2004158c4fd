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

/// One port of a test switch: its configuration, and which worker owns its queue.
struct TestPort {
    var info: SwitchPortInfo
    var vlans: [Int]
    var owner = 0

    static func access(_ vlan: UInt16, mtu: Int = 1500, lockedMAC: UInt64 = 0, maxMACs: UInt32 = .max,
                       floodLimit: UInt32 = 0) -> TestPort {
        TestPort(info: SwitchPortInfo(accessVLAN: vlan, nativeVLAN: 0, trunk: false, monitor: false, lockedMAC: lockedMAC,
                                      maxMACs: maxMACs, maxFrame: mtu + 14, floodLimit: floodLimit),
                 vlans: [Int(vlan)])
    }

    static func trunk(_ vlans: [Int], native: UInt16 = 0, mtu: Int = 1500) -> TestPort {
        TestPort(info: SwitchPortInfo(accessVLAN: 0, nativeVLAN: native, trunk: true, monitor: false, lockedMAC: 0,
                                      maxMACs: .max, maxFrame: mtu + 14, floodLimit: 0),
                 vlans: vlans)
    }

    static func monitor(mtu: Int = 1500) -> TestPort {
        TestPort(info: SwitchPortInfo(accessVLAN: 0, nativeVLAN: 0, trunk: false, monitor: true, lockedMAC: 0,
                                      maxMACs: .max, maxFrame: mtu + 14, floodLimit: 0),
                 vlans: [])
    }

    func owned(by w: Int) -> TestPort { var p = self; p.owner = w; return p }
}

/// A switch of mock vhost guests driven in-process: each port is a guest whose TX
/// ring feeds the port's `SwitchPortQueue` and whose RX ring gets what the switch
/// sends it. Ports may belong to different "workers" (separate views, mempool caches
/// and stats slots), joined by the inbound rings as the builder makes them.
final class SwitchFixture {
    static let rxBufferSize = 2100

    let pool: Mempool
    let stats: StatsWriter
    let statsPath: String
    let ports: [TestPort]
    let memories: [MockMemory]
    /// Guest p's TX queue (frames into the switch) and RX queue (frames out of it).
    let guestTX: [MockQueue]
    let guestRX: [MockQueue]
    let segs: [SegmentList]
    let table: TableMemory
    let shared: UnsafeMutablePointer<SwitchShared>
    let views: [UnsafeMutablePointer<SwitchWorkerView>]
    /// Inbound ring of each port (only when more than one worker).
    let rings: [IndexRing?]
    let queues: [SwitchPortQueue]
    let allocFail: [StatsCounter]
    let workers: Int
    /// CLOCK_MONOTONIC the workers see (ns); never 0.
    var now: UInt64 = 50_000_000_000
    let baseline: Int

    init(_ ports: [TestPort], tableCapacity: Int = 256, tableLimit: Int = 128, ringCapacity: Int = 1024,
         rxBuffers: Int = 64, poolSize: Int = 1024, vhostMaxFrame: ((Int) -> Int)? = nil) throws {
        self.ports = ports
        workers = (ports.map(\.owner).max() ?? 0) + 1
        pool = try Mempool(name: "swtest-\(UUID().uuidString.prefix(8))", count: poolSize, caches: workers, policy: .off)
        statsPath = FileManager.default.temporaryDirectory.path + "/sluice-swtest-\(UUID().uuidString).stats"
        stats = try StatsWriter(path: statsPath, slots: workers)
        var memories: [MockMemory] = [], tx: [MockQueue] = [], rx: [MockQueue] = [], segs: [SegmentList] = []
        for _ in ports {
            let m = try MockMemory(size: 8 << 20)
            memories.append(m)
            tx.append(MockQueue(memory: m, size: 256))
            let r = MockQueue(memory: m, size: 256)
            r.postRX(bufferSize: Self.rxBufferSize, count: rxBuffers)
            rx.append(r)
            segs.append(SegmentList.allocate())
            segs.append(SegmentList.allocate())
        }
        self.memories = memories; guestTX = tx; guestRX = rx; self.segs = segs
        table = TableMemory(capacity: tableCapacity, ports: ports.count, limit: tableLimit)
        shared = .allocate(capacity: 1)
        shared.initialize(to: SwitchShared(ports: ports.map(\.info), members: ports.map(\.vlans), table: table.table))
        let workerCount = workers
        let rings: [IndexRing?] = ports.map { _ in
            workerCount > 1 ? IndexRing.create(capacity: ringCapacity, producers: .multi, consumers: .single) : nil
        }
        self.rings = rings
        var views: [UnsafeMutablePointer<SwitchWorkerView>] = []
        var allocFail: [StatsCounter] = []
        for w in 0..<workers {
            var routes: [SwitchRoute] = []
            var counters: [PortCounters] = []
            for (i, p) in ports.enumerated() {
                if p.owner == w {
                    routes.append(.local(.vhost(VhostTx(queue: rx[i].queue, segs: segs[2 * i + 1])), fallback: nil, wakeFD: -1))
                } else {
                    routes.append(.remote(rings[i]!, wakeFD: -1))
                }
                var c: [StatsCounter] = []
                for name in PortCounters.names {
                    c.append(stats.counter(try stats.lookup("port.p\(i).\(name)") ?? stats.register("port.p\(i).\(name)"), slot: w))
                }
                counters.append(PortCounters(c))
            }
            var sc: [StatsCounter] = []
            for name in SwitchCounters.names {
                sc.append(stats.counter(try stats.lookup("switch.\(name)") ?? stats.register("switch.\(name)"), slot: w))
            }
            allocFail.append(stats.counter(try stats.lookup("alloc_fail") ?? stats.register("alloc_fail"), slot: w))
            let v = UnsafeMutablePointer<SwitchWorkerView>.allocate(capacity: 1)
            v.initialize(to: SwitchWorkerView(routes: routes, portCounters: counters, counters: SwitchCounters(sc)))
            views.append(v)
        }
        self.views = views
        self.allocFail = allocFail
        let sharedState = shared
        queues = ports.enumerated().map { i, p in
            let maxFrame = vhostMaxFrame?(i) ?? p.info.maxFrame + 4
            return SwitchPortQueue(shared: sharedState, view: views[p.owner], port: i,
                                   rx: .vhost(VhostRx(queue: tx[i].queue, segs: segs[2 * i], maxFrame: maxFrame)),
                                   tx: .vhost(VhostTx(queue: rx[i].queue, segs: segs[2 * i + 1])),
                                   inbound: rings[i])
        }
        baseline = pool.inUse
    }

    deinit {
        for q in queues { q.release() }
        for v in views { v.deinitialize(count: 1); v.deallocate() }
        shared.pointee.deallocate()
        shared.deinitialize(count: 1)
        shared.deallocate()
        for r in rings { r?.destroy() }
        for s in segs { s.deallocate() }
        stats.remove()
    }

    func context(_ w: Int) -> WorkerContext {
        WorkerContext(worker: w, cache: pool.cache(w), now: now, eventMode: false, allocFail: allocFail[w])
    }

    /// Poll port `p`'s queue once (as its owner).
    @discardableResult
    func poll(_ p: Int) -> Int { queues[p].poll(context(ports[p].owner)) }

    /// Guest `p` transmits `frames`; the switch polls that port.
    @discardableResult
    func send(_ p: Int, _ frames: [UInt8]...) -> Int { send(p, frames) }

    @discardableResult
    func send(_ p: Int, _ frames: [[UInt8]]) -> Int {
        for f in frames { guestTX[p].postTX(f) }
        return poll(p)
    }

    /// The frames guest `p` received since the last call (virtio header removed).
    func received(_ p: Int) -> [[UInt8]] {
        let q = guestRX[p]
        let used = q.takeUsed()
        let h = q.state.pointee.headerSize
        // Give the guest its buffers back, as a driver would.
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

    /// A port counter summed over the workers.
    func counter(_ p: Int, _ name: String) -> UInt64 {
        guard let id = stats.lookup("port.p\(p).\(name)") else { return .max }
        return stats.total(id)
    }

    func switchCounter(_ name: String) -> UInt64 {
        guard let id = stats.lookup("switch.\(name)") else { return .max }
        return stats.total(id)
    }

    /// Non-zero drop counters, "p1.drop.vlan" → n.
    func drops() -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for p in ports.indices {
            for name in PortCounters.names where name.hasPrefix("drop.") && counter(p, name) != 0 {
                out["p\(p).\(name)"] = counter(p, name)
            }
        }
        return out
    }

    /// Every buffer is back in the pool, except `inRings` frames left in rings on purpose.
    func assertNoLeak(inRings: Int = 0, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(pool.inUse, baseline + inRings, "mempool buffers in use", file: file, line: line)
        for v in views {
            for p in ports.indices {
                XCTAssertEqual(v.pointee.staged[p].count, 0, "frames left staged for port \(p)", file: file, line: line)
            }
        }
    }
}

// MARK: Frames

/// A locally administered unicast MAC for station `n`.
func mac(_ n: UInt8) -> [UInt8] { [0x02, 0, 0, 0, 0, n] }
let broadcastMAC: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]

/// The MAC table key (VLAN 0) of `mac(n)`: what `mac-lock` holds.
func macKey(_ n: UInt8) -> UInt64 { 0x0200_0000_0000 | UInt64(n) }

/// An Ethernet frame of `length` bytes (untagged length; a tag adds 4), optionally
/// 802.1Q-tagged with `tci`, with a payload pattern from `seed`.
func ethFrame(to dst: [UInt8], from src: [UInt8], tci: UInt16? = nil, length: Int = 64, seed: UInt8 = 0) -> [UInt8] {
    precondition(length >= 14)
    var f = dst + src
    if let t = tci { f += [0x81, 0x00, UInt8(t >> 8), UInt8(t & 0xff)] }
    f += [0x08, 0x00]
    f += (14..<length).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ Int(seed) &* 29 &+ 3) }
    return f
}

/// `f` with its 802.1Q tag removed (or nil when it has none).
func untagged(_ f: [UInt8]) -> [UInt8]? {
    guard f.count >= 18, f[12] == 0x81, f[13] == 0 else { return nil }
    return Array(f[0..<12] + f[16...])
}

/// The VLAN ID of a tagged frame, or nil.
func tagVID(_ f: [UInt8]) -> UInt16? {
    guard f.count >= 18, f[12] == 0x81, f[13] == 0 else { return nil }
    return (UInt16(f[14]) << 8 | UInt16(f[15])) & 0xfff
}
