import Platform

/// Why a frontend could not connect, negotiate or stop. Control plane only:
/// the packet path counts failures instead of throwing.
public enum FrontendError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The socket or a message on it failed (framing, EOF, timeout, errno).
    case channel(VhostUserProtocolError)
    /// A system call of the frontend itself failed (memfd, eventfd, mmap).
    case system(SystemError)
    /// The options cannot work (queue size not a power of two, …).
    case invalidOptions(String)
    /// The guest memory could not be allocated (no huge pages, no memory).
    case guestMemory(String)
    /// The guest memory is too small for the rings and buffers asked for.
    case guestMemoryTooSmall(needed: Int, available: Int)
    /// The backend does not offer a feature the options require.
    case missingFeature(String)
    /// The backend answered a REPLY_ACK request with a non-zero status.
    case rejected(request: UInt32, status: UInt64)
    /// The backend answered with something that makes no sense here.
    case unexpectedReply(request: UInt32, String)
    /// No backend connected in time (listen mode).
    case timedOut(String)

    public var description: String {
        switch self {
        case .channel(let e): "\(e)"
        case .system(let e): "\(e)"
        case .invalidOptions(let why): "invalid frontend options: \(why)"
        case .guestMemory(let why): "guest memory: \(why)"
        case .guestMemoryTooSmall(let needed, let available):
            "guest memory too small: rings and buffers need \(needed) bytes, have \(available); give more memory or use smaller queues"
        case .missingFeature(let what): "the backend does not offer \(what)"
        case .rejected(let request, let status):
            "the backend rejected \(VhostUserRequest.describe(request)) (REPLY_ACK status \(status))"
        case .unexpectedReply(let request, let why):
            "unexpected reply to \(VhostUserRequest.describe(request)): \(why)"
        case .timedOut(let what): "timed out: \(what)"
        }
    }
}
