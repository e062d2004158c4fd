import Platform

/// One front-end connected to a device: reads a message, validates it (the codec),
/// applies it (the device), answers. A malformed message ends this connection only.
public final class VhostUserBackendConnection: @unchecked Sendable {
    public let channel: VhostUserChannel
    public let device: VhostUserDevice

    public enum Result: Equatable {
        /// A message was handled (`failure` is set when the device refused it).
        case handled(failure: String?)
        /// The front-end closed the socket.
        case closed
        /// The front-end sent something the protocol does not allow: drop the connection.
        case protocolError(String)
    }

    /// The request code of the last message handled (for debug logs).
    public private(set) var lastRequest: UInt32 = 0

    /// Takes ownership of the connected socket `fd`.
    public convenience init(fd: Int32, device: VhostUserDevice) {
        self.init(owning: OwnedFD(adopting: fd), device: device)
    }

    public init(owning socket: consuming OwnedFD, device: VhostUserDevice) {
        channel = VhostUserChannel(owning: socket)
        device.beginConnection()
        self.device = device
    }

    public var fd: Int32 { channel.fd }

    /// Handle one message from the socket (call when it is readable).
    public func service() -> Result {
        let received: (header: VhostUserHeader, message: VhostUserMessage)?
        do { received = try channel.receiveMessage() } catch {
            return .protocolError(error.description)
        }
        guard let (header, message) = received else { return .closed }
        lastRequest = header.request
        let outcome = device.handle(message)
        do {
            switch outcome {
            case .reply(let r):
                try channel.sendReply(r, to: header.request)
                return .handled(failure: nil)
            case .done:
                if header.needsReply && device.replyAck { try channel.sendReply(.ack(true), to: header.request) }
                return .handled(failure: nil)
            case .failed(let why):
                if header.needsReply && device.replyAck { try channel.sendReply(.ack(false), to: header.request) }
                return .handled(failure: "\(VhostUserRequest.describe(header.request)): \(why)")
            }
        } catch {
            return .protocolError("sending reply: \(error.description)")
        }
    }

    /// Close the socket and reset the device (queues stopped, memory unmapped).
    public func close() {
        device.reset()
        channel.close()
    }
}
