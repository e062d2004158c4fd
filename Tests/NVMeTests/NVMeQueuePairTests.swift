import XCTest
import Block
import Virtio
@testable import NVMe

/// Queue mechanics: creation, phase wrap, CID exhaustion, timeouts and Abort, fatal
/// status, shadow doorbells, the control thread's read and drain.
final class NVMeQueuePairTests: XCTestCase {
    typealias T = VirtioBlk.RequestType

    func testCreateAndDeleteQueuePairs() throws {
        let h = try QueueHarness(depth: 16)
        XCTAssertEqual(h.soft.sqs[1]?.entries, 16)
        XCTAssertEqual(h.soft.cqs[1]?.entries, 16)
        XCTAssertNil(h.soft.cqs[1]?.vector)
        let dma = h.dma as! HostDMA
        let before = dma.live
        let p2 = try h.ctrl.createQueuePair(qid: 2, depth: 8, vector: 3, dma: dma)
        XCTAssertEqual(h.soft.cqs[2]?.vector, 3, "IEN with IV")
        XCTAssertEqual(h.soft.sqs[2]?.cqid, 2)
        XCTAssertEqual(h.ctrl.queuePairCount, 2)
        try p2.delete()
        XCTAssertNil(h.soft.sqs[2])
        XCTAssertNil(h.soft.cqs[2])
        XCTAssertEqual(dma.live, before, "queues and list pages freed")
        XCTAssertThrowsError(try h.ctrl.createQueuePair(qid: 2, depth: 4096, vector: nil, dma: dma)) { e in
            XCTAssertEqual("\(e)", "io-queue-depth 4096: the controller takes 2…2048 entries (CAP.MQES)")
        }
        XCTAssertThrowsError(try h.ctrl.createQueuePair(qid: 65, depth: 8, vector: nil, dma: dma)) { e in
            XCTAssertEqual("\(e)", "Create I/O CQ 65: admin command 0x5 failed: status type 1, code 0x1")
        }
        XCTAssertEqual(dma.live, before, "nothing leaked by the failures")
        XCTAssertThrowsError(try h.ctrl.configureShadowDoorbells()) { e in
            XCTAssertTrue("\(e)".contains("before I/O queues are created"), "\(e)")
        }
        XCTAssertFalse(try h.ctrl.abort(sqid: 1, cid: 0), "nothing to abort")
    }

    func testPhaseWrapsOverAThousandRequests() throws {
        let h = try QueueHarness(depth: 4)
        XCTAssertEqual(h.pair.state.pointee.cidCount, 3)
        let total = 1000
        var slots: [UnsafeMutablePointer<BlkSlot>] = []
        for i in 0..<total {
            // Even: write 4 KiB of pattern i at its own sector; odd: read back the previous one.
            let sector = UInt64((i / 2) * 8 % 16384)
            if i % 2 == 0 {
                let piece = [((i % 64) * 4096, 4096)]
                slots.append(h.slot(T.output, sector: sector, pieces: piece))
            } else {
                slots.append(h.slot(T.input, sector: sector, pieces: [(0x400000 + (i % 64) * 4096, 4096)]))
            }
        }
        var next = 0, answered = 0
        var heads = [UInt64](repeating: 0, count: 8), results = [Int32](repeating: 0, count: 8)
        var rounds = 0
        while answered < total && rounds < 10 * total {
            rounds += 1
            while next < total {
                if next % 2 == 0 { h.fill([((next % 64) * 4096, 4096)], seed: UInt8(truncatingIfNeeded: next)) }
                // A read goes only after its write was answered (the device may reorder).
                if next % 2 == 1 && answered < next { break }
                let r = h.prepare(slots[next], head: UInt16(next))
                if r == .full { break }
                XCTAssertEqual(r, .queued)
                next += 1
            }
            _ = h.backend.submit()
            h.soft.step()
            let n = h.backend.reap(heads: &heads, results: &results, max: 8)
            for k in 0..<n {
                let i = Int(heads[k])
                XCTAssertEqual(results[k], 4096, "request \(i)")
                if i % 2 == 1 {
                    XCTAssertEqual(h.gathered([(0x400000 + (i % 64) * 4096, 4096)]), h.gathered([(((i - 1) % 64) * 4096, 4096)]),
                                   "read \(i) sees write \(i - 1)")
                }
            }
            answered += n
        }
        XCTAssertEqual(answered, total)
        XCTAssertEqual(h.counter("submissions"), UInt64(total))
        XCTAssertEqual(h.counter("completions"), UInt64(total))
        XCTAssertEqual(h.soft.cqOverflows, 0)
        XCTAssertEqual(h.counter("errors"), 0)
        XCTAssertEqual(h.pair.outstanding, 0)
    }

