#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Foundation
import Platform
import Virtio
import XCTest
@testable import VhostUser

// MARK: - Helpers shared by the Backend*Tests files

enum Backend {
    static let userBase: UInt64 = 0x7f00_0000_0000

    static func spec(queuePairs: Int = 1, maxQueueSize: Int = 256, maxRegions: Int = 8,
                     mac: [UInt8]? = [0x52, 0x54, 0, 0x12, 0x34, 0x56], mtu: Int = 1500) -> NetDeviceSpec {
        NetDeviceSpec(name: "test", queuePairs: queuePairs, maxQueueSize: maxQueueSize, maxRegions: maxRegions, mac: mac, mtu: mtu)
    }

    static func memfd(_ size: Int) throws -> Int32 {
        let fd = sl_memfd_create("backend-test", sl_memfd_cloexec_flag())
        guard fd >= 0, ftruncate(fd, off_t(size)) == 0 else { throw SystemError("memfd") }
        return fd
    }

    static func eventfd() throws -> Int32 { try EventFD.create() }

    static func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

    static func openFDCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    static func region(gpa: UInt64 = 0, size: UInt64 = 1 << 20, user: UInt64 = userBase, offset: UInt64 = 0) -> MemoryRegionDescriptor {
        MemoryRegionDescriptor(guestPhysAddr: gpa, memorySize: size, userspaceAddr: user, mmapOffset: offset)
    }

    /// Ring addresses for queue `index` of size ≤ 256 inside a 1 MiB region at `userBase`.
    static func ringAddress(_ index: UInt32, base: UInt64 = userBase) -> VringAddress {
        let q = UInt64(index) * 0x4000
        return VringAddress(index: index, desc: base + q, used: base + q + 0x2000, avail: base + q + 0x1000)
    }

    /// Features a Linux guest would take.
    static var linuxFeatures: UInt64 {
        VirtioFeature.version1 | VirtioFeature.netMrgRxbuf | VirtioFeature.netCsum | VirtioFeature.netGuestCsum
            | VirtioFeature.indirectDesc | VirtioFeature.eventIdx | VirtioFeature.netMAC | VirtioFeature.netStatus
    }
}

func isDone(_ o: VhostUserDevice.Outcome) -> Bool { if case .done = o { return true } else { return false } }
func failureOf(_ o: VhostUserDevice.Outcome) -> String? { if case .failed(let why) = o { return why } else { return nil } }
func replyOf(_ o: VhostUserDevice.Outcome) -> VhostUserReply? { if case .reply(let r) = o { return r } else { return nil } }

func XCTAssertDone(_ o: VhostUserDevice.Outcome, _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertTrue(isDone(o), "\(what): expected .done, got \(o)", file: file, line: line)
}

func XCTAssertFailed(_ o: VhostUserDevice.Outcome, _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertNotNil(failureOf(o), "\(what): expected .failed, got \(o)", file: file, line: line)
}

/// A device with memory mapped and queue pair 0 running, as QEMU leaves it.
struct RunningDevice {
    let device: VhostUserDevice
    let kicks: [Int32]
    let calls: [Int32]

    init(spec: NetDeviceSpec = Backend.spec(), features: UInt64 = Backend.linuxFeatures, protocolFeatures: Bool = false) throws {
        device = VhostUserDevice(net: spec)
        XCTAssertDone(device.handle(.setFeatures(features | (protocolFeatures ? VirtioFeature.protocolFeatures : 0))), "SET_FEATURES")
        let fd = try Backend.memfd(1 << 20)
        XCTAssertDone(device.handle(.setMemTable([Backend.region()], fds: [fd])), "SET_MEM_TABLE")
        var kicks: [Int32] = [], calls: [Int32] = []
        for i: UInt32 in 0..<2 {
            XCTAssertDone(device.handle(.setVringNum(VringState(index: i, num: 256))), "SET_VRING_NUM \(i)")
            XCTAssertDone(device.handle(.setVringAddr(Backend.ringAddress(i))), "SET_VRING_ADDR \(i)")
            XCTAssertDone(device.handle(.setVringBase(VringState(index: i, num: 0))), "SET_VRING_BASE \(i)")
            let call = try Backend.eventfd(), kick = try Backend.eventfd()
            XCTAssertDone(device.handle(.setVringCall(index: i, fd: call)))
            XCTAssertDone(device.handle(.setVringKick(index: i, fd: kick)))
            if protocolFeatures { XCTAssertDone(device.handle(.setVringEnable(VringState(index: i, num: 1)))) }
            kicks.append(kick); calls.append(call)
        }
        self.kicks = kicks
        self.calls = calls
    }
}

