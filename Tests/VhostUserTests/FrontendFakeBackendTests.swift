#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Foundation
import Platform
import XCTest
@testable import VhostUser

// Test support for the frontend tests: a tiny vhost-user backend that answers
// requests on a thread, maps the guest memory, and — driven by the test —
// plays the device on the rings (`FakeDeviceRing`): takes TX chains and fills
// RX buffers, with merged buffers, indirect tables and EVENT_IDX.

/// The device side of one split ring, over memory the test can reach.
struct FakeDeviceRing {
    let desc: UnsafeMutableRawPointer
    let avail: UnsafeMutableRawPointer
    let used: UnsafeMutableRawPointer
    let size: Int
    let eventIndex: Bool
    /// Guest physical address and length → pointer, nil when out of range.
    let translate: (UInt64, Int) -> UnsafeMutableRawPointer?
    var lastAvail: UInt16 = 0
    var usedIndex: UInt16 = 0
    var publishedUsed: UInt16 = 0

    typealias Segment = (pointer: UnsafeMutableRawPointer, length: Int, writable: Bool)

    var available: Int { Int(sl_load_acquire_u16(avail + 2) &- lastAvail) }

    /// Pops the next available chain, following NEXT links and indirect tables.
    mutating func popChain() -> (head: UInt16, segments: [Segment])? {
        guard available > 0 else { return nil }
        let head = avail.load(fromByteOffset: 4 + 2 * Int(lastAvail & UInt16(size - 1)), as: UInt16.self)
        lastAvail &+= 1
        var segments: [Segment] = []
        var table = desc
        var tableSize = size
        var index = Int(head)
        var steps = 0
        while index < tableSize && steps < size {
            steps += 1
            let d = table + 16 * index
            let address = d.load(as: UInt64.self)
            let length = Int(d.load(fromByteOffset: 8, as: UInt32.self))
            let flags = d.load(fromByteOffset: 12, as: UInt16.self)
            let next = d.load(fromByteOffset: 14, as: UInt16.self)
            if flags & DriverQueueLayout.descriptorIndirect != 0 {
                guard let t = translate(address, length) else { return (head, []) }
                table = t
                tableSize = length / 16
                index = 0
                continue
            }
            guard let p = translate(address, length) else { return (head, []) }
            segments.append((p, length, flags & DriverQueueLayout.descriptorWrite != 0))
            guard flags & DriverQueueLayout.descriptorNext != 0 else { break }
            index = Int(next)
        }
        return (head, segments)
    }

    mutating func pushUsed(head: UInt16, length: Int) {
        let e = used + 4 + 8 * Int(usedIndex & UInt16(size - 1))
        e.storeBytes(of: UInt32(head), as: UInt32.self)
        e.storeBytes(of: UInt32(length), toByteOffset: 4, as: UInt32.self)
        usedIndex &+= 1
    }

    /// Publishes used.idx; returns whether the driver wants a call.
    mutating func publishUsed() -> Bool {
        let old = publishedUsed
        let new = usedIndex
        guard old != new else { return false }
        sl_store_release_u16(used + 2, new) // pairs with DriverQueue.takeUsed's acquire
        publishedUsed = new
        sl_fence_seq_cst() // pairs with DriverQueue.enableCalls' full fence
        if eventIndex {
            let event = sl_load_relaxed_u16(avail + 4 + 2 * size)
            return virtqueueNeedsEvent(event: event, new: new, old: old)
        }
        return sl_load_relaxed_u16(avail) & DriverQueueLayout.availNoInterrupt == 0
    }

    /// What the driver's `publish` reads to decide on a kick.
    func setAvailEvent(_ value: UInt16) { used.storeBytes(of: value, toByteOffset: 4 + 8 * size, as: UInt16.self) }
    func setNoNotify(_ on: Bool) { used.storeBytes(of: on ? UInt16(1) : 0, as: UInt16.self) }
}

/// A vhost-user backend on a thread, for frontend tests.
final class FakeBackend: @unchecked Sendable {
    struct Vring {
        var num: UInt32 = 0
        var address: VringAddress?
        var kick: Int32 = -1
        var call: Int32 = -1
        var enabled = false
        var ring: FakeDeviceRing?
    }

