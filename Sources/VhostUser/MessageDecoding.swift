#if canImport(Glibc)
import Glibc
#endif
import Platform

// The validator for front-end requests. Every rule a payload must satisfy is
// checked here, once, so the back-end's handlers only ever see sane values.

extension VhostUserMessage {
    /// Decodes and validates one front-end request.
    ///
    /// Checks, in order: the header (version 1, no reserved flags, no reply
    /// flag, `size == payload.count`), the payload size the request has, the
    /// number of fds it carries, then the range of every field.
    ///
    /// fds: on success every fd not held by the returned message has been
    /// closed; on error every fd in `fds` has been closed. Either way the
    /// caller must not close `fds` itself, only the returned message's.
    public static func decode(header: VhostUserHeader, payload: [UInt8], fds: [Int32]) throws(VhostUserProtocolError) -> VhostUserMessage {
        let message: VhostUserMessage
        do throws(VhostUserProtocolError) {
            message = try decodeKeepingFDs(header: header, payload: payload, fds: fds)
        } catch {
            closeUnheldFDs(fds, except: [])
            throw error
        }
        closeUnheldFDs(fds, except: message.fileDescriptors)
        return message
    }

    private static func decodeKeepingFDs(header: VhostUserHeader, payload: [UInt8], fds: [Int32]) throws(VhostUserProtocolError) -> VhostUserMessage {
        try header.validate(expectingReply: false)
        guard Int(header.size) == payload.count else {
            throw VhostUserProtocolError(.badHeader, request: header.request,
                                         "header size \(header.size) but \(payload.count) payload bytes")
        }
        guard let request = VhostUserRequest(rawValue: header.request) else {
            return .unknown(header.request)
        }
        let d = RequestDecoder(request: request, payload: payload, fdCount: fds.count)
        try d.checkPayloadSize()
        try d.checkFixedFDCount()
        return try d.decodeFields(fds: fds)
    }
}

/// Closes each distinct non-negative fd of `fds` that `keep` does not hold.
func closeUnheldFDs(_ fds: [Int32], except keep: [Int32]) {
    var closed: [Int32] = []
    for fd in fds where fd >= 0 && !keep.contains(fd) && !closed.contains(fd) {
        closeFD(fd)
        closed.append(fd)
    }
}

/// One request being decoded: the payload, the rule row, and error helpers.
private struct RequestDecoder {
    let request: VhostUserRequest
    let payload: [UInt8]
    let fdCount: Int

    func failure(_ kind: VhostUserProtocolError.Kind, _ detail: String) -> VhostUserProtocolError {
        VhostUserProtocolError(kind, request: request.rawValue, detail)
    }

    func checkPayloadSize() throws(VhostUserProtocolError) {
        let n = payload.count
        switch request.rule.payload {
        case .empty:
            guard n == 0 else { throw failure(.payloadSize, "payload of \(n) bytes, expected none") }
        case .fixed(let size):
            guard n == size else { throw failure(.payloadSize, "payload of \(n) bytes, expected \(size)") }
        case .memoryTable:
            guard n >= 8 else { throw failure(.payloadSize, "payload of \(n) bytes, shorter than the 8-byte region count") }
            let regions = Int(payload.loadLE32(at: 0))
            guard (1...VhostUserLimits.maxMemTableRegions).contains(regions) else {
                throw failure(.invalidPayload, "\(regions) memory regions, expected 1...\(VhostUserLimits.maxMemTableRegions)")
            }
            let expected = 8 + regions * MemoryRegionDescriptor.byteCount
            guard n == expected else {
                throw failure(.payloadSize, "payload of \(n) bytes, expected 8 + 32 × \(regions) regions = \(expected)")
            }
        case .config:
            let header = DeviceConfigSpace.headerByteCount
            guard n >= header else { throw failure(.payloadSize, "payload of \(n) bytes, shorter than the 12-byte config header") }
            let size = Int(payload.loadLE32(at: 4))
            guard (1...VhostUserLimits.maxConfigSize).contains(size) else {
                throw failure(.invalidPayload, "config size \(size), expected 1...\(VhostUserLimits.maxConfigSize)")
            }
            guard n == header + size else {
                throw failure(.payloadSize, "payload of \(n) bytes, expected 12 + config size \(size) = \(header + size)")
            }
        case .opaque:
            break
        }
    }

