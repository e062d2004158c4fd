import Block
import Virtio

/// The control thread's handle on one blk queue's NVMe queue pair (`BlkBackendControl`).
public final class NVMeBackendControl: BlkBackendControl {
    public let pair: NVMeQueuePair
    public let backend: NVMeBlkBackend
    /// How `drain` finishes a request (head, result as `reap` gives them, TSC now) — the
    /// blk queue's completion: status byte, counters, used entry. Set by the owner before
    /// the first drain; requests drained without it are answered to nobody.
    public var completion: ((_ vq: Virtqueue, _ io: UnsafeMutablePointer<BlkIO>, _ head: UInt64, _ result: Int32,
                             _ now: UInt64) -> Void)?
    /// The error of the last `close` (a queue deletion the controller refused).
    public private(set) var closeError: NVMeError?

    public init(pair: NVMeQueuePair, backend: NVMeBlkBackend) {
        self.pair = pair
        self.backend = backend
    }

    /// Nothing to do: interrupts are chosen when the pair is created (its CQ's vector),
    /// and no kernel threads serve an NVMe queue.
    public func configure(eventMode: Bool, kernelCPUs: [Int]) {}

    /// Worker paused: submit what is prepared, then wait for every request the pair
    /// owes (each is answered by its completion, or by the timeout scan at the latest)
    /// and complete it, as `BlkQueue.drain` does for io_uring.
    public func drain(vq: Virtqueue, io: UnsafeMutablePointer<BlkIO>, now: UInt64) {
        _ = backend.submit()
        var head: UInt64 = 0
        var result: Int32 = 0
        while backend.waitOne(head: &head, result: &result) {
            completion?(vq, io, head, result, now)
        }
        let s = vq.state
        if s.pointee.addressed {
            if s.pointee.inflight == nil { vq.publishUsed() }
            vq.notifyIfNeeded()
        }
        io.pointee.counters.inflight.set(0)
        io.pointee.gaugeShown = 0
    }

    /// Delete the queue pair (the export is closing; no worker polls it any more).
    public func close() {
        do throws(NVMeError) {
            try pair.delete()
            closeError = nil
        } catch {
            closeError = error
        }
    }
}
