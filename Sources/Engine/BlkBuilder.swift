import Block
import NVMe
import Config
import Logging
import Platform
import Ports
import Stats
import VhostUser

/// `[blk NAME]`: a vhost-user-blk export. Its queues are poll entries like any port
/// queue: each on one worker, kicked through that worker's epoll in event mode.
struct BlkBuilder: ElementBuilder {
    func specs(_ config: SluiceConfig) -> [ElementSpec] {
        config.blks.map { b in
            ElementSpec(kind: "blk", name: b.name, line: b.line, ports: [], fingerprint: Self.fingerprint(b, config))
        }
    }

    /// The section (lines aside) and every disk it may read: a whole-disk export depends
    /// on its disk, a partition export on all of them (the GUID could move).
    static func fingerprint(_ b: BlkConfig, _ config: SluiceConfig) -> String {
        var c = b
        c.line = 0
        c.deviceLine = 0
        let disks: [DiskConfig]
        switch b.device {
        case .disk(let name): disks = config.disks.filter { $0.name == name }
        case .partition, .namespace: disks = config.disks
        }
        var nvme = ""
        if case .disk = b.device {} else if var n = config.nvme {
            // Lines aside: an [nvme] that only moved keeps the export.
            n.line = 0; n.pciLine = nil; n.sglLine = nil; n.interruptsLine = nil
            n.ioQueueDepthLine = nil; n.adminTimeoutLine = nil; n.ioTimeoutLine = nil
            nvme = " \(n)"
        }
        return "\(c) " + disks.map { "\($0.name)=\($0.file)@\($0.blockSize)" }.joined(separator: ",") + nvme
    }

    func build(_ spec: ElementSpec, _ plane: Dataplane) throws(EngineError) -> any RunningElement {
        guard let b = plane.config.blks.first(where: { $0.name == spec.name }) else {
            throw EngineError("\(plane.config.file):\(spec.line): blk \(spec.name): section vanished")
        }
        let export = try plane.blkExport(b, fingerprint: spec.fingerprint)
        let others = CPUInfo.onlineCPUs().subtracting(plane.options.cores).sorted()
        export.model.configure(eventMode: plane.options.idlePolicy == .event, kernelCPUs: others)
        var rxq: [String] = []
        for q in 0..<b.queues {
            let w = plane.nextWorkerIndex()
            try plane.own(blkQueue: export, queue: q, worker: w)
            let io = export.model.io[q]
            io.pointee.counters.latency.free()
            io.pointee.counters = try plane.blkCounters(b.name, slot: w)
            if let source = export.model.uringQueue(q) {
                rxq += try plane.addPollEntry(.make(source, PollEntry.blk), worker: w, name: b.name, queue: q)
            } else if let n = export.model.backends[q] as? NVMeQueueControl {
                n.pair.counters = try plane.nvmeQueueCounters(n.drive, qid: n.qid, slot: w)
                let source = BlkQueue(vq: export.device.queues[q], io: io, backend: n.backend)
                rxq += try plane.addPollEntry(.make(source, PollEntry.nvmeBlk), worker: w, name: b.name, queue: q)
            } else {
                throw EngineError("blk \(b.name): queue \(q) has no backend")
            }
        }
        return RunningBlk(export: export, rxqNames: rxq, logger: plane.logger)
    }
}

/// What the control thread keeps of a built blk element: the export (kept by the
/// data plane across rebuilds) and the names to retire when the section goes.
final class RunningBlk: RunningElement {
    let export: BlkExport
    let rxqNames: [String]
    let logger: Logger?

    init(export: BlkExport, rxqNames: [String], logger: Logger? = nil) {
        self.export = export
        self.rxqNames = rxqNames
        self.logger = logger
    }

    private var lastScan: UInt64 = 0

    /// NVMe queues, about once a second: a sleeping worker with commands outstanding is
    /// woken so it scans for timeouts (and for a fatal controller status, which the data
    /// plane's housekeeping then resets); timed-out commands are aborted (admin Abort).
    func housekeeping(now: UInt64) {
        guard export.nvme != nil, now &- lastScan >= 1_000_000_000 else { return }
        lastScan = now
        for (q, b) in export.model.backends.enumerated() {
            guard let n = b as? NVMeQueueControl else { continue }
            if n.pair.outstanding > 0, q < export.model.io.count, export.model.io[q].pointee.eventFD >= 0 {
                EventFD.signal(export.model.io[q].pointee.eventFD)
            }
            if !n.pair.needsReset { _ = try? n.pair.abortTimedOut() }
        }
    }

