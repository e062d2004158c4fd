import XCTest

@testable import Engine
import Ports
@testable import Stats

final class StatsPrometheusTests: XCTestCase {
    /// `family{label=value,…}` without quotes, for compact expectations.
    private func render(_ name: String, _ kind: CounterKind = .counter) -> String {
        let series = StatsFormat.prometheusSeries(for: name, kind: kind)
        let labels = series.labels.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
        return labels.isEmpty ? series.family : "\(series.family){\(labels)}"
    }

    func testPortCountersAndDropReasons() {
        XCTAssertEqual(render("port.vm1.rx_packets"), "sluice_port_rx_packets_total{port=vm1}")
        XCTAssertEqual(render("port.vm1.tx_bytes"), "sluice_port_tx_bytes_total{port=vm1}")
        XCTAssertEqual(render("port.vm1.drop.no_rx_buffer"), "sluice_port_drops_total{port=vm1,reason=no_rx_buffer}")
        XCTAssertEqual(render("port.vm1.flood_packets"), "sluice_port_flood_packets_total{port=vm1}")
        XCTAssertEqual(render("port.vm1.connected", .gauge), "sluice_port_connected{port=vm1}")
        XCTAssertEqual(render("port.vm1.vhost.connects"), "sluice_port_vhost_connects_total{port=vm1}")
        XCTAssertEqual(render("port.vm1.vhost.bad_message"), "sluice_port_vhost_bad_messages_total{port=vm1}")
    }

    func testNVMeQueuePairAndControllerCounters() {
        XCTAssertEqual(render("nvme.SN1234.qp1.submissions"), "sluice_nvme_queue_submissions_total{controller=SN1234,qp=1}")
        XCTAssertEqual(render("nvme.SN1234.qp12.doorbells"), "sluice_nvme_queue_doorbells_total{controller=SN1234,qp=12}")
        XCTAssertEqual(render("nvme.SN1234.qp3.timeouts"), "sluice_nvme_queue_timeouts_total{controller=SN1234,qp=3}")
        XCTAssertEqual(render("nvme.SN1234.admin_commands"), "sluice_nvme_admin_commands_total{controller=SN1234}")
        XCTAssertEqual(render("nvme.SN1234.resets"), "sluice_nvme_resets_total{controller=SN1234}")
        // Not a queue pair: the name stays whole.
        XCTAssertEqual(render("nvme.SN1234.qpx.errors"), "sluice_unmapped_total{name=nvme.SN1234.qpx.errors}")
    }

    func testDottedPortNamesSplitAtTheKnownSuffix() {
        XCTAssertEqual(render("port.vm.1.rx_packets"), "sluice_port_rx_packets_total{port=vm.1}")
        XCTAssertEqual(render("port.a.b.c.drop.bad_desc"), "sluice_port_drops_total{port=a.b.c,reason=bad_desc}")
        // A port named like a counter: the longest known suffix wins, the rest is the port.
        XCTAssertEqual(render("port.drop.mtu.drop.mtu"), "sluice_port_drops_total{port=drop.mtu,reason=mtu}")
        XCTAssertEqual(render("port.rx_packets.rx_packets"), "sluice_port_rx_packets_total{port=rx_packets}")
        XCTAssertEqual(render("port.x.vhost.connects"), "sluice_port_vhost_connects_total{port=x}")
        XCTAssertEqual(render("port.x.vhost.refused_message"), "sluice_port_vhost_refused_messages_total{port=x}")
        XCTAssertEqual(render("port.vhost.vhost.bad_message"), "sluice_port_vhost_bad_messages_total{port=vhost}")
        XCTAssertEqual(render("rxq.vm.1.3.packets"), "sluice_rxq_packets_total{port=vm.1,queue=3}")
        XCTAssertEqual(render("switch.br.0.macs", .gauge), "sluice_switch_macs{switch=br.0}")
    }

