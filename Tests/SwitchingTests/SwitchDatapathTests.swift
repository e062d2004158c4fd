import Memory
import Ports
import Switching
import XCTest

/// `SwitchPortQueue.poll` over mock vhost guests: learning, flooding, VLANs,
/// mirroring, port security, limits, MTU and hand-over between workers.
final class SwitchDatapathTests: XCTestCase {
    // MARK: Learning and flooding

    func testUnknownUnicastAndBroadcastFloodToOtherPortsOfTheVLAN() throws {
        let f = try SwitchFixture([.access(10), .access(10), .access(10), .access(20)])
        let bcast = ethFrame(to: broadcastMAC, from: mac(1), seed: 1)
        XCTAssertEqual(f.send(0, bcast), 1)
        XCTAssertEqual(f.receivedAll(), [1: [bcast], 2: [bcast]], "never back to port 0, never to VLAN 20")
        let unknown = ethFrame(to: mac(9), from: mac(2), length: 300, seed: 2)
        f.send(1, unknown)
        XCTAssertEqual(f.receivedAll(), [0: [unknown], 2: [unknown]])
        let multicast = ethFrame(to: [0x01, 0x00, 0x5e, 0, 0, 1], from: mac(1), seed: 3)
        f.send(0, multicast)
        XCTAssertEqual(f.receivedAll(), [1: [multicast], 2: [multicast]])
        XCTAssertEqual(f.counter(0, "flood_packets"), 2)
        XCTAssertEqual(f.counter(1, "flood_packets"), 1)
        XCTAssertEqual(f.counter(0, "rx_packets"), 2)
        XCTAssertEqual(f.counter(2, "tx_packets"), 3)
        XCTAssertEqual(f.switchCounter("learned"), 2)
        XCTAssertEqual(f.drops(), [:])
        f.assertNoLeak()
    }

    func testUnicastAfterLearningGoesOnlyToTheLearnedPort() throws {
        let f = try SwitchFixture([.access(10), .access(10), .access(10)])
        f.send(0, ethFrame(to: broadcastMAC, from: mac(1)))
        f.send(1, ethFrame(to: broadcastMAC, from: mac(2)))
        _ = f.receivedAll()
        let toB = ethFrame(to: mac(2), from: mac(1), length: 1514, seed: 5)
        let toA = ethFrame(to: mac(1), from: mac(2), length: 60, seed: 6)
        f.send(0, toB)
        f.send(1, toA)
        XCTAssertEqual(f.receivedAll(), [1: [toB], 0: [toA]])
        XCTAssertEqual(f.counter(0, "flood_packets"), 1)
        XCTAssertEqual(f.counter(1, "flood_packets"), 1)
        // A burst of mixed destinations from one port: each goes where it belongs, in order.
        let burst = (0..<20).map { ethFrame(to: $0 % 2 == 0 ? mac(2) : broadcastMAC, from: mac(1), seed: UInt8($0)) }
        XCTAssertEqual(f.send(0, burst), 20)
        let got = f.receivedAll()
        XCTAssertEqual(got[1], burst)
        XCTAssertEqual(got[2], burst.enumerated().filter { $0.offset % 2 == 1 }.map(\.element))
        XCTAssertNil(got[0])
        // A frame to a station on its own segment is dropped quietly.
        f.send(0, ethFrame(to: mac(1), from: mac(3)))
        XCTAssertEqual(f.receivedAll(), [:])
        // The station moves: frames follow it.
        f.send(2, ethFrame(to: mac(9), from: mac(2)))
        _ = f.receivedAll()
        XCTAssertEqual(f.switchCounter("moved"), 1)
        f.send(0, toB)
        XCTAssertEqual(f.receivedAll(), [2: [toB]])
        XCTAssertEqual(f.table.table.lookup(stationKey(2, vlan: 10)), 2)
        XCTAssertEqual(f.drops(), [:])
        f.assertNoLeak()
    }