    func testFullWhenCIDsRunOutThenProgress() throws {
        // 3 CIDs; 8 KiB commands, so 16 KiB needs two.
        let h = try QueueHarness(depth: 4, sgl: false) { $0.mdts = 1 }
        let a = h.slot(T.output, sector: 0, pieces: [(0x10000, 16384)])
        let b = h.slot(T.output, sector: 64, pieces: [(0x20000, 16384)])
        h.fill([(0x10000, 16384), (0x20000, 16384)], seed: 4)
        XCTAssertEqual(h.prepare(a, head: 1), .queued)
        let tail = h.pair.state.pointee.sqTail
        XCTAssertEqual(h.prepare(b, head: 2), .full, "one CID left, two needed")
        XCTAssertEqual(h.pair.state.pointee.sqTail, tail, "nothing written for the refused request")
        XCTAssertEqual(h.counter("errors"), 0, ".full is not an error")
        XCTAssertEqual(h.run(answers: 1).map { $0.head }, [1])
        XCTAssertEqual(h.prepare(b, head: 2), .queued)
        XCTAssertEqual(h.run(answers: 1).map { $0.result }, [16384])
        XCTAssertEqual(h.namespace(at: 64 * 512, count: 16384), h.gathered([(0x20000, 16384)]))
        // Four commands can never fit three CIDs.
        XCTAssertEqual(h.prepare(h.slot(T.output, sector: 0, pieces: [(0x10000, 32768)]), head: 3), .failed)
        XCTAssertEqual(h.counter("errors"), 1)
    }

