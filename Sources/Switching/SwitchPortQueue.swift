import CSluice
import Memory
import Platform
import Ports
import Stats
import Virtio

/// One queue of one switch port, polled by the worker that owns it: hands frames
/// other workers queued for the port to its transmit side, then receives a burst,
/// classifies it (VLAN, learning, lookup) and stages every frame for its
/// destination(s), and sends each destination its frames in one burst.
@frozen
public struct SwitchPortQueue: PortQueueSource, @unchecked Sendable {
    public let shared: UnsafeMutablePointer<SwitchShared>
    public let view: UnsafeMutablePointer<SwitchWorkerView>
    /// The switch's index of this port.
    public let port: Int
    public let rx: PortRx
    public let tx: PortTx
    /// Frames other workers queued for this port (only on the queue that drains it).
    public let inbound: IndexRing?
    /// Tokens for `flood-limit` (this queue's share): tokens (u64 at 0), last refill ns (u64 at 8).
    public let floodState: UnsafeMutablePointer<UInt64>

    public init(shared: UnsafeMutablePointer<SwitchShared>, view: UnsafeMutablePointer<SwitchWorkerView>, port: Int,
                rx: PortRx, tx: PortTx, inbound: IndexRing?) {
        self.shared = shared; self.view = view; self.port = port; self.rx = rx; self.tx = tx; self.inbound = inbound
        floodState = .allocate(capacity: 2)
        floodState.initialize(repeating: 0, count: 2)
    }

    public func release() { floodState.deallocate() }

    @inlinable
    public func poll(_ ctx: WorkerContext) -> Int {
        var work = 0
        let counters = view.pointee.portCounters[port]
        work &+= drainInbound(ctx, counters)
        let info = shared.pointee.ports[port]
        if case .vhost(let vrx) = rx, !info.trunk && !info.monitor && shared.pointee.monitorCount == 0 {
            return work &+ pollVhostDirect(vrx, info, ctx, counters)
        }
        var batch = PacketBatch()
        let taken = rx.receive(into: &batch, limit: PacketBatch.capacity, ctx, counters)
        if taken == 0 {
            if work == 0 { rx.settle(); tx.settle() }
            return work
        }
        work &+= taken
        if info.monitor {
            counters.dropMonitorTx.add(UInt64(batch.count))
            let n = batch.count
            batch.withIndices { ctx.cache.free($0, n) }
            return work
        }
        var dirty = Dirty()
        for i in 0..<batch.count { forward(batch[i], info, ctx, counters, &dirty) }
        view.pointee.egress.flushAll(dirty, ctx)
        return work
    }

    public typealias Dirty = DirtyPorts

