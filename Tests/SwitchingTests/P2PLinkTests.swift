import Switching
import Virtio
import XCTest

/// `P2PDirection.poll()` between two mock guests: frames, headers, buffers,
/// drops and counters.
final class P2PLinkTests: XCTestCase {
    func testSmallAndFullSizeFramesArriveByteIdentical() throws {
        let f = try P2PFixture()
        let sizes = [64, 1518, 60, 1000, 14]
        let frames = sizes.enumerated().map { testFrame($0.element, seed: UInt8($0.offset)) }
        let heads = frames.map { f.txA.postTX($0) }
        f.rxB.postRX(bufferSize: 2048, count: 8)
        XCTAssertEqual(f.link.poll(), frames.count)

        let got = f.received()
        XCTAssertEqual(got.count, frames.count)
        for (k, r) in got.enumerated() where k < frames.count {
            assertBytes(r.frame, frames[k], "frame \(k)")
            XCTAssertEqual(r.chains.map(\.len), [UInt32(12 + sizes[k])], "used len = header + frame")
            XCTAssertEqual(r.header, netHeader(numBuffers: 1), "header of frame \(k)")
        }
        // Every TX chain is returned to A, in order, with len 0 (the device wrote nothing).
        let usedA = f.txA.takeUsed()
        XCTAssertEqual(usedA.map(\.id), heads.map(UInt32.init))
        XCTAssertTrue(usedA.allSatisfy { $0.len == 0 })
        XCTAssertEqual(f.counters(), ["a.rx_packets": 5, "a.rx_bytes": UInt64(sizes.reduce(0, +)),
                                      "b.tx_packets": 5, "b.tx_bytes": UInt64(sizes.reduce(0, +))])
        XCTAssertTrue(f.signalled(f.callA))
        XCTAssertTrue(f.signalled(f.callB))
        XCTAssertEqual(f.link.poll(), 0, "nothing left")
    }

    func testEveryHeaderSizeCombinationAndLayout() throws {
        for hA in [10, 12] {
            for hB in [10, 12] {
                for layout in 0..<4 {
                    let f = try P2PFixture(a: GuestFeatures(headerSize: hA), b: GuestFeatures(headerSize: hB))
                    let frames = [testFrame(64, seed: 1), testFrame(1518, seed: 2), testFrame(333, seed: 3)]
                    // TX layouts: contiguous, header apart, many small pieces, indirect.
                    let split: [Int] = [[], [hA], [hA, 7, 1, 100, 3], [hA, 20]][layout]
                    let hdr = netHeader(flags: 0, csumStart: 0x1234, csumOffset: 0x5678, numBuffers: 0xbeef, size: hA)
                    for fr in frames { f.txA.postTX(fr, header: hdr, split: split, indirect: layout == 3) }
                    // RX layouts: one buffer, header apart, several segments, indirect.
                    switch layout {
                    case 0: f.rxB.postRX(bufferSize: 2048, count: 3)
                    case 1: f.rxB.postRX(bufferSize: 1024, count: 3, segments: 2)
                    case 2: f.rxB.postRX(bufferSize: 97, count: 3, segments: 20)
                    default: f.rxB.postRX(bufferSize: 800, count: 3, segments: 2, indirect: true)
                    }
                    XCTAssertEqual(f.link.poll(), 3)
                    let got = f.received()
                    let what = "A \(hA)-byte header, B \(hB), layout \(layout)"
                    XCTAssertEqual(got.count, 3, what)
                    for (k, r) in got.enumerated() {
                        assertBytes(r.frame, frames[k], "\(what): frame \(k)")
                        XCTAssertEqual(r.chains.map(\.len), [UInt32(hB + frames[k].count)], what)
                        // No offload asked: flags and GSO fields zero (csum_start/offset mean nothing
                        // without NEEDS_CSUM); num_buffers (when B has it) is 1, never A's value.
                        XCTAssertEqual(Array(r.header.prefix(6)), [0, 0, 0, 0, 0, 0], what)
                        if hB == 12 { XCTAssertEqual(Array(r.header.suffix(2)), [1, 0], what) }
                    }
                    XCTAssertEqual(f.counter("b", "tx_packets"), 3, what)
                }
            }
        }
    }