    func testVLANIsolationBetweenAccessPorts() throws {
        let f = try SwitchFixture([.access(10), .access(20), .access(10), .access(20)])
        // The same MAC in two VLANs is two stations.
        f.send(0, ethFrame(to: broadcastMAC, from: mac(1)))
        f.send(1, ethFrame(to: broadcastMAC, from: mac(1)))
        XCTAssertEqual(f.receivedAll().mapValues(\.count), [2: 1, 3: 1])
        XCTAssertEqual(f.table.table.count, 2)
        // Unicast to a MAC learned only in VLAN 20 is not delivered in VLAN 10 to its port.
        f.send(3, ethFrame(to: broadcastMAC, from: mac(4)))
        _ = f.receivedAll()
        let cross = ethFrame(to: mac(4), from: mac(5), seed: 9)
        f.send(2, cross)
        XCTAssertEqual(f.receivedAll(), [0: [cross]], "unknown in VLAN 10: flooded in VLAN 10 only")
        f.assertNoLeak()
    }

    func testMulticastSourceIsDropped() throws {
        let f = try SwitchFixture([.access(10), .access(10)])
        f.send(0, ethFrame(to: broadcastMAC, from: [0x03, 0, 0, 0, 0, 1]))
        XCTAssertEqual(f.receivedAll(), [:])
        XCTAssertEqual(f.table.table.count, 0)
        XCTAssertEqual(f.drops(), ["p0.drop.bad_length": 1])
        f.assertNoLeak()
    }

    // MARK: VLANs and trunks

    func testTrunkEgressTagsAndIngressUntags() throws {
        let f = try SwitchFixture([.access(10), .access(20), .trunk([10, 20]), .access(30)])
        let a = ethFrame(to: broadcastMAC, from: mac(1), length: 200, seed: 1)
        f.send(0, a)
        var got = f.receivedAll()
        XCTAssertEqual(got.keys.sorted(), [2])
        XCTAssertEqual(got[2]?.first.flatMap(tagVID), 10)
        XCTAssertEqual(got[2]?.first.flatMap(untagged), a, "tag inserted after the MACs, payload intact")
        XCTAssertEqual(got[2]?.first?.count, 204)
        // Tagged VLAN 20 from the trunk reaches the VLAN 20 access port untagged.
        let b = ethFrame(to: broadcastMAC, from: mac(2), tci: 20, length: 100, seed: 2)
        f.send(2, b)
        XCTAssertEqual(f.receivedAll(), [1: [untagged(b)!]])
        // Priority bits do not change the VLAN; the access port gets it untagged.
        let prio = ethFrame(to: mac(1), from: mac(3), tci: 0xa000 | 10, seed: 3)
        f.send(2, prio)
        XCTAssertEqual(f.receivedAll(), [0: [untagged(prio)!]], "learned unicast to port 0")
        // Unicast back to the trunk station is tagged with its VLAN.
        let c = ethFrame(to: mac(2), from: mac(5), seed: 4)
        f.send(1, c)
        got = f.receivedAll()
        XCTAssertEqual(got.keys.sorted(), [2])
        XCTAssertEqual(got[2]?.first.flatMap(tagVID), 20)
        XCTAssertEqual(got[2]?.first.flatMap(untagged), c)
        XCTAssertEqual(f.drops(), [:])
        f.assertNoLeak()
    }

    /// An 802.1p priority tag (VID 0) carries no VLAN: on an access port the frame is in
    /// the port's VLAN and leaves untagged; on a trunk with a native VLAN, in that one.
    func testPriorityTaggedFramesAreUntagged() throws {
        let f = try SwitchFixture([.access(10), .access(10), .access(20)])
        let tagged = ethFrame(to: broadcastMAC, from: mac(1), tci: 0x6000)   // priority 3, VID 0
        f.send(0, tagged)
        let got = f.receivedAll()
        XCTAssertEqual(got.keys.sorted(), [1], "flooded in VLAN 10 only")
        XCTAssertEqual(got[1]?.first, untagged(tagged))
        XCTAssertEqual(f.drops(), [:])
        f.assertNoLeak()
    }