    /// Reap until an answer comes or `seconds` pass (the timeout scan runs every 1024 polls).
    private func waitAnswer(_ h: QueueHarness, seconds: Double = 5) -> (head: UInt64, result: Int32)? {
        var head: UInt64 = 0, result: Int32 = 0
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if h.backend.reap(heads: &head, results: &result, max: 1) == 1 { return (head, result) }
        }
        return nil
    }

    func testTimeoutAnswersOnceAndTheLateCompletionIsDropped() throws {
        let h = try QueueHarness(depth: 8, ioTimeoutMillis: 30) { $0.dropNextIO = 1 }
        XCTAssertEqual(h.prepare(h.slot(T.input, sector: 0, pieces: [(0x10000, 4096)]), head: 5), .queued)
        _ = h.backend.submit()
        h.soft.step()
        XCTAssertEqual(h.soft.held.count, 1)
        let a = waitAnswer(h)
        XCTAssertEqual(a?.head, 5)
        XCTAssertEqual(a?.result, -ETIMEDOUT)
        XCTAssertEqual(h.counter("timeouts"), 1)
        XCTAssertEqual(h.pair.outstanding, 0, "answered")
        XCTAssertEqual(h.pair.state.pointee.freeCIDCount, 6, "the CID stays taken until the controller answers")
        XCTAssertTrue(h.backend.completionReady() == false)
        // The control thread sends Abort for it; the controller completes it (aborted).
        XCTAssertEqual(try h.pair.abortTimedOut(), 1)
        XCTAssertEqual(h.soft.aborts, 1)
        XCTAssertEqual(h.pair.takeAbortRequests(), [], "each timed-out CID is handed out once")
        XCTAssertTrue(h.backend.completionReady())
        XCTAssertEqual(h.run(answers: 1, steps: 5).count, 0, "the late completion is dropped")
        XCTAssertEqual(h.pair.lateCompletions, 1)
        XCTAssertEqual(h.pair.state.pointee.freeCIDCount, 7)
        XCTAssertEqual(h.counter("timeouts"), 1)
        // The pair goes on.
        XCTAssertEqual(h.one(h.slot(T.input, sector: 0, pieces: [(0x10000, 4096)])), 4096)
    }

    func testALateSuccessAfterATimeoutIsDroppedToo() throws {
        let h = try QueueHarness(depth: 8, ioTimeoutMillis: 30) { $0.dropNextIO = 1 }
        XCTAssertEqual(h.prepare(h.slot(T.output, sector: 0, pieces: [(0x10000, 4096)]), head: 9), .queued)
        _ = h.backend.submit()
        h.soft.step()
        XCTAssertEqual(waitAnswer(h)?.result, -ETIMEDOUT)
        XCTAssertEqual(h.pair.takeAbortRequests(), [0])
        h.soft.releaseHeld()
        XCTAssertEqual(h.run(answers: 1, steps: 3).count, 0)
        XCTAssertEqual(h.pair.lateCompletions, 1)
        XCTAssertEqual(h.counter("errors"), 0)
    }

    func testFatalStatusFailsEverythingAndAsksForAReset() throws {
        let h = try QueueHarness(depth: 8)
        XCTAssertEqual(h.prepare(h.slot(T.output, sector: 0, pieces: [(0x10000, 4096)]), head: 1), .queued)
        XCTAssertEqual(h.prepare(h.slot(T.flush, sector: 0), head: 2), .queued)
        _ = h.backend.submit()
        h.soft.setFatal()
        XCTAssertFalse(h.pair.needsReset)
        // Found by the periodic scan within 1024 polls.
        var answers: [UInt64: Int32] = [:]
        var head: UInt64 = 0, result: Int32 = 0
        for _ in 0..<2048 where answers.count < 2 {
            if h.backend.reap(heads: &head, results: &result, max: 1) == 1 { answers[head] = result }
        }
        XCTAssertEqual(answers, [1: -EIO, 2: -EIO])
        XCTAssertTrue(h.pair.needsReset)
        XCTAssertEqual(h.counter("errors"), 2)
        XCTAssertEqual(h.prepare(h.slot(T.flush, sector: 0), head: 3), .failed, "nothing new after CFS")
        XCTAssertEqual(h.counter("errors"), 3)
        XCTAssertThrowsError(try h.pair.read(nsid: 1, lba: 0, blocks: 1, blockSize: 512,
                                             into: try h.dma.allocate(bytes: 4096))) { e in
            XCTAssertTrue("\(e)".contains("CSTS.CFS"), "\(e)")
        }
    }

    func testResetAfterFatalStatusBringsThePairBackInPlace() throws {
        for shadow in [false, true] {
            let h = try QueueHarness(depth: 8, shadow: shadow)
            XCTAssertEqual(h.prepare(h.slot(T.output, sector: 0, pieces: [(0x10000, 4096)]), head: 1), .queued)
            _ = h.backend.submit()
            h.soft.setFatal()
            var head: UInt64 = 0, result: Int32 = 0
            var failed = false
            for _ in 0..<2048 where !failed {
                if h.backend.reap(heads: &head, results: &result, max: 1) == 1 { failed = true; XCTAssertEqual(result, -EIO) }
            }
            XCTAssertTrue(failed && h.pair.needsReset)
            XCTAssertGreaterThan(try h.ctrl.resetAfterFatalStatus(queues: 4), 0)
            try h.pair.recreate(vector: nil)
            XCTAssertFalse(h.pair.needsReset)
            XCTAssertEqual(h.pair.outstanding, 0)
            XCTAssertEqual(h.pair.usesShadowDoorbells, shadow)
            // The same backend value (what a worker's poll entry holds) works again: a write,
            // then a read of the same block, more times than the queue is deep (phase wrap).
            for i in 0..<20 {
                let data = h.fill([(0x20000, 4096)], seed: UInt8(i))
                XCTAssertEqual(h.one(h.slot(T.output, sector: 8, pieces: [(0x20000, 4096)]), head: 2), 4096)
                XCTAssertEqual(h.namespace(at: 8 * 512, count: 4096), data)
            }
            XCTAssertEqual(h.one(h.slot(T.input, sector: 8, pieces: [(0x30000, 4096)]), head: 3), 4096)
            XCTAssertEqual(h.gathered([(0x30000, 4096)]), h.namespace(at: 8 * 512, count: 4096))
        }
    }

    /// `requests` single requests one after another; the model's MMIO doorbell counts.
    private func doorbellRun(shadow: Bool, eventIdxEvery: Int, requests: Int = 50) throws -> (sq: Int, cq: Int, counted: UInt64) {
        let h = try QueueHarness(depth: 16, shadow: shadow) { $0.eventIdxEvery = eventIdxEvery }
        XCTAssertEqual(h.pair.usesShadowDoorbells, shadow)
        for i in 0..<requests {
            let piece = [(0x10000 + i * 4096, 4096)]
            let bytes = h.fill(piece, seed: UInt8(i))
            XCTAssertEqual(h.one(h.slot(T.output, sector: UInt64(i * 8), pieces: piece), head: UInt16(i)), 4096)
            XCTAssertEqual(h.namespace(at: i * 4096, count: 4096), bytes)
        }
        h.soft.step()   // the model sees the last CQ head write
        XCTAssertEqual(h.soft.cqOverflows, 0)
        return (h.soft.sqDoorbellWrites, h.soft.cqDoorbellWrites, h.counter("doorbells"))
    }

    func testShadowDoorbellsSaveMMIOWrites() throws {
        let plain = try doorbellRun(shadow: false, eventIdxEvery: 1)
        XCTAssertEqual(plain.sq, 50)
        XCTAssertEqual(plain.cq, 50)
        XCTAssertEqual(plain.counted, 100)
        // A controller that keeps polling the shadow page leaves EventIdx at 0: the MMIO
        // write is asked for only when a doorbell moves past 0, once per lap of the
        // 16-entry queues (requests 0, 16, 32, 48); the rest go through the shadow page.
        let polling = try doorbellRun(shadow: true, eventIdxEvery: 1_000_000)
        XCTAssertEqual(polling.sq, 4)
        XCTAssertEqual(polling.cq, 4)
        XCTAssertEqual(polling.counted, 8)
        // QEMU's way (EventIdx caught up after every step, one command at a time): the rule
        // asks for every write — none may be skipped.
        let qemu = try doorbellRun(shadow: true, eventIdxEvery: 1)
        XCTAssertEqual(qemu.sq, 50)
        XCTAssertEqual(qemu.cq, 50)
        XCTAssertEqual(qemu.counted, 100)
    }

    func testShadowDoorbellsNeedTheController() throws {
        let soft = SoftController()
        soft.supportsDoorbellBuffer = false
        let c = NVMeController(bar: soft.bar, dma: HostDMA(), idle: { soft.step() })
        try c.enable()
        XCTAssertFalse(try c.configureShadowDoorbells(), "OACS bit 8 clear")
        XCTAssertFalse(c.shadowActive)
    }

    func testControlThreadRead() throws {
        let h = try QueueHarness(sgl: false) { $0.mdts = 1 }
        let bytes = pattern(20480, seed: 77)
        h.setNamespace(at: 512 * 3, bytes)
        let buffer = try h.dma.allocate(bytes: 20480)
        defer { h.dma.free(buffer) }
        try h.pair.read(nsid: 1, lba: 3, blocks: 40, blockSize: 512, into: buffer)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: buffer.host, count: 20480)), bytes)
        XCTAssertThrowsError(try h.pair.read(nsid: 1, lba: 16383, blocks: 2, blockSize: 512, into: buffer)) { e in
            XCTAssertEqual("\(e)", "namespace 1: read of 2 block(s) at LBA 16383 failed: status type 0, code 0x80")
        }
        XCTAssertThrowsError(try h.pair.read(nsid: 1, lba: 0, blocks: 64, blockSize: 512, into: buffer))
    }

    /// What a paused worker's queue is drained with (`BlkQueue.drain` → `waitOne`): the
    /// prepared requests are submitted and every one is answered once; then the pair goes.
    func testWaitOneAnswersEverythingOwed() throws {
        let h = try QueueHarness(depth: 8)
        for i in 0..<3 {
            XCTAssertEqual(h.prepare(h.slot(T.output, sector: UInt64(i * 8), pieces: [(i * 4096, 4096)]), head: UInt16(10 + i)), .queued)
        }
        XCTAssertEqual(h.backend.submit(), 3)
        var got: [UInt64: Int32] = [:]
        var head: UInt64 = 0, result: Int32 = 0
        while h.backend.waitOne(head: &head, result: &result) { got[head] = result }
        XCTAssertEqual(got, [10: 4096, 11: 4096, 12: 4096])
        XCTAssertEqual(h.pair.outstanding, 0)
        XCTAssertFalse(h.backend.waitOne(head: &head, result: &result), "nothing owed")
        try h.pair.delete()
        XCTAssertTrue(h.pair.deleted)
        XCTAssertNil(h.soft.sqs[1])
    }
}
