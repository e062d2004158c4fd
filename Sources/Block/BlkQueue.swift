#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Ports
import Stats
import Virtio

/// The I/O side of one blk virtqueue: its io_uring (the disk registered as fixed file
/// 0), a request slot per possible head, and what the worker counts. Allocated once
/// per queue by the export and kept for its whole life, like the virtqueue state; the
/// worker that polls the queue owns it, the control thread touches it only while that
/// worker is paused.
public struct BlkIO {
    public var ring: OpaquePointer
    public var slots: UnsafeMutablePointer<BlkSlot>
    public var slotCount: Int
    public var target: BlockTarget
    public var counters: BlkCounters
    /// Requests with the kernel (submitted, not reaped).
    public var pending: Int = 0
    /// SQEs prepared and not yet submitted.
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
public struct BlkQueue: PollSource, @unchecked Sendable {
    public let vq: Virtqueue
    public let io: UnsafeMutablePointer<BlkIO>
    /// Requests taken per poll at most.
    public static let burst = 32

    public init(vq: Virtqueue, io: UnsafeMutablePointer<BlkIO>) { self.vq = vq; self.io = io }

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

    /// Take up to `burst` requests: recovered ones, then the avail ring.
    @inlinable
    func take() -> Int {
        var n = 0
        let s = vq.state
        if s.pointee.resubmitNext < s.pointee.resubmitCount {
            let now = sl_rdtsc()
            while n < Self.burst, let head = vq.nextResubmit() {
                start(head: head, now: now, tracked: false)
                n &+= 1
            }
        }
        let avail = vq.availableCount()
        if avail == 0 { return n }
        let now = sl_rdtsc()
        let count = min(avail, Self.burst &- n)
        for i in 0..<count {
            start(head: vq.availHead(i), now: now, tracked: true)
        }
        vq.consume(count)
        vq.suppressKicks()
        return n &+ count
    }

    /// One request: parse, then hand to the kernel or answer at once.
    @inlinable
    func start(head: UInt16, now: UInt64, tracked: Bool) {
        let io = self.io
        guard Int(head) < io.pointee.slotCount, !io.pointee.slots[Int(head)].busy else {
            // A head out of range, or one still in flight offered again: a broken driver.
            io.pointee.counters.badChain.increment()
            return
        }
        if tracked { vq.inflightBegin(head) }
        let slot = io.pointee.slots + Int(head)
        slot.pointee.start = now
        let target = io.pointee.target
        switch BlkRequestParser.parse(vq, head: head, into: slot, target: target) {
        case .ok:
            break
        case .ioerr:
            io.pointee.counters.ioerr.increment()
            finish(head: head, status: VirtioBlk.Status.ioErr, len: 1, now: now)
            return
        case .unsupp:
            io.pointee.counters.unsupp.increment()
            finish(head: head, status: VirtioBlk.Status.unsupp, len: 1, now: now)
            return
        case .badChain:
            io.pointee.counters.badChain.increment()
            vq.completeTracked(id: head, len: 0)
            return
        }
        let ring = io.pointee.ring
        let user = UInt64(head)
        let offset = target.offsetBytes &+ slot.pointee.sector &<< 9
        var rc: Int32 = 0
        switch slot.pointee.type {
        case VirtioBlk.RequestType.input, VirtioBlk.RequestType.output:
            slot.pointee.buffered = false
            rc = prepareTransfer(slot, file: 0)
        case VirtioBlk.RequestType.flush:
            rc = sl_uring_prep_fsync(ring, user)
        case VirtioBlk.RequestType.discard, VirtioBlk.RequestType.writeZeroes:
            // bytes holds the range's sectors; PUNCH_HOLE reads back as zeros on files and
            // block devices (there it is a zero-out with unmap), ZERO_RANGE keeps the blocks.
            let unmap = slot.pointee.type == VirtioBlk.RequestType.discard || slot.pointee.iovCount < 0 || !target.isBlockDevice
            rc = sl_uring_prep_fallocate(ring, unmap ? sl_falloc_punch_hole() : sl_falloc_zero_range(),
                                         offset, UInt64(slot.pointee.bytes) &<< 9, user)
        default:   // GET_ID
            let n = Int(slot.pointee.bytes)
            _ = scatterID(slot, n)
            io.pointee.counters.getID.increment()
            finish(head: head, status: VirtioBlk.Status.ok, len: UInt32(n) &+ 1, now: now)
            return
        }
        if rc != 0 {
            io.pointee.counters.ioerr.increment()
            finish(head: head, status: VirtioBlk.Status.ioErr, len: 1, now: now)
            return
        }
        slot.pointee.busy = true
        io.pointee.prepared &+= 1
    }

