import Stats
import Memory
import Platform

/// The receive side of one port queue, as the worker that owns it sees it. One case
/// per port kind; the datapath switches once per burst, never per frame.
@frozen
public enum PortRx: BitwiseCopyable, @unchecked Sendable {
    case vhost(VhostRx)
    case tap(TapIO)
    case packet(PacketRingIO)
    /// A port that only listens (a monitor) or is not running: nothing to receive.
    case none

    /// Append up to `limit` received frames to `batch` (mempool buffers); returns the
    /// frames taken from the port, counting those it dropped.
    @inlinable
    public func receive(into batch: inout PacketBatch, limit: Int, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        switch self {
        case .vhost(let v): return v.receive(into: &batch, limit: limit, ctx, c)
        case .tap(let t): return HostBurst.receive(tap: t, into: &batch, limit: limit, ctx, c)
        case .packet(let r): return HostBurst.receive(ring: r, into: &batch, limit: limit, ctx, c)
        case .none: return 0
        }
    }

    /// Signal what earlier bursts left unsignalled (vhost: interrupts owed to the guest).
    @inlinable
    public func settle() {
        if case .vhost(let v) = self { v.settle() }
    }

    /// Event mode: guest kicks on (true) or off (false).
    public func setNotifications(_ on: Bool) {
        if case .vhost(let v) = self { v.queue.setNotification(on) }
    }

    /// Work waiting (after turning notifications on; host fds wake the worker by epoll).
    public func hasPendingWork() -> Bool {
        if case .vhost(let v) = self { return v.queue.isLive && v.queue.availableCount() > 0 }
        return false
    }

    /// Consume the wake-up that woke the worker (vhost: the kick eventfd).
    public func drainWakeups() {
        if case .vhost(let v) = self {
            let fd = v.queue.state.pointee.kickFD
            if fd >= 0 { EventFD.drain(fd) }
        }
    }
}

/// The transmit side of one port queue (owned by exactly one worker).
@frozen
public enum PortTx: BitwiseCopyable, @unchecked Sendable {
    case vhost(VhostTx)
    case tap(TapIO)
    case packet(PacketRingIO)
    case none

    /// Send every frame of `batch`, free the buffers, empty the batch. Returns the frames sent.
    @inlinable
    public func transmit(_ batch: inout PacketBatch, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        switch self {
        case .vhost(let v): return v.transmit(&batch, ctx, c)
        case .tap(let t): return HostBurst.transmit(tap: t, &batch, ctx, c)
        case .packet(let r): return HostBurst.transmit(ring: r, &batch, ctx, c)
        case .none:
            c.dropLinkDown.add(UInt64(batch.count))
            let n = batch.count
            batch.withIndices { ctx.cache.free($0, n) }
            batch.removeAll()
            return 0
        }
    }

    @inlinable
    public func settle() {
        if case .vhost(let v) = self { v.settle() }
    }

    /// The receiving guest need not kick us when it posts RX buffers while we poll.
    public func setNotifications(_ on: Bool) {}

    /// Consume the guest's kick for RX buffers it posted: the kick fd is on the writer's
    /// epoll (buffers arriving may unblock frames left waiting), and an undrained eventfd
    /// would keep an event-mode worker from ever sleeping.
    public func drainWakeups() {
        if case .vhost(let v) = self {
            let fd = v.queue.state.pointee.kickFD
            if fd >= 0 { EventFD.drain(fd) }
        }
    }
}
