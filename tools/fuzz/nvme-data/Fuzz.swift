// libFuzzer target `nvme-data`: the NVMe data path — the real `NVMeBlkBackend`
// (prepare / submit / reap / completionReady) of a real `NVMeQueuePair` created through
// `NVMeController` — against a small strict controller model (Device.swift,
// DataPointers.swift) over an in-memory BAR, with `BlkSlot`s built as the virtio-blk
// parser leaves them.
//
// Guest memory: one 1 MiB area, mapped in the IOVA table as three regions —
//   0 K..256 K   at IOVA A          256 K..512 K  at IOVA B (host-adjacent, IOVA apart)
//   512 K..640 K not mapped         640 K..1 M    at IOVA A + 256 K (IOVA-adjacent to region 0)
// Requests point into it, across its region boundaries, into the hole and outside it.
// DMA memory (queues, list pages, Identify buffers) comes from DeviceMemory at IOVAs
// of its own: nothing the device is given is a host address.
//
// Input layout:
//   byte 0  bit 0 LBA size 4096 (else 512)   bit 1 controller has SGLs   bit 2 SGLs need
//           dword alignment   bit 3 the pair asks for SGLs   bit 4 controller has Doorbell
//           Buffer Config   bit 5 configure shadow doorbells   bit 6 DSM   bit 7 Write Zeroes
//   byte 1  bits 0-2 MDTS (0 = no limit)   bits 3-4 shadow doorbell mode (poll, poll with
//           EventIdx offset, strict, strict)   bit 5 doorbell stride 8   bits 6-7 ACL
//   byte 2  queue depth 2 + (b % 63)
//   byte 3  export offset: (b & 0x7F) × (bit 7 ? 512 : 64 KiB)
//   byte 4  export size: ((b & 0x3F) + 1) × (bit 6 ? 1 MiB : 64 KiB), + 512 with bit 7
//   byte 5  EventIdx offset (signed) for the offset mode
//   then ops, one byte each (low nibble) with their operands:
//     0 request: t, sector (u16), then per type:
//         t bits 0-2: IN, OUT, FLUSH, DISCARD, WRITE_ZEROES, WRITE_ZEROES+unmap, IN, OUT
//         (OUT in raw mode: any type byte, then a u16 byte count, no iovecs)
//         t bit 3: ancient start time (the timeout scan answers it -ETIMEDOUT)
//         t bit 4: raw — the slot is not tidied as the parser would (odd totals, byte
//                  count ≠ iovecs, up to 140 iovecs, nil bases), still inside the export
//         t bits 5-7: iovec count class 1, 1, 2, 3, 4, 8, 16, 32 (raw: a count byte)
//         IN/OUT: per iovec [where, pos, len] (Inputs.swift `segment`; raw: where 5 at
//         pos 0 is a nil base), then in raw mode the byte count's difference from the
//         iovecs' total, in sectors (signed).   DISCARD/WRITE_ZEROES: u16 count code
//     1 submit   2 controller fetches (op >> 4, 0 = all)   3 complete one [index, status]
//     4 complete all [status] (op bit 4: newest first)   5 reap (max 1 + 4 × (op >> 4))
//     6 completionReady, then reap   7 timeout scan   8 abort timed-out commands
//     9 CSTS.CFS   10 a completion for a CID never used [k]   11 retry requests left .full
//     12 fetch and complete everything   13 housekeeping: reset after a fatal status
//     14 1024 reaps (the poll-count timeout scan); op bit 4: waitOne until nothing is
//        owed, the controller completing everything from the idle hook
//     15 EventIdx offset [signed byte]
//
// Invariants (abort = a finding), besides the controller's own checks: every queued
// request is answered by reap exactly once, with its bytes (IN/OUT) or 0 only when all
// its commands completed without error, -EIO only after an error status (all its
// commands done) or a fatal status, -ETIMEDOUT only when it was stale; its commands cover
// exactly its LBAs inside the export and move exactly its bytes; `.full` and `.failed`
// leave the pair's state and SQ untouched; a request left `.full` is taken once the pair
// is idle; with SGLs the prepare result is predicted exactly (with PRPs: an unmapped
// buffer must fail); the pair's outstanding count equals the requests not answered;
// completionReady is true whenever an entry waits; after the controller completes
// everything (resetting after a fatal status) every CID and request record is free
// and a new request works; every DMA buffer is freed; no crash or ASan report.
#if canImport(Glibc)
import Glibc
#endif
import Block
import CSluice
import NVMe
import NVMeDataModel