    func testMergeableReceiverSpreadsAFrameOverSmallBuffers() throws {
        let f = try P2PFixture(b: GuestFeatures(mergeable: true))
        let frame = testFrame(1518, seed: 9)
        f.txA.postTX(frame)
        let rx = f.rxB.postRX(bufferSize: 512, count: 8)
        XCTAssertEqual(f.link.poll(), 1)
        let got = f.received()
        XCTAssertEqual(got.count, 1)
        guard let r = got.first else { return }
        XCTAssertEqual(r.chains.map(\.id), rx.prefix(3).map(UInt32.init))
        XCTAssertEqual(r.chains.map(\.len), [512, 512, 1530 - 1024])
        XCTAssertEqual(r.header, netHeader(numBuffers: 3))
        assertBytes(r.frame, frame, "merged frame")
        XCTAssertEqual(f.counter("b", "tx_packets"), 1)
        XCTAssertEqual(f.rxB.state.pointee.lastAvail, 3, "exactly three RX chains consumed")
    }

    /// Several frames in one burst that each need more than one RX buffer: every
    /// frame must land in its own buffers.
    func testMergeableSeveralFramesInOneBurst() throws {
        let f = try P2PFixture(b: GuestFeatures(mergeable: true))
        let frames = [testFrame(1518, seed: 1), testFrame(1518, seed: 2), testFrame(700, seed: 3)]
        for fr in frames { f.txA.postTX(fr) }
        f.rxB.postRX(bufferSize: 512, count: 16)
        XCTAssertEqual(f.link.poll(), 3)
        let got = f.received()
        XCTAssertEqual(got.count, 3)
        for (k, r) in got.enumerated() where k < frames.count { assertBytes(r.frame, frames[k], "frame \(k)") }
        let ids = got.flatMap { $0.chains.map(\.id) }
        XCTAssertEqual(ids, Array(0..<8), "each RX chain used once, in ring order")
        XCTAssertEqual(f.rxB.state.pointee.lastAvail, 8)
    }

    /// A small frame (one buffer) then a big one (three buffers) in the same burst.
    func testMergeableBigFrameAfterSmallFrame() throws {
        let f = try P2PFixture(b: GuestFeatures(mergeable: true))
        let frames = [testFrame(64, seed: 1), testFrame(1518, seed: 2)]
        for fr in frames { f.txA.postTX(fr) }
        f.rxB.postRX(bufferSize: 512, count: 8)
        XCTAssertEqual(f.link.poll(), 2)
        let got = f.received()
        XCTAssertEqual(got.count, 2)
        for (k, r) in got.enumerated() where k < frames.count { assertBytes(r.frame, frames[k], "frame \(k)") }
        XCTAssertEqual(got.flatMap { $0.chains.map(\.id) }, [0, 1, 2, 3])
    }

    func testMergeableWithoutEnoughRoomDropsAndKeepsTheBuffers() throws {
        let f = try P2PFixture(b: GuestFeatures(mergeable: true))
        f.txA.postTX(testFrame(1518))
        f.rxB.postRX(bufferSize: 512, count: 2)   // 1024 < 1530
        XCTAssertEqual(f.link.poll(), 1)
        XCTAssertEqual(f.rxB.takeUsed().count, 0)
        XCTAssertEqual(f.rxB.state.pointee.lastAvail, 0, "buffers stay for the next frame")
        XCTAssertEqual(f.counter("b", "drop.no_rx_buffer"), 1)
        XCTAssertEqual(f.txA.takeUsed().count, 1)
    }

