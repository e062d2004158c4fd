// The `nvme-data` fuzz target's NVMe controller: registers in an in-memory BAR the
// driver reaches with its real MMIO accessors, the admin commands `NVMeController` and
// `NVMeQueuePair` send (Identify, Set Features, Create/Delete I/O CQ/SQ, Abort, Doorbell
// Buffer Config), and one I/O queue pair (qid 1) whose commands the harness fetches and
// completes when, in what order and with what status the input says. Strict: whatever
// the driver hands the device that a real controller could trip over — a queue or
// buffer outside its DMA memory, a doorbell value outside the queue, a CQ head past
// the entries posted, a CID still outstanding, a data pointer outside the guest's
// mapped memory or the command's own list page (DataPointers.swift) — is a finding.
#if canImport(Glibc)
import Glibc
#endif
import CSluice
import NVMe

/// How the model treats shadow doorbells (Doorbell Buffer Config).
public enum ShadowMode {
    /// Reads the shadow values at every step and sets EventIdx to them (QEMU's way).
    case poll
    /// Reads the shadow values at every step; EventIdx = value + `eventIdxOffset`.
    case pollOffset
    /// Reads a shadow value only after an MMIO write to that doorbell, and sets EventIdx
    /// to the value read: the driver must ring whenever EventIdx says so, or it stalls.
    case strict
}

/// What the controller reports and how it behaves; chosen by the input.
public struct DeviceConfig {
    public var lbaShift = 9
    public var namespaceBlocks: UInt64 = 0
    public var mdts: UInt8 = 0
    /// Identify SGLS bits 1:0 (0 none, 1 any alignment, 2 dword aligned).
    public var sgls: UInt32 = 0
    public var dsm = false
    public var writeZeroes = false
    public var doorbellBuffer = false
    /// Identify ACL (0's based).
    public var abortLimit: UInt8 = 0
    public var grantedQueues = 1
    public var doorbellStrideShift: UInt64 = 0
    public var shadowMode = ShadowMode.poll
    public var eventIdxOffset = 0
    public init() {}
}

/// A command the controller fetched and has not completed: what its data pointers
/// described at fetch (compared again when it completes: its list page must not change).
public struct FetchedCommand {
    public var command: NVMeCommand
    public var spans: [HostSpan]
    public var range: DSMRange?
}

public final class FuzzController {
    public static let barBytes = 0x2000
    /// What the model leaves in an I/O doorbell register after reading it: another
    /// value at the next look means the driver wrote it.
    static let sentinel = UInt32.max
    static let maxQueueEntries = 4096

    public let bar: UnsafeMutableRawPointer
    public let memory: DeviceMemory
    public let config: DeviceConfig
    public let oracle: Oracle
    public private(set) var enabled = false
    public private(set) var fatal = false

    var asq: UnsafeMutableRawPointer?
    var acq: UnsafeMutableRawPointer?
    var asqEntries = 0, acqEntries = 0, asqHead = 0, acqTail = 0, acqHead = 0
    var acqPhase = true

    public struct SubmissionQueue { var host: UnsafeMutableRawPointer; var entries: Int; var head = 0; var tail = 0 }
    public struct CompletionQueue { var host: UnsafeMutableRawPointer; var entries: Int; var tail = 0; var head = 0; var phase = true }
    var sq: SubmissionQueue?
    var cq: CompletionQueue?
    var shadow: UnsafeMutableRawPointer?
    var eventIdx: UnsafeMutableRawPointer?
    /// The pair's list pages (one per CID): IOVA of CID 0's page and the CID count.
    public var lists: (iova: UInt64, count: Int) = (0, 0)
    public private(set) var inflight: [FetchedCommand] = []
    public private(set) var mmioDoorbells = 0
    public private(set) var abortsDone = 0
    public var eventIdxOffset: Int
    /// `step` (the driver's idle hook) also fetches and completes every I/O command.
    public var autoIO = false

    public init(config: DeviceConfig, memory: DeviceMemory, oracle: Oracle) {
        self.config = config
        self.memory = memory
        self.oracle = oracle
        eventIdxOffset = config.eventIdxOffset
        bar = UnsafeMutableRawPointer.allocate(byteCount: Self.barBytes, alignment: 4096)
        bar.initializeMemory(as: UInt8.self, repeating: 0, count: Self.barBytes)
        // CAP: MQES, CQR, TO = 1 (500 ms), DSTRD, CSS = NVM, MPSMIN = 0 (4 KiB), MPSMAX = 0.
        let cap = UInt64(Self.maxQueueEntries - 1) | 1 << 16 | 1 << 24 | config.doorbellStrideShift << 32 | 1 << 37
        bar.storeBytes(of: cap, as: UInt64.self)
        bar.storeBytes(of: UInt32(0x0001_0400), toByteOffset: NVMeRegister.vs, as: UInt32.self)
    }