private let areaBytes = GuestLayout.areaBytes
private let area: UnsafeMutableRawPointer = {
    let p = UnsafeMutableRawPointer.allocate(byteCount: areaBytes, alignment: 4096)
    p.initializeMemory(as: UInt8.self, repeating: 0, count: areaBytes)
    return p
}()
private let regions = GuestLayout.regions
private let guestMappings = regions.map { DeviceMapping(iova: $0.iova, host: area + $0.offset, bytes: $0.bytes) }
private let iovaTable: NVMeIOVATable = {
    let t = NVMeIOVATable.allocate()
    do { try t.update(regions: regions.map { NVMeIOVARegion(host: area + $0.offset, bytes: $0.bytes, iova: $0.iova) }) } catch {
        fuzzFail("IOVA table: \(error)")
    }
    return t
}()
/// Exactly the parser's capacity: a read past it is an ASan report.
private let iovs: UnsafeMutablePointer<iovec> = {
    let p = UnsafeMutablePointer<iovec>.allocate(capacity: BlkRequestParser.iovCapacity)
    p.initialize(repeating: iovec(), count: BlkRequestParser.iovCapacity)
    return p
}()
private let slot: UnsafeMutablePointer<BlkSlot> = {
    let p = UnsafeMutablePointer<BlkSlot>.allocate(capacity: 1)
    p.initialize(to: BlkSlot(iov: iovs))
    return p
}()
private let heads = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
private let results = UnsafeMutablePointer<Int32>.allocate(capacity: 64)

/// The IOVA of `len` bytes at host address `base` when they lie in one region (the
/// harness's own answer to what the IOVA table must say).
private func guestIOVA(_ base: UInt, _ len: Int) -> UInt64? {
    let a = UInt(bitPattern: area)
    for r in regions {
        let lo = a + UInt(r.offset)
        if base >= lo, base - lo < UInt(r.bytes), UInt(len) <= UInt(r.bytes) - (base - lo) { return r.iova + UInt64(base - lo) }
    }
    return nil
}

/// A request as the blk queue would hand it to the backend.
struct RequestSpec {
    var type: UInt32
    var sector: UInt64 = 0
    /// IN/OUT: data bytes; DISCARD/WRITE_ZEROES: sectors (as the parser leaves them).
    var bytes: UInt32 = 0
    var iov: [(base: UInt, len: Int)] = []
    var iovCount: Int32 = 0
    var stale = false
}

/// The pair's bookkeeping that `.full` and `.failed` must leave alone.
private struct Snapshot: Equatable {
    var sqTail, freeCIDs, freeRequests, liveCIDs, owed, preparedCommands, preparedRequests, reports: Int
    var failed: Bool
    init(_ s: UnsafeMutablePointer<NVMeQueuePairState>) {
        let p = s.pointee
        sqTail = p.sqTail; freeCIDs = p.freeCIDCount; freeRequests = p.freeRequestCount; liveCIDs = p.liveCIDs
        owed = p.owed; preparedCommands = p.preparedCommands; preparedRequests = p.preparedRequests
        reports = p.reportCount; failed = p.failed
    }
}

/// One input: a controller model, the driver's controller and queue pair on it, the
/// oracle, and the requests left `.full`.
final class Session {
    let config: DeviceConfig
    let memory: DeviceMemory
    let oracle: Oracle
    let device: FuzzController
    let ctrl: NVMeController
    let pair: NVMeQueuePair
    let backend: NVMeBlkBackend
    let target: BlockTarget
    var pending: [RequestSpec] = []
    var nextHead: UInt16 = 0
    var s: UnsafeMutablePointer<NVMeQueuePairState> { pair.state }
    var lbs: Int { 1 << config.lbaShift }

