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

    func testPrometheusNameMapping() {
        func render(_ name: String) -> String {
            let series = StatsFormat.prometheusSeries(for: name)
            let labels = series.labels.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
            return labels.isEmpty ? series.family : "\(series.family){\(labels)}"
        }
        XCTAssertEqual(render("worker.3.busy_cycles"), "sluice_worker_busy_cycles{worker=3}")
        XCTAssertEqual(render("port.vm1.drop.bad_desc"), "sluice_port_drop_packets{port=vm1,reason=bad_desc}")
        XCTAssertEqual(render("port.vm1.tx_bytes"), "sluice_port_tx_bytes{port=vm1}")
        XCTAssertEqual(render("port.vm.1.rx_packets"), "sluice_port_rx_packets{port=vm.1}")
        XCTAssertEqual(render("mempool.main.alloc_fail"), "sluice_mempool_alloc_fail{mempool=main}")
        XCTAssertEqual(render("worker.loops"), "sluice_worker_loops")
        XCTAssertEqual(render("nvme.0000:01:00.0-q1"), "sluice_nvme_0000_01_00_0_q1")
    }

    func testPrometheusExpositionGroupsFamilies() {
        let text = StatsFormat.prometheus(sample)
        XCTAssertEqual(text, """
            # TYPE sluice_up gauge
            sluice_up 1
            # TYPE sluice_worker_loops counter
            sluice_worker_loops{worker="0"} 100
            sluice_worker_loops{worker="1"} 200
            # TYPE sluice_port_rx_packets counter
            sluice_port_rx_packets{port="vm1"} 7
            # TYPE sluice_port_drop_packets counter
            sluice_port_drop_packets{port="vm1",reason="bad_desc"} 2
            # TYPE sluice_mempool_in_use gauge
            sluice_mempool_in_use{mempool="main"} 64
            # TYPE sluice_odd_name_x counter
            sluice_odd_name_x 1

            """)
        XCTAssertEqual(StatsFormat.escapeLabelValue("a\"b\\c"), "a\\\"b\\\\c")
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