    deinit { bar.deallocate() }

    func reg32(_ o: Int) -> UInt32 { sl_mmio_read32(bar + o) }
    func setReg32(_ o: Int, _ v: UInt32) { sl_mmio_write32(bar + o, v) }
    var stride: Int { 4 << Int(config.doorbellStrideShift) }
    func doorbell(_ q: Int, completion: Bool) -> Int { NVMeRegister.doorbells + (2 * q + (completion ? 1 : 0)) * stride }

    /// CSTS.CFS: the controller stops doing anything until CC.EN goes to 0.
    public func setFatal() {
        guard enabled else { return }
        fatal = true
        setReg32(NVMeRegister.csts, reg32(NVMeRegister.csts) | NVMeCSTS.fatal)
    }

    /// The driver's idle hook: CC.EN / CC.SHN, then the admin queue.
    public func step() {
        let cc = reg32(NVMeRegister.cc)
        if cc & NVMeCC.enable == 0 && (enabled || fatal) {
            disable()
        } else if cc & NVMeCC.enable != 0 && !enabled && !fatal {
            enable(cc)
        }
        if cc & NVMeCC.shutdownMask != 0 {
            setReg32(NVMeRegister.csts, reg32(NVMeRegister.csts) & ~NVMeCSTS.shutdownMask | NVMeCSTS.shutdownComplete)
        }
        guard enabled, !fatal else { return }
        runAdmin()
        if autoIO {
            fetch(max: Int.max)
            while !inflight.isEmpty && complete(index: 0, status: 0) {}
        }
    }

    private func enable(_ cc: UInt32) {
        // CSS 6:4 = 0 (NVM), MPS 10:7 = 0 (4 KiB), IOSQES 19:16 = 6, IOCQES 23:20 = 4.
        guard (cc >> 4) & 7 == 0, (cc >> 7) & 0xF == 0, (cc >> 16) & 0xF == 6, (cc >> 20) & 0xF == 4 else {
            fuzzFail("CC = \(hex(UInt64(cc))): not NVM, 4 KiB pages, 64-byte SQEs and 16-byte CQEs")
        }
        let aqa = reg32(NVMeRegister.aqa)
        asqEntries = Int(aqa & 0xFFF) + 1
        acqEntries = Int((aqa >> 16) & 0xFFF) + 1
        let asqIOVA = bar.load(fromByteOffset: NVMeRegister.asq, as: UInt64.self)
        let acqIOVA = bar.load(fromByteOffset: NVMeRegister.acq, as: UInt64.self)
        guard asqEntries >= 2, acqEntries >= 2, asqIOVA & 4095 == 0, acqIOVA & 4095 == 0,
              let s = memory.dmaHost(asqIOVA, asqEntries * 64), let c = memory.dmaHost(acqIOVA, acqEntries * 16) else {
            fuzzFail("admin queues: AQA \(hex(UInt64(aqa))), ASQ \(hex(asqIOVA)), ACQ \(hex(acqIOVA)) not page-aligned DMA memory of that size")
        }
        asq = s; acq = c
        asqHead = 0; acqTail = 0; acqHead = 0; acqPhase = true
        setReg32(NVMeRegister.doorbells, 0)
        setReg32(NVMeRegister.doorbells + stride, 0)
        enabled = true
        setReg32(NVMeRegister.csts, NVMeCSTS.ready)
    }

    /// CC.EN = 0: every queue, fetched command and the shadow doorbell pages are forgotten.
    private func disable() {
        enabled = false
        fatal = false
        sq = nil; cq = nil
        inflight = []
        shadow = nil; eventIdx = nil
        asq = nil; acq = nil
        setReg32(NVMeRegister.csts, 0)
    }

