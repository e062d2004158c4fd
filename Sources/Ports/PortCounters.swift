import Stats

/// One port's counters in one worker's stats slot (written only by that worker).
/// Naming (DPDK's view of a vhost port): rx = frames sluice took from the port,
/// tx = frames sluice gave to the port.
@frozen
public struct PortCounters: BitwiseCopyable, @unchecked Sendable {
    public var rxPackets: StatsCounter
    public var rxBytes: StatsCounter
    public var txPackets: StatsCounter
    public var txBytes: StatsCounter
    /// A descriptor chain that loops, is too long, leaves guest memory or has the wrong direction.
    public var dropBadDesc: StatsCounter
    /// The receiving guest had no RX buffer (or too little room) for the frame; a host
    /// port's kernel queue refused it.
    public var dropNoRxBuffer: StatsCounter
    /// The receiving port is not connected / its queue is not running.
    public var dropLinkDown: StatsCounter
    /// A frame longer than the port's MTU allows, or shorter than a header.
    public var dropBadLength: StatsCounter
    /// Frames from this port a switch flooded (broadcast, multicast, unknown unicast).
    public var floodPackets: StatsCounter
    /// Frames of a VLAN the port does not carry (or tagged on an access port, untagged on a trunk without native VLAN).
    public var dropVLAN: StatsCounter
    /// `mac-lock`: a source MAC other than the port's.
    public var dropMacLock: StatsCounter
    /// A new source MAC while the port already has `max-macs` learned.
    public var dropMaxMACs: StatsCounter
    /// Flooded frames beyond the port's `flood-limit` per second.
    public var dropFloodLimit: StatsCounter
    /// Frames a monitor port sent (monitor ports only listen).
    public var dropMonitorTx: StatsCounter
    /// Frames larger than this (destination) port's MTU.
    public var dropMTU: StatsCounter
    /// The packet mempool was empty, or a ring into another worker was full.
    public var dropNoBuffer: StatsCounter
    /// Router: a source MAC or address the port does not own.
    public var dropSpoofedSrc: StatsCounter
    /// Router: no route to the destination (or not for the router, or its MAC not known yet).
    public var dropNoRoute: StatsCounter
    /// Router: TTL / hop limit ran out.
    public var dropTTL: StatsCounter
    /// Router: addressed to another network.
    public var dropOtherNetwork: StatsCounter
    /// Router: a header that does not add up (lengths, version, checksum).
    public var dropMalformed: StatsCounter

    public static let names = ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes",
                               "drop.bad_desc", "drop.no_rx_buffer", "drop.link_down", "drop.bad_length",
                               "flood_packets", "drop.vlan", "drop.mac_lock", "drop.max_macs",
                               "drop.flood_limit", "drop.monitor_tx", "drop.mtu", "drop.no_buffer",
                               "drop.spoofed_src", "drop.no_route", "drop.ttl", "drop.other_network", "drop.malformed"]

    /// Build from counters in `names` order (a shorter list leaves the rest discarded).
    public init(_ c: [StatsCounter]) {
        func at(_ i: Int) -> StatsCounter { i < c.count ? c[i] : .discard }
        rxPackets = at(0); rxBytes = at(1); txPackets = at(2); txBytes = at(3)
        dropBadDesc = at(4); dropNoRxBuffer = at(5); dropLinkDown = at(6); dropBadLength = at(7)
        floodPackets = at(8); dropVLAN = at(9); dropMacLock = at(10); dropMaxMACs = at(11)
        dropFloodLimit = at(12); dropMonitorTx = at(13); dropMTU = at(14); dropNoBuffer = at(15)
        dropSpoofedSrc = at(16); dropNoRoute = at(17); dropTTL = at(18); dropOtherNetwork = at(19); dropMalformed = at(20)
    }

    public static var discard: PortCounters { PortCounters([]) }
}
