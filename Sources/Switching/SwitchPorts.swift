import Memory
import Ports
import Stats

/// What the switch knows about one of its ports. Written by the builder before any
/// worker runs; read-only afterwards.
@frozen
public struct SwitchPortInfo: BitwiseCopyable {
    /// Access VLAN (untagged at the port), or 0 on a trunk.
    public var accessVLAN: UInt16
    /// Untagged frames on a trunk belong to this VLAN (0: they are dropped).
    public var nativeVLAN: UInt16
    public var trunk: Bool
    /// Gets a tagged copy of every forwarded frame; never transmits into the switch.
    public var monitor: Bool
    /// `mac-lock`: the only source MAC accepted (as a table key in VLAN 0), or 0.
    public var lockedMAC: UInt64
    /// Per-port `max-macs` (UInt32.max when unlimited).
    public var maxMACs: UInt32
    /// Largest untagged frame (MTU + 14).
    public var maxFrame: Int
    /// `flood-limit`: flooded frames per second (0 = unlimited).
    public var floodLimit: UInt32

    public init(accessVLAN: UInt16, nativeVLAN: UInt16, trunk: Bool, monitor: Bool, lockedMAC: UInt64,
                maxMACs: UInt32, maxFrame: Int, floodLimit: UInt32) {
        self.accessVLAN = accessVLAN; self.nativeVLAN = nativeVLAN; self.trunk = trunk; self.monitor = monitor
        self.lockedMAC = lockedMAC; self.maxMACs = maxMACs; self.maxFrame = maxFrame; self.floodLimit = floodLimit
    }
}

/// Switch-wide state shared by every worker that runs one of its ports: the port
/// table, VLAN membership and the MAC table. Allocated by the builder.
@frozen
public struct SwitchShared: @unchecked Sendable {
    public let portCount: Int
    public let ports: UnsafeMutablePointer<SwitchPortInfo>
    /// 4096 bits per port: VLAN v is carried by port p.
    public let membership: UnsafeMutablePointer<UInt64>
    public let table: MacTable
    /// Monitor port indices.
    public let monitors: UnsafeMutablePointer<UInt16>
    public let monitorCount: Int

    public init(ports infos: [SwitchPortInfo], members: [[Int]], table: MacTable) {
        portCount = infos.count
        ports = .allocate(capacity: max(1, infos.count))
        ports.initialize(from: infos, count: infos.count)
        membership = .allocate(capacity: max(1, infos.count) * 64)
        membership.initialize(repeating: 0, count: max(1, infos.count) * 64)
        for (p, vlans) in members.enumerated() {
            for v in vlans where v > 0 && v < 4096 { membership[p * 64 + v >> 6] |= 1 << UInt64(v & 63) }
        }
        let mons = infos.indices.filter { infos[$0].monitor }
        monitors = .allocate(capacity: max(1, mons.count))
        for (i, m) in mons.enumerated() { monitors[i] = UInt16(m) }
        monitorCount = mons.count
        self.table = table
    }

    public func deallocate() {
        ports.deallocate(); membership.deallocate(); monitors.deallocate()
    }

    /// Whether port `p` forwards frames of `vlan`.
    @inlinable
    public func carries(_ p: Int, _ vlan: UInt16) -> Bool {
        membership[p &* 64 &+ Int(vlan >> 6)] & (1 << UInt64(vlan & 63)) != 0
    }
}

/// How one worker reaches a switch port: its own queue of that port, or a ring into
/// the worker that owns one.
@frozen
public enum SwitchRoute: BitwiseCopyable, @unchecked Sendable {
    /// This worker owns a queue of the port: transmit directly. A multiqueue guest may
    /// not run that queue (it enabled fewer pairs than offered): then the frames go to the
    /// port's queue 0 through `fallback` (nil when this worker owns queue 0).
    case local(PortTx, fallback: IndexRing?, wakeFD: Int32)
    /// Another worker does: hand the frames over (MPSC ring of mempool buffers), and in
    /// event mode write its wake-up eventfd.
    case remote(IndexRing, wakeFD: Int32)
    /// Not running (yet): drop and count.
    case down
}

/// Counters of one switch in one worker's slot.
@frozen
public struct SwitchCounters: BitwiseCopyable, @unchecked Sendable {
    public var learned: StatsCounter
    public var moved: StatsCounter
    public var tableFull: StatsCounter
    public static let names = ["learned", "moved", "table_full"]
    public init(_ c: [StatsCounter]) { learned = c[0]; moved = c[1]; tableFull = c[2] }
}

/// One worker's view of a switch: a route and a staging batch per port, and the
/// counters of every port in this worker's stats slot. Shared by this worker's poll
/// sources of the switch (which run one after another), so each flushes what it
/// staged before it returns.
public struct SwitchWorkerView: ~Copyable, @unchecked Sendable {
    public let routes: UnsafeMutablePointer<SwitchRoute>
    public let staged: UnsafeMutablePointer<PacketBatch>
    public let portCounters: UnsafeMutablePointer<PortCounters>
    public let counters: SwitchCounters
    public let portCount: Int
    /// The routes, staging batches and counters as one value for the poll sources.
    @inlinable public var egress: Egress { Egress(routes: routes, staged: staged, portCounters: portCounters) }

    public init(routes: [SwitchRoute], portCounters: [PortCounters], counters: SwitchCounters) {
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
    }
}
