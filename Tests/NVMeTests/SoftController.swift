#if canImport(Glibc)
import Glibc
#endif
import NVMe

/// A software NVMe controller for the tests: its registers are plain memory the driver
/// reads and writes with the same MMIO accessors as a real BAR; `step()` (the driver's
/// idle hook, or the test) plays the device: CC.EN → CSTS.RDY, admin commands executed,
/// I/O queues' commands executed on in-memory namespaces (`SoftController+IO.swift`),
/// completions posted with the phase tag, CC.SHN → shutdown complete. DMA addresses go
/// through `iommu` when set, else IOVA = host address.
final class SoftController {
    static let barBytes = 0x2000
    /// What the model leaves in an I/O queue's doorbell register after reading it: a
    /// different value at the next step means the driver wrote it (an MMIO write).
    static let doorbellSentinel = UInt32.max

    let bar = UnsafeMutableRawPointer.allocate(byteCount: SoftController.barBytes, alignment: 4096)
    var serial = "SN1234"
    var model = "Sluice soft NVMe"
    var mdts: UInt8 = 5
    /// Namespaces: id → (blocks, block size shift). Change before the first I/O.
    var namespaces: [UInt32: (blocks: UInt64, lbads: UInt8)] = [1: (131072, 9), 2: (8192, 12)]
    var grantedQueues = 64
    /// Knobs.
    var neverReady = false
    var fatalOnEnable = false
    var dropNextAdmin = false
    var failOpcode: UInt8? = nil
    var maxQueueEntries = 2048
    /// Identify SGLS bits 1:0 (0: no SGLs, 1: any alignment, 2: dword aligned).
    var sgls: UInt32 = 1
    /// OACS bit 8: Doorbell Buffer Config.
    var supportsDoorbellBuffer = true
    /// Reads and writes touching this block of this namespace fail with a media error.
    var errorLBA: (nsid: UInt32, lba: UInt64)? = nil
    /// The next N I/O commands are executed but their completions held back (`held`).
    var dropNextIO = 0
    /// With shadow doorbells: EventIdx entries are brought up to date every N steps
    /// (1: after every step, as QEMU does; large: a device that keeps polling).
    var eventIdxEvery = 1
    var iommu: TestIOMMU? = nil

    var enabled = false
    var fatal = false
    private var sqHead = 0, cqTail = 0
    private var phase = true
    private(set) var executed: [UInt8] = []
    var steps = 0

    // I/O queues.
    struct SubmissionQueue { var base: UInt64; var entries: Int; var cqid: Int; var head = 0; var tail = 0 }
    struct CompletionQueue { var base: UInt64; var entries: Int; var vector: Int?; var tail = 0; var head = 0; var phase = true }
    var sqs: [Int: SubmissionQueue] = [:]
    var cqs: [Int: CompletionQueue] = [:]
    /// Doorbell Buffer Config pages (IOVAs), when set.
    var shadowPage: UInt64? = nil
    var eventIdxPage: UInt64? = nil
    /// Executed I/O commands in order, with their queue.
    var ioCommands: [(qid: Int, command: NVMeCommand)] = []
    /// Commands whose completions are held: (qid, cid).
    var held: [(qid: Int, cid: UInt16)] = []
    /// MMIO doorbell writes the model saw on I/O queues.
    var sqDoorbellWrites = 0
    var cqDoorbellWrites = 0
    /// Commands that found their CQ full (the driver did not free entries in time).
    var cqOverflows = 0
    var aborts = 0
    var flushes = 0
    var storage: [UInt32: UnsafeMutableRawPointer] = [:]

    init(timeoutUnits: UInt64 = 2, doorbellStrideShift: UInt64 = 0) {
        bar.initializeMemory(as: UInt8.self, repeating: 0, count: Self.barBytes)
        // CAP: MQES, CQR, TO, DSTRD, CSS = NVM, MPSMIN = 0, MPSMAX = 4.
        let cap = UInt64(maxQueueEntries - 1) | 1 << 16 | timeoutUnits << 24 | doorbellStrideShift << 32 | 1 << 37 | 4 << 52
        bar.storeBytes(of: cap, as: UInt64.self)
        bar.storeBytes(of: UInt32(0x0002_0000), toByteOffset: NVMeRegister.vs, as: UInt32.self)
    }

    deinit {
        bar.deallocate()
        for (id, p) in storage { munmap(p, namespaceBytes(id)) }
    }

