import Block
import VhostUser

/// Transport feature bits the blk front-end negotiates besides the
/// virtio-blk ones of `VirtioBlk.Feature` (VIRTIO 1.2 §6).
enum BlkFeatures {
    static let indirectDescriptors: UInt64 = 1 << 28
    static let eventIndex: UInt64 = 1 << 29
    /// VHOST_USER_F_PROTOCOL_FEATURES.
    static let protocolFeatures: UInt64 = 1 << 30
    static let version1: UInt64 = 1 << 32

    static let names: [(UInt64, String)] = [
        (VirtioBlk.Feature.sizeMax, "SIZE_MAX"), (VirtioBlk.Feature.segMax, "SEG_MAX"), (VirtioBlk.Feature.ro, "RO"),
        (VirtioBlk.Feature.blkSize, "BLK_SIZE"), (VirtioBlk.Feature.flush, "FLUSH"),
        (VirtioBlk.Feature.topology, "TOPOLOGY"), (VirtioBlk.Feature.configWCE, "CONFIG_WCE"),
        (VirtioBlk.Feature.mq, "MQ"), (VirtioBlk.Feature.discard, "DISCARD"),
        (VirtioBlk.Feature.writeZeroes, "WRITE_ZEROES"), (1 << 24, "NOTIFY_ON_EMPTY"), (1 << 26, "LOG_ALL"),
        (indirectDescriptors, "INDIRECT_DESC"),
        (eventIndex, "EVENT_IDX"), (protocolFeatures, "PROTOCOL_FEATURES"), (version1, "VERSION_1"),
    ]