    init(_ inp: inout Input, memory: DeviceMemory) {
        let f = inp.u8(), m = inp.u8(), d = inp.u8(), o = inp.u8(), z = inp.u8(), e = inp.u8()
        var cfg = DeviceConfig()
        cfg.lbaShift = f & 1 != 0 ? 12 : 9
        cfg.sgls = f & 2 == 0 ? 0 : (f & 4 != 0 ? 2 : 1)
        let driverSGL = f & 8 != 0
        cfg.doorbellBuffer = f & 16 != 0
        let shadowWanted = f & 32 != 0
        cfg.dsm = f & 64 != 0
        cfg.writeZeroes = f & 128 != 0
        cfg.mdts = m & 7
        cfg.shadowMode = [ShadowMode.poll, .pollOffset, .strict, .strict][Int(m >> 3) & 3]
        cfg.doorbellStrideShift = UInt64(m >> 5) & 1
        cfg.abortLimit = m >> 6
        cfg.eventIdxOffset = Int(Int8(bitPattern: e))
        let depth = 2 + Int(d) % 63
        let offsetBytes = UInt64(o & 0x7F) * (o & 0x80 != 0 ? 512 : 64 << 10)
        var sizeBytes = UInt64((z & 0x3F) + 1) * (z & 0x40 != 0 ? 1 << 20 : 64 << 10)
        if z & 0x80 != 0 { sizeBytes += 512 }
        let lbs = UInt64(1) << UInt64(cfg.lbaShift)
        cfg.namespaceBlocks = (offsetBytes + sizeBytes + (1 << 20)) / lbs
        config = cfg
        target = BlockTarget(fd: -1, offsetBytes: offsetBytes, sizeBytes: sizeBytes, readOnly: false, blockSize: Int(lbs), isBlockDevice: true)
        self.memory = memory
        oracle = Oracle(lbaShift: cfg.lbaShift, cidCount: depth - 1, targetFirst: offsetBytes >> UInt64(cfg.lbaShift),
                        targetEnd: (offsetBytes + target.sectors * 512) >> UInt64(cfg.lbaShift))
        let dev = FuzzController(config: cfg, memory: memory, oracle: oracle)
        device = dev
        ctrl = NVMeController(bar: dev.bar, dma: memory, idle: { dev.step() })
        do {
            try ctrl.enable()
            let id = try ctrl.identifyController()
            guard id.mdts == cfg.mdts, id.supportsSGL == (cfg.sgls != 0), id.sglDwordAligned == (cfg.sgls == 2),
                  id.supportsDSM == cfg.dsm, id.supportsWriteZeroes == cfg.writeZeroes,
                  id.supportsDoorbellBuffer == cfg.doorbellBuffer, id.abortLimit == Int(cfg.abortLimit) + 1 else {
                fuzzFail("Identify Controller read as \(id)")
            }
            let ns = try ctrl.identifyNamespace(1)
            guard ns.blockSize == Int(lbs), ns.blocks == cfg.namespaceBlocks else { fuzzFail("Identify Namespace read as \(ns)") }
            guard try ctrl.requestQueues(1) == 1 else { fuzzFail("Set Features: not one queue pair") }
            if shadowWanted {
                guard try ctrl.configureShadowDoorbells() == cfg.doorbellBuffer else { fuzzFail("shadow doorbells vs OACS") }
            }
            pair = try ctrl.createQueuePair(qid: 1, depth: depth, vector: nil, dma: memory, sgl: driverSGL)
        } catch {
            fuzzFail("bring-up on a well-behaved controller: \(error)")
        }
        let mdtsBytes = cfg.mdts == 0 ? Int.max : 4096 << Int(cfg.mdts)
        guard pair.usesSGL == (driverSGL && cfg.sgls != 0), pair.maxTransfer == min(mdtsBytes, NVMeQueuePairState.maxCommandBytes),
              pair.usesShadowDoorbells == (shadowWanted && cfg.doorbellBuffer), pair.state.pointee.cidCount == depth - 1 else {
            fuzzFail("queue pair: SGL \(pair.usesSGL), max transfer \(pair.maxTransfer), shadow \(pair.usesShadowDoorbells)")
        }
        dev.lists = (pair.state.pointee.listsIOVA, depth - 1)
        oracle.useSGL = pair.usesSGL
        oracle.maxTransfer = pair.maxTransfer
        backend = pair.backend(nsid: 1, lbaShift: cfg.lbaShift, iova: iovaTable)
    }

