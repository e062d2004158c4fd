// libFuzzer target `vhost-message`: the vhost-user request and reply decoders.
//
// Input layout:
//   byte 0        control: bits 0-4 number of fds to attach (0...31)
//                          bit 5    need_reply (reply mode)
//                          bit 6    keep the header's own size field (else it is
//                                   set to the payload length, so most inputs
//                                   get past the framing check)
//                          bit 7    decode as the reply to the header's request
//   bytes 1-12    the 12-byte vhost-user header
//   bytes 13-     the payload (at most VhostUserLimits.maxPayloadSize bytes)
//
// The fds are real (dups of /dev/null), so the decoder's closing is exercised
// and checked: after each input every fd must be either held by the decoded
// value or closed, never both, and none may leak.
#if canImport(Glibc)
import Glibc
#endif
import VhostUser

private let devNull: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)

private func fail(_ what: String) -> Never {
    fputs("vhost-message fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

/// Closes the fds a decoded value holds, checking each was one of ours and
/// still open (a double close would mean the decoder closed it too).
private func release(_ held: [Int32], from given: [Int32]) {
    for fd in held {
        guard given.contains(fd) else { fail("decoded value holds fd \(fd) it was never given") }
        guard close(fd) == 0 else { fail("fd \(fd) held by the decoded value was already closed") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func vhostMessageFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 1 + VhostUserHeader.byteCount else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let control = bytes[0]
    guard var header = VhostUserHeader(bytes: bytes.dropFirst()) else { return 0 }
    let payload = Array(bytes.dropFirst(1 + VhostUserHeader.byteCount).prefix(VhostUserLimits.maxPayloadSize))
    if control & 0x40 == 0 { header.size = UInt32(payload.count) }

    var fds: [Int32] = []
    for _ in 0..<Int(control & 0x1f) {
        let fd = dup(devNull)
        if fd < 0 { fail("dup failed") }
        fds.append(fd)
    }

    if control & 0x80 != 0 {
        let needsReply = control & 0x20 != 0
        if let reply = try? VhostUserReply.decode(header: header, payload: payload, fds: fds,
                                                  replyingTo: header.request, needsReply: needsReply) {
            // Replies re-encode to the same value.
            let again = reply.encode(replyingTo: header.request)
            guard let h = VhostUserHeader(bytes: again) else { fail("reply encoding lost its header") }
            let p = Array(again.dropFirst(VhostUserHeader.byteCount))
            guard let back = try? VhostUserReply.decode(header: h, payload: p, fds: reply.fileDescriptors,
                                                        replyingTo: header.request, needsReply: needsReply),
                  back == reply else { fail("reply \(reply) does not survive encode/decode") }
            release(reply.fileDescriptors, from: fds)
        }
    } else if let message = try? VhostUserMessage.decode(header: header, payload: payload, fds: fds) {
        // A valid request re-encodes to bytes that decode to the same value
        // (an unknown request's payload is dropped, which still round-trips).
        let again = message.encode(needsReply: header.needsReply)
        guard let h = VhostUserHeader(bytes: again) else { fail("request encoding lost its header") }
        let p = Array(again.dropFirst(VhostUserHeader.byteCount))
        do {
            let back = try VhostUserMessage.decode(header: h, payload: p, fds: message.fileDescriptors)
            guard back == message else { fail("request \(message) re-decodes as \(back)") }
        } catch {
            fail("request \(message) does not re-decode: \(error)")
        }
        release(message.fileDescriptors, from: fds)
    }

    for fd in fds where isOpen(fd) { fail("fd \(fd) leaked (request \(header.request))") }
    return 0
}