    func testWithoutMergeableATooSmallBufferIsReturnedEmpty() throws {
        let f = try P2PFixture()
        f.txA.postTX(testFrame(1518))
        let rx = f.rxB.postRX(bufferSize: 512, count: 1)
        XCTAssertEqual(f.link.poll(), 1)
        let used = f.rxB.takeUsed()
        XCTAssertEqual(used.map(\.id), rx.map(UInt32.init))
        XCTAssertEqual(used.map(\.len), [0])
        XCTAssertEqual(f.counter("b", "drop.no_rx_buffer"), 1)
        XCTAssertEqual(f.counter("b", "tx_packets"), 0)
        XCTAssertEqual(f.counter("a", "rx_packets"), 1, "taken from A all the same")
        XCTAssertEqual(f.txA.takeUsed().count, 1)
    }

    func testNoRxBuffersDropsButReturnsTxChains() throws {
        let f = try P2PFixture()
        let heads = (0..<5).map { f.txA.postTX(testFrame(100, seed: UInt8($0))) }
        XCTAssertEqual(f.link.poll(), 5)
        XCTAssertEqual(f.txA.takeUsed().map(\.id), heads.map(UInt32.init))
        XCTAssertEqual(f.rxB.usedIdx, 0)
        XCTAssertEqual(f.counters(), ["a.rx_packets": 5, "a.rx_bytes": 500, "b.drop.no_rx_buffer": 5])
        XCTAssertFalse(f.signalled(f.callB), "nothing given to B: no interrupt")
        // Buffers arrive later: the next frames get through.
        f.rxB.postRX(bufferSize: 2048, count: 2)
        f.txA.postTX(testFrame(100))
        XCTAssertEqual(f.link.poll(), 1)
        XCTAssertEqual(f.received().count, 1)
    }

    func testFewerRxBuffersThanFrames() throws {
        let f = try P2PFixture()
        for k in 0..<4 { f.txA.postTX(testFrame(80, seed: UInt8(k))) }
        f.rxB.postRX(bufferSize: 2048, count: 1)
        XCTAssertEqual(f.link.poll(), 4)
        XCTAssertEqual(f.received().count, 1)
        XCTAssertEqual(f.counter("b", "drop.no_rx_buffer"), 3)
    }

    func testDestinationNotLiveCountsLinkDown() throws {
        let breakers: [(inout VirtqueueState) -> Void] = [
            { $0.started = false }, { $0.enabled = false }, { $0.addressed = false }, { $0.memory = nil }, { $0.broken = true },
        ]
        for (k, breakIt) in breakers.enumerated() {
            let f = try P2PFixture()
            f.rxB.postRX(bufferSize: 2048, count: 4)
            let heads = (0..<3).map { _ in f.txA.postTX(testFrame(64)) }
            breakIt(&f.rxB.state.pointee)
            XCTAssertEqual(f.link.poll(), 3, "case \(k)")
            XCTAssertEqual(f.txA.takeUsed().map(\.id), heads.map(UInt32.init), "case \(k): TX chains returned")
            XCTAssertEqual(f.rxB.usedIdx, 0, "case \(k)")
            // Taken from A (counted there) and dropped at B: rx(a) = tx(b) + drops(b).
            XCTAssertEqual(f.counters(), ["a.rx_packets": 3, "b.drop.link_down": 3], "case \(k)")
        }
    }

    func testSourceNotLiveDoesNothing() throws {
        let f = try P2PFixture()
        f.txA.postTX(testFrame(64))
        f.rxB.postRX(bufferSize: 2048)
        f.txA.state.pointee.enabled = false
        XCTAssertEqual(f.link.poll(), 0)
        XCTAssertEqual(f.txA.usedIdx, 0)
        XCTAssertEqual(f.counters(), [:])
    }

