#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Stats
import VhostUser
import Virtio

/// What a `[blk]` offers a guest.
public struct BlkDeviceSpec: Sendable {
    public var name: String
    public var queues: Int
    public var queueSize: Int
    public var maxRegions: Int
    public var serial: String
    public var target: BlockTarget
    /// Limits offered to the guest: segments per request (`seg_max`), bytes per segment
    /// (`size_max`, VIRTIO_BLK_F_SIZE_MAX when set). A backend whose commands are bounded
    /// (NVMe: MDTS, command slots) offers less than the file backend's 126 × unlimited.
    public var segMax: Int = BlkRequestParser.segMax
    public var sizeMax: UInt32? = nil
    /// Whether DISCARD / WRITE_ZEROES are offered (writable exports only).
    public var discard = true
    public var writeZeroes = true

    public init(name: String, queues: Int, queueSize: Int, maxRegions: Int, serial: String, target: BlockTarget) {
        self.name = name; self.queues = queues; self.queueSize = queueSize; self.maxRegions = maxRegions
        self.serial = serial; self.target = target
    }
}

public struct BlkSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Makes queue `queue`'s backend (its `BlkIO` is ready, eventfd included). Without one, a
/// model runs every queue on an io_uring over `spec.target`.
public typealias BlkBackendFactory = (_ queue: Int, _ io: UnsafeMutablePointer<BlkIO>) throws(BlkSetupError) -> BlkBackendControl

/// virtio-blk (§5.2) as a vhost-user device model, with the I/O state of every queue
/// (`BlkIO`: request slots, counters) and its backend (an io_uring on the disk, or an NVMe
/// queue pair). One virtqueue per queue.
public final class VirtioBlkModel: VhostUserDeviceModel, @unchecked Sendable {
    public let spec: BlkDeviceSpec
    /// One per virtqueue; owned here for the device's whole life.
    public let io: [UnsafeMutablePointer<BlkIO>]
    /// Queue `i`'s backend (control side).
    public let backends: [BlkBackendControl]
    /// Called (control thread, workers paused) after the guest's memory table changed,
    /// with the regions now mapped: a backend that needs device addresses maps them.
    public var onMemoryChange: (([GuestRegion]) -> Void)?
    /// Set by the owner: the device's virtqueues (to drain them).
    public var queues: [Virtqueue] = []
    private var iovStorage: [UnsafeMutablePointer<iovec>] = []

    public init(spec: BlkDeviceSpec, backends factory: BlkBackendFactory? = nil) throws(BlkSetupError) {
        self.spec = spec
        var made: [UnsafeMutablePointer<BlkIO>] = []
        var controls: [BlkBackendControl] = []
        for _ in 0..<spec.queues {
            let efd = (try? EventFD.create()) ?? -1
            let iov = UnsafeMutablePointer<iovec>.allocate(capacity: spec.queueSize * BlkRequestParser.iovCapacity)
            iov.initialize(repeating: iovec(), count: spec.queueSize * BlkRequestParser.iovCapacity)
            iovStorage.append(iov)
            let slots = UnsafeMutablePointer<BlkSlot>.allocate(capacity: spec.queueSize)
            for i in 0..<spec.queueSize { (slots + i).initialize(to: BlkSlot(iov: iov + i * BlkRequestParser.iovCapacity)) }
            let serial = UnsafeMutablePointer<UInt8>.allocate(capacity: VirtioBlk.idBytes)
            serial.initialize(repeating: 0, count: VirtioBlk.idBytes)
            for (i, b) in spec.serial.utf8.prefix(VirtioBlk.idBytes).enumerated() { serial[i] = b }
            let p = UnsafeMutablePointer<BlkIO>.allocate(capacity: 1)
            p.initialize(to: BlkIO(slots: slots, slotCount: spec.queueSize, target: spec.target,
                                   counters: .discard, serial: serial, eventFD: efd,
                                   users: .allocate(capacity: BlkIO.reapBatch), results: .allocate(capacity: BlkIO.reapBatch)))
            made.append(p)
        }
        do throws(BlkSetupError) {
            for (q, p) in made.enumerated() {
                if let factory {
                    controls.append(try factory(q, p))
                } else {
                    let u = try UringBackendControl(entries: spec.queueSize, target: spec.target, name: spec.name, queue: q)
                    u.eventFD = p.pointee.eventFD
                    controls.append(u)
                }
            }
        } catch {
            for c in controls { c.close() }
            Self.free(made)
            for i in iovStorage { i.deallocate() }
            throw error
        }
        io = made
        backends = controls
    }

    private static func free(_ list: [UnsafeMutablePointer<BlkIO>]) {
        for p in list {
            if p.pointee.eventFD >= 0 { close(p.pointee.eventFD) }
            p.pointee.slots.deallocate()
            p.pointee.serial.deallocate()
            p.pointee.users.deallocate()
            p.pointee.results.deallocate()
            p.pointee.counters.latency.free()
            p.deinitialize(count: 1)
            p.deallocate()
        }
    }

    deinit {
        for c in backends { c.close() }
        Self.free(io)
        for i in iovStorage { i.deallocate() }
    }