    func testTrunkDropsVLANsItDoesNotCarryAndTaggedFramesOnAccessPorts() throws {
        let f = try SwitchFixture([.access(10), .trunk([10, 20]), .access(30)])
        f.send(1, ethFrame(to: broadcastMAC, from: mac(1), tci: 30))
        XCTAssertEqual(f.receivedAll(), [:], "VLAN 30 is not carried by the trunk")
        XCTAssertEqual(f.drops(), ["p1.drop.vlan": 1])
        f.send(1, ethFrame(to: broadcastMAC, from: mac(1)))
        XCTAssertEqual(f.receivedAll(), [:], "untagged on a trunk without native VLAN")
        XCTAssertEqual(f.drops(), ["p1.drop.vlan": 2])
        f.send(1, ethFrame(to: broadcastMAC, from: mac(1), tci: 0))
        XCTAssertEqual(f.drops(), ["p1.drop.vlan": 3], "a priority-tagged (VID 0) frame is untagged: no native VLAN here")
        f.send(0, ethFrame(to: broadcastMAC, from: mac(1), tci: 10))
        XCTAssertEqual(f.receivedAll(), [:], "tagged on an access port")
        XCTAssertEqual(f.drops(), ["p1.drop.vlan": 3, "p0.drop.vlan": 1])
        // A tag with nothing after it.
        f.send(1, Array(ethFrame(to: broadcastMAC, from: mac(1), tci: 10).prefix(16)))
        XCTAssertEqual(f.drops(), ["p1.drop.vlan": 3, "p0.drop.vlan": 1, "p1.drop.bad_length": 1])
        XCTAssertEqual(f.table.table.count, 0, "nothing dropped was learned")
        f.assertNoLeak()
    }

    func testNativeVLAN() throws {
        let f = try SwitchFixture([.access(10), .trunk([10, 20], native: 10), .access(20), .trunk([10, 20])])
        let a = ethFrame(to: broadcastMAC, from: mac(1), seed: 1)
        f.send(1, a)
        var got = f.receivedAll()
        XCTAssertEqual(got[0], [a], "untagged on the trunk is the native VLAN")
        XCTAssertEqual(got[3]?.first.flatMap(tagVID), 10, "the other trunk has no native VLAN: tagged")
        XCTAssertNil(got[2])
        // To the trunk with native VLAN 10: VLAN 10 untagged, VLAN 20 tagged.
        let b = ethFrame(to: broadcastMAC, from: mac(2), seed: 2)
        f.send(0, b)
        XCTAssertEqual(f.receivedAll()[1], [b])
        let c = ethFrame(to: broadcastMAC, from: mac(3), seed: 3)
        f.send(2, c)
        got = f.receivedAll()
        XCTAssertEqual(got[1]?.first.flatMap(tagVID), 20)
        XCTAssertEqual(got[1]?.first.flatMap(untagged), c)
        // A tagged native-VLAN frame is accepted too.
        let d = ethFrame(to: mac(2), from: mac(4), tci: 10, seed: 4)
        f.send(1, d)
        XCTAssertEqual(f.receivedAll(), [0: [untagged(d)!]])
        XCTAssertEqual(f.drops(), [:])
        f.assertNoLeak()
    }

    // MARK: Monitor

    func testMonitorGetsATaggedCopyOfEveryForwardedFrame() throws {
        let f = try SwitchFixture([.access(10), .access(10), .trunk([10, 20]), .monitor(), .access(20)])
        let a = ethFrame(to: broadcastMAC, from: mac(1), seed: 1)
        f.send(0, a)
        var got = f.receivedAll()
        XCTAssertEqual(got[1], [a])
        XCTAssertEqual(got[3]?.count, 1)
        XCTAssertEqual(got[3]?.first.flatMap(tagVID), 10)
        XCTAssertEqual(got[3]?.first.flatMap(untagged), a)
        // Learned unicast: still one copy to the monitor, none flooded to it.
        let b = ethFrame(to: mac(1), from: mac(2), length: 500, seed: 2)
        f.send(1, b)
        got = f.receivedAll()
        XCTAssertEqual(got[0], [b])
        XCTAssertEqual(got[3]?.compactMap(untagged), [b])
        // From the trunk, VLAN 20.
        let c = ethFrame(to: broadcastMAC, from: mac(3), tci: 20, seed: 3)
        f.send(2, c)
        got = f.receivedAll()
        XCTAssertEqual(got[4], [untagged(c)!])
        XCTAssertEqual(got[3], [c])
        // The monitor never injects, and its frames are not learned.
        f.send(3, ethFrame(to: broadcastMAC, from: mac(7)), ethFrame(to: mac(1), from: mac(7)))
        XCTAssertEqual(f.receivedAll(), [:])
        XCTAssertEqual(f.drops(), ["p3.drop.monitor_tx": 2])
        XCTAssertEqual(f.table.table.lookup(0x000a_0200_0000_0007), -1)
        f.assertNoLeak()
    }