    func reg32(_ o: Int) -> UInt32 { bar.load(fromByteOffset: o, as: UInt32.self) }
    func setReg32(_ o: Int, _ v: UInt32) { bar.storeBytes(of: v, toByteOffset: o, as: UInt32.self) }
    func reg64(_ o: Int) -> UInt64 { bar.load(fromByteOffset: o, as: UInt64.self) }
    var stride: Int { 4 << Int((reg64(0) >> 32) & 0xF) }

    /// The host memory behind `bytes` bytes at device address `iova`, nil when unmapped.
    func pointer(_ iova: UInt64, bytes: Int = 1) -> UnsafeMutableRawPointer? {
        if let iommu { return iommu.host(iova, bytes: bytes) }
        return UnsafeMutableRawPointer(bitPattern: UInt(iova))
    }

    /// CSTS.CFS: the controller stops doing anything.
    func setFatal() {
        fatal = true
        setReg32(NVMeRegister.csts, reg32(NVMeRegister.csts) | NVMeCSTS.fatal)
    }

    func step() {
        steps += 1
        let cc = reg32(NVMeRegister.cc)
        if cc & 1 != 0 && !enabled {
            if fatalOnEnable { setReg32(NVMeRegister.csts, NVMeCSTS.fatal); return }
            if neverReady { return }
            enabled = true
            sqHead = 0; cqTail = 0; phase = true
            // A reset leaves the doorbells at 0.
            for q in 0..<(grantedQueues + 1) {
                setReg32(NVMeRegister.doorbells + 2 * q * stride, 0)
                setReg32(NVMeRegister.doorbells + (2 * q + 1) * stride, 0)
            }
            setReg32(NVMeRegister.csts, NVMeCSTS.ready)
        } else if cc & 1 == 0 && enabled {
            enabled = false
            fatal = false
            sqs = [:]; cqs = [:]; held = []
            shadowPage = nil; eventIdxPage = nil
            setReg32(NVMeRegister.csts, 0)
        }
        if cc & NVMeCC.shutdownMask != 0 {
            setReg32(NVMeRegister.csts, reg32(NVMeRegister.csts) & ~NVMeCSTS.shutdownMask | NVMeCSTS.shutdownComplete)
        }
        guard enabled, !fatal else { return }
        let aqa = reg32(NVMeRegister.aqa)
        let sqEntries = Int(aqa & 0xFFF) + 1, cqEntries = Int((aqa >> 16) & 0xFFF) + 1
        let asq = pointer(reg64(NVMeRegister.asq))!
        let acq = pointer(reg64(NVMeRegister.acq))!
        let tail = Int(reg32(NVMeRegister.doorbells))
        while sqHead != tail % sqEntries {
            let c = (asq + sqHead * 64).load(as: NVMeCommand.self)
            sqHead = (sqHead + 1) % sqEntries
            executed.append(c.opcode)
            if dropNextAdmin { dropNextAdmin = false; continue }
            var e = NVMeCompletion()
            e.cid = c.cid
            e.sqHead = UInt16(sqHead)
            let status = c.opcode == failOpcode ? NVMeStatus.invalidField : execute(c, &e)
            e.statusPhase = status << 1 | (phase ? 1 : 0)
            (acq + cqTail * 16).storeBytes(of: e, as: NVMeCompletion.self)
            cqTail += 1
            if cqTail == cqEntries { cqTail = 0; phase.toggle() }
        }
        stepIO()
    }

