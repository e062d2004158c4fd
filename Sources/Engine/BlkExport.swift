import Block
import Config
import Logging
import Platform
import Stats
import VhostUser
import Virtio

/// A `[blk]` while the daemon runs: its disk opened, the virtio-blk device (queues and
/// their io_urings live as long as the export) behind a `VhostUserEndpoint`. The
/// element built from the same section puts its queues on workers; a reload that only
/// moves queues (new cores) keeps the export, so the guest stays connected.
/// Control thread only.
final class BlkExport {
    let id: Int
    let config: BlkConfig
    /// What the export was made from: the section and the disk sections it may read.
    let fingerprint: String
    let file: BlockFile?
    /// The namespace binding when the export is on NVMe.
    let nvme: NVMeBinding?
    let device: VhostUserDevice
    let model: VirtioBlkModel
    let endpoint: VhostUserEndpoint

    static let listenKind: UInt64 = 1, connectionKind: UInt64 = 2

    init(id: Int, config: BlkConfig, fingerprint: String, resolved: ResolvedBlkTarget, counters: [StatsCounter],
         logger: Logger) throws(EngineError) {
        self.id = id
        self.config = config
        self.fingerprint = fingerprint
        file = resolved.file
        var serial = config.serial
        var factory: BlkBackendFactory?
        var spec = BlkDeviceSpec(name: config.name, queues: config.queues, queueSize: config.queueSize, maxRegions: config.dsMax,
                                 serial: serial, target: resolved.target)
        if let (drive, nsid) = resolved.nvme {
            let binding = try NVMeBinding(drive: drive, nsid: nsid, label: "blk \(config.name)", logger: logger)
            nvme = binding
            // GET_ID answers the controller's serial unless the section sets its own.
            if !config.serialGiven { serial = drive.identity.serial }
            let depth = drive.settings.ioQueueDepth
            // Every segment fits one command (size_max ≤ the largest transfer) and a request
            // of seg_max segments takes at most half the queue's command slots, so a request
            // the guest sends within these limits always finds room.
            spec.segMax = max(1, min(BlkRequestParser.segMax, (depth - 1) / 2))
            spec.sizeMax = UInt32(drive.maxTransfer)
            spec.discard = drive.identity.supportsDSM
            spec.writeZeroes = drive.identity.supportsWriteZeroes
            factory = { q, io throws(BlkSetupError) in
                try NVMeQueueControl(binding: binding, io: io, depth: depth, label: "blk \(config.name) queue \(q)")
            }
        } else {
            nvme = nil
        }
        do {
            spec.serial = serial
            device = try VhostUserDevice.blk(spec, backends: factory)
        } catch {
            nvme?.close()
            throw EngineError(error.description)
        }
        model = device.blkModel!
        if let nvme { model.onMemoryChange = { [weak nvme] regions in nvme?.memoryChanged(regions) } }
        endpoint = VhostUserEndpoint(label: "blk \(config.name)", device: device, socketPath: config.socket,
                                     mode: config.mode, socketAccess: config.socketAccess,
                                     listenToken: PortToken.make(port: id, kind: Self.listenKind),
                                     connectionToken: PortToken.make(port: id, kind: Self.connectionKind),
                                     counters: counters)
    }

    var name: String { config.name }
    var queueCount: Int { config.queues }

    /// The guest's current kick eventfd of queue `q` (-1: none yet).
    func kickFD(_ q: Int) -> Int32 { device.kickFD(q) }
    /// The eventfd queue `q`'s io_uring signals on completions.
    func completionFD(_ q: Int) -> Int32 { q < model.io.count ? model.io[q].pointee.eventFD : -1 }

    func close(epoll: Epoll) {
        endpoint.close(epoll: epoll)
        for b in model.backends { b.close() }
        model.onMemoryChange = nil
        nvme?.close()
    }
}

/// A blk section's target found: the file to use and the byte range to export.
struct ResolvedBlkTarget {
    /// The disk's file; nil for an NVMe namespace.
    var file: BlockFile?
    var target: BlockTarget
    /// "disk img0", "partition 2 of disk img0": for the log.
    var what: String
    /// What reading the partition tables found wrong (a damaged primary GPT…): logged at start.
    var warnings: [String] = []
    /// The controller and namespace when the target is on NVMe.
    var nvme: (drive: NVMeDrive, nsid: UInt32)? = nil

    init(file: BlockFile?, target: BlockTarget, what: String, warnings: [String] = [], nvme: (drive: NVMeDrive, nsid: UInt32)? = nil) {
        self.file = file; self.target = target; self.what = what; self.warnings = warnings; self.nvme = nvme
    }
}
