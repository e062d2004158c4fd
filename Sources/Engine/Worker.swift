import CSluice
import Platform
import Ports
import Stats
import Memory

/// Per-worker counters, written only by that worker.
struct WorkerCounters: BitwiseCopyable {
    var loops: StatsCounter
    var busyCycles: StatsCounter
    var idleCycles: StatsCounter
    var busyPackets: StatsCounter
    /// Loop turns that moved at least one packet.
    var busyLoops: StatsCounter
    var allocFail: StatsCounter
}

/// A pinned polling thread. It owns its poll list: the control thread changes the
/// list (or anything a listed entry points at) only between `pause()` and `resume()`.
public final class Worker: @unchecked Sendable {
    public let id: Int
    public let cpu: Int
    public let policy: IdlePolicy
    let control = WorkerControl.create()
    let counters: WorkerCounters
    /// Wakes the worker from an event-mode sleep (control messages, shutdown).
    private let wake: OwnedFD
    var wakeFD: Int32 { wake.raw }
    /// Event mode: the wake fd plus the kick eventfds of the queues this worker polls.
    let epoll: Epoll
    /// Owned by the worker thread; see the type comment.
    var pollList = PollList()
    let mempoolCache: MempoolCache
    /// Keeps the pool (and so `mempoolCache`'s memory) alive as long as the worker.
    private let mempool: Mempool
    private var thread: OSThread?
    /// Set when pinning failed (reported by the control thread after start).
    nonisolated(unsafe) private(set) var pinError: SystemError?

    init(id: Int, cpu: Int, policy: IdlePolicy, counters: WorkerCounters, mempool: Mempool) throws(SystemError) {
        self.id = id
        self.cpu = cpu
        self.policy = policy
        self.counters = counters
        self.mempool = mempool
        self.mempoolCache = mempool.cache(id)
        wake = OwnedFD(adopting: try EventFD.create())
        epoll = try Epoll()
        try epoll.add(wakeFD, token: UInt64.max)
    }

    deinit {
        control.destroy()
        pollList.destroy(context(now: 0))
    }

    func context(now: UInt64) -> WorkerContext {
        WorkerContext(worker: id, cache: mempoolCache, now: now, eventMode: policy == .event, allocFail: counters.allocFail)
    }

    func start() throws(SystemError) {
        thread = try OSThread(name: "sluice-w\(id)") { [self] in
            do throws(SystemError) { try OSThread.pinCurrent(to: cpu) } catch { pinError = error }
            run()
        }
    }

    /// Stop the loop and wait for the thread to end.
    func stop() {
        control.requestStop()
        EventFD.signal(wakeFD)
        thread?.join()
        thread = nil
        mempoolCache.flush()
    }

    /// Control thread: stop the worker at a loop boundary. Returns once it is parked.
    func pause() {
        guard thread != nil else { return }
        control.pause { EventFD.signal(wakeFD) }
    }

    func resume() {
        guard thread != nil else { return }
        control.resume()
    }

    // MARK: - The loop (worker thread only)

    private func run() {
        var notificationsOn = false
        var ctx = context(now: Clock.monotonicNanos())
        // The clock is read every 64 turns and after every sleep: poll sources need it
        // to about a millisecond (MAC ages in seconds, flood-limit refills), and a busy
        // p2p loop should not pay a clock read per burst.
        var turn: UInt32 = 0
        while true {
            if control.pauseRequested {
                if control.stopRequested { break }
                _ = pollList.all(.settle, ctx)
                control.parkUntilReleased()
                continue
            }
            if control.stopRequested { break }
            let t0 = sl_rdtsc()
            turn &+= 1
            if turn & 63 == 0 { ctx.now = Clock.monotonicNanos() }
            let work = pollList.poll(ctx, sampled: turn % PollList.sampleEvery == 0)
            let t1 = sl_rdtsc()
            counters.loops.increment()
            if work > 0 {
                counters.busyLoops.increment()
                counters.busyCycles.add(t1 &- t0)
                counters.busyPackets.add(UInt64(work))
                if notificationsOn { _ = pollList.all(.notificationsOff, ctx); notificationsOn = false }
                continue
            }
            counters.idleCycles.add(t1 &- t0)
            switch policy {
            case .busyPoll:
                sl_pause()
            case .interval(let micros):
                // Nothing is left unsignalled: a poll that moves nothing settles its queues.
                Clock.sleep(micros: micros)
                ctx.now = Clock.monotonicNanos()
                counters.idleCycles.add(sl_rdtsc() &- t1)
            case .event:
                // Ask the guests to kick us, then look once more: a buffer that arrived
                // before notifications were on would otherwise never be seen.
                if !notificationsOn { _ = pollList.all(.notificationsOn, ctx); notificationsOn = true }
                if pollList.all(.pendingWork, ctx) > 0 { continue }
                _ = epoll.waitAny(timeoutMillis: 200)
                ctx.now = Clock.monotonicNanos()
                EventFD.drain(wakeFD)
                _ = pollList.all(.drainWakeups, ctx)
                counters.idleCycles.add(sl_rdtsc() &- t1)
            }
        }
        // Stopped (shutdown, or a reload that replaces the workers): owe no guest a signal.
        _ = pollList.all(.settle, ctx)
    }
}
