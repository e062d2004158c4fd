import XCTest
import Glibc
import Platform
@testable import Memory

final class IndexRingTests: XCTestCase {
    func testBurstAndBulkSemantics() {
        let ring = IndexRing.create(capacity: 8, producers: .single, consumers: .single)
        defer { ring.destroy() }
        var src: [UInt32] = Array(0..<10)
        XCTAssertFalse(ring.enqueueBulk(&src, 10), "bulk must be all or nothing")
        XCTAssertEqual(ring.count, 0)
        XCTAssertEqual(ring.enqueueBurst(&src, 10), 8, "burst takes what fits")
        XCTAssertEqual(ring.freeCount, 0)
        var dst = [UInt32](repeating: 99, count: 10)
        XCTAssertFalse(ring.dequeueBulk(&dst, 9))
        XCTAssertEqual(ring.dequeueBurst(&dst, 10), 8)
        XCTAssertEqual(Array(dst[0..<8]), Array(0..<8))
        XCTAssertNil(ring.dequeue())
    }

    func testWrapAroundKeepsOrder() {
        let ring = IndexRing.create(capacity: 4, producers: .single, consumers: .single)
        defer { ring.destroy() }
        var next: UInt32 = 0, expect: UInt32 = 0
        for _ in 0..<10_000 {
            var batch: [UInt32] = [next, next &+ 1, next &+ 2]
            XCTAssertTrue(ring.enqueueBulk(&batch, 3)); next &+= 3
            var out = [UInt32](repeating: 0, count: 3)
            XCTAssertEqual(ring.dequeueBurst(&out, 3), 3)
            for v in out { XCTAssertEqual(v, expect); expect &+= 1 }
        }
    }

    /// Several producers and consumers hammer one ring; every index comes out exactly once.
    func testMultiProducerMultiConsumerLosesNothing() throws {
        try stress(producers: 3, consumers: 2, perProducer: 40_000, mp: .multi, mc: .multi)
    }

    /// MPSC: the shape of a worker's input ring.
    func testMultiProducerSingleConsumer() throws {
        try stress(producers: 3, consumers: 1, perProducer: 40_000, mp: .multi, mc: .single)
    }

    func testSingleProducerSingleConsumer() throws {
        try stress(producers: 1, consumers: 1, perProducer: 500_000, mp: .single, mc: .single)
    }

    private func stress(producers: Int, consumers: Int, perProducer: Int,
                        mp: IndexRing.Sync, mc: IndexRing.Sync) throws {
        let ring = IndexRing.create(capacity: 256, producers: mp, consumers: mc)
        defer { ring.destroy() }
        let total = producers * perProducer
        let seen = UnsafeMutablePointer<UInt8>.allocate(capacity: total)
        seen.initialize(repeating: 0, count: total)
        defer { seen.deallocate() }
        let consumed = UnsafeMutablePointer<Int>.allocate(capacity: consumers)
        consumed.initialize(repeating: 0, count: consumers)
        defer { consumed.deallocate() }
        nonisolated(unsafe) let seenP = seen, consumedP = consumed
        final class Flag: @unchecked Sendable { var done = 0 }
        let remaining = Flag()
        var threads: [OSThread] = []
        for p in 0..<producers {
            threads.append(try OSThread(name: "prod\(p)") {
                var v = UInt32(p * perProducer)
                let end = v + UInt32(perProducer)
                var buf = [UInt32](repeating: 0, count: 8)
                while v < end {
                    let n = Int(min(UInt32(1 + Int(v) % 8), end - v))
                    for i in 0..<n { buf[i] = v + UInt32(i) }
                    let put = ring.enqueueBurst(&buf, n)
                    v += UInt32(put)
                }
            })
        }
        for c in 0..<consumers {
            threads.append(try OSThread(name: "cons\(c)") {
                var buf = [UInt32](repeating: 0, count: 16)
                var mine = 0
                while true {
                    let n = ring.dequeueBurst(&buf, 16)
                    for i in 0..<n {
                        seenP[Int(buf[i])] &+= 1
                    }
                    mine += n
                    consumedP[c] = mine
                    var sum = 0
                    for k in 0..<consumers { sum += consumedP[k] }
                    if sum >= total { break }
                    if n == 0 { sched_yield() }
                }
            })
        }
        for t in threads { t.join() }
        var dupes = 0, lost = 0
        for i in 0..<total { if seen[i] == 0 { lost += 1 } else if seen[i] > 1 { dupes += 1 } }
        XCTAssertEqual(lost, 0, "lost indices")
        XCTAssertEqual(dupes, 0, "duplicated indices")
        XCTAssertEqual(ring.count, 0)
    }
}