    private func execute(_ c: NVMeCommand, _ e: inout NVMeCompletion) -> UInt16 {
        switch c.opcode {
        case NVMeAdminOpcode.identify:
            guard let buf = pointer(c.prp1, bytes: 4096) else { return NVMeStatus.dataTransferError }
            buf.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            switch c.cdw10 & 0xFF {
            case NVMeIdentifyCNS.controller:
                buf.storeBytes(of: UInt16(0x1b36), as: UInt16.self)
                for (i, b) in (serial.utf8 + Array(repeating: 0x20, count: 20)).prefix(20).enumerated() { buf.storeBytes(of: b, toByteOffset: 4 + i, as: UInt8.self) }
                for (i, b) in (model.utf8 + Array(repeating: 0x20, count: 40)).prefix(40).enumerated() { buf.storeBytes(of: b, toByteOffset: 24 + i, as: UInt8.self) }
                buf.storeBytes(of: mdts, toByteOffset: 77, as: UInt8.self)
                buf.storeBytes(of: UInt16(supportsDoorbellBuffer ? 0x0100 : 0), toByteOffset: 256, as: UInt16.self)
                buf.storeBytes(of: UInt8(3), toByteOffset: 258, as: UInt8.self)
                buf.storeBytes(of: UInt32(namespaces.keys.max() ?? 0), toByteOffset: 516, as: UInt32.self)
                buf.storeBytes(of: UInt16(0x000C), toByteOffset: 520, as: UInt16.self)
                buf.storeBytes(of: UInt8(1), toByteOffset: 525, as: UInt8.self)
                buf.storeBytes(of: sgls, toByteOffset: 536, as: UInt32.self)
            case NVMeIdentifyCNS.activeNamespaces:
                for (i, id) in namespaces.keys.sorted().filter({ $0 > c.nsid }).enumerated() {
                    buf.storeBytes(of: id, toByteOffset: 4 * i, as: UInt32.self)
                }
            case NVMeIdentifyCNS.namespace:
                guard let ns = namespaces[c.nsid] else { return NVMeStatus.invalidNamespace }
                buf.storeBytes(of: ns.blocks, as: UInt64.self)
                buf.storeBytes(of: ns.blocks, toByteOffset: 8, as: UInt64.self)
                buf.storeBytes(of: UInt8(0), toByteOffset: 25, as: UInt8.self)
                buf.storeBytes(of: UInt8(0), toByteOffset: 26, as: UInt8.self)
                buf.storeBytes(of: ns.lbads, toByteOffset: 128 + 2, as: UInt8.self)
            default:
                return NVMeStatus.invalidField
            }
        case NVMeAdminOpcode.setFeatures:
            guard c.cdw10 & 0xFF == NVMeFeature.numberOfQueues else { return NVMeStatus.invalidField }
            let asked = Int(c.cdw11 & 0xFFFF) + 1
            let n = UInt32(min(asked, grantedQueues) - 1)
            e.dw0 = n | n << 16
        default:
            return executeQueueAdmin(c, &e)
        }
        return 0
    }

    /// Post a completion on CQ `cqid` for command `cid` of SQ `sqid`.
    func post(cq cqid: Int, sqid: Int, cid: UInt16, status: UInt16, dw0: UInt32 = 0) {
        guard var cq = cqs[cqid] else { return }
        var e = NVMeCompletion()
        e.dw0 = dw0
        e.sqHead = UInt16(sqs[sqid]?.head ?? 0)
        e.sqID = UInt16(sqid)
        e.cid = cid
        e.statusPhase = status << 1 | (cq.phase ? 1 : 0)
        pointer(cq.base + UInt64(cq.tail * 16), bytes: 16)!.storeBytes(of: e, as: NVMeCompletion.self)
        cq.tail += 1
        if cq.tail == cq.entries { cq.tail = 0; cq.phase.toggle() }
        cqs[cqid] = cq
    }
}

/// DMA for the software controller: page-aligned host memory, IOVA = its address.
final class HostDMA: DMAAllocator {
    private(set) var live = 0
    func allocate(bytes: Int) throws(NVMeError) -> DMABuffer {
        let n = (bytes + 4095) & ~4095
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 4096)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: n)
        live += 1
        return DMABuffer(host: p, iova: UInt64(UInt(bitPattern: p)), bytes: n)
    }
    func free(_ buffer: DMABuffer) {
        live -= 1
        buffer.host.deallocate()
    }
}

/// An IOMMU for the tests: records mappings (refusing overlaps and unknown unmaps) and
/// lets the controller model translate device addresses through them.
final class TestIOMMU: NVMeIOMMU {
    private(set) var maps: [(iova: UInt64, host: UnsafeMutableRawPointer, bytes: Int)] = []
    private(set) var mapCalls = 0
    private(set) var unmapCalls = 0
    var failMaps = false

    func map(host: UnsafeMutableRawPointer, iova: UInt64, bytes: Int) throws(NVMeError) {
        mapCalls += 1
        if failMaps { throw NVMeError("test IOMMU refuses maps") }
        if maps.contains(where: { iova < $0.iova + UInt64($0.bytes) && $0.iova < iova + UInt64(bytes) }) {
            throw NVMeError("IOVA 0x\(String(iova, radix: 16)) overlaps a mapping")
        }
        maps.append((iova, host, bytes))
    }

    func unmap(iova: UInt64, bytes: Int) throws(NVMeError) {
        unmapCalls += 1
        guard let i = maps.firstIndex(where: { $0.iova == iova && $0.bytes == bytes }) else {
            throw NVMeError("no mapping at IOVA 0x\(String(iova, radix: 16))")
        }
        maps.remove(at: i)
    }

    func host(_ iova: UInt64, bytes: Int) -> UnsafeMutableRawPointer? {
        for m in maps where iova >= m.iova && iova + UInt64(bytes) <= m.iova + UInt64(m.bytes) {
            return m.host + Int(iova - m.iova)
        }
        return nil
    }
}
