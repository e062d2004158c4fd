/// virtio 1.x feature bits (virtio spec §5.1.3, §6) and ring flags, for a net and blk device.
public enum VirtioFeature {
    public static let netCsum: UInt64 = 1 << 0
    public static let netGuestCsum: UInt64 = 1 << 1
    public static let netMTU: UInt64 = 1 << 3
    public static let netMAC: UInt64 = 1 << 5
    public static let netMrgRxbuf: UInt64 = 1 << 15
    public static let netStatus: UInt64 = 1 << 16
    public static let netMQ: UInt64 = 1 << 22
    public static let notifyOnEmpty: UInt64 = 1 << 24
    public static let anyLayout: UInt64 = 1 << 27
    public static let indirectDesc: UInt64 = 1 << 28
    public static let eventIdx: UInt64 = 1 << 29
    /// vhost-user: the front-end may send GET/SET_PROTOCOL_FEATURES.
    public static let protocolFeatures: UInt64 = 1 << 30
    public static let version1: UInt64 = 1 << 32
    /// The device uses buffers in the order the driver made them available (§2.7.9);
    /// lets the driver skip its free-list bookkeeping (DPDK's virtio PMD has fast paths for it).
    public static let inOrder: UInt64 = 1 << 35
}

/// Descriptor flags (§2.7.5).
public enum VringDescFlag {
    public static let next: UInt16 = 1
    public static let write: UInt16 = 2
    public static let indirect: UInt16 = 4
}

/// avail.flags / used.flags.
public enum VringFlag {
    /// In avail.flags: the driver does not want interrupts.
    public static let noInterrupt: UInt16 = 1
    /// In used.flags: the device does not want kicks.
    public static let noNotify: UInt16 = 1
}

/// The virtio-net header that precedes every frame (§5.1.6).
public enum VirtioNetHeader {
    /// With VERSION_1 or MRG_RXBUF the header has `num_buffers` and is 12 bytes, else 10.
    @inlinable
    public static func size(features: UInt64) -> Int {
        features & (VirtioFeature.version1 | VirtioFeature.netMrgRxbuf) != 0 ? 12 : 10
    }
    public static let flagsOffset = 0
    public static let needsCsum: UInt8 = 1
    public static let dataValid: UInt8 = 2
    public static let csumStartOffset = 6
    public static let csumOffsetOffset = 8
    public static let numBuffersOffset = 10
}

/// The rule for EVENT_IDX (§2.7.10): notify when `newIdx` passed `event` since `oldIdx`.
@inlinable
public func vringNeedEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
    (new &- event &- 1) < (new &- old)
}