    // MARK: VhostUserDeviceModel

    public var kind: String { "blk" }
    public var queueCount: Int { spec.queues }
    public var queueNum: Int { spec.queues }
    public var maxQueueSize: Int { spec.queueSize }
    public var maxRegions: Int { spec.maxRegions }
    public var protocolFeatures: VhostUserProtocolFeature { [.inflightSHMFD] }
    public var configAlwaysOffered: Bool { true }

    public var features: UInt64 {
        var f = VirtioFeature.version1 | VirtioFeature.indirectDesc | VirtioFeature.eventIdx
            | VirtioBlk.Feature.segMax | VirtioBlk.Feature.blkSize | VirtioBlk.Feature.flush | VirtioBlk.Feature.topology
        if spec.queues > 1 { f |= VirtioBlk.Feature.mq }
        if spec.sizeMax != nil { f |= VirtioBlk.Feature.sizeMax }
        if spec.target.readOnly {
            f |= VirtioBlk.Feature.ro
        } else {
            if spec.discard { f |= VirtioBlk.Feature.discard }
            if spec.writeZeroes { f |= VirtioBlk.Feature.writeZeroes }
        }
        return f
    }

    public func apply(features: UInt64, to queue: UnsafeMutablePointer<VirtqueueState>) {}

    /// `struct virtio_blk_config`, little-endian.
    public func configSpace() -> [UInt8] {
        var c = [UInt8](repeating: 0, count: VirtioBlk.Config.size)
        func put(_ v: UInt64, _ at: Int, _ n: Int) { for i in 0..<n { c[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        let t = spec.target
        put(t.sectors, VirtioBlk.Config.capacity, 8)
        put(UInt64(spec.segMax), VirtioBlk.Config.segMax, 4)
        if let sizeMax = spec.sizeMax { put(UInt64(sizeMax), VirtioBlk.Config.sizeMax, 4) }
        put(UInt64(t.blockSize), VirtioBlk.Config.blkSize, 4)
        // Topology: one logical block per physical block, I/O in whole logical blocks
        // (min_io_size counts logical blocks: the guest multiplies it by blk_size).
        put(0, VirtioBlk.Config.physicalBlockExp, 1)
        put(1, VirtioBlk.Config.minIOSize, 2)
        put(UInt64(spec.queues), VirtioBlk.Config.numQueues, 2)
        let maxSectors = UInt64(BlkRequestParser.maxBytes >> 9)
        put(maxSectors, VirtioBlk.Config.maxDiscardSectors, 4)
        put(1, VirtioBlk.Config.maxDiscardSeg, 4)
        put(UInt64(t.blockSize / 512), VirtioBlk.Config.discardSectorAlignment, 4)
        put(maxSectors, VirtioBlk.Config.maxWriteZeroesSectors, 4)
        put(1, VirtioBlk.Config.maxWriteZeroesSeg, 4)
        put(1, VirtioBlk.Config.writeZeroesMayUnmap, 1)
        return c
    }

    public func handle(_ message: VhostUserMessage) -> VhostUserDevice.Outcome? {
        switch message {
        case .setConfig:
            // Only the writeback byte is writable, and CONFIG_WCE is not offered.
            return .failed("the virtio-blk config space is read-only here")
        default:
            return nil
        }
    }

    /// How the workers wait: in event mode completions signal each queue's eventfd (the
    /// worker sleeps on it); polling workers reap without one. The kernel's worker threads
    /// for requests that cannot complete inline run on `kernelCPUs` (the CPUs no worker
    /// polls on), so they never wait for a busy poller's time slice; empty = anywhere.
    public func configure(eventMode: Bool, kernelCPUs: [Int]) {
        for c in backends { c.configure(eventMode: eventMode, kernelCPUs: kernelCPUs) }
    }

    public func drainInFlight(queue: Int?) {
        let now = sl_rdtsc()
        for (i, p) in io.enumerated() where queue == nil || queue == i {
            guard i < queues.count, p.pointee.pending > 0 || p.pointee.prepared > 0 else { continue }
            backends[i].drain(vq: queues[i], io: p, now: now)
        }
    }

    /// Queue `q` as a poll source when it runs on an io_uring (nil for other backends).
    public func uringQueue(_ q: Int) -> BlkQueue<UringBackend>? {
        guard q < queues.count, let u = backends[q] as? UringBackendControl else { return nil }
        return BlkQueue(vq: queues[q], io: io[q], backend: u.backend)
    }

    public func memoryChanged(_ regions: [GuestRegion]) {
        onMemoryChange?(regions)
    }
}

extension VhostUserDevice {
    /// A virtio-blk device on `spec.target`.
    public static func blk(_ spec: BlkDeviceSpec, backends: BlkBackendFactory? = nil) throws(BlkSetupError) -> VhostUserDevice {
        let model = try VirtioBlkModel(spec: spec, backends: backends)
        let device = VhostUserDevice(model: model)
        model.queues = device.queues
        return device
    }

    public var blkModel: VirtioBlkModel? { model as? VirtioBlkModel }
}