// MARK: - Features, memory, config, refusals, reset

final class BackendNetDeviceTests: XCTestCase {
    func testOfferedFeatures() {
        let d = VhostUserDevice(net: Backend.spec())
        guard case .u64(let f)? = replyOf(d.handle(.getFeatures)) else { return XCTFail("GET_FEATURES reply") }
        XCTAssertEqual(f, d.offeredFeatures)
        for bit in [VirtioFeature.version1, VirtioFeature.netMrgRxbuf, VirtioFeature.netCsum, VirtioFeature.netGuestCsum,
                    VirtioFeature.indirectDesc, VirtioFeature.eventIdx, VirtioFeature.protocolFeatures, VirtioFeature.netMAC,
                    VirtioFeature.netMTU, VirtioFeature.netStatus, VirtioFeature.inOrder] {
            XCTAssertNotEqual(f & bit, 0, "bit \(bit.trailingZeroBitCount) offered")
        }
        XCTAssertEqual(f & VirtioFeature.netMQ, 0, "no MQ with one queue pair")
        XCTAssertEqual(VhostUserDevice(net: Backend.spec(mac: nil)).offeredFeatures & VirtioFeature.netMAC, 0)
        XCTAssertNotEqual(VhostUserDevice(net: Backend.spec(queuePairs: 4)).offeredFeatures & VirtioFeature.netMQ, 0)
        XCTAssertEqual(VhostUserDevice(net: Backend.spec(queuePairs: 4)).queues.count, 8)
    }

    func testSetFeaturesAppliesToEveryQueue() {
        let d = VhostUserDevice(net: Backend.spec(queuePairs: 2))
        XCTAssertDone(d.handle(.setFeatures(Backend.linuxFeatures)))
        XCTAssertEqual(d.ackedFeatures, Backend.linuxFeatures)
        for q in d.queues {
            XCTAssertEqual(q.state.pointee.headerSize, 12)
            XCTAssertTrue(q.state.pointee.mergeable && q.state.pointee.eventIdx && q.state.pointee.indirect && q.state.pointee.guestCsum)
        }
        // A legacy-style driver: no VERSION_1, no MRG_RXBUF → 10-byte header.
        XCTAssertDone(d.handle(.setFeatures(VirtioFeature.netCsum)))
        for q in d.queues {
            XCTAssertEqual(q.state.pointee.headerSize, 10)
            XCTAssertFalse(q.state.pointee.mergeable || q.state.pointee.eventIdx || q.state.pointee.indirect || q.state.pointee.guestCsum)
        }
        XCTAssertDone(d.handle(.setFeatures(VirtioFeature.netMrgRxbuf)))
        XCTAssertEqual(d.queues[0].state.pointee.headerSize, 12, "MRG_RXBUF alone also means num_buffers")
    }

    func testSetFeaturesRefusesBitsNotOffered() {
        let d = VhostUserDevice(net: Backend.spec(mac: nil))
        XCTAssertDone(d.handle(.setFeatures(VirtioFeature.version1)))
        for bit: UInt64 in [6, 7, 11, 14, 17, 21, 22, 5, 33, 34, 63] {
            let o = d.handle(.setFeatures(VirtioFeature.version1 | (1 << bit)))
            XCTAssertFailed(o, "feature bit \(bit)")
            XCTAssertEqual(d.ackedFeatures, VirtioFeature.version1, "bit \(bit): nothing applied")
        }
    }

