import Virtio

/// What a kind of vhost-user device adds to the generic `VhostUserDevice`: its feature
/// bits, its virtqueues, its config space and the messages only it understands. The
/// device asks; the model never touches the socket or the memory table. Control thread
/// only (every call that changes queue state comes inside the device's quiesce).
///
/// Kinds: `VirtioNetModel` (here) and the virtio-blk model (module Block).
public protocol VhostUserDeviceModel: AnyObject {
    /// "net", "blk": for messages.
    var kind: String { get }
    /// Virtqueues the device has (net: two per queue pair; blk: one per queue).
    var queueCount: Int { get }
    /// GET_QUEUE_NUM's answer (net: queue pairs; blk: queues).
    var queueNum: Int { get }
    /// Largest ring size a front-end may set (a power of two).
    var maxQueueSize: Int { get }
    /// Memory regions the device maps at most (`ds-max`).
    var maxRegions: Int { get }
    /// Feature bits offered: VERSION_1, the ring features and the device's own
    /// (the device adds PROTOCOL_FEATURES).
    var features: UInt64 { get }
    /// Protocol features beyond the ones every device supports (`.mtu`, `.inflightSHMFD`).
    var protocolFeatures: VhostUserProtocolFeature { get }
    /// Offer CONFIG to every front-end (see `ProtocolFeatureOffer`).
    var configAlwaysOffered: Bool { get }
    /// The device's config space from offset 0; GET_CONFIG answers a window of it.
    func configSpace() -> [UInt8]
    /// SET_FEATURES was accepted: set the model's per-queue flags (inside quiesce).
    func apply(features: UInt64, to queue: UnsafeMutablePointer<VirtqueueState>)
    /// A message the generic device does not handle (SET_CONFIG, NET_SET_MTU…);
    /// nil when this kind of device does not know it either.
    func handle(_ message: VhostUserMessage) -> VhostUserDevice.Outcome?
    /// Guest memory or queue `queue` (nil: every queue) is about to change or go away
    /// (inside quiesce): finish what a backend still does with it, so no I/O lands in
    /// memory that is unmapped or reused.
    func drainInFlight(queue: Int?)
    /// The memory table changed (inside quiesce, after `drainInFlight`): `regions` is what
    /// is mapped now (empty: nothing). A backend that gives devices guest addresses (an
    /// IOMMU) maps the new regions and unmaps the old ones here.
    func memoryChanged(_ regions: [GuestRegion])
}

extension VhostUserDeviceModel {
    public var configAlwaysOffered: Bool { false }
    public func handle(_ message: VhostUserMessage) -> VhostUserDevice.Outcome? { nil }
    public func drainInFlight(queue: Int?) {}
    public func memoryChanged(_ regions: [GuestRegion]) {}
}