    func testUnknownDropReasonsStillGetTheirReasonLabel() {
        XCTAssertEqual(render("port.vm1.drop.new_reason"), "sluice_port_drops_total{port=vm1,reason=new_reason}")
        XCTAssertEqual(render("port.a.drop.b.drop.later"), "sluice_port_drops_total{port=a.drop.b,reason=later}")
        // Not a reason (a dot or a character a reason never has): generic.
        XCTAssertEqual(render("port.vm1.drop.a-b"), "sluice_unmapped_total{name=port.vm1.drop.a-b}")
        XCTAssertEqual(render("port.drop.x"), "sluice_unmapped_total{name=port.drop.x}")
    }

    func testWorkersQueuesSwitchesMempools() {
        XCTAssertEqual(render("worker.0.busy_cycles"), "sluice_worker_busy_cycles_total{worker=0}")
        XCTAssertEqual(render("worker.12.busy_loops"), "sluice_worker_busy_loops_total{worker=12}")
        XCTAssertEqual(render("worker.3.cpu", .gauge), "sluice_worker_cpu{worker=3}")
        XCTAssertEqual(render("rxq.vm1.0.worker", .gauge), "sluice_rxq_worker{port=vm1,queue=0}")
        XCTAssertEqual(render("rxq.vm1.0.busy_cycles"), "sluice_rxq_busy_cycles_total{port=vm1,queue=0}")
        XCTAssertEqual(render("switch.br0.table_full"), "sluice_switch_table_full_total{switch=br0}")
        XCTAssertEqual(render("switch.br0.learned"), "sluice_switch_macs_learned_total{switch=br0}")
        XCTAssertEqual(render("mempool.pkt.in_use", .gauge), "sluice_mempool_in_use{mempool=pkt}")
        XCTAssertEqual(render("mempool.pkt.alloc_fail"), "sluice_mempool_alloc_failures_total{mempool=pkt}")
    }

    func testTheKindDecidesTheTypeAndTheTotalSuffix() {
        // A gauge where a counter is expected (or the reverse) keeps the segment's kind.
        let gauge = StatsFormat.prometheusSeries(for: "worker.0.loops", kind: .gauge)
        XCTAssertEqual(gauge.family, "sluice_worker_loops")
        XCTAssertEqual(gauge.kind, .gauge)
        let counter = StatsFormat.prometheusSeries(for: "mempool.pkt.in_use", kind: .counter)
        XCTAssertEqual(counter.family, "sluice_mempool_in_use_total")
    }

    func testUnknownNamesRenderGenerically() {
        XCTAssertEqual(render("worker.loops"), "sluice_unmapped_total{name=worker.loops}")
        XCTAssertEqual(render("worker.x.loops"), "sluice_unmapped_total{name=worker.x.loops}")
        XCTAssertEqual(render("worker.0.new_thing"), "sluice_unmapped_total{name=worker.0.new_thing}")
        XCTAssertEqual(render("rxq.vm1.x.packets"), "sluice_unmapped_total{name=rxq.vm1.x.packets}")
        XCTAssertEqual(render("rxq.0.packets"), "sluice_unmapped_total{name=rxq.0.packets}")
        XCTAssertEqual(render("port.vm1.something"), "sluice_unmapped_total{name=port.vm1.something}")
        XCTAssertEqual(render("port.rx_packets"), "sluice_unmapped_total{name=port.rx_packets}")
        XCTAssertEqual(render("nvme.0000:01:00.0-q1", .gauge), "sluice_unmapped{name=nvme.0000:01:00.0-q1}")
    }

    /// Every port counter the daemon registers (PortCounters.names and the vhost
    /// control counters) has a dedicated family, so a new name there fails here.
    func testEveryPortCounterTheDaemonRegistersIsMapped() {
        for name in PortCounters.names {
            let series = StatsFormat.prometheusSeries(for: "port.p.q.\(name)", kind: .counter)
            XCTAssertNotEqual(series.family, "sluice_unmapped_total", name)
            XCTAssertEqual(series.labels.first, .init(name: "port", value: "p.q"), name)
        }
        for (name, kind) in VhostUserPort.controlCounterNames {
            let series = StatsFormat.prometheusSeries(for: "port.p.q.\(name)", kind: kind)
            XCTAssertFalse(series.family.hasPrefix("sluice_unmapped"), name)
            XCTAssertEqual(series.labels, [.init(name: "port", value: "p.q")], name)
        }
    }

