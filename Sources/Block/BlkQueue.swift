#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Ports
import Stats
import Virtio

/// The I/O side of one blk virtqueue, whatever its backend: a request slot per possible
/// head, and what the worker counts. Allocated once
/// per queue by the export and kept for its whole life, like the virtqueue state; the
/// worker that polls the queue owns it, the control thread touches it only while that
/// worker is paused.
public struct BlkIO {
    public var slots: UnsafeMutablePointer<BlkSlot>
    public var slotCount: Int
    public var target: BlockTarget
    public var counters: BlkCounters
    /// Requests with the backend (submitted, not reaped).
    public var pending: Int = 0
    /// Requests prepared and not yet submitted.
    public var prepared: Int = 0
    /// The GET_ID answer: 20 bytes, zero-padded.
    public var serial: UnsafeMutablePointer<UInt8>
    /// Completions ready to reap signal this eventfd (event mode); -1 when none.
    public var eventFD: Int32
    /// Reap buffers.
    public var users: UnsafeMutablePointer<UInt64>
    public var results: UnsafeMutablePointer<Int32>
    /// Last value stored in the inflight gauge.
    public var gaugeShown: Int = 0
    /// Polls in a row that found requests with the kernel and none complete.
    public var stalledPolls: UInt32 = 0
    /// TSC ticks per microsecond (request latencies are timed with the TSC).
    public var ticksPerMicro: UInt64 = max(1, UInt64(Clock.cyclesPerSecond / 1e6))
}

extension BlkIO {
    public static let reapBatch = 32
    public static let yieldEvery: UInt32 = 256
}

/// A blk virtqueue as a worker's poll source: completions first, then new requests
/// (requests a previous back-end left in flight before anything new), one submission
/// for everything prepared, one used-ring publication and at most one interrupt.
@frozen
public struct BlkQueue<Backend: BlkBackend>: PollSource, @unchecked Sendable {
    public let vq: Virtqueue
    public let io: UnsafeMutablePointer<BlkIO>
    public let backend: Backend
    /// Requests taken per poll at most.
    public static var burst: Int { 32 }

    public init(vq: Virtqueue, io: UnsafeMutablePointer<BlkIO>, backend: Backend) {
        self.vq = vq; self.io = io; self.backend = backend
    }

    @inlinable
    public func poll(_ ctx: WorkerContext) -> Int {
        let s = vq.state
        guard s.pointee.addressed, s.pointee.memory != nil else { return 0 }
        var n = 0
        let pending = io.pointee.pending
        if pending > 0 { n &+= reap(now: sl_rdtsc()) }
        if s.pointee.isLive { n &+= take() }
        if io.pointee.prepared > 0 { submit() }
        if n == 0 && pending > 0 { waitingForKernel() }
        if n > 0 {
            if s.pointee.inflight == nil { vq.publishUsed() }
            vq.notifyLazily()
            let inFlight = io.pointee.pending &+ io.pointee.prepared
            if inFlight != io.pointee.gaugeShown {
                io.pointee.gaugeShown = inFlight
                io.pointee.counters.inflight.set(UInt64(inFlight))
            }
        }
        return n
    }

    /// Requests are with the kernel and none completed this turn. Some run in the
    /// kernel's worker threads, which may share this core (no other CPU is free for
    /// them): every `yieldEvery` such turns the worker lets them run.
    @inlinable
    func waitingForKernel() {
        io.pointee.stalledPolls &+= 1
        if io.pointee.stalledPolls >= BlkIO.yieldEvery {
            io.pointee.stalledPolls = 0
            sched_yield()
        }
    }

    /// Take up to `burst` requests: recovered ones, then the avail ring. A request the
    /// backend has no room for stays where it is (the ring, or the recovered list).
    @inlinable
    func take() -> Int {
        var n = 0
        let s = vq.state
        if s.pointee.resubmitNext < s.pointee.resubmitCount {
            let now = sl_rdtsc()
            while n < Self.burst, let head = vq.nextResubmit() {
                if !start(head: head, now: now, tracked: false) {
                    s.pointee.resubmitNext &-= 1
                    return n
                }
                n &+= 1
            }
        }
        let avail = vq.availableCount()
        if avail == 0 { return n }
        let now = sl_rdtsc()
        let count = min(avail, Self.burst &- n)
        var taken = 0
        while taken < count && start(head: vq.availHead(taken), now: now, tracked: true) { taken &+= 1 }
        if taken > 0 {
            vq.consume(taken)
            vq.suppressKicks()
        }
        return n &+ taken
    }

    /// One request: parse, then hand to the backend or answer at once. False: the
    /// backend has no room now (nothing was recorded; take it again later).
    @inlinable
    func start(head: UInt16, now: UInt64, tracked: Bool) -> Bool {
        let io = self.io
        guard Int(head) < io.pointee.slotCount, !io.pointee.slots[Int(head)].busy else {
            // A head out of range, or one still in flight offered again: a broken driver.
            io.pointee.counters.badChain.increment()
            return true
        }
        let slot = io.pointee.slots + Int(head)
        slot.pointee.start = now
        let target = io.pointee.target
        let parsed = BlkRequestParser.parse(vq, head: head, into: slot, target: target)
        if parsed == .ok && slot.pointee.type != VirtioBlk.RequestType.getID {
            let r = backend.prepare(slot, head: head, target: target)
            if r == .full { return false }
            if tracked { vq.inflightBegin(head) }
            if r == .queued {
                slot.pointee.busy = true
                io.pointee.prepared &+= 1
            } else {
                io.pointee.counters.ioerr.increment()
                finish(head: head, status: VirtioBlk.Status.ioErr, len: 1, now: now)
            }
            return true
        }
        if tracked { vq.inflightBegin(head) }
        switch parsed {
        case .ok:   // GET_ID
            let n = Int(slot.pointee.bytes)
            _ = scatterID(slot, n)
            io.pointee.counters.getID.increment()
            finish(head: head, status: VirtioBlk.Status.ok, len: UInt32(n) &+ 1, now: now)
        case .ioerr:
            io.pointee.counters.ioerr.increment()
            finish(head: head, status: VirtioBlk.Status.ioErr, len: 1, now: now)
        case .unsupp:
            io.pointee.counters.unsupp.increment()
            finish(head: head, status: VirtioBlk.Status.unsupp, len: 1, now: now)
        case .badChain:
            io.pointee.counters.badChain.increment()
            vq.completeTracked(id: head, len: 0)
        }
        return true
    }

