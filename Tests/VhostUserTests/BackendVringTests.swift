#if canImport(Glibc)
import Glibc
#endif
import Platform
import Virtio
import XCTest
@testable import VhostUser

/// The vring messages of a net device: sizes, addresses, bases, fds, indices.
final class BackendVringTests: XCTestCase {
    func testBringUpMakesQueuesLive() throws {
        let r = try RunningDevice()
        for (i, q) in r.device.queues.enumerated() {
            let s = q.state.pointee
            XCTAssertTrue(q.isLive, "queue \(i)")
            XCTAssertEqual(s.size, 256)
            XCTAssertEqual(s.mask, 255)
            XCTAssertEqual(s.kickFD, r.kicks[i])
            XCTAssertEqual(s.callFD, r.calls[i])
            XCTAssertEqual(s.desc, r.device.memory.table.translateUser(Backend.ringAddress(UInt32(i)).desc, 1))
            XCTAssertEqual(s.avail, r.device.memory.table.translateUser(Backend.ringAddress(UInt32(i)).avail, 1))
            XCTAssertEqual(s.used, r.device.memory.table.translateUser(Backend.ringAddress(UInt32(i)).used, 1))
            XCTAssertNotEqual(fcntl(s.kickFD, F_GETFL) & O_NONBLOCK, 0, "kick fd made non-blocking")
        }
    }

    func testWithProtocolFeaturesRingsStartDisabled() throws {
        let d = VhostUserDevice(net: Backend.spec())
        XCTAssertDone(d.handle(.setFeatures(Backend.linuxFeatures | VirtioFeature.protocolFeatures)))
        XCTAssertDone(d.handle(.setMemTable([Backend.region()], fds: [try Backend.memfd(1 << 20)])))
        XCTAssertDone(d.handle(.setVringNum(VringState(index: 0, num: 128))))
        XCTAssertDone(d.handle(.setVringAddr(Backend.ringAddress(0))))
        XCTAssertDone(d.handle(.setVringKick(index: 0, fd: nil)))   // no fd: the guest never kicks, we poll
        XCTAssertTrue(d.queues[0].state.pointee.started)
        XCTAssertEqual(d.queues[0].state.pointee.kickFD, -1)
        XCTAssertFalse(d.queues[0].isLive, "not enabled until SET_VRING_ENABLE")
        XCTAssertDone(d.handle(.setVringEnable(VringState(index: 0, num: 1))))
        XCTAssertTrue(d.queues[0].isLive)
        XCTAssertDone(d.handle(.setVringEnable(VringState(index: 0, num: 0))))
        XCTAssertFalse(d.queues[0].isLive)
    }

    func testVringNumMustBeAPowerOfTwoWithinTheMaximum() {
        let d = VhostUserDevice(net: Backend.spec(maxQueueSize: 1024))
        for n: UInt32 in [0, 3, 6, 100, 255, 257, 2048, 32768, 65536, 1 << 31, UInt32.max] {
            XCTAssertFailed(d.handle(.setVringNum(VringState(index: 0, num: n))), "size \(n)")
        }
        XCTAssertEqual(d.queues[0].state.pointee.size, 0, "refused sizes change nothing")
        for n: UInt32 in [1, 2, 64, 256, 1024] {
            XCTAssertDone(d.handle(.setVringNum(VringState(index: 1, num: n))), "size \(n)")
            XCTAssertEqual(d.queues[1].state.pointee.size, UInt16(n))
            XCTAssertEqual(d.queues[1].state.pointee.mask, UInt16(n - 1))
        }
        // The largest size the design allows fits the UInt16 state.
        let big = VhostUserDevice(net: Backend.spec(maxQueueSize: 32768))
        XCTAssertDone(big.handle(.setVringNum(VringState(index: 0, num: 32768))))
        XCTAssertEqual(big.queues[0].state.pointee.size, 32768)
    }

