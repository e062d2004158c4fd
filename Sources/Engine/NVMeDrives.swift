#if canImport(Glibc)
import Glibc
#endif
import Block
import Config
import Logging
import NVMe
import Platform
import Stats

/// The IOMMU of one VFIO container, as the NVMe driver sees it.
final class VFIOIOMMU: NVMeIOMMU {
    let container: VFIOContainer
    init(_ container: VFIOContainer) { self.container = container }

    func map(host: UnsafeMutableRawPointer, iova: UInt64, bytes: Int) throws(NVMeError) {
        do { try container.map(host: host, iova: iova, bytes: bytes, writable: true) } catch {
            throw NVMeError(error.description)
        }
    }

    func unmap(iova: UInt64, bytes: Int) throws(NVMeError) {
        do { try container.unmap(iova: iova, bytes: bytes) } catch { throw NVMeError(error.description) }
    }
}

/// One NVMe controller Sluice drives from user space: its VFIO device (own container),
/// BAR0, the admin path, its namespaces, the I/O queue ids in use and its interrupts.
/// Opened when a config first needs it, kept across reloads, shut down (CC.SHN) at exit.
/// Control thread only.
final class NVMeDrive {
    let address: String
    let device: VFIODevice
    let container: VFIOContainer
    let iommu: VFIOIOMMU
    let dma: NVMeDMAPool
    let controller: NVMeController
    let identity: NVMeControllerIdentity
    /// Active namespaces by id.
    let namespaces: [UInt32: NVMeNamespaceIdentity]
    let settings: NVMeConfig
    /// I/O queue pairs the controller granted (Set Features, Number of Queues).
    let queueLimit: Int
    /// Doorbell Buffer Config accepted: I/O queues use shadow doorbells.
    private(set) var shadowDoorbells = false
    /// Counter prefix: `nvme.<serial>` (characters a counter name cannot hold become `_`).
    let counterName: String
    /// The blk queues on this controller (what a reset brings back).
    var controls: [NVMeQueueControl] = []
    /// I/O queue ids in use → the eventfd its completions signal.
    private(set) var queues: [Int: Int32] = [:]
    /// INTx or MSI: one eventfd for the controller (on the control epoll), fanned out.
    private(set) var sharedIRQ: Int32 = -1
    private var msixVectors = 0
    /// IOVA windows for guest memory (window 0 holds the driver's own DMA memory).
    let windowBytes: UInt64
    private var windowsInUse: Set<Int> = [0]
    private let windowCount: Int
    private(set) var closed = false
    /// `nvme.<serial>.{admin_commands,admin_timeouts,resets}` (control slot).
    var adminCounters: (commands: StatsCounter, timeouts: StatsCounter, resets: StatsCounter) = (.discard, .discard, .discard)
    private(set) var resets = 0

    static let shutdownMillis = 5000

