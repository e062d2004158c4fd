#if canImport(Glibc)
import Glibc
#endif
import Platform

/// A front-end request, decoded and validated (see `decode` in
/// MessageDecoding.swift): every case holds typed fields whose ranges have
/// been checked, and exactly the fds the request carries.
///
/// ## File descriptors
/// fds arrive with a message as plain `Int32`s. `decode` closes every fd it
/// does not hand out in the returned value (all of them when it throws; the
/// stray fd of REM_MEM_REG; any fd sent with an unknown request). The fds of a
/// returned message — `fileDescriptors` — belong to the caller from then on,
/// who keeps them or calls `closeFileDescriptors()`.
public enum VhostUserMessage: Equatable, Sendable {
    case getFeatures
    case setFeatures(UInt64)
    case setOwner
    case resetOwner
    /// 1...8 regions, one fd per region in the same order.
    case setMemTable([MemoryRegionDescriptor], fds: [Int32])
    case setLogBase(LogDescription, fd: Int32)
    case setLogFD(fd: Int32)
    case setVringNum(VringState)
    case setVringAddr(VringAddress)
    case setVringBase(VringState)
    case getVringBase(VringState)
    /// `fd == nil`: the invalid-fd flag was set (poll the ring instead).
    case setVringKick(index: UInt32, fd: Int32?)
    case setVringCall(index: UInt32, fd: Int32?)
    case setVringErr(index: UInt32, fd: Int32?)
    case getProtocolFeatures
    case setProtocolFeatures(UInt64)
    case getQueueNum
    /// `num` is 0 (disable) or 1 (enable).
    case setVringEnable(VringState)
    /// The guest's MAC address (6 bytes).
    case sendRARP(mac: [UInt8])
    case netSetMTU(UInt64)
    case setBackendReqFD(fd: Int32)
    case iotlbMessage(IOTLBMessage)
    /// `num` is 0 (little endian) or 1 (big endian).
    case setVringEndian(VringState)
    case getConfig(DeviceConfigSpace)
    case setConfig(DeviceConfigSpace)
    /// Not interpreted: sluice has no crypto device.
    case createCryptoSession([UInt8])
    case closeCryptoSession(UInt64)
    case postcopyAdvise
    case postcopyListen
    case postcopyEnd
    case getInflightFD(InflightDescription)
    case setInflightFD(InflightDescription, fd: Int32)
    case gpuSetSocket(fd: Int32)
    case resetDevice
    case vringKick(VringState)
    case getMaxMemSlots
    case addMemReg(MemoryRegionDescriptor, fd: Int32)
    /// An fd sent along (the spec tolerates one) has already been closed.
    case remMemReg(MemoryRegionDescriptor)
    /// The virtio device status byte.
    case setStatus(UInt8)
    case getStatus
    /// A 16-byte UUID.
    case getSharedObject(uuid: [UInt8])
    case setDeviceStateFD(DeviceStateTransfer, fd: Int32)
    case checkDeviceState
    /// A request number this codec does not know. Its payload is ignored and
    /// its fds, if any, are closed.
    case unknown(UInt32)

    /// The request number on the wire.
    public var requestCode: UInt32 {
        switch self {
        case .getFeatures: VhostUserRequest.getFeatures.rawValue
        case .setFeatures: VhostUserRequest.setFeatures.rawValue
        case .setOwner: VhostUserRequest.setOwner.rawValue
        case .resetOwner: VhostUserRequest.resetOwner.rawValue
        case .setMemTable: VhostUserRequest.setMemTable.rawValue
        case .setLogBase: VhostUserRequest.setLogBase.rawValue
        case .setLogFD: VhostUserRequest.setLogFD.rawValue
        case .setVringNum: VhostUserRequest.setVringNum.rawValue
        case .setVringAddr: VhostUserRequest.setVringAddr.rawValue
        case .setVringBase: VhostUserRequest.setVringBase.rawValue
        case .getVringBase: VhostUserRequest.getVringBase.rawValue
        case .setVringKick: VhostUserRequest.setVringKick.rawValue
        case .setVringCall: VhostUserRequest.setVringCall.rawValue
        case .setVringErr: VhostUserRequest.setVringErr.rawValue
        case .getProtocolFeatures: VhostUserRequest.getProtocolFeatures.rawValue
        case .setProtocolFeatures: VhostUserRequest.setProtocolFeatures.rawValue
        case .getQueueNum: VhostUserRequest.getQueueNum.rawValue
        case .setVringEnable: VhostUserRequest.setVringEnable.rawValue
        case .sendRARP: VhostUserRequest.sendRARP.rawValue
        case .netSetMTU: VhostUserRequest.netSetMTU.rawValue
        case .setBackendReqFD: VhostUserRequest.setBackendReqFD.rawValue
        case .iotlbMessage: VhostUserRequest.iotlbMessage.rawValue
        case .setVringEndian: VhostUserRequest.setVringEndian.rawValue
        case .getConfig: VhostUserRequest.getConfig.rawValue
        case .setConfig: VhostUserRequest.setConfig.rawValue
        case .createCryptoSession: VhostUserRequest.createCryptoSession.rawValue
        case .closeCryptoSession: VhostUserRequest.closeCryptoSession.rawValue
        case .postcopyAdvise: VhostUserRequest.postcopyAdvise.rawValue
        case .postcopyListen: VhostUserRequest.postcopyListen.rawValue
        case .postcopyEnd: VhostUserRequest.postcopyEnd.rawValue
        case .getInflightFD: VhostUserRequest.getInflightFD.rawValue
        case .setInflightFD: VhostUserRequest.setInflightFD.rawValue
        case .gpuSetSocket: VhostUserRequest.gpuSetSocket.rawValue
        case .resetDevice: VhostUserRequest.resetDevice.rawValue
        case .vringKick: VhostUserRequest.vringKick.rawValue
        case .getMaxMemSlots: VhostUserRequest.getMaxMemSlots.rawValue
        case .addMemReg: VhostUserRequest.addMemReg.rawValue
        case .remMemReg: VhostUserRequest.remMemReg.rawValue
        case .setStatus: VhostUserRequest.setStatus.rawValue
        case .getStatus: VhostUserRequest.getStatus.rawValue
        case .getSharedObject: VhostUserRequest.getSharedObject.rawValue
        case .setDeviceStateFD: VhostUserRequest.setDeviceStateFD.rawValue
        case .checkDeviceState: VhostUserRequest.checkDeviceState.rawValue
        case .unknown(let code): code
        }
    }

