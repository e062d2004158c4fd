#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Virtio

/// The file backend: one io_uring per blk queue, the disk registered as fixed file 0 (as
/// opened, O_DIRECT where the file system takes it) and 1 (buffered). SQEs point straight
/// at guest memory; one `io_uring_enter` per poll submits them.
@frozen
public struct UringBackend: BlkBackend, @unchecked Sendable {
    public let ring: OpaquePointer

    public init(ring: OpaquePointer) { self.ring = ring }

    @inlinable
    public func prepare(_ slot: UnsafeMutablePointer<BlkSlot>, head: UInt16, target: BlockTarget) -> BlkPrepare {
        let user = UInt64(head)
        let offset = target.offsetBytes &+ slot.pointee.sector &<< 9
        let rc: Int32
        switch slot.pointee.type {
        case VirtioBlk.RequestType.input, VirtioBlk.RequestType.output:
            slot.pointee.buffered = false
            rc = transfer(slot, head: head, target: target, file: 0)
        case VirtioBlk.RequestType.flush:
            rc = sl_uring_prep_fsync(ring, user)
        default:   // DISCARD, WRITE_ZEROES
            // bytes holds the range's sectors; PUNCH_HOLE reads back as zeros on files and
            // block devices (there it is a zero-out with unmap), ZERO_RANGE keeps the blocks.
            let unmap = slot.pointee.type == VirtioBlk.RequestType.discard || slot.pointee.iovCount < 0 || !target.isBlockDevice
            rc = sl_uring_prep_fallocate(ring, unmap ? sl_falloc_punch_hole() : sl_falloc_zero_range(),
                                         offset, UInt64(slot.pointee.bytes) &<< 9, user)
        }
        return rc == 0 ? .queued : .failed
    }

    /// A read or write of `slot` on fixed file `file` (0: the disk as opened, 1: buffered).
    @inlinable
    func transfer(_ slot: UnsafeMutablePointer<BlkSlot>, head: UInt16, target: BlockTarget, file: Int32) -> Int32 {
        let offset = target.offsetBytes &+ slot.pointee.sector &<< 9
        let n = UInt32(slot.pointee.iovCount)
        return slot.pointee.type == VirtioBlk.RequestType.input
            ? sl_uring_prep_readv(ring, file, slot.pointee.iov, n, offset, UInt64(head))
            : sl_uring_prep_writev(ring, file, slot.pointee.iov, n, offset, UInt64(head))
    }

    @inlinable
    public func submit() -> Int {
        // rc < 0 (EAGAIN, EBUSY): the SQEs stay queued; the next poll submits them.
        max(0, Int(sl_uring_submit(ring)))
    }

    @inlinable
    public func reap(heads: UnsafeMutablePointer<UInt64>, results: UnsafeMutablePointer<Int32>, max: Int) -> Int {
        Int(sl_uring_reap(ring, heads, results, UInt32(max)))
    }

    @inlinable
    public func completionReady() -> Bool { sl_uring_ready(ring) > 0 }

    public func waitOne(head: inout UInt64, result: inout Int32) -> Bool {
        sl_uring_wait(ring, &head, &result) == 0
    }

    /// O_DIRECT refuses buffers or lengths that are not aligned to the device's sectors:
    /// the same request goes once more through the page cache.
    @inlinable
    public func retry(_ slot: UnsafeMutablePointer<BlkSlot>, head: UInt16, result: Int32, target: BlockTarget) -> Bool {
        guard result == -EINVAL, !slot.pointee.buffered, target.bufferedFD != target.fd,
              slot.pointee.type == VirtioBlk.RequestType.input || slot.pointee.type == VirtioBlk.RequestType.output
        else { return false }
        slot.pointee.buffered = true
        return transfer(slot, head: head, target: target, file: 1) == 0
    }
}

/// The control side of a queue's io_uring: created with the export, registered files,
/// eventfd in event mode, io-wq CPU affinity.
public final class UringBackendControl: BlkBackendControl {
    public let backend: UringBackend
    private var closed = false

    /// An io_uring of `entries` entries with `target`'s descriptors as fixed files.
    public init(entries: Int, target: BlockTarget, name: String, queue: Int) throws(BlkSetupError) {
        var err: Int32 = 0
        guard let ring = sl_uring_create(UInt32(entries), &err) else {
            throw BlkSetupError(description: "blk \(name): io_uring for queue \(queue): \(String(cString: strerror(-err)))"
                                + (err == -EPERM || err == -ENOSYS ? " (io_uring disabled? see /proc/sys/kernel/io_uring_disabled)" : ""))
        }
        let rc = sl_uring_register_files(ring, target.fd, target.bufferedFD)
        guard rc == 0 else {
            sl_uring_destroy(ring)
            throw BlkSetupError(description: "blk \(name): io_uring cannot register the disk: \(String(cString: strerror(-rc)))")
        }
        backend = UringBackend(ring: ring)
    }

    /// Set by the model: the queue's eventfd (completions signal it in event mode).
    public var eventFD: Int32 = -1

    public func configure(eventMode: Bool, kernelCPUs: [Int]) {
        let ring = backend.ring
        _ = sl_uring_unregister_eventfd(ring)
        if eventMode && eventFD >= 0 { _ = sl_uring_register_eventfd(ring, eventFD) }
        guard !kernelCPUs.isEmpty else { return }
        let cpus = kernelCPUs.map { Int32($0) }
        _ = cpus.withUnsafeBufferPointer { sl_uring_set_worker_cpus(ring, $0.baseAddress, UInt32($0.count)) }
    }

    public func drain(vq: Virtqueue, io: UnsafeMutablePointer<BlkIO>, now: UInt64) {
        BlkQueue(vq: vq, io: io, backend: backend).drain(now: now)
    }

    public func close() {
        guard !closed else { return }
        closed = true
        sl_uring_destroy(backend.ring)
    }

    deinit { close() }
}
