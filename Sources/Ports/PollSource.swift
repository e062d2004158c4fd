/// Something a worker polls: a p2p direction, a switch port queue, later a router
/// port, a blk queue or an NVMe completion queue. Every kind is a plain value
/// (pointers into memory its builder owns), so the worker's poll list holds it by
/// value and calls it with static dispatch.
///
/// Threading: `poll`, `setNotifications`, `hasPendingWork` and `drainWakeups` run on
/// the owning worker only; `release` runs on the control thread once the source is
/// off every poll list.
public protocol PollSource: BitwiseCopyable {
    /// Do up to one burst of work. Returns the units moved (frames, requests); 0
    /// when there was nothing to do (the worker then applies its idle policy).
    func poll(_ ctx: WorkerContext) -> Int
    /// Event mode: ask the peers to signal (true) or not (false) when work arrives.
    func setNotifications(_ on: Bool)
    /// After notifications were turned on: is there work that arrived before?
    func hasPendingWork() -> Bool
    /// Consume the wake-ups (kick eventfds, ring eventfds) that woke the worker.
    func drainWakeups()
    /// Signal (with a barrier) whatever earlier bursts left unsignalled. The worker calls
    /// it before it parks for the control thread, so no guest waits out a pause for an
    /// interrupt it is owed (and then meets a full ring when the worker resumes).
    func settle()
    /// Free what the source owns (control thread; the source is off every list).
    func release()
}
