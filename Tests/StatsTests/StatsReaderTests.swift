import Foundation
import Synchronization
import XCTest

@testable import Stats

final class StatsReaderTests: XCTestCase {
    func testMissingSegmentNamesPathAndInstance() {
        let error = expectStatsError { _ = try StatsReader(instance: "no-such-instance-\(getpid())") }
        let message = error?.message ?? ""
        XCTAssertTrue(message.contains("/dev/shm/sluice-no-such-instance-\(getpid()).stats"), message)
        XCTAssertTrue(message.contains("instance 'no-such-instance-\(getpid())'"), message)
    }

    func testGarbageAndShortFilesAreRejected() throws {
        let path = try temporarySegmentPath(self)
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 0xA5, count: 9000))
        XCTAssertTrue(expectStatsError { _ = try StatsReader(path: path) }?.message.contains("bad magic") ?? false)
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 0, count: 10))
        XCTAssertNotNil(expectStatsError { _ = try StatsReader(path: path) })
    }

    func testTruncatedSegmentIsRejected() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 1, maxCounters: 64)
        defer { writer.remove() }
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        let copy = path + ".copy"
        _ = FileManager.default.createFile(atPath: copy, contents: full.prefix(full.count - 4096))
        let error = expectStatsError { _ = try StatsReader(path: copy) }
        XCTAssertTrue(error?.message.contains("corrupt header") ?? false, "\(String(describing: error))")
    }

    func testOldHeartbeatIsStale() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 1)
        defer { writer.remove() }
        let reader = try StatsReader(path: path)
        let now = realtimeNanoseconds()
        writer.beat(at: now)
        XCTAssertTrue(try reader.snapshot(now: now + 2_000_000_000).isLive)
        let stale = try reader.snapshot(now: now + 12_000_000_000)
        XCTAssertFalse(stale.isLive)
        XCTAssertEqual(stale.heartbeatAgeSeconds, 12, accuracy: 0.001)
        XCTAssertEqual(stale.staleReason, "last heartbeat 12.0 s ago, pid \(getpid()) still exists")

        writer.beat(at: now - 5_000_000_000)
        XCTAssertFalse(try reader.snapshot().isLive)
        writer.beat()
        XCTAssertTrue(try reader.snapshot().isLive)
    }

    func testDeadPidIsStale() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 1)
        defer { writer.remove() }
        _ = try writer.register("worker.0.loops")
        writer.counter(CounterID(index: 0), slot: 0).add(9)
        writer.overwritePID(deadPID)
        writer.beat()
        let snapshot = try StatsReader(path: path).snapshot()
        XCTAssertFalse(snapshot.isLive)
        XCTAssertEqual(snapshot.pid, deadPID)
        XCTAssertTrue(snapshot.staleReason?.hasSuffix("pid \(deadPID) gone") ?? false, "\(String(describing: snapshot.staleReason))")
        XCTAssertEqual(snapshot.value("worker.0.loops"), 9, "last values are still readable")
    }

    func testReplacedFileIsNoticed() throws {
        let path = try temporarySegmentPath(self)
        let first = try StatsWriter(path: path, slots: 1)
        let reader = try StatsReader(path: path)
        XCTAssertFalse(reader.fileWasReplaced)
        let second = try StatsWriter(path: path, slots: 1)
        XCTAssertTrue(reader.fileWasReplaced)
        first.remove()
        second.remove()
    }

    /// A writer thread bumps counters and registers names while this thread
    /// reads: every snapshot must show only whole names, a directory that only
    /// grows, an even epoch, and counters that never go backwards.
    func testReaderRunsConcurrentlyWithWriter() throws {
        let path = try temporarySegmentPath(self)
        let writer = try StatsWriter(path: path, slots: 2, maxCounters: 2048)
        defer { writer.remove() }
        let base = try writer.register("worker.0.loops")
        let done = Flag()

        let thread = Thread {
            let loops = writer.counter(base, slot: 0)
            var dynamic: [StatsCounter] = []
            for round in 0..<20_000 {
                loops.increment()
                if round % 20 == 0, dynamic.count < 1500 {
                    let name = "port.p\(dynamic.count).drop.reason_with_a_long_name_\(dynamic.count % 10)"
                    guard let id = try? writer.register(name) else { break }
                    dynamic.append(writer.counter(id, slot: 1))
                }
                for counter in dynamic.suffix(8) { counter.add(3) }
            }
            done.value.store(true, ordering: .releasing)
        }
        thread.start()

        let reader = try StatsReader(path: path)
        var previous: [String: UInt64] = [:]
        var previousNames: [String] = []
        var previousEpoch: UInt64 = 0
        var snapshots = 0
        while true {
            let finished = done.value.load(ordering: .acquiring)
            let snapshot = try reader.snapshot()
            snapshots += 1
            XCTAssertEqual(snapshot.epoch % 2, 0)
            XCTAssertGreaterThanOrEqual(snapshot.epoch, previousEpoch)
            XCTAssertEqual(snapshot.epoch, UInt64(snapshot.entries.count) * 2, "epoch and directory disagree")
            let names = snapshot.entries.map(\.name)
            XCTAssertEqual(Array(names.prefix(previousNames.count)), previousNames, "directory must only grow")
            for (offset, entry) in snapshot.entries.enumerated() where offset > 0 {
                let index = offset - 1
                let expected = "port.p\(index).drop.reason_with_a_long_name_\(index % 10)"
                if entry.name != expected {
                    XCTFail("torn name \(entry.name), expected \(expected)")
                    return
                }
            }
            for entry in snapshot.entries {
                if let old = previous[entry.name], entry.value < old {
                    XCTFail("\(entry.name) went backwards: \(old) → \(entry.value)")
                    return
                }
                previous[entry.name] = entry.value
            }
            previousNames = names
            previousEpoch = snapshot.epoch
            if finished { break }
        }
        XCTAssertEqual(previous["worker.0.loops"], 20_000)
        XCTAssertEqual(previousNames.count, 1001)
        XCTAssertGreaterThan(snapshots, 1)
    }
}

final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}
