#if canImport(Glibc)
import Glibc
#endif
import Config
import Logging
import Memory
import Platform
import Stats

/// The running daemon: workers, packet memory, stats, and the control loop that
/// owns sockets and signals. Built from a validated config; `run()` blocks until
/// SIGINT/SIGTERM and tears everything down. SIGHUP re-reads the config file and
/// applies the difference (`Reload.swift`).
public final class Dataplane {
    /// The configuration running now (replaced by a successful reload).
    internal(set) var config: SluiceConfig
    internal(set) var options: RuntimeOptions
    let overrides: CommandLineOverrides
    let logger: Logger
    let stats: StatsWriter
    let mempool: Mempool
    /// Stats slots and mempool caches exist for this many workers (every online CPU),
    /// so a reload may add workers; the control thread's cache is the one after them.
    let workerCapacity: Int
    var controlCache: MempoolCache { mempool.cache(workerCapacity) }
    var workers: [Worker] = []
    /// SIGINT/SIGTERM/SIGHUP, read by the control loop (owned: closed with the dataplane).
    private let signals: OwnedFD
    private var signalFD: Int32 { signals.raw }
    let controlEpoll: Epoll
    private var mempoolInUse: StatsCounter = .discard
    private var stopping = false
    private var reloadRequested = false
    /// Ports in the order the config lists them; ids are never reused.
    var ports: [any DataplanePort] = []
    /// `[blk]` exports (their ids come from the port id space: tokens and queue owners).
    var blkExports: [BlkExport] = []
    /// NVMe controllers driven through VFIO (opened when a config first needs them).
    var nvmeDrives: [NVMeDrive] = []
    var nextPortID = 0
    /// Which worker polls each (port id, queue key): kicks are registered with it.
    var queueOwner: [Int: [Int: Int]] = [:]
    /// What the element builders made, with the spec each was built from.
    var elements: [ElementRecord] = []
    var nextElementID = 1
    /// The element being built: queue claims and poll entries are recorded under it.
    var building = 0
    /// The queues each element claimed, released when it stops.
    var claims: [Int: [QueueClaim]] = [:]
    /// `rxq.<port>.<q>.*` names registered per port, retired with the port.
    var rxqNames: [String: Set<String>] = [:]
    var nextWorker = 0
    private var quiesceDepth = 0

    static let signalToken: UInt64 = 1

    public init(config: SluiceConfig, options: RuntimeOptions, overrides: CommandLineOverrides,
                logger: Logger) throws(EngineError) {
        self.config = config
        self.options = options
        self.overrides = overrides
        self.logger = logger
        workerCapacity = max(options.cores.count, CPUInfo.onlineCPUs().count)
        Signals.ignorePipe()
        do {
            // Block the signals before any thread starts, so every thread inherits the mask
            // and only the control loop sees them (through the signalfd).
            signals = OwnedFD(adopting: try Signals.signalFD([SIGINT, SIGTERM, SIGHUP]))
            controlEpoll = try Epoll()
            try controlEpoll.add(signals.raw, token: Self.signalToken)
        } catch { throw EngineError("cannot set up the control loop: \(error)") }

        do {
            stats = try StatsWriter(instance: options.instance, slots: workerCapacity)
        } catch { throw EngineError("stats segment: \(error.message)") }

        do {
            mempool = try Mempool(name: "pkt", count: options.mempoolSize, caches: workerCapacity + 1,
                                  policy: options.hugepages, numaNode: CPUInfo.numaNode(ofCPU: options.cores[0]))
        } catch {
            stats.remove()
            throw EngineError(error.message)
        }
        if let warning = mempool.memory.warning { logger.warning("\(warning)") }
        logger.info("mempool \(mempool.name): \(options.mempoolSize) buffers, \(mempool.memory.region.length >> 20) MiB in \(mempool.memory.region.isHuge ? "\(mempool.memory.pageSize >> 10) KiB huge pages" : "normal \(mempool.memory.pageSize >> 10) KiB pages (no huge pages)")")

        do {
            mempoolInUse = try counter("mempool.\(mempool.name).in_use", kind: .gauge, slot: stats.controlSlot)
            try startWorkers(options)
            try apply(config, options: options, strict: true)
        } catch {
            shutdown()
            throw error
        }
    }

    func counter(_ name: String, kind: CounterKind = .counter, slot: Int) throws(EngineError) -> StatsCounter {
        do { return stats.counter(try stats.register(name, kind: kind), slot: slot) } catch {
            throw EngineError("stats: \(error.message)")
        }
    }

