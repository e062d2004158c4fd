#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Foundation
import Switching
import XCTest

/// Memory for a `MacTable`: entries and counts in their own page-aligned mappings, so
/// a test can make them read-only and prove that a path writes nothing.
final class TableMemory: @unchecked Sendable {
    let entries: UnsafeMutableRawPointer
    let counts: UnsafeMutableRawPointer
    let entriesBytes: Int
    let countsBytes: Int
    let table: MacTable
    let ports: Int

    init(capacity: Int, ports: Int, limit: Int) {
        entriesBytes = (capacity * 16 + 4095) / 4096 * 4096
        countsBytes = (MacTable.countsBytes(ports: ports) + 4095) / 4096 * 4096
        func map(_ n: Int) -> UnsafeMutableRawPointer {
            let p = mmap(nil, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            precondition(p != MAP_FAILED && p != nil, "mmap")
            return p!
        }
        entries = map(entriesBytes)
        counts = map(countsBytes)
        self.ports = ports
        table = MacTable(entries: entries, capacity: capacity, counts: counts, limit: limit)
    }

    deinit {
        munmap(entries, entriesBytes)
        munmap(counts, countsBytes)
    }

    /// Entries and counts read-only (true) or writable again (false).
    func protect(_ readOnly: Bool) {
        let prot = readOnly ? PROT_READ : PROT_READ | PROT_WRITE
        precondition(mprotect(entries, entriesBytes, prot) == 0 && mprotect(counts, countsBytes, prot) == 0)
    }

    func key(_ i: Int) -> UInt64 { entries.load(fromByteOffset: i * 16, as: UInt64.self) }
    func value(_ i: Int) -> UInt64 { entries.load(fromByteOffset: i * 16 + 8, as: UInt64.self) }

    /// Live entries as the raw memory shows them: key → [port].
    func live() -> [UInt64: [Int]] {
        var out: [UInt64: [Int]] = [:]
        for i in 0..<table.capacity {
            let k = key(i), v = value(i)
            if k != 0 && k != ~0 && v & 0xffff != 0 { out[k, default: []].append(Int(v & 0xffff) - 1) }
        }
        return out
    }

    func snapshot() -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: entries, count: table.capacity * 16))
            + Array(UnsafeRawBufferPointer(start: counts, count: MacTable.countsBytes(ports: ports)))
    }

    /// The home slot of `key` (the table's hash, restated here).
    func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & table.mask }
}

/// A key for station `n` in `vlan` (locally administered unicast MACs).
func stationKey(_ n: Int, vlan: UInt16 = 1) -> UInt64 {
    UInt64(vlan) << 48 | 0x0200_0000_0000 | UInt64(n & 0xff_ffff_ffff)
}

final class MacTableTests: XCTestCase {
    func testKeyEncoding() {
        let mac: [UInt8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xff, 0xff]
        mac.withUnsafeBytes { m in
            XCTAssertEqual(MacTable.key(mac: m.baseAddress!, vlan: 0), 0x0000_0123_4567_89ab)
            XCTAssertEqual(MacTable.key(mac: m.baseAddress!, vlan: 0x123), 0x0123_0123_4567_89ab)
            XCTAssertEqual(MacTable.key(mac: m.baseAddress!, vlan: 4094), 0x0ffe_0123_4567_89ab)
            // Unaligned address: the MAC after the destination in a frame.
            XCTAssertEqual(MacTable.key(mac: m.baseAddress! + 1, vlan: 7), 0x0007_2345_6789_abff)
        }
        XCTAssertEqual(MacTable.countsBytes(ports: 3), 76)
    }