    // MARK: Requests

    /// Sector for `count` sectors inside the export (nil: the parser would refuse it).
    func place(_ s16: UInt16, count: UInt64) -> UInt64? {
        let total = target.sectors
        guard count <= total else { return nil }
        let maxStart = total - count
        var c = UInt64(s16 & 0x7FFF) * 8 + UInt64(s16 >> 15)
        if c > maxStart { c = (c % (maxStart + 1)) & ~7 }
        return c
    }

    func readRequest(_ inp: inout Input) -> RequestSpec? {
        let t = inp.u8()
        let raw = t & 0x10 != 0
        let s16 = inp.u16()
        var r = RequestSpec(type: VirtioBlk.RequestType.input)
        r.stale = t & 8 != 0
        switch t & 7 {
        case 2:
            r.type = VirtioBlk.RequestType.flush
            r.sector = UInt64(s16)
        case 3, 4, 5:
            r.type = t & 7 == 3 ? VirtioBlk.RequestType.discard : VirtioBlk.RequestType.writeZeroes
            let c16 = inp.u16()
            var count = (UInt64(c16 & (raw ? 0x7FFF : 0x1FFF)) + 1) * 8 - UInt64(c16 >> 15)
            count = min(count, target.sectors)
            guard count > 0, let sector = place(s16, count: count) else { return nil }
            r.sector = sector
            r.bytes = UInt32(count)
            r.iovCount = t & 7 == 5 ? -1 : 0
        case 7 where raw:
            // Any type (DISCARD/WRITE_ZEROES keep the parser's range guarantee above).
            let type = UInt32(inp.u8())
            r.type = type == VirtioBlk.RequestType.discard || type == VirtioBlk.RequestType.writeZeroes ? VirtioBlk.RequestType.getID : type
            r.sector = UInt64(s16)
            r.bytes = UInt32(inp.u16())
        default:
            r.type = t & 1 == 0 ? VirtioBlk.RequestType.input : VirtioBlk.RequestType.output
            let n = raw ? Int(inp.u8()) % 141 : [1, 1, 2, 3, 4, 8, 16, 32][Int(t >> 5)]
            var segs: [(base: UInt, len: Int)] = []
            var end = 0
            for _ in 0..<n {
                let w = inp.u8(), p = inp.u8(), l = inp.u8()
                var v = segment(w, p, l, previous: end, area: area)
                end = Int(bitPattern: v.base &- UInt(bitPattern: area)) + v.len
                if raw && w & 7 == 5 && p == 0 { v.base = 0 }
                segs.append(v)
            }
            var total = segs.reduce(0) { $0 + $1.len }
            if raw {
                let delta = Int(Int8(bitPattern: inp.u8())) * 512
                total = max(0, total + delta)
            } else if n > 0 {
                if total == 0 { segs[n - 1].len = 512; total = 512 }
                let rem = total % 512
                if rem != 0, let k = segs.lastIndex(where: { $0.len > 0 }) { segs[k].len += 512 - rem; total += 512 - rem }
                guard total <= BlkRequestParser.maxBytes else { return nil }
            }
            guard total <= Int(UInt32.max), let sector = place(s16, count: UInt64((total + 511) / 512)) else { return nil }
            r.sector = sector
            r.bytes = UInt32(total)
            r.iov = Array(segs.prefix(BlkRequestParser.iovCapacity))
            r.iovCount = Int32(n)
        }
        return r
    }

