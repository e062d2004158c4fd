#if canImport(Glibc)
import Glibc
#endif
import Virtio

/// What a backend did with a request handed to it.
@frozen
public enum BlkPrepare: UInt8, Sendable {
    /// Queued; it reaches the device at the next `submit` and completes through `reap`.
    case queued
    /// No room now (command slots or queue entries all in use): the request stays on the
    /// avail ring and is taken again at a later poll.
    case full
    /// It cannot be done on this backend (an address the device cannot reach, a layout
    /// it cannot express, a setup failure): complete it with IOERR.
    case failed
}

/// Where a blk queue's requests go: the kernel through an io_uring (`UringBackend`), or
/// an NVMe queue pair driven from user space. A plain value of pointers, owned by the
/// queue's worker; `BlkQueue` is generic over it so every call is static.
///
/// A request is a parsed `BlkSlot` (IN, OUT, FLUSH, DISCARD or WRITE_ZEROES, already
/// checked against the export's range and read-only flag) tagged with its virtqueue head.
/// The backend owns the request from `prepare` until `reap` returns its head.
public protocol BlkBackend: BitwiseCopyable {
    /// Queue the I/O of `slot`, tagged `head`. Nothing need reach the device before `submit`.
    func prepare(_ slot: UnsafeMutablePointer<BlkSlot>, head: UInt16, target: BlockTarget) -> BlkPrepare
    /// Hand everything prepared to the device (one system call or doorbell write);
    /// returns how many requests went.
    func submit() -> Int
    /// Up to `max` finished requests: `heads[i]` is the head, `results[i]` the bytes moved
    /// (0 for requests without data) or a negative errno.
    func reap(heads: UnsafeMutablePointer<UInt64>, results: UnsafeMutablePointer<Int32>, max: Int) -> Int
    /// Whether a finished request is waiting to be reaped (no system call where possible).
    func completionReady() -> Bool
    /// Control thread, the worker paused: block until one submitted request finishes
    /// (false when none can, e.g. the device is gone).
    func waitOne(head: inout UInt64, result: inout Int32) -> Bool
    /// A request that failed with `result` may go again another way: true when it was
    /// prepared again (it completes through a later `reap`).
    func retry(_ slot: UnsafeMutablePointer<BlkSlot>, head: UInt16, result: Int32, target: BlockTarget) -> Bool
}

/// The control thread's handle on one queue's backend: how it waits in event mode,
/// drains, and closes. Not on the hot path.
public protocol BlkBackendControl: AnyObject {
    /// Event mode (completions signal the queue's eventfd) or polling; `kernelCPUs`: where
    /// kernel helper threads may run (empty: anywhere).
    func configure(eventMode: Bool, kernelCPUs: [Int])
    /// Worker paused: finish every request the backend holds for queue `vq`.
    func drain(vq: Virtqueue, io: UnsafeMutablePointer<BlkIO>, now: UInt64)
    /// Release what the backend holds (the export is closing).
    func close()
}