    func testVringAddrMustLieInGuestMemoryAndBeAligned() throws {
        let d = VhostUserDevice(net: Backend.spec())
        XCTAssertDone(d.handle(.setVringNum(VringState(index: 0, num: 256))))
        XCTAssertFailed(d.handle(.setVringAddr(Backend.ringAddress(0))), "no memory table yet")
        XCTAssertDone(d.handle(.setMemTable([Backend.region(size: 1 << 16)], fds: [try Backend.memfd(1 << 16)])))
        let base = Backend.userBase
        let end = base + (1 << 16)
        let bad: [(VringAddress, String)] = [
            (VringAddress(index: 0, desc: 0x1000, used: base + 0x2000, avail: base + 0x1000), "desc outside"),
            (VringAddress(index: 0, desc: base, used: base + 0x2000, avail: end), "avail outside"),
            (VringAddress(index: 0, desc: base, used: end - 100, avail: base + 0x1000), "used ring crosses the end"),
            (VringAddress(index: 0, desc: end - 4080, used: base + 0x2000, avail: base + 0x1000), "desc table crosses the end"),
            (VringAddress(index: 0, desc: base + 8, used: base + 0x2000, avail: base + 0x1000), "desc not 16-aligned"),
            (VringAddress(index: 0, desc: base, used: base + 0x2000, avail: base + 0x1001), "avail odd"),
            (VringAddress(index: 0, desc: base, used: base + 0x2002, avail: base + 0x1000), "used not 4-aligned"),
            (VringAddress(index: 0, desc: UInt64.max - 15, used: base + 0x2000, avail: base + 0x1000), "desc wraps"),
        ]
        for (a, what) in bad {
            XCTAssertFailed(d.handle(.setVringAddr(a)), what)
            XCTAssertFalse(d.queues[0].state.pointee.addressed, what)
        }
        XCTAssertDone(d.handle(.setVringAddr(Backend.ringAddress(0))))
        XCTAssertTrue(d.queues[0].state.pointee.addressed)
        // A new size invalidates the addresses until they are sent again.
        XCTAssertDone(d.handle(.setVringNum(VringState(index: 0, num: 128))))
        XCTAssertFalse(d.queues[0].state.pointee.addressed)
    }

    func testEveryVringMessageChecksTheQueueIndex() throws {
        let d = VhostUserDevice(net: Backend.spec(queuePairs: 1))
        XCTAssertDone(d.handle(.setMemTable([Backend.region()], fds: [try Backend.memfd(1 << 20)])))
        let before = Backend.openFDCount()
        for index: UInt32 in [2, 3, 255, 256, 0x8000_0000, UInt32.max] {
            let fdMessages: [VhostUserMessage] = [
                .setVringKick(index: index, fd: try Backend.eventfd()),
                .setVringCall(index: index, fd: try Backend.eventfd()),
                .setVringErr(index: index, fd: try Backend.eventfd()),
            ]
            for m in fdMessages {
                let fds = m.fileDescriptors
                XCTAssertFailed(d.handle(m), "request \(m.requestCode) index \(index)")
                for fd in fds { XCTAssertFalse(Backend.isOpen(fd), "request \(m.requestCode) index \(index): fd closed") }
            }
            let plain: [VhostUserMessage] = [
                .setVringNum(VringState(index: index, num: 256)),
                .setVringAddr(Backend.ringAddress(index)),
                .setVringBase(VringState(index: index, num: 0)),
                .getVringBase(VringState(index: index, num: 0)),
                .setVringEnable(VringState(index: index, num: 1)),
                .setVringKick(index: index, fd: nil),
                .setVringCall(index: index, fd: nil),
            ]
            for m in plain { XCTAssertFailed(d.handle(m), "request \(m.requestCode) index \(index)") }
        }
        XCTAssertEqual(Backend.openFDCount(), before)
    }

