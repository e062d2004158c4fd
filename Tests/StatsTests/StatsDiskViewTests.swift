import XCTest

@testable import Stats

final class StatsDiskViewTests: XCTestCase {
    private func snapshot(_ values: [(String, UInt64)]) -> StatsSnapshot {
        StatsSnapshot(entries: values.map { (name: $0.0, kind: $0.0.hasSuffix("inflight") || $0.0.hasSuffix("connected") ? .gauge : .counter, value: $0.1) })
    }

    func testDisksTotalsErrorsAndLatencyQuantiles() throws {
        let s = snapshot([
            ("blk.vda.reads", 90), ("blk.vda.writes", 10), ("blk.vda.read_bytes", 3_000_000), ("blk.vda.write_bytes", 1_000_000),
            ("blk.vda.errors.ioerr", 2), ("blk.vda.errors.unsupp", 1), ("blk.vda.drop.bad_chain", 1), ("blk.vda.inflight", 7),
            ("blk.vda.connected", 1),
            ("blk.vda.latency_us.lt_16", 50), ("blk.vda.latency_us.lt_32", 48), ("blk.vda.latency_us.ge_262144", 2),
            ("blk.b.reads", 0), ("port.vda.rx_packets", 5),
        ])
        let disks = StatsViews.disks(s)
        XCTAssertEqual(disks.map(\.name), ["b", "vda"])
        let d = disks[1]
        XCTAssertEqual([d.reads, d.writes, d.errors, d.inflight, d.connected], [90, 10, 4, 7, 1])
        XCTAssertEqual(d.latencyQuantile(0.5), 16)
        XCTAssertEqual(d.latencyQuantile(0.98), 32)
        XCTAssertEqual(d.latencyQuantile(0.99), .infinity)
        XCTAssertNil(disks[0].latencyQuantile(0.5))
        let table = StatsViews.disksTable(disks, seconds: nil)
        XCTAssertTrue(table.contains("vda     1     90      10        0      3.0         1.0       4         7      <16  >262144"), table)
    }

    func testDisksOverAnIntervalAreRates() {
        let before = snapshot([("blk.vda.reads", 100), ("blk.vda.read_bytes", 1_000_000), ("blk.vda.inflight", 3)])
        let after = snapshot([("blk.vda.reads", 300), ("blk.vda.read_bytes", 5_000_000), ("blk.vda.inflight", 4)])
        let d = StatsViews.disks(after, since: before)
        XCTAssertEqual(d.first?.reads, 200)
        XCTAssertEqual(d.first?.inflight, 4, "gauges are not subtracted")
        let table = StatsViews.disksTable(d, seconds: 2)
        XCTAssertTrue(table.contains("reads/s"), table)
        XCTAssertTrue(table.contains("100.0"), table)
        XCTAssertTrue(table.contains("2.0"), table)
    }
}