    func testBurstIsAtMostThirtyTwo() throws {
        let f = try P2PFixture()
        for k in 0..<40 { f.txA.postTX(testFrame(64, seed: UInt8(k))) }
        f.rxB.postRX(bufferSize: 256, count: 64)
        XCTAssertEqual(f.link.poll(), P2PDirection.burst)
        XCTAssertEqual(f.link.poll(), 40 - P2PDirection.burst)
        XCTAssertEqual(f.link.poll(), 0)
        XCTAssertEqual(f.received().count, 40)
        XCTAssertEqual(f.counter("b", "tx_packets"), 40)
    }

    func testHostileTxChainMidBurstDropsOnlyThatFrame() throws {
        let f = try P2PFixture()
        let frames = (0..<5).map { testFrame(100 + $0, seed: UInt8($0)) }
        var heads: [UInt16] = []
        for (k, fr) in frames.enumerated() {
            if k == 2 {
                // A looping chain.
                let h = f.txA.takeDescriptorSlot()
                f.txA.setDescriptor(h, Desc(addr: f.memA.alloc(64), len: 64, flags: VringDescFlag.next, next: h))
                f.txA.publish(h)
                heads.append(h)
            } else {
                heads.append(f.txA.postTX(fr))
            }
        }
        f.rxB.postRX(bufferSize: 2048, count: 8)
        XCTAssertEqual(f.link.poll(), 5)
        let got = f.received()
        XCTAssertEqual(got.count, 4)
        for (r, k) in zip(got, [0, 1, 3, 4]) { assertBytes(r.frame, frames[k], "frame \(k)") }
        XCTAssertEqual(f.txA.takeUsed().map(\.id), heads.map(UInt32.init), "the bad chain is returned too")
        XCTAssertEqual(f.counter("a", "drop.bad_desc"), 1)
        XCTAssertEqual(f.counter("a", "rx_packets"), 4)
        XCTAssertEqual(f.counter("b", "tx_packets"), 4)
    }

    func testEveryKindOfBadTxChainIsCountedAndSurvived() throws {
        let f = try P2PFixture()
        let m = f.memA
        let bad: [[Desc]] = [
            [Desc(addr: 0, len: 100)],                                           // outside memory
            [Desc(addr: m.end - 10, len: 100)],                                  // straddles the end
            [Desc(addr: UInt64.max - 5, len: 100)],                              // wraps
            [Desc(addr: m.alloc(100), len: 100, flags: VringDescFlag.write)],    // writable in TX
            [Desc(addr: m.alloc(100), len: 100, flags: VringDescFlag.next, next: 0xffff)],   // next out of range
        ]
        var heads: [UInt16] = []
        for descs in bad {
            let h = f.txA.takeDescriptorSlot()
            f.txA.setDescriptor(h, descs[0])
            f.txA.publish(h)
            heads.append(h)
        }
        f.txA.setAvailSlot(Int(f.txA.availIdx), head: 0xfff0)   // a head that is no descriptor
        f.txA.setAvailIdx(f.txA.availIdx &+ 1)
        let good = f.txA.postTX(testFrame(64))
        f.rxB.postRX(bufferSize: 2048, count: 4)
        XCTAssertEqual(f.link.poll(), bad.count + 2)
        XCTAssertEqual(f.counter("a", "drop.bad_desc"), UInt64(bad.count + 1))
        XCTAssertEqual(f.txA.takeUsed().map(\.id), (heads + [good]).map(UInt32.init), "head 0xfff0 is not returned")
        XCTAssertEqual(f.received().count, 1)
    }

    func testBadLengths() throws {
        let f = try P2PFixture(maxFrame: 1518)
        f.txA.postTX(testFrame(1519))                 // over the port's frame limit
        f.txA.postTX(Array(testFrame(14).prefix(13))) // shorter than an Ethernet header
        let h = f.txA.takeDescriptorSlot()            // shorter than the virtio-net header
        f.txA.setDescriptor(h, Desc(addr: f.memA.alloc(16), len: 8))
        f.txA.publish(h)
        f.txA.postTX(testFrame(1518))
        f.rxB.postRX(bufferSize: 2048, count: 4)
        XCTAssertEqual(f.link.poll(), 4)
        XCTAssertEqual(f.counter("a", "drop.bad_length"), 3)
        XCTAssertEqual(f.txA.takeUsed().count, 4)
        XCTAssertEqual(f.received().map(\.frame.count), [1518])
    }

