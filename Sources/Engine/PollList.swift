import Platform
import Ports
import Switching

/// One item on a worker's poll list: a pointer to a poll source of a known kind,
/// so the list is plain values and every call is statically dispatched. A new kind
/// of work is a new `PollSource` type and one case here; `perform` is the only
/// place that switches on the kind.
enum PollEntry {
    case p2p(UnsafeMutablePointer<P2PDirection>)
    case forward(UnsafeMutablePointer<PortForwarder>)
    case switchQueue(UnsafeMutablePointer<SwitchPortQueue>)

    /// Allocate a slot for `source` (control thread).
    static func make<S: PollSource>(_ source: S, _ wrap: (UnsafeMutablePointer<S>) -> PollEntry) -> PollEntry {
        let p = UnsafeMutablePointer<S>.allocate(capacity: 1)
        p.initialize(to: source)
        return wrap(p)
    }
}

/// What the worker asks of every entry.
enum PollOp {
    case poll, notificationsOn, notificationsOff, pendingWork, drainWakeups, release
}

extension PollEntry {
    @inline(__always)
    func perform(_ op: PollOp, _ ctx: WorkerContext) -> Int {
        switch self {
        case .p2p(let s): return Self.run(s, op, ctx)
        case .forward(let s): return Self.run(s, op, ctx)
        case .switchQueue(let s): return Self.run(s, op, ctx)
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
        case .release:
            s.pointee.release()
            s.deinitialize(count: 1)
            s.deallocate()
        }
        return 0
    }
}

/// The worker's poll list: inline-allocated entries, no Array on the hot path.
struct PollList {
    static let capacity = 256
    private(set) var entries: UnsafeMutablePointer<PollEntry>?
    private(set) var count = 0

    /// Release every entry (control thread, worker stopped).
    mutating func destroy(_ ctx: WorkerContext) {
        if let e = entries {
            for i in 0..<count { _ = e[i].perform(.release, ctx) }
            e.deinitialize(count: count); e.deallocate()
        }
        entries = nil
        count = 0
    }

    /// Control thread, worker paused or not started.
    mutating func append(_ entry: PollEntry) -> Bool {
        if entries == nil { entries = .allocate(capacity: Self.capacity) }
        guard count < Self.capacity, let e = entries else { return false }
        (e + count).initialize(to: entry)
        count += 1
        return true
    }

    /// Apply `op` to every entry; returns the sum of the results.
    @inline(__always)
    func all(_ op: PollOp, _ ctx: WorkerContext) -> Int {
        guard let e = entries else { return 0 }
        var sum = 0
        for i in 0..<count { sum &+= e[i].perform(op, ctx) }
        return sum
    }
}
