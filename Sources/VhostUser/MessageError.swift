/// Everything that can be wrong with a vhost-user message or with the socket
/// that carries it. The back-end's answer to any of these is to log the
/// description and close the connection (the spec allows nothing finer).
public struct VhostUserProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// Version is not 1, reserved flag bits are set, the reply flag is
        /// set on a request (or missing on a reply), or `size` disagrees
        /// with the payload handed over.
        case badHeader
        /// The payload size is not the one this request has.
        case payloadSize
        /// The number of fds is not the one this request carries.
        case fileDescriptorCount
        /// A field is out of range: too many regions, an address range that
        /// overflows, reserved bits set, a config access past 256 bytes…
        case invalidPayload
        /// The header announces a payload bigger than `maxPayloadSize`.
        case payloadTooLarge
        /// More than `maxFileDescriptors` fds, or truncated control data.
        case tooManyFileDescriptors
        /// The peer closed the connection in the middle of a message.
        case truncated
        /// A reply that does not answer the request that was sent.
        case unexpectedReply
        /// The peer stopped sending or receiving in the middle of a message.
        case timedOut
        /// A socket call failed with this errno.
        case system(errno: Int32)
    }

    public var kind: Kind
    /// The request number the message carried, when there was a header.
    public var request: UInt32?
    /// What is wrong, in words, for the log.
    public var detail: String

    public init(_ kind: Kind, request: UInt32? = nil, _ detail: String) {
        self.kind = kind
        self.request = request
        self.detail = detail
    }

    public var description: String {
        if let request { return "vhost-user \(VhostUserRequest.describe(request)): \(detail)" }
        return "vhost-user: \(detail)"
    }
}