    /// The fd rules that do not depend on payload fields.
    func checkFixedFDCount() throws(VhostUserProtocolError) {
        switch request.rule.fds {
        case .none: try expectFDs(0)
        case .one: try expectFDs(1)
        case .optionalDiscarded:
            guard fdCount <= 1 else { throw failure(.fileDescriptorCount, "\(fdCount) fds, expected 0 or 1") }
        case .perRegion, .unlessInvalidFlag:
            break // checked with the fields
        }
    }

    func expectFDs(_ n: Int, _ why: String = "") throws(VhostUserProtocolError) {
        guard fdCount == n else { throw failure(.fileDescriptorCount, "\(fdCount) fds, expected \(n)\(why)") }
    }

    func decodeFields(fds: [Int32]) throws(VhostUserProtocolError) -> VhostUserMessage {
        var r = PayloadReader(payload)
        switch request {
        case .getFeatures: return .getFeatures
        case .setFeatures: return .setFeatures(r.u64())
        case .setOwner: return .setOwner
        case .resetOwner: return .resetOwner
        case .setMemTable: return try memoryTable(fds: fds)
        case .setLogBase:
            let log = LogDescription(&r)
            guard log.mmapSize > 0, !log.mmapOffset.addingReportingOverflow(log.mmapSize).overflow else {
                throw failure(.invalidPayload, "log mmap_size 0x\(wireHex(log.mmapSize)) at mmap_offset 0x\(wireHex(log.mmapOffset)) is empty or overflows")
            }
            return .setLogBase(log, fd: fds[0])
        case .setLogFD: return .setLogFD(fd: fds[0])
        case .setVringNum: return .setVringNum(VringState(&r))
        case .setVringAddr:
            let addr = VringAddress(&r)
            guard addr.flags & ~VringAddress.logFlag == 0 else {
                throw failure(.invalidPayload, "vring flags 0x\(wireHex(addr.flags)) has undefined bits (only VHOST_VRING_F_LOG = 0x1)")
            }
            return .setVringAddr(addr)
        case .setVringBase: return .setVringBase(VringState(&r))
        case .getVringBase: return .getVringBase(VringState(&r))
        case .setVringKick:
            let (index, fd) = try vringFile(r.u64(), fds: fds)
            return .setVringKick(index: index, fd: fd)
        case .setVringCall:
            let (index, fd) = try vringFile(r.u64(), fds: fds)
            return .setVringCall(index: index, fd: fd)
        case .setVringErr:
            let (index, fd) = try vringFile(r.u64(), fds: fds)
            return .setVringErr(index: index, fd: fd)
        case .getProtocolFeatures: return .getProtocolFeatures
        case .setProtocolFeatures: return .setProtocolFeatures(r.u64())
        case .getQueueNum: return .getQueueNum
        case .setVringEnable:
            let state = VringState(&r)
            guard state.num <= 1 else { throw failure(.invalidPayload, "enable value \(state.num), expected 0 or 1") }
            return .setVringEnable(state)
        case .sendRARP: return .sendRARP(mac: r.raw(6))
        case .netSetMTU: return .netSetMTU(r.u64())
        case .setBackendReqFD: return .setBackendReqFD(fd: fds[0])
        case .iotlbMessage:
            let msg = IOTLBMessage(&r)
            guard msg.permissions <= 3 else { throw failure(.invalidPayload, "IOTLB permissions \(msg.permissions), expected 0...3") }
            guard (1...4).contains(msg.type) else { throw failure(.invalidPayload, "IOTLB type \(msg.type), expected 1...4") }
            return .iotlbMessage(msg)
        case .setVringEndian:
            let state = VringState(&r)
            guard state.num <= 1 else { throw failure(.invalidPayload, "endianness \(state.num), expected 0 (little) or 1 (big)") }
            return .setVringEndian(state)
        case .getConfig: return .getConfig(try config())
        case .setConfig: return .setConfig(try config())
        case .createCryptoSession: return .createCryptoSession(payload)
        case .closeCryptoSession: return .closeCryptoSession(r.u64())
        case .postcopyAdvise: return .postcopyAdvise
        case .postcopyListen: return .postcopyListen
        case .postcopyEnd: return .postcopyEnd
        case .getInflightFD: return .getInflightFD(InflightDescription(&r))
        case .setInflightFD:
            let inflight = InflightDescription(&r)
            guard !inflight.mmapOffset.addingReportingOverflow(inflight.mmapSize).overflow else {
                throw failure(.invalidPayload, "inflight mmap_offset 0x\(wireHex(inflight.mmapOffset)) + mmap_size 0x\(wireHex(inflight.mmapSize)) overflows")
            }
            return .setInflightFD(inflight, fd: fds[0])
        case .gpuSetSocket: return .gpuSetSocket(fd: fds[0])
        case .resetDevice: return .resetDevice
        case .vringKick: return .vringKick(VringState(&r))
        case .getMaxMemSlots: return .getMaxMemSlots
        case .addMemReg:
            r.skip(8)
            return .addMemReg(try region(MemoryRegionDescriptor(&r), "region"), fd: fds[0])
        case .remMemReg:
            r.skip(8)
            // The mmap offset "is ignored" for removal: check only the other ranges.
            var region = MemoryRegionDescriptor(&r)
            let offset = region.mmapOffset
            region.mmapOffset = 0
            _ = try self.region(region, "region")
            region.mmapOffset = offset
            return .remMemReg(region)
        case .setStatus:
            let status = r.u64()
            guard status <= 0xff else { throw failure(.invalidPayload, "device status 0x\(wireHex(status)) does not fit in 8 bits") }
            return .setStatus(UInt8(status))
        case .getStatus: return .getStatus
        case .getSharedObject: return .getSharedObject(uuid: r.raw(16))
        case .setDeviceStateFD:
            let transfer = DeviceStateTransfer(direction: r.u32(), phase: r.u32())
            guard transfer.direction <= 1 else { throw failure(.invalidPayload, "transfer direction \(transfer.direction), expected 0 or 1") }
            guard transfer.phase == 0 else { throw failure(.invalidPayload, "migration phase \(transfer.phase), expected 0") }
            return .setDeviceStateFD(transfer, fd: fds[0])
        case .checkDeviceState: return .checkDeviceState
        }
    }