    func testLearnAndLookup() {
        let m = TableMemory(capacity: 64, ports: 4, limit: 32)
        let t = m.table
        XCTAssertEqual(t.lookup(stationKey(1)), -1)
        XCTAssertEqual(t.learn(stationKey(1), port: 2, now: 10, portLimit: .max), .learned)
        XCTAssertEqual(t.learn(stationKey(2), port: 0, now: 10, portLimit: .max), .learned)
        XCTAssertEqual(t.learn(stationKey(1, vlan: 2), port: 3, now: 10, portLimit: .max), .learned, "same MAC, other VLAN")
        XCTAssertEqual(t.lookup(stationKey(1)), 2)
        XCTAssertEqual(t.lookup(stationKey(2)), 0)
        XCTAssertEqual(t.lookup(stationKey(1, vlan: 2)), 3)
        XCTAssertEqual(t.lookup(stationKey(1, vlan: 3)), -1)
        XCTAssertEqual(t.lookup(stationKey(3)), -1)
        XCTAssertEqual(t.count, 3)
        XCTAssertEqual((0..<4).map { t.count(port: $0) }, [1, 0, 1, 1])
        // The value: port + 1 in the low bits, seconds in the high word.
        let slot = (0..<64).first { m.key($0) == stationKey(1) }!
        XCTAssertEqual(m.value(slot), 3 | 10 << 32)
    }

    func testKnownEntryIsNotRewritten() {
        let m = TableMemory(capacity: 64, ports: 2, limit: 32)
        let t = m.table
        XCTAssertEqual(t.learn(stationKey(7), port: 1, now: 100, portLimit: .max), .learned)
        XCTAssertEqual(t.learn(stationKey(8), port: 0, now: 100, portLimit: 1), .learned)
        let before = m.snapshot()
        // Same port, same second: the entry is only read. With the table read-only any
        // store (entry or count) would fault.
        m.protect(true)
        XCTAssertEqual(t.learn(stationKey(7), port: 1, now: 100, portLimit: .max), .known)
        XCTAssertEqual(t.learn(stationKey(8), port: 0, now: 100, portLimit: 1), .known, "at its port limit, still known")
        XCTAssertEqual(t.lookup(stationKey(7)), 1)
        m.protect(false)
        XCTAssertEqual(m.snapshot(), before)
        // A new second refreshes the timestamp and nothing else.
        XCTAssertEqual(t.learn(stationKey(7), port: 1, now: 101, portLimit: .max), .known)
        let slot = (0..<64).first { m.key($0) == stationKey(7) }!
        XCTAssertEqual(m.value(slot), 2 | 101 << 32)
        XCTAssertEqual(t.count, 2)
        XCTAssertEqual(t.count(port: 1), 1)
    }

    func testMoved() {
        let m = TableMemory(capacity: 64, ports: 4, limit: 32)
        let t = m.table
        XCTAssertEqual(t.learn(stationKey(5), port: 1, now: 1, portLimit: .max), .learned)
        XCTAssertEqual(t.learn(stationKey(5), port: 3, now: 1, portLimit: .max), .moved)
        XCTAssertEqual(t.lookup(stationKey(5)), 3)
        XCTAssertEqual(t.count, 1)
        XCTAssertEqual((0..<4).map { t.count(port: $0) }, [0, 0, 0, 1])
        XCTAssertEqual(m.live(), [stationKey(5): [3]], "moved in place, no second entry")
        XCTAssertEqual(t.learn(stationKey(5), port: 3, now: 1, portLimit: .max), .known)
        XCTAssertEqual(t.learn(stationKey(5), port: 0, now: 2, portLimit: .max), .moved)
        XCTAssertEqual((0..<4).map { t.count(port: $0) }, [1, 0, 0, 0])
    }

