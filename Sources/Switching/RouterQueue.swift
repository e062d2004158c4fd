import CSluice
import Memory
import Platform
import Ports
import Stats
import Virtio

/// One queue of one port of a routed network, polled by the worker that owns it:
/// hands on frames queued for the port (by other workers or the control thread),
/// receives a burst, and for each frame checks who sent it (the port's MAC and one of
/// its addresses), answers ARP and echo requests for the gateway in place, hands DHCP
/// and neighbour discovery to the control thread, and routes the rest: longest-prefix
/// match, TTL/hop limit, MACs rewritten. Every frame ends sent or with a drop reason.
@frozen
public struct RouterQueue: PortQueueSource, @unchecked Sendable {
    public let shared: UnsafeMutablePointer<RouterShared>
    public let view: UnsafeMutablePointer<RouterWorkerView>
    /// The network's index of this port.
    public let port: Int
    public let rx: PortRx
    public let tx: PortTx
    /// Frames queued for this port by other workers and the control thread (queue 0 only).
    public let inbound: IndexRing?
    /// Punt token bucket of this queue: tokens (u64 at 0), last refill ns (u64 at 8). A
    /// guest flooding DHCP or neighbour discovery cannot flood the control thread.
    public let puntBucket: UnsafeMutablePointer<UInt64>
    /// Frames per second a queue may hand to the control thread (bursts of as many).
    public static let puntsPerSecond: UInt64 = 200

    public static let gateway4: UInt32 = 0xA9FE_0001            // 169.254.0.1
    public static let gateway6High: UInt64 = 0xFE80_0000_0000_0000  // fe80::1

    public init(shared: UnsafeMutablePointer<RouterShared>, view: UnsafeMutablePointer<RouterWorkerView>, port: Int,
                rx: PortRx, tx: PortTx, inbound: IndexRing?) {
        self.shared = shared; self.view = view; self.port = port; self.rx = rx; self.tx = tx; self.inbound = inbound
        puntBucket = .allocate(capacity: 2)
        puntBucket.initialize(repeating: 0, count: 2)
    }

    public func release() { puntBucket.deallocate() }

    @inlinable
    public func poll(_ ctx: WorkerContext) -> Int {
        var work = 0
        let counters = view.pointee.portCounters[port]
        work &+= drainInbound(ctx, counters)
        var batch = PacketBatch()
        let taken = rx.receive(into: &batch, limit: PacketBatch.capacity, ctx, counters)
        if taken == 0 {
            if work == 0 { rx.settle(); tx.settle() }
            return work
        }
        var dirty = SwitchPortQueue.Dirty()
        var punted = false
        for i in 0..<batch.count { route(batch[i], ctx, counters, &dirty, &punted) }
        view.pointee.egress.flushAll(dirty, ctx)
        if punted { EventFD.signal(shared.pointee.puntFD) }
        return work &+ taken
    }

    @inlinable @inline(__always)
    func drop(_ p: Packet, _ counter: StatsCounter, _ ctx: WorkerContext) {
        counter.increment()
        ctx.cache.free(p)
    }

    /// Check one frame's sender, then answer, punt or route it.
    @inlinable
    func route(_ p: Packet, _ ctx: WorkerContext, _ c: PortCounters, _ dirty: inout SwitchPortQueue.Dirty, _ punted: inout Bool) {
        let pool = ctx.pool
        let f = pool.frame(p)
        let len = pool.length(p)
        if len < 14 { return drop(p, c.dropMalformed, ctx) }
        let sw = shared
        // The port takes frames with room for a VLAN tag, but a router port has no VLANs:
        // longer than the MTU allows is too long (an answer in place would be as long).
        if len > sw.pointee.ports[port].maxFrame { return drop(p, c.dropBadLength, ctx) }
        // The sender: one unicast MAC per port, bound by config or by its first frame.
        let src = MACKey.load(f + 6)
        if src & 1 != 0 || src == 0 { return drop(p, c.dropSpoofedSrc, ctx) }
        var bound = sw.pointee.boundMAC(port)
        if bound == 0 { bound = sw.pointee.bind(port, src) }
        if bound != src { return drop(p, c.dropSpoofedSrc, ctx) }
        let dst = MACKey.load(f)
        let toRouter = dst == sw.pointee.routerMAC
        let group = dst & 1 != 0
        if !toRouter && !group { return drop(p, c.dropNoRoute, ctx) }   // no L2 segment: only the router listens
        let type = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        switch type {
        case 0x0800: routeIPv4(p, f, len, toRouter, ctx, c, &dirty, &punted)
        case 0x86DD: routeIPv6(p, f, len, toRouter, ctx, c, &dirty, &punted)
        case 0x0806: answerARP(p, f, len, ctx, c, &dirty)
        case 0x8100: drop(p, c.dropVLAN, ctx)
        default: drop(p, c.dropNoRoute, ctx)
        }
    }