    // MARK: Port security and limits

    func testMacLock() throws {
        let f = try SwitchFixture([.access(10, lockedMAC: macKey(1)), .access(10)])
        let good = ethFrame(to: broadcastMAC, from: mac(1))
        f.send(0, ethFrame(to: broadcastMAC, from: mac(2)), good, ethFrame(to: broadcastMAC, from: mac(3)))
        XCTAssertEqual(f.receivedAll(), [1: [good]])
        XCTAssertEqual(f.drops(), ["p0.drop.mac_lock": 2])
        XCTAssertEqual(f.table.table.count, 1)
        f.assertNoLeak()
    }

    func testPerPortMaxMACs() throws {
        let f = try SwitchFixture([.access(10, maxMACs: 2), .access(10)])
        let frames = (1...4).map { ethFrame(to: broadcastMAC, from: mac($0), seed: $0) }
        f.send(0, frames)
        XCTAssertEqual(f.receivedAll(), [1: Array(frames.prefix(2))])
        XCTAssertEqual(f.drops(), ["p0.drop.max_macs": 2])
        // Known stations keep working; the port's table share is exact.
        f.send(0, frames[1], frames[3])
        XCTAssertEqual(f.receivedAll(), [1: [frames[1]]])
        XCTAssertEqual(f.table.table.count(port: 0), 2)
        XCTAssertEqual(f.drops(), ["p0.drop.max_macs": 3])
        f.assertNoLeak()
    }

    func testSwitchTableFullStillForwards() throws {
        let f = try SwitchFixture([.access(10), .access(10)], tableLimit: 2)
        let frames = (1...4).map { ethFrame(to: broadcastMAC, from: mac($0), seed: $0) }
        f.send(0, frames)
        XCTAssertEqual(f.receivedAll(), [1: frames], "not learned, still flooded")
        XCTAssertEqual(f.switchCounter("table_full"), 2)
        XCTAssertEqual(f.switchCounter("learned"), 2)
        f.assertNoLeak()
    }

    func testFloodLimit() throws {
        let f = try SwitchFixture([.access(10, floodLimit: 5), .access(10), .access(10)])
        // A learned destination is not flooding: not limited.
        f.send(1, ethFrame(to: broadcastMAC, from: mac(2)))
        _ = f.receivedAll()
        let floods = (0..<8).map { ethFrame(to: broadcastMAC, from: mac(1), seed: UInt8($0)) }
        let unicast = (0..<4).map { ethFrame(to: mac(2), from: mac(1), seed: UInt8(100 + $0)) }
        f.send(0, floods + unicast)
        var got = f.receivedAll()
        XCTAssertEqual(got[2], Array(floods.prefix(5)))
        XCTAssertEqual(got[1], Array(floods.prefix(5)) + unicast)
        XCTAssertEqual(f.drops(), ["p0.drop.flood_limit": 3])
        XCTAssertEqual(f.counter(0, "flood_packets"), 5)
        // 200 ms later: one more token (5 per second).
        f.now += 200_000_000
        f.send(0, Array(floods.prefix(3)))
        got = f.receivedAll()
        XCTAssertEqual(got[2], [floods[0]])
        XCTAssertEqual(f.drops(), ["p0.drop.flood_limit": 5])
        // A long pause refills to one second's worth, no more.
        f.now += 60_000_000_000
        f.send(0, floods)
        XCTAssertEqual(f.receivedAll()[2]?.count, 5)
        XCTAssertEqual(f.drops(), ["p0.drop.flood_limit": 8])
        f.assertNoLeak()
    }