    /// Open `address` through VFIO, reset and enable the controller, Identify it and its
    /// active namespaces, ask for `settings`' queues. Errors say what to fix.
    init(address: String, settings: NVMeConfig, logger: Logger) throws(EngineError) {
        self.address = address
        self.settings = settings
        let here = "nvme \(address)"
        do {
            container = try VFIOContainer()
            device = try VFIOOpen.open(address, container: container)
        } catch { throw EngineError("\(here): \(error.description)") }
        iommu = VFIOIOMMU(container)
        // IOVAs: the container's first usable range, cut into windows. Window 0 holds
        // queues and lists; each blk export maps its guest's memory at window k + GPA.
        let range = container.iovaRanges.first(where: { $0.upperBound >= 1 << 32 }) ?? (0...((1 << 39) - 1))
        let top = range.upperBound &+ 1
        windowBytes = top >= 1 << 44 ? 1 << 38 : 1 << 35
        windowCount = Int(min(top / windowBytes, 64))
        do {
            dma = try NVMeDMAPool(iommu: iommu, space: NVMeIOVASpace(ranges: [max(range.lowerBound, 1 << 20)...(windowBytes - 1)]))
            _ = try device.enableBusMaster()
            let (bar, barBytes) = try device.mapBAR(0)
            guard barBytes >= 0x2000 else { throw EngineError("\(here): BAR0 is only \(barBytes) bytes") }
            controller = NVMeController(bar: bar, dma: dma)
        } catch let e as EngineError { throw e } catch { throw EngineError("\(here): \(error)") }
        controller.adminTimeoutMillis = settings.adminTimeoutMillis
        do {
            try controller.enable()
            identity = try controller.identifyController()
            var found: [UInt32: NVMeNamespaceIdentity] = [:]
            for nsid in try controller.activeNamespaces() {
                let ns = try controller.identifyNamespace(nsid)
                if ns.metadataSize != 0 {
                    logger.warning("\(here): namespace \(nsid) has \(ns.metadataSize) metadata bytes per block; not exported")
                    continue
                }
                found[nsid] = ns
            }
            namespaces = found
            queueLimit = try controller.requestQueues(64)
            shadowDoorbells = try controller.configureShadowDoorbells(dma: dma)
        } catch { throw EngineError("\(here): \(error.description)") }
        counterName = "nvme." + String(identity.serial.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        do { try setUpInterrupts() } catch { throw EngineError("\(here): \(error.description)") }
        logger.info("\(here): \(identity.model) serial \(identity.serial), firmware \(identity.firmware), \(namespaces.count) namespace(s) \(namespaces.keys.sorted().map { "n\($0)" }.joined(separator: ",")), \(queueLimit) I/O queue(s), \(settings.sgl && identity.supportsSGL ? "SGLs" : "PRPs"), interrupts \(settings.interrupts)")
    }

    /// Whether a queue saw a fatal controller status.
    var needsReset: Bool { controls.contains { $0.pair.needsReset } }

    /// After CSTS.CFS (workers paused, requests drained): reset and enable the controller,
    /// create every queue pair again in place. Throws when the controller does not come back.
    func resetAfterFatalStatus() throws(EngineError) {
        resets += 1
        do {
            _ = try controller.resetAfterFatalStatus(queues: 64)
            for c in controls { try c.pair.recreate(vector: vector(for: c.qid)) }
        } catch { throw EngineError("nvme \(address): reset after a fatal status failed: \(error.description)") }
    }

    /// Copy the admin path's tallies into the counters (housekeeping).
    func publishCounters() {
        adminCounters.commands.set(UInt64(controller.adminCommands))
        adminCounters.timeouts.set(UInt64(controller.adminTimeouts))
        adminCounters.resets.set(UInt64(resets))
    }

    /// The largest data transfer of one command: MDTS (in CAP.MPSMIN pages), at most what
    /// one PRP list page describes.
    var maxTransfer: Int {
        let mdts = identity.mdts == 0 || identity.mdts >= 32 ? Int.max : controller.capabilities.minPageSize << Int(identity.mdts)
        return min(mdts, NVMeQueuePairState.maxCommandBytes)
    }

    /// MSI-X: one vector per queue id (routed as queues come); INTx / MSI: one eventfd the
    /// control thread fans out to the queues.
    private func setUpInterrupts() throws(EngineError) {
        do {
            switch settings.interrupts {
            case .msix:
                msixVectors = try device.irqCount(.msix)
                guard msixVectors >= 2 else {
                    throw EngineError("controller has \(msixVectors) MSI-X vector(s); use interrupts = intx")
                }
                try device.setIRQs(index: .msix, eventFDs: [Int32](repeating: -1, count: min(msixVectors, queueLimit + 1)))
            case .msi, .intx:
                let index: VFIOIRQIndex = settings.interrupts == .msi ? .msi : .intx
                guard try device.irqCount(index) > 0 else {
                    throw EngineError("controller has no \(settings.interrupts == .msi ? "MSI" : "INTx") capability; use interrupts = \(settings.interrupts == .msi ? "msix or intx" : "msix")")
                }
                sharedIRQ = try EventFD.create()
                try device.setIRQs(index: index, eventFDs: [sharedIRQ])
            }
        } catch let e as EngineError { throw e } catch { throw EngineError("\(error)") }
    }

    /// The MSI-X vector of queue `qid`: its own where the controller has enough, else 0.
    func vector(for qid: Int) -> Int { settings.interrupts == .msix && qid < min(msixVectors, queueLimit + 1) ? qid : 0 }

    /// A free I/O queue id, or nil.
    func takeQueueID(eventFD: Int32) -> Int? {
        guard let qid = (1...max(1, queueLimit)).first(where: { queues[$0] == nil }) else { return nil }
        queues[qid] = eventFD
        if settings.interrupts == .msix, vector(for: qid) == qid {
            try? device.setIRQs(index: .msix, eventFDs: [eventFD], start: qid)
        }
        return qid
    }

    func releaseQueueID(_ qid: Int) {
        if settings.interrupts == .msix, vector(for: qid) == qid {
            try? device.setIRQs(index: .msix, eventFDs: [-1], start: qid)
        }
        queues[qid] = nil
    }

    /// INTx / MSI fired (control thread): wake every queue's worker, re-arm INTx.
    func sharedInterrupt() {
        _ = EventFD.drain(sharedIRQ)
        for fd in queues.values where fd >= 0 { EventFD.signal(fd) }
        if settings.interrupts == .intx { try? device.unmaskINTx() }
    }

    /// Run `body` with a reader of namespace `nsid` (bytes at any offset) through a queue
    /// pair of its own, polled by the control thread, then delete the pair. The reader
    /// answers nil when a read fails.
    func withControlReader<T>(nsid: UInt32, _ body: ((UInt64, Int) -> [UInt8]?) -> T) -> T {
        let failing: (UInt64, Int) -> [UInt8]? = { _, _ in nil }
        guard let ns = namespaces[nsid], let qid = takeQueueID(eventFD: -1) else { return body(failing) }
        defer { releaseQueueID(qid) }
        guard let pair = try? controller.createQueuePair(qid: qid, depth: 8, vector: nil, dma: dma,
                                                         ioTimeoutMillis: settings.ioTimeoutMillis) else { return body(failing) }
        defer { try? pair.delete() }
        guard let buffer = try? dma.allocate(bytes: 64 << 10) else { return body(failing) }
        defer { dma.free(buffer) }
        let bs = UInt64(ns.blockSize)
        let capacity = buffer.bytes / Int(bs)
        return body { offset, count in
            var out: [UInt8] = []
            out.reserveCapacity(count)
            var at = offset
            let end = offset &+ UInt64(count)
            while at < end {
                let lba = at / bs
                let skip = Int(at - lba * bs)
                let blocks = min(Int((end - lba * bs + bs - 1) / bs), capacity)
                guard lba + UInt64(blocks) <= ns.blocks,
                      (try? pair.read(nsid: nsid, lba: lba, blocks: blocks, blockSize: Int(bs), into: buffer)) != nil else { return nil }
                let take = min(blocks * Int(bs) - skip, Int(end - at))
                out += UnsafeRawBufferPointer(start: buffer.host + skip, count: take)
                at += UInt64(take)
            }
            return out
        }
    }

    /// A free IOVA window for one export's guest memory.
    func takeWindow() -> Int? {
        guard let w = (1..<windowCount).first(where: { !windowsInUse.contains($0) }) else { return nil }
        windowsInUse.insert(w)
        return w
    }

    func releaseWindow(_ w: Int) { windowsInUse.remove(w) }

    /// CC.SHN and wait; interrupts off; the device closed.
    func close(logger: Logger) {
        guard !closed else { return }
        closed = true
        do { try controller.shutdown() } catch { logger.warning("nvme \(address): shutdown: \(error.description)") }
        switch settings.interrupts {
        case .msix: try? device.disableIRQs(index: .msix)
        case .msi: try? device.disableIRQs(index: .msi)
        case .intx: try? device.disableIRQs(index: .intx)
        }
        if sharedIRQ >= 0 { Glibc.close(sharedIRQ); sharedIRQ = -1 }
        device.close()
    }
}

extension Dataplane {
    /// The controllers a config asks for: `[nvme] pci` (a list, or every NVMe controller
    /// bound to vfio-pci), or with no `[nvme]` section every such controller, opened only
    /// when a `[blk]` needs one. Already open controllers are kept.
    func openNVMeDrives() throws(EngineError) {
        let settings = config.nvme ?? NVMeConfig(line: 0)
        let wanted: [String]
        switch settings.pci {
        case .list(let list): wanted = list
        case .auto:
            wanted = PCISysfs.scan(classCode: PCISysfs.nvmeClass).filter { $0.driver == PCISysfs.vfioDriver }.map(\.address)
        }
        for a in wanted where !nvmeDrives.contains(where: { $0.address == a }) {
            let drive = try NVMeDrive(address: a, settings: settings, logger: logger)
            nvmeDrives.append(drive)
            drive.adminCounters = (try counter("\(drive.counterName).admin_commands", slot: stats.controlSlot),
                                   try counter("\(drive.counterName).admin_timeouts", slot: stats.controlSlot),
                                   try counter("\(drive.counterName).resets", slot: stats.controlSlot))
            if nvmeDrives.last!.sharedIRQ >= 0 {
                do { try controlEpoll.add(nvmeDrives.last!.sharedIRQ, token: NVMeDrive.irqToken(nvmeDrives.count - 1)) } catch {
                    throw EngineError("nvme \(a): \(error)")
                }
            }
        }
    }