    // MARK: IPv4

    @inlinable
    func routeIPv4(_ p: Packet, _ f: UnsafeMutableRawPointer, _ len: Int, _ toRouter: Bool, _ ctx: WorkerContext,
                   _ c: PortCounters, _ dirty: inout SwitchPortQueue.Dirty, _ punted: inout Bool) {
        if len < 34 { return drop(p, c.dropMalformed, ctx) }
        let vihl = f.load(fromByteOffset: 14, as: UInt8.self)
        let ihl = Int(vihl & 0x0F) &* 4
        let total = Int(UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 16, as: UInt16.self)))
        if vihl >> 4 != 4 || ihl < 20 || total < ihl || 14 &+ total > len || 14 &+ ihl > len {
            return drop(p, c.dropMalformed, ctx)
        }
        if !Self.headerSumIsValid(f + 14, ihl) { return drop(p, c.dropMalformed, ctx) }
        let srcIP = UInt32(bigEndian: f.loadUnaligned(fromByteOffset: 26, as: UInt32.self))
        let dstIP = UInt32(bigEndian: f.loadUnaligned(fromByteOffset: 30, as: UInt32.self))
        let proto = f.load(fromByteOffset: 23, as: UInt8.self)
        if dstIP == Self.gateway4 || dstIP == 0xFFFF_FFFF {
            let l4 = 14 &+ ihl
            // DHCP (to the server port) goes to the control thread, before any address is owned.
            if proto == 17 && l4 &+ 8 <= 14 &+ total
                && UInt16(bigEndian: f.loadUnaligned(fromByteOffset: l4 &+ 2, as: UInt16.self)) == 67 {
                return punt(p, ctx, c, &punted)
            }
            if dstIP == Self.gateway4 && proto == 1 && sw4owns(srcIP) {
                return echo4(p, f, len, ihl, total, ctx, c, &dirty)
            }
            return drop(p, c.dropNoRoute, ctx)
        }
        if !toRouter { return drop(p, c.dropNoRoute, ctx) }
        let table = shared.pointee.routes4
        if table.lookup(srcIP) != port { return drop(p, c.dropSpoofedSrc, ctx) }
        let j = table.lookup(dstIP)
        if j < 0 {
            icmp4Error(f, ihl: ihl, total: total, .noRoute, ctx, &dirty)
            return drop(p, shared.pointee.unroutable4(dstIP) ? c.dropOtherNetwork : c.dropNoRoute, ctx)
        }
        let ttl = f.load(fromByteOffset: 22, as: UInt8.self)
        if ttl <= 1 {
            icmp4Error(f, ihl: ihl, total: total, .timeExceeded, ctx, &dirty)
            return drop(p, c.dropTTL, ctx)
        }
        let mac = shared.pointee.boundMAC(j)
        if mac == 0 { return drop(p, c.dropNoRoute, ctx) }
        let limit = shared.pointee.ports[j].maxFrame
        if len > limit {
            // Too big and not to be fragmented (DF): say how big may pass. Without DF: dropped too
            // (the router does not fragment), counted.
            if f.load(fromByteOffset: 20, as: UInt8.self) & 0x40 != 0 {
                icmp4Error(f, ihl: ihl, total: total, .tooBig(mtu: limit &- 14), ctx, &dirty)
            }
            return drop(p, view.pointee.portCounters[j].dropMTU, ctx)
        }
        // TTL - 1 with the header checksum updated incrementally (RFC 1624: HC' = ~(~HC + ~m + m')).
        let oldWord = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 22, as: UInt16.self))
        let newWord = oldWord &- 0x0100
        f.storeBytes(of: ttl &- 1, toByteOffset: 22, as: UInt8.self)
        let hc = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 24, as: UInt16.self))
        var sum = UInt32(~hc) &+ UInt32(~oldWord) &+ UInt32(newWord)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        f.storeBytes(of: (~UInt16(truncatingIfNeeded: sum)).bigEndian, toByteOffset: 24, as: UInt16.self)
        MACKey.store(mac, f)
        MACKey.store(shared.pointee.routerMAC, f + 6)
        view.pointee.counters.routed.increment()
        stage(p, to: j, ctx, &dirty)
    }

    /// The IPv4 header checksum holds: the ones' complement sum of the `ihl` bytes (a
    /// multiple of 4) is 0xFFFF. Summed as native 32-bit words and folded (RFC 1071: the
    /// sum does not depend on word size or byte order, and 0xFFFF reads the same either
    /// way) — five loads instead of the byte-pair loop of `onesComplementSum`.
    @inlinable @inline(__always)
    static func headerSumIsValid(_ h: UnsafeRawPointer, _ ihl: Int) -> Bool {
        var sum: UInt64 = 0
        var k = 0
        while k < ihl { sum &+= UInt64(h.loadUnaligned(fromByteOffset: k, as: UInt32.self)); k &+= 4 }
        sum = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        sum = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        return sum == 0xFFFF
    }

    /// The source address belongs to this port (its /32 or a prefix routed to it).
    @inlinable @inline(__always)
    func sw4owns(_ ip: UInt32) -> Bool { shared.pointee.routes4.lookup(ip) == port }

    /// ICMP echo request to the gateway → echo reply, in place.
    @inlinable
    func echo4(_ p: Packet, _ f: UnsafeMutableRawPointer, _ len: Int, _ ihl: Int, _ total: Int, _ ctx: WorkerContext,
               _ c: PortCounters, _ dirty: inout SwitchPortQueue.Dirty) {
        let l4 = 14 &+ ihl
        if l4 &+ 8 > 14 &+ total || f.load(fromByteOffset: l4, as: UInt8.self) != 8 { return drop(p, c.dropNoRoute, ctx) }
        // A request with a bad checksum is discarded (RFC 1122 3.2.2).
        let icmpLength = total &- ihl
        if onesComplementSum(f + l4, icmpLength) != 0xFFFF { return drop(p, c.dropMalformed, ctx) }
        // Type 8 → 0, the checksum computed again: the incremental update (RFC 1624) gives
        // 0x0000 where 0xFFFF is due when the rest of the message is all zeros.
        f.storeBytes(of: 0 as UInt8, toByteOffset: l4, as: UInt8.self)
        f.storeBytes(of: 0 as UInt16, toByteOffset: l4 &+ 2, as: UInt16.self)
        f.storeBytes(of: (~onesComplementSum(f + l4, icmpLength)).bigEndian, toByteOffset: l4 &+ 2, as: UInt16.self)
        let src = f.loadUnaligned(fromByteOffset: 26, as: UInt32.self)
        f.storeBytes(of: f.loadUnaligned(fromByteOffset: 30, as: UInt32.self), toByteOffset: 26, as: UInt32.self)
        f.storeBytes(of: src, toByteOffset: 30, as: UInt32.self)
        f.storeBytes(of: 64 as UInt8, toByteOffset: 22, as: UInt8.self)
        f.storeBytes(of: 0 as UInt16, toByteOffset: 24, as: UInt16.self)
        f.storeBytes(of: (~onesComplementSum(f + 14, ihl)).bigEndian, toByteOffset: 24, as: UInt16.self)
        reflect(p, f, ctx, &dirty)
        view.pointee.counters.echoReplies.increment()
    }

    /// ARP request for the gateway → reply from the router MAC, in place. The router
    /// learns nothing from ARP (no one can claim an address with it).
    @inlinable
    func answerARP(_ p: Packet, _ f: UnsafeMutableRawPointer, _ len: Int, _ ctx: WorkerContext, _ c: PortCounters,
                   _ dirty: inout SwitchPortQueue.Dirty) {
        if len < 42 { return drop(p, c.dropMalformed, ctx) }
        let head = UInt64(bigEndian: f.loadUnaligned(fromByteOffset: 14, as: UInt64.self))
        // htype 1, ptype 0x0800, hlen 6, plen 4, oper 1 (request)
        guard head == 0x0001_0800_0604_0001 else { return drop(p, c.dropNoRoute, ctx) }
        let tpa = UInt32(bigEndian: f.loadUnaligned(fromByteOffset: 38, as: UInt32.self))
        if tpa != Self.gateway4 { return drop(p, c.dropNoRoute, ctx) }
        let sha = MACKey.load(f + 22)
        let spa = f.loadUnaligned(fromByteOffset: 28, as: UInt32.self)
        f.storeBytes(of: UInt16(2).bigEndian, toByteOffset: 20, as: UInt16.self)
        MACKey.store(sha, f + 32)
        f.storeBytes(of: spa, toByteOffset: 38, as: UInt32.self)
        MACKey.store(shared.pointee.routerMAC, f + 22)
        f.storeBytes(of: Self.gateway4.bigEndian, toByteOffset: 28, as: UInt32.self)
        ctx.pool.setReceived(p, length: 42)
        reflect(p, f, ctx, &dirty)
        view.pointee.counters.arpReplies.increment()
    }

    /// Send an answer back where the request came from: Ethernet source becomes the
    /// destination, the router MAC the source.
    @inlinable
    func reflect(_ p: Packet, _ f: UnsafeMutableRawPointer, _ ctx: WorkerContext, _ dirty: inout SwitchPortQueue.Dirty) {
        MACKey.store(MACKey.load(f + 6), f)
        MACKey.store(shared.pointee.routerMAC, f + 6)
        stage(p, to: port, ctx, &dirty)
    }

    // MARK: IPv6

    @inlinable
    func routeIPv6(_ p: Packet, _ f: UnsafeMutableRawPointer, _ len: Int, _ toRouter: Bool, _ ctx: WorkerContext,
                   _ c: PortCounters, _ dirty: inout SwitchPortQueue.Dirty, _ punted: inout Bool) {
        if len < 54 { return drop(p, c.dropMalformed, ctx) }
        let payload = Int(UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 18, as: UInt16.self)))
        if f.load(fromByteOffset: 14, as: UInt8.self) >> 4 != 6 || 54 &+ payload > len { return drop(p, c.dropMalformed, ctx) }
        let next = f.load(fromByteOffset: 20, as: UInt8.self)
        let srcHigh = UInt64(bigEndian: f.loadUnaligned(fromByteOffset: 22, as: UInt64.self))
        let srcLow = UInt64(bigEndian: f.loadUnaligned(fromByteOffset: 30, as: UInt64.self))
        let dstHigh = UInt64(bigEndian: f.loadUnaligned(fromByteOffset: 38, as: UInt64.self))
        let dstLow = UInt64(bigEndian: f.loadUnaligned(fromByteOffset: 46, as: UInt64.self))
        let sw = shared
        let toGateway = (dstHigh == Self.gateway6High && dstLow == 1)
            || (dstHigh == sw.pointee.global6High && dstLow == sw.pointee.global6Low && dstHigh != 0)
        if dstHigh >> 56 == 0xFF || toGateway {
            // Multicast (ff00::/8) or the router itself: neighbour discovery and DHCPv6 go to
            // the control thread; echo requests to the router are answered here.
            if next == 58 && payload >= 4 {
                let type = f.load(fromByteOffset: 54, as: UInt8.self)
                if type == 133 || type == 135 || type == 136 { return punt(p, ctx, c, &punted) }
                if type == 128 && toGateway && (srcHigh >> 54 == 0x3FA || sw.pointee.routes6.lookup(srcHigh, srcLow) == port) {
                    return echo6(p, f, ctx, &dirty)
                }
            } else if next == 17 && payload >= 8
                && UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 56, as: UInt16.self)) == 547 {
                return punt(p, ctx, c, &punted)
            }
            return drop(p, c.dropNoRoute, ctx)
        }
        if !toRouter { return drop(p, c.dropNoRoute, ctx) }
        let table = sw.pointee.routes6
        if table.lookup(srcHigh, srcLow) != port { return drop(p, c.dropSpoofedSrc, ctx) }
        let j = table.lookup(dstHigh, dstLow)
        if j < 0 {
            icmp6Error(f, payload: payload, .noRoute, ctx, &dirty)
            return drop(p, sw.pointee.unroutable6(dstHigh) ? c.dropOtherNetwork : c.dropNoRoute, ctx)
        }
        let hop = f.load(fromByteOffset: 21, as: UInt8.self)
        if hop <= 1 {
            icmp6Error(f, payload: payload, .timeExceeded, ctx, &dirty)
            return drop(p, c.dropTTL, ctx)
        }
        let mac = sw.pointee.boundMAC(j)
        if mac == 0 { return drop(p, c.dropNoRoute, ctx) }
        let limit = sw.pointee.ports[j].maxFrame
        if len > limit {
            icmp6Error(f, payload: payload, .tooBig(mtu: limit &- 14), ctx, &dirty)
            return drop(p, view.pointee.portCounters[j].dropMTU, ctx)
        }
        f.storeBytes(of: hop &- 1, toByteOffset: 21, as: UInt8.self)
        MACKey.store(mac, f)
        MACKey.store(sw.pointee.routerMAC, f + 6)
        view.pointee.counters.routed.increment()
        stage(p, to: j, ctx, &dirty)
    }

    /// ICMPv6 echo request to the router → echo reply, in place (the pseudo-header sum
    /// does not change when the addresses swap; the type word changes by 0x0100).
    @inlinable
    func echo6(_ p: Packet, _ f: UnsafeMutableRawPointer, _ ctx: WorkerContext, _ dirty: inout SwitchPortQueue.Dirty) {
        let old = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 54, as: UInt16.self))
        f.storeBytes(of: 129 as UInt8, toByteOffset: 54, as: UInt8.self)
        let hc = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 56, as: UInt16.self))
        var sum = UInt32(~hc) &+ UInt32(~old) &+ UInt32(0x8100 | (old & 0x00FF))
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        f.storeBytes(of: (~UInt16(truncatingIfNeeded: sum)).bigEndian, toByteOffset: 56, as: UInt16.self)
        for k in stride(from: 0, to: 16, by: 8) {
            let s = f.loadUnaligned(fromByteOffset: 22 &+ k, as: UInt64.self)
            f.storeBytes(of: f.loadUnaligned(fromByteOffset: 38 &+ k, as: UInt64.self), toByteOffset: 22 &+ k, as: UInt64.self)
            f.storeBytes(of: s, toByteOffset: 38 &+ k, as: UInt64.self)
        }
        f.storeBytes(of: 64 as UInt8, toByteOffset: 21, as: UInt8.self)
        reflect(p, f, ctx, &dirty)
        view.pointee.counters.echoReplies.increment()
    }

    // MARK: Hand-offs

    /// To the control thread (the packet remembers its port).
    @inlinable
    func punt(_ p: Packet, _ ctx: WorkerContext, _ c: PortCounters, _ punted: inout Bool) {
        if !takePuntToken(now: ctx.now) { return drop(p, c.dropFloodLimit, ctx) }
        ctx.pool.buffer(p).storeBytes(of: UInt16(port), toByteOffset: BufferLayout.portOffset, as: UInt16.self)
        if shared.pointee.punt.enqueue(p.index) {
            view.pointee.counters.punted.increment()
            punted = true
        } else {
            drop(p, c.dropNoBuffer, ctx)
        }
    }

    @inlinable
    func takePuntToken(now: UInt64) -> Bool {
        let rate = Self.puntsPerSecond
        var tokens = puntBucket[0]
        let last = puntBucket[1]
        if last == 0 || now &- last >= 1_000_000_000 {
            tokens = rate
            puntBucket[1] = now
        } else {
            let add = (now &- last) &* rate / 1_000_000_000
            if add > 0 { tokens = min(rate, tokens &+ add); puntBucket[1] = now }
        }
        if tokens == 0 { puntBucket[0] = 0; return false }
        puntBucket[0] = tokens &- 1
        return true
    }

    @inlinable
    func stage(_ p: Packet, to d: Int, _ ctx: WorkerContext, _ dirty: inout SwitchPortQueue.Dirty) {
        view.pointee.egress.stage(p, to: d, ctx, &dirty)
    }

    @inlinable
    func flush(_ d: Int, _ ctx: WorkerContext) { view.pointee.egress.flush(d, ctx) }
}
