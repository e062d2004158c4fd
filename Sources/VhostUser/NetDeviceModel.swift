import Virtio

/// What a port offers a guest: from its INI section.
public struct NetDeviceSpec: Sendable {
    public var name: String
    public var queuePairs: Int
    public var maxQueueSize: Int
    public var maxRegions: Int
    public var mac: [UInt8]?
    public var mtu: Int

    public init(name: String, queuePairs: Int, maxQueueSize: Int, maxRegions: Int, mac: [UInt8]?, mtu: Int) {
        self.name = name; self.queuePairs = queuePairs; self.maxQueueSize = maxQueueSize
        self.maxRegions = maxRegions; self.mac = mac; self.mtu = mtu
    }
}

/// virtio-net (§5.1) as a vhost-user device model: queue pair q is virtqueue 2q (RX,
/// device → guest) and 2q+1 (TX).
public final class VirtioNetModel: VhostUserDeviceModel, @unchecked Sendable {
    public let spec: NetDeviceSpec

    public init(spec: NetDeviceSpec) { self.spec = spec }

    public var kind: String { "net" }
    public var queueCount: Int { 2 * spec.queuePairs }
    public var queueNum: Int { spec.queuePairs }
    public var maxQueueSize: Int { spec.maxQueueSize }
    public var maxRegions: Int { spec.maxRegions }
    public var protocolFeatures: VhostUserProtocolFeature { [.mtu] }

    public var features: UInt64 {
        var f = VirtioFeature.version1 | VirtioFeature.netMrgRxbuf | VirtioFeature.netCsum | VirtioFeature.netGuestCsum
            | VirtioFeature.netMTU | VirtioFeature.netStatus | VirtioFeature.indirectDesc | VirtioFeature.eventIdx
            | VirtioFeature.anyLayout
        // Every consumer of a queue returns TX chains and fills RX chains strictly in
        // avail order, so IN_ORDER costs nothing to honour.
        f |= VirtioFeature.inOrder
        if spec.mac != nil { f |= VirtioFeature.netMAC }
        if spec.queuePairs > 1 { f |= VirtioFeature.netMQ }
        return f
    }

    public func apply(features f: UInt64, to s: UnsafeMutablePointer<VirtqueueState>) {
        s.pointee.headerSize = VirtioNetHeader.size(features: f)
        s.pointee.guestCsum = f & VirtioFeature.netGuestCsum != 0
        s.pointee.mergeable = f & VirtioFeature.netMrgRxbuf != 0
    }

    /// virtio_net_config (§5.1.4): mac[6], status u16, max_virtqueue_pairs u16, mtu u16.
    public func configSpace() -> [UInt8] {
        var space = [UInt8](repeating: 0, count: 12)
        if let mac = spec.mac { for i in 0..<6 { space[i] = mac[i] } }
        space[6] = 1   // VIRTIO_NET_S_LINK_UP
        space[8] = UInt8(spec.queuePairs & 0xff); space[9] = UInt8(spec.queuePairs >> 8)
        space[10] = UInt8(spec.mtu & 0xff); space[11] = UInt8(spec.mtu >> 8)
        return space
    }

    public func handle(_ message: VhostUserMessage) -> VhostUserDevice.Outcome? {
        switch message {
        case .netSetMTU(let mtu):
            return mtu <= UInt64(spec.mtu) ? .done : .failed("MTU \(mtu) exceeds the port's mtu \(spec.mtu)")
        case .sendRARP:
            return .done   // live migration announcements: nothing to do without migration
        default:
            return nil
        }
    }
}

extension VhostUserDevice {
    /// A virtio-net device.
    public convenience init(net spec: NetDeviceSpec) { self.init(model: VirtioNetModel(spec: spec)) }

    /// The net spec, when this is a net device.
    public var netSpec: NetDeviceSpec? { (model as? VirtioNetModel)?.spec }
}
