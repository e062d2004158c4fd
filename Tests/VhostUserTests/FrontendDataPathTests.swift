#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Platform
import XCTest
@testable import VhostUser

/// Frames through the frontend's rings, with the fake backend looping TX back to RX.
final class FrontendDataPathTests: XCTestCase {
    private func frame(_ size: Int, seed: UInt8) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
    }

    /// Compares frame lists without printing kilobytes of bytes on failure.
    private func assertFrames(_ got: [[UInt8]], _ expected: [[UInt8]], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, "frame count", file: file, line: line)
        for (i, (g, e)) in zip(got, expected).enumerated() where g != e {
            let at = (0..<min(g.count, e.count)).first { g[$0] != e[$0] } ?? min(g.count, e.count)
            XCTFail("frame \(i): \(g.count) bytes, expected \(e.count); first difference at byte \(at)", file: file, line: line)
        }
    }

    private func roundTrip(_ options: FrontendOptions, sizes: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        let (frontend, backend) = try makeFrontend(options: options)
        let frames = sizes.enumerated().map { frame($0.element, seed: UInt8($0.offset)) }
        XCTAssertEqual(frontend.send(frames: frames), frames.count, file: file, line: line)
        XCTAssertEqual(backend.loopback(), frames.count, file: file, line: line)
        let got = frontend.receive(max: frames.count + 1, timeout: 0)
        assertFrames(got, frames, file: file, line: line)
        XCTAssertEqual(frontend.counters.txPackets, UInt64(frames.count), file: file, line: line)
        XCTAssertEqual(frontend.counters.rxPackets, UInt64(frames.count), file: file, line: line)
        XCTAssertEqual(frontend.counters.rxBytes, UInt64(sizes.reduce(0, +)), file: file, line: line)
        XCTAssertEqual(frontend.counters.rxErrors, 0, file: file, line: line)
        // Everything came back: TX buffers reclaimable, RX ring full of fresh buffers again.
        XCTAssertEqual(frontend.reclaimTransmitted(), frames.count, file: file, line: line)
        XCTAssertEqual(frontend.rxQueues[0].inFlight, options.queueSize, file: file, line: line)
    }

    func testEveryTxLayoutCarriesFramesIntact() throws {
        var options = testOptions()
        try roundTrip(options, sizes: [60, 64, 1514, 1518, 200])
        XCTAssertEqual(try makeFrontend(options: options).0.txLayout, .contiguous)

        options.txDescriptorsPerFrame = 2
        try roundTrip(options, sizes: [60, 64, 1518])
        XCTAssertEqual(try makeFrontend(options: options).0.txLayout, .split)

        options.indirectDescriptors = true
        try roundTrip(options, sizes: [60, 64, 1518])
        XCTAssertEqual(try makeFrontend(options: options).0.txLayout, .indirect)
    }

    func testIndirectFallsBackWhenNotOffered() throws {
        var options = testOptions()
        options.indirectDescriptors = true
        let (frontend, _) = try makeFrontend(features: [.version1, .mergeableRxBuffers, .protocolFeatures], options: options)
        XCTAssertEqual(frontend.txLayout, .contiguous)
    }

    func testJumboFramesAreMergedFromSeveralBuffers() throws {
        let (frontend, backend) = try makeFrontend()
        let jumbo = frame(9000, seed: 3)
        XCTAssertEqual(frontend.send(frames: [jumbo, frame(60, seed: 1)]), 2)
        XCTAssertEqual(backend.loopback(), 2)
        // 12 + 9000 bytes in 2060-byte buffers: 5 used elements for the first frame.
        assertFrames(frontend.receive(max: 8, timeout: 0), [jumbo, frame(60, seed: 1)])
        XCTAssertEqual(frontend.rxQueues[0].inFlight, 64)
    }

    func testWithoutMergeableBuffersEachBufferHoldsAWholeFrame() throws {
        var options = testOptions()
        options.mergeableRxBuffers = false
        let (frontend, backend) = try makeFrontend(options: options)
        XCTAssertFalse(frontend.negotiation.mergeableRxBuffers)
        let jumbo = frame(9000, seed: 9)
        XCTAssertEqual(frontend.send(frames: [jumbo]), 1)
        XCTAssertEqual(backend.loopback(), 1)
        assertFrames(frontend.receive(max: 8, timeout: 0), [jumbo])
    }

    func testTooLongFramesAreRefusedAndCounted() throws {
        var options = testOptions()
        options.maxFrameLength = 1518
        let (frontend, _) = try makeFrontend(options: options)
        XCTAssertEqual(frontend.send(frames: [frame(1519, seed: 0)]), 0)
        XCTAssertEqual(frontend.counters.txTooLong, 1)
        XCTAssertEqual(frontend.send(frames: [frame(1518, seed: 0)]), 1)
    }

    func testAFullRingIsCountedAndRecovers() throws {
        let (frontend, backend) = try makeFrontend(options: testOptions(queueSize: 16))
        XCTAssertEqual(frontend.send(count: 20, size: 64, pattern: 0x5a), 16)
        XCTAssertEqual(frontend.counters.txRingFull, 1)
        XCTAssertEqual(backend.loopback(), 16)
        XCTAssertEqual(frontend.send(count: 4, size: 64, pattern: 0x5a), 4, "enqueue reclaims when the ring is full")
        let got = frontend.receive(max: 32, timeout: 0)
        XCTAssertEqual(got.count, 16)
        XCTAssertEqual(got.first.map { Array($0[0..<6]) }, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        XCTAssertEqual(got.first.map { Array($0[6..<12]) }, [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef], "source is the device MAC")
        XCTAssertEqual(got.first.map { Array($0[12..<16]) }, [0x88, 0xb5, 0x5a, 0x5a])
    }

    func testRingIndexesWrapPast65535() throws {
        // 16-entry rings, 70 000 frames each way: avail.idx and used.idx wrap.
        let (frontend, backend) = try makeFrontend(options: testOptions(queueSize: 16))
        var sent = 0
        var received = 0
        var expectedNext: UInt32 = 0
        var outOfOrder = 0
        while received < 70_000 {
            let base = sent
            sent += frontend.send(count: 16, size: 60, queuePair: 0) { buffer, i in
                buffer.storeBytes(of: UInt32(base + i), toByteOffset: 20, as: UInt32.self)
            }
            backend.loopback(signalCalls: false)
            received += frontend.harvest(max: 64, queuePair: 0) { f in
                let n = f.loadUnaligned(fromByteOffset: 20, as: UInt32.self)
                if n != expectedNext { outOfOrder += 1 }
                expectedNext = n &+ 1
            }
        }
        XCTAssertEqual(outOfOrder, 0)
        XCTAssertEqual(sent, received)
        XCTAssertGreaterThan(frontend.rxQueues[0].lastUsed, 0)
        XCTAssertLessThan(Int(frontend.rxQueues[0].lastUsed), 70_000, "the 16-bit index wrapped")
        XCTAssertEqual(frontend.counters.rxErrors, 0)
        XCTAssertEqual(frontend.rxQueues[0].badUsedElements, 0)
    }

    func testReceiveSleepsUntilTheBackendCalls() throws {
        let (frontend, backend) = try makeFrontend()
        XCTAssertEqual(frontend.send(count: 3, size: 100, pattern: 1), 3)
        XCTAssertEqual(frontend.receive(max: 8, timeout: 0).count, 0, "nothing looped back yet")
        let device = Thread {
            usleep(50_000)
            backend.loopback()
        }
        device.start()
        let start = Clock.monotonicNanos()
        let got = frontend.receive(max: 8, timeout: 5)
        let waited = Double(Clock.monotonicNanos() - start) / 1e9
        XCTAssertEqual(got.count, 3)
        XCTAssertLessThan(waited, 4, "woken by the call, not by the timeout")
        XCTAssertGreaterThanOrEqual(frontend.counters.callWaits, 1)
    }

    func testReceiveTimesOut() throws {
        let (frontend, _) = try makeFrontend()
        let start = Clock.monotonicNanos()
        XCTAssertEqual(frontend.receive(max: 8, timeout: 0.05).count, 0)
        XCTAssertGreaterThanOrEqual(Clock.monotonicNanos() - start, 40_000_000)
    }

    func testKicksFollowAvailEvent() throws {
        let (frontend, backend) = try makeFrontend()
        XCTAssertTrue(frontend.negotiation.eventIndex)
        let kick = backend.kickFD(vring: 1)
        XCTAssertGreaterThanOrEqual(kick, 0)
        // avail_event 0: the first publish (0 → 4) crosses it and kicks.
        XCTAssertEqual(frontend.send(count: 4, size: 60, pattern: 0), 4)
        XCTAssertEqual(EventFD.drain(kick), 1)
        // 4 → 8 does not cross 0 again: no kick.
        XCTAssertEqual(frontend.send(count: 4, size: 60, pattern: 0), 4)
        XCTAssertEqual(EventFD.drain(kick), 0)
        // The device asks to be kicked once index 10 is made available.
        backend.suppressKicks(vring: 1, availEvent: 10)
        XCTAssertEqual(frontend.send(count: 2, size: 60, pattern: 0), 2) // 8 → 10: 10 not crossed
        XCTAssertEqual(EventFD.drain(kick), 0)
        XCTAssertEqual(frontend.send(count: 1, size: 60, pattern: 0), 1) // 10 → 11: crossed
        XCTAssertEqual(EventFD.drain(kick), 1)
        XCTAssertEqual(frontend.txQueues[0].kicks, 2)
        XCTAssertEqual(frontend.txQueues[0].kicksSuppressed, 2)
        frontend.refreshQueueCounters()
        XCTAssertEqual(frontend.counters.kicks, 3, "and one for the RX buffers posted at start")
    }

    func testKicksFollowNoNotifyWithoutEventIndex() throws {
        var options = testOptions()
        options.eventIndex = false
        let (frontend, backend) = try makeFrontend(options: options)
        XCTAssertFalse(frontend.negotiation.eventIndex)
        let kick = backend.kickFD(vring: 1)
        XCTAssertEqual(frontend.send(count: 2, size: 60, pattern: 0), 2)
        XCTAssertEqual(EventFD.drain(kick), 1)
        backend.suppressKicks(vring: 1, noNotify: true)
        XCTAssertEqual(frontend.send(count: 2, size: 60, pattern: 0), 2)
        XCTAssertEqual(EventFD.drain(kick), 0)
        backend.suppressKicks(vring: 1, noNotify: false)
        XCTAssertEqual(frontend.send(count: 2, size: 60, pattern: 0), 2)
        XCTAssertEqual(EventFD.drain(kick), 1)
    }

    func testEchoInsideTheReceiveCallback() throws {
        // The pattern `sluice-gen echo` uses: enqueue on TX while harvesting RX.
        let (frontend, backend) = try makeFrontend()
        let original = frame(128, seed: 5)
        XCTAssertEqual(frontend.send(frames: [original]), 1)
        backend.loopback()
        let n = frontend.harvest(max: 8, queuePair: 0) { f in
            XCTAssertTrue(frontend.enqueue(frame: f))
        }
        frontend.flush()
        XCTAssertEqual(n, 1)
        backend.loopback()
        assertFrames(frontend.receive(max: 8, timeout: 0), [original])
    }

    func testMultiqueuePairsAreIndependent() throws {
        var options = testOptions(queueSize: 16)
        options.queuePairs = 2
        let (frontend, backend) = try makeFrontend(options: options)
        XCTAssertEqual(frontend.send(frames: [frame(70, seed: 1)], queuePair: 1), 1)
        XCTAssertEqual(backend.loopback(pair: 0), 0)
        XCTAssertEqual(backend.loopback(pair: 1), 1)
        XCTAssertEqual(frontend.harvest(max: 8, queuePair: 0) { _ in }, 0)
        assertFrames(frontend.receive(max: 8, timeout: 0), [frame(70, seed: 1)])
    }
}
