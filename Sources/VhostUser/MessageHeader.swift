/// The 12-byte header in front of every vhost-user message:
/// `request: u32, flags: u32, size: u32`, little endian (the spec says
/// "machine native byte order"; every host sluice runs on is little endian).
public struct VhostUserHeader: Equatable, Sendable {
    public static let byteCount = 12

    /// Flags bits 0-1: protocol version, always 1.
    public static let versionMask: UInt32 = 0x3
    public static let currentVersion: UInt32 = 0x1
    /// Flags bit 2: set on every reply from the back-end.
    public static let replyFlag: UInt32 = 0x4
    /// Flags bit 3: the front-end asks for a REPLY_ACK status.
    public static let needReplyFlag: UInt32 = 0x8
    /// Every flag bit the spec defines; the others are reserved and must be 0.
    public static let definedFlags: UInt32 = versionMask | replyFlag | needReplyFlag

    public var request: UInt32
    public var flags: UInt32
    public var size: UInt32

    public init(request: UInt32, flags: UInt32, size: UInt32) {
        self.request = request
        self.flags = flags
        self.size = size
    }

    /// A version-1 header for `request` with a payload of `size` bytes.
    public init(request: UInt32, size: Int, isReply: Bool = false, needsReply: Bool = false) {
        var flags = Self.currentVersion
        if isReply { flags |= Self.replyFlag }
        if needsReply { flags |= Self.needReplyFlag }
        self.init(request: request, flags: flags, size: UInt32(truncatingIfNeeded: size))
    }

    public var version: UInt32 { flags & Self.versionMask }
    public var hasValidVersion: Bool { version == Self.currentVersion }
    public var isReply: Bool { flags & Self.replyFlag != 0 }
    public var needsReply: Bool { flags & Self.needReplyFlag != 0 }
    public var hasReservedFlags: Bool { flags & ~Self.definedFlags != 0 }

    /// Reads a header from the first 12 bytes; nil when there are fewer.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count >= Self.byteCount else { return nil }
        let b = Array(bytes.prefix(Self.byteCount))
        self.init(request: b.loadLE32(at: 0), flags: b.loadLE32(at: 4), size: b.loadLE32(at: 8))
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: Self.byteCount)
        w.u32(request)
        w.u32(flags)
        w.u32(size)
        return w.bytes
    }

    /// Version 1, no reserved bits, and the reply flag matching the direction.
    func validate(expectingReply: Bool) throws(VhostUserProtocolError) {
        guard hasValidVersion else {
            throw VhostUserProtocolError(.badHeader, request: request,
                                         "version \(version), expected \(Self.currentVersion) (flags 0x\(wireHex(flags)))")
        }
        guard !hasReservedFlags else {
            throw VhostUserProtocolError(.badHeader, request: request,
                                         "reserved flag bits set (flags 0x\(wireHex(flags)))")
        }
        if isReply != expectingReply {
            throw VhostUserProtocolError(.badHeader, request: request,
                                         expectingReply ? "reply flag missing on a reply" : "reply flag set on a request")
        }
    }
}

@inline(__always)
func wireHex<T: BinaryInteger>(_ v: T) -> String { String(v, radix: 16) }