    func testGetVringBaseReturnsLastAvailAndStopsTheRing() throws {
        var kickChanges: [(Int, Int32, Int32)] = []
        let r = try RunningDevice()
        r.device.hooks = DeviceHooks(quiesce: { $0() }, kickChanged: { kickChanges.append(($0, $1, $2)) })
        XCTAssertDone(r.device.handle(.setVringBase(VringState(index: 1, num: 0xfff0))))
        let s = r.device.queues[1].state
        XCTAssertEqual(s.pointee.lastAvail, 0xfff0)
        XCTAssertEqual(s.pointee.usedIdx, 0xfff0)
        // The worker consumed 0x20 entries (wrapping past 65535).
        s.pointee.lastAvail &+= 0x20
        s.pointee.usedIdx &+= 0x20
        guard case .vringState(let st)? = replyOf(r.device.handle(.getVringBase(VringState(index: 1, num: 0)))) else {
            return XCTFail("GET_VRING_BASE reply")
        }
        XCTAssertEqual(st, VringState(index: 1, num: 0x10))
        XCTAssertFalse(r.device.queues[1].isLive, "stopped")
        XCTAssertEqual(s.pointee.kickFD, -1)
        XCTAssertEqual(s.pointee.callFD, -1)
        XCTAssertFalse(Backend.isOpen(r.kicks[1]))
        XCTAssertFalse(Backend.isOpen(r.calls[1]))
        XCTAssertEqual(kickChanges.count, 1)
        XCTAssertEqual(kickChanges.first?.0, 1)
        XCTAssertEqual(kickChanges.first?.1, r.kicks[1])
        XCTAssertTrue(r.device.queues[0].isLive, "the other queue keeps running")
        // Restart: base, kick, call again.
        XCTAssertDone(r.device.handle(.setVringBase(VringState(index: 1, num: 0x10))))
        XCTAssertDone(r.device.handle(.setVringCall(index: 1, fd: try Backend.eventfd())))
        XCTAssertDone(r.device.handle(.setVringKick(index: 1, fd: try Backend.eventfd())))
        XCTAssertTrue(r.device.queues[1].isLive)
    }

    func testReplacingKickAndCallClosesTheOldFds() throws {
        let r = try RunningDevice()
        let call2 = try Backend.eventfd(), kick2 = try Backend.eventfd(), err1 = try Backend.eventfd(), err2 = try Backend.eventfd()
        XCTAssertDone(r.device.handle(.setVringCall(index: 0, fd: call2)))
        XCTAssertDone(r.device.handle(.setVringKick(index: 0, fd: kick2)))
        XCTAssertDone(r.device.handle(.setVringErr(index: 0, fd: err1)))
        XCTAssertDone(r.device.handle(.setVringErr(index: 0, fd: err2)))
        XCTAssertFalse(Backend.isOpen(r.calls[0]))
        XCTAssertFalse(Backend.isOpen(r.kicks[0]))
        XCTAssertFalse(Backend.isOpen(err1))
        XCTAssertEqual(r.device.queues[0].state.pointee.callFD, call2)
        XCTAssertEqual(r.device.queues[0].state.pointee.kickFD, kick2)
        XCTAssertDone(r.device.handle(.setVringCall(index: 0, fd: nil)))
        XCTAssertFalse(Backend.isOpen(call2))
        XCTAssertEqual(r.device.queues[0].state.pointee.callFD, -1)
    }

