// The virtio-net feature bits and header layout the frontend negotiates and
// writes. Source: VIRTIO 1.2 §5.1.3 "Feature bits", §5.1.4 "Device
// configuration layout", §5.1.6 "Device Operation" (struct virtio_net_hdr),
// §6 "Reserved Feature Bits".

/// Device feature bits (GET_FEATURES / SET_FEATURES) as the frontend sees them.
public struct FrontendFeatures: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inline(__always) private init(bit: UInt64) { self.rawValue = 1 << bit }

    public static let mtu = Self(bit: 3)
    public static let mac = Self(bit: 5)
    public static let mergeableRxBuffers = Self(bit: 15)
    public static let status = Self(bit: 16)
    public static let multiQueue = Self(bit: 22)
    public static let indirectDescriptors = Self(bit: 28)
    public static let eventIndex = Self(bit: 29)
    /// VHOST_USER_F_PROTOCOL_FEATURES: not a virtio bit, the vhost-user one.
    public static let protocolFeatures = Self(bit: 30)
    public static let version1 = Self(bit: 32)

    private static let names: [(Self, String)] = [
        (.mtu, "MTU"), (.mac, "MAC"), (.mergeableRxBuffers, "MRG_RXBUF"), (.status, "STATUS"),
        (.multiQueue, "MQ"), (.indirectDescriptors, "INDIRECT_DESC"), (.eventIndex, "EVENT_IDX"),
        (.protocolFeatures, "PROTOCOL_FEATURES"), (.version1, "VERSION_1"),
    ]

    /// `VERSION_1|MRG_RXBUF|…` plus the hex value of any unnamed bits.
    public var description: String {
        var parts = Self.names.filter { contains($0.0) }.map(\.1)
        let unnamed = rawValue & ~Self.names.reduce(0) { $0 | $1.0.rawValue }
        if unnamed != 0 { parts.append("0x" + String(unnamed, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}

/// struct virtio_net_hdr: 12 bytes with VERSION_1 or MRG_RXBUF (num_buffers
/// at offset 10), 10 bytes for a legacy device without MRG_RXBUF.
public enum FrontendNetHeader {
    public static let modernLength = 12
    public static let legacyLength = 10
    /// Offset of num_buffers (u16): how many buffers a merged RX frame spans.
    public static let numBuffersOffset = 10

    /// The header length for a negotiated feature set.
    public static func length(for features: FrontendFeatures) -> Int {
        features.contains(.version1) || features.contains(.mergeableRxBuffers) ? modernLength : legacyLength
    }
}

/// struct virtio_net_config fields the frontend reads with GET_CONFIG.
public enum FrontendNetConfig {
    public static let macOffset = 0
    public static let statusOffset = 6
    public static let maxQueuePairsOffset = 8
    public static let mtuOffset = 10
    /// mac, status, max_virtqueue_pairs, mtu.
    public static let readLength = 12
}