    /// Queue a read or write of `slot` on fixed file `file` (0: the disk as opened, 1: buffered).
    @inlinable
    func prepareTransfer(_ slot: UnsafeMutablePointer<BlkSlot>, file: Int32) -> Int32 {
        let head = UInt64(slot - io.pointee.slots)
        let offset = io.pointee.target.offsetBytes &+ slot.pointee.sector &<< 9
        let n = UInt32(slot.pointee.iovCount)
        return slot.pointee.type == VirtioBlk.RequestType.input
            ? sl_uring_prep_readv(io.pointee.ring, file, slot.pointee.iov, n, offset, head)
            : sl_uring_prep_writev(io.pointee.ring, file, slot.pointee.iov, n, offset, head)
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
        let rc = sl_uring_submit(io.pointee.ring)
        if rc > 0 {
            io.pointee.pending &+= Int(rc)
            io.pointee.prepared &-= Int(rc)
        }
        // rc < 0 (EAGAIN, EBUSY): the SQEs stay queued; the next poll submits them.
    }

    /// Finish what the kernel has completed (`now`: the TSC).
    @inlinable
    public func reap(now: UInt64) -> Int {
        let io = self.io
        let n = Int(sl_uring_reap(io.pointee.ring, io.pointee.users, io.pointee.results, UInt32(BlkIO.reapBatch)))
        if n > 0 { io.pointee.stalledPolls = 0 }
        for i in 0..<n {
            complete(user: io.pointee.users[i], result: io.pointee.results[i], now: now)
        }
        io.pointee.pending &-= n
        return n
    }

    /// One completion from the kernel: counters, status, used entry.
    @inlinable
    public func complete(user: UInt64, result: Int32, now: UInt64) {
        let io = self.io
        let head = UInt16(truncatingIfNeeded: user)
        guard Int(head) < io.pointee.slotCount else { return }
        let slot = io.pointee.slots + Int(head)
        let c = io.pointee.counters
        // O_DIRECT refuses buffers or lengths that are not aligned to the device's sectors:
        // the same request goes once more through the page cache.
        if result == -EINVAL, !slot.pointee.buffered, io.pointee.target.bufferedFD != io.pointee.target.fd,
           slot.pointee.type == VirtioBlk.RequestType.input || slot.pointee.type == VirtioBlk.RequestType.output {
            slot.pointee.buffered = true
            if prepareTransfer(slot, file: 1) == 0 {
                c.bufferedRetries.increment()
                io.pointee.prepared &+= 1
                return
            }
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
        return io.pointee.pending > 0 && sl_uring_ready(io.pointee.ring) > 0
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

    /// Control thread, worker paused: wait for every request with the kernel and
    /// complete it (the guest's memory is still mapped), so nothing lands later.
    /// `now`: the TSC.
    public func drain(now: UInt64) {
        let io = self.io
        if io.pointee.prepared > 0 { submit() }
        var user: UInt64 = 0
        var result: Int32 = 0
        while io.pointee.pending > 0 {
            guard sl_uring_wait(io.pointee.ring, &user, &result) == 0 else { break }
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
