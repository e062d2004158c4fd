#if canImport(Glibc)
import Glibc
#endif
import Platform
import Virtio
import XCTest
@testable import VhostUser

/// A back-end connection driven over a socketpair by a hand-written front-end:
/// replies, REPLY_ACK, fds across the socket, and malformed input.
final class BackendConnectionTests: XCTestCase {
    private var device: VhostUserDevice!
    private var backend: VhostUserBackendConnection!
    private var front: VhostUserChannel!

    override func setUpWithError() throws {
        let (a, b) = try VhostUserChannel.socketPair()
        device = VhostUserDevice(net: Backend.spec())
        backend = VhostUserBackendConnection(fd: a, device: device)
        front = VhostUserChannel(fd: b)
        front.ioTimeoutMilliseconds = 1000
    }

    override func tearDown() {
        backend?.close()
        front?.close()
        backend = nil; front = nil; device = nil
    }

    /// Send, let the back-end handle it, and read the reply if one is due.
    private func exchange(_ m: VhostUserMessage, needsReply: Bool = false) throws -> (VhostUserBackendConnection.Result, VhostUserReply?) {
        try front.send(m, needsReply: needsReply)
        let result = backend.service()
        guard VhostUserReply.expectedShape(replyingTo: m.requestCode, needsReply: needsReply) != nil,
              replyDue(result, needsReply: needsReply) else { return (result, nil) }
        guard let (h, p, fds) = try front.receive() else { return (result, nil) }
        return (result, try VhostUserReply.decode(header: h, payload: p, fds: fds, replyingTo: m.requestCode, needsReply: needsReply))
    }

    /// SET_MEM_TABLE with one 1 MiB memfd region (our copy of the fd is closed after sending).
    private func sendMemTable() throws -> VhostUserBackendConnection.Result {
        let fd = try Backend.memfd(1 << 20)
        defer { close(fd) }
        return try exchange(.setMemTable([Backend.region()], fds: [fd])).0
    }

    private func replyDue(_ r: VhostUserBackendConnection.Result, needsReply: Bool) -> Bool {
        if case .handled = r { return true }
        return false
    }

    func testGetFeaturesAndQueueNum() throws {
        let (r, reply) = try exchange(.getFeatures)
        XCTAssertEqual(r, .handled(failure: nil))
        XCTAssertEqual(reply, .u64(device.offeredFeatures))
        let (_, n) = try exchange(.getQueueNum)
        XCTAssertEqual(n, .u64(1))
    }

    func testReplyAckReportsSuccessAndFailure() throws {
        XCTAssertEqual(try exchange(.setProtocolFeatures(VhostUserProtocolFeature.replyAck.rawValue)).0, .handled(failure: nil))
        let (ok, okReply) = try exchange(.setVringNum(VringState(index: 0, num: 256)), needsReply: true)
        XCTAssertEqual(ok, .handled(failure: nil))
        XCTAssertEqual(okReply, .u64(0))
        let (bad, badReply) = try exchange(.setVringNum(VringState(index: 0, num: 100)), needsReply: true)
        guard case .handled(let why) = bad, let why else { return XCTFail("expected a handled failure, got \(bad)") }
        XCTAssertTrue(why.contains("100"), why)
        XCTAssertEqual(badReply, .u64(1))
        // Without need_reply, nothing is sent back even on failure: the next reply is for the next request.
        XCTAssertNotEqual(try exchange(.setVringNum(VringState(index: 9, num: 256))).0, .handled(failure: nil))
        XCTAssertEqual(try exchange(.getQueueNum).1, .u64(1))
    }

    func testMemoryTableFdsCrossTheSocket() throws {
        let fd = try Backend.memfd(1 << 20)
        defer { close(fd) }
        let (r, _) = try exchange(.setMemTable([Backend.region()], fds: [fd]))
        XCTAssertEqual(r, .handled(failure: nil))
        XCTAssertEqual(device.memory.regionCount, 1)
        XCTAssertTrue(Backend.isOpen(fd), "the sender keeps its own fd")
        // A write through our mapping shows through the back-end's.
        let mine = try MappedRegion.map(fd: fd, length: 1 << 20)
        mine.base.storeBytes(of: 0xabcd_1234, toByteOffset: 64, as: UInt32.self)
        XCTAssertEqual(device.memory.table.translate(64, 4)?.load(as: UInt32.self), 0xabcd_1234)
    }

    func testMalformedHeaderIsAProtocolError() throws {
        // Version 2.
        try front.send(header: VhostUserHeader(request: VhostUserRequest.getFeatures.rawValue, flags: 0x2, size: 0), payload: [])
        guard case .protocolError = backend.service() else { return XCTFail("version 2 accepted") }
    }

    func testWrongPayloadSizeIsAProtocolError() throws {
        try front.send(header: VhostUserHeader(request: VhostUserRequest.setVringNum.rawValue, size: 4), payload: [1, 0, 0, 0])
        guard case .protocolError = backend.service() else { return XCTFail("short SET_VRING_NUM accepted") }
    }

    func testPeerClosingIsReported() {
        front.close()
        XCTAssertEqual(backend.service(), .closed)
    }

    func testCloseResetsTheDevice() throws {
        XCTAssertEqual(try exchange(.setFeatures(Backend.linuxFeatures)).0, .handled(failure: nil))
        XCTAssertEqual(try sendMemTable(), .handled(failure: nil))
        XCTAssertEqual(device.memory.regionCount, 1)
        backend.close()
        XCTAssertEqual(device.memory.regionCount, 0)
        XCTAssertEqual(device.ackedFeatures, 0)
        backend = nil
    }

    func testANewConnectionStartsFromAResetDevice() throws {
        XCTAssertEqual(try sendMemTable(), .handled(failure: nil))
        let (a, b) = try VhostUserChannel.socketPair()
        defer { close(b) }
        let second = VhostUserBackendConnection(fd: a, device: device)
        XCTAssertEqual(device.memory.regionCount, 0, "a reconnecting front-end starts clean")
        second.channel.close()
    }
}
