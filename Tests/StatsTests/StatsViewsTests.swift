import XCTest

@testable import Stats

final class StatsViewsTests: XCTestCase {
    private func snapshot(_ values: [(String, UInt64)], gauges: Set<String> = []) -> StatsSnapshot {
        StatsSnapshot(entries: values.map { (name: $0.0, kind: gauges.contains($0.0) ? .gauge : .counter, value: $0.1) })
    }

    private let gauges: Set<String> = ["worker.0.cpu", "worker.1.cpu", "rxq.vm.1.0.worker", "rxq.vm2.0.worker", "rxq.vm2.1.worker"]

    private var start: StatsSnapshot {
        snapshot([
            ("worker.0.cpu", 2), ("worker.0.loops", 1000), ("worker.0.busy_loops", 100),
            ("worker.0.busy_cycles", 3_000), ("worker.0.idle_cycles", 9_000), ("worker.0.busy_packets", 400),
            ("worker.1.cpu", 3), ("worker.1.loops", 50), ("worker.1.busy_loops", 0),
            ("worker.1.busy_cycles", 0), ("worker.1.idle_cycles", 0), ("worker.1.busy_packets", 0),
            ("rxq.vm.1.0.worker", 0), ("rxq.vm.1.0.busy_cycles", 1_500), ("rxq.vm.1.0.packets", 300),
            ("rxq.vm2.0.worker", 0), ("rxq.vm2.0.busy_cycles", 1_200), ("rxq.vm2.0.packets", 100),
            ("rxq.vm2.1.worker", 1), ("rxq.vm2.1.busy_cycles", 0), ("rxq.vm2.1.packets", 0),
            ("port.vm.1.rx_packets", 300),
        ], gauges: gauges)
    }

    func testWorkersSinceStart() throws {
        let workers = StatsViews.workers(start)
        XCTAssertEqual(workers.map(\.worker), [0, 1])
        let w0 = workers[0]
        XCTAssertEqual(w0.cpu, 2)
        XCTAssertEqual(try XCTUnwrap(w0.busyPercent), 25, accuracy: 1e-9)  // 3000 / 12000
        XCTAssertEqual(try XCTUnwrap(w0.cyclesPerPacket), 7.5, accuracy: 1e-9)  // 3000 / 400
        XCTAssertEqual(try XCTUnwrap(w0.packetsPerBusyLoop), 4, accuracy: 1e-9)  // 400 / 100
        // An idle worker: no ratio is invented.
        XCTAssertNil(workers[1].busyPercent)
        XCTAssertNil(workers[1].cyclesPerPacket)
        XCTAssertNil(workers[1].packetsPerBusyLoop)
    }

    func testWorkersOverAnInterval() throws {
        var later = start
        func set(_ name: String, _ value: UInt64) {
            let index = later.entries.firstIndex { $0.name == name }!
            later.entries[index].value = value
        }
        set("worker.0.busy_cycles", 3_000 + 6_000)
        set("worker.0.idle_cycles", 9_000 + 2_000)
        set("worker.0.busy_packets", 400 + 600)
        set("worker.0.busy_loops", 100 + 20)
        set("worker.0.loops", 1000 + 40)
        set("worker.0.cpu", 5)  // a gauge: the current value, never a difference
        let w0 = StatsViews.workers(later, since: start)[0]
        XCTAssertEqual(w0.cpu, 5)
        XCTAssertEqual(w0.loops, 40)
        XCTAssertEqual(w0.packets, 600)
        XCTAssertEqual(try XCTUnwrap(w0.busyPercent), 75, accuracy: 1e-9)  // 6000 / 8000
        XCTAssertEqual(try XCTUnwrap(w0.cyclesPerPacket), 10, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(w0.packetsPerBusyLoop), 30, accuracy: 1e-9)

        // Counters that went backwards (a restart) count from zero.
        set("worker.0.busy_packets", 7)
        XCTAssertEqual(StatsViews.workers(later, since: start)[0].packets, 7)
    }

