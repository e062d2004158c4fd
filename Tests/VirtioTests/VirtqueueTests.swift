#if canImport(Glibc)
import Glibc
#endif
import Platform
import Virtio
import XCTest

/// Ring indices: what the guest claims, wrap-around at 65535, and the used ring.
final class VirtqueueTests: XCTestCase {
    private var memory: MockMemory!
    private var q: MockQueue!

    override func setUpWithError() throws {
        memory = try MockMemory(size: 1 << 20)
        q = MockQueue(memory: memory, size: 8)
    }

    override func tearDown() {
        q = nil
        memory = nil
    }

    func testAvailableCountFollowsAvailIdx() {
        XCTAssertEqual(q.queue.availableCount(), 0)
        for i in 0..<5 { q.publish(UInt16(i)) }
        XCTAssertEqual(q.queue.availableCount(), 5)
        for i in 0..<5 { XCTAssertEqual(q.queue.availHead(i), UInt16(i)) }
        q.queue.consume(3)
        XCTAssertEqual(q.queue.availableCount(), 2)
        XCTAssertEqual(q.queue.availHead(0), 3)
    }

    func testGuestClaimingTooMuchIsClampedToQueueSize() {
        for claim: UInt16 in [9, 100, 0x7fff, 0xffff] {
            q.setAvailIdx(claim)
            XCTAssertEqual(q.queue.availableCount(), 8, "avail.idx \(claim) with last_avail 0")
        }
        // avail.idx moved backwards (wraps to a huge count): still at most the ring.
        q.setBase(100)
        q.setAvailIdx(90)
        XCTAssertEqual(q.queue.availableCount(), 8)
    }

    func testIndexWrapAroundAt65535() {
        q.setBase(65533)
        for head: UInt16 in [1, 2, 3, 4, 5] { q.publish(head) }
        XCTAssertEqual(q.availIdx, 2, "avail.idx wrapped")
        XCTAssertEqual(q.queue.availableCount(), 5)
        for i in 0..<5 { XCTAssertEqual(q.queue.availHead(i), UInt16(i + 1), "slot \(i)") }
        for i in 0..<5 { q.queue.pushUsed(id: q.queue.availHead(i), len: UInt32(100 + i)) }
        q.queue.consume(5)
        XCTAssertEqual(q.state.pointee.lastAvail, 2)
        XCTAssertEqual(q.queue.availableCount(), 0)
        XCTAssertEqual(q.usedIdx, 65533, "nothing visible before publishUsed")
        q.queue.publishUsed()
        XCTAssertEqual(q.usedIdx, 2)
        let used = q.takeUsed()
        XCTAssertEqual(used.map(\.id), [1, 2, 3, 4, 5])
        XCTAssertEqual(used.map(\.len), [100, 101, 102, 103, 104])
    }

    func testUsedRingSlotsWrapWithTheMask() {
        for round in 0..<5 {
            for i in 0..<6 { q.queue.pushUsed(id: UInt16(i), len: UInt32(round)) }
            q.queue.publishUsed()
            let used = q.takeUsed()
            XCTAssertEqual(used.count, 6)
            XCTAssertEqual(used.map(\.id), [0, 1, 2, 3, 4, 5])
            XCTAssertTrue(used.allSatisfy { $0.len == UInt32(round) })
        }
        XCTAssertEqual(q.usedIdx, 30)
    }

    func testIsLiveNeedsEverything() {
        XCTAssertTrue(q.queue.isLive)
        let s = q.state
        for breakIt: (inout VirtqueueState) -> Void in [
            { $0.addressed = false }, { $0.started = false }, { $0.enabled = false }, { $0.broken = true }, { $0.memory = nil },
        ] {
            let saved = s.pointee
            breakIt(&s.pointee)
            XCTAssertFalse(q.queue.isLive)
            s.pointee = saved
        }
        XCTAssertTrue(q.queue.isLive)
    }
}

/// Guest notification rules: EVENT_IDX (`vring_need_event`), NO_INTERRUPT, and
/// the device's kick suppression.
final class NotificationTests: XCTestCase {
    private var memory: MockMemory!
    private var q: MockQueue!
    private var call: Int32 = -1

    override func setUpWithError() throws {
        memory = try MockMemory(size: 1 << 20)
        q = MockQueue(memory: memory, size: 256)
        call = try EventFD.create()
        q.state.pointee.callFD = call
    }

    override func tearDown() {
        closeFD(call)
        q = nil
        memory = nil
    }