    func testSwitchLimitGivesTableFull() {
        let m = TableMemory(capacity: 64, ports: 2, limit: 5)
        let t = m.table
        var results: [MacTable.Learned] = []
        for n in 0..<8 { results.append(t.learn(stationKey(n), port: n % 2, now: 1, portLimit: .max)) }
        XCTAssertEqual(results, [.learned, .learned, .learned, .learned, .learned, .tableFull, .tableFull, .tableFull])
        XCTAssertEqual(t.count, 5)
        XCTAssertEqual(t.count(port: 0), 3)
        XCTAssertEqual(t.count(port: 1), 2)
        XCTAssertEqual(m.live().count, 5)
        for n in 5..<8 { XCTAssertEqual(t.lookup(stationKey(n)), -1) }
        // Known addresses still refresh and move when the table is full.
        XCTAssertEqual(t.learn(stationKey(0), port: 0, now: 2, portLimit: .max), .known)
        XCTAssertEqual(t.learn(stationKey(1), port: 0, now: 2, portLimit: .max), .moved)
        XCTAssertEqual(t.count, 5)
        XCTAssertEqual(t.count(port: 0), 4)
        XCTAssertEqual(t.count(port: 1), 1)
        // Aging one frees room for exactly one.
        _ = t.sweep(now: 3, aging: 0, ports: 2) { $0 == 1 }
        XCTAssertEqual(t.count, 4)
        XCTAssertEqual(t.learn(stationKey(5), port: 1, now: 3, portLimit: .max), .learned)
        XCTAssertEqual(t.learn(stationKey(6), port: 1, now: 3, portLimit: .max), .tableFull)
    }

    func testPortLimitGivesPortFull() {
        let m = TableMemory(capacity: 64, ports: 3, limit: 100)
        let t = m.table
        var results: [MacTable.Learned] = []
        for n in 0..<5 { results.append(t.learn(stationKey(n), port: 1, now: 1, portLimit: 3)) }
        XCTAssertEqual(results, [.learned, .learned, .learned, .portFull, .portFull])
        XCTAssertEqual(t.count, 3, "refused addresses do not count")
        XCTAssertEqual(t.count(port: 1), 3)
        XCTAssertEqual(t.lookup(stationKey(3)), -1)
        // Other ports are not limited by port 1's limit.
        XCTAssertEqual(t.learn(stationKey(10), port: 2, now: 1, portLimit: 1), .learned)
        XCTAssertEqual(t.learn(stationKey(11), port: 2, now: 1, portLimit: 1), .portFull)
        // A move into a full port is refused; the address stays where it was.
        XCTAssertEqual(t.learn(stationKey(20), port: 0, now: 1, portLimit: .max), .learned)
        XCTAssertEqual(t.learn(stationKey(20), port: 1, now: 1, portLimit: 3), .portFull)
        XCTAssertEqual(t.lookup(stationKey(20)), 0)
        XCTAssertEqual([t.count(port: 0), t.count(port: 1), t.count(port: 2)], [1, 3, 1])
        XCTAssertEqual(t.count, 5)
    }

    func testSweepAgesFlushesAndRecounts() {
        let m = TableMemory(capacity: 64, ports: 3, limit: 100)
        let t = m.table
        for n in 0..<4 { XCTAssertEqual(t.learn(stationKey(n), port: 0, now: 100, portLimit: .max), .learned) }
        for n in 4..<8 { XCTAssertEqual(t.learn(stationKey(n), port: 1, now: 150, portLimit: .max), .learned) }
        for n in 8..<10 { XCTAssertEqual(t.learn(stationKey(n), port: 2, now: 159, portLimit: .max), .learned) }
        // aging 0: nothing ever ages, however old.
        var r = t.sweep(now: 4_000_000, aging: 0, ports: 3) { _ in false }
        XCTAssertEqual(r.aged, 0); XCTAssertEqual(r.flushed, 0)
        XCTAssertEqual(t.count, 10)
        // Exactly `aging` seconds old stays; older goes.
        r = t.sweep(now: 160, aging: 60, ports: 3) { _ in false }
        XCTAssertEqual(r.aged, 0)
        r = t.sweep(now: 161, aging: 60, ports: 3) { _ in false }
        XCTAssertEqual(r.aged, 4)
        XCTAssertEqual(r.flushed, 0)
        for n in 0..<4 { XCTAssertEqual(t.lookup(stationKey(n)), -1) }
        for n in 4..<10 { XCTAssertNotEqual(t.lookup(stationKey(n)), -1) }
        XCTAssertEqual(t.count, 6)
        XCTAssertEqual([t.count(port: 0), t.count(port: 1), t.count(port: 2)], [0, 4, 2])
        // A refreshed entry does not age.
        XCTAssertEqual(t.learn(stationKey(4), port: 1, now: 215, portLimit: .max), .known)
        // Flush port 2; age what is older than 60 s at 220 (5, 6, 7 of port 1).
        r = t.sweep(now: 220, aging: 60, ports: 3) { $0 == 2 }
        XCTAssertEqual(r.aged, 3)
        XCTAssertEqual(r.flushed, 2)
        XCTAssertEqual(m.live(), [stationKey(4): [1]])
        XCTAssertEqual(t.count, 1)
        XCTAssertEqual([t.count(port: 0), t.count(port: 1), t.count(port: 2)], [0, 1, 0])
        // A clock that went backwards (now < seen) does not age.
        r = t.sweep(now: 10, aging: 1, ports: 3) { _ in false }
        XCTAssertEqual(r.aged, 0)
        // Flush the rest: every slot is empty again, no tombstone left.
        r = t.sweep(now: 220, aging: 0, ports: 3) { _ in true }
        XCTAssertEqual(r.flushed, 1)
        XCTAssertEqual(t.count, 0)
        XCTAssertTrue((0..<64).allSatisfy { m.key($0) == 0 }, "tombstones followed by empty slots are cleaned")
    }