    /// What `prepare` must answer for `r`, when the harness can tell (nil: PRP layouts).
    func expectedPrepare(_ r: RequestSpec) -> BlkPrepare? {
        let st = s.pointee
        if st.failed { return .failed }
        let mask = UInt64(lbs - 1)
        let offset = target.offsetBytes &+ r.sector &<< 9
        func fits(_ parts: Int) -> BlkPrepare { parts > st.cidCount ? .failed : parts > st.freeCIDCount ? .full : .queued }
        switch r.type {
        case VirtioBlk.RequestType.flush:
            return fits(1)
        case VirtioBlk.RequestType.discard, VirtioBlk.RequestType.writeZeroes:
            let bytes = UInt64(r.bytes) << 9
            let discard = r.type == VirtioBlk.RequestType.discard
            guard discard ? st.canDSM : st.canWriteZeroes, bytes > 0, (offset | bytes) & mask == 0 else { return .failed }
            return discard ? fits(1) : fits(Int(((bytes >> UInt64(config.lbaShift)) + 0xFFFF) >> 16))
        case VirtioBlk.RequestType.input, VirtioBlk.RequestType.output:
            let bytes = UInt64(r.bytes)
            guard bytes > 0, (offset | bytes) & mask == 0, r.iovCount > 0, Int(r.iovCount) <= st.segCapacity else { return .failed }
            var total = 0
            for v in r.iov.prefix(Int(r.iovCount)) where v.len > 0 {
                guard v.base != 0, let a = guestIOVA(v.base, v.len) else { return .failed }
                if st.useSGL && st.sglDwordAligned && (a | UInt64(v.len)) & 3 != 0 { return .failed }
                total += v.len
            }
            guard UInt64(total) == bytes else { return .failed }
            guard st.useSGL else { return nil }
            let maxBytes = st.maxTransfer & ~(lbs - 1)
            return fits((total + maxBytes - 1) / maxBytes)
        default:
            return .failed
        }
    }

    /// Prepare `r` once and check everything about the outcome.
    @discardableResult
    func prepare(_ r: RequestSpec) -> BlkPrepare {
        slot.pointee.type = r.type
        slot.pointee.sector = r.sector
        slot.pointee.bytes = r.bytes
        slot.pointee.iovCount = r.iovCount
        // Stale: taken two I/O timeouts ago (wrapping, as the deadline test does).
        slot.pointee.start = r.stale ? sl_rdtsc() &- 2 &* s.pointee.timeoutTicks : 0
        slot.pointee.status = nil
        for (i, v) in r.iov.enumerated() { iovs[i] = iovec(iov_base: UnsafeMutableRawPointer(bitPattern: v.base), iov_len: v.len) }
        while oracle.isOwed(nextHead) { nextHead &+= 1 }
        let head = nextHead
        let before = Snapshot(s)
        let sqBytes = s.pointee.depth * 64
        let sqBefore = Array(UnsafeRawBufferPointer(start: s.pointee.sq, count: sqBytes))
        let expected = expectedPrepare(r)
        let p = backend.prepare(slot, head: head, target: target)
        let what = "prepare of type \(r.type) sector \(r.sector) bytes \(r.bytes) iovecs \(r.iovCount) \(r.iov)"
        if let expected, expected != p { fuzzFail("\(what) gave \(p), expected \(expected)") }
        let after = Snapshot(s)
        guard p == .queued else {
            guard after == before, sqBefore.elementsEqual(UnsafeRawBufferPointer(start: s.pointee.sq, count: sqBytes)) else {
                fuzzFail("\(what) answered \(p) but changed the pair: \(before) → \(after)")
            }
            return p
        }
        nextHead &+= 1
        let n = after.preparedCommands - before.preparedCommands
        guard after.preparedRequests == before.preparedRequests + 1, after.owed == before.owed + 1, n >= 1,
              after.sqTail == (before.sqTail + n) % s.pointee.depth else {
            fuzzFail("\(what) queued: \(before) → \(after)")
        }
        var commands: [NVMeCommand] = []
        for k in 0..<n { commands.append((s.pointee.sq + (before.sqTail + k) % s.pointee.depth * 64).load(as: NVMeCommand.self)) }
        let shift = UInt64(config.lbaShift)
        let data = r.type == VirtioBlk.RequestType.input || r.type == VirtioBlk.RequestType.output
        let byteCount = data ? UInt64(r.bytes) : UInt64(r.bytes) << 9
        let segments = data ? r.iov.prefix(Int(r.iovCount)).filter { $0.len > 0 }.map { HostSpan(host: $0.base, bytes: $0.len) } : []
        oracle.accepted(OracleRequest(head: head, type: r.type, lba: (target.offsetBytes + r.sector << 9) >> shift,
                                      blocks: r.type == VirtioBlk.RequestType.flush ? 0 : byteCount >> shift,
                                      expect: data ? Int32(r.bytes) : 0, segments: segments, unmap: r.iovCount < 0, stale: r.stale),
                        commands: commands)
        return p
    }