    private func runAdmin() {
        guard let asq, let acq else { return }
        let tail = Int(reg32(NVMeRegister.doorbells))
        let head = Int(reg32(NVMeRegister.doorbells + stride))
        guard tail < asqEntries else { fuzzFail("admin SQ tail doorbell \(tail) in a queue of \(asqEntries)") }
        guard head < acqEntries else { fuzzFail("admin CQ head doorbell \(head) in a queue of \(acqEntries)") }
        guard (head - acqHead + acqEntries) % acqEntries <= (acqTail - acqHead + acqEntries) % acqEntries else {
            fuzzFail("admin CQ head doorbell \(head) past the entries posted (head \(acqHead), tail \(acqTail))")
        }
        acqHead = head
        while asqHead != tail && (acqTail + 1) % acqEntries != acqHead {
            let c = (asq + asqHead * 64).load(as: NVMeCommand.self)
            asqHead = (asqHead + 1) % asqEntries
            guard (c.cdw0 >> 14) & 3 == 0 else { fuzzFail("admin command \(hex(UInt64(c.opcode))) with PSDT \((c.cdw0 >> 14) & 3)") }
            var e = NVMeCompletion()
            e.cid = c.cid
            e.sqHead = UInt16(asqHead)
            let status = admin(c, &e.dw0)
            e.statusPhase = status << 1 | (acqPhase ? 1 : 0)
            (acq + acqTail * 16).storeBytes(of: e, as: NVMeCompletion.self)
            acqTail += 1
            if acqTail == acqEntries { acqTail = 0; acqPhase.toggle() }
        }
    }

    private func admin(_ c: NVMeCommand, _ dw0: inout UInt32) -> UInt16 {
        let qid = Int(c.cdw10 & 0xFFFF), entries = Int(c.cdw10 >> 16) + 1
        switch c.opcode {
        case NVMeAdminOpcode.identify:
            guard c.prp1 & 4095 == 0, let buf = memory.dmaHost(c.prp1, 4096) else {
                fuzzFail("Identify buffer at \(hex(c.prp1)) is not a page of DMA memory")
            }
            return identify(c, buf)
        case NVMeAdminOpcode.setFeatures:
            guard c.cdw10 & 0xFF == NVMeFeature.numberOfQueues else { return NVMeStatus.invalidField }
            let n = UInt32(min(Int(c.cdw11 & 0xFFFF) + 1, config.grantedQueues) - 1)
            dw0 = n | n << 16
            return 0
        case NVMeAdminOpcode.createCQ:
            guard qid == 1, qid <= config.grantedQueues, cq == nil else { return NVMeStatus.invalidQueueID }
            guard entries >= 2, entries <= Self.maxQueueEntries else { return NVMeStatus.invalidQueueSize }
            guard c.cdw11 & 1 == 1, c.prp1 & 4095 == 0, let host = memory.dmaHost(c.prp1, entries * 16) else {
                fuzzFail("Create I/O CQ \(qid): \(entries) entries at \(hex(c.prp1)) not contiguous page-aligned DMA memory")
            }
            guard c.cdw11 & 2 == 0 else { fuzzFail("Create I/O CQ with interrupts on (no vector was asked)") }
            cq = CompletionQueue(host: host, entries: entries)
            setReg32(doorbell(qid, completion: true), Self.sentinel)
            return 0
        case NVMeAdminOpcode.createSQ:
            guard qid == 1, qid <= config.grantedQueues, sq == nil else { return NVMeStatus.invalidQueueID }
            guard entries >= 2, entries <= Self.maxQueueEntries else { return NVMeStatus.invalidQueueSize }
            guard Int(c.cdw11 >> 16) == qid, let cq else { return NVMeStatus.invalidCQ }
            guard c.cdw11 & 1 == 1, c.prp1 & 4095 == 0, let host = memory.dmaHost(c.prp1, entries * 64) else {
                fuzzFail("Create I/O SQ \(qid): \(entries) entries at \(hex(c.prp1)) not contiguous page-aligned DMA memory")
            }
            guard entries == cq.entries else { fuzzFail("I/O SQ of \(entries) entries on a CQ of \(cq.entries)") }
            sq = SubmissionQueue(host: host, entries: entries)
            setReg32(doorbell(qid, completion: false), Self.sentinel)
            return 0
        case NVMeAdminOpcode.deleteSQ:
            guard qid == 1, sq != nil else { return NVMeStatus.invalidQueueID }
            sq = nil
            inflight = []
            return 0
        case NVMeAdminOpcode.deleteCQ:
            guard qid == 1, cq != nil else { return NVMeStatus.invalidQueueID }
            guard sq == nil else { return 0x10C }   // invalid queue deletion
            cq = nil
            return 0
        case NVMeAdminOpcode.abort:
            let cid = UInt16(c.cdw10 >> 16)
            dw0 = 1   // not aborted
            if qid == 1, let i = inflight.firstIndex(where: { $0.command.cid == cid }), complete(index: i, status: NVMeStatus.abortRequested) {
                abortsDone += 1
                dw0 = 0
            }
            return 0
        case NVMeAdminOpcode.doorbellBufferConfig:
            guard config.doorbellBuffer else { return NVMeStatus.invalidOpcode }
            guard sq == nil, cq == nil else { fuzzFail("Doorbell Buffer Config while I/O queues exist") }
            guard c.prp1 & 4095 == 0, c.prp2 & 4095 == 0, let s = memory.dmaHost(c.prp1, 4096), let e = memory.dmaHost(c.prp2, 4096) else {
                fuzzFail("Doorbell Buffer Config pages \(hex(c.prp1)), \(hex(c.prp2)) are not pages of DMA memory")
            }
            shadow = s
            eventIdx = e
            return 0
        default:
            return NVMeStatus.invalidOpcode
        }
    }

