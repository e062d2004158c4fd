import Foundation
import XCTest

@testable import Stats

final class StatsFormatTests: XCTestCase {
    private let sample = StatsSnapshot(
        entries: [
            (name: "worker.0.loops", kind: .counter, value: 100),
            (name: "worker.1.loops", kind: .counter, value: 200),
            (name: "port.vm1.rx_packets", kind: .counter, value: 7),
            (name: "port.vm1.drop.bad_desc", kind: .counter, value: 2),
            (name: "mempool.main.in_use", kind: .gauge, value: 64),
            (name: "odd-name!x", kind: .counter, value: 1),
        ],
        epoch: 12, pid: 4242, heartbeatAgeSeconds: 0.0421, isLive: true, instance: "test")

    func testTextIsNameValueInDirectoryOrder() {
        let lines = StatsFormat.text(sample).split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        }
        XCTAssertEqual(lines.map { $0[0] }, sample.entries.map(\.name))
        XCTAssertEqual(lines.map { $0[1] }, ["100", "200", "7", "2", "64", "1"])
    }

    func testRatesSinceThePreviousSample() {
        var later = sample
        later.entries[0].value = 150  // +50 in 0.5 s
        later.entries[1].value = 100  // went backwards: restart
        later.entries[4].value = 80  // gauge: no rate
        later.entries.append((name: "port.vm2.rx_packets", kind: .counter, value: 5))  // new
        let lines = StatsFormat.textWithRates(later, previous: sample, elapsedSeconds: 0.5)
            .split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let rates = Dictionary(uniqueKeysWithValues: lines.map { ($0[0], $0[2]) })
        XCTAssertEqual(rates["worker.0.loops"], "100.0/s")
        XCTAssertEqual(rates["worker.1.loops"], "-")
        XCTAssertEqual(rates["port.vm1.rx_packets"], "0.0/s")
        XCTAssertEqual(rates["mempool.main.in_use"], "-")
        XCTAssertEqual(rates["port.vm2.rx_packets"], "-")
        let first = StatsFormat.textWithRates(sample, previous: nil, elapsedSeconds: 0)
        XCTAssertTrue(first.split(separator: "\n").allSatisfy { $0.hasSuffix(" -") })
    }

    func testJSONParsesAndCarriesEveryField() throws {
        var stale = sample
        stale.isLive = false
        let text = StatsFormat.json(stale, instance: "te\"st")
        XCTAssertFalse(text.contains("\n"))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(object["instance"] as? String, "te\"st")
        XCTAssertEqual((object["pid"] as? NSNumber)?.intValue, 4242)
        XCTAssertEqual(object["live"] as? Bool, false)
        XCTAssertEqual((object["epoch"] as? NSNumber)?.intValue, 12)
        XCTAssertEqual((object["heartbeat_age_s"] as? NSNumber)?.doubleValue ?? -1, 0.042, accuracy: 1e-9)
        let counters = try XCTUnwrap(object["counters"] as? [String: NSNumber])
        XCTAssertEqual(counters.count, 6)
        XCTAssertEqual(counters["port.vm1.drop.bad_desc"]?.intValue, 2)
        XCTAssertEqual(StatsFormat.jsonNumber(3), "3")
        XCTAssertEqual(StatsFormat.jsonNumber(.infinity), "0")
    }

    func testJSONCarriesTheWatchTimestamp() throws {
        let text = StatsFormat.json(sample, instance: "test", time: "2025-03-14T09:26:53.589+01:00")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(object["time"] as? String, "2025-03-14T09:26:53.589+01:00")
        XCTAssertFalse(StatsFormat.json(sample, instance: "test").contains("\"time\""))
    }

    func testFilterKeepsOnlyThePrefix() {
        XCTAssertEqual(sample.filtered(prefix: "port.").entries.map(\.name), ["port.vm1.rx_packets", "port.vm1.drop.bad_desc"])
        XCTAssertEqual(sample.filtered(prefix: "").entries.count, 6)
    }

    func testInstanceFromPath() {
        XCTAssertEqual(StatsPath.instance(forPath: "/dev/shm/sluice-vm-host.stats"), "vm-host")
        XCTAssertNil(StatsPath.instance(forPath: "/tmp/other.stats"))
        XCTAssertEqual(StatsPath.path(forInstance: "a"), "/dev/shm/sluice-a.stats")
    }
}