    /// The spec's formula, written out independently (§2.7.10).
    private func referenceNeedEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
        let a = Int(new) - Int(event) - 1
        let b = Int(new) - Int(old)
        return (a & 0xffff) < (b & 0xffff)
    }

    private func signalled() -> Bool { EventFD.drain(call) > 0 }

    func testVringNeedEventMatchesTheSpec() {
        var rng = SystemRandomNumberGenerator()
        let edges: [UInt16] = [0, 1, 2, 0x7fff, 0x8000, 0xfffe, 0xffff]
        for e in edges { for n in edges { for o in edges {
            XCTAssertEqual(vringNeedEvent(event: e, new: n, old: o), referenceNeedEvent(event: e, new: n, old: o), "e \(e) n \(n) o \(o)")
        } } }
        for _ in 0..<5000 {
            let e = UInt16.random(in: 0...0xffff, using: &rng), o = UInt16.random(in: 0...0xffff, using: &rng)
            let n = o &+ UInt16.random(in: 0...300, using: &rng)
            XCTAssertEqual(vringNeedEvent(event: e, new: n, old: o), referenceNeedEvent(event: e, new: n, old: o))
        }
    }

    func testEventIdxSignalsExactlyWhenNeedEventSays() {
        q.state.pointee.eventIdx = true
        q.availFlags = VringFlag.noInterrupt   // ignored with EVENT_IDX
        var rng = SystemRandomNumberGenerator()
        var cases: [(old: UInt16, added: UInt16, event: UInt16)] = []
        for old: UInt16 in [0, 10, 0xfff0, 0xffff] {
            for added: UInt16 in [1, 2, 5, 32] {
                for delta: Int in [-2, -1, 0, 1, 2, 31, 32, 40, 1000] {
                    cases.append((old, added, UInt16(truncatingIfNeeded: Int(old) + delta)))
                }
            }
        }
        for _ in 0..<500 {
            cases.append((UInt16.random(in: 0...0xffff, using: &rng), UInt16.random(in: 1...64, using: &rng),
                          UInt16.random(in: 0...0xffff, using: &rng)))
        }
        for c in cases {
            q.state.pointee.usedIdx = c.old
            q.state.pointee.signalledUsed = c.old
            q.usedEvent = c.event
            for i in 0..<Int(c.added) { q.queue.pushUsed(id: UInt16(i), len: 0) }
            q.queue.publishUsed()
            q.queue.notifyIfNeeded()
            let new = c.old &+ c.added
            XCTAssertEqual(signalled(), referenceNeedEvent(event: c.event, new: new, old: c.old),
                           "old \(c.old) new \(new) used_event \(c.event)")
            XCTAssertEqual(q.state.pointee.signalledUsed, new)
        }
    }

    func testEventIdxOldIsTheLastCheckNotTheLastSignal() {
        q.state.pointee.eventIdx = true
        q.usedEvent = 3   // "interrupt me when used.idx passes 3"
        q.queue.pushUsed(id: 0, len: 0); q.queue.pushUsed(id: 1, len: 0)
        q.queue.publishUsed(); q.queue.notifyIfNeeded()
        XCTAssertFalse(signalled(), "used.idx 2 has not passed 3")
        q.queue.pushUsed(id: 2, len: 0); q.queue.pushUsed(id: 3, len: 0)
        q.queue.publishUsed(); q.queue.notifyIfNeeded()
        XCTAssertTrue(signalled(), "used.idx 4 passed 3")
        q.queue.pushUsed(id: 4, len: 0)
        q.queue.publishUsed(); q.queue.notifyIfNeeded()
        XCTAssertFalse(signalled(), "already signalled past 3")
    }

    func testNoEventIdxHonoursNoInterrupt() {
        q.queue.pushUsed(id: 0, len: 0)
        q.queue.publishUsed(); q.queue.notifyIfNeeded()
        XCTAssertTrue(signalled())
        q.availFlags = VringFlag.noInterrupt
        q.queue.pushUsed(id: 1, len: 0)
        q.queue.publishUsed(); q.queue.notifyIfNeeded()
        XCTAssertFalse(signalled(), "NO_INTERRUPT set")
        q.availFlags = 0
        q.queue.notifyIfNeeded()
        XCTAssertFalse(signalled(), "nothing new since the last check")
    }

    func testNoSignalWithoutCallFD() {
        q.state.pointee.callFD = -1
        q.queue.pushUsed(id: 0, len: 0)
        q.queue.publishUsed(); q.queue.notifyIfNeeded()   // must not write to fd -1 (or crash)
        q.state.pointee.callFD = call
        XCTAssertFalse(signalled())
    }

    func testSuppressKicksWithoutEventIdx() {
        XCTAssertEqual(q.usedFlags, 0)
        q.queue.suppressKicks()
        XCTAssertEqual(q.usedFlags & VringFlag.noNotify, VringFlag.noNotify)
        q.queue.setNotification(true)
        XCTAssertEqual(q.usedFlags, 0)
        q.queue.setNotification(false)
        XCTAssertEqual(q.usedFlags, VringFlag.noNotify)
    }

    func testSuppressKicksWithEventIdx() {
        q.state.pointee.eventIdx = true
        q.setBase(0xfffe)
        for h: UInt16 in 0..<4 { q.publish(h) }
        q.queue.consume(4)                       // last_avail = 2 (wrapped)
        q.queue.suppressKicks()
        XCTAssertEqual(q.availEvent, 1, "avail_event just behind last_avail")
        XCTAssertEqual(q.usedFlags, 0, "flags untouched with EVENT_IDX")
        // The driver's view: publishing one more entry (old 2 → new 3) needs no kick.
        XCTAssertFalse(vringNeedEvent(event: q.availEvent, new: 3, old: 2))
        q.queue.setNotification(true)
        XCTAssertEqual(q.availEvent, 2)
        XCTAssertTrue(vringNeedEvent(event: q.availEvent, new: 3, old: 2), "re-enabled: the next entry kicks")
    }

    func testSetNotificationIgnoresADeadQueue() {
        q.state.pointee.started = false
        q.queue.setNotification(false)
        XCTAssertEqual(q.usedFlags, 0)
    }
}
