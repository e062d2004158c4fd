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
/// SIGINT/SIGTERM and tears everything down.
public final class Dataplane {
    let config: SluiceConfig
    let options: RuntimeOptions
    let logger: Logger
    let stats: StatsWriter
    let mempool: Mempool
    private(set) var workers: [Worker] = []
    /// SIGINT/SIGTERM/SIGHUP, read by the control loop (owned: closed with the dataplane).
    private let signals: OwnedFD
    private var signalFD: Int32 { signals.raw }
    let controlEpoll: Epoll
    private var mempoolInUse: StatsCounter = .discard
    private var stopping = false
    var ports: [any DataplanePort] = []
    /// Which worker polls each (port id, queue index): kicks are registered with it.
    var queueOwner: [Int: [Int: Int]] = [:]
    /// What the element builders made (switches; p2p links keep nothing here).
    var elements: [any RunningElement] = []
    var nextWorker = 0

    static let signalToken: UInt64 = 1

    public init(config: SluiceConfig, options: RuntimeOptions, logger: Logger) throws(EngineError) {
        self.config = config
        self.options = options
        self.logger = logger
        Signals.ignorePipe()
        do {
            // Block the signals before any thread starts, so every thread inherits the mask
            // and only the control loop sees them (through the signalfd).
            signals = OwnedFD(adopting: try Signals.signalFD([SIGINT, SIGTERM, SIGHUP]))
            controlEpoll = try Epoll()
            try controlEpoll.add(signals.raw, token: Self.signalToken)
        } catch { throw EngineError("cannot set up the control loop: \(error)") }

        do {
            stats = try StatsWriter(instance: options.instance, slots: options.cores.count)
        } catch { throw EngineError("stats segment: \(error.message)") }

        do {
            mempool = try Mempool(name: "pkt", count: options.mempoolSize, caches: options.cores.count,
                                  policy: options.hugepages, numaNode: CPUInfo.numaNode(ofCPU: options.cores[0]))
        } catch {
            stats.remove()
            throw EngineError(error.message)
        }
        if let warning = mempool.memory.warning { logger.warning("\(warning)") }
        logger.info("mempool \(mempool.name): \(options.mempoolSize) buffers, \(mempool.memory.region.length >> 20) MiB in \(mempool.memory.region.isHuge ? "\(mempool.memory.pageSize >> 10) KiB huge pages" : "normal \(mempool.memory.pageSize >> 10) KiB pages (no huge pages)")")

        do {
            try registerCounters()
            for (n, cpu) in options.cores.enumerated() {
                let counters = WorkerCounters(
                    loops: try counter("worker.\(n).loops", slot: n),
                    busyCycles: try counter("worker.\(n).busy_cycles", slot: n),
                    idleCycles: try counter("worker.\(n).idle_cycles", slot: n),
                    busyPackets: try counter("worker.\(n).busy_packets", slot: n),
                    allocFail: try counter("mempool.\(mempool.name).alloc_fail", slot: n))
                workers.append(try Worker(id: n, cpu: cpu, policy: options.idlePolicy,
                                          counters: counters, mempool: mempool))
            }
            try buildPorts()
        } catch let e as EngineError {
            closePorts()
            stats.remove(); throw e
        } catch {
            closePorts()
            stats.remove(); throw EngineError("\(error)")
        }
    }

    func counter(_ name: String, kind: CounterKind = .counter, slot: Int) throws(EngineError) -> StatsCounter {
        do { return stats.counter(try stats.register(name, kind: kind), slot: slot) } catch {
            throw EngineError("stats: \(error.message)")
        }
    }

    private func registerCounters() throws(EngineError) {
        mempoolInUse = try counter("mempool.\(mempool.name).in_use", kind: .gauge, slot: stats.controlSlot)
        // alloc_fail is bumped by workers in their own slots.
        for n in 0..<options.cores.count {
            _ = try counter("mempool.\(mempool.name).alloc_fail", slot: n)
        }
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
                logger.info("signal \(sig): stopping")
                stopping = true
            }
            return
        }
        handlePortEvent(token: token, events: events)
    }

    /// Every ~100 ms: heartbeat and gauges.
    private func housekeeping() {
        stats.beat()
        mempoolInUse.set(UInt64(max(0, mempool.inUse)))
        portHousekeeping()
    }

    private func shutdown() {
        for w in workers { w.stop() }
        closePorts()
        stats.remove()
    }

}