    let channel: VhostUserChannel
    let features: UInt64
    let protocolFeatures: UInt64
    var queueNum: UInt64 = 4
    var config: [UInt8] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 1, 0, 4, 0, 0xdc, 0x05] + [UInt8](repeating: 0, count: 244)
    /// A request answered with REPLY_ACK status 1.
    var reject: UInt32?

    private let lock = NSLock()
    private var _requests: [(code: UInt32, needsReply: Bool)] = []
    private(set) var ackedFeatures: UInt64 = 0
    private(set) var ackedProtocolFeatures: UInt64 = 0
    private(set) var mtu: UInt64?
    private(set) var regions: [MemoryRegionDescriptor] = []
    private var map: UnsafeMutableRawPointer?
    private var mapLength = 0
    private var vrings: [UInt32: Vring] = [:]
    private let finished = DispatchSemaphore(value: 0)

    init(fd: Int32, features: UInt64, protocolFeatures: UInt64) {
        channel = VhostUserChannel(fd: fd)
        self.features = features
        self.protocolFeatures = protocolFeatures
    }

    deinit {
        for v in vrings.values {
            closeFD(v.kick)
            closeFD(v.call)
        }
        if let map { munmap(map, mapLength) }
    }

    var requests: [(code: UInt32, needsReply: Bool)] { lock.withLock { _requests } }
    var requestCodes: [UInt32] { requests.map(\.code) }

    func start() {
        Thread { [self] in
            serve()
            finished.signal()
        }.start()
    }

    /// Waits until the backend has read requests that satisfy `done` (messages without a reply
    /// reach the backend after the frontend's call has returned).
    func waitForRequests(seconds: Double = 5, until done: ([UInt32]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !done(requestCodes) {
            if Date() > deadline { return false }
            usleep(1000)
        }
        return true
    }

    /// Waits until the frontend closed the socket.
    func waitUntilClosed(seconds: Double = 5) -> Bool {
        finished.wait(timeout: .now() + seconds) == .success
    }

    private func serve() {
        while let (header, message) = try? channel.receiveMessage() {
            let code = message.requestCode
            lock.withLock { _requests.append((code, header.needsReply)) }
            var reply: VhostUserReply?
            lock.lock()
            switch message {
            case .getFeatures: reply = .u64(features)
            case .setFeatures(let v): ackedFeatures = v
            case .getProtocolFeatures: reply = .u64(protocolFeatures)
            case .setProtocolFeatures(let v): ackedProtocolFeatures = v
            case .getQueueNum: reply = .u64(queueNum)
            case .netSetMTU(let v): mtu = v
            case .getConfig(let c):
                let start = Int(c.offset)
                reply = .config(DeviceConfigSpace(offset: c.offset, payload: Array(config[start..<start + c.payload.count])))
            case .setMemTable(let r, let fds):
                regions = r
                mapLength = Int(r[0].memorySize)
                let p = mmap(nil, mapLength, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0)
                map = p == MAP_FAILED ? nil : p
                message.closeFileDescriptors()
            case .setVringNum(let s): vrings[s.index, default: Vring()].num = s.num
            case .setVringAddr(let a): vrings[a.index, default: Vring()].address = a
            case .setVringKick(let i, let fd): vrings[i, default: Vring()].kick = fd ?? -1
            case .setVringCall(let i, let fd): vrings[i, default: Vring()].call = fd ?? -1
            case .setVringEnable(let s): vrings[s.index, default: Vring()].enabled = s.num == 1
            case .getVringBase(let s): reply = .vringState(VringState(index: s.index, num: UInt32(vrings[s.index]?.ring?.lastAvail ?? 0)))
            default: message.closeFileDescriptors()
            }
            lock.unlock()
            if reply == nil && header.needsReply { reply = .ack(reject != code) }
            if let reply { try? channel.sendReply(reply, to: code) }
        }
        channel.close()
    }

    // MARK: Playing the device

    private func translate(_ gpa: UInt64, _ length: Int) -> UnsafeMutableRawPointer? {
        guard let map, let region = regions.first else { return nil }
        guard gpa >= region.guestPhysAddr, gpa - region.guestPhysAddr + UInt64(length) <= region.memorySize else { return nil }
        return map + Int(gpa - region.guestPhysAddr)
    }

    private func pointer(userAddress ua: UInt64) -> UnsafeMutableRawPointer? {
        guard let map, let region = regions.first, ua >= region.userspaceAddr, ua < region.userspaceEnd else { return nil }
        return map + Int(ua - region.userspaceAddr)
    }

    /// The device state of vring `index`, created on first use.
    private func ring(_ index: UInt32) -> FakeDeviceRing? {
        if let r = vrings[index]?.ring { return r }
        guard let v = vrings[index], let a = v.address, let d = pointer(userAddress: a.desc),
              let av = pointer(userAddress: a.avail), let u = pointer(userAddress: a.used) else { return nil }
        let eventIndex = ackedFeatures & FrontendFeatures.eventIndex.rawValue != 0
        return FakeDeviceRing(desc: d, avail: av, used: u, size: Int(v.num), eventIndex: eventIndex,
                              translate: { [unowned self] in self.translate($0, $1) })
    }

    /// Moves every frame on TX vring 2q+1 to RX vring 2q, as a switch port
    /// looped back to itself would. Returns frames moved; stops early when
    /// the RX ring has no room (the frame stays on the TX ring).
    @discardableResult
    func loopback(pair: Int = 0, signalCalls: Bool = true) -> Int {
        lock.lock()
        defer { lock.unlock() }
        let txIndex = UInt32(2 * pair + 1), rxIndex = UInt32(2 * pair)
        guard var tx = ring(txIndex), var rx = ring(rxIndex) else { return 0 }
        let header = ackedFeatures & (FrontendFeatures.version1.rawValue | FrontendFeatures.mergeableRxBuffers.rawValue) != 0 ? 12 : 10
        let mergeable = ackedFeatures & FrontendFeatures.mergeableRxBuffers.rawValue != 0
        var moved = 0
        while tx.available > 0 {
            var peek = tx
            guard let (txHead, segments) = peek.popChain() else { break }
            var bytes: [UInt8] = []
            for s in segments where !s.writable {
                bytes += UnsafeRawBufferPointer(start: s.pointer, count: s.length)
            }
            let frame = Array(bytes.dropFirst(header))
            guard deliver(frame, to: &rx, header: header, mergeable: mergeable) else { break }
            tx = peek
            tx.pushUsed(head: txHead, length: 0)
            moved += 1
        }
        let callTX = tx.publishUsed()
        let callRX = rx.publishUsed()
        vrings[txIndex]?.ring = tx
        vrings[rxIndex]?.ring = rx
        if signalCalls {
            if callTX, let fd = vrings[txIndex]?.call, fd >= 0 { EventFD.signal(fd) }
            if callRX, let fd = vrings[rxIndex]?.call, fd >= 0 { EventFD.signal(fd) }
        }
        return moved
    }

    /// Writes header + frame into as many RX buffers as it takes (one
    /// without MRG_RXBUF). False, with the ring untouched, if there is no room.
    private func deliver(_ frame: [UInt8], to rx: inout FakeDeviceRing, header: Int, mergeable: Bool) -> Bool {
        var ring = rx
        let data = [UInt8](repeating: 0, count: header) + frame
        var used: [(UInt16, Int)] = []
        var offset = 0
        var firstHeader: UnsafeMutableRawPointer?
        while offset < data.count {
            guard let (head, segments) = ring.popChain(), let buffer = segments.first, buffer.writable else { return false }
            if !mergeable && buffer.length < data.count { return false }
            let n = min(buffer.length, data.count - offset)
            data.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            if firstHeader == nil { firstHeader = buffer.pointer }
            used.append((head, n))
            offset += n
        }
        if header == 12, let firstHeader {
            firstHeader.storeBytes(of: UInt16(used.count), toByteOffset: 10, as: UInt16.self)
        }
        for (head, n) in used { ring.pushUsed(head: head, length: n) }
        rx = ring
        return true
    }

    /// What the driver reads before kicking: avail_event (EVENT_IDX) or NO_NOTIFY.
    func suppressKicks(vring: UInt32, availEvent: UInt16? = nil, noNotify: Bool = false) {
        lock.withLock {
            guard let r = ring(vring) else { return }
            vrings[vring]?.ring = r
            if let availEvent { r.setAvailEvent(availEvent) } else { r.setNoNotify(noNotify) }
        }
    }

    func kickFD(vring: UInt32) -> Int32 { lock.withLock { vrings[vring]?.kick ?? -1 } }
    func isEnabled(vring: UInt32) -> Bool { lock.withLock { vrings[vring]?.enabled ?? false } }
    func vringNum(_ vring: UInt32) -> UInt32 { lock.withLock { vrings[vring]?.num ?? 0 } }
    func vringCount() -> Int { lock.withLock { vrings.count } }
}

