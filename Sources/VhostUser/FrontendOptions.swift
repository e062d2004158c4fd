import Platform

/// How a `VirtioFrontend` sets itself up. Every field has a default that
/// works against DPDK's vhost PMD and sluice.
public struct FrontendOptions: Sendable {
    /// Size of the guest memory (one memfd, one region).
    public var memoryBytes: Int = 64 << 20
    /// Back guest memory with huge pages (`on`), normal pages (`off`), or
    /// huge pages when the host has them (`auto`).
    public var hugepages: HugepagePolicy = .off
    /// Queue pairs (RX vring 2q, TX vring 2q+1). More than one needs the
    /// backend's MQ protocol feature.
    public var queuePairs: Int = 1
    /// Entries per vring, a power of two up to 32768.
    public var queueSize: Int = 256
    /// Negotiate VIRTIO_F_EVENT_IDX when offered.
    public var eventIndex: Bool = true
    /// Negotiate VIRTIO_NET_F_MRG_RXBUF when offered (else every RX buffer
    /// must hold a whole frame: `maxFrameLength` bytes).
    public var mergeableRxBuffers: Bool = true
    /// Negotiate VIRTIO_F_INDIRECT_DESC when offered and send each TX frame
    /// as one ring descriptor pointing at a 2-entry table (header, frame).
    public var indirectDescriptors: Bool = false
    /// TX descriptors per frame when not indirect: 1 (header and frame in
    /// one buffer) or 2 (header and frame in separate descriptors).
    public var txDescriptorsPerFrame: Int = 1
    /// Payload bytes of one RX buffer with MRG_RXBUF (after the header).
    public var rxBufferDataRoom: Int = 2048
    /// The largest Ethernet frame (without FCS) the frontend sends or
    /// receives. TX slots and non-mergeable RX buffers are this big.
    public var maxFrameLength: Int = 9216
    /// When set and the backend offers VHOST_USER_PROTOCOL_F_NET_MTU, sent
    /// with NET_SET_MTU.
    public var mtu: Int?
    /// Our MAC when the backend does not report one with GET_CONFIG.
    public var mac: [UInt8]?
    /// Wait for a socket message at most this long (a stalled peer).
    public var messageTimeoutMilliseconds: Int32 = 5_000

    public init() {}

    /// Checks the ranges; the first problem found, in words.
    public func validate() throws(FrontendError) {
        if DriverQueueLayout(size: queueSize) == nil {
            throw .invalidOptions("queue size \(queueSize) is not a power of two in 1...\(DriverQueueLayout.maxSize)")
        }
        if queueSize < 2 { throw .invalidOptions("queue size must be at least 2") }
        guard (1...128).contains(queuePairs) else { throw .invalidOptions("queue pairs \(queuePairs), expected 1...128") }
        guard (1...2).contains(txDescriptorsPerFrame) else {
            throw .invalidOptions("TX descriptors per frame \(txDescriptorsPerFrame), expected 1 or 2")
        }
        guard (64...65_535).contains(rxBufferDataRoom) else {
            throw .invalidOptions("RX buffer data room \(rxBufferDataRoom), expected 64...65535")
        }
        guard (60...65_535).contains(maxFrameLength) else {
            throw .invalidOptions("max frame length \(maxFrameLength), expected 60...65535")
        }
        if let mtu, !(68...65_535).contains(mtu) { throw .invalidOptions("MTU \(mtu), expected 68...65535") }
        if let mac, mac.count != 6 { throw .invalidOptions("MAC of \(mac.count) bytes, expected 6") }
        guard memoryBytes > 0 else { throw .invalidOptions("guest memory size must be positive") }
    }
}

/// Counters of one frontend, summed over its queue pairs.
public struct FrontendCounters: Sendable, Equatable {
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    /// Sends that found the TX ring full (some frames were not queued).
    public var txRingFull: UInt64 = 0
    /// Frames longer than `maxFrameLength` that `send` refused.
    public var txTooLong: UInt64 = 0
    /// Received frames dropped: a merged frame with buffers missing, or one
    /// longer than the reassembly buffer.
    public var rxErrors: UInt64 = 0
    /// Kicks written / kicks the device suppressed.
    public var kicks: UInt64 = 0
    public var kicksSuppressed: UInt64 = 0
    /// Waits on a call eventfd.
    public var callWaits: UInt64 = 0

    public init() {}
}

/// What came out of feature negotiation.
public struct FrontendNegotiation: Sendable, Equatable {
    /// GET_FEATURES, and what we acknowledged with SET_FEATURES.
    public var offeredFeatures: FrontendFeatures = []
    public var ackedFeatures: FrontendFeatures = []
    /// GET_PROTOCOL_FEATURES, and what we set (both empty without PROTOCOL_FEATURES).
    public var offeredProtocolFeatures: VhostUserProtocolFeature = []
    public var ackedProtocolFeatures: VhostUserProtocolFeature = []
    /// GET_QUEUE_NUM when MQ was negotiated.
    public var backendQueuePairs: Int?
    /// The device's MAC and MTU from GET_CONFIG, when it answered.
    public var deviceMAC: [UInt8]?
    public var deviceMTU: Int?
    /// Header length (10 or 12) of every buffer.
    public var headerLength: Int = FrontendNetHeader.modernLength

    public init() {}

    public var replyAck: Bool { ackedProtocolFeatures.contains(.replyAck) }
    public var mergeableRxBuffers: Bool { ackedFeatures.contains(.mergeableRxBuffers) }
    public var eventIndex: Bool { ackedFeatures.contains(.eventIndex) }
    public var indirectDescriptors: Bool { ackedFeatures.contains(.indirectDescriptors) }
}
