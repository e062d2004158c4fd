import XCTest
@testable import VhostUser

/// Whether a net device offers VHOST_USER_PROTOCOL_F_CONFIG: not to a front-end that asks
/// for protocol features before SET_OWNER (QEMU, which would warn "backend supports
/// VHOST_USER_PROTOCOL_F_CONFIG but QEMU does not"), yes to one that sends SET_OWNER first
/// (DPDK's virtio-user, sluice-gen). The message sequences are the ones each front-end sends.
final class ProtocolFeatureOfferTests: XCTestCase {
    private let all = VhostUserDevice.commonProtocolFeatures.union(.mtu)

    private func offered(_ d: VhostUserDevice, file: StaticString = #filePath, line: UInt = #line) -> VhostUserProtocolFeature? {
        guard case .u64(let p)? = replyOf(d.handle(.getProtocolFeatures)) else {
            XCTFail("GET_PROTOCOL_FEATURES had no u64 reply", file: file, line: line)
            return nil
        }
        return VhostUserProtocolFeature(rawValue: p)
    }

    func testSupportedSetHasConfig() {
        XCTAssertTrue(all.contains(.config), "GET_CONFIG is implemented, so CONFIG is part of what can be offered")
    }

    /// QEMU's vhost_user_backend_init: GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES
    /// (what it keeps of the offer), GET_QUEUE_NUM, GET_MAX_MEM_SLOTS; SET_OWNER only after.
    func testQEMUOrderGetsNoConfig() throws {
        let d = VhostUserDevice(net: Backend.spec(queuePairs: 2))
        guard case .reply = d.handle(.getFeatures) else { return XCTFail() }
        let offer = try XCTUnwrap(offered(d))
        XCTAssertFalse(offer.contains(.config), "QEMU would warn about CONFIG")
        XCTAssertEqual(offer, all.subtracting(.config), "everything else is still offered")
        XCTAssertDone(d.handle(.setProtocolFeatures(offer.rawValue)))
        XCTAssertTrue(d.replyAck)
        XCTAssertDone(d.handle(.setOwner))
        // queues=2: the second queue pair's vhost_dev runs the same init on the same
        // connection, after the first one's SET_OWNER: the answer must not change.
        guard case .reply = d.handle(.getFeatures) else { return XCTFail() }
        XCTAssertEqual(offered(d), offer)
        XCTAssertDone(d.handle(.setProtocolFeatures(offer.rawValue)))
        // Acking CONFIG on this connection is refused: it was not offered.
        XCTAssertFailed(d.handle(.setProtocolFeatures(offer.union(.config).rawValue)), "CONFIG not offered")
    }

    /// DPDK virtio_user_dev_init (and sluice-gen): SET_OWNER, GET_FEATURES, GET_PROTOCOL_FEATURES.
    func testSetOwnerFirstGetsConfig() throws {
        let d = VhostUserDevice(net: Backend.spec())
        XCTAssertDone(d.handle(.setOwner))
        guard case .reply = d.handle(.getFeatures) else { return XCTFail() }
        XCTAssertEqual(offered(d), all)
        XCTAssertDone(d.handle(.setProtocolFeatures(all.rawValue)))
        XCTAssertEqual(d.protocolFeatures, all)
    }

    /// RESET_OWNER / RESET_DEVICE reset the device, not the connection's offer; a new
    /// connection decides again.
    func testDecisionBelongsToTheConnection() throws {
        let d = VhostUserDevice(net: Backend.spec())
        XCTAssertFalse(try XCTUnwrap(offered(d)).contains(.config))
        XCTAssertDone(d.handle(.setOwner))
        XCTAssertDone(d.handle(.resetDevice))
        XCTAssertFalse(try XCTUnwrap(offered(d)).contains(.config), "same connection, same answer")

        d.beginConnection()
        XCTAssertNil(d.protocolOffer.decided)
        XCTAssertDone(d.handle(.setOwner))
        XCTAssertTrue(try XCTUnwrap(offered(d)).contains(.config), "a new connection that sends SET_OWNER first")

        d.beginConnection()
        XCTAssertFalse(try XCTUnwrap(offered(d)).contains(.config), "and a QEMU-ordered one after it")
    }

    /// A front-end that sets protocol features without asking may ack anything supported.
    func testSetWithoutAskingAcceptsTheSupportedSet() {
        let d = VhostUserDevice(net: Backend.spec())
        XCTAssertDone(d.handle(.setProtocolFeatures(all.rawValue)))
        XCTAssertFailed(d.handle(.setProtocolFeatures(all.union(.logSHMFD).rawValue)))
    }

    /// Over a real socket: the connection starts the offer afresh (BackendConnection →
    /// beginConnection), so a QEMU connection after a DPDK one still gets no CONFIG.
    func testConnectionsStartFresh() throws {
        let device = VhostUserDevice(net: Backend.spec())
        for (setOwnerFirst, expectConfig) in [(true, true), (false, false), (true, true)] {
            let (a, b) = try VhostUserChannel.socketPair()
            let backend = VhostUserBackendConnection(fd: a, device: device)
            let front = VhostUserChannel(fd: b)
            front.ioTimeoutMilliseconds = 1000
            defer { backend.close(); front.close() }
            if setOwnerFirst {
                try front.send(.setOwner)
                XCTAssertEqual(backend.service(), .handled(failure: nil))
            }
            try front.send(.getProtocolFeatures)
            XCTAssertEqual(backend.service(), .handled(failure: nil))
            let (h, p, fds) = try XCTUnwrap(try front.receive())
            let reply = try VhostUserReply.decode(header: h, payload: p, fds: fds,
                                                  replyingTo: VhostUserRequest.getProtocolFeatures.rawValue, needsReply: false)
            guard case .u64(let bits) = reply else { return XCTFail("\(reply)") }
            XCTAssertEqual(VhostUserProtocolFeature(rawValue: bits).contains(.config), expectConfig,
                           "SET_OWNER first: \(setOwnerFirst)")
        }
    }
}
