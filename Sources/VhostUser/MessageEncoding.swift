// Encoding of front-end requests, for the in-process test front-end and
// sluice-gen. The bytes are what QEMU puts on the wire for the same request;
// the fds to attach are `fileDescriptors`.

extension VhostUserMessage {
    /// The payload alone, without the header.
    public func encodedPayload() -> [UInt8] {
        var w = PayloadWriter()
        switch self {
        case .getFeatures, .setOwner, .resetOwner, .getProtocolFeatures, .getQueueNum,
             .setLogFD, .setBackendReqFD, .postcopyAdvise, .postcopyListen, .postcopyEnd,
             .gpuSetSocket, .resetDevice, .getMaxMemSlots, .getStatus, .checkDeviceState, .unknown:
            break
        case .setFeatures(let v), .setProtocolFeatures(let v), .netSetMTU(let v), .closeCryptoSession(let v):
            w.u64(v)
        case .setMemTable(let regions, _):
            w.u32(UInt32(truncatingIfNeeded: regions.count))
            w.u32(0)
            for region in regions { region.write(&w) }
        case .setLogBase(let log, _):
            log.write(&w)
        case .setVringNum(let s), .setVringBase(let s), .getVringBase(let s), .setVringEnable(let s),
             .setVringEndian(let s), .vringKick(let s):
            s.write(&w)
        case .setVringAddr(let a):
            a.write(&w)
        case .setVringKick(let index, let fd), .setVringCall(let index, let fd), .setVringErr(let index, let fd):
            // The index is written whole: one above 255 fails to decode
            // instead of silently naming another ring.
            w.u64(UInt64(index) | (fd == nil ? VhostUserLimits.vringInvalidFDFlag : 0))
        case .sendRARP(let mac):
            let six = Array(mac.prefix(6))
            w.raw(six)
            w.zeros(8 - six.count)
        case .iotlbMessage(let m):
            m.write(&w)
        case .getConfig(let c), .setConfig(let c):
            c.write(&w)
        case .createCryptoSession(let bytes):
            w.raw(bytes)
        case .getInflightFD(let i), .setInflightFD(let i, _):
            i.write(&w)
        case .addMemReg(let region, _), .remMemReg(let region):
            w.u64(0)
            region.write(&w)
        case .setStatus(let status):
            w.u64(UInt64(status))
        case .getSharedObject(let uuid):
            let sixteen = Array(uuid.prefix(16))
            w.raw(sixteen)
            w.zeros(16 - sixteen.count)
        case .setDeviceStateFD(let t, _):
            w.u32(t.direction)
            w.u32(t.phase)
        }
        return w.bytes
    }

    /// The header for this request with a payload of `payloadSize` bytes.
    public func header(payloadSize: Int, needsReply: Bool = false) -> VhostUserHeader {
        VhostUserHeader(request: requestCode, size: payloadSize, needsReply: needsReply)
    }

    /// Header and payload, as one buffer. Send it with `fileDescriptors`
    /// attached (`VhostUserChannel.send(_:needsReply:)` does both).
    public func encode(needsReply: Bool = false) -> [UInt8] {
        let payload = encodedPayload()
        return header(payloadSize: payload.count, needsReply: needsReply).encoded() + payload
    }
}