    func testProtocolFeatures() {
        let d = VhostUserDevice(net: Backend.spec())
        XCTAssertDone(d.handle(.setOwner))   // SET_OWNER first: CONFIG is offered too (ProtocolFeatureOfferTests)
        guard case .u64(let p)? = replyOf(d.handle(.getProtocolFeatures)) else { return XCTFail() }
        XCTAssertEqual(p, VhostUserDevice(net: Backend.spec()).protocolOffer.supported.rawValue)
        XCTAssertDone(d.handle(.setProtocolFeatures(p)))
        XCTAssertTrue(d.replyAck)
        for f: VhostUserProtocolFeature in [.logSHMFD, .backendReq, .inflightSHMFD, .pagefault, .hostNotifier, .deviceState] {
            XCTAssertFailed(d.handle(.setProtocolFeatures(p | f.rawValue)), "protocol feature \(f.rawValue)")
        }
        XCTAssertTrue(d.replyAck, "a refused SET_PROTOCOL_FEATURES changes nothing")
    }

    func testSimpleQueries() {
        let d = VhostUserDevice(net: Backend.spec(queuePairs: 3, maxRegions: 5, mtu: 9000))
        guard case .u64(let n)? = replyOf(d.handle(.getQueueNum)) else { return XCTFail() }
        XCTAssertEqual(n, 3)
        guard case .u64(let slots)? = replyOf(d.handle(.getMaxMemSlots)) else { return XCTFail() }
        XCTAssertEqual(slots, 5)
        XCTAssertDone(d.handle(.setStatus(0x0f)))
        guard case .u64(let st)? = replyOf(d.handle(.getStatus)) else { return XCTFail() }
        XCTAssertEqual(st, 0x0f)
        XCTAssertDone(d.handle(.netSetMTU(9000)))
        XCTAssertFailed(d.handle(.netSetMTU(9001)))
        XCTAssertDone(d.handle(.sendRARP(mac: [2, 0, 0, 0, 0, 1])))
    }

    // MARK: Memory table

    func testSetMemTableMapsTheRegions() throws {
        let d = VhostUserDevice(net: Backend.spec())
        let a = try Backend.memfd(1 << 20), b = try Backend.memfd(1 << 16)
        defer { close(a); close(b) }
        // Write a marker through our own mapping, read it through the device's table.
        let mine = try MappedRegion.map(fd: a, length: 1 << 20)
        mine.base.storeBytes(of: 0xfeed_f00d, toByteOffset: 0x1230, as: UInt32.self)
        XCTAssertDone(d.handle(.setMemTable([Backend.region(gpa: 0, size: 1 << 20),
                                             Backend.region(gpa: 1 << 32, size: 1 << 16, user: Backend.userBase + (1 << 32))],
                                            fds: [dup(a), dup(b)])))
        XCTAssertEqual(d.memory.regionCount, 2)
        XCTAssertEqual(d.memory.table.translate(0x1230, 4)?.load(as: UInt32.self), 0xfeed_f00d)
        XCTAssertEqual(d.memory.table.translateUser(Backend.userBase + 0x1230, 4)?.load(as: UInt32.self), 0xfeed_f00d)
        XCTAssertNotNil(d.memory.table.translate((1 << 32) + 10, 10))
        XCTAssertNil(d.memory.table.translate(1 << 20, 1), "the gap between regions")
        // A new table replaces the old one.
        XCTAssertDone(d.handle(.setMemTable([Backend.region(gpa: 0x10_0000, size: 1 << 16)], fds: [dup(b)])))
        XCTAssertEqual(d.memory.regionCount, 1)
        XCTAssertNil(d.memory.table.translate(0, 1))
    }

