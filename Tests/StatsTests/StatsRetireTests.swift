import Foundation
import XCTest

@testable import Stats

/// Counters of things removed at run time (a port dropped by a reload) disappear from
/// readers, and come back from zero when the name is registered again.
final class StatsRetireTests: XCTestCase {
    func testRetiredNamesAreHiddenZeroedAndComeBackFromZero() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 2, maxCounters: 16)
        defer { writer.remove() }
        let keep = writer.counter(try writer.register("port.a.rx_packets"), slot: 0)
        let gone = writer.counter(try writer.register("port.b.rx_packets"), slot: 1)
        let gone0 = writer.counter(try writer.register("port.b.rx_packets"), slot: 0)
        keep.add(5); gone.add(7); gone0.add(1)
        let epoch = writer.epoch

        XCTAssertEqual(writer.retire(names: ["port.b.rx_packets", "port.nosuch.rx_packets"]), 1)
        XCTAssertGreaterThan(writer.epoch, epoch, "readers see the directory change")
        XCTAssertTrue(writer.isRetired("port.b.rx_packets"))
        let reader = try StatsReader(path: path)
        var s = try reader.snapshot()
        XCTAssertEqual(s.value("port.a.rx_packets"), 5)
        XCTAssertNil(s.value("port.b.rx_packets"))
        XCTAssertEqual(writer.retire(names: ["port.b.rx_packets"]), 0, "retiring twice is a no-op")

        let again = try writer.register("port.b.rx_packets")
        XCTAssertFalse(writer.isRetired("port.b.rx_packets"))
        XCTAssertEqual(writer.registeredCount, 2, "the same entry, not a new one")
        s = try reader.snapshot()
        XCTAssertEqual(s.value("port.b.rx_packets"), 0, "back from zero in every slot")
        writer.counter(again, slot: 1).add(3)
        XCTAssertEqual(try reader.snapshot().value("port.b.rx_packets"), 3)
        // A retired name may come back with another kind.
        _ = writer.retire(names: ["port.a.rx_packets"])
        _ = try writer.register("port.a.rx_packets", kind: .gauge)
        XCTAssertEqual(try reader.snapshot().entries.first { $0.name == "port.a.rx_packets" }?.kind, .gauge)
    }
}