    func testMTU() throws {
        let f = try SwitchFixture([.access(10), .access(10, mtu: 1000), .access(10), .trunk([10], mtu: 1000)])
        let big = ethFrame(to: broadcastMAC, from: mac(1), length: 1014 + 1, seed: 1)
        f.send(0, big)
        XCTAssertEqual(f.receivedAll(), [2: [big]])
        XCTAssertEqual(f.drops(), ["p1.drop.mtu": 1, "p3.drop.mtu": 1])
        // Exactly the MTU passes (the trunk's tag does not count against it).
        let fits = ethFrame(to: broadcastMAC, from: mac(1), length: 1014, seed: 2)
        f.send(0, fits)
        let got = f.receivedAll()
        XCTAssertEqual(got[1], [fits])
        XCTAssertEqual(got[3]?.first.flatMap(untagged), fits)
        // Larger than the ingress port's frame limit: refused by the port itself.
        f.send(1, ethFrame(to: broadcastMAC, from: mac(2), length: 1014 + 5))
        XCTAssertEqual(f.receivedAll(), [:])
        XCTAssertEqual(f.counter(1, "drop.bad_length"), 1)
        f.assertNoLeak()
    }

    // MARK: Workers

    func testRemoteRouteHandsFramesToTheOwningWorker() throws {
        let f = try SwitchFixture([.access(10), .access(10), TestPort.access(10).owned(by: 1)])
        let a = ethFrame(to: broadcastMAC, from: mac(1), seed: 1)
        f.send(0, a)
        XCTAssertEqual(f.receivedAll(), [1: [a]], "port 2 is another worker's")
        XCTAssertEqual(f.rings[2]?.count, 1)
        XCTAssertEqual(f.pool.inUse, f.baseline + 1)
        XCTAssertEqual(f.poll(2), 1, "the owner's poll drains its inbound ring")
        XCTAssertEqual(f.receivedAll(), [2: [a]])
        XCTAssertEqual(f.rings[2]?.count, 0)
        // And back: worker 1 hands a unicast to port 0's ring.
        let b = ethFrame(to: mac(1), from: mac(3), seed: 2)
        f.send(2, b)
        XCTAssertEqual(f.rings[0]?.count, 1)
        XCTAssertEqual(f.receivedAll(), [:])
        f.poll(0)
        XCTAssertEqual(f.receivedAll(), [0: [b]])
        XCTAssertEqual(f.counter(0, "tx_packets"), 1)
        XCTAssertEqual(f.counter(2, "tx_packets"), 1)
        f.assertNoLeak()
    }

    func testFullInboundRingDropsAndFrees() throws {
        let f = try SwitchFixture([.access(10), TestPort.access(10).owned(by: 1)], ringCapacity: 8)
        let frames = (0..<20).map { ethFrame(to: broadcastMAC, from: mac(1), seed: UInt8($0)) }
        f.send(0, frames)
        XCTAssertEqual(f.rings[1]?.count, 8)
        XCTAssertEqual(f.counter(1, "drop.no_buffer"), 12)
        f.assertNoLeak(inRings: 8)
        f.poll(1)
        XCTAssertEqual(f.received(1), Array(frames.prefix(8)))
        f.assertNoLeak()
    }

    func testNoRoomInTheGuestIsCountedAndFreed() throws {
        let f = try SwitchFixture([.access(10), .access(10)], rxBuffers: 3)
        let frames = (0..<10).map { ethFrame(to: broadcastMAC, from: mac(1), seed: UInt8($0)) }
        f.send(0, frames)
        XCTAssertEqual(f.received(1), Array(frames.prefix(3)))
        XCTAssertEqual(f.counter(1, "drop.no_rx_buffer"), 7)
        f.assertNoLeak()
    }
}