    /// Create (not start) one worker per core of `options`, each in its own stats slot.
    func startWorkers(_ options: RuntimeOptions) throws(EngineError) {
        for (n, cpu) in options.cores.enumerated() {
            do {
                let counters = WorkerCounters(
                    loops: try counter("worker.\(n).loops", slot: n),
                    busyCycles: try counter("worker.\(n).busy_cycles", slot: n),
                    idleCycles: try counter("worker.\(n).idle_cycles", slot: n),
                    busyPackets: try counter("worker.\(n).busy_packets", slot: n),
                    busyLoops: try counter("worker.\(n).busy_loops", slot: n),
                    allocFail: try counter("mempool.\(mempool.name).alloc_fail", slot: n))
                try counter("worker.\(n).cpu", kind: .gauge, slot: stats.controlSlot).set(UInt64(cpu))
                workers.append(try Worker(id: n, cpu: cpu, policy: options.idlePolicy,
                                          counters: counters, mempool: mempool))
            } catch let e as EngineError { throw e } catch {
                throw EngineError("worker \(n): \(error)")
            }
        }
        nextWorker = 0
    }

    /// Start the workers and serve until a stop signal. Returns the exit status.
    public func run() -> Int32 {
        for w in workers {
            do { try w.start() } catch {
                logger.error("worker \(w.id): \(error)")
                shutdown()
                return 1
            }
        }
        do { try SdNotify.ready(status: "\(workers.count) worker(s) on core(s) \(options.cores.map(String.init).joined(separator: ",")), \(ports.count) port(s)") } catch { logger.warning("sd_notify READY: \(error.reason)") }
        logger.info("sluice '\(options.instance)' running: \(workers.count) worker(s) on core(s) \(options.cores.map(String.init).joined(separator: ",")), \(options.idlePolicy); stats at \(stats.path)")
        var lastTick: UInt64 = 0
        var checkedPins = false
        while !stopping {
            controlEpoll.wait(timeoutMillis: 100) { token, events in
                self.handle(token: token, events: events)
            }
            if reloadRequested && !stopping {
                reloadRequested = false
                reload()
                checkedPins = false
            }
            let now = Clock.monotonicNanos()
            if now &- lastTick >= 100_000_000 {
                lastTick = now
                housekeeping()
                if !checkedPins {
                    checkedPins = true
                    for w in workers { if let e = w.pinError { logger.warning("worker \(w.id) not pinned: \(e)") } }
                }
            }
        }
        do { try SdNotify.stopping() } catch { logger.warning("sd_notify STOPPING: \(error.reason)") }
        shutdown()
        logger.info("sluice '\(options.instance)' stopped")
        return 0
    }

    private func handle(token: UInt64, events: UInt32) {
        if token == Self.signalToken {
            while let sig = Signals.read(signalFD) {
                if sig == SIGHUP {
                    logger.info("signal \(sig): reloading \(config.file)")
                    reloadRequested = true
                } else {
                    logger.info("signal \(sig): stopping")
                    stopping = true
                }
            }
            return
        }
        if let i = NVMeDrive.irqIndex(token) {
            if i < nvmeDrives.count { nvmeDrives[i].sharedInterrupt() }
            return
        }
        if let id = ElementToken.element(token) {
            elements.first { $0.id == id }?.running.handleWakeup()
            return
        }
        handlePortEvent(token: token, events: events)
    }

    /// Every ~100 ms: heartbeat and gauges.
    private func housekeeping() {
        stats.beat()
        mempoolInUse.set(UInt64(max(0, mempool.inUse)))
        portHousekeeping()
        resetFailedNVMeDrives()
        for d in nvmeDrives { d.publishCounters() }
    }

    private func shutdown() {
        for w in workers { w.stop() }
        for e in elements { stopElement(e) }
        elements.removeAll()
        for e in blkExports { e.close(epoll: controlEpoll) }
        blkExports.removeAll()
        closeNVMeDrives()
        for p in ports { p.close(epoll: controlEpoll) }
        ports.removeAll()
        workers.removeAll()
        stats.remove()
    }

    /// Pause every running worker, run `body`, resume them (control thread). Workers
    /// park at a loop boundary, so no burst is ever half done when `body` runs.
    /// Nested calls (a device reset during a reload) pause only once.
    func quiesce(_ body: () -> Void) {
        quiesceDepth += 1
        if quiesceDepth == 1 { for w in workers { w.pause() } }
        body()
        if quiesceDepth == 1 { for w in workers { w.resume() } }
        quiesceDepth -= 1
    }
}
