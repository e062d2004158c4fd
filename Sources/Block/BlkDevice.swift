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

    public init(name: String, queues: Int, queueSize: Int, maxRegions: Int, serial: String, target: BlockTarget) {
        self.name = name; self.queues = queues; self.queueSize = queueSize; self.maxRegions = maxRegions
        self.serial = serial; self.target = target
    }
}

public struct BlkSetupError: Error, CustomStringConvertible {
    public var description: String
}

/// virtio-blk (§5.2) as a vhost-user device model, with the I/O state of every queue
/// (`BlkIO`: an io_uring on the disk, request slots). One virtqueue per queue.
public final class VirtioBlkModel: VhostUserDeviceModel, @unchecked Sendable {
    public let spec: BlkDeviceSpec
    /// One per virtqueue; owned here for the device's whole life.
    public let io: [UnsafeMutablePointer<BlkIO>]
    /// Set by the owner: the device's virtqueues (to drain them).
    public var queues: [Virtqueue] = []
    private var iovStorage: [UnsafeMutablePointer<iovec>] = []

    public init(spec: BlkDeviceSpec) throws(BlkSetupError) {
        self.spec = spec
        var made: [UnsafeMutablePointer<BlkIO>] = []
        for q in 0..<spec.queues {
            var err: Int32 = 0
            guard let ring = sl_uring_create(UInt32(spec.queueSize), &err) else {
                Self.free(made)
                throw BlkSetupError(description: "blk \(spec.name): io_uring for queue \(q): \(String(cString: strerror(-err)))"
                                    + (err == -EPERM || err == -ENOSYS ? " (io_uring disabled? see /proc/sys/kernel/io_uring_disabled)" : ""))
            }
            let rc = sl_uring_register_files(ring, spec.target.fd, spec.target.bufferedFD)
            guard rc == 0 else {
                sl_uring_destroy(ring)
                Self.free(made)
                throw BlkSetupError(description: "blk \(spec.name): io_uring cannot register the disk: \(String(cString: strerror(-rc)))")
            }
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
            p.initialize(to: BlkIO(ring: ring, slots: slots, slotCount: spec.queueSize, target: spec.target,
                                   counters: .discard, serial: serial, eventFD: efd,
                                   users: .allocate(capacity: BlkIO.reapBatch), results: .allocate(capacity: BlkIO.reapBatch)))
            made.append(p)
        }
        io = made
    }

    private static func free(_ list: [UnsafeMutablePointer<BlkIO>]) {
        for p in list {
            sl_uring_destroy(p.pointee.ring)
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
        if spec.target.readOnly {
            f |= VirtioBlk.Feature.ro
        } else {
            f |= VirtioBlk.Feature.discard | VirtioBlk.Feature.writeZeroes
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
        put(UInt64(BlkRequestParser.segMax), VirtioBlk.Config.segMax, 4)
        put(UInt64(t.blockSize), VirtioBlk.Config.blkSize, 4)
        // Topology: one logical block per physical block, I/O in whole blocks.
        put(0, VirtioBlk.Config.physicalBlockExp, 1)
        put(UInt64(t.blockSize / 512), VirtioBlk.Config.minIOSize, 2)
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
        for p in io {
            let ring = p.pointee.ring
            _ = sl_uring_unregister_eventfd(ring)
            if eventMode && p.pointee.eventFD >= 0 { _ = sl_uring_register_eventfd(ring, p.pointee.eventFD) }
        }
        guard !kernelCPUs.isEmpty else { return }
        let cpus = kernelCPUs.map { Int32($0) }
        for p in io { _ = cpus.withUnsafeBufferPointer { sl_uring_set_worker_cpus(p.pointee.ring, $0.baseAddress, UInt32($0.count)) } }
    }

    public func drainInFlight(queue: Int?) {
        let now = sl_rdtsc()
        for (i, p) in io.enumerated() where queue == nil || queue == i {
            guard i < queues.count, p.pointee.pending > 0 || p.pointee.prepared > 0 else { continue }
            BlkQueue(vq: queues[i], io: p).drain(now: now)
        }
    }
}

extension VhostUserDevice {
    /// A virtio-blk device on `spec.target`.
    public static func blk(_ spec: BlkDeviceSpec) throws(BlkSetupError) -> VhostUserDevice {
        let model = try VirtioBlkModel(spec: spec)
        let device = VhostUserDevice(model: model)
        model.queues = device.queues
        return device
    }

    public var blkModel: VirtioBlkModel? { model as? VirtioBlkModel }
}
