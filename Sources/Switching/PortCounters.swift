import Stats

/// One port's counters in one worker's stats slot (written only by that worker).
/// Naming (DPDK's view of a vhost port): rx = frames sluice took from the guest,
/// tx = frames sluice gave to the guest.
@frozen
public struct PortCounters: BitwiseCopyable, @unchecked Sendable {
    public var rxPackets: StatsCounter
    public var rxBytes: StatsCounter
    public var txPackets: StatsCounter
    public var txBytes: StatsCounter
    /// A descriptor chain that loops, is too long, leaves guest memory or has the wrong direction.
    public var dropBadDesc: StatsCounter
    /// The receiving guest had no RX buffer (or too little room) for the frame.
    public var dropNoRxBuffer: StatsCounter
    /// The receiving port is not connected / its queue is not running.
    public var dropLinkDown: StatsCounter
    /// A frame longer than the port's MTU allows, or shorter than a header.
    public var dropBadLength: StatsCounter

    public init(rxPackets: StatsCounter, rxBytes: StatsCounter, txPackets: StatsCounter, txBytes: StatsCounter,
                dropBadDesc: StatsCounter, dropNoRxBuffer: StatsCounter, dropLinkDown: StatsCounter, dropBadLength: StatsCounter) {
        self.rxPackets = rxPackets; self.rxBytes = rxBytes; self.txPackets = txPackets; self.txBytes = txBytes
        self.dropBadDesc = dropBadDesc; self.dropNoRxBuffer = dropNoRxBuffer
        self.dropLinkDown = dropLinkDown; self.dropBadLength = dropBadLength
    }

    public static let names = ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes",
                               "drop.bad_desc", "drop.no_rx_buffer", "drop.link_down", "drop.bad_length"]

    /// Build from counters in `names` order.
    public init(_ c: [StatsCounter]) {
        self.init(rxPackets: c[0], rxBytes: c[1], txPackets: c[2], txBytes: c[3],
                  dropBadDesc: c[4], dropNoRxBuffer: c[5], dropLinkDown: c[6], dropBadLength: c[7])
    }

    public static var discard: PortCounters { PortCounters([StatsCounter](repeating: .discard, count: names.count)) }
}
