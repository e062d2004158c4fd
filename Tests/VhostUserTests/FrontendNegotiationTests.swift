#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Platform
import XCTest
@testable import VhostUser

/// The frontend's side of the conversation, against the fake backend.
final class FrontendNegotiationTests: XCTestCase {
    private func code(_ r: VhostUserRequest) -> UInt32 { r.rawValue }

    func testFullNegotiationInOrder() throws {
        var options = testOptions()
        options.mtu = 1500
        let (frontend, backend) = try makeFrontend(options: options)
        let n = frontend.negotiation

        // MQ is only asked for with more than one pair; INDIRECT only when the options say so.
        XCTAssertEqual(FrontendFeatures(rawValue: backend.ackedFeatures),
                       [.version1, .mergeableRxBuffers, .eventIndex, .mtu, .mac, .status, .protocolFeatures])
        XCTAssertEqual(n.ackedFeatures.rawValue, backend.ackedFeatures)
        XCTAssertEqual(VhostUserProtocolFeature(rawValue: backend.ackedProtocolFeatures), [.mq, .replyAck, .config, .mtu])
        XCTAssertEqual(n.backendQueuePairs, 4)
        XCTAssertEqual(n.deviceMAC, [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef])
        XCTAssertEqual(frontend.mac, [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef])
        XCTAssertEqual(n.deviceMTU, 1500)
        XCTAssertEqual(n.headerLength, 12)
        XCTAssertEqual(backend.mtu, 1500)

        let expected: [VhostUserRequest] = [
            .setOwner, .getFeatures, .getProtocolFeatures, .setProtocolFeatures, .getQueueNum, .setFeatures,
            .netSetMTU, .getConfig, .setMemTable,
            .setVringCall, .setVringNum, .setVringBase, .setVringAddr, .setVringKick,
            .setVringCall, .setVringNum, .setVringBase, .setVringAddr, .setVringKick,
            .setVringEnable, .setVringEnable,
        ]
        XCTAssertEqual(backend.requestCodes, expected.map(\.rawValue))
        // Every request without a reply of its own after SET_PROTOCOL_FEATURES asked for REPLY_ACK
        // (SET_OWNER comes first, before REPLY_ACK is negotiated).
        for r in backend.requests {
            let ownReply = VhostUserRequest(rawValue: r.code)?.replyShape != nil
            let beforeAck = r.code == code(.setOwner) || r.code == code(.setProtocolFeatures)
            XCTAssertEqual(r.needsReply, !ownReply && !beforeAck, "\(VhostUserRequest.describe(r.code))")
        }
        XCTAssertEqual(backend.regions.count, 1)
        XCTAssertEqual(backend.regions[0].guestPhysAddr, 0)
        XCTAssertEqual(backend.regions[0].memorySize, UInt64(frontend.memory.length))
        XCTAssertEqual(backend.regions[0].userspaceAddr, UInt64(UInt(bitPattern: frontend.memory.base)))
        XCTAssertTrue(backend.isEnabled(vring: 0))
        XCTAssertTrue(backend.isEnabled(vring: 1))

        XCTAssertEqual(try frontend.disconnect(), [0, 0])
        XCTAssertTrue(backend.waitUntilClosed())
        XCTAssertEqual(Array(backend.requestCodes.suffix(2)), [code(.getVringBase), code(.getVringBase)])
        // A second disconnect is a no-op.
        XCTAssertEqual(try frontend.disconnect(), [])
    }

    func testWithoutProtocolFeaturesNothingProtocolIsSent() throws {
        let (frontend, backend) = try makeFrontend(features: [.version1, .mergeableRxBuffers], protocolFeatures: [])
        // Nothing is acknowledged here, so the last requests may still be in flight: wait for both rings' kicks.
        XCTAssertTrue(backend.waitForRequests { $0.filter { $0 == self.code(.setVringKick) }.count == 2 })
        let codes = backend.requestCodes
        XCTAssertEqual(Array(codes.prefix(3)), [code(.setOwner), code(.getFeatures), code(.setFeatures)])
        XCTAssertFalse(codes.contains(code(.getProtocolFeatures)))
        XCTAssertFalse(codes.contains(code(.setVringEnable)), "rings start enabled without PROTOCOL_FEATURES")
        XCTAssertFalse(backend.requests.contains { $0.needsReply })
        XCTAssertNil(frontend.negotiation.deviceMAC)
        XCTAssertEqual(FrontendFeatures(rawValue: backend.ackedFeatures), [.version1, .mergeableRxBuffers])
        try frontend.disconnect()
    }

    func testLegacyDeviceGetsTheShortHeader() throws {
        let (frontend, _) = try makeFrontend(features: [.eventIndex], protocolFeatures: [])
        XCTAssertEqual(frontend.negotiation.headerLength, 10)
        XCTAssertTrue(frontend.negotiation.eventIndex)
    }

    func testARejectedRequestIsReportedByName() throws {
        XCTAssertThrowsError(try makeFrontend { $0.reject = VhostUserRequest.setMemTable.rawValue }) { error in
            XCTAssertEqual(error as? FrontendError, .rejected(request: VhostUserRequest.setMemTable.rawValue, status: 1))
            XCTAssertTrue("\(error)".contains("SET_MEM_TABLE (5)"), "\(error)")
        }
    }