    /// The request, or nil for `.unknown`.
    public var request: VhostUserRequest? { VhostUserRequest(rawValue: requestCode) }

    /// The fds this message holds, in wire order.
    public var fileDescriptors: [Int32] {
        switch self {
        case .setMemTable(_, let fds): fds
        case .setLogBase(_, let fd), .setLogFD(let fd), .setBackendReqFD(let fd),
             .setInflightFD(_, let fd), .gpuSetSocket(let fd), .addMemReg(_, let fd),
             .setDeviceStateFD(_, let fd):
            [fd]
        case .setVringKick(_, let fd), .setVringCall(_, let fd), .setVringErr(_, let fd):
            fd.map { [$0] } ?? []
        default: []
        }
    }

    /// Closes every fd the message holds. For a caller that rejects a decoded
    /// message (wrong state, unsupported feature) instead of keeping its fds.
    public func closeFileDescriptors() {
        for fd in fileDescriptors where fd >= 0 { closeFD(fd) }
    }
}

// MARK: - The message table

/// How big a request's payload is.
enum PayloadRule: Equatable {
    case empty
    case fixed(Int)
    /// 8 bytes of header plus 32 per region (SET_MEM_TABLE).
    case memoryTable
    /// 12 bytes of header plus `size` bytes (GET/SET_CONFIG).
    case config
    /// Any size the channel let through (not interpreted).
    case opaque
}

/// Which fds a request carries.
enum FileDescriptorRule: Equatable {
    case none
    case one
    /// One per memory region (SET_MEM_TABLE).
    case perRegion
    /// One unless the invalid-fd bit of the u64 is set (SET_VRING_KICK/CALL/ERR).
    case unlessInvalidFlag
    /// Zero or one; one is tolerated and closed (REM_MEM_REG).
    case optionalDiscarded
}

/// What the back-end answers, beyond a REPLY_ACK status.
public enum VhostUserReplyShape: Equatable, Sendable {
    case u64
    case vringState
    case config
    /// An inflight description and one fd.
    case inflight
    /// A header with no payload (SET_LOG_BASE).
    case empty
}

extension VhostUserRequest {
    /// One row per request: payload size and fds, as vhost-user.rst gives them.
    var rule: (payload: PayloadRule, fds: FileDescriptorRule) {
        switch self {
        case .getFeatures, .setOwner, .resetOwner, .getProtocolFeatures, .getQueueNum,
             .postcopyAdvise, .postcopyListen, .postcopyEnd, .resetDevice, .getMaxMemSlots,
             .getStatus, .checkDeviceState:
            (.empty, .none)
        case .setFeatures, .setProtocolFeatures, .sendRARP, .netSetMTU, .closeCryptoSession, .setStatus:
            (.fixed(8), .none)
        case .setVringNum, .setVringBase, .getVringBase, .setVringEnable, .setVringEndian, .vringKick:
            (.fixed(VringState.byteCount), .none)
        case .setMemTable: (.memoryTable, .perRegion)
        case .setLogBase: (.fixed(LogDescription.byteCount), .one)
        case .setLogFD, .setBackendReqFD, .gpuSetSocket: (.empty, .one)
        case .setVringAddr: (.fixed(VringAddress.byteCount), .none)
        case .setVringKick, .setVringCall, .setVringErr: (.fixed(8), .unlessInvalidFlag)
        case .iotlbMessage: (.fixed(IOTLBMessage.byteCount), .none)
        case .getConfig, .setConfig: (.config, .none)
        case .createCryptoSession: (.opaque, .none)
        case .getInflightFD: (.fixed(InflightDescription.byteCount), .none)
        case .setInflightFD: (.fixed(InflightDescription.byteCount), .one)
        case .addMemReg: (.fixed(8 + MemoryRegionDescriptor.byteCount), .one)
        case .remMemReg: (.fixed(8 + MemoryRegionDescriptor.byteCount), .optionalDiscarded)
        case .getSharedObject: (.fixed(16), .none)
        case .setDeviceStateFD: (.fixed(DeviceStateTransfer.byteCount), .one)
        }
    }

    /// The reply this request always gets, or nil when it gets one only if
    /// `need_reply` was set (then a u64 REPLY_ACK status).
    public var replyShape: VhostUserReplyShape? {
        switch self {
        case .getFeatures, .getProtocolFeatures, .getQueueNum, .getMaxMemSlots, .getStatus,
             .postcopyEnd, .checkDeviceState, .iotlbMessage, .setDeviceStateFD:
            .u64
        case .getVringBase: .vringState
        case .getConfig: .config
        case .getInflightFD: .inflight
        case .setLogBase: .empty
        default: nil
        }
    }
}