    /// Whether the running config needs NVMe controllers at all.
    var needsNVMe: Bool {
        config.nvme != nil || config.blks.contains { if case .namespace = $0.device { return true } else { return false } }
    }

    /// Reset every controller whose queues saw a fatal status, under the pause handshake:
    /// its exports' requests finish first (answered IOERR), then the controller and its
    /// queue pairs come back and the guests carry on.
    func resetFailedNVMeDrives() {
        for d in nvmeDrives where d.needsReset && !d.closed {
            logger.error("nvme \(d.address): controller fatal status (CSTS.CFS): resetting it; requests in flight failed with IOERR")
            var problem: EngineError?
            quiesce {
                for e in blkExports where e.nvme?.drive === d { e.model.drainInFlight(queue: nil) }
                do throws(EngineError) { try d.resetAfterFatalStatus() } catch { problem = error }
            }
            if let problem { logger.error("\(problem.description)") } else { logger.info("nvme \(d.address): reset done, \(d.controls.count) queue pair(s) back") }
        }
    }

    func closeNVMeDrives() {
        for d in nvmeDrives { d.close(logger: logger) }
        nvmeDrives.removeAll()
    }
}

extension NVMeDrive {
    /// Control-epoll tokens of shared interrupts: a kind of their own above port tokens.
    static let irqTokenBase: UInt64 = 0x4E56 << 48
    static func irqToken(_ index: Int) -> UInt64 { irqTokenBase | UInt64(index) }
    static func irqIndex(_ token: UInt64) -> Int? {
        token & (0xFFFF << 48) == irqTokenBase ? Int(token & 0xFFFF) : nil
    }
}