    /// Requests left `.full`, oldest first, until one is still `.full`. With every CID
    /// free it must go; a request once `.full` may fail later only on a failed pair.
    func retryPending() {
        while let r = pending.first {
            let idle = s.pointee.freeCIDCount == s.pointee.cidCount && !s.pointee.failed
            let failed = s.pointee.failed
            switch prepare(r) {
            case .queued:
                pending.removeFirst()
            case .failed:
                guard failed else { fuzzFail("a request once .full was refused on a working pair: \(r)") }
                pending.removeFirst()
            case .full:
                if idle { fuzzFail("a request is .full on an idle pair (\(s.pointee.cidCount) CIDs): \(r)") }
                return
            }
        }
    }

    // MARK: Driver and controller steps

    func submit() {
        let expected = s.pointee.preparedRequests
        let n = backend.submit()
        guard n == expected, s.pointee.preparedCommands == 0, s.pointee.preparedRequests == 0 else {
            fuzzFail("submit returned \(n) with \(expected) request(s) prepared")
        }
    }

    func reap(max: Int) {
        let n = backend.reap(heads: heads, results: results, max: max)
        guard n >= 0, n <= max else { fuzzFail("reap returned \(n) for at most \(max)") }
        for i in 0..<n { oracle.answered(head: heads[i], result: results[i]) }
    }

    func completeAll(_ st: UInt16, newestFirst: Bool) {
        while !device.inflight.isEmpty {
            guard device.complete(index: newestFirst ? device.inflight.count - 1 : 0, status: st) else { return }
        }
    }

    /// The control thread's way (`NVMeBackendControl.drain`): `waitOne` until nothing
    /// is owed, the controller completing everything from the driver's idle hook.
    func waitAll() {
        device.autoIO = true
        defer { device.autoIO = false }
        var head: UInt64 = 0, result: Int32 = 0
        while backend.waitOne(head: &head, result: &result) { oracle.answered(head: head, result: result) }
        guard pair.outstanding == 0 else { fuzzFail("waitOne gave up with \(pair.outstanding) request(s) owed") }
    }

    /// Housekeeping after a fatal status: answer what is owed, reset, recreate the pair.
    func recover() {
        guard pair.needsReset else { return }
        var rounds = 0
        while pair.outstanding > 0 {
            reap(max: 64)
            rounds += 1
            if rounds > 64 { fuzzFail("\(pair.outstanding) request(s) still owed after a fatal status") }
        }
        oracle.reset()
        do {
            _ = try ctrl.resetAfterFatalStatus(queues: 1)
            try pair.recreate(vector: nil)
        } catch {
            fuzzFail("reset after a fatal status: \(error)")
        }
        device.lists = (s.pointee.listsIOVA, s.pointee.cidCount)
    }

    func checkCounts() {
        let st = s.pointee
        guard pair.outstanding == oracle.unanswered else {
            fuzzFail("the pair owes \(pair.outstanding) request(s), \(oracle.unanswered) are unanswered")
        }
        guard st.freeCIDCount + st.liveCIDs == st.cidCount, st.freeRequestCount <= st.cidCount, st.reportCount <= st.cidCount else {
            fuzzFail("CIDs: \(st.freeCIDCount) free + \(st.liveCIDs) live of \(st.cidCount); \(st.freeRequestCount) free records")
        }
    }