    /// `VERSION_1|FLUSH|…` plus the hex value of unnamed bits.
    static func describe(_ bits: UInt64) -> String {
        var parts = names.filter { bits & $0.0 != 0 }.map(\.1)
        let unnamed = bits & ~names.reduce(0) { $0 | $1.0 }
        if unnamed != 0 { parts.append("0x" + String(unnamed, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }

    static let protocolNames: [(VhostUserProtocolFeature, String)] = [
        (.mq, "MQ"), (.logSHMFD, "LOG_SHMFD"), (.rarp, "RARP"), (.replyAck, "REPLY_ACK"), (.mtu, "MTU"),
        (.backendReq, "BACKEND_REQ"), (.crossEndian, "CROSS_ENDIAN"), (.cryptoSession, "CRYPTO_SESSION"),
        (.pagefault, "PAGEFAULT"), (.config, "CONFIG"), (.backendSendFD, "BACKEND_SEND_FD"),
        (.hostNotifier, "HOST_NOTIFIER"), (.inflightSHMFD, "INFLIGHT_SHMFD"), (.resetDevice, "RESET_DEVICE"),
        (.inbandNotifications, "INBAND_NOTIFICATIONS"), (.configureMemSlots, "CONFIGURE_MEM_SLOTS"),
        (.status, "STATUS"), (.xenMmap, "XEN_MMAP"), (.sharedObject, "SHARED_OBJECT"), (.deviceState, "DEVICE_STATE"),
    ]

    static func describe(_ features: VhostUserProtocolFeature) -> String {
        var parts = protocolNames.filter { features.contains($0.0) }.map(\.1)
        let unnamed = features.rawValue & ~protocolNames.reduce(0) { $0 | $1.0.rawValue }
        if unnamed != 0 { parts.append("0x" + String(unnamed, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}

/// What negotiation found out about the device.
struct BlkDeviceInfo {
    var offeredFeatures: UInt64 = 0
    var ackedFeatures: UInt64 = 0
    var offeredProtocolFeatures: VhostUserProtocolFeature = []
    var ackedProtocolFeatures: VhostUserProtocolFeature = []
    /// GET_QUEUE_NUM, when MQ was negotiated.
    var backendQueues: Int?
    /// `struct virtio_blk_config` from GET_CONFIG (nil: no CONFIG, or it failed).
    var config: [UInt8]?

    func acked(_ bit: UInt64) -> Bool { ackedFeatures & bit != 0 }

    private func u8(_ offset: Int) -> UInt8? {
        guard let config, offset < config.count else { return nil }
        return config[offset]
    }

    private func u16(_ offset: Int) -> UInt16? {
        guard let config, offset + 2 <= config.count else { return nil }
        return UInt16(config[offset]) | UInt16(config[offset + 1]) << 8
    }

    private func u32(_ offset: Int) -> UInt32? {
        guard let config, offset + 4 <= config.count else { return nil }
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(config[offset + $1]) << (8 * $1) }
    }

    private func u64(_ offset: Int) -> UInt64? {
        guard let config, offset + 8 <= config.count else { return nil }
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(config[offset + $1]) << (8 * $1) }
    }

    /// Capacity in 512-byte sectors (always valid in the config space).
    var capacity: UInt64? { u64(VirtioBlk.Config.capacity) }
    var sizeMax: UInt32? { acked(VirtioBlk.Feature.sizeMax) ? u32(VirtioBlk.Config.sizeMax) : nil }
    var segMax: UInt32? { acked(VirtioBlk.Feature.segMax) ? u32(VirtioBlk.Config.segMax) : nil }
    var blkSize: UInt32? { acked(VirtioBlk.Feature.blkSize) ? u32(VirtioBlk.Config.blkSize) : nil }
    var numQueues: UInt16? { acked(VirtioBlk.Feature.mq) ? u16(VirtioBlk.Config.numQueues) : nil }
    var maxDiscardSectors: UInt32? { acked(VirtioBlk.Feature.discard) ? u32(VirtioBlk.Config.maxDiscardSectors) : nil }
    var maxDiscardSegments: UInt32? { acked(VirtioBlk.Feature.discard) ? u32(VirtioBlk.Config.maxDiscardSeg) : nil }
    var discardAlignment: UInt32? {
        acked(VirtioBlk.Feature.discard) ? u32(VirtioBlk.Config.discardSectorAlignment) : nil
    }
    var maxWriteZeroesSectors: UInt32? {
        acked(VirtioBlk.Feature.writeZeroes) ? u32(VirtioBlk.Config.maxWriteZeroesSectors) : nil
    }
    var writeZeroesMayUnmap: Bool? {
        acked(VirtioBlk.Feature.writeZeroes) ? u8(VirtioBlk.Config.writeZeroesMayUnmap).map { $0 != 0 } : nil
    }
    var readOnly: Bool { acked(VirtioBlk.Feature.ro) }

    /// Queues the device has: num_queues (MQ), else GET_QUEUE_NUM, else 1.
    var maxQueues: Int {
        guard acked(VirtioBlk.Feature.mq) else { return 1 }
        if let n = numQueues, n > 0 { return Int(n) }
        return backendQueues ?? 1
    }
}

/// The names of request types and status bytes, for output.
enum BlkNames {
    static func status(_ s: UInt8) -> String {
        switch s {
        case VirtioBlk.Status.ok: "OK"
        case VirtioBlk.Status.ioErr: "IOERR"
        case VirtioBlk.Status.unsupp: "UNSUPP"
        default: "0x" + String(s, radix: 16)
        }
    }

    static let types: [(String, UInt32)] = [
        ("in", VirtioBlk.RequestType.input), ("read", VirtioBlk.RequestType.input),
        ("out", VirtioBlk.RequestType.output), ("write", VirtioBlk.RequestType.output),
        ("flush", VirtioBlk.RequestType.flush), ("get-id", VirtioBlk.RequestType.getID),
        ("discard", VirtioBlk.RequestType.discard), ("write-zeroes", VirtioBlk.RequestType.writeZeroes),
    ]

    /// A type by name (in, out, flush, get-id, discard, write-zeroes) or number.
    static func type(_ text: String) -> UInt32? {
        if let hit = types.first(where: { $0.0 == text.lowercased() }) { return hit.1 }
        return UInt32(text)
    }
}
