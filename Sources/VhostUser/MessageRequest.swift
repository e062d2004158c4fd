// Request numbers and feature bits of the vhost-user protocol.
//
// Source of the numbers: QEMU docs/interop/vhost-user.rst, sections
// "Front-end message types" and "Protocol features".

/// A front-end request (the `request` field of a message the front-end sends,
/// and of the back-end's reply to it).
///
/// A request number that is not listed here is not an error at this level:
/// `VhostUserMessage.decode` turns it into `.unknown(number)`.
public enum VhostUserRequest: UInt32, Sendable, CaseIterable {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setLogBase = 6
    case setLogFD = 7
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18
    case sendRARP = 19
    case netSetMTU = 20
    case setBackendReqFD = 21
    case iotlbMessage = 22
    case setVringEndian = 23
    case getConfig = 24
    case setConfig = 25
    case createCryptoSession = 26
    case closeCryptoSession = 27
    case postcopyAdvise = 28
    case postcopyListen = 29
    case postcopyEnd = 30
    case getInflightFD = 31
    case setInflightFD = 32
    case gpuSetSocket = 33
    case resetDevice = 34
    case vringKick = 35
    case getMaxMemSlots = 36
    case addMemReg = 37
    case remMemReg = 38
    case setStatus = 39
    case getStatus = 40
    case getSharedObject = 41
    case setDeviceStateFD = 42
    case checkDeviceState = 43

    /// The spec's name without the `VHOST_USER_` prefix, e.g. `SET_MEM_TABLE`.
    public var name: String {
        switch self {
        case .getFeatures: "GET_FEATURES"
        case .setFeatures: "SET_FEATURES"
        case .setOwner: "SET_OWNER"
        case .resetOwner: "RESET_OWNER"
        case .setMemTable: "SET_MEM_TABLE"
        case .setLogBase: "SET_LOG_BASE"
        case .setLogFD: "SET_LOG_FD"
        case .setVringNum: "SET_VRING_NUM"
        case .setVringAddr: "SET_VRING_ADDR"
        case .setVringBase: "SET_VRING_BASE"
        case .getVringBase: "GET_VRING_BASE"
        case .setVringKick: "SET_VRING_KICK"
        case .setVringCall: "SET_VRING_CALL"
        case .setVringErr: "SET_VRING_ERR"
        case .getProtocolFeatures: "GET_PROTOCOL_FEATURES"
        case .setProtocolFeatures: "SET_PROTOCOL_FEATURES"
        case .getQueueNum: "GET_QUEUE_NUM"
        case .setVringEnable: "SET_VRING_ENABLE"
        case .sendRARP: "SEND_RARP"
        case .netSetMTU: "NET_SET_MTU"
        case .setBackendReqFD: "SET_BACKEND_REQ_FD"
        case .iotlbMessage: "IOTLB_MSG"
        case .setVringEndian: "SET_VRING_ENDIAN"
        case .getConfig: "GET_CONFIG"
        case .setConfig: "SET_CONFIG"
        case .createCryptoSession: "CREATE_CRYPTO_SESSION"
        case .closeCryptoSession: "CLOSE_CRYPTO_SESSION"
        case .postcopyAdvise: "POSTCOPY_ADVISE"
        case .postcopyListen: "POSTCOPY_LISTEN"
        case .postcopyEnd: "POSTCOPY_END"
        case .getInflightFD: "GET_INFLIGHT_FD"
        case .setInflightFD: "SET_INFLIGHT_FD"
        case .gpuSetSocket: "GPU_SET_SOCKET"
        case .resetDevice: "RESET_DEVICE"
        case .vringKick: "VRING_KICK"
        case .getMaxMemSlots: "GET_MAX_MEM_SLOTS"
        case .addMemReg: "ADD_MEM_REG"
        case .remMemReg: "REM_MEM_REG"
        case .setStatus: "SET_STATUS"
        case .getStatus: "GET_STATUS"
        case .getSharedObject: "GET_SHARED_OBJECT"
        case .setDeviceStateFD: "SET_DEVICE_STATE_FD"
        case .checkDeviceState: "CHECK_DEVICE_STATE"
        }
    }

    /// `SET_MEM_TABLE (5)` for a known number, `request 99` for an unknown one.
    public static func describe(_ code: UInt32) -> String {
        if let known = VhostUserRequest(rawValue: code) { return "\(known.name) (\(code))" }
        return "request \(code)"
    }
}

/// Protocol feature bits (`VHOST_USER_PROTOCOL_F_*`), negotiated with
/// GET/SET_PROTOCOL_FEATURES once `VHOST_USER_F_PROTOCOL_FEATURES` is offered.
public struct VhostUserProtocolFeature: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inline(__always) private init(bit: UInt64) { self.rawValue = 1 << bit }

    public static let mq = Self(bit: 0)
    public static let logSHMFD = Self(bit: 1)
    public static let rarp = Self(bit: 2)
    public static let replyAck = Self(bit: 3)
    public static let mtu = Self(bit: 4)
    public static let backendReq = Self(bit: 5)
    public static let crossEndian = Self(bit: 6)
    public static let cryptoSession = Self(bit: 7)
    public static let pagefault = Self(bit: 8)
    public static let config = Self(bit: 9)
    public static let backendSendFD = Self(bit: 10)
    public static let hostNotifier = Self(bit: 11)
    public static let inflightSHMFD = Self(bit: 12)
    public static let resetDevice = Self(bit: 13)
    public static let inbandNotifications = Self(bit: 14)
    public static let configureMemSlots = Self(bit: 15)
    public static let status = Self(bit: 16)
    public static let xenMmap = Self(bit: 17)
    public static let sharedObject = Self(bit: 18)
    public static let deviceState = Self(bit: 19)
}

/// Feature bit 30 of GET/SET_FEATURES: the back-end speaks protocol features.
public let VHOST_USER_F_PROTOCOL_FEATURES: UInt64 = 30
/// `1 << VHOST_USER_F_PROTOCOL_FEATURES`, ready to be or-ed into a feature mask.
public let vhostUserProtocolFeaturesMask: UInt64 = 1 << VHOST_USER_F_PROTOCOL_FEATURES

/// Protocol limits the codec enforces.
public enum VhostUserLimits {
    /// Regions in one SET_MEM_TABLE (`VHOST_MEMORY_BASELINE_NREGIONS`). More
    /// slots are only reachable one by one with ADD_MEM_REG.
    public static let maxMemTableRegions = 8
    /// `VHOST_USER_MAX_CONFIG_SIZE`: the device config space seen over the socket.
    public static let maxConfigSize = 256
    /// The largest payload a channel accepts. The biggest legal payloads
    /// (a full memory table, 264 bytes; a config access, 268 bytes; a crypto
    /// session, under 1 KiB) fit with a wide margin.
    public static let maxPayloadSize = 4096
    /// The most fds one message may carry (the C shim's control buffer).
    public static let maxFileDescriptors = 32
    /// Bits 0-7 of the u64 of SET_VRING_KICK/CALL/ERR: the vring index.
    public static let vringIndexMask: UInt64 = 0xff
    /// Bit 8 of the u64 of SET_VRING_KICK/CALL/ERR: no fd is attached.
    public static let vringInvalidFDFlag: UInt64 = 0x100
}