    /// Requests still with the kernel complete now (workers are paused), so the queues
    /// can move to other workers or the export can close.
    func teardown(_ plane: Dataplane) {
        export.model.drainInFlight(queue: nil)
        for p in export.model.io { p.pointee.counters.inflight.set(0) }
    }

    var counterNames: [String] {
        BlkCounters.allNames.map { "blk.\(export.name).\($0)" }
            + VhostUserEndpoint.counterNames.map { "blk.\(export.name).\($0.0)" } + rxqNames
    }
}

extension Dataplane {
    /// The running export for `b`, or a new one (opened, listening). An export whose
    /// section or disks changed is closed first.
    func blkExport(_ b: BlkConfig, fingerprint: String) throws(EngineError) -> BlkExport {
        if let old = blkExports.first(where: { $0.name == b.name }) {
            if old.fingerprint == fingerprint { return old }
            closeBlkExport(old)
        }
        if case .disk = b.device {} else if needsNVMe { try openNVMeDrives() }
        var resolved: ResolvedBlkTarget
        do {
            resolved = try BlkTargets.resolve(b, config: config, drives: nvmeDrives)
        } catch {
            // A partition on no disk may be on a namespace of a controller bound to vfio-pci.
            guard case .partition = b.device, nvmeDrives.isEmpty, NVMeTargets.controllersBoundToVFIO else { throw error }
            try openNVMeDrives()
            resolved = try BlkTargets.resolve(b, config: config, drives: nvmeDrives)
        }
        let id = nextPortID
        nextPortID += 1
        var control: [StatsCounter] = []
        for (name, kind) in VhostUserEndpoint.counterNames {
            control.append(try counter("blk.\(b.name).\(name)", kind: kind, slot: stats.controlSlot))
        }
        let export = try BlkExport(id: id, config: b, fingerprint: fingerprint, resolved: resolved, counters: control, logger: logger)
        export.device.hooks = DeviceHooks(
            quiesce: { [unowned self] body in self.quiesce(body) },
            kickChanged: { [unowned self] queue, old, new in self.kickChanged(port: id, queue: queue, old: old, new: new) })
        try export.endpoint.open(epoll: controlEpoll, logger: logger)
        blkExports.append(export)
        for w in resolved.warnings { logger.warning("blk \(b.name): \(w)") }
        logger.info("blk \(b.name): \(resolved.what), \(resolved.target.sizeBytes) bytes, \(resolved.target.readOnly ? "read-only" : "read-write"), \(resolved.file.map { $0.directIO ? "O_DIRECT" : "buffered (the file system refuses O_DIRECT)" } ?? "VFIO")")
        return export
    }

    func closeBlkExport(_ e: BlkExport) {
        e.close(epoll: controlEpoll)
        blkExports.removeAll { $0 === e }
    }

    /// After a reload: exports no element uses any more are closed.
    func closeUnusedBlkExports() {
        let used = Set(elements.compactMap { ($0.running as? RunningBlk)?.export.id })
        for e in blkExports where !used.contains(e.id) { closeBlkExport(e) }
    }

    func blkExport(id: Int) -> BlkExport? { blkExports.first { $0.id == id } }

    /// Record that worker `w` polls blk queue `q`: its kicks and its completions wake it.
    func own(blkQueue e: BlkExport, queue q: Int, worker w: Int) throws(EngineError) {
        queueOwner[e.id, default: [:]][q] = w
        claims[building, default: []].append(QueueClaim(port: e.id, key: q, worker: w, receive: true, queue: q))
        do {
            let kick = e.kickFD(q)
            if kick >= 0 { try workers[w].epoll.add(kick, token: UInt64(e.id) << 16 | UInt64(q)) }
            let done = e.completionFD(q)
            if done >= 0 { try workers[w].epoll.add(done, token: UInt64(e.id) << 16 | 0x8000 | UInt64(q)) }
        } catch {
            throw EngineError("blk \(e.name): \(error)")
        }
    }

    /// The counters of I/O queue `qid` of `drive`, in `slot` (the worker polling it).
    func nvmeQueueCounters(_ drive: NVMeDrive, qid: Int, slot: Int) throws(EngineError) -> NVMeQueueCounters {
        var c: [StatsCounter] = []
        for n in NVMeQueueCounters.allNames { c.append(try counter("\(drive.counterName).qp\(qid).\(n)", slot: slot)) }
        return NVMeQueueCounters(c)
    }

    /// Blk counters of `name` in `slot`.
    func blkCounters(_ name: String, slot: Int) throws(EngineError) -> BlkCounters {
        var c: [StatsCounter] = []
        for n in BlkCounters.allNames { c.append(try counter("blk.\(name).\(n)", kind: BlkCounters.kind(n), slot: slot)) }
        return BlkCounters(c)
    }
}
