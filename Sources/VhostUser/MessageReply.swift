#if canImport(Glibc)
import Glibc
#endif
import Platform

/// A back-end reply: what the back-end encodes, and what the test front-end
/// decodes and checks against the request it sent.
///
/// fds follow the same rule as `VhostUserMessage`: `decode` closes every fd
/// it does not hand out, and the caller owns `fileDescriptors` of a result.
public enum VhostUserReply: Equatable, Sendable {
    /// GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS,
    /// GET_STATUS, IOTLB_MSG…, and every REPLY_ACK status (0 is success).
    case u64(UInt64)
    /// GET_VRING_BASE.
    case vringState(VringState)
    /// GET_CONFIG: exactly the bytes asked for.
    case config(DeviceConfigSpace)
    /// GET_CONFIG failed (the spec's empty payload).
    case configFailed
    /// GET_INFLIGHT_FD: the area to map and the fd it lives in.
    case inflight(InflightDescription, fd: Int32)
    /// SET_LOG_BASE: a bare header.
    case empty

    /// The REPLY_ACK status: 0 for success, 1 for failure.
    public static func ack(_ success: Bool) -> VhostUserReply { .u64(success ? 0 : 1) }

    public var shape: VhostUserReplyShape {
        switch self {
        case .u64: .u64
        case .vringState: .vringState
        case .config, .configFailed: .config
        case .inflight: .inflight
        case .empty: .empty
        }
    }

    public var fileDescriptors: [Int32] {
        if case .inflight(_, let fd) = self { return [fd] }
        return []
    }

    public func closeFileDescriptors() {
        for fd in fileDescriptors where fd >= 0 { closeFD(fd) }
    }

    /// The reply a front-end waits for after sending `request`: the request's
    /// own reply, else a u64 status when it set need_reply, else none.
    public static func expectedShape(replyingTo request: UInt32, needsReply: Bool) -> VhostUserReplyShape? {
        if let shape = VhostUserRequest(rawValue: request)?.replyShape { return shape }
        return needsReply ? .u64 : nil
    }

    // MARK: Encoding (back-end side)

    public func encodedPayload() -> [UInt8] {
        var w = PayloadWriter()
        switch self {
        case .u64(let v): w.u64(v)
        case .vringState(let s): s.write(&w)
        case .config(let c): c.write(&w)
        case .configFailed, .empty: break
        case .inflight(let i, _): i.write(&w)
        }
        return w.bytes
    }

    /// Header (version 1, reply flag, same request number) and payload.
    /// Send it with `fileDescriptors` attached.
    public func encode(replyingTo request: UInt32) -> [UInt8] {
        let payload = encodedPayload()
        return VhostUserHeader(request: request, size: payload.count, isReply: true).encoded() + payload
    }

    public func encode(replyingTo request: VhostUserRequest) -> [UInt8] {
        encode(replyingTo: request.rawValue)
    }

    // MARK: Decoding (front-end side)

    /// Decodes and validates the reply to `request` (sent with `needsReply`).
    /// On error every fd in `fds` has been closed; on success every fd not
    /// held by the result has.
    public static func decode(header: VhostUserHeader, payload: [UInt8], fds: [Int32],
                              replyingTo request: UInt32, needsReply: Bool) throws(VhostUserProtocolError) -> VhostUserReply {
        let reply: VhostUserReply
        do throws(VhostUserProtocolError) {
            reply = try decodeKeepingFDs(header: header, payload: payload, fds: fds, request: request, needsReply: needsReply)
        } catch {
            closeUnheldFDs(fds, except: [])
            throw error
        }
        closeUnheldFDs(fds, except: reply.fileDescriptors)
        return reply
    }

    private static func decodeKeepingFDs(header: VhostUserHeader, payload: [UInt8], fds: [Int32],
                                         request: UInt32, needsReply: Bool) throws(VhostUserProtocolError) -> VhostUserReply {
        func failure(_ kind: VhostUserProtocolError.Kind, _ detail: String) -> VhostUserProtocolError {
            VhostUserProtocolError(kind, request: request, "reply: " + detail)
        }
        guard header.request == request else {
            throw failure(.unexpectedReply, "answers \(VhostUserRequest.describe(header.request)) instead")
        }
        try header.validate(expectingReply: true)
        guard Int(header.size) == payload.count else {
            throw failure(.badHeader, "header size \(header.size) but \(payload.count) payload bytes")
        }
        guard let shape = expectedShape(replyingTo: request, needsReply: needsReply) else {
            throw failure(.unexpectedReply, "a reply to a request that gets none")
        }
        let wantFDs = shape == .inflight ? 1 : 0
        guard fds.count == wantFDs else { throw failure(.fileDescriptorCount, "\(fds.count) fds, expected \(wantFDs)") }
        func expectSize(_ n: Int) throws(VhostUserProtocolError) {
            guard payload.count == n else { throw failure(.payloadSize, "payload of \(payload.count) bytes, expected \(n)") }
        }
        var r = PayloadReader(payload)
        switch shape {
        case .u64:
            try expectSize(8)
            return .u64(r.u64())
        case .vringState:
            try expectSize(VringState.byteCount)
            return .vringState(VringState(&r))
        case .empty:
            try expectSize(0)
            return .empty
        case .inflight:
            try expectSize(InflightDescription.byteCount)
            let inflight = InflightDescription(&r)
            guard inflight.mmapSize > 0, !inflight.mmapOffset.addingReportingOverflow(inflight.mmapSize).overflow else {
                throw failure(.invalidPayload, "inflight mmap_size 0x\(wireHex(inflight.mmapSize)) at mmap_offset 0x\(wireHex(inflight.mmapOffset)) is empty or overflows")
            }
            return .inflight(inflight, fd: fds[0])
        case .config:
            if payload.isEmpty { return .configFailed }
            guard payload.count >= DeviceConfigSpace.headerByteCount else {
                throw failure(.payloadSize, "payload of \(payload.count) bytes, shorter than the 12-byte config header")
            }
            let offset = r.u32()
            let size = Int(r.u32())
            let flags = r.u32()
            guard (1...VhostUserLimits.maxConfigSize).contains(size),
                  UInt64(offset) + UInt64(size) <= UInt64(VhostUserLimits.maxConfigSize) else {
                throw failure(.invalidPayload, "config offset \(offset) size \(size) is outside 0..<\(VhostUserLimits.maxConfigSize)")
            }
            try expectSize(DeviceConfigSpace.headerByteCount + size)
            return .config(DeviceConfigSpace(offset: offset, flags: flags, payload: r.raw(size)))
        }
    }
}