    /// Keys with the same home slot, as many as asked.
    /// Homes near the end are skipped, so a chain does not wrap around the table.
    private func colliding(_ m: TableMemory, _ n: Int, from: Int = 0) -> [UInt64] {
        var byHome: [Int: [UInt64]] = [:]
        var i = from
        while true {
            let k = stationKey(i)
            i += 1
            if m.home(k) + n >= m.table.capacity { continue }
            byHome[m.home(k), default: []].append(k)
            if let ks = byHome[m.home(k)], ks.count == n { return ks }
        }
    }

    func testLookupFindsEntriesPlacedAfterADeletedSlot() {
        let m = TableMemory(capacity: 64, ports: 4, limit: 100)
        let t = m.table
        let ks = colliding(m, 4)
        let home = m.home(ks[0])
        for (i, k) in ks.prefix(3).enumerated() { XCTAssertEqual(t.learn(k, port: i, now: 1, portLimit: .max), .learned) }
        XCTAssertEqual((0..<3).map { m.key((home + $0) & 63) }, Array(ks.prefix(3)), "linear probing from the home slot")
        // Delete the first two: tombstones, since a live entry follows.
        var r = t.sweep(now: 1, aging: 0, ports: 4) { $0 < 2 }
        XCTAssertEqual(r.flushed, 2)
        XCTAssertEqual(m.key(home), ~0)
        XCTAssertEqual(m.key((home + 1) & 63), ~0)
        XCTAssertEqual(t.lookup(ks[2]), 2, "found past two deleted slots")
        XCTAssertEqual(t.lookup(ks[0]), -1)
        // Re-learning the entry behind the tombstones finds it: no duplicate.
        XCTAssertEqual(t.learn(ks[2], port: 2, now: 2, portLimit: .max), .known)
        XCTAssertEqual(t.learn(ks[2], port: 3, now: 2, portLimit: .max), .moved)
        XCTAssertEqual(m.live()[ks[2]], [3])
        // A new key reuses the first tombstone, and the entry behind still resolves.
        XCTAssertEqual(t.learn(ks[3], port: 1, now: 2, portLimit: .max), .learned)
        XCTAssertEqual(m.key(home), ks[3])
        XCTAssertEqual(t.lookup(ks[3]), 1)
        XCTAssertEqual(t.lookup(ks[2]), 3)
        XCTAssertEqual(t.count, 2)
        // Deleting the last of the chain cleans the tombstone before it.
        r = t.sweep(now: 2, aging: 0, ports: 4) { $0 == 3 }
        XCTAssertEqual(r.flushed, 1)
        XCTAssertEqual(m.key((home + 1) & 63), 0)
        XCTAssertEqual(m.key((home + 2) & 63), 0)
        XCTAssertEqual(t.lookup(ks[3]), 1)
    }