    private func identify(_ c: NVMeCommand, _ buf: UnsafeMutableRawPointer) -> UInt16 {
        buf.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        func text(_ s: String, at: Int, width: Int) {
            for (i, b) in (Array(s.utf8) + Array(repeating: 0x20, count: width)).prefix(width).enumerated() {
                buf.storeBytes(of: b, toByteOffset: at + i, as: UInt8.self)
            }
        }
        switch c.cdw10 & 0xFF {
        case NVMeIdentifyCNS.controller:
            buf.storeBytes(of: UInt16(0x1b36), as: UInt16.self)
            text("FUZZ0001", at: 4, width: 20)
            text("Sluice fuzz NVMe", at: 24, width: 40)
            text("1.0", at: 64, width: 8)
            buf.storeBytes(of: config.mdts, toByteOffset: 77, as: UInt8.self)
            buf.storeBytes(of: UInt16(config.doorbellBuffer ? 0x100 : 0), toByteOffset: 256, as: UInt16.self)
            buf.storeBytes(of: config.abortLimit, toByteOffset: 258, as: UInt8.self)
            buf.storeBytes(of: UInt32(1), toByteOffset: 516, as: UInt32.self)
            buf.storeBytes(of: UInt16((config.dsm ? 4 : 0) | (config.writeZeroes ? 8 : 0)), toByteOffset: 520, as: UInt16.self)
            buf.storeBytes(of: UInt8(1), toByteOffset: 525, as: UInt8.self)
            buf.storeBytes(of: config.sgls, toByteOffset: 536, as: UInt32.self)
        case NVMeIdentifyCNS.activeNamespaces:
            if c.nsid < 1 { buf.storeBytes(of: UInt32(1), as: UInt32.self) }
        case NVMeIdentifyCNS.namespace:
            guard c.nsid == 1 else { return NVMeStatus.invalidNamespace }
            for o in [0, 8, 16] { buf.storeBytes(of: config.namespaceBlocks, toByteOffset: o, as: UInt64.self) }
            // Two formats, 512 and 4096 bytes; FLBAS picks the configured one.
            buf.storeBytes(of: UInt8(1), toByteOffset: 25, as: UInt8.self)
            buf.storeBytes(of: UInt8(config.lbaShift == 12 ? 1 : 0), toByteOffset: 26, as: UInt8.self)
            buf.storeBytes(of: UInt8(9), toByteOffset: 128 + 2, as: UInt8.self)
            buf.storeBytes(of: UInt8(12), toByteOffset: 132 + 2, as: UInt8.self)
        default:
            return NVMeStatus.invalidField
        }
        return 0
    }

    // MARK: The I/O queue pair, driven by the harness

    /// Entries posted to the I/O CQ (the driver's head is compared with this).
    public var cqTail: Int { cq?.tail ?? 0 }
    /// Entries fetched from the I/O SQ.
    public var sqHead: Int { sq?.head ?? 0 }
    public var running: Bool { enabled && !fatal && sq != nil && cq != nil }

