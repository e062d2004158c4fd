import XCTest
import Platform
@testable import Memory

final class MempoolTests: XCTestCase {
    func testLayoutIsCacheLineMultiple() {
        XCTAssertEqual(BufferLayout.stride % 64, 0)
        XCTAssertEqual(BufferLayout.metaSize, 64)
        XCTAssertGreaterThanOrEqual(BufferLayout.dataRoom, 2048)
        XCTAssertLessThanOrEqual(BufferLayout.vnetOffset + 12, BufferLayout.metaSize)
    }

    func testAllocUntilExhaustedThenFree() throws {
        let pool = try Mempool(name: "t", count: 1000, caches: 1, policy: .off)
        let cache = pool.cache(0)
        var got = [UInt32](repeating: 0, count: 1200)
        var total = 0
        while total < 1200 {
            let n = got.withUnsafeMutableBufferPointer { cache.alloc($0.baseAddress! + total, min(32, 1200 - total)) }
            if n == 0 { break }
            total += n
        }
        XCTAssertEqual(total, 1000, "exactly the pool's buffers, then failure")
        XCTAssertEqual(Set(got[0..<total]).count, 1000, "no index handed out twice")
        XCTAssertEqual(pool.inUse, 1000)
        got.withUnsafeBufferPointer { cache.free($0.baseAddress!, total) }
        XCTAssertEqual(pool.inUse, 0)
    }

    func testBuffersDoNotOverlapAndAreWritable() throws {
        let pool = try Mempool(name: "w", count: 64, caches: 1, policy: .off)
        let c = pool.cache(0)
        var ps: [Packet] = []
        while let p = c.alloc() { ps.append(p) }
        for p in ps { pool.ref.data(p).initializeMemory(as: UInt8.self, repeating: UInt8(p.index & 0xff), count: BufferLayout.dataRoom); pool.ref.setLength(p, Int(p.index)) }
        for p in ps {
            let d = pool.ref.data(p).assumingMemoryBound(to: UInt8.self)
            XCTAssertEqual(d[0], UInt8(p.index & 0xff)); XCTAssertEqual(d[BufferLayout.dataRoom - 1], UInt8(p.index & 0xff))
            XCTAssertEqual(pool.ref.length(p), Int(p.index))
        }
    }

    /// Workers allocate on one cache and free on another (packets cross workers); nothing
    /// is lost or duplicated and the pool ends full.
    func testCrossThreadAllocFreeStress() throws {
        // As many threads as this 2-CPU machine has: an MP ring's producer that is
        // preempted mid-publish makes the others wait a whole time slice (as with rte_ring).
        let workers = 2
        let pool = try Mempool(name: "s", count: 4096, caches: workers, policy: .off)
        let handoff = IndexRing.create(capacity: 8192, producers: .multi, consumers: .multi)
        defer { handoff.destroy() }
        let held = UnsafeMutablePointer<UInt8>.allocate(capacity: 4096)
        held.initialize(repeating: 0, count: 4096)
        defer { held.deallocate() }
        nonisolated(unsafe) let heldP = held
        final class Errors: @unchecked Sendable { var doubleAlloc = 0 }
        let errors = Errors()
        var threads: [OSThread] = []
        for w in 0..<workers {
            let cache = pool.cache(w)
            threads.append(try OSThread(name: "w\(w)") {
                var buf = [UInt32](repeating: 0, count: 32)
                for round in 0..<3_000 {
                    let n = cache.alloc(&buf, 1 + round % 32)
                    for i in 0..<n {
                        // Atomic-free check is fine: an index is owned by one thread at a time.
                        if heldP[Int(buf[i])] != 0 { errors.doubleAlloc += 1 }
                        heldP[Int(buf[i])] = 1
                    }
                    for i in 0..<n { heldP[Int(buf[i])] = 0 }
                    // Pass them to whoever frees next: packets change workers.
                    var put = 0
                    while put < n { put += handoff.enqueueBurst(&buf + put, n - put) }
                    let m = handoff.dequeueBurst(&buf, 32)
                    cache.free(&buf, m)
                }
            })
        }
        for t in threads { t.join() }
        var rest = [UInt32](repeating: 0, count: 64)
        while true { let m = handoff.dequeueBurst(&rest, 64); if m == 0 { break }; pool.cache(0).free(&rest, m) }
        for w in 0..<workers { pool.cache(w).flush() }
        XCTAssertEqual(errors.doubleAlloc, 0)
        XCTAssertEqual(pool.inUse, 0, "every buffer came back")
        XCTAssertEqual(pool.ref.ring.count, 4096)
        var all = [UInt32](repeating: 0, count: 4096)
        XCTAssertTrue(pool.ref.ring.dequeueBulk(&all, 4096))
        XCTAssertEqual(Set(all).count, 4096, "no duplicates in the free ring")
    }

    func testPacketBatchInlineStorage() {
        var b = PacketBatch()
        for i in 0..<PacketBatch.capacity { b.append(Packet(index: UInt32(i * 3))) }
        XCTAssertTrue(b.isFull)
        XCTAssertEqual(b[31].index, 93)
        let sum = b.withIndices { p in (0..<32).reduce(0) { $0 + Int(p[$1]) } }
        XCTAssertEqual(sum, 3 * 31 * 32 / 2)
    }
}