    func testExpositionGroupsFamiliesWithHelpAndType() {
        let snapshot = StatsSnapshot(
            entries: [
                (name: "worker.0.loops", kind: .counter, value: 100),
                (name: "port.vm1.drop.bad_desc", kind: .counter, value: 2),
                (name: "worker.1.loops", kind: .counter, value: 200),
                (name: "port.vm.2.drop.mtu", kind: .counter, value: 3),
                (name: "mempool.pkt.in_use", kind: .gauge, value: 64),
                (name: "odd-name!x", kind: .counter, value: 1),
            ],
            heartbeatAgeSeconds: 0.25, isLive: true, instance: "lab", startTimeNanoseconds: 1_700_000_000_500_000_000)
        XCTAssertEqual(StatsFormat.prometheus(snapshot), """
            # HELP sluice_up 1 while the sluice instance is running (fresh heartbeat, process exists), else 0.
            # TYPE sluice_up gauge
            sluice_up{instance="lab"} 1
            # HELP sluice_heartbeat_age_seconds Seconds since the daemon's last heartbeat.
            # TYPE sluice_heartbeat_age_seconds gauge
            sluice_heartbeat_age_seconds{instance="lab"} 0.25
            # HELP sluice_start_time_seconds When the daemon created its stats segment, in seconds since the Unix epoch.
            # TYPE sluice_start_time_seconds gauge
            sluice_start_time_seconds{instance="lab"} 1700000000.5
            # HELP sluice_worker_loops_total Poll loop turns of the worker.
            # TYPE sluice_worker_loops_total counter
            sluice_worker_loops_total{instance="lab",worker="0"} 100
            sluice_worker_loops_total{instance="lab",worker="1"} 200
            # HELP sluice_port_drops_total Frames dropped at the port, by reason.
            # TYPE sluice_port_drops_total counter
            sluice_port_drops_total{instance="lab",port="vm1",reason="bad_desc"} 2
            sluice_port_drops_total{instance="lab",port="vm.2",reason="mtu"} 3
            # HELP sluice_mempool_in_use Packet buffers handed out.
            # TYPE sluice_mempool_in_use gauge
            sluice_mempool_in_use{instance="lab",mempool="pkt"} 64
            # HELP sluice_unmapped_total A sluice counter without a dedicated metric; the name label is its name in the segment.
            # TYPE sluice_unmapped_total counter
            sluice_unmapped_total{instance="lab",name="odd-name!x"} 1

            """)
    }

    func testStaleAndUnavailable() {
        let stale = StatsSnapshot(entries: [], heartbeatAgeSeconds: 12, isLive: false, instance: "lab")
        let text = StatsFormat.prometheus(stale, instance: "other")
        XCTAssertTrue(text.contains("sluice_up{instance=\"other\"} 0\n"))
        XCTAssertTrue(text.contains("sluice_heartbeat_age_seconds{instance=\"other\"} 12\n"))
        XCTAssertFalse(text.contains("sluice_start_time_seconds"))
        XCTAssertEqual(StatsFormat.prometheusUnavailable(instance: "gone"), """
            # HELP sluice_up 1 while the sluice instance is running (fresh heartbeat, process exists), else 0.
            # TYPE sluice_up gauge
            sluice_up{instance="gone"} 0

            """)
    }

    func testLabelValuesAndHelpAreEscaped() {
        XCTAssertEqual(StatsFormat.escapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd")
        XCTAssertEqual(StatsFormat.escapeHelp("a\\b\nc\"d"), "a\\\\b\\nc\"d")
        let snapshot = StatsSnapshot(entries: [(name: "port.a\"b\\c.rx_packets", kind: .counter, value: 1)], instance: "i\"x")
        XCTAssertTrue(StatsFormat.prometheus(snapshot).contains(
            "sluice_port_rx_packets_total{instance=\"i\\\"x\",port=\"a\\\"b\\\\c\"} 1\n"))
    }
}