/// A frontend and a fake backend joined by a socketpair.
func makeFrontend(features: FrontendFeatures = [.version1, .mergeableRxBuffers, .eventIndex, .indirectDescriptors, .mtu,
                                                .mac, .status, .multiQueue, .protocolFeatures],
                  protocolFeatures: VhostUserProtocolFeature = [.mq, .replyAck, .config, .mtu, .status],
                  options: FrontendOptions = testOptions(),
                  configure: (FakeBackend) -> Void = { _ in }) throws -> (VirtioFrontend, FakeBackend) {
    let (a, b) = try VhostUserChannel.socketPair()
    let backend = FakeBackend(fd: b, features: features.rawValue, protocolFeatures: protocolFeatures.rawValue)
    configure(backend)
    backend.start()
    let frontend = try VirtioFrontend(channel: VhostUserChannel(fd: a), options: options)
    return (frontend, backend)
}

func testOptions(queueSize: Int = 64) -> FrontendOptions {
    var o = FrontendOptions()
    o.memoryBytes = 8 << 20
    o.queueSize = queueSize
    return o
}

final class FrontendFakeBackendTests: XCTestCase {
    func testTheFakeDeviceSeesWhatTheFrontendPosted() throws {
        let (frontend, backend) = try makeFrontend()
        XCTAssertEqual(backend.vringCount(), 2)
        XCTAssertEqual(backend.vringNum(0), 64)
        // Nothing sent yet: nothing to loop back, and the RX ring is full of buffers.
        XCTAssertEqual(backend.loopback(), 0)
        XCTAssertEqual(frontend.rxQueues[0].inFlight, 64)
        XCTAssertEqual(frontend.txQueues[0].inFlight, 0)
        try frontend.disconnect()
        XCTAssertTrue(backend.waitUntilClosed())
    }
}