    func testProbeLimitGivesTableFull() {
        // More keys with one home slot than a probe sequence visits.
        let m = TableMemory(capacity: 64, ports: 1, limit: 64)
        let t = m.table
        let ks = colliding(m, MacTable.maxProbes + 1)
        for k in ks.prefix(MacTable.maxProbes) { XCTAssertEqual(t.learn(k, port: 0, now: 1, portLimit: .max), .learned) }
        XCTAssertEqual(t.learn(ks[MacTable.maxProbes], port: 0, now: 1, portLimit: .max), .tableFull)
        XCTAssertEqual(t.count, MacTable.maxProbes)
        for k in ks.prefix(MacTable.maxProbes) { XCTAssertEqual(t.lookup(k), 0) }
    }

    func testConcurrentLearnersAndReader() {
        let ports = 4
        let m = TableMemory(capacity: 1 << 15, ports: ports, limit: 1 << 14)
        let t = m.table
        let perThread = 3000, shared = 1500, learners = 3
        // Thread w learns its own block on port w and the shared block; learners use ports 0..<3.
        let own: @Sendable (Int) -> [UInt64] = { w in
            (0..<perThread).map { stationKey(100_000 * (w + 1) + $0, vlan: UInt16(1 + $0 % 3)) }
        }
        let common = (0..<shared).map { stationKey(7_000_000 + $0, vlan: 9) }
        let flags = Flags()
        defer { flags.release() }
        let group = DispatchGroup()
        for w in 0..<learners {
            let keys = own(w)
            group.enter()
            Thread.detachNewThread {
                for round in 0..<3 {
                    for (i, k) in keys.enumerated() {
                        _ = t.learn(k, port: w, now: UInt32(1 + round), portLimit: .max)
                        if i % 2 == 0 { _ = t.learn(common[(i / 2 + w * 97) % shared], port: w, now: 1, portLimit: .max) }
                    }
                }
                group.leave()
            }
        }
        let reader = DispatchGroup()
        reader.enter()
        Thread.detachNewThread {
            var bad = 0
            while sl_load_acquire_u32(flags.done) == 0 {
                for w in 0..<learners {
                    for k in own(w).prefix(500) {
                        let p = t.lookup(k)
                        if p != -1 && p != w { bad += 1 }
                    }
                }
                for k in common.prefix(500) where !(-1..<learners).contains(t.lookup(k)) { bad += 1 }
            }
            flags.bad.pointee = bad
            reader.leave()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        sl_store_release_u32(flags.done, 1)
        XCTAssertEqual(reader.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(flags.bad.pointee, 0, "a lookup returned a port that never learned the address")

        for w in 0..<learners {
            for k in own(w) { XCTAssertEqual(t.lookup(k), w, "own address \(String(k, radix: 16))") }
        }
        for k in common { XCTAssertTrue((0..<learners).contains(t.lookup(k)), "shared address \(String(k, radix: 16))") }
        _ = t.sweep(now: 4, aging: 0, ports: ports) { _ in false }
        let live = m.live()
        let entries = live.values.reduce(0) { $0 + $1.count }
        XCTAssertEqual(Set(live.keys), Set((0..<learners).flatMap(own) + common))
        XCTAssertEqual(t.count, entries, "count after a sweep = live entries")
        XCTAssertEqual((0..<ports).map { t.count(port: $0) }.reduce(0, +), entries)
        for p in 0..<ports {
            XCTAssertEqual(t.count(port: p), live.values.reduce(0) { $0 + $1.filter { $0 == p }.count })
        }
        // Racing claims of one new address may leave a duplicate (it ages out); never many.
        XCTAssertLessThanOrEqual(entries - live.count, 16)
        XCTAssertTrue(live.values.allSatisfy { $0.count <= learners })
    }
}

/// Cross-thread flags of the concurrent test (published with release/acquire).
private struct Flags: @unchecked Sendable {
    let done = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    let bad = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    init() { done.initialize(to: 0); bad.initialize(to: 0) }
    func release() { done.deallocate(); bad.deallocate() }
}
