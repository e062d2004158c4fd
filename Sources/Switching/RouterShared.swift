import CSluice
import Memory
import Platform
import Ports
import Stats

/// A MAC address as the router keeps it: the six bytes loaded little-endian into the
/// low 48 bits (so the group bit is bit 0). 0 = none.
public enum MACKey {
    @inlinable @inline(__always)
    public static func load(_ p: UnsafeRawPointer) -> UInt64 {
        UInt64(p.loadUnaligned(as: UInt32.self)) | UInt64(p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) << 32
    }

    @inlinable @inline(__always)
    public static func store(_ key: UInt64, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: UInt32(truncatingIfNeeded: key), as: UInt32.self)
        p.storeBytes(of: UInt16(truncatingIfNeeded: key >> 32), toByteOffset: 4, as: UInt16.self)
    }

    public static func from(_ octets: [UInt8]) -> UInt64 {
        var k: UInt64 = 0
        for (i, b) in octets.prefix(6).enumerated() { k |= UInt64(b) << (8 * UInt64(i)) }
        return k
    }

    public static func octets(_ key: UInt64) -> [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: key >> (8 * UInt64($0))) } }
}

/// A member port of a network as the workers see it.
public struct RouterPortInfo: BitwiseCopyable {
    /// Largest frame the port may receive (MTU + 14).
    public var maxFrame: Int
    public init(maxFrame: Int) { self.maxFrame = maxFrame }
}

/// Router counters in one worker's slot.
public struct RouterCounters: BitwiseCopyable, @unchecked Sendable {
    public var routed: StatsCounter
    public var arpReplies: StatsCounter
    public var echoReplies: StatsCounter
    public var punted: StatsCounter
    public var icmpErrors: StatsCounter
    public static let names = ["routed_packets", "arp.replies", "icmp.echo_replies", "punted", "icmp.errors"]
    public init(_ c: [StatsCounter]) {
        func at(_ i: Int) -> StatsCounter { i < c.count ? c[i] : .discard }
        routed = at(0); arpReplies = at(1); echoReplies = at(2); punted = at(3); icmpErrors = at(4)
    }
}

/// One network's state shared by every worker that polls one of its ports. The port
/// table and the route tables change only while the workers are paused; the bound MACs
/// are atomic words (a worker binds the first source MAC of a port that has none; the
/// control thread clears it when the guest goes away).
public struct RouterShared: @unchecked Sendable {
    public let portCount: Int
    public let ports: UnsafeMutablePointer<RouterPortInfo>
    /// Bound MAC per port (MACKey), 0 = none yet.
    public let macs: UnsafeMutablePointer<UInt64>
    public var routes4: PrefixTable4
    public var routes6: PrefixTable6
    public let routerMAC: UInt64
    /// The router's global IPv6 address (prefix::1), or 0:0.
    public let global6High: UInt64, global6Low: UInt64
    /// Frames for the control thread (DHCP, neighbour discovery); the packet's port
    /// field says which member port it came from.
    public let punt: IndexRing
    /// Signalled after a punt, so the control loop wakes.
    public let puntFD: Int32
    /// The network's own ranges (subnet, prefix; mask 0 = none): a destination outside
    /// them and every routed prefix is in no network of this one (`drop.other_network`).
    public var subnet4: UInt32 = 0, subnet4Mask: UInt32 = 0
    public var prefix6High: UInt64 = 0, prefix6Mask: UInt64 = 0

    /// `drop.other_network` (outside the network's ranges) or `drop.no_route` (inside them, no port).
    @inlinable
    public func unroutable4(_ a: UInt32) -> Bool { subnet4Mask == 0 || a & subnet4Mask != subnet4 }
    @inlinable
    public func unroutable6(_ high: UInt64) -> Bool { prefix6Mask == 0 || high & prefix6Mask != prefix6High }

    public init(ports infos: [RouterPortInfo], macs bound: [UInt64], routes4: PrefixTable4, routes6: PrefixTable6,
                routerMAC: UInt64, global6: (UInt64, UInt64), punt: IndexRing, puntFD: Int32) {
        portCount = infos.count
        ports = .allocate(capacity: max(1, infos.count))
        ports.initialize(from: infos, count: infos.count)
        macs = .allocate(capacity: max(1, infos.count))
        macs.initialize(from: bound, count: bound.count)
        self.routes4 = routes4
        self.routes6 = routes6
        self.routerMAC = routerMAC
        global6High = global6.0
        global6Low = global6.1
        self.punt = punt
        self.puntFD = puntFD
    }

    public func deallocate() {
        ports.deallocate()
        macs.deallocate()
        routes4.destroy()
        routes6.destroy()
    }

    @inlinable public func boundMAC(_ port: Int) -> UInt64 { sl_load_acquire_u64(macs + port) }
    public func setBoundMAC(_ port: Int, _ key: UInt64) { sl_store_release_u64(macs + port, key) }

    /// Bind `key` to `port` if it has no MAC yet; returns the port's MAC afterwards.
    @inlinable
    public func bind(_ port: Int, _ key: UInt64) -> UInt64 {
        var expected: UInt64 = 0
        if sl_cas_u64(macs + port, &expected, key) { return key }
        return expected
    }
}

/// One worker's view of a network: a route, a staging batch and counters per port.
public struct RouterWorkerView: ~Copyable, @unchecked Sendable {
    public let routes: UnsafeMutablePointer<SwitchRoute>
    public let staged: UnsafeMutablePointer<PacketBatch>
    public let portCounters: UnsafeMutablePointer<PortCounters>
    public let counters: RouterCounters
    public let portCount: Int
    /// The routes, staging batches and counters as one value for the poll sources.
    @inlinable public var egress: Egress { Egress(routes: routes, staged: staged, portCounters: portCounters) }
    /// ICMP error token bucket of this worker: tokens, last refill (ns).
    public let errorBucket: UnsafeMutablePointer<UInt64>
    /// ICMP errors per second per worker (RFC 1812 / 4443 rate limiting).
    public static let errorsPerSecond: UInt64 = 100

    public init(routes: [SwitchRoute], portCounters: [PortCounters], counters: RouterCounters) {
        errorBucket = .allocate(capacity: 2)
        errorBucket.initialize(repeating: 0, count: 2)
        portCount = routes.count
        self.routes = .allocate(capacity: max(1, routes.count))
        self.routes.initialize(from: routes, count: routes.count)
        staged = .allocate(capacity: max(1, routes.count))
        for i in 0..<routes.count { (staged + i).initialize(to: PacketBatch()) }
        self.portCounters = .allocate(capacity: max(1, routes.count))
        self.portCounters.initialize(from: portCounters, count: portCounters.count)
        self.counters = counters
    }

    deinit {
        routes.deallocate()
        staged.deinitialize(count: portCount)
        staged.deallocate()
        portCounters.deallocate()
        errorBucket.deallocate()
    }

    /// Take one ICMP error token (refilled at `errorsPerSecond`, bursts of that many).
    @inlinable
    public func takeErrorToken(now: UInt64) -> Bool {
        let rate = Self.errorsPerSecond
        var tokens = errorBucket[0]
        let last = errorBucket[1]
        if last == 0 || now &- last >= 1_000_000_000 {
            tokens = rate
            errorBucket[1] = now
        } else {
            let add = (now &- last) &* rate / 1_000_000_000
            if add > 0 { tokens = min(rate, tokens &+ add); errorBucket[1] = now }
        }
        if tokens == 0 { errorBucket[0] = 0; return false }
        errorBucket[0] = tokens &- 1
        return true
    }
}
