#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import XCTest
@testable import VhostUser

/// The driver side of a split ring on plain memory, with `FakeDeviceRing` as the device.
final class FrontendDriverQueueTests: XCTestCase {
    private var regions: [MappedRegion] = []

    /// A queue at guest physical address 0 of fresh memory, and the device view of it.
    private func makeQueue(size: Int, eventIndex: Bool, stride: Int = 128,
                           kick: Int32 = -1, call: Int32 = -1) throws -> (DriverQueue, FakeDeviceRing) {
        let layout = try XCTUnwrap(DriverQueueLayout(size: size))
        let bytes = DriverQueue.bytesNeeded(layout: layout, slotStride: stride)
        let region = try MappedRegion.anonymous(length: bytes)
        regions.append(region)
        let q = DriverQueue(vringIndex: 0, layout: layout, memory: region.base, gpa: 0, slotStride: stride,
                            eventIndex: eventIndex, kickFD: kick, callFD: call)
        let base = region.base
        let device = FakeDeviceRing(desc: q.descriptorTable, avail: q.availRing, used: q.usedRing, size: size,
                                    eventIndex: eventIndex,
                                    translate: { gpa, len in gpa + UInt64(len) <= UInt64(bytes) ? base + Int(gpa) : nil })
        return (q, device)
    }

    func testLayout() throws {
        let l = try XCTUnwrap(DriverQueueLayout(size: 256))
        XCTAssertEqual(l.descriptorTableBytes, 4096)
        XCTAssertEqual(l.availRingBytes, 518)
        XCTAssertEqual(l.usedRingBytes, 2054)
        XCTAssertEqual(l.usedEventOffset, 516)
        XCTAssertEqual(l.availEventOffset, 2052)
        XCTAssertNil(DriverQueueLayout(size: 0))
        XCTAssertNil(DriverQueueLayout(size: 3))
        XCTAssertNil(DriverQueueLayout(size: 65_536))
        XCTAssertNotNil(DriverQueueLayout(size: 32_768))
        XCTAssertEqual(DriverQueueLayout.alignUp(65, 64), 128)
        XCTAssertEqual(DriverQueue.bytesNeeded(layout: l, slotStride: 64), 4096 + 576 + 2112 + 256 * 64)
    }

    func testNeedsEventArithmetic() {
        // event in [old, new) → true.
        XCTAssertTrue(virtqueueNeedsEvent(event: 0, new: 1, old: 0))
        XCTAssertTrue(virtqueueNeedsEvent(event: 5, new: 8, old: 4))
        XCTAssertTrue(virtqueueNeedsEvent(event: 4, new: 8, old: 4))
        XCTAssertFalse(virtqueueNeedsEvent(event: 8, new: 8, old: 4))
        XCTAssertFalse(virtqueueNeedsEvent(event: 3, new: 8, old: 4))
        XCTAssertFalse(virtqueueNeedsEvent(event: 9, new: 8, old: 4))
        // Across the 16-bit wrap.
        XCTAssertTrue(virtqueueNeedsEvent(event: 65_535, new: 5, old: 65_530))
        XCTAssertTrue(virtqueueNeedsEvent(event: 2, new: 5, old: 65_530))
        XCTAssertFalse(virtqueueNeedsEvent(event: 5, new: 5, old: 65_530))
        XCTAssertFalse(virtqueueNeedsEvent(event: 65_529, new: 5, old: 65_530))
        // Nothing moved: never.
        XCTAssertFalse(virtqueueNeedsEvent(event: 7, new: 7, old: 7))
    }

    func testIndexesWrapWithOutOfOrderCompletions() throws {
        let (q, d) = try makeQueue(size: 8, eventIndex: true)
        var device = d
        var posted: [UInt16: Int] = [:] // head → chain length
        var rounds = 0
        var taken = 0
        while rounds < 30_000 { // 30 000 × ~3 chains: both indexes wrap several times
            rounds += 1
            // Post chains of 1 and 2 descriptors while they fit.
            var length = rounds % 2 + 1
            while let head = q.allocateChain(length) {
                q.setDescriptor(head, address: q.slotGPA(head), length: 60, flags: length == 2 ? DriverQueueLayout.descriptorNext : 0)
                if length == 2 {
                    let second = q.following(head)
                    q.setDescriptor(second, address: q.slotGPA(second), length: 40, flags: 0)
                }
                q.makeAvailable(head: head)
                XCTAssertNil(posted[head])
                posted[head] = length
                length = 3 - length
            }
            XCTAssertEqual(q.unpublished, posted.count)
            q.publish()
            XCTAssertEqual(q.unpublished, 0)
            // The device completes them in reverse order.
            var chains: [(UInt16, Int)] = []
            while let (head, segments) = device.popChain() {
                chains.append((head, segments.reduce(0) { $0 + $1.length }))
            }
            for (head, bytes) in chains.reversed() { device.pushUsed(head: head, length: bytes) }
            _ = device.publishUsed()
            while let (head, written) = q.takeUsed() {
                let chain = try XCTUnwrap(posted.removeValue(forKey: head))
                XCTAssertEqual(Int(written), chain == 2 ? 100 : 60)
                q.release(head: head)
                taken += 1
            }
            XCTAssertTrue(posted.isEmpty)
            XCTAssertEqual(q.freeCount, 8)
        }
        XCTAssertGreaterThan(taken, 65_536 * 2)
        XCTAssertEqual(q.badUsedElements, 0)
    }

