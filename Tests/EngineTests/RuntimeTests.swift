import XCTest
import Config
import Platform
import Stats
import Memory
import Ports
import Switching
@testable import Engine

final class RuntimeOptionsTests: XCTestCase {
    private func config(_ text: String) throws -> SluiceConfig {
        try SluiceConfig.parse(text: text, file: "t.ini")
    }

    func testCommandLineOverridesINI() throws {
        let c = try config("[dataplane]\ncores = 0x1\npoll = 50\ninstance = a\n")
        let o = try RuntimeOptions.resolve(config: c, cliCores: "1", cliPoll: 0, cliInstance: "b", online: [0, 1]).get()
        XCTAssertEqual(o.cores, [1])
        XCTAssertEqual(o.poll, 0)
        XCTAssertEqual(o.instance, "b")
        XCTAssertEqual(o.idlePolicy, .busyPoll)
    }

    func testINIValuesWhenNoOverrides() throws {
        let c = try config("[dataplane]\ncores = 0-1\npoll = 50\n")
        let o = try RuntimeOptions.resolve(config: c, cliCores: nil, cliPoll: nil, cliInstance: nil, online: [0, 1]).get()
        XCTAssertEqual(o.cores, [0, 1])
        XCTAssertEqual(o.idlePolicy, .interval(micros: 50))
        XCTAssertEqual(o.instance, "sluice")
    }

    func testOfflineCoreFromININamesTheLine() throws {
        let c = try config("[dataplane]\n\ncores = 0x30\n")
        switch RuntimeOptions.resolve(config: c, cliCores: nil, cliPoll: nil, cliInstance: nil, online: [0, 1]) {
        case .success: XCTFail("cores 4,5 are not online")
        case .failure(let e):
            XCTAssertTrue(e.message.hasPrefix("t.ini:3:"), e.message)
            XCTAssertTrue(e.message.contains("4,5 not online"), e.message)
        }
    }

    func testBadCommandLineCoresAreNamed() throws {
        let c = try config("")
        for bad in ["0x0", "x", "2-1", ""] {
            guard case .failure(let e) = RuntimeOptions.resolve(config: c, cliCores: bad, cliPoll: nil, cliInstance: nil, online: [0, 1]) else {
                return XCTFail("'\(bad)' accepted")
            }
            XCTAssertTrue(e.message.hasPrefix("--cores:"), e.message)
        }
    }

    func testDefaultCoreIsHighestOnline() throws {
        let o = try RuntimeOptions.resolve(config: try config(""), cliCores: nil, cliPoll: nil, cliInstance: nil, online: [0, 1, 3]).get()
        XCTAssertEqual(o.cores, [3])
        XCTAssertEqual(o.idlePolicy, .event, "no poll anywhere means event mode")
    }

    func testIdlePolicyFromPoll() {
        XCTAssertEqual(IdlePolicy(poll: nil), .event)
        XCTAssertEqual(IdlePolicy(poll: 0), .busyPoll)
        XCTAssertEqual(IdlePolicy(poll: 7), .interval(micros: 7))
        XCTAssertTrue(IdlePolicy.event.wantsNotifications)
        XCTAssertFalse(IdlePolicy.busyPoll.wantsNotifications)
    }
}

final class WorkerTests: XCTestCase {
    private func makeWorker(policy: IdlePolicy, stats: StatsWriter) throws -> Worker {
        func c(_ n: String) throws -> StatsCounter { stats.counter(try stats.register(n), slot: 0) }
        let counters = WorkerCounters(loops: try c("loops"), busyCycles: try c("busy"), idleCycles: try c("idle"), busyPackets: try c("pkts"), busyLoops: try c("busyloops"), allocFail: try c("allocfail"))
        let pool = try Mempool(name: "w", count: 64, caches: 1, policy: .off)
        return try Worker(id: 0, cpu: CPUInfo.onlineCPUs().min()!, policy: policy, counters: counters, mempool: pool)
    }

    private func statsPath() -> String { "/tmp/sluice-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).stats" }

    /// The pause handshake: while paused the worker's loop counter does not move; after
    /// resume it does. Run under every idle policy (event mode must wake from epoll).
    func testPauseStopsTheLoopAndResumeRestartsIt() throws {
        for policy in [IdlePolicy.busyPoll, .interval(micros: 100), .event] {
            let stats = try StatsWriter(path: statsPath(), slots: 1)
            defer { stats.remove() }
            let w = try makeWorker(policy: policy, stats: stats)
            try w.start()
            let loops = w.counters.loops
            let deadline = Clock.monotonicNanos() + 2_000_000_000
            while loops.value < 2 && Clock.monotonicNanos() < deadline { Clock.sleep(micros: 1000) }
            XCTAssertGreaterThanOrEqual(loops.value, 1, "\(policy): the worker runs")
            w.pause()
            let frozen = loops.value
            Clock.sleep(micros: 50_000)
            XCTAssertEqual(loops.value, frozen, "\(policy): a paused worker does not loop")
            w.resume()
            let t0 = Clock.monotonicNanos()
            w.stop()
            XCTAssertLessThan(Clock.monotonicNanos() - t0, 1_000_000_000, "\(policy): stop is prompt")
        }
    }

    func testBusyPollingAccountsIdleCycles() throws {
        let stats = try StatsWriter(path: statsPath(), slots: 1)
        defer { stats.remove() }
        let w = try makeWorker(policy: .busyPoll, stats: stats)
        try w.start()
        Clock.sleep(micros: 100_000)
        w.stop()
        XCTAssertGreaterThan(w.counters.loops.value, 100)
        XCTAssertGreaterThan(w.counters.idleCycles.value, 0)
        XCTAssertEqual(w.counters.busyPackets.value, 0, "an empty poll list moves nothing")
    }
}

final class PollListTests: XCTestCase {
    /// A reload takes one element's entries off a worker's list and keeps the others in order.
    func testRemoveByOwnerKeepsTheOthersInOrder() throws {
        let pool = try Mempool(name: "pl", count: 64, caches: 1, policy: .off)
        let ctx = WorkerContext(worker: 0, cache: pool.cache(0), now: 0, eventMode: false, allocFail: .discard)
        var list = PollList()
        defer { list.destroy(ctx) }
        let empty = PortForwarder(rx: .none, tx: .none, rxCounters: PortCounters.discard, txCounters: PortCounters.discard)
        for owner in [1, 2, 1, 3, 2] {
            XCTAssertTrue(list.append(.make(empty, PollEntry.forward), owner: owner, stats: QueueStats()))
        }
        XCTAssertEqual(list.remove(owner: 2, ctx), 2)
        XCTAssertEqual((0..<list.count).map { list.entries![$0].owner }, [1, 1, 3])
        XCTAssertEqual(list.remove(owner: 9, ctx), 0)
        XCTAssertEqual(list.remove(owner: 1, ctx), 2)
        XCTAssertEqual((0..<list.count).map { list.entries![$0].owner }, [3])
        XCTAssertEqual(list.poll(ctx, sampled: true), 0)
    }
}