    func testMemoryChangesRetranslateTheRings() throws {
        let r = try RunningDevice()
        let q = r.device.queues[0].state
        let oldDesc = q.pointee.desc
        // Same layout from a new fd: still addressed, pointers into the new mapping.
        XCTAssertDone(r.device.handle(.setMemTable([Backend.region()], fds: [try Backend.memfd(1 << 20)])))
        XCTAssertTrue(r.device.queues[0].isLive)
        XCTAssertNotNil(q.pointee.desc)
        XCTAssertEqual(q.pointee.desc, r.device.memory.table.translateUser(Backend.userBase, 1))
        _ = oldDesc
        // A table that no longer holds the rings: the queues stop.
        XCTAssertDone(r.device.handle(.setMemTable([Backend.region(gpa: 0, size: 4096, user: Backend.userBase + (1 << 30))],
                                                   fds: [try Backend.memfd(4096)])))
        XCTAssertFalse(r.device.queues[0].isLive)
        XCTAssertFalse(r.device.queues[1].isLive)
        // ADD_MEM_REG brings the rings' memory back: translated again from the remembered addresses.
        XCTAssertDone(r.device.handle(.addMemReg(Backend.region(gpa: 1 << 32), fd: try Backend.memfd(1 << 20))))
        XCTAssertTrue(r.device.queues[0].isLive)
        XCTAssertTrue(r.device.queues[1].isLive)
        // REM_MEM_REG of that region: stopped again, and a region that is not there is an error.
        XCTAssertDone(r.device.handle(.remMemReg(Backend.region(gpa: 1 << 32))))
        XCTAssertFalse(r.device.queues[0].isLive)
        XCTAssertFailed(r.device.handle(.remMemReg(Backend.region(gpa: 1 << 32))))
        XCTAssertEqual(r.device.memory.regionCount, 1)
    }

    /// QEMU 7.2 with queues=2 sends ADD_MEM_REG (and REM_MEM_REG) of the same region once per
    /// queue pair: the second add is one more reference; the region goes with the last remove.
    func testTheSameRegionAddedTwiceIsCountedNotRefused() throws {
        let r = try RunningDevice()
        XCTAssertDone(r.device.handle(.setMemTable([], fds: [])))
        let fd1 = try Backend.memfd(1 << 20), fd2 = try Backend.memfd(1 << 20)
        XCTAssertDone(r.device.handle(.addMemReg(Backend.region(), fd: fd1)))
        XCTAssertDone(r.device.handle(.addMemReg(Backend.region(), fd: fd2)), "the same region again")
        XCTAssertFalse(Backend.isOpen(fd2), "the duplicate's fd is closed, not leaked")
        XCTAssertEqual(r.device.memory.regionCount, 1)
        XCTAssertTrue(r.device.queues[0].isLive)
        // The same guest range at another user address is a real overlap.
        XCTAssertFailed(r.device.handle(.addMemReg(Backend.region(user: Backend.userBase + (1 << 30)), fd: try Backend.memfd(1 << 20))))
        XCTAssertDone(r.device.handle(.remMemReg(Backend.region())))
        XCTAssertEqual(r.device.memory.regionCount, 1, "one reference left")
        XCTAssertTrue(r.device.queues[0].isLive)
        XCTAssertDone(r.device.handle(.remMemReg(Backend.region())))
        XCTAssertEqual(r.device.memory.regionCount, 0)
        XCTAssertFalse(r.device.queues[0].isLive)
        XCTAssertFailed(r.device.handle(.remMemReg(Backend.region())))
        // After the last remove the region can be added again (the count starts over).
        XCTAssertDone(r.device.handle(.addMemReg(Backend.region(), fd: try Backend.memfd(1 << 20))))
        XCTAssertEqual(r.device.memory.regionCount, 1)
        XCTAssertTrue(r.device.queues[0].isLive)
    }

    func testAFailedMemTableStopsTheRingsInsteadOfLeavingStalePointers() throws {
        let r = try RunningDevice()
        let overlapping = [Backend.region(gpa: 0), Backend.region(gpa: 4096, user: Backend.userBase + (1 << 24))]
        XCTAssertFailed(r.device.handle(.setMemTable(overlapping, fds: [try Backend.memfd(1 << 20), try Backend.memfd(1 << 20)])))
        XCTAssertEqual(r.device.memory.regionCount, 0)
        for q in r.device.queues {
            XCTAssertFalse(q.isLive, "no memory: the worker must not touch the old rings")
            XCTAssertNil(q.state.pointee.memory)
        }
    }
}