    /// Copy the serial into the request's data buffers.
    @inlinable
    func scatterID(_ slot: UnsafeMutablePointer<BlkSlot>, _ n: Int) -> Int {
        var done = 0, k = 0
        let src = io.pointee.serial
        while done < n && k < Int(slot.pointee.iovCount) {
            let v = slot.pointee.iov[k]
            let m = min(n &- done, v.iov_len)
            v.iov_base!.copyMemory(from: src + done, byteCount: m)
            done &+= m; k &+= 1
        }
        return done
    }

    @inlinable
    func submit() {
        let n = backend.submit()
        io.pointee.pending &+= n
        io.pointee.prepared &-= n
    }

    /// Finish what the backend has completed (`now`: the TSC).
    @inlinable
    public func reap(now: UInt64) -> Int {
        let io = self.io
        let n = backend.reap(heads: io.pointee.users, results: io.pointee.results, max: BlkIO.reapBatch)
        if n > 0 { io.pointee.stalledPolls = 0 }
        io.pointee.pending &-= n
        for i in 0..<n {
            complete(user: io.pointee.users[i], result: io.pointee.results[i], now: now)
        }
        return n
    }

    /// One completion from the backend: counters, status, used entry.
    @inlinable
    public func complete(user: UInt64, result: Int32, now: UInt64) {
        let io = self.io
        let head = UInt16(truncatingIfNeeded: user)
        guard Int(head) < io.pointee.slotCount else { return }
        let slot = io.pointee.slots + Int(head)
        let c = io.pointee.counters
        if result < 0 && backend.retry(slot, head: head, result: result, target: io.pointee.target) {
            c.bufferedRetries.increment()
            io.pointee.prepared &+= 1
            return
        }
        slot.pointee.busy = false
        var ok = result >= 0
        var len: UInt32 = 1
        switch slot.pointee.type {
        case VirtioBlk.RequestType.input:
            ok = ok && UInt32(result) == slot.pointee.bytes
            if ok { c.reads.increment(); c.readBytes.add(UInt64(slot.pointee.bytes)); len = slot.pointee.bytes &+ 1 }
        case VirtioBlk.RequestType.output:
            ok = ok && UInt32(result) == slot.pointee.bytes
            if ok { c.writes.increment(); c.writeBytes.add(UInt64(slot.pointee.bytes)) }
        case VirtioBlk.RequestType.flush:
            if ok { c.flushes.increment() }
        case VirtioBlk.RequestType.discard:
            if ok { c.discards.increment() }
        default:
            if ok { c.writeZeroes.increment() }
        }
        if !ok { c.ioerr.increment() }
        finish(head: head, status: ok ? VirtioBlk.Status.ok : VirtioBlk.Status.ioErr, len: len, now: now)
    }

    @inlinable
    func finish(head: UInt16, status: UInt8, len: UInt32, now: UInt64) {
        let slot = io.pointee.slots + Int(head)
        slot.pointee.status?.pointee = status
        io.pointee.counters.latency.record(micros: (now &- slot.pointee.start) / io.pointee.ticksPerMicro)
        vq.completeTracked(id: head, len: len)
    }

    // MARK: PollSource

    public func setNotifications(_ on: Bool) { vq.setNotification(on) }

    public func hasPendingWork() -> Bool {
        let s = vq.state
        if s.pointee.isLive && (vq.availableCount() > 0 || s.pointee.resubmitNext < s.pointee.resubmitCount) { return true }
        return io.pointee.pending > 0 && backend.completionReady()
    }

    public func drainWakeups() {
        let kick = vq.state.pointee.kickFD
        if kick >= 0 { _ = EventFD.drain(kick) }
        if io.pointee.eventFD >= 0 { _ = EventFD.drain(io.pointee.eventFD) }
    }

    public func settle() {
        if vq.state.pointee.addressed { vq.notifyIfNeeded() }
    }

    /// The queue's memory belongs to the export, which outlives the poll entry.
    public func release() {}

    /// Control thread, worker paused: wait for every request with the backend and
    /// complete it (the guest's memory is still mapped), so nothing lands later.
    /// `now`: the TSC.
    public func drain(now: UInt64) {
        let io = self.io
        if io.pointee.prepared > 0 { submit() }
        var user: UInt64 = 0
        var result: Int32 = 0
        while io.pointee.pending > 0 {
            guard backend.waitOne(head: &user, result: &result) else { break }
            io.pointee.pending &-= 1
            complete(user: user, result: result, now: now)
        }
        let s = vq.state
        if s.pointee.addressed {
            if s.pointee.inflight == nil { vq.publishUsed() }
            vq.notifyIfNeeded()
        }
        io.pointee.counters.inflight.set(0)
        io.pointee.gaugeShown = 0
    }
}
