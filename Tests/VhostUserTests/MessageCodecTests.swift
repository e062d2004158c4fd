import CSluice
import Foundation
import XCTest
@testable import VhostUser

// MARK: - Helpers shared by the Message*Tests files

/// A fresh fd on /dev/null: a stand-in for eventfds and memfds.
func placeholderFD() -> Int32 {
    let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
    precondition(fd >= 0, "open /dev/null")
    return fd
}

func fdIsOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

func openFDCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Splits encoded bytes into header and payload.
func splitMessage(_ bytes: [UInt8]) -> (VhostUserHeader, [UInt8]) {
    guard let header = VhostUserHeader(bytes: bytes) else { fatalError("short message in a test") }
    return (header, Array(bytes.dropFirst(VhostUserHeader.byteCount)))
}

/// Runs `body`, which must throw a `VhostUserProtocolError` of `kind` whose
/// description contains `text`.
func assertProtocolError<T>(_ kind: VhostUserProtocolError.Kind, _ text: String = "",
                            file: StaticString = #filePath, line: UInt = #line,
                            _ body: () throws -> T) {
    do {
        let value = try body()
        XCTFail("expected \(kind) error, got \(value)", file: file, line: line)
    } catch let error as VhostUserProtocolError {
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        if !text.isEmpty {
            XCTAssertTrue(error.description.contains(text), "'\(error)' lacks '\(text)'", file: file, line: line)
        }
    } catch {
        XCTFail("expected VhostUserProtocolError, got \(error)", file: file, line: line)
    }
}

let sampleMemoryRegion = MemoryRegionDescriptor(guestPhysAddr: 0x1_0000_0000, memorySize: 0x4000_0000,
                                          userspaceAddr: 0x7f00_0000_0000, mmapOffset: 0x1000)

/// One valid value of every request kind. fds come from `fd`.
func sampleRequests(_ fd: () -> Int32) -> [VhostUserMessage] {
    let low = MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: 0xa0000, userspaceAddr: 0x7f00_0000_0000, mmapOffset: 0)
    return [
        .getFeatures,
        .setFeatures(0x1_7020_0000 | vhostUserProtocolFeaturesMask),
        .setOwner,
        .resetOwner,
        .setMemTable([low, sampleMemoryRegion], fds: [fd(), fd()]),
        .setLogBase(LogDescription(mmapSize: 0x8000, mmapOffset: 0), fd: fd()),
        .setLogFD(fd: fd()),
        .setVringNum(VringState(index: 1, num: 256)),
        .setVringAddr(VringAddress(index: 1, flags: VringAddress.logFlag, desc: 0x7f00_0001_0000,
                                   used: 0x7f00_0001_2000, avail: 0x7f00_0001_1000, log: 0x1_2000)),
        .setVringBase(VringState(index: 0, num: 17)),
        .getVringBase(VringState(index: 1, num: 0)),
        .setVringKick(index: 0, fd: fd()),
        .setVringKick(index: 3, fd: nil),
        .setVringCall(index: 255, fd: fd()),
        .setVringCall(index: 1, fd: nil),
        .setVringErr(index: 2, fd: fd()),
        .setVringErr(index: 2, fd: nil),
        .getProtocolFeatures,
        .setProtocolFeatures(VhostUserProtocolFeature([.mq, .replyAck, .config, .configureMemSlots]).rawValue),
        .getQueueNum,
        .setVringEnable(VringState(index: 1, num: 1)),
        .sendRARP(mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
        .netSetMTU(1500),
        .setBackendReqFD(fd: fd()),
        .iotlbMessage(IOTLBMessage(iova: 0x1000, size: 0x1000, userAddr: 0x7f00_0000_1000, permissions: 3, type: 2)),
        .setVringEndian(VringState(index: 0, num: 1)),
        .getConfig(DeviceConfigSpace(offset: 0, size: 12)),
        .setConfig(DeviceConfigSpace(offset: 6, flags: DeviceConfigSpace.flagMigration, payload: [0x01, 0x00])),
        .createCryptoSession([1, 2, 3, 4, 5]),
        .closeCryptoSession(7),
        .postcopyAdvise,
        .postcopyListen,
        .postcopyEnd,
        .getInflightFD(InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 2, queueSize: 128)),
        .setInflightFD(InflightDescription(mmapSize: 0x3000, mmapOffset: 0, numQueues: 2, queueSize: 128), fd: fd()),
        .gpuSetSocket(fd: fd()),
        .resetDevice,
        .vringKick(VringState(index: 1, num: 0)),
        .getMaxMemSlots,
        .addMemReg(sampleMemoryRegion, fd: fd()),
        .remMemReg(sampleMemoryRegion),
        .setStatus(0x0f),
        .getStatus,
        .getSharedObject(uuid: Array(0..<16)),
        .setDeviceStateFD(DeviceStateTransfer(direction: 1, phase: 0), fd: fd()),
        .checkDeviceState,
    ]
}

