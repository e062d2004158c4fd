import CSluice
import Platform
import Stats
import Ports
import Switching
import Block
import NVMe

/// One item on a worker's poll list: a pointer to a poll source of a known kind,
/// so the list is plain values and every call is statically dispatched. A new kind
/// of work is a new `PollSource` type and one case here; `perform` is the only
/// place that switches on the kind.
enum PollEntry {
    case p2p(UnsafeMutablePointer<P2PDirection>)
    case forward(UnsafeMutablePointer<PortForwarder>)
    case switchQueue(UnsafeMutablePointer<SwitchPortQueue>)
    case router(UnsafeMutablePointer<RouterQueue>)
    case blk(UnsafeMutablePointer<BlkQueue<UringBackend>>)
    case nvmeBlk(UnsafeMutablePointer<BlkQueue<NVMeBlkBackend>>)

    /// Allocate a slot for `source` (control thread).
    static func make<S: PollSource>(_ source: S, _ wrap: (UnsafeMutablePointer<S>) -> PollEntry) -> PollEntry {
        let p = UnsafeMutablePointer<S>.allocate(capacity: 1)
        p.initialize(to: source)
        return wrap(p)
    }
}

/// What the worker asks of every entry.
enum PollOp {
    case poll, notificationsOn, notificationsOff, pendingWork, drainWakeups, settle, release
}

extension PollEntry {
    @inline(__always)
    func perform(_ op: PollOp, _ ctx: WorkerContext) -> Int {
        switch self {
        case .p2p(let s): return Self.run(s, op, ctx)
        case .forward(let s): return Self.run(s, op, ctx)
        case .switchQueue(let s): return Self.run(s, op, ctx)
        case .router(let s): return Self.run(s, op, ctx)
        case .blk(let s): return Self.run(s, op, ctx)
        case .nvmeBlk(let s): return Self.run(s, op, ctx)
        }
    }

    @inline(__always)
    static func run<S: PollSource>(_ s: UnsafeMutablePointer<S>, _ op: PollOp, _ ctx: WorkerContext) -> Int {
        switch op {
        case .poll: return s.pointee.poll(ctx)
        case .notificationsOn: s.pointee.setNotifications(true)
        case .notificationsOff: s.pointee.setNotifications(false)
        case .pendingWork: return s.pointee.hasPendingWork() ? 1 : 0
        case .drainWakeups: s.pointee.drainWakeups()
        case .settle: s.pointee.settle()
        case .release:
            s.pointee.release()
            s.deinitialize(count: 1)
            s.deallocate()
        }
        return 0
    }
}

/// What the worker counts for one entry (the receive queue it polls): packets, and
/// the busy cycles it spent there, sampled every `PollList.sampleEvery` turns.
struct QueueStats: BitwiseCopyable {
    var packets: StatsCounter = .discard
    var busyCycles: StatsCounter = .discard
}

/// One slot of a poll list: the entry, the element that owns it (so a reload can take
/// exactly that element's entries off), and its counters.
struct PollSlot {
    var entry: PollEntry
    var owner: Int
    var stats: QueueStats
}

/// The worker's poll list: inline-allocated entries, no Array on the hot path.
struct PollList {
    static let capacity = 256
    /// Per-entry cycles are read on one turn in this many (a clock read per entry per
    /// turn would cost a few percent of a busy loop).
    static let sampleEvery: UInt32 = 16
    private(set) var entries: UnsafeMutablePointer<PollSlot>?
    private(set) var count = 0

    /// Release every entry (control thread, worker stopped).
    mutating func destroy(_ ctx: WorkerContext) {
        if let e = entries {
            for i in 0..<count { _ = e[i].entry.perform(.release, ctx) }
            e.deinitialize(count: count); e.deallocate()
        }
        entries = nil
        count = 0
    }

    /// Control thread, worker paused or not started.
    mutating func append(_ entry: PollEntry, owner: Int, stats: QueueStats) -> Bool {
        if entries == nil { entries = .allocate(capacity: Self.capacity) }
        guard count < Self.capacity, let e = entries else { return false }
        (e + count).initialize(to: PollSlot(entry: entry, owner: owner, stats: stats))
        count += 1
        return true
    }

    /// Release and take off every entry of element `owner`, keeping the others in order
    /// (control thread, worker paused or stopped). Returns how many.
    @discardableResult
    mutating func remove(owner: Int, _ ctx: WorkerContext) -> Int {
        guard let e = entries else { return 0 }
        var kept = 0
        for i in 0..<count {
            if e[i].owner == owner {
                _ = e[i].entry.perform(.release, ctx)
                (e + i).deinitialize(count: 1)
            } else {
                if kept != i { (e + kept).moveInitialize(from: e + i, count: 1) }
                kept += 1
            }
        }
        let removed = count - kept
        count = kept
        return removed
    }

    /// Apply `op` to every entry; returns the sum of the results.
    @inline(__always)
    func all(_ op: PollOp, _ ctx: WorkerContext) -> Int {
        guard let e = entries else { return 0 }
        var sum = 0
        for i in 0..<count { sum &+= e[i].entry.perform(op, ctx) }
        return sum
    }

    /// Poll every entry once, counting each entry's packets; on sampled turns also the
    /// cycles each spent (scaled to stand for the turns not sampled).
    @inline(__always)
    func poll(_ ctx: WorkerContext, sampled: Bool) -> Int {
        guard let e = entries else { return 0 }
        var sum = 0
        // One call site of `perform`, so each poll source is inlined here as before.
        for i in 0..<count {
            let t0 = sampled ? sl_rdtsc() : 0
            let n = e[i].entry.perform(.poll, ctx)
            if n > 0 {
                e[i].stats.packets.add(UInt64(n))
                if sampled { e[i].stats.busyCycles.add((sl_rdtsc() &- t0) &* UInt64(Self.sampleEvery)) }
            }
            sum &+= n
        }
        return sum
    }
}
