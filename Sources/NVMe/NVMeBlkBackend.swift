#if canImport(Glibc)
import Glibc
#endif
import Block
import CSluice
import Stats
import Platform

/// A blk virtqueue's requests on one NVMe I/O queue pair: a plain value of pointers the
/// worker copies (the pair's state, the namespace, its LBA size, the guest's IOVA table).
///
/// `prepare` turns a request into commands in the SQ (Read/Write with PRPs or an SGL,
/// split by MDTS and by what PRPs can express; Flush; Write Zeroes; Dataset Management
/// deallocate for DISCARD), `submit` rings the SQ doorbell once, `reap` consumes
/// completions by phase and answers a request when all its commands are done (first
/// error wins, any NVMe error status is -EIO), then rings the CQ head once.
@frozen
public struct NVMeBlkBackend: BlkBackend {
    public let state: UnsafeMutablePointer<NVMeQueuePairState>
    public let nsid: UInt32
    /// log2 of the namespace's logical block size.
    public let lbaShift: Int
    public let iova: NVMeIOVATable

    public init(state: UnsafeMutablePointer<NVMeQueuePairState>, nsid: UInt32, lbaShift: Int, iova: NVMeIOVATable) {
        self.state = state; self.nsid = nsid; self.lbaShift = lbaShift; self.iova = iova
    }

    /// Byte offset = the export's start + sector × 512; it and the length must be whole
    /// logical blocks (a guest may send anything: misaligned requests fail, counted).
    @inlinable
    public func prepare(_ slot: UnsafeMutablePointer<BlkSlot>, head: UInt16, target: BlockTarget) -> BlkPrepare {
        let s = state
        if s.pointee.failed { return s.refuse() }
        let type = slot.pointee.type
        let now = slot.pointee.start != 0 ? slot.pointee.start : sl_rdtsc()
        let offset = target.offsetBytes &+ slot.pointee.sector &<< 9
        let mask = UInt64((1 &<< lbaShift) &- 1)
        switch type {
        case VirtioBlk.RequestType.input, VirtioBlk.RequestType.output:
            let bytes = UInt64(slot.pointee.bytes)
            guard bytes > 0, (offset | bytes) & mask == 0 else { return s.refuse() }
            let n = Int(slot.pointee.iovCount)
            guard n > 0, n <= s.pointee.segCapacity else { return s.refuse() }
            let dword = s.pointee.useSGL && s.pointee.sglDwordAligned
            var segs = 0, total = 0
            var k = 0
            while k < n {
                let v = slot.pointee.iov[k]
                k &+= 1
                if v.iov_len == 0 { continue }
                guard let base = v.iov_base, let a = iova.translate(base, bytes: v.iov_len) else { return s.refuse() }
                if dword && (a | UInt64(v.iov_len)) & 3 != 0 {
                    s.pointee.unexpressible &+= 1
                    return s.refuse()
                }
                s.pointee.segIOVA[segs] = a
                s.pointee.segBytes[segs] = v.iov_len
                segs &+= 1
                total &+= v.iov_len
            }
            guard UInt64(total) == bytes else { return s.refuse() }
            let opcode = type == VirtioBlk.RequestType.input ? NVMeIOOpcode.read : NVMeIOOpcode.write
            return s.queueTransfer(opcode: opcode, nsid: nsid, lba: offset &>> UInt64(lbaShift), lbaShift: lbaShift,
                                   segments: segs, head: head, now: now)
        case VirtioBlk.RequestType.flush:
            let r = s.begin(parts: 1, head: head, result: 0, now: now)
            if r == -1 { return .full }
            if r < 0 { return s.refuse() }
            var c = NVMeCommand(opcode: NVMeIOOpcode.flush, nsid: nsid)
            c.cid = s.takeCID(request: UInt16(truncatingIfNeeded: r))
            s.push(c)
            return s.commit()
        case VirtioBlk.RequestType.writeZeroes:
            // bytes holds the range's sectors; iovCount < 0 is the unmap flag (the parser).
            let bytes = UInt64(slot.pointee.bytes) &<< 9
            guard s.pointee.canWriteZeroes, bytes > 0, (offset | bytes) & mask == 0 else { return s.refuse() }
            let blocks = Int(bytes &>> UInt64(lbaShift))
            // NLB is 16 bits: 65536 blocks per command.
            let r = s.begin(parts: (blocks &+ 0xFFFF) &>> 16, head: head, result: 0, now: now)
            if r == -1 { return .full }
            if r < 0 { return s.refuse() }
            var lba = offset &>> UInt64(lbaShift), left = blocks
            while left > 0 {
                let nb = Swift.min(left, 0x10000)
                var c = NVMeCommand.blocks(NVMeIOOpcode.writeZeroes, nsid: nsid, lba: lba, blocks: nb)
                if slot.pointee.iovCount < 0 { c.cdw12 |= NVMeCommand.writeZeroesDeallocate }
                c.cid = s.takeCID(request: UInt16(truncatingIfNeeded: r))
                s.push(c)
                lba &+= UInt64(nb)
                left &-= nb
            }
            return s.commit()
        case VirtioBlk.RequestType.discard:
            let bytes = UInt64(slot.pointee.bytes) &<< 9
            guard s.pointee.canDSM, bytes > 0, (offset | bytes) & mask == 0 else { return s.refuse() }
            let r = s.begin(parts: 1, head: head, result: 0, now: now)
            if r == -1 { return .full }
            if r < 0 { return s.refuse() }
            let cid = s.takeCID(request: UInt16(truncatingIfNeeded: r))
            // One range in the CID's list page: context attributes, NLB (not 0's based), SLBA.
            let range = s.pointee.lists + Int(cid) &* NVMeQueuePairState.listPageBytes
            range.storeBytes(of: UInt32(0), as: UInt32.self)
            range.storeBytes(of: UInt32(truncatingIfNeeded: bytes &>> UInt64(lbaShift)), toByteOffset: 4, as: UInt32.self)
            range.storeBytes(of: offset &>> UInt64(lbaShift), toByteOffset: 8, as: UInt64.self)
            var c = NVMeCommand(opcode: NVMeIOOpcode.datasetManagement, nsid: nsid)
            c.cid = cid
            c.prp1 = s.pointee.listsIOVA &+ UInt64(Int(cid) &* NVMeQueuePairState.listPageBytes)
            c.cdw10 = 0                                   // one range (NR is 0's based)
            c.cdw11 = NVMeCommand.dsmDeallocate
            s.push(c)
            return s.commit()
        default:
            return s.refuse()
        }
    }