    // MARK: Field rules shared by several requests

    private func region(_ region: MemoryRegionDescriptor, _ name: String) throws(VhostUserProtocolError) -> MemoryRegionDescriptor {
        if let problem = region.problem() { throw failure(.invalidPayload, "\(name): \(problem)") }
        return region
    }

    private func memoryTable(fds: [Int32]) throws(VhostUserProtocolError) -> VhostUserMessage {
        var r = PayloadReader(payload)
        let count = Int(r.u32())
        r.skip(4) // padding
        try expectFDs(count, " (one per memory region)")
        var regions: [MemoryRegionDescriptor] = []
        regions.reserveCapacity(count)
        for i in 0..<count {
            let next = try region(MemoryRegionDescriptor(&r), "region \(i)")
            if let j = regions.firstIndex(where: { $0.overlapsGuestRange(of: next) }) {
                throw failure(.invalidPayload, "regions \(j) and \(i) overlap in guest physical memory")
            }
            regions.append(next)
        }
        return .setMemTable(regions, fds: fds)
    }

    private func vringFile(_ value: UInt64, fds: [Int32]) throws(VhostUserProtocolError) -> (UInt32, Int32?) {
        let known = VhostUserLimits.vringIndexMask | VhostUserLimits.vringInvalidFDFlag
        guard value & ~known == 0 else {
            throw failure(.invalidPayload, "u64 0x\(wireHex(value)) has bits above the index (0-7) and invalid-fd flag (8)")
        }
        let index = UInt32(value & VhostUserLimits.vringIndexMask)
        if value & VhostUserLimits.vringInvalidFDFlag != 0 {
            try expectFDs(0, " (invalid-fd flag set)")
            return (index, nil)
        }
        try expectFDs(1)
        return (index, fds[0])
    }

    private func config() throws(VhostUserProtocolError) -> DeviceConfigSpace {
        var r = PayloadReader(payload)
        let offset = r.u32()
        let size = r.u32()
        let flags = r.u32()
        // size is 1...256 (checkPayloadSize), so this sum cannot overflow.
        guard UInt64(offset) + UInt64(size) <= UInt64(VhostUserLimits.maxConfigSize) else {
            throw failure(.invalidPayload, "config offset \(offset) + size \(size) is past \(VhostUserLimits.maxConfigSize)")
        }
        guard flags <= DeviceConfigSpace.flagMigration else {
            throw failure(.invalidPayload, "config flags \(flags), expected 0 (writable) or 1 (migration)")
        }
        return DeviceConfigSpace(offset: offset, flags: flags, payload: r.raw(Int(size)))
    }
}