    func testAUsedElementNamingNoChainIsSkipped() throws {
        let (q, d) = try makeQueue(size: 4, eventIndex: false)
        var device = d
        var heads: [UInt16] = []
        for _ in 0..<3 {
            let head = try XCTUnwrap(q.allocateChain(1))
            q.setDescriptor(head, address: q.slotGPA(head), length: 64, flags: DriverQueueLayout.descriptorWrite)
            q.makeAvailable(head: head)
            heads.append(head)
        }
        q.publish()
        XCTAssertFalse(heads.contains(3))
        device.pushUsed(head: 3, length: 10) // never made available
        device.pushUsed(head: 99, length: 10) // out of range
        device.pushUsed(head: heads[1], length: 64)
        _ = device.publishUsed()
        let got = q.takeUsed()
        XCTAssertEqual(got?.head, heads[1])
        XCTAssertEqual(got?.length, 64)
        XCTAssertEqual(q.badUsedElements, 2)
        XCTAssertNil(q.takeUsed())
        q.release(head: heads[1])
        XCTAssertEqual(q.freeCount, 2)
    }

    func testAUsedIndexTooFarAheadIsNotBelieved() throws {
        let (q, _) = try makeQueue(size: 4, eventIndex: false)
        let head = try XCTUnwrap(q.allocateChain(1))
        q.makeAvailable(head: head)
        q.publish()
        // A broken device claims 1000 used entries with one chain in flight.
        q.usedRing.storeBytes(of: UInt16(1000), toByteOffset: 2, as: UInt16.self)
        q.usedRing.storeBytes(of: UInt32(head), toByteOffset: 4, as: UInt32.self)
        XCTAssertEqual(q.takeUsed()?.head, head)
        XCTAssertNil(q.takeUsed())
        XCTAssertGreaterThanOrEqual(q.badUsedElements, 1)
    }

    func testCallSuppressionWithEventIndex() throws {
        let call = try EventFD.create()
        defer { closeFD(call) }
        let (q, d) = try makeQueue(size: 8, eventIndex: true, call: call)
        var device = d
        let usedEvent = { q.availRing.load(fromByteOffset: q.layout.usedEventOffset, as: UInt16.self) }
        q.disableCalls()
        XCTAssertEqual(usedEvent(), 65_535, "just behind the consumer")
        // The device completes one chain: used_event not crossed, no call wanted.
        let head = try XCTUnwrap(q.allocateChain(1))
        q.makeAvailable(head: head)
        q.publish()
        _ = device.popChain()
        device.pushUsed(head: head, length: 1)
        XCTAssertFalse(device.publishUsed())
        // Enabling calls with an entry already there says so instead of waiting.
        XCTAssertTrue(q.enableCalls())
        XCTAssertEqual(usedEvent(), 0)
        XCTAssertNotNil(q.takeUsed())
        q.release(head: head)
        XCTAssertFalse(q.enableCalls())
        XCTAssertEqual(usedEvent(), 1)
        // Now the next completion crosses used_event: the device calls.
        let again = try XCTUnwrap(q.allocateChain(1))
        q.makeAvailable(head: again)
        q.publish()
        _ = device.popChain()
        device.pushUsed(head: again, length: 1)
        XCTAssertTrue(device.publishUsed())
        EventFD.signal(call)
        XCTAssertTrue(q.waitForCall(timeoutMilliseconds: 1000))
        XCTAssertFalse(q.callsEnabled)
        XCTAssertEqual(usedEvent(), 0, "disabled again: just behind lastUsed 1")
    }

    func testCallSuppressionWithTheFlag() throws {
        let (q, _) = try makeQueue(size: 8, eventIndex: false)
        let flags = { q.availRing.load(as: UInt16.self) }
        q.disableCalls()
        XCTAssertEqual(flags(), DriverQueueLayout.availNoInterrupt)
        XCTAssertFalse(q.enableCalls())
        XCTAssertEqual(flags(), 0)
        // No call eventfd and nothing used: the wait returns at once, empty-handed.
        XCTAssertFalse(q.waitForCall(timeoutMilliseconds: 10_000))
        XCTAssertEqual(flags(), DriverQueueLayout.availNoInterrupt)
    }

    func testPublishWithNothingNewDoesNothing() throws {
        let kick = try EventFD.create()
        defer { closeFD(kick) }
        let (q, _) = try makeQueue(size: 4, eventIndex: false, kick: kick)
        XCTAssertFalse(q.publish())
        XCTAssertEqual(EventFD.drain(kick), 0)
        let head = try XCTUnwrap(q.allocateChain(1))
        q.makeAvailable(head: head)
        XCTAssertTrue(q.publish())
        XCTAssertEqual(EventFD.drain(kick), 1)
        XCTAssertEqual(q.availRing.load(fromByteOffset: 2, as: UInt16.self), 1)
        XCTAssertNil(q.allocateChain(4), "3 free, 4 asked")
        XCTAssertNil(q.allocateChain(0))
    }
}