    @inlinable
    public func submit() -> Int { state.submit() }

    @inlinable
    public func reap(heads: UnsafeMutablePointer<UInt64>, results: UnsafeMutablePointer<Int32>, max: Int) -> Int {
        state.reap(heads: heads, results: results, max: max)
    }

    @inlinable
    public func completionReady() -> Bool { state.completionReady() }

    public func waitOne(head: inout UInt64, result: inout Int32) -> Bool { state.waitOne(head: &head, result: &result) }

    /// NVMe errors are final here (no second path like io_uring's buffered retry).
    @inlinable
    public func retry(_ slot: UnsafeMutablePointer<BlkSlot>, head: UInt16, result: Int32, target: BlockTarget) -> Bool { false }
}

extension UnsafeMutablePointer where Pointee == NVMeQueuePairState {
    /// One SQ tail doorbell for everything prepared; returns the requests that went.
    @inlinable
    func submit() -> Int {
        let n = pointee.preparedRequests
        if pointee.preparedCommands == 0 { return n }
        ring(pointee.sqDoorbell, shadow: pointee.shadowSQ, eventIdx: pointee.eventIdxSQ, new: pointee.sqTail, old: pointee.sqTailRung)
        pointee.sqTailRung = pointee.sqTail
        pointee.counters.submissions.add(UInt64(pointee.preparedCommands))
        pointee.preparedRequests = 0
        pointee.preparedCommands = 0
        return n
    }

