#if canImport(Glibc)
import Glibc
#endif
import Platform

/// The frontend's side of the vhost-user conversation, in the order DPDK's
/// virtio-user uses (vhost-user.rst: SET_OWNER is "issued when a new connection
/// is established"; "Starting and stopping rings"):
///
/// 1. SET_OWNER; GET_FEATURES; GET/SET_PROTOCOL_FEATURES when PROTOCOL_FEATURES
///    is offered (SET_OWNER first is also what makes sluice offer CONFIG; see
///    ProtocolFeatureOffer)
/// 2. GET_QUEUE_NUM (MQ); SET_FEATURES; NET_SET_MTU; GET_CONFIG
/// 3. SET_MEM_TABLE (one region, one fd)
/// 4. per vring: SET_VRING_CALL, NUM, BASE, ADDR, KICK; then SET_VRING_ENABLE
///
/// Every request without a reply of its own asks for a REPLY_ACK status once
/// REPLY_ACK is negotiated, so a refusal is reported at the request that
/// caused it instead of as a dead device later.
struct FrontendNegotiator {
    let channel: VhostUserChannel
    let options: FrontendOptions
    private(set) var result = FrontendNegotiation()

    init(channel: VhostUserChannel, options: FrontendOptions) {
        self.channel = channel
        self.options = options
    }

    /// The device features we would like, before intersecting with the offer.
    static func wantedFeatures(_ options: FrontendOptions) -> FrontendFeatures {
        var wanted: FrontendFeatures = [.version1, .mtu, .mac, .status, .protocolFeatures]
        if options.mergeableRxBuffers { wanted.insert(.mergeableRxBuffers) }
        if options.eventIndex { wanted.insert(.eventIndex) }
        if options.indirectDescriptors { wanted.insert(.indirectDescriptors) }
        if options.queuePairs > 1 { wanted.insert(.multiQueue) }
        return wanted
    }

    /// The protocol features we would like.
    static let wantedProtocolFeatures: VhostUserProtocolFeature = [.mq, .replyAck, .config, .mtu]

    /// Steps 1 and 2.
    mutating func negotiate() throws(FrontendError) -> FrontendNegotiation {
        try tell(.setOwner)   // REPLY_ACK is not negotiated yet: no status to wait for
        let offered = FrontendFeatures(rawValue: try askU64(.getFeatures))
        result.offeredFeatures = offered
        if offered.contains(.protocolFeatures) {
            let offeredProtocol = VhostUserProtocolFeature(rawValue: try askU64(.getProtocolFeatures))
            result.offeredProtocolFeatures = offeredProtocol
            let acked = offeredProtocol.intersection(Self.wantedProtocolFeatures)
            // No REPLY_ACK on this one: it is what turns REPLY_ACK on.
            try tell(.setProtocolFeatures(acked.rawValue), ack: false)
            result.ackedProtocolFeatures = acked
        }

        if result.ackedProtocolFeatures.contains(.mq) {
            let pairs = try askU64(.getQueueNum)
            result.backendQueuePairs = Int(clamping: pairs)
            guard UInt64(options.queuePairs) <= pairs else {
                throw .missingFeature("\(options.queuePairs) queue pairs (GET_QUEUE_NUM says \(pairs))")
            }
        } else if options.queuePairs > 1 {
            throw .missingFeature("multiqueue (VHOST_USER_PROTOCOL_F_MQ) for \(options.queuePairs) queue pairs")
        }
        if options.queuePairs > 1 && !offered.contains(.multiQueue) {
            throw .missingFeature("VIRTIO_NET_F_MQ for \(options.queuePairs) queue pairs")
        }

        let acked = offered.intersection(Self.wantedFeatures(options))
        try tell(.setFeatures(acked.rawValue))
        result.ackedFeatures = acked
        result.headerLength = FrontendNetHeader.length(for: acked)

        if let mtu = options.mtu, acked.contains(.mtu), result.ackedProtocolFeatures.contains(.mtu) {
            try tell(.netSetMTU(UInt64(mtu)))
        }
        if result.ackedProtocolFeatures.contains(.config) {
            try readConfig()
        }
        return result
    }

