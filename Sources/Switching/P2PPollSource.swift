import Stats
import Memory
import Ports
import Platform

/// The guest→guest direction of a p2p link as a poll source.
extension P2PDirection: PollSource {
    @inlinable @inline(__always)
    public func poll(_ ctx: WorkerContext) -> Int { poll() }

    public func setNotifications(_ on: Bool) { src.setNotification(on) }

    public func hasPendingWork() -> Bool { src.isLive && src.availableCount() > 0 }

    public func settle() { settleNotifications() }

    /// Both kicks are on this worker's epoll: frames from the source, RX buffers from the
    /// destination (an undrained one would keep the worker from sleeping).
    public func drainWakeups() {
        let fd = src.state.pointee.kickFD
        if fd >= 0 { EventFD.drain(fd) }
        let dfd = dst.state.pointee.kickFD
        if dfd >= 0 { EventFD.drain(dfd) }
    }
}

/// One direction of a p2p link where either side is not a vhost-user port (tap,
/// af-packet): a receive burst into mempool buffers, then a transmit burst.
@frozen
public struct PortForwarder: PollSource, @unchecked Sendable {
    public let rx: PortRx
    public let tx: PortTx
    public let rxCounters: PortCounters
    public let txCounters: PortCounters

    public init(rx: PortRx, tx: PortTx, rxCounters: PortCounters, txCounters: PortCounters) {
        self.rx = rx; self.tx = tx; self.rxCounters = rxCounters; self.txCounters = txCounters
    }

    @inlinable
    public func poll(_ ctx: WorkerContext) -> Int {
        var batch = PacketBatch()
        let n = rx.receive(into: &batch, limit: PacketBatch.capacity, ctx, rxCounters)
        if n == 0 { rx.settle(); tx.settle(); return 0 }
        _ = tx.transmit(&batch, ctx, txCounters)
        return n
    }

    public func setNotifications(_ on: Bool) { rx.setNotifications(on) }
    public func hasPendingWork() -> Bool { rx.hasPendingWork() }
    public func drainWakeups() { rx.drainWakeups(); tx.drainWakeups() }
    public func settle() { rx.settle(); tx.settle() }
    public func release() {}
}