    func run(_ inp: inout Input) {
        var ops = 0
        while inp.more && ops < 1024 {
            ops += 1
            let op = inp.u8()
            switch op & 0xF {
            case 0:
                if let r = readRequest(&inp), prepare(r) == .full { pending.append(r) }
            case 1:
                submit()
            case 2:
                device.fetch(max: op >> 4 == 0 ? Int.max : Int(op >> 4))
            case 3:
                let k = inp.u8(), st = status(inp.u8())
                if !device.inflight.isEmpty { device.complete(index: Int(k) % device.inflight.count, status: st) }
            case 4:
                completeAll(status(inp.u8()), newestFirst: op & 0x10 != 0)
            case 5:
                reap(max: 1 + Int(op >> 4) * 4)
            case 6:
                let waiting = device.running && device.cqTail != s.pointee.cqHead
                if !backend.completionReady() && waiting { fuzzFail("completionReady is false with a completion entry waiting") }
                reap(max: 64)
            case 7:
                pair.checkTimeouts()
            case 8:
                let fatal = device.fatal
                do { _ = try pair.abortTimedOut() } catch {
                    if !fatal { fuzzFail("Abort on a working controller: \(error)") }
                }
            case 9:
                if device.running { device.setFatal(); oracle.setFatal() }
            case 10:
                device.postBogus(inp.u8())
            case 11:
                retryPending()
            case 12:
                device.fetch(max: Int.max)
                completeAll(0, newestFirst: false)
            case 13:
                recover()
            case 14 where op & 0x10 == 0:
                for _ in 0..<1024 { reap(max: 64) }
            case 14:
                waitAll()
            default:
                device.eventIdxOffset = Int(Int8(bitPattern: inp.u8()))
            }
            checkCounts()
        }
    }

    /// The controller completes everything (after a reset when it went fatal) until
    /// nothing is owed, left `.full` or live; then the pair must be empty.
    func drain() {
        var rounds = 0
        while true {
            let st = s.pointee
            let quiet = oracle.unanswered == 0 && pending.isEmpty && st.liveCIDs == 0 && st.reportCount == 0
                && st.preparedCommands == 0 && !device.fatal && (!device.running || device.cqTail == st.cqHead)
            if quiet { break }
            rounds += 1
            if rounds > 2048 {
                fuzzFail("stalled: \(oracle.unanswered) unanswered, \(pending.count) left .full, \(st.liveCIDs) CIDs live, "
                         + "controller fetched \(device.sqHead) of SQ tail \(st.sqTail) with \(device.inflight.count) in flight, "
                         + "CQ tail \(device.cqTail) / driver head \(st.cqHead), fatal \(device.fatal)")
            }
            if device.fatal && !pair.needsReset { pair.checkTimeouts() }
            recover()
            retryPending()
            submit()
            device.fetch(max: Int.max)
            completeAll(0, newestFirst: false)
            reap(max: 64)
            checkCounts()
        }
        let st = s.pointee
        guard pair.outstanding == 0, st.freeCIDCount == st.cidCount, st.freeRequestCount == st.cidCount, !st.failed else {
            fuzzFail("after draining: \(pair.outstanding) owed, \(st.freeCIDCount)/\(st.cidCount) CIDs and \(st.freeRequestCount) records free")
        }
    }

    /// Drain, show that a new request still works, delete the pair and shut down.
    func finish() {
        drain()
        guard prepare(RequestSpec(type: VirtioBlk.RequestType.flush)) == .queued else { fuzzFail("a flush after draining was not queued") }
        drain()
        do {
            try pair.delete()
            try ctrl.shutdown()
        } catch {
            fuzzFail("teardown: \(error)")
        }
        guard !device.running else { fuzzFail("the I/O queues still exist after the pair was deleted") }
    }
}

/// NVME_DATA_TRACE set: one line per input on stderr saying what it exercised.
private let trace = getenv("NVME_DATA_TRACE") != nil

@inline(never)
private func runSession(_ inp: inout Input, memory: DeviceMemory) {
    let session = Session(&inp, memory: memory)
    session.run(&inp)
    let st = session.s.pointee
    let line = "answers \(session.oracle.answers), commands checked \(session.oracle.commandsChecked), "
        + "unexpressible \(st.unexpressible), late \(st.lateCompletions), aborted \(session.device.abortsDone), "
        + "MMIO doorbells \(session.device.mmioDoorbells), left .full \(session.pending.count), SGL \(st.useSGL), "
        + "shadow \(st.shadowSQ != nil), depth \(st.depth), max transfer \(st.maxTransfer)"
    session.finish()
    if trace { fputs("nvme-data: \(line); after drain: answers \(session.oracle.answers)\n", stderr) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func nvmeDataFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 6 else { return 0 }
    var inp = Input(bytes: UnsafeRawBufferPointer(start: data, count: size))
    let memory = DeviceMemory(guest: guestMappings)
    runSession(&inp, memory: memory)
    guard memory.dma.isEmpty else { fuzzFail("\(memory.dma.count) DMA buffer(s) never freed") }
    return 0
}