    func testOverlappingRegionsAreRefusedAndEveryFdClosed() throws {
        let d = VhostUserDevice(net: Backend.spec())
        let before = Backend.openFDCount()
        var fds = [try Backend.memfd(1 << 20), try Backend.memfd(1 << 20), try Backend.memfd(1 << 20)]
        let regions = [Backend.region(gpa: 0), Backend.region(gpa: 0x8_0000, user: Backend.userBase + (1 << 24)),
                       Backend.region(gpa: 1 << 30, user: Backend.userBase + (1 << 26))]
        XCTAssertFailed(d.handle(.setMemTable(regions, fds: fds)))
        XCTAssertEqual(d.memory.regionCount, 0, "a refused table leaves nothing mapped")
        for fd in fds { XCTAssertFalse(Backend.isOpen(fd), "fd \(fd) closed") }
        XCTAssertLessThanOrEqual(Backend.openFDCount(), before, "an fd leaked")
        // Identical ranges, and one region inside another.
        fds = [try Backend.memfd(1 << 20), try Backend.memfd(1 << 20)]
        XCTAssertFailed(d.handle(.setMemTable([Backend.region(gpa: 0x10_0000, size: 1 << 20),
                                               Backend.region(gpa: 0x14_0000, size: 4096, user: Backend.userBase + (1 << 24))], fds: fds)))
        XCTAssertLessThanOrEqual(Backend.openFDCount(), before, "an fd leaked")
    }

    func testTooManyRegionsAreRefusedAndFdsClosed() throws {
        let d = VhostUserDevice(net: Backend.spec(maxRegions: 2))
        let before = Backend.openFDCount()
        let fds = try (0..<3).map { _ in try Backend.memfd(4096) }
        let regions = (0..<3).map { Backend.region(gpa: UInt64($0) << 20, size: 4096, user: Backend.userBase + (UInt64($0) << 20)) }
        XCTAssertFailed(d.handle(.setMemTable(regions, fds: fds)))
        XCTAssertEqual(d.memory.regionCount, 0)
        XCTAssertLessThanOrEqual(Backend.openFDCount(), before, "an fd leaked")
        // ADD_MEM_REG past the limit too.
        for i in 0..<2 {
            XCTAssertDone(d.handle(.addMemReg(Backend.region(gpa: UInt64(i) << 20, size: 4096, user: Backend.userBase + (UInt64(i) << 20)),
                                              fd: try Backend.memfd(4096))))
        }
        let extra = try Backend.memfd(4096)
        XCTAssertFailed(d.handle(.addMemReg(Backend.region(gpa: 5 << 20, size: 4096, user: Backend.userBase + (5 << 20)), fd: extra)))
        XCTAssertFalse(Backend.isOpen(extra))
        XCTAssertEqual(d.memory.regionCount, 2)
    }

    /// A region whose fd is smaller than mmap_offset + size would map fine and
    /// SIGBUS the daemon on first touch: it must be refused up front.
    func testRegionLargerThanItsFdIsRefused() throws {
        let d = VhostUserDevice(net: Backend.spec())
        let before = Backend.openFDCount()
        for (size, offset) in [(UInt64(1 << 20), UInt64(0)), (8192, 60 * 1024), (4096, 1 << 16), (1 << 40, 0)] {
            let fd = try Backend.memfd(64 * 1024)
            XCTAssertFailed(d.handle(.setMemTable([Backend.region(size: size, offset: offset)], fds: [fd])), "size \(size) offset \(offset)")
            XCTAssertFalse(Backend.isOpen(fd))
            XCTAssertEqual(d.memory.regionCount, 0)
        }
        XCTAssertLessThanOrEqual(Backend.openFDCount(), before, "an fd leaked")
        // Exactly the fd's size is fine, at an offset too.
        XCTAssertDone(d.handle(.setMemTable([Backend.region(size: 32 * 1024, offset: 32 * 1024)], fds: [try Backend.memfd(64 * 1024)])))
        XCTAssertNotNil(d.memory.table.translate(32 * 1024 - 1, 1))
    }