    func testTooManyQueuePairs() throws {
        var options = testOptions()
        options.queuePairs = 3
        XCTAssertThrowsError(try makeFrontend(options: options) { $0.queueNum = 2 }) { error in
            guard case .missingFeature(let what)? = error as? FrontendError else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("GET_QUEUE_NUM says 2"), what)
        }
        XCTAssertThrowsError(try makeFrontend(protocolFeatures: [.replyAck], options: options)) { error in
            guard case .missingFeature(let what)? = error as? FrontendError else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("VHOST_USER_PROTOCOL_F_MQ"), what)
        }
    }

    func testMultiqueueSetsUpEveryVring() throws {
        var options = testOptions(queueSize: 16)
        options.queuePairs = 3
        let (frontend, backend) = try makeFrontend(options: options)
        XCTAssertTrue(frontend.negotiation.ackedFeatures.contains(.multiQueue))
        XCTAssertEqual(backend.vringCount(), 6)
        for v in 0..<6 {
            XCTAssertTrue(backend.isEnabled(vring: UInt32(v)))
            XCTAssertEqual(backend.vringNum(UInt32(v)), 16)
        }
        XCTAssertEqual(frontend.rxQueues.map(\.vringIndex), [0, 2, 4])
        XCTAssertEqual(frontend.txQueues.map(\.vringIndex), [1, 3, 5])
        XCTAssertEqual(try frontend.disconnect(), [0, 0, 0, 0, 0, 0])
    }

    func testInvalidOptionsAreRefusedBeforeConnecting() {
        var options = FrontendOptions()
        options.queueSize = 100
        XCTAssertThrowsError(try options.validate()) { error in
            XCTAssertTrue("\(error)".contains("power of two"), "\(error)")
        }
        options = FrontendOptions()
        options.txDescriptorsPerFrame = 3
        XCTAssertThrowsError(try options.validate())
        options = FrontendOptions()
        options.mac = [1, 2, 3]
        XCTAssertThrowsError(try options.validate())
    }

    func testGuestMemoryTooSmall() throws {
        var options = testOptions(queueSize: 4096)
        options.memoryBytes = 1 << 20
        XCTAssertThrowsError(try makeFrontend(options: options)) { error in
            guard case .guestMemoryTooSmall(let needed, let available)? = error as? FrontendError else { return XCTFail("\(error)") }
            XCTAssertGreaterThan(needed, available)
        }
    }

    func testListenModeAcceptsABackend() throws {
        let path = "/tmp/fe-listen-\(getpid()).sock"
        unlink(path)
        let box = BackendBox()
        let connector = Thread {
            // Connect once the frontend listens, then serve it.
            for _ in 0..<200 {
                if let fd = try? VhostUserChannel.connect(path: path) {
                    let backend = FakeBackend(fd: fd, features: FrontendFeatures([.version1, .protocolFeatures]).rawValue,
                                              protocolFeatures: VhostUserProtocolFeature.replyAck.rawValue)
                    box.set(backend)
                    backend.start()
                    return
                }
                usleep(10_000)
            }
        }
        connector.start()
        let frontend = try VirtioFrontend.listen(path: path, options: testOptions(), timeoutSeconds: 5)
        XCTAssertTrue(frontend.negotiation.replyAck)
        XCTAssertEqual(access(path, F_OK), 0)
        try frontend.disconnect()
        XCTAssertNotEqual(access(path, F_OK), 0, "the socket file is removed on disconnect")
        XCTAssertTrue(box.get()?.waitUntilClosed() ?? false)
    }

    func testListenTimesOutWithoutABackend() {
        let path = "/tmp/fe-listen-timeout-\(getpid()).sock"
        XCTAssertThrowsError(try VirtioFrontend.listen(path: path, options: testOptions(), timeoutSeconds: 0.05)) { error in
            guard case .timedOut? = error as? FrontendError else { return XCTFail("\(error)") }
        }
        XCTAssertNotEqual(access(path, F_OK), 0)
    }

    func testConnectToNothingFailsClearly() {
        XCTAssertThrowsError(try VirtioFrontend.connect(path: "/tmp/fe-nobody-\(getpid()).sock", options: testOptions())) { error in
            XCTAssertTrue("\(error)".contains("No such file"), "\(error)")
        }
    }

    func testNoFileDescriptorLeaks() throws {
        // The fake backend's fds are closed when its thread lets go of it: poll a little.
        // A leak shows as more fds than before (other tests' fds may close meanwhile).
        func settles(at count: Int) -> Bool {
            for _ in 0..<100 where openFDCount() > count { usleep(10_000) }
            return openFDCount() <= count
        }
        let before = openFDCount()
        do {
            let (frontend, backend) = try makeFrontend()
            try frontend.disconnect()
            XCTAssertTrue(backend.waitUntilClosed())
        }
        XCTAssertTrue(settles(at: before), "after a disconnect: \(openFDCount()) fds open, \(before) before")
        // A frontend that fails half-way (SET_VRING_KICK refused) closes its memfd, eventfds and socket.
        XCTAssertThrowsError(try makeFrontend { $0.reject = VhostUserRequest.setVringKick.rawValue })
        XCTAssertTrue(settles(at: before), "after a failed start: \(openFDCount()) fds open, \(before) before")
    }

    func testFeatureNames() {
        XCTAssertEqual(FrontendFeatures([.version1, .mergeableRxBuffers]).description, "MRG_RXBUF|VERSION_1")
        XCTAssertEqual(FrontendFeatures(rawValue: 1 << 40 | 1 << 5).description, "MAC|0x10000000000")
        XCTAssertEqual(FrontendFeatures().description, "none")
    }
}

private final class BackendBox: @unchecked Sendable {
    private let lock = NSLock()
    private var backend: FakeBackend?
    func set(_ b: FakeBackend) { lock.withLock { backend = b } }
    func get() -> FakeBackend? { lock.withLock { backend } }
}