    /// GET_CONFIG of the MAC, status, queue pairs and MTU. A backend that
    /// answers with the spec's empty "failed" reply leaves them unknown.
    private mutating func readConfig() throws(FrontendError) {
        let code = VhostUserRequest.getConfig.rawValue
        let reply: VhostUserReply?
        do {
            reply = try channel.request(.getConfig(DeviceConfigSpace(offset: 0, size: FrontendNetConfig.readLength)))
        } catch {
            throw .channel(error)
        }
        switch reply {
        case .config(let space)?:
            let b = space.payload
            guard b.count == FrontendNetConfig.readLength else {
                throw .unexpectedReply(request: code, "\(b.count) config bytes")
            }
            if result.ackedFeatures.contains(.mac) {
                result.deviceMAC = Array(b[FrontendNetConfig.macOffset..<FrontendNetConfig.macOffset + 6])
            }
            if result.ackedFeatures.contains(.mtu) {
                result.deviceMTU = Int(b[FrontendNetConfig.mtuOffset]) | Int(b[FrontendNetConfig.mtuOffset + 1]) << 8
            }
        case .configFailed?:
            break
        default:
            throw .unexpectedReply(request: code, "\(String(describing: reply))")
        }
    }

    /// Steps 3 and 4, once the rings are laid out (and RX buffers posted).
    func startVrings(memory: MappedRegion, queues: [DriverQueue]) throws(FrontendError) {
        let base = UInt64(UInt(bitPattern: memory.base))
        let region = MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: UInt64(memory.length),
                                            userspaceAddr: base, mmapOffset: 0)
        try tell(.setMemTable([region], fds: [memory.fd]))
        for q in queues {
            let i = q.vringIndex
            try tell(.setVringCall(index: i, fd: q.callFD))
            try tell(.setVringNum(VringState(index: i, num: UInt32(q.size))))
            try tell(.setVringBase(VringState(index: i, num: 0)))
            // Ring addresses are frontend (our process's) virtual addresses.
            try tell(.setVringAddr(VringAddress(index: i, desc: base &+ q.descriptorTableGPA,
                                                used: base &+ q.usedRingGPA, avail: base &+ q.availRingGPA)))
            try tell(.setVringKick(index: i, fd: q.kickFD))
        }
        // With PROTOCOL_FEATURES rings start disabled (vhost-user.rst "Ring states").
        if result.ackedFeatures.contains(.protocolFeatures) {
            for q in queues { try tell(.setVringEnable(VringState(index: q.vringIndex, num: 1))) }
        }
    }

    // MARK: Requests

    /// Sends a request that gets a u64 reply and returns it.
    private func askU64(_ message: VhostUserMessage) throws(FrontendError) -> UInt64 {
        let reply: VhostUserReply?
        do { reply = try channel.request(message) } catch { throw .channel(error) }
        guard case .u64(let value)? = reply else {
            throw .unexpectedReply(request: message.requestCode, "\(String(describing: reply))")
        }
        return value
    }

    /// Sends a request without a reply of its own; with REPLY_ACK (unless
    /// `ack` is false) waits for the status and throws if it is not 0.
    func tell(_ message: VhostUserMessage, ack: Bool = true) throws(FrontendError) {
        let needsReply = ack && result.replyAck
        let reply: VhostUserReply?
        do { reply = try channel.request(message, needsReply: needsReply) } catch { throw .channel(error) }
        guard needsReply else { return }
        guard case .u64(let status)? = reply else {
            throw .unexpectedReply(request: message.requestCode, "\(String(describing: reply))")
        }
        if status != 0 { throw .rejected(request: message.requestCode, status: status) }
    }
}