    func testRegionFromAnFdThatCannotBeMappedIsRefused() throws {
        let d = VhostUserDevice(net: Backend.spec())
        var p: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&p), 0)
        defer { close(p[1]) }
        XCTAssertFailed(d.handle(.setMemTable([Backend.region(size: 4096)], fds: [p[0]])))
        XCTAssertFalse(Backend.isOpen(p[0]))
    }

    /// mmap_offset (and userspace_addr) that are not even 16-aligned put every
    /// ring and descriptor at a misaligned host address, where `walkChain` and
    /// `availHead` do aligned loads (a trap in debug builds, UB in release).
    /// Either the table is refused or the rings end up aligned.
    func testMisalignedMmapOffsetDoesNotYieldMisalignedRings() throws {
        let d = VhostUserDevice(net: Backend.spec())
        XCTAssertDone(d.handle(.setFeatures(Backend.linuxFeatures)))
        let mem = d.handle(.setMemTable([Backend.region(size: 1 << 19, offset: 1)], fds: [try Backend.memfd(1 << 20)]))
        guard isDone(mem) else { return }   // refusing it is fine
        XCTAssertDone(d.handle(.setVringNum(VringState(index: 0, num: 256))))
        let addr = d.handle(.setVringAddr(Backend.ringAddress(0)))
        guard isDone(addr), let desc = d.queues[0].state.pointee.desc, let avail = d.queues[0].state.pointee.avail else { return }
        XCTAssertEqual(UInt(bitPattern: desc) & 15, 0, "descriptor table at a misaligned host address")
        XCTAssertEqual(UInt(bitPattern: avail) & 1, 0, "avail ring at a misaligned host address")
    }

    // MARK: Config space

    func testGetConfigLayout() {
        let d = VhostUserDevice(net: Backend.spec(queuePairs: 4, mtu: 9000))
        guard case .config(let c)? = replyOf(d.handle(.getConfig(DeviceConfigSpace(offset: 0, size: 12)))) else { return XCTFail() }
        XCTAssertEqual(c.offset, 0)
        XCTAssertEqual(c.payload, [0x52, 0x54, 0, 0x12, 0x34, 0x56,   // mac
                                   1, 0,                               // status: LINK_UP
                                   4, 0,                               // max_virtqueue_pairs
                                   0x28, 0x23])                        // mtu 9000
        guard case .config(let status)? = replyOf(d.handle(.getConfig(DeviceConfigSpace(offset: 6, size: 2)))) else { return XCTFail() }
        XCTAssertEqual(status.payload, [1, 0])
        guard case .config(let mtu)? = replyOf(d.handle(.getConfig(DeviceConfigSpace(offset: 10, size: 2)))) else { return XCTFail() }
        XCTAssertEqual(mtu.payload, [0x28, 0x23])
        guard case .config(let tail)? = replyOf(d.handle(.getConfig(DeviceConfigSpace(offset: 200, size: 56)))) else { return XCTFail() }
        XCTAssertEqual(tail.payload, [UInt8](repeating: 0, count: 56), "fields not offered read as zero")
        let noMac = VhostUserDevice(net: Backend.spec(mac: nil))
        guard case .config(let m)? = replyOf(noMac.handle(.getConfig(DeviceConfigSpace(offset: 0, size: 6)))) else { return XCTFail() }
        XCTAssertEqual(m.payload, [0, 0, 0, 0, 0, 0])
    }

    func testGetConfigOutOfRangeFails() {
        let d = VhostUserDevice(net: Backend.spec())
        // Past the 256-byte space (the decoder refuses these on the wire; the device must too).
        for (offset, size) in [(250, 12), (256, 1), (0, 257), (UInt32.max, 4)] as [(UInt32, Int)] {
            guard case .configFailed? = replyOf(d.handle(.getConfig(DeviceConfigSpace(offset: offset, size: size)))) else {
                XCTFail("offset \(offset) size \(size): expected configFailed"); continue
            }
        }
        XCTAssertFailed(d.handle(.setConfig(DeviceConfigSpace(offset: 0, payload: [1, 2, 3, 4, 5, 6]))), "config is read-only")
    }

    // MARK: Refusals that carry fds

    func testLoggingIsRefusedAndItsFdClosed() throws {
        let d = VhostUserDevice(net: Backend.spec())
        let before = Backend.openFDCount()
        let a = try Backend.memfd(4096), b = try Backend.eventfd()
        XCTAssertFailed(d.handle(.setLogBase(LogDescription(mmapSize: 4096, mmapOffset: 0), fd: a)))
        XCTAssertFailed(d.handle(.setLogFD(fd: b)))
        XCTAssertFalse(Backend.isOpen(a))
        XCTAssertFalse(Backend.isOpen(b))
        XCTAssertLessThanOrEqual(Backend.openFDCount(), before, "an fd leaked")
    }

    func testUnsupportedMessagesCloseTheirFds() throws {
        let d = VhostUserDevice(net: Backend.spec())
        let before = Backend.openFDCount()
        let messages: [VhostUserMessage] = [
            .setBackendReqFD(fd: try Backend.eventfd()),
            .setInflightFD(InflightDescription(mmapSize: 4096, mmapOffset: 0, numQueues: 2, queueSize: 256), fd: try Backend.memfd(4096)),
            .gpuSetSocket(fd: try Backend.eventfd()),
            .setDeviceStateFD(DeviceStateTransfer(direction: 0, phase: 0), fd: try Backend.eventfd()),
            .iotlbMessage(IOTLBMessage(iova: 0, size: 4096, userAddr: 0, permissions: 3, type: 2)),
            .vringKick(VringState(index: 0, num: 0)),
            .postcopyAdvise, .unknown(999),
        ]
        for m in messages {
            let fds = m.fileDescriptors
            XCTAssertFailed(d.handle(m), "\(m.requestCode)")
            for fd in fds { XCTAssertFalse(Backend.isOpen(fd), "request \(m.requestCode): fd \(fd) closed") }
        }
        XCTAssertLessThanOrEqual(Backend.openFDCount(), before, "an fd leaked")
    }

    // MARK: Reset

    func testResetClosesQueueFdsAndUnmapsMemory() throws {
        let before = Backend.openFDCount()
        var kickChanges: [(Int, Int32, Int32)] = []
        do {
            let r = try RunningDevice()
            r.device.hooks = DeviceHooks(quiesce: { $0() }, kickChanged: { kickChanges.append(($0, $1, $2)) })
            let err = try Backend.eventfd()
            XCTAssertDone(r.device.handle(.setVringErr(index: 1, fd: err)))
            XCTAssertTrue(r.device.queues[0].isLive)
            r.device.reset()
            for fd in r.kicks + r.calls + [err] { XCTAssertFalse(Backend.isOpen(fd), "fd \(fd) closed by reset") }
            XCTAssertEqual(r.device.memory.regionCount, 0)
            XCTAssertEqual(r.device.ackedFeatures, 0)
            for q in r.device.queues {
                XCTAssertFalse(q.isLive)
                XCTAssertNil(q.state.pointee.memory)
                XCTAssertEqual(q.state.pointee.kickFD, -1)
                XCTAssertEqual(q.state.pointee.callFD, -1)
                XCTAssertEqual(q.state.pointee.errFD, -1)
            }
            XCTAssertEqual(kickChanges.map(\.0), [0, 1], "event mode told about both kicks going away")
            XCTAssertTrue(kickChanges.allSatisfy { $0.2 == -1 })
            r.device.reset()   // twice is harmless
            XCTAssertDone(r.device.handle(.resetOwner))
        }
        XCTAssertEqual(Backend.openFDCount(), before, "nothing leaked after the device is gone")
    }

    func testDeviceDeinitReleasesEverything() throws {
        let before = Backend.openFDCount()
        do { _ = try RunningDevice() }
        XCTAssertLessThanOrEqual(Backend.openFDCount(), before, "an fd leaked")
    }
}
