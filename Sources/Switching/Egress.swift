import Memory
import Platform
import Ports
import Stats
import Virtio

/// Destination ports with frames staged in this poll (at most 64 remembered; a port
/// beyond that is flushed when its batch fills and at the end of the next poll).
@frozen
public struct DirtyPorts {
    @usableFromInline var ports = InlineArray<64, UInt16>(repeating: 0)
    @usableFromInline var count = 0
    @inlinable public init() {}
}

/// One worker's way out of a forwarding element (a switch or a router): per destination
/// port a route (its transmit side if this worker owns it, else the ring into its owner),
/// a staging batch, and the port's counters in this worker's slot. Frames are staged per
/// destination during a poll and each destination gets its frames in one burst.
@frozen
public struct Egress: BitwiseCopyable, @unchecked Sendable {
    public let routes: UnsafeMutablePointer<SwitchRoute>
    public let staged: UnsafeMutablePointer<PacketBatch>
    public let portCounters: UnsafeMutablePointer<PortCounters>

    @inlinable
    public init(routes: UnsafeMutablePointer<SwitchRoute>, staged: UnsafeMutablePointer<PacketBatch>,
                portCounters: UnsafeMutablePointer<PortCounters>) {
        self.routes = routes
        self.staged = staged
        self.portCounters = portCounters
    }

    /// Add `p` to what goes to port `d` (sending the batch first when it is full).
    @inlinable
    public func stage(_ p: Packet, to d: Int, _ ctx: WorkerContext, _ dirty: inout DirtyPorts) {
        let b = staged + d
        if b.pointee.count == 0 {
            if dirty.count < 64 { dirty.ports[dirty.count] = UInt16(d); dirty.count &+= 1 }
        } else if b.pointee.isFull {
            flush(d, ctx)
        }
        b.pointee.append(p)
    }

    /// Send every port staged in this poll what is staged for it.
    @inlinable
    public func flushAll(_ dirty: DirtyPorts, _ ctx: WorkerContext) {
        for k in 0..<dirty.count { flush(Int(dirty.ports[k]), ctx) }
    }

    /// Send port `d` what is staged for it.
    @inlinable
    public func flush(_ d: Int, _ ctx: WorkerContext) {
        let b = staged + d
        let n = b.pointee.count
        if n == 0 { return }
        let c = portCounters[d]
        switch routes[d] {
        case .local(let out, let fallback, let fd):
            if let ring = fallback, case .vhost(let v) = out, !v.queue.isLive {
                handOver(b, ring, fd, ctx, c)
            } else {
                _ = out.transmit(&b.pointee, ctx, c)
            }
        case .remote(let ring, let fd):
            handOver(b, ring, fd, ctx, c)
        case .down:
            b.pointee.withIndices { ctx.cache.free($0, n) }
            c.dropLinkDown.add(UInt64(n))
            b.pointee.removeAll()
        }
    }

    /// Queue the staged frames into the ring of the worker that owns the port's queue 0.
    @inlinable
    func handOver(_ b: UnsafeMutablePointer<PacketBatch>, _ ring: IndexRing, _ fd: Int32, _ ctx: WorkerContext, _ c: PortCounters) {
        let n = b.pointee.count
        let sent = b.pointee.withIndices { ring.enqueueBurst($0, n) }
        if sent < n {
            b.pointee.withIndices { ctx.cache.free($0 + sent, n &- sent) }
            c.dropNoBuffer.add(UInt64(n &- sent))
        }
        if sent > 0 && ctx.eventMode { EventFD.signal(fd) }
        b.pointee.removeAll()
    }
}

/// A poll source that serves one queue of one port of a forwarding element (a switch or
/// a router): it receives from the port, transmits to it, and (on queue 0) drains the ring
/// other workers and the control thread fill for the port. The notification, wake-up and
/// settle duties are the same for every such source.
public protocol PortQueueSource: PollSource {
    var rx: PortRx { get }
    var tx: PortTx { get }
    var inbound: IndexRing? { get }
}

extension PortQueueSource {
    public func setNotifications(_ on: Bool) { rx.setNotifications(on) }

    public func hasPendingWork() -> Bool {
        if let r = inbound, r.count > 0 { return true }
        return rx.hasPendingWork()
    }

    /// Both kicks of the port's queue pair are on this worker's epoll.
    public func drainWakeups() { rx.drainWakeups(); tx.drainWakeups() }

    public func settle() { rx.settle(); tx.settle() }

    /// Hand frames queued for the port (by other workers, or the control thread) to its
    /// transmit side. Returns how many.
    @inlinable
    public func drainInbound(_ ctx: WorkerContext, _ counters: PortCounters) -> Int {
        guard let ring = inbound, ring.count > 0 else { return 0 }
        var handed = PacketBatch()
        let n = handed.withIndices { ring.dequeueBurst($0, PacketBatch.capacity) }
        if n > 0 {
            handed.count = n
            _ = tx.transmit(&handed, ctx, counters)
        }
        return n
    }
}