    /// Answered-early requests first (timeouts, fatal status), then completion entries
    /// by phase; one CQ head doorbell for the batch.
    @inlinable
    func reap(heads: UnsafeMutablePointer<UInt64>, results: UnsafeMutablePointer<Int32>, max: Int) -> Int {
        tick()
        var n = 0
        while n < max && pointee.reportCount > 0 {
            let r = pointee.reports[pointee.reportHead]
            pointee.reportHead &+= 1
            if pointee.reportHead == pointee.cidCount { pointee.reportHead = 0 }
            pointee.reportCount &-= 1
            heads[n] = UInt64(pointee.requests[Int(r)].head)
            results[n] = pointee.requests[Int(r)].reportResult
            pointee.owed &-= 1
            n &+= 1
        }
        // (Entries are consumed only with no reports pending, so a reported request's
        // record is never freed while its report waits.)
        var consumed = 0
        let cq = pointee.cq
        while n < max {
            let e = cq + pointee.cqHead &* 16
            let sp = sl_load_acquire_u16(e + 14)
            if (sp & 1 != 0) != pointee.phase { break }
            let cid = e.load(fromByteOffset: 12, as: UInt16.self)
            consumed &+= 1
            pointee.cqHead &+= 1
            if pointee.cqHead == pointee.depth { pointee.cqHead = 0; pointee.phase.toggle() }
            if complete(cid: cid, status: (sp &>> 1) & 0x7FF, head: heads + n, result: results + n) { n &+= 1 }
        }
        if consumed > 0 {
            ring(pointee.cqDoorbell, shadow: pointee.shadowCQ, eventIdx: pointee.eventIdxCQ, new: pointee.cqHead,
                 old: pointee.cqHeadRung)
            pointee.cqHeadRung = pointee.cqHead
            pointee.counters.completions.add(UInt64(consumed))
        }
        return n
    }

    /// One completion entry: retire its CID; true when it finished a request that is
    /// answered now (`head`/`result` written).
    @inlinable
    func complete(cid: UInt16, status: UInt16, head: UnsafeMutablePointer<UInt64>, result: UnsafeMutablePointer<Int32>) -> Bool {
        let c = Int(cid)
        guard c < pointee.cidCount, pointee.cidState[c] != NVMeCIDState.free else {
            // An entry for no command of ours: a confused controller; counted, ignored.
            pointee.counters.errors.increment()
            return false
        }
        let r = pointee.cidRequest[c]
        releaseCID(cid)
        let req = pointee.requests + Int(r)
        if req.pointee.reported {
            pointee.lateCompletions &+= 1
        } else if status != 0 {
            pointee.lastErrorStatus = status
            if req.pointee.result >= 0 {
                req.pointee.result = -EIO
                pointee.counters.errors.increment()
            }
        }
        req.pointee.partsLeft &-= 1
        if req.pointee.partsLeft > 0 { return false }
        releaseRequest(r)
        if req.pointee.reported { return false }
        head.pointee = UInt64(req.pointee.head)
        result.pointee = req.pointee.result
        pointee.owed &-= 1
        return true
    }

    @inlinable
    func completionReady() -> Bool {
        tick()
        if pointee.reportCount > 0 { return true }
        let sp = sl_load_relaxed_u16(pointee.cq + pointee.cqHead &* 16 + 14)
        return (sp & 1 != 0) == pointee.phase
    }

    /// Control thread, worker paused: spin until one owed request is answered — at the
    /// latest when the timeout scan gives up on it. False when nothing is owed.
    func waitOne(head: inout UInt64, result: inout Int32) -> Bool {
        if pointee.preparedCommands > 0 { _ = submit() }
        if pointee.owed == 0 { return false }
        let start = sl_rdtsc()
        // Every command times out within timeoutTicks of its prepare; give up (a
        // bookkeeping bug, never expected) after twice that.
        let limit = pointee.timeoutTicks &* 2 &+ UInt64(Clock.cyclesPerSecond)
        var spins: UInt32 = 0
        var h: UInt64 = 0
        var r: Int32 = 0
        while true {
            if reap(heads: &h, results: &r, max: 1) == 1 {
                head = h
                result = r
                return true
            }
            spins &+= 1
            if spins & 63 == 0 {
                let now = sl_rdtsc()
                if !pointee.failed && pointee.liveCIDs > 0 { scan(now: now) }
                if pointee.reportCount == 0 && now &- start > limit { return false }
            }
            if let idle = pointee.idle { idle(pointee.idleContext) } else { sl_pause() }
        }
    }
}