    func testHostileRxChainsAreReturnedAndSkipped() throws {
        let f = try P2PFixture()
        f.txA.postTX(testFrame(200, seed: 1))
        f.txA.postTX(testFrame(300, seed: 2))
        // B: a readable (wrong direction) RX chain, a head out of range, a chain shorter than the header, then good ones.
        let wrong = f.rxB.makeChain([(f.memB.alloc(2048), 2048)], writable: false)
        f.rxB.publish(wrong)
        f.rxB.setAvailSlot(Int(f.rxB.availIdx), head: 0x4000)
        f.rxB.setAvailIdx(f.rxB.availIdx &+ 1)
        let tiny = f.rxB.makeChain([(f.memB.alloc(8), 8)], writable: true)
        f.rxB.publish(tiny)
        let good = f.rxB.postRX(bufferSize: 2048, count: 2)
        XCTAssertEqual(f.link.poll(), 2)
        let used = f.rxB.takeUsed()
        XCTAssertEqual(used.map(\.id), [UInt32(wrong), UInt32(tiny)] + good.map(UInt32.init))
        XCTAssertEqual(used.map(\.len), [0, 0, 212, 312])
        XCTAssertEqual(f.counter("b", "drop.bad_desc"), 3)
        XCTAssertEqual(f.counter("b", "tx_packets"), 2)
        XCTAssertEqual(f.rxB.state.pointee.lastAvail, 5)
    }

    func testGuestClaimingAFullRingOfGarbageDoesNotCrash() throws {
        let f = try P2PFixture(queueSize: 64)
        f.txA.setAvailIdx(0xffff)        // 64 "available" entries, all head 0, descriptor 0 zeroed
        f.rxB.setAvailIdx(0x8000)
        for _ in 0..<4 { XCTAssertEqual(f.link.poll(), P2PDirection.burst) }
        // Descriptor 0 is all zeroes: an empty buffer, too short for a frame.
        XCTAssertEqual(f.counter("a", "drop.bad_length"), 4 * UInt64(P2PDirection.burst))
        XCTAssertEqual(f.txA.usedIdx, 128, "every entry taken is returned")
    }

    func testTxNotificationsAreSuppressedWhilePolling() throws {
        let f = try P2PFixture(a: GuestFeatures(eventIdx: false), b: GuestFeatures(eventIdx: true))
        f.rxB.usedEvent = 5    // B wants an interrupt only once used.idx passes 5
        for k in 0..<3 { f.txA.postTX(testFrame(64, seed: UInt8(k))) }
        f.rxB.postRX(bufferSize: 2048, count: 10)
        XCTAssertEqual(f.link.poll(), 3)
        XCTAssertEqual(f.txA.usedFlags & VringFlag.noNotify, VringFlag.noNotify, "A told not to kick")
        XCTAssertFalse(f.signalled(f.callB), "used.idx 3 has not passed used_event 5")
        for k in 0..<4 { f.txA.postTX(testFrame(64, seed: UInt8(k))) }
        XCTAssertEqual(f.link.poll(), 4)
        XCTAssertTrue(f.signalled(f.callB), "used.idx 7 passed 5")
    }

    // MARK: IN_ORDER and notification timing