    /// Admit one frame (VLAN, port security, learning) and stage it for its destinations.
    @inlinable
    func forward(_ p: Packet, _ info: SwitchPortInfo, _ ctx: WorkerContext, _ c: PortCounters, _ dirty: inout Dirty) {
        let pool = ctx.pool
        let sw = shared.pointee
        var f = pool.frame(p)
        let type = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        var vlan: UInt16
        if type == 0x8100 {
            let vid = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 14, as: UInt16.self)) & 0x0fff
            if pool.length(p) < 18 { c.dropBadLength.increment(); ctx.cache.free(p); return }
            if vid == 0 {
                // A priority tag (802.1p, VID 0): the frame is untagged as far as VLANs go.
                pool.popTag(p)
                f = pool.frame(p)
                if info.trunk && info.nativeVLAN == 0 { c.dropVLAN.increment(); ctx.cache.free(p); return }
                vlan = info.trunk ? info.nativeVLAN : info.accessVLAN
            } else {
                if !info.trunk || !sw.carries(port, vid) { c.dropVLAN.increment(); ctx.cache.free(p); return }
                pool.popTag(p)
                f = pool.frame(p)
                vlan = vid
            }
        } else if info.trunk {
            if info.nativeVLAN == 0 { c.dropVLAN.increment(); ctx.cache.free(p); return }
            vlan = info.nativeVLAN
        } else {
            vlan = info.accessVLAN
        }
        pool.setVLAN(p, vlan)
        // Source: a multicast source is not a station (as a Linux bridge, drop it).
        if f.load(fromByteOffset: 6, as: UInt8.self) & 1 != 0 { c.dropBadLength.increment(); ctx.cache.free(p); return }
        let src = MacTable.key(mac: f + 6, vlan: 0)
        if info.lockedMAC != 0 && src != info.lockedMAC { c.dropMacLock.increment(); ctx.cache.free(p); return }
        if !learn(src | UInt64(vlan) << 48, info, ctx, c) { ctx.cache.free(p); return }
        var dest = -1
        if f.load(as: UInt8.self) & 1 == 0 {
            dest = sw.table.lookup(MacTable.key(mac: f, vlan: vlan))
            if dest == port { ctx.cache.free(p); return }   // already on its segment
        }
        if dest >= 0 && !sw.ports[dest].monitor {
            // The monitor sees what is forwarded: not a frame the destination's MTU refuses.
            if sw.monitorCount > 0 && pool.length(p) <= sw.ports[dest].maxFrame { mirror(p, vlan, ctx, &dirty) }
            emit(p, vlan, to: dest, ctx, &dirty)
            return
        }
        if info.floodLimit != 0 && !takeFloodToken(info.floodLimit, now: ctx.now) {
            c.dropFloodLimit.increment(); ctx.cache.free(p); return
        }
        if sw.monitorCount > 0 { mirror(p, vlan, ctx, &dirty) }
        flood(p, vlan, ctx, c, &dirty)
    }

    /// Learn source `key` on this port and count what happened. False: the port has its
    /// `max-macs` already and the frame is dropped (counted here).
    @inlinable
    func learn(_ key: UInt64, _ info: SwitchPortInfo, _ ctx: WorkerContext, _ c: PortCounters) -> Bool {
        switch shared.pointee.table.learn(key, port: port, now: ctx.nowSeconds, portLimit: info.maxMACs) {
        case .known: break
        case .learned: view.pointee.counters.learned.increment()
        case .moved: view.pointee.counters.moved.increment()
        case .tableFull: view.pointee.counters.tableFull.increment()
        case .portFull: c.dropMaxMACs.increment(); return false
        }
        return true
    }

    /// Broadcast, multicast or unknown unicast (past the flood limit): a copy to every other
    /// port of the VLAN.
    @inlinable
    func flood(_ p: Packet, _ vlan: UInt16, _ ctx: WorkerContext, _ c: PortCounters, _ dirty: inout Dirty) {
        let sw = shared.pointee
        c.floodPackets.increment()
        var last = -1
        for q in 0..<sw.portCount where q != port && !sw.ports[q].monitor && sw.carries(q, vlan) {
            if last >= 0 {
                if let copy = ctx.pool.clone(p, cache: ctx.cache) { emit(copy, vlan, to: last, ctx, &dirty) } else {
                    ctx.allocFail.increment(); view.pointee.portCounters[last].dropNoBuffer.increment()
                }
            }
            last = q
        }
        if last >= 0 { emit(p, vlan, to: last, ctx, &dirty) } else { ctx.cache.free(p) }
    }

    /// A tagged copy for every monitor port.
    @inlinable
    func mirror(_ p: Packet, _ vlan: UInt16, _ ctx: WorkerContext, _ dirty: inout Dirty) {
        let sw = shared.pointee
        for k in 0..<sw.monitorCount {
            let m = Int(sw.monitors[k])
            guard let copy = ctx.pool.clone(p, cache: ctx.cache) else {
                ctx.allocFail.increment(); view.pointee.portCounters[m].dropNoBuffer.increment(); continue
            }
            ctx.pool.pushTag(copy, tci: vlan)
            stage(copy, to: m, ctx, &dirty)
        }
    }

    /// Tag for the destination as it needs, check its MTU, stage.
    @inlinable
    func emit(_ p: Packet, _ vlan: UInt16, to d: Int, _ ctx: WorkerContext, _ dirty: inout Dirty) {
        let di = shared.pointee.ports[d]
        if ctx.pool.length(p) > di.maxFrame {
            view.pointee.portCounters[d].dropMTU.increment(); ctx.cache.free(p); return
        }
        if di.trunk && vlan != di.nativeVLAN { ctx.pool.pushTag(p, tci: vlan) }
        stage(p, to: d, ctx, &dirty)
    }

    @inlinable
    func stage(_ p: Packet, to d: Int, _ ctx: WorkerContext, _ dirty: inout Dirty) {
        view.pointee.egress.stage(p, to: d, ctx, &dirty)
    }

    @inlinable
    func flush(_ d: Int, _ ctx: WorkerContext) { view.pointee.egress.flush(d, ctx) }

    /// Token bucket: `limit` per second, bursts up to one second's worth.
    @inlinable
    func takeFloodToken(_ limit: UInt32, now: UInt64) -> Bool {
        var tokens = floodState[0]
        let last = floodState[1]
        if last == 0 {
            tokens = UInt64(limit)
            floodState[1] = now
        } else if now > last {
            let dt = min(now &- last, 1_000_000_000)
            let add = dt &* UInt64(limit) / 1_000_000_000
            if add > 0 {
                tokens = min(UInt64(limit), tokens &+ add)
                floodState[1] = now
            }
        }
        if tokens == 0 { floodState[0] = 0; return false }
        floodState[0] = tokens &- 1
        return true
    }
}
