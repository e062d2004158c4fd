#if canImport(Glibc)
import Glibc
#endif
import NVMe

/// The model's I/O side: queue creation and deletion, Abort, Doorbell Buffer Config, and
/// NVM commands on in-memory namespaces with strict checks of the data pointers (PRP
/// offsets and lists, SGL Data Block / Last Segment, lengths, MDTS), so a driver mistake
/// shows up as an error status rather than as silently wrong data.
extension SoftController {
    func namespaceBytes(_ nsid: UInt32) -> Int {
        guard let ns = namespaces[nsid] else { return 0 }
        return Int(ns.blocks) << Int(ns.lbads)
    }

    /// The namespace's bytes (zero-filled on first use, pages allocated lazily).
    func data(_ nsid: UInt32) -> UnsafeMutableRawPointer {
        if let p = storage[nsid] { return p }
        let p = mmap(nil, namespaceBytes(nsid), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        storage[nsid] = p
        return p
    }

    func doorbell(_ qid: Int, completion: Bool) -> Int { NVMeRegister.doorbells + (2 * qid + (completion ? 1 : 0)) * stride }

    func executeQueueAdmin(_ c: NVMeCommand, _ e: inout NVMeCompletion) -> UInt16 {
        let qid = Int(c.cdw10 & 0xFFFF), entries = Int(c.cdw10 >> 16) + 1
        switch c.opcode {
        case NVMeAdminOpcode.createCQ:
            guard qid >= 1, qid <= grantedQueues, cqs[qid] == nil else { return NVMeStatus.invalidQueueID }
            guard entries >= 2, entries <= maxQueueEntries else { return NVMeStatus.invalidQueueSize }
            guard c.cdw11 & 1 == 1, c.prp1 & 4095 == 0 else { return NVMeStatus.invalidField }   // CAP.CQR: contiguous
            cqs[qid] = CompletionQueue(base: c.prp1, entries: entries, vector: c.cdw11 & 2 != 0 ? Int(c.cdw11 >> 16) : nil)
            setReg32(doorbell(qid, completion: true), Self.doorbellSentinel)
        case NVMeAdminOpcode.createSQ:
            guard qid >= 1, qid <= grantedQueues, sqs[qid] == nil else { return NVMeStatus.invalidQueueID }
            guard entries >= 2, entries <= maxQueueEntries else { return NVMeStatus.invalidQueueSize }
            guard c.cdw11 & 1 == 1, c.prp1 & 4095 == 0 else { return NVMeStatus.invalidField }
            guard cqs[Int(c.cdw11 >> 16)] != nil else { return NVMeStatus.invalidCQ }
            sqs[qid] = SubmissionQueue(base: c.prp1, entries: entries, cqid: Int(c.cdw11 >> 16))
            setReg32(doorbell(qid, completion: false), Self.doorbellSentinel)
        case NVMeAdminOpcode.deleteSQ:
            guard sqs.removeValue(forKey: qid) != nil else { return NVMeStatus.invalidQueueID }
            held.removeAll { $0.qid == qid }
        case NVMeAdminOpcode.deleteCQ:
            guard cqs[qid] != nil else { return NVMeStatus.invalidQueueID }
            guard !sqs.values.contains(where: { $0.cqid == qid }) else { return 0x10C }   // invalid queue deletion
            cqs[qid] = nil
        case NVMeAdminOpcode.abort:
            aborts += 1
            let cid = UInt16(c.cdw10 >> 16)
            if let i = held.firstIndex(where: { $0.qid == qid && $0.cid == cid }) {
                held.remove(at: i)
                post(cq: sqs[qid]!.cqid, sqid: qid, cid: cid, status: NVMeStatus.abortRequested)
                e.dw0 = 0
            } else {
                e.dw0 = 1   // not aborted
            }
        case NVMeAdminOpcode.doorbellBufferConfig:
            guard supportsDoorbellBuffer else { return NVMeStatus.invalidOpcode }
            guard c.prp1 & 4095 == 0, c.prp2 & 4095 == 0, c.prp1 != 0, c.prp2 != 0 else { return NVMeStatus.invalidField }
            shadowPage = c.prp1
            eventIdxPage = c.prp2
        default:
            return NVMeStatus.invalidOpcode
        }
        return 0
    }

    /// Post the held completions now (late), with `status`.
    func releaseHeld(status: UInt16 = 0) {
        for h in held { post(cq: sqs[h.qid]!.cqid, sqid: h.qid, cid: h.cid, status: status) }
        held = []
    }

    /// One step of every I/O queue: notice doorbell writes, execute what the SQ tail
    /// shows, post completions, and (with shadow doorbells) update EventIdx.
    func stepIO() {
        for qid in sqs.keys.sorted() {
            var sq = sqs[qid]!
            let sqReg = doorbell(qid, completion: false), cqReg = doorbell(sq.cqid, completion: true)
            let written = reg32(sqReg)
            if written != Self.doorbellSentinel {
                sqDoorbellWrites += 1
                setReg32(sqReg, Self.doorbellSentinel)
                sq.tail = Int(written)
            }
            let headWritten = reg32(cqReg)
            if headWritten != Self.doorbellSentinel {
                cqDoorbellWrites += 1
                setReg32(cqReg, Self.doorbellSentinel)
                cqs[sq.cqid]!.head = Int(headWritten)
            }
            if let shadowPage, let page = pointer(shadowPage, bytes: 4096) {
                sq.tail = Int(page.load(fromByteOffset: 2 * qid * stride, as: UInt32.self))
                cqs[sq.cqid]!.head = Int(page.load(fromByteOffset: (2 * sq.cqid + 1) * stride, as: UInt32.self))
            }
            while sq.head != sq.tail % sq.entries {
                let cq = cqs[sq.cqid]!
                if (cq.tail + 1) % cq.entries == cq.head { cqOverflows += 1; break }
                let c = pointer(sq.base + UInt64(sq.head * 64), bytes: 64)!.load(as: NVMeCommand.self)
                sq.head = (sq.head + 1) % sq.entries
                sqs[qid] = sq
                ioCommands.append((qid, c))
                let status = executeIO(c)
                if dropNextIO > 0 {
                    dropNextIO -= 1
                    held.append((qid, c.cid))
                    continue
                }
                post(cq: sq.cqid, sqid: qid, cid: c.cid, status: status)
            }
            sqs[qid] = sq
            if let eventIdxPage, let page = pointer(eventIdxPage, bytes: 4096), steps % eventIdxEvery == 0 {
                page.storeBytes(of: UInt32(sq.head), toByteOffset: 2 * qid * stride, as: UInt32.self)
                page.storeBytes(of: UInt32(cqs[sq.cqid]!.head), toByteOffset: (2 * sq.cqid + 1) * stride, as: UInt32.self)
            }
        }
    }

    func executeIO(_ c: NVMeCommand) -> UInt16 {
        guard let ns = namespaces[c.nsid] else { return NVMeStatus.invalidNamespace }
        let lbs = 1 << Int(ns.lbads)
        let slba = UInt64(c.cdw10) | UInt64(c.cdw11) << 32
        let nlb = Int(c.cdw12 & 0xFFFF) + 1
        let inRange = slba + UInt64(nlb) <= ns.blocks
        switch c.opcode {
        case NVMeIOOpcode.flush:
            flushes += 1
            return 0
        case NVMeIOOpcode.read, NVMeIOOpcode.write:
            guard inRange else { return NVMeStatus.lbaOutOfRange }
            let length = nlb * lbs
            if mdts > 0 && length > 4096 << Int(mdts) { return NVMeStatus.invalidField }
            let pieces: [(UnsafeMutableRawPointer, Int)]
            switch dataPieces(c, length: length) {
            case .success(let p): pieces = p
            case .failure(let status): return status.code
            }
            if let bad = errorLBA, bad.nsid == c.nsid, bad.lba >= slba, bad.lba < slba + UInt64(nlb) { return NVMeStatus.unrecoveredRead }
            var at = data(c.nsid) + Int(slba) * lbs
            for (p, n) in pieces {
                if c.opcode == NVMeIOOpcode.read { p.copyMemory(from: at, byteCount: n) } else { at.copyMemory(from: p, byteCount: n) }
                at += n
            }
            return 0
        case NVMeIOOpcode.writeZeroes:
            guard inRange else { return NVMeStatus.lbaOutOfRange }
            (data(c.nsid) + Int(slba) * lbs).initializeMemory(as: UInt8.self, repeating: 0, count: nlb * lbs)
            return 0
        case NVMeIOOpcode.datasetManagement:
            guard c.cdw11 & NVMeCommand.dsmDeallocate != 0 else { return 0 }
            let ranges = Int(c.cdw10 & 0xFF) + 1
            guard let r = pointer(c.prp1, bytes: 16 * ranges) else { return NVMeStatus.dataTransferError }
            for i in 0..<ranges {
                let n = UInt64(r.load(fromByteOffset: 16 * i + 4, as: UInt32.self))
                let lba = r.load(fromByteOffset: 16 * i + 8, as: UInt64.self)
                guard lba + n <= ns.blocks else { return NVMeStatus.lbaOutOfRange }
                (data(c.nsid) + Int(lba) * lbs).initializeMemory(as: UInt8.self, repeating: 0, count: Int(n) * lbs)
            }
            return 0
        default:
            return NVMeStatus.invalidOpcode
        }
    }

    struct Status: Error { var code: UInt16 }

    /// The host pieces a Read/Write's PRPs or SGL describe, checked like a strict controller.
    func dataPieces(_ c: NVMeCommand, length: Int) -> Result<[(UnsafeMutableRawPointer, Int)], Status> {
        var spans: [(UInt64, Int)] = []
        switch (c.cdw0 >> 14) & 3 {
        case 0:
            guard c.prp1 & 3 == 0 else { return .failure(Status(code: NVMeStatus.prpOffsetInvalid)) }
            let first = min(length, 4096 - Int(c.prp1 & 4095))
            spans.append((c.prp1, first))
            var left = length - first
            if left > 0 && left <= 4096 {
                guard c.prp2 & 4095 == 0 else { return .failure(Status(code: NVMeStatus.prpOffsetInvalid)) }
                spans.append((c.prp2, left))
            } else if left > 0 {
                guard c.prp2 & 7 == 0 else { return .failure(Status(code: NVMeStatus.prpOffsetInvalid)) }
                var entry = c.prp2
                while left > 0 {
                    guard let p = pointer(entry, bytes: 8) else { return .failure(Status(code: NVMeStatus.dataTransferError)) }
                    let value = p.load(as: UInt64.self)
                    if entry & 4095 == 4096 - 8 && left > 4096 {
                        entry = value   // the last entry of a full list page chains to the next one
                        continue
                    }
                    guard value & 4095 == 0 else { return .failure(Status(code: NVMeStatus.prpOffsetInvalid)) }
                    let n = min(left, 4096)
                    spans.append((value, n))
                    left -= n
                    entry += 8
                }
            }
        case 1:
            guard sgls != 0 else { return .failure(Status(code: NVMeStatus.invalidField)) }
            let type = c.prp2 >> 60
            let len = Int(UInt32(truncatingIfNeeded: c.prp2))
            switch type {
            case NVMeSGL.dataBlock:
                spans.append((c.prp1, len))
            case NVMeSGL.lastSegment:
                guard len % 16 == 0, len > 0, let list = pointer(c.prp1, bytes: len) else {
                    return .failure(Status(code: NVMeStatus.sglLengthInvalid))
                }
                for i in 0..<(len / 16) {
                    let q2 = list.load(fromByteOffset: 16 * i + 8, as: UInt64.self)
                    guard q2 >> 60 == NVMeSGL.dataBlock else { return .failure(Status(code: NVMeStatus.sglTypeInvalid)) }
                    spans.append((list.load(fromByteOffset: 16 * i, as: UInt64.self), Int(UInt32(truncatingIfNeeded: q2))))
                }
            default:
                return .failure(Status(code: NVMeStatus.sglTypeInvalid))
            }
            if sgls == 2 && spans.contains(where: { $0.0 & 3 != 0 || $0.1 & 3 != 0 }) {
                return .failure(Status(code: NVMeStatus.invalidField))
            }
            guard spans.reduce(0, { $0 + $1.1 }) == length else { return .failure(Status(code: NVMeStatus.sglLengthInvalid)) }
        default:
            return .failure(Status(code: NVMeStatus.invalidField))
        }
        var out: [(UnsafeMutableRawPointer, Int)] = []
        for (a, n) in spans {
            guard let p = pointer(a, bytes: n) else { return .failure(Status(code: NVMeStatus.dataTransferError)) }
            out.append((p, n))
        }
        return .success(out)
    }
}