    func testBuffersAreUsedInTheOrderTheyWereMadeAvailable() throws {
        // IN_ORDER (offered to every guest): TX chains come back in avail order whatever
        // happened to each frame, and RX chains are filled in avail order.
        let f = try P2PFixture()
        var heads: [UInt16] = []
        heads.append(f.txA.postTX(testFrame(64, seed: 1)))
        heads.append(f.txA.postTX(Array(testFrame(14).prefix(13))))   // too short: bad_length
        heads.append(f.txA.postTX(testFrame(64, seed: 3)))
        heads.append(f.txA.postTX(testFrame(64, seed: 4)))      // no RX buffer left: no_rx_buffer
        let rx = f.rxB.postRX(bufferSize: 2048, count: 2)
        XCTAssertEqual(f.link.poll(), 4)
        XCTAssertEqual(f.txA.takeUsed().map(\.id), heads.map(UInt32.init))
        XCTAssertEqual(f.received().map { UInt16($0.chains[0].id) }, rx)
        XCTAssertEqual(f.counter("a", "drop.bad_length"), 1)
        XCTAssertEqual(f.counter("b", "drop.no_rx_buffer"), 1)
    }

    func testBytesAlreadyInPlaceAreKeptAndStaleOnesReplaced() throws {
        // The fast path stores a header word or a used entry only where it differs from
        // what guest memory holds (recycled buffers and in-order slots usually hold it
        // already). Whatever was there before, the guest must read exactly the right bytes.
        let f = try P2PFixture(queueSize: 8)
        let right = netHeader(numBuffers: 1)
        let ringUsed = f.rxB.memory.pointer(f.rxB.usedGPA) + 4
        for lap in 0..<3 {   // three laps of an 8-entry ring: slots and buffers are reused
            let frames = (0..<4).map { testFrame(60 + $0, seed: UInt8(lap * 4 + $0)) }
            for fr in frames { f.txA.postTX(fr) }
            let rx = f.rxB.postRX(bufferSize: 256, count: 4)
            let gpa = rx.map { f.rxB.buffers[$0]![0].gpa }
            f.rxB.memory.write(right, at: gpa[0])                                  // exactly right
            f.rxB.memory.write(netHeader(numBuffers: 0), at: gpa[1])               // last word stale
            f.rxB.memory.write(netHeader(flags: 2, numBuffers: 1), at: gpa[2])     // first word stale
            // gpa[3] keeps the 0xa5 fill: both words stale.
            let firstSlot = Int((lap * 4) % 8)
            (ringUsed + firstSlot * 8).storeBytes(of: UInt32(rx[0]), as: UInt32.self)             // right entry
            (ringUsed + firstSlot * 8 + 4).storeBytes(of: UInt32(12 + 60), as: UInt32.self)
            (ringUsed + (firstSlot + 1) * 8).storeBytes(of: UInt32(rx[1]), as: UInt32.self)       // stale len
            (ringUsed + (firstSlot + 1) * 8 + 4).storeBytes(of: UInt32(999), as: UInt32.self)
            (ringUsed + (firstSlot + 2) * 8).storeBytes(of: UInt32(77), as: UInt32.self)          // stale id
            (ringUsed + (firstSlot + 2) * 8 + 4).storeBytes(of: UInt32(12 + 62), as: UInt32.self)
            XCTAssertEqual(f.link.poll(), 4, "lap \(lap)")
            let got = f.received()
            XCTAssertEqual(got.map { $0.chains.map(\.id) }, rx.map { [UInt32($0)] }, "lap \(lap)")
            XCTAssertEqual(got.map { $0.chains.map(\.len) }, frames.map { [UInt32(12 + $0.count)] }, "lap \(lap)")
            for (k, r) in got.enumerated() where k < frames.count {
                XCTAssertEqual(r.header, right, "lap \(lap) header \(k)")
                assertBytes(r.frame, frames[k], "lap \(lap) frame \(k)")
            }
            XCTAssertEqual(f.txA.takeUsed().count, 4)
        }
    }