    func testWorkersWithoutBusyLoopsOrCore() {
        let old = snapshot([("worker.0.loops", 10), ("worker.0.busy_cycles", 5), ("worker.0.idle_cycles", 5),
                            ("worker.0.busy_packets", 2), ("worker.0.mystery", 1), ("worker.x.loops", 3)])
        let workers = StatsViews.workers(old)
        XCTAssertEqual(workers.count, 1)
        XCTAssertNil(workers[0].cpu)
        XCTAssertNil(workers[0].busyLoops)
        XCTAssertNil(workers[0].packetsPerBusyLoop)
        let table = StatsViews.workersTable(workers)
        XCTAssertEqual(table.split(separator: "\n").count, 2)
        XCTAssertTrue(table.split(separator: "\n")[1].hasSuffix("-"))
    }

    func testQueuesOwnerShareAndOrder() throws {
        let queues = StatsViews.queues(start)
        XCTAssertEqual(queues.map { "\($0.port)/\($0.queue)" }, ["vm.1/0", "vm2/0", "vm2/1"])
        XCTAssertEqual(queues.map(\.worker), [0, 0, 1])
        XCTAssertEqual(queues.map(\.cpu), [2, 2, 3])
        XCTAssertEqual(try XCTUnwrap(queues[0].sharePercent), 50, accuracy: 1e-9)  // 1500 of 3000
        XCTAssertEqual(try XCTUnwrap(queues[1].sharePercent), 40, accuracy: 1e-9)  // 1200 of 3000
        XCTAssertNil(queues[2].sharePercent)  // its worker had no busy cycles
        XCTAssertEqual(queues.map(\.packets), [300, 100, 0])
    }

    func testQueuesOverAnInterval() throws {
        var later = start
        func add(_ name: String, _ delta: UInt64) {
            let index = later.entries.firstIndex { $0.name == name }!
            later.entries[index].value += delta
        }
        add("worker.0.busy_cycles", 1_000)
        add("rxq.vm.1.0.busy_cycles", 900)
        add("rxq.vm.1.0.packets", 90)
        let queues = StatsViews.queues(later, since: start)
        XCTAssertEqual(try XCTUnwrap(queues[0].sharePercent), 90, accuracy: 1e-9)
        XCTAssertEqual(queues[0].packets, 90)
        XCTAssertEqual(try XCTUnwrap(queues[1].sharePercent), 0, accuracy: 1e-9)
    }

    func testQueueWithoutOwnerOrWithUnknownWorker() {
        let queues = StatsViews.queues(snapshot([
            ("rxq.a.0.packets", 5), ("rxq.b.1.worker", 7), ("rxq.b.1.busy_cycles", 3), ("rxq.c.x.packets", 1),
        ], gauges: ["rxq.b.1.worker"]))
        XCTAssertEqual(queues.map(\.port), ["b", "a"])  // owned queues first, unowned last
        XCTAssertEqual(queues[0].worker, 7)
        XCTAssertNil(queues[0].cpu)
        XCTAssertNil(queues[0].sharePercent)
        XCTAssertNil(queues[1].worker)
    }

    func testTables() {
        let workers = StatsViews.workersTable(StatsViews.workers(start))
        XCTAssertEqual(workers, """
            worker  core  busy%  packets  cycles/pkt  pkts/busy-loop  loops  busy-loops
                 0     2   25.0      400         7.5             4.0   1000         100
                 1     3      -        0           -               -     50           0

            """)
        let queues = StatsViews.queuesTable(StatsViews.queues(start))
        XCTAssertEqual(queues, """
            port  queue  worker  core  busy%  packets
            vm.1      0       0     2   50.0      300
            vm2       0       0     2   40.0      100
            vm2       1       1     3      -        0

            """)
        XCTAssertEqual(StatsViews.decimal(nil), "-")
        XCTAssertEqual(StatsViews.decimal(99.96), "100.0")
    }
}