// MARK: - Round trips and fixtures

final class MessageCodecTests: XCTestCase {
    func testEveryRequestKindRoundTrips() throws {
        let messages = sampleRequests(placeholderFD)
        // Every known request number has at least one sample.
        let covered = Set(messages.map(\.requestCode))
        for request in VhostUserRequest.allCases {
            XCTAssertTrue(covered.contains(request.rawValue), "no sample for \(request.name)")
        }
        for message in messages {
            for needsReply in [false, true] {
                let (header, payload) = splitMessage(message.encode(needsReply: needsReply))
                XCTAssertEqual(header.request, message.requestCode)
                XCTAssertEqual(header.needsReply, needsReply)
                XCTAssertFalse(header.isReply)
                let decoded = try VhostUserMessage.decode(header: header, payload: payload, fds: message.fileDescriptors)
                XCTAssertEqual(decoded, message, "\(message)")
                XCTAssertEqual(decoded.fileDescriptors, message.fileDescriptors)
                for fd in message.fileDescriptors { XCTAssertTrue(fdIsOpen(fd), "decode closed a kept fd of \(message)") }
            }
            message.closeFileDescriptors()
        }
    }

    func testSetVringAddrFixture() throws {
        // request 9, flags 0x1, size 40; index 1, flags 0, desc, used, avail, log.
        var bytes: [UInt8] = [9, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        for v: UInt64 in [0x1122_3344_5566_7788, 0x2000, 0x1000, 0] {
            bytes += withUnsafeBytes(of: v.littleEndian, Array.init)
        }
        let (header, payload) = splitMessage(bytes)
        let message = try VhostUserMessage.decode(header: header, payload: payload, fds: [])
        XCTAssertEqual(message, .setVringAddr(VringAddress(index: 1, desc: 0x1122_3344_5566_7788, used: 0x2000, avail: 0x1000)))
        XCTAssertEqual(message.encode(), bytes)
    }

    func testSetMemTableFixtureLayout() {
        let message = VhostUserMessage.setMemTable([sampleMemoryRegion], fds: [42])
        let bytes = message.encode()
        XCTAssertEqual(bytes.count, 12 + 8 + 32)
        XCTAssertEqual(Array(bytes[0..<12]), [5, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0])
        XCTAssertEqual(Array(bytes[12..<20]), [1, 0, 0, 0, 0, 0, 0, 0]) // nregions, padding
        XCTAssertEqual(Array(bytes[20..<28]), [0, 0, 0, 0, 1, 0, 0, 0]) // guest_phys_addr
        XCTAssertEqual(Array(bytes[44..<52]), [0, 0x10, 0, 0, 0, 0, 0, 0]) // mmap_offset
        XCTAssertEqual(message.fileDescriptors, [42])
    }

    func testKickPayloadCarriesIndexAndInvalidFlag() {
        XCTAssertEqual(splitMessage(VhostUserMessage.setVringKick(index: 3, fd: nil).encode()).1, [3, 1, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(splitMessage(VhostUserMessage.setVringCall(index: 5, fd: 9).encode()).1, [5, 0, 0, 0, 0, 0, 0, 0])
    }

    func testHeaderFlags() {
        let h = VhostUserHeader(request: 1, size: 0, isReply: true, needsReply: true)
        XCTAssertEqual(h.flags, 0x1 | 0x4 | 0x8)
        XCTAssertTrue(h.isReply && h.needsReply && h.hasValidVersion && !h.hasReservedFlags)
        XCTAssertEqual(VhostUserHeader(bytes: h.encoded()), h)
        XCTAssertNil(VhostUserHeader(bytes: [1, 0, 0]))
        XCTAssertTrue(VhostUserHeader(request: 1, flags: 0x11, size: 0).hasReservedFlags)
        XCTAssertFalse(VhostUserHeader(request: 1, flags: 0x2, size: 0).hasValidVersion)
    }

    func testFeatureConstants() {
        XCTAssertEqual(VHOST_USER_F_PROTOCOL_FEATURES, 30)
        XCTAssertEqual(vhostUserProtocolFeaturesMask, 0x4000_0000)
        XCTAssertEqual(VhostUserProtocolFeature.replyAck.rawValue, 1 << 3)
        XCTAssertEqual(VhostUserProtocolFeature.configureMemSlots.rawValue, 1 << 15)
        XCTAssertEqual(VhostUserProtocolFeature.status.rawValue, 1 << 16)
        XCTAssertEqual(VhostUserRequest.getSharedObject.rawValue, 41)
        XCTAssertEqual(VhostUserRequest.describe(5), "SET_MEM_TABLE (5)")
        XCTAssertEqual(VhostUserRequest.describe(200), "request 200")
    }

    func testUnknownRequestIsAValueAndItsFDsAreClosed() throws {
        let fd = placeholderFD()
        let header = VhostUserHeader(request: 9999, size: 3)
        let message = try VhostUserMessage.decode(header: header, payload: [1, 2, 3], fds: [fd])
        XCTAssertEqual(message, .unknown(9999))
        XCTAssertEqual(message.request, nil)
        XCTAssertFalse(fdIsOpen(fd))
        XCTAssertEqual(try VhostUserMessage.decode(header: VhostUserHeader(request: 0, size: 0), payload: [], fds: []), .unknown(0))
    }

    func testRemMemRegClosesTheToleratedFD() throws {
        let fd = placeholderFD()
        let (header, payload) = splitMessage(VhostUserMessage.remMemReg(sampleMemoryRegion).encode())
        XCTAssertEqual(try VhostUserMessage.decode(header: header, payload: payload, fds: [fd]), .remMemReg(sampleMemoryRegion))
        XCTAssertFalse(fdIsOpen(fd))
    }

    // MARK: Replies

    func testRepliesRoundTrip() throws {
        let inflightFD = placeholderFD()
        let cases: [(VhostUserRequest, Bool, VhostUserReply)] = [
            (.getFeatures, false, .u64(0x1_4000_0000)),
            (.getProtocolFeatures, false, .u64(VhostUserProtocolFeature([.mq, .replyAck]).rawValue)),
            (.getQueueNum, false, .u64(4)),
            (.getMaxMemSlots, false, .u64(32)),
            (.getStatus, false, .u64(0x0f)),
            (.getVringBase, false, .vringState(VringState(index: 1, num: 300))),
            (.getConfig, false, .config(DeviceConfigSpace(offset: 0, payload: [0x52, 0x54, 0, 1, 2, 3]))),
            (.getConfig, false, .configFailed),
            (.getInflightFD, false, .inflight(InflightDescription(mmapSize: 0x2000, mmapOffset: 0, numQueues: 1, queueSize: 256), fd: inflightFD)),
            (.setLogBase, false, .empty),
            (.setMemTable, true, .ack(true)),
            (.setVringAddr, true, .ack(false)),
        ]
        for (request, needsReply, reply) in cases {
            let (header, payload) = splitMessage(reply.encode(replyingTo: request))
            XCTAssertTrue(header.isReply)
            XCTAssertEqual(header.request, request.rawValue)
            let decoded = try VhostUserReply.decode(header: header, payload: payload, fds: reply.fileDescriptors,
                                                    replyingTo: request.rawValue, needsReply: needsReply)
            XCTAssertEqual(decoded, reply)
        }
        XCTAssertEqual(VhostUserReply.ack(true), .u64(0))
        XCTAssertEqual(VhostUserReply.ack(false), .u64(1))
        XCTAssertTrue(fdIsOpen(inflightFD))
        close(inflightFD)
    }

    func testReplyValidation() {
        let ack = splitMessage(VhostUserReply.ack(true).encode(replyingTo: .setVringNum))
        assertProtocolError(.unexpectedReply, "gets none") {
            try VhostUserReply.decode(header: ack.0, payload: ack.1, fds: [], replyingTo: 8, needsReply: false)
        }
        assertProtocolError(.unexpectedReply, "answers SET_VRING_NUM (8)") {
            try VhostUserReply.decode(header: ack.0, payload: ack.1, fds: [], replyingTo: 9, needsReply: true)
        }
        var notReply = ack.0
        notReply.flags = VhostUserHeader.currentVersion
        assertProtocolError(.badHeader, "reply flag missing") {
            try VhostUserReply.decode(header: notReply, payload: ack.1, fds: [], replyingTo: 8, needsReply: true)
        }
        let fd = placeholderFD()
        assertProtocolError(.fileDescriptorCount) {
            try VhostUserReply.decode(header: ack.0, payload: ack.1, fds: [fd], replyingTo: 8, needsReply: true)
        }
        XCTAssertFalse(fdIsOpen(fd), "a rejected reply's fd stays open")
        let config = splitMessage(VhostUserReply.config(DeviceConfigSpace(offset: 250, payload: [UInt8](repeating: 0, count: 8)))
            .encode(replyingTo: .getConfig))
        assertProtocolError(.invalidPayload, "outside") {
            try VhostUserReply.decode(header: config.0, payload: config.1, fds: [], replyingTo: 24, needsReply: false)
        }
        let inflight = splitMessage(VhostUserReply.inflight(InflightDescription(mmapSize: 0x1000, mmapOffset: 0, numQueues: 1, queueSize: 8), fd: 0)
            .encode(replyingTo: .getInflightFD))
        assertProtocolError(.fileDescriptorCount, "0 fds, expected 1") {
            try VhostUserReply.decode(header: inflight.0, payload: inflight.1, fds: [], replyingTo: 31, needsReply: false)
        }
    }
}
