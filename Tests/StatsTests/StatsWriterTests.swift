import Foundation
import XCTest

@testable import Stats

final class StatsWriterTests: XCTestCase {
    func testRegisterIsIdempotentAndLookupFindsNames() throws {
        let writer = try StatsWriter(path: try temporarySegmentPath(self), slots: 2, maxCounters: 16)
        defer { writer.remove() }
        let loops = try writer.register("worker.0.loops")
        let busy = try writer.register("worker.0.busy_cycles")
        XCTAssertEqual(loops.index, 0)
        XCTAssertEqual(busy.index, 1)
        XCTAssertEqual(try writer.register("worker.0.loops"), loops)
        XCTAssertEqual(writer.lookup("worker.0.busy_cycles"), busy)
        XCTAssertNil(writer.lookup("worker.0.idle_cycles"))
        XCTAssertEqual(writer.registeredCount, 2)
        XCTAssertEqual(writer.workerCount, 2)
        XCTAssertEqual(writer.controlSlot, 2)
    }

    func testRegisteringAgainWithAnotherKindIsAnError() throws {
        let writer = try StatsWriter(path: try temporarySegmentPath(self), slots: 1)
        defer { writer.remove() }
        _ = try writer.register("mempool.main.in_use", kind: .gauge)
        let error = expectStatsError { _ = try writer.register("mempool.main.in_use", kind: .counter) }
        XCTAssertTrue(error?.message.contains("already registered as a gauge") ?? false, "\(String(describing: error))")
    }

    func testEpochChangesOnlyWhenTheDirectoryChanges() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 1)
        defer { writer.remove() }
        XCTAssertEqual(writer.epoch, 0)
        _ = try writer.register("a")
        XCTAssertEqual(writer.epoch, 2)
        _ = try writer.register("a")
        XCTAssertEqual(writer.epoch, 2, "re-registering must not bump the epoch")
        _ = try writer.register("b")
        XCTAssertEqual(writer.epoch, 4)
        XCTAssertEqual(try StatsReader(path: path).snapshot().epoch, 4)
    }

    func testFullDirectoryIsAnErrorButKnownNamesStillResolve() throws {
        let writer = try StatsWriter(path: try temporarySegmentPath(self), slots: 1, maxCounters: 3)
        defer { writer.remove() }
        for name in ["a", "b", "c"] { _ = try writer.register(name) }
        let error = expectStatsError { _ = try writer.register("d") }
        XCTAssertTrue(error?.message.contains("full") ?? false, "\(String(describing: error))")
        XCTAssertEqual(try writer.register("b").index, 1)
        XCTAssertEqual(writer.registeredCount, 3)
    }

    func testBadNamesAreRejected() throws {
        let writer = try StatsWriter(path: try temporarySegmentPath(self), slots: 1)
        defer { writer.remove() }
        XCTAssertNotNil(expectStatsError { _ = try writer.register("") })
        XCTAssertNotNil(expectStatsError { _ = try writer.register("has space") })
        XCTAssertNotNil(expectStatsError { _ = try writer.register("caf\u{e9}") })
        XCTAssertNotNil(expectStatsError { _ = try writer.register(String(repeating: "x", count: 56)) })
        XCTAssertEqual(try writer.register(String(repeating: "x", count: 55)).index, 0)
        XCTAssertNotNil(expectStatsError { _ = try StatsWriter(instance: "../evil", slots: 1) })
        XCTAssertNotNil(expectStatsError { _ = try StatsWriter(path: "/nonexistent-dir/x.stats", slots: 1) })
    }

    func testSlotsSitOnSeparatePages() throws {
        let writer = try StatsWriter(path: try temporarySegmentPath(self), slots: 3, maxCounters: 1000)
        defer { writer.remove() }
        var ids: [CounterID] = []
        for index in 0..<1000 { ids.append(try writer.register("c.\(index)")) }
        let first = ids[0]
        let last = ids[999]
        for slot in 0...writer.controlSlot {
            let start = UInt(bitPattern: writer.counter(first, slot: slot).address)
            XCTAssertEqual(start % 4096, 0, "slot \(slot) block must start on a page")
            let end = UInt(bitPattern: writer.counter(last, slot: slot).address) + 8
            XCTAssertEqual(end - start, 8000)
            if slot < writer.controlSlot {
                let next = UInt(bitPattern: writer.counter(first, slot: slot + 1).address)
                XCTAssertGreaterThanOrEqual(next, end, "blocks overlap")
                XCTAssertNotEqual((end - 1) / 64, next / 64, "blocks share a cache line")
            }
        }
    }

    func testCountersAreSummedOverSlotsAndKindsAreKept() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 2)
        defer { writer.remove() }
        let rx = try writer.register("port.vm1.rx_packets")
        let inUse = try writer.register("mempool.main.in_use", kind: .gauge)
        writer.counter(rx, slot: 0).add(5)
        writer.counter(rx, slot: 1).add(7)
        writer.counter(rx, slot: writer.controlSlot).increment()
        writer.counter(inUse, slot: writer.controlSlot).set(40)
        writer.counter(inUse, slot: writer.controlSlot).set(30)
        XCTAssertEqual(writer.counter(rx, slot: 1).value, 7)
        XCTAssertEqual(writer.total(rx), 13)

        let snapshot = try StatsReader(path: path).snapshot()
        XCTAssertEqual(snapshot.entries.map(\.name), ["port.vm1.rx_packets", "mempool.main.in_use"])
        XCTAssertEqual(snapshot.entries.map(\.kind), [.counter, .gauge])
        XCTAssertEqual(snapshot.value("port.vm1.rx_packets"), 13)
        XCTAssertEqual(snapshot.value("mempool.main.in_use"), 30)
        XCTAssertEqual(snapshot.workerCount, 2)
        XCTAssertTrue(snapshot.isLive)
        XCTAssertNil(snapshot.staleReason)
    }

    func testDiscardCounterAcceptsWrites() {
        let counter = StatsCounter.discard
        counter.set(1)
        counter.add(2)
        counter.increment()
        XCTAssertEqual(counter.value, 4)
    }

    func testRemoveUnlinksAndHandlesStayUsable() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 1)
        let id = try writer.register("worker.0.loops")
        let handle = writer.counter(id, slot: 0)
        handle.add(3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        writer.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        handle.add(1)  // must not crash: private memory now
        writer.beat()
        writer.remove()  // twice is harmless
        XCTAssertNotNil(expectStatsError { _ = try StatsReader(path: path) })
    }

    func testFileIsPublishedCompleteAndWorldReadable() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 1)
        defer { writer.remove() }
        let directory = (path as NSString).deletingLastPathComponent
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
        XCTAssertEqual(files, ["sluice-test.stats"], "no temporary file may be left behind")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o644)
        XCTAssertEqual(writer.instance, "test")
        XCTAssertEqual(try StatsReader(path: path).instance, "test")
    }

    func testRefusesToReplaceALiveSegmentOfAnotherProcess() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 1)
        defer { writer.remove() }
        writer.overwritePID(1)  // init: alive, not us
        writer.beat()
        let error = expectStatsError { _ = try StatsWriter(path: path, slots: 1) }
        XCTAssertTrue(error?.message.contains("already running (pid 1)") ?? false, "\(String(describing: error))")

        writer.overwritePID(deadPID)  // a dead daemon's segment is replaced
        let second = try StatsWriter(path: path, slots: 4)
        writer.remove()  // names another file now: must not unlink the second writer's
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(try StatsReader(path: path).workerCount, 4)
        second.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }
}
