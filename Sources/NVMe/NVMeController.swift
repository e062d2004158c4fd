import CSluice
import Platform

/// Memory the controller reads and writes by DMA: a host pointer and the address the
/// device uses for it (the IOVA the IOMMU maps to it).
public struct DMABuffer: @unchecked Sendable {
    public var host: UnsafeMutableRawPointer
    public var iova: UInt64
    public var bytes: Int
    public init(host: UnsafeMutableRawPointer, iova: UInt64, bytes: Int) {
        self.host = host; self.iova = iova; self.bytes = bytes
    }
}

/// Where DMA buffers come from: VFIO-mapped huge pages in the daemon, plain memory with
/// IOVA = host address for the software controller of the tests.
public protocol DMAAllocator: AnyObject {
    /// Zeroed, page-aligned memory of at least `bytes`.
    func allocate(bytes: Int) throws(NVMeError) -> DMABuffer
    func free(_ buffer: DMABuffer)
}

public struct NVMeError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One controller on the control thread: reset and enable (CC.EN / CSTS.RDY within
/// CAP.TO), the admin queue (one command at a time, with a timeout), Identify, queue
/// count, I/O queue creation, shutdown (CC.SHN). The hot path's queue pairs are separate.
public final class NVMeController {
    public let bar: UnsafeMutableRawPointer
    public let capabilities: NVMeCapabilities
    let dma: DMAAllocator
    /// Called while waiting for the device (a pause in the daemon; the model's step in tests).
    let idle: () -> Void
    public var adminTimeoutMillis = 2000
    public static let adminEntries = 32

    private var asq: DMABuffer?
    private var acq: DMABuffer?
    /// Entries of each admin queue (the buffers are rounded up to pages).
    private var adminDepth = 0
    private var sqTail = 0
    private var cqHead = 0
    private var phase = true
    private var nextCID: UInt16 = 0
    /// Admin commands sent, and the ones that timed out.
    public private(set) var adminCommands = 0
    public private(set) var adminTimeouts = 0
    /// The last Identify Controller answer (queue pairs take MDTS, SGLS, ONCS from it).
    public internal(set) var identity: NVMeControllerIdentity?
    /// Shadow doorbell and EventIdx pages, kept across resets; `shadowActive` once the
    /// controller took them (Doorbell Buffer Config since the last enable).
    var shadowPages: (doorbells: DMABuffer, eventIndexes: DMABuffer, owner: DMAAllocator)?
    public internal(set) var shadowActive = false
    /// I/O queue pairs created and not deleted.
    public internal(set) var queuePairCount = 0

    public init(bar: UnsafeMutableRawPointer, dma: DMAAllocator, idle: @escaping () -> Void = { sl_pause() }) {
        self.bar = bar
        self.dma = dma
        self.idle = idle
        capabilities = NVMeCapabilities(sl_mmio_read64(bar + NVMeRegister.cap))
    }

    deinit {
        if let asq { dma.free(asq) }
        if let acq { dma.free(acq) }
        if let shadowPages {
            shadowPages.owner.free(shadowPages.doorbells)
            shadowPages.owner.free(shadowPages.eventIndexes)
        }
    }

    func read32(_ r: Int) -> UInt32 { sl_mmio_read32(bar + r) }
    func write32(_ r: Int, _ v: UInt32) { sl_mmio_write32(bar + r, v) }

    /// The doorbell of SQ `q` (tail) or CQ `q` (head).
    public func doorbell(queue q: Int, completion: Bool) -> UnsafeMutableRawPointer {
        bar + NVMeRegister.doorbells + (2 * q + (completion ? 1 : 0)) * capabilities.doorbellStride
    }

    /// Wait until `done` or CAP.TO passes; false on timeout.
    func waitReady(_ millis: Int, _ done: () -> Bool) -> Bool {
        let deadline = Clock.monotonicNanos() &+ UInt64(max(millis, 500)) * 1_000_000
        while !done() {
            if Clock.monotonicNanos() > deadline { return false }
            idle()
        }
        return true
    }

    /// CC.EN = 0 and wait for CSTS.RDY = 0: the controller drops every queue.
    public func disable() throws(NVMeError) {
        shadowActive = false
        write32(NVMeRegister.cc, read32(NVMeRegister.cc) & ~NVMeCC.enable)
        guard waitReady(capabilities.timeoutMillis, { read32(NVMeRegister.csts) & NVMeCSTS.ready == 0 }) else {
            throw NVMeError("controller did not become idle within CAP.TO (\(capabilities.timeoutMillis) ms) after CC.EN = 0")
        }
    }

    /// Reset, set up the admin queue and enable: ready to take admin commands.
    public func enable() throws(NVMeError) {
        guard capabilities.supportsNVM else { throw NVMeError("controller does not support the NVM command set (CAP.CSS)") }
        guard capabilities.minPageSize <= 4096 else { throw NVMeError("controller pages start at \(capabilities.minPageSize) bytes; 4 KiB needed") }
        try disable()
        let n = min(Self.adminEntries, capabilities.maxQueueEntries)
        adminDepth = n
        if asq == nil { asq = try dma.allocate(bytes: n * 64) }
        if acq == nil { acq = try dma.allocate(bytes: n * 16) }
        asq!.host.initializeMemory(as: UInt8.self, repeating: 0, count: asq!.bytes)
        acq!.host.initializeMemory(as: UInt8.self, repeating: 0, count: acq!.bytes)
        sqTail = 0; cqHead = 0; phase = true
        write32(NVMeRegister.aqa, UInt32(n - 1) | UInt32(n - 1) << 16)
        sl_mmio_write64(bar + NVMeRegister.asq, asq!.iova)
        sl_mmio_write64(bar + NVMeRegister.acq, acq!.iova)
        write32(NVMeRegister.cc, NVMeCC.configuration() | NVMeCC.enable)
        var fatal = false
        let ready = waitReady(capabilities.timeoutMillis) {
            let s = read32(NVMeRegister.csts)
            fatal = s & NVMeCSTS.fatal != 0
            return fatal || s & NVMeCSTS.ready != 0
        }
        if fatal { throw NVMeError("controller reports a fatal status (CSTS.CFS) while enabling") }
        guard ready else { throw NVMeError("controller not ready within CAP.TO (\(capabilities.timeoutMillis) ms) after CC.EN = 1") }
    }

    /// Send one admin command and wait for its completion. A non-zero status is an error
    /// naming the opcode; so is no completion within `adminTimeoutMillis`.
    @discardableResult
    public func admin(_ command: NVMeCommand) throws(NVMeError) -> NVMeCompletion {
        guard let asq, let acq else { throw NVMeError("controller not enabled") }
        let entries = adminDepth
        var c = command
        c.cid = nextCID
        nextCID &+= 1
        (asq.host + sqTail * 64).storeBytes(of: c, as: NVMeCommand.self)
        sqTail = (sqTail + 1) % entries
        adminCommands += 1
        write32(NVMeRegister.doorbells, UInt32(sqTail))
        var done: NVMeCompletion?
        let finished = waitReady(adminTimeoutMillis) {
            let e = (acq.host + cqHead * 16).load(as: NVMeCompletion.self)
            guard e.phase == phase else {
                if read32(NVMeRegister.csts) & NVMeCSTS.fatal != 0 { return true }
                return false
            }
            cqHead += 1
            if cqHead == entries { cqHead = 0; phase.toggle() }
            write32(NVMeRegister.doorbells + capabilities.doorbellStride, UInt32(cqHead))
            if e.cid == c.cid { done = e; return true }
            return false   // a stale completion (a command that timed out earlier)
        }
        let name = "admin command 0x\(String(c.opcode, radix: 16))"
        guard finished, let done else {
            if read32(NVMeRegister.csts) & NVMeCSTS.fatal != 0 { throw NVMeError("\(name): controller fatal status (CSTS.CFS)") }
            adminTimeouts += 1
            throw NVMeError("\(name): no completion within \(adminTimeoutMillis) ms")
        }
        guard done.status == 0 else {
            throw NVMeError("\(name) failed: status type \(done.status >> 8), code 0x\(String(done.status & 0xFF, radix: 16))")
        }
        return done
    }

    /// Run an Identify into a 4 KiB DMA buffer and return its bytes.
    func identify(cns: UInt32, nsid: UInt32 = 0) throws(NVMeError) -> [UInt8] {
        let buffer = try dma.allocate(bytes: 4096)
        defer { dma.free(buffer) }
        try admin(.identify(cns: cns, nsid: nsid, buffer: buffer.iova))
        return Array(UnsafeRawBufferPointer(start: buffer.host, count: 4096))
    }

    public func identifyController() throws(NVMeError) -> NVMeControllerIdentity {
        guard let id = NVMeControllerIdentity(try identify(cns: NVMeIdentifyCNS.controller)) else {
            throw NVMeError("Identify Controller: short answer")
        }
        identity = id
        return id
    }

    /// The active namespace IDs (Identify CNS 02h), ascending.
    public func activeNamespaces() throws(NVMeError) -> [UInt32] {
        let data = try identify(cns: NVMeIdentifyCNS.activeNamespaces)
        var out: [UInt32] = []
        for i in 0..<1024 {
            let v = UInt32(data[4 * i]) | UInt32(data[4 * i + 1]) << 8 | UInt32(data[4 * i + 2]) << 16 | UInt32(data[4 * i + 3]) << 24
            if v == 0 { break }
            out.append(v)
        }
        return out
    }

    public func identifyNamespace(_ nsid: UInt32) throws(NVMeError) -> NVMeNamespaceIdentity {
        guard let ns = NVMeNamespaceIdentity(try identify(cns: NVMeIdentifyCNS.namespace, nsid: nsid)) else {
            throw NVMeError("Identify Namespace \(nsid): no usable LBA format")
        }
        return ns
    }

    /// Ask for `count` I/O queue pairs; returns how many the controller granted (≤ count).
    public func requestQueues(_ count: Int) throws(NVMeError) -> Int {
        let c = try admin(.setNumberOfQueues(count))
        let sq = Int(c.dw0 & 0xFFFF) + 1, cq = Int(c.dw0 >> 16) + 1
        return min(count, sq, cq)
    }

    /// Normal shutdown (CC.SHN) and wait for CSTS.SHST = complete.
    public func shutdown() throws(NVMeError) {
        write32(NVMeRegister.cc, read32(NVMeRegister.cc) & ~NVMeCC.shutdownMask | NVMeCC.shutdownNormal)
        guard waitReady(capabilities.timeoutMillis, {
            read32(NVMeRegister.csts) & NVMeCSTS.shutdownMask == NVMeCSTS.shutdownComplete
        }) else { throw NVMeError("controller did not finish its shutdown within CAP.TO") }
    }
}
