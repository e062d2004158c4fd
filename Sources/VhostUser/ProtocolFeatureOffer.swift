/// Which protocol features a net device offers on one connection: everything it
/// supports, except VHOST_USER_PROTOCOL_F_CONFIG for a front-end that would only
/// warn about it.
///
/// Why CONFIG is not always offered (checked against the sources):
///
/// - QEMU (hw/virtio/vhost-user.c, vhost_user_backend_init) reads GET_FEATURES,
///   then GET_PROTOCOL_FEATURES, and if the offer has CONFIG while the device
///   has no config support (virtio-net never sets `supports_config` nor a config
///   notifier for a vhost-user netdev) prints "vhost-user backend supports
///   VHOST_USER_PROTOCOL_F_CONFIG but QEMU does not." and masks the bit. Its
///   vhost_dev_init sends SET_OWNER only after that, so on a QEMU connection the
///   first GET_PROTOCOL_FEATURES always comes before SET_OWNER. With `queues=N`
///   every queue pair runs the same sequence on the same connection (SET_OWNER
///   is sent once, for the first pair), so the decision is kept for the whole
///   connection.
/// - DPDK's virtio-user (virtio_user_dev_init: set_owner, then get_features,
///   which sends GET_FEATURES, GET/SET_PROTOCOL_FEATURES) sends SET_OWNER first,
///   as vhost-user.rst describes it ("issued when a new connection is
///   established"). It never acks CONFIG over vhost-user, though (22.11 up to
///   26.x mask the offer with MQ | REPLY_ACK | STATUS and have no get_config op
///   for vhost-user), so it takes its MAC from its own `mac=` devarg, or a
///   random one.
/// - sluice-gen's front-end also sends SET_OWNER first, acks CONFIG and reads
///   the port's MAC (and MTU) with GET_CONFIG.
///
/// So: CONFIG is offered when SET_OWNER arrived before the connection's first
/// GET_PROTOCOL_FEATURES, never otherwise; later GET_PROTOCOL_FEATURES on the
/// same connection get the same answer. A device whose front-ends need the config
/// space (vhost-user-blk: QEMU reads the capacity with GET_CONFIG) always offers it.
public struct ProtocolFeatureOffer: Sendable, Equatable {
    public let supported: VhostUserProtocolFeature
    public let alwaysOfferConfig: Bool
    private var sawSetOwner = false
    /// The offer made by the connection's first GET_PROTOCOL_FEATURES (nil before it).
    public private(set) var decided: VhostUserProtocolFeature?

    public init(supported: VhostUserProtocolFeature, alwaysOfferConfig: Bool = false) {
        self.supported = supported
        self.alwaysOfferConfig = alwaysOfferConfig
    }

    /// SET_OWNER arrived.
    public mutating func noteSetOwner() { sawSetOwner = true }

    /// GET_PROTOCOL_FEATURES arrived: what to answer.
    public mutating func offer() -> VhostUserProtocolFeature {
        if let decided { return decided }
        var offer = supported
        if !sawSetOwner && !alwaysOfferConfig { offer.remove(.config) }
        decided = offer
        return offer
    }

    /// What SET_PROTOCOL_FEATURES may ack: the offer made, or (a front-end that
    /// sets without asking) everything supported.
    public var acceptable: VhostUserProtocolFeature { decided ?? supported }

    /// A new connection: decide again.
    public mutating func newConnection() {
        sawSetOwner = false
        decided = nil
    }
}