    /// Notice doorbell writes (MMIO, or the shadow page as `shadowMode` says) and check
    /// the values: a tail inside the SQ, a head inside the CQ that consumes only posted entries.
    func updateDoorbells() {
        guard var s = sq, var c = cq else { return }
        let sqReg = doorbell(1, completion: false), cqReg = doorbell(1, completion: true)
        let sqw = reg32(sqReg), cqw = reg32(cqReg)
        let sqMMIO = sqw != Self.sentinel, cqMMIO = cqw != Self.sentinel
        if sqMMIO { setReg32(sqReg, Self.sentinel); mmioDoorbells += 1 }
        if cqMMIO { setReg32(cqReg, Self.sentinel); mmioDoorbells += 1 }
        var tail: Int?, head: Int?
        if let shadow {
            let st = Int(shadow.load(fromByteOffset: 2 * stride, as: UInt32.self))
            let ch = Int(shadow.load(fromByteOffset: 3 * stride, as: UInt32.self))
            switch config.shadowMode {
            case .strict:
                if sqMMIO { tail = st }
                if cqMMIO { head = ch }
            case .poll, .pollOffset:
                tail = st
                head = ch
            }
        } else {
            if sqMMIO { tail = Int(sqw) }
            if cqMMIO { head = Int(cqw) }
        }
        if let tail {
            guard tail < s.entries else { fuzzFail("I/O SQ tail doorbell \(tail) in a queue of \(s.entries)") }
            s.tail = tail
        }
        if let head {
            guard head < c.entries else { fuzzFail("I/O CQ head doorbell \(head) in a queue of \(c.entries)") }
            guard (head - c.head + c.entries) % c.entries <= (c.tail - c.head + c.entries) % c.entries else {
                fuzzFail("I/O CQ head doorbell \(head) past the entries posted (head \(c.head), tail \(c.tail))")
            }
            c.head = head
        }
        if let eventIdx {
            let off = config.shadowMode == .pollOffset ? eventIdxOffset : 0
            eventIdx.storeBytes(of: UInt32(truncatingIfNeeded: s.tail + off), toByteOffset: 2 * stride, as: UInt32.self)
            eventIdx.storeBytes(of: UInt32(truncatingIfNeeded: c.head + off), toByteOffset: 3 * stride, as: UInt32.self)
        }
        sq = s
        cq = c
    }

    /// Fetch up to `max` commands the SQ tail shows; each is checked and its data
    /// pointers walked now. Returns how many were fetched.
    @discardableResult
    public func fetch(max: Int) -> Int {
        guard running else { return 0 }
        updateDoorbells()
        var n = 0
        while n < max, var s = sq, s.head != s.tail {
            let c = (s.host + s.head * 64).load(as: NVMeCommand.self)
            s.head = (s.head + 1) % s.entries
            sq = s
            checkCIDFree(c.cid)
            let f = decode(c)
            oracle.fetched(c, spans: f.spans, range: f.range)
            inflight.append(f)
            n += 1
        }
        return n
    }

    /// A CID must not be one the controller still has: fetched and not completed, or
    /// completed in a CQ entry the driver has not consumed yet.
    private func checkCIDFree(_ cid: UInt16) {
        if inflight.contains(where: { $0.command.cid == cid }) { fuzzFail("CID \(cid) submitted again while the controller still has it") }
        guard let c = cq else { return }
        var i = c.head
        while i != c.tail {
            if (c.host + i * 16).load(fromByteOffset: 12, as: UInt16.self) == cid {
                fuzzFail("CID \(cid) submitted again before its completion entry (slot \(i)) was consumed")
            }
            i = (i + 1) % c.entries
        }
    }

    /// Complete fetched command `index` with `status` (the 15-bit status field: SC,
    /// SCT, CRD, M, DNR). False when the CQ has no room (the command stays fetched).
    @discardableResult
    public func complete(index: Int, status: UInt16) -> Bool {
        guard running, index < inflight.count else { return false }
        updateDoorbells()
        let f = inflight[index]
        let again = decode(f.command)
        guard again.spans == f.spans, again.range == f.range else {
            fuzzFail("CID \(f.command.cid): its data pointers changed while the command was outstanding (\(f.spans) then \(again.spans))")
        }
        guard post(cid: f.command.cid, status: status) else { return false }
        inflight.remove(at: index)
        oracle.posted(cid: f.command.cid, status: status)
        return true
    }

    /// A completion entry for a CID the driver never used (a confused controller).
    @discardableResult
    public func postBogus(_ k: UInt8) -> Bool {
        guard running else { return false }
        updateDoorbells()
        return post(cid: UInt16(truncatingIfNeeded: lists.count + Int(k)), status: 0)
    }

    private func post(cid: UInt16, status: UInt16) -> Bool {
        guard var c = cq, (c.tail + 1) % c.entries != c.head else { return false }
        var e = NVMeCompletion()
        e.sqHead = UInt16(sq?.head ?? 0)
        e.sqID = 1
        e.cid = cid
        e.statusPhase = (status & 0x7FFF) << 1 | (c.phase ? 1 : 0)
        (c.host + c.tail * 16).storeBytes(of: e, as: NVMeCompletion.self)
        c.tail += 1
        if c.tail == c.entries { c.tail = 0; c.phase.toggle() }
        cq = c
        return true
    }
}