    func testInterruptAskedForRightAfterABurstArrivesOnTheNextPoll() throws {
        // The burst checks the guest's flags without a barrier; a guest that turns
        // interrupts on just then is signalled by a later poll, even with no new frames.
        let f = try P2PFixture(a: GuestFeatures(eventIdx: false), b: GuestFeatures(eventIdx: false))
        f.rxB.availFlags = VringFlag.noInterrupt
        f.txA.availFlags = VringFlag.noInterrupt
        f.rxB.postRX(bufferSize: 2048, count: 4)
        for k in 0..<3 { f.txA.postTX(testFrame(64, seed: UInt8(k))) }
        XCTAssertEqual(f.link.poll(), 3)
        XCTAssertFalse(f.signalled(f.callB), "B suppressed interrupts")
        XCTAssertFalse(f.signalled(f.callA), "A suppressed interrupts")
        f.rxB.availFlags = 0
        f.txA.availFlags = 0
        XCTAssertEqual(f.link.poll(), 0)
        XCTAssertTrue(f.signalled(f.callB), "B turned interrupts on after the burst")
        XCTAssertTrue(f.signalled(f.callA), "A turned interrupts on after the burst")
        XCTAssertEqual(f.link.poll(), 0)
        XCTAssertFalse(f.signalled(f.callB), "signalled once")
    }

    func testASenderThatGoesDownStillLetsTheReceiverBeSignalled() throws {
        // The receiver turns interrupts on after the last burst, then the sender's queue
        // stops (guest reset): the next poll moves nothing and still signals the receiver.
        let f = try P2PFixture(b: GuestFeatures(eventIdx: false))
        f.rxB.availFlags = VringFlag.noInterrupt
        f.rxB.postRX(bufferSize: 2048, count: 2)
        f.txA.postTX(testFrame(64))
        XCTAssertEqual(f.link.poll(), 1)
        XCTAssertFalse(f.signalled(f.callB))
        f.rxB.availFlags = 0
        f.txA.state.pointee.enabled = false
        XCTAssertEqual(f.link.poll(), 0)
        XCTAssertTrue(f.signalled(f.callB), "the frame B received is announced")
    }

    func testSettleSignalsWhatThePollLeftOpen() throws {
        // Before a worker sleeps it settles with a barrier (event and interval modes).
        let f = try P2PFixture(a: GuestFeatures(eventIdx: true), b: GuestFeatures(eventIdx: true))
        f.rxB.usedEvent = 10
        f.rxB.postRX(bufferSize: 2048, count: 4)
        for k in 0..<2 { f.txA.postTX(testFrame(64, seed: UInt8(k))) }
        XCTAssertEqual(f.link.poll(), 2)
        XCTAssertFalse(f.signalled(f.callB), "used.idx 2 has not passed used_event 10")
        f.rxB.usedEvent = 0    // the guest now wants to hear about entry 1 onwards
        f.link.settleNotifications()
        XCTAssertTrue(f.signalled(f.callB))
        f.link.settleNotifications()
        XCTAssertFalse(f.signalled(f.callB), "nothing new: no second signal")
    }

    func testAGuestThatNeverWantsInterruptsIsNeverSignalled() throws {
        // More than a ring's worth of entries while interrupts are off: the backlog
        // check settles with a barrier and still does not signal.
        let f = try P2PFixture(b: GuestFeatures(eventIdx: false), queueSize: 64)
        f.rxB.availFlags = VringFlag.noInterrupt
        for round in 0..<6 {
            f.rxB.postRX(bufferSize: 2048, count: 32)
            for k in 0..<32 { f.txA.postTX(testFrame(64, seed: UInt8(k))) }
            XCTAssertEqual(f.link.poll(), 32, "round \(round)")
            XCTAssertEqual(f.received().count, 32)
            _ = f.txA.takeUsed()
        }
        XCTAssertFalse(f.signalled(f.callB))
        XCTAssertLessThan(f.rxB.state.pointee.usedIdx &- f.rxB.state.pointee.signalledUsed, 64, "backlog bounded")
    }
}
