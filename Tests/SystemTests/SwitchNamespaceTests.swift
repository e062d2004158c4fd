// System tests of sluice's learning switch with the Linux kernel as its stations: each
// station is a network namespace behind a tap port (sluice creates the tap, the test
// moves it into the namespace) or behind an af-packet port (one end of a veth pair
// stays in the root namespace for sluice, the other goes into the namespace). The
// tests ping, capture, send raw frames and run iperf3 through the switch, and read
// sluice's counters and MAC table from shared memory.
//
// Every test starts its own sluice with a config in a fresh temporary directory and
// names everything it creates after the test process id and a run letter (instance,
// namespaces, interfaces), so parallel runs do not collide; a teardown block removes
// namespaces, links, processes and /dev/shm files even when the test fails.
// IPv6 is off on every station, so the only traffic is what a test sends.
//
// Skipped with one line when not root, when a tool is missing (ip, ping, python3,
// tcpdump, iperf3) or when sluice is not built (SLUICE_BIN_DIR picks the binaries).

import Foundation
import Stats
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class SwitchNamespaceTests: XCTestCase {

    // MARK: - 1. Reachability

    /// Two taps and an af-packet (veth) uplink on one switch: every station pings every
    /// other, each port received and sent frames, and the switch learned exactly the
    /// three station addresses without dropping anything.
    func testThreeStationsOnTapsAndVethReachEachOther() throws {
        let lab = try makeLab()
        let a = try lab.namespace("A"), b = try lab.namespace("B"), c = try lab.namespace("C")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2"), u0 = lab.ifname("u0"), u1 = lab.ifname("u1")
        try lab.veth(root: u0, peer: u1, in: c)
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            [port t2]
            type = tap
            interface = \(t2)
            [port up0]
            type = af-packet
            interface = \(u0)
            [switch br0]
            ports = t1, t2, up0
            """, taps: [t1, t2])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: "10.9.0.1")
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: "10.9.0.2")
        try lab.station(u1, in: c, mac: "02:00:00:09:00:03", address: "10.9.0.3")

        let stations = [(a, "10.9.0.1"), (b, "10.9.0.2"), (c, "10.9.0.3")]
        for (from, _) in stations {
            for (to, address) in stations where to != from {
                XCTAssertTrue(lab.canReach(from, address), "\(from) cannot ping \(address)")
            }
        }
        for port in ["t1", "t2", "up0"] {
            XCTAssertGreaterThan(try lab.counter("port.\(port).rx_packets"), 0, "port \(port) rx")
            XCTAssertGreaterThan(try lab.counter("port.\(port).tx_packets"), 0, "port \(port) tx")
        }
        XCTAssertTrue(try lab.eventually { try lab.counter("switch.br0.macs") == 3 },
                      "switch.br0.macs is \(lab.show("switch.br0.macs")), expected 3: \(lab.fdbText())")
        XCTAssertEqual(try lab.counter("switch.br0.learned"), 3)
        XCTAssertEqual(try lab.drops(ports: ["t1", "t2", "up0"]), [:], "no port dropped anything")
        try lab.stopAndCheck()
    }

    // MARK: - 2. VLAN isolation

    /// t1 and t2 in VLAN 10, t3 in VLAN 20, all in one IP subnet: 10 talks within
    /// itself, nothing crosses to 20 (t3 is never sent a frame), and nothing is
    /// counted as a drop (untagged frames on access ports are never VLAN errors).
    func testAccessVLANsAreIsolated() throws {
        let lab = try makeLab()
        let a = try lab.namespace("A"), b = try lab.namespace("B"), c = try lab.namespace("C")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2"), t3 = lab.ifname("t3")
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            vlan = 10
            [port t2]
            type = tap
            interface = \(t2)
            vlan = 10
            [port t3]
            type = tap
            interface = \(t3)
            vlan = 20
            [switch br0]
            ports = t1, t2, t3
            """, taps: [t1, t2, t3])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: "10.9.0.1")
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: "10.9.0.2")
        try lab.tapStation(t3, in: c, mac: "02:00:00:09:00:03", address: "10.9.0.3")

        XCTAssertTrue(lab.canReach(a, "10.9.0.2"), "VLAN 10: t1 cannot ping t2")
        XCTAssertTrue(lab.canReach(b, "10.9.0.1"), "VLAN 10: t2 cannot ping t1")
        XCTAssertTrue(lab.cannotReach(a, "10.9.0.3"), "t1 (VLAN 10) pinged t3 (VLAN 20)")
        XCTAssertTrue(lab.cannotReach(c, "10.9.0.1"), "t3 (VLAN 20) pinged t1 (VLAN 10)")

        XCTAssertEqual(try lab.counter("port.t3.tx_packets"), 0, "a VLAN-10 frame reached the VLAN-20 port")
        XCTAssertGreaterThan(try lab.counter("port.t3.rx_packets"), 0, "t3's ARP requests reached the switch")
        XCTAssertGreaterThan(try lab.counter("port.t3.flood_packets"), 0, "t3's ARP requests were flooded (into VLAN 20)")
        XCTAssertGreaterThan(try lab.counter("port.t1.tx_packets"), 0)
        XCTAssertGreaterThan(try lab.counter("port.t2.tx_packets"), 0)
        XCTAssertEqual(try lab.drops(ports: ["t1", "t2", "t3"]), [:], "no port dropped anything")
        XCTAssertTrue(try lab.eventually { try lab.counter("switch.br0.macs") == 3 },
                      "switch.br0.macs is \(lab.show("switch.br0.macs")), expected 3 (two in VLAN 10, one in 20): \(lab.fdbText())")
        let table = try lab.fdb()
        XCTAssertEqual(Set(table.map { "\($0.macText)/\($0.vlan)/\($0.port)" }),
                       ["02:00:00:09:00:01/10/t1", "02:00:00:09:00:02/10/t2", "02:00:00:09:00:03/20/t3"])
        try lab.stopAndCheck()
    }

    // MARK: - 3. Trunk

    /// An af-packet trunk carrying VLANs 10 and 20: a VLAN-10 interface on the far end
    /// of the veth reaches the VLAN-10 access tap (its frames are tagged 10 both ways)
    /// but not the VLAN-20 tap in the same IP subnet.
    func testTrunkCarriesTaggedVLANs() throws {
        let lab = try makeLab()
        let a = try lab.namespace("A"), b = try lab.namespace("B"), c = try lab.namespace("C")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2"), u0 = lab.ifname("u0"), u1 = lab.ifname("u1")
        try lab.veth(root: u0, peer: u1, in: c)
        let vlanLink = try lab.sh("ip -n \(c) link add link \(u1) name \(u1).10 type vlan id 10", check: false)
        if vlanLink.status != 0 && vlanLink.output.contains("Unknown device type") {
            throw XCTSkip("system test skipped: the kernel has no 802.1Q VLAN interfaces (CONFIG_VLAN_8021Q, modprobe 8021q);"
                          + " testTrunkTagsFramesOfEachVLAN covers the trunk without them")
        }
        XCTAssertEqual(vlanLink.status, 0, vlanLink.output)
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            vlan = 10
            [port t2]
            type = tap
            interface = \(t2)
            vlan = 20
            [port up0]
            type = af-packet
            interface = \(u0)
            trunk = 10, 20
            [switch br0]
            ports = t1, t2, up0
            """, taps: [t1, t2])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: "10.9.0.1")
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: "10.9.0.2")
        try lab.station(u1, in: c, mac: "02:00:00:09:00:03", address: nil)
        try lab.sh("ip -n \(c) addr add 10.9.0.3/24 dev \(u1).10 && ip -n \(c) link set \(u1).10 up")

        XCTAssertTrue(lab.canReach(c, "10.9.0.1"), "trunk VLAN 10 cannot ping the VLAN-10 tap")
        XCTAssertTrue(lab.canReach(a, "10.9.0.3"), "the VLAN-10 tap cannot ping trunk VLAN 10")
        XCTAssertTrue(lab.cannotReach(c, "10.9.0.2"), "trunk VLAN 10 pinged the VLAN-20 tap")
        XCTAssertEqual(try lab.counter("port.t2.tx_packets"), 0, "a VLAN-10 frame reached the VLAN-20 tap")
        XCTAssertGreaterThan(try lab.counter("port.up0.rx_packets"), 0)
        XCTAssertGreaterThan(try lab.counter("port.up0.tx_packets"), 0)
        XCTAssertEqual(try lab.counter("port.up0.drop.vlan"), 0, "tagged VLAN-10 frames are the trunk's")
        let table = try lab.fdb()
        XCTAssertTrue(table.contains { $0.macText == "02:00:00:09:00:03" && $0.vlan == 10 && $0.port == "up0" },
                      "the trunk station is learned in VLAN 10 on up0: \(table)")
        try lab.stopAndCheck()
    }

    /// The trunk at the frame level (no VLAN interfaces needed): frames sent into the
    /// veth tagged 10 reach only the VLAN-10 tap and are learned in VLAN 10, frames
    /// tagged 30 (not on the trunk) and untagged ones (no native VLAN) are VLAN drops,
    /// and frames from the access taps leave the trunk tagged with their VLAN.
    func testTrunkTagsFramesOfEachVLAN() throws {
        let lab = try makeLab(needs: [.command("tcpdump", package: "tcpdump"), .command("python3", package: "python3")])
        let a = try lab.namespace("A"), b = try lab.namespace("B"), c = try lab.namespace("C")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2"), u0 = lab.ifname("u0"), u1 = lab.ifname("u1")
        try lab.veth(root: u0, peer: u1, in: c)
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            vlan = 10
            [port t2]
            type = tap
            interface = \(t2)
            vlan = 20
            [port up0]
            type = af-packet
            interface = \(u0)
            trunk = 10, 20
            [switch br0]
            ports = t1, t2, up0
            """, taps: [t1, t2])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: nil)
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: nil)
        try lab.station(u1, in: c, mac: "02:00:00:09:00:03", address: nil)
        let trunkStation = "02:00:00:09:0c:10"

        // Into the trunk: 3 tagged 10, 3 tagged 30, 3 untagged.
        try lab.sh("ip netns exec \(c) \(lab.sendFrames) --vlan 10 \(u1) ff:ff:ff:ff:ff:ff 3 \(trunkStation)")
        try lab.sh("ip netns exec \(c) \(lab.sendFrames) --vlan 30 \(u1) ff:ff:ff:ff:ff:ff 3 02:00:00:09:0c:30")
        try lab.sh("ip netns exec \(c) \(lab.sendFrames) \(u1) ff:ff:ff:ff:ff:ff 3 02:00:00:09:0c:01")
        XCTAssertTrue(try lab.eventually { try lab.counter("port.up0.rx_packets") >= 9 },
                      "port.up0.rx_packets is \(lab.show("port.up0.rx_packets")) after 9 frames")
        XCTAssertEqual(try lab.counter("port.t1.tx_packets"), 3, "the VLAN-10 frames reach the VLAN-10 tap")
        XCTAssertEqual(try lab.counter("port.t2.tx_packets"), 0, "nothing but VLAN 20 reaches the VLAN-20 tap")
        XCTAssertEqual(try lab.counter("port.up0.drop.vlan"), 6, "tagged 30 and untagged frames are VLAN drops")
        XCTAssertEqual(Set(try lab.fdb().map { "\($0.macText)/\($0.vlan)/\($0.port)" }), ["\(trunkStation)/10/up0"],
                       "only the VLAN-10 sender is learned:\(lab.fdbText())")

        // Out of the trunk: a unicast from VLAN 10 to the learned station, a broadcast from VLAN 20.
        let capture = try lab.background("ip", ["netns", "exec", c, "tcpdump", "-i", u1, "-nn", "-e", "-l", "-c", "4"],
                                         log: "tcpdump.out")
        XCTAssertTrue(lab.eventually(timeout: 5) { capture.output().contains("listening on") },
                      "tcpdump did not start: \(capture.output())")
        try lab.sh("ip netns exec \(a) \(lab.sendFrames) \(t1) \(trunkStation) 2 02:00:00:09:00:01")
        try lab.sh("ip netns exec \(b) \(lab.sendFrames) \(t2) ff:ff:ff:ff:ff:ff 2 02:00:00:09:00:02")
        let lines: () -> [Substring] = { capture.output().split(separator: "\n") }
        let fromT1 = { lines().filter { $0.contains("02:00:00:09:00:01 > \(trunkStation)") } }
        let fromT2 = { lines().filter { $0.contains("02:00:00:09:00:02 > ff:ff:ff:ff:ff:ff") } }
        _ = lab.eventually(timeout: 3) { fromT1().count + fromT2().count >= 4 }
        capture.interrupt()
        XCTAssertEqual(fromT1().count, 2, "frames from t1 on the trunk:\n\(capture.output())")
        XCTAssertTrue(fromT1().allSatisfy { $0.contains("vlan 10,") }, "t1's frames leave the trunk tagged 10:\n\(capture.output())")
        XCTAssertEqual(fromT2().count, 2, "frames from t2 on the trunk:\n\(capture.output())")
        XCTAssertTrue(fromT2().allSatisfy { $0.contains("vlan 20,") }, "t2's frames leave the trunk tagged 20:\n\(capture.output())")
        XCTAssertEqual(try lab.counter("port.t1.tx_packets"), 3, "t2's VLAN-20 broadcast did not reach t1")
        try lab.stopAndCheck()
    }

    /// The same trunk with `native-vlan = 10`: untagged frames on the veth belong to
    /// VLAN 10 (and VLAN-10 frames leave the trunk untagged), so the veth's own
    /// address reaches the VLAN-10 tap and not the VLAN-20 one.
    func testTrunkNativeVLANCarriesUntaggedFrames() throws {
        let lab = try makeLab()
        let a = try lab.namespace("A"), b = try lab.namespace("B"), c = try lab.namespace("C")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2"), u0 = lab.ifname("u0"), u1 = lab.ifname("u1")
        try lab.veth(root: u0, peer: u1, in: c)
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            vlan = 10
            [port t2]
            type = tap
            interface = \(t2)
            vlan = 20
            [port up0]
            type = af-packet
            interface = \(u0)
            trunk = 10, 20
            native-vlan = 10
            [switch br0]
            ports = t1, t2, up0
            """, taps: [t1, t2])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: "10.9.0.1")
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: "10.9.0.2")
        try lab.station(u1, in: c, mac: "02:00:00:09:00:03", address: "10.9.0.3")

        XCTAssertTrue(lab.canReach(c, "10.9.0.1"), "untagged on the trunk cannot ping the VLAN-10 tap")
        XCTAssertTrue(lab.canReach(a, "10.9.0.3"), "the VLAN-10 tap cannot ping the trunk's untagged address")
        XCTAssertTrue(lab.cannotReach(c, "10.9.0.2"), "untagged on the trunk pinged the VLAN-20 tap")
        XCTAssertEqual(try lab.counter("port.t2.tx_packets"), 0, "a native-VLAN frame reached the VLAN-20 tap")
        XCTAssertEqual(try lab.counter("port.up0.drop.vlan"), 0, "untagged frames belong to the native VLAN")
        let table = try lab.fdb()
        XCTAssertTrue(table.contains { $0.macText == "02:00:00:09:00:03" && $0.vlan == 10 && $0.port == "up0" },
                      "the untagged trunk station is learned in VLAN 10: \(table)")
        try lab.stopAndCheck()
    }

    // MARK: - 4. Monitor

    /// A monitor tap left in the root namespace: tcpdump on it sees the echo requests
    /// and replies between two VLAN-10 stations, each with its 802.1Q tag. Frames the
    /// host sends into the monitor are dropped, counted, not learned and not forwarded.
    func testMonitorPortSeesTaggedCopiesAndDropsWhatItSends() throws {
        let lab = try makeLab(needs: [.command("tcpdump", package: "tcpdump"), .command("python3", package: "python3")])
        let a = try lab.namespace("A"), b = try lab.namespace("B")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2"), mon = lab.ifname("m0")
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            vlan = 10
            [port t2]
            type = tap
            interface = \(t2)
            vlan = 10
            [port mon]
            type = tap
            interface = \(mon)
            monitor = true
            [switch br0]
            ports = t1, t2, mon
            """, taps: [t1, t2, mon])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: "10.9.0.1")
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: "10.9.0.2")
        try lab.sh("sysctl -qw net.ipv6.conf.\(mon).disable_ipv6=1 && ip link set \(mon) up")

        let capture = try lab.background("tcpdump", ["-i", mon, "-nn", "-e", "-l", "-c", "40"], log: "tcpdump.out")
        XCTAssertTrue(lab.eventually(timeout: 5) { capture.output().contains("listening on") },
                      "tcpdump did not start: \(capture.output())")
        XCTAssertTrue(lab.canReach(a, "10.9.0.2", count: 3), "t1 cannot ping t2")
        let seen: (String) -> Bool = { text in
            text.split(separator: "\n").contains { $0.contains("vlan 10") && $0.contains("ICMP echo request") }
                && text.split(separator: "\n").contains { $0.contains("vlan 10") && $0.contains("ICMP echo reply") }
        }
        _ = lab.eventually(timeout: 3) { seen(capture.output()) }
        capture.interrupt()
        let text = capture.output()
        XCTAssertTrue(seen(text), "the monitor did not see tagged (vlan 10) echo request and reply:\n\(text)")
        XCTAssertGreaterThan(try lab.counter("port.mon.tx_packets"), 0)

        // Frames the host writes into the monitor tap.
        let before = try lab.snapshot()
        let sent = try lab.sh("\(lab.sendFrames) \(mon) ff:ff:ff:ff:ff:ff 5 02:00:00:09:ee:01")
        XCTAssertTrue(sent.output.contains("sent 5 frames"), sent.output)
        XCTAssertTrue(try lab.eventually {
            try lab.counter("port.mon.drop.monitor_tx") >= (before.value("port.mon.drop.monitor_tx") ?? 0) + 5
        }, "port.mon.drop.monitor_tx: \(before.value("port.mon.drop.monitor_tx") ?? 0) before, "
           + "\(lab.show("port.mon.drop.monitor_tx")) after sending 5 frames into the monitor")
        XCTAssertEqual(try lab.counter("port.t1.tx_packets"), before.value("port.t1.tx_packets"),
                       "a frame sent into the monitor was forwarded to t1")
        XCTAssertEqual(try lab.counter("port.t2.tx_packets"), before.value("port.t2.tx_packets"),
                       "a frame sent into the monitor was forwarded to t2")
        XCTAssertFalse(try lab.fdb().contains { $0.macText == "02:00:00:09:ee:01" }, "the monitor's sender was learned")
        try lab.stopAndCheck()
    }

    // MARK: - 5. mac-lock

    /// A port locked to 02:00:00:00:00:11 whose station uses another MAC: nothing it
    /// sends gets through (drop.mac_lock counts it); with the right MAC it works, and
    /// drop.mac_lock stops growing.
    func testMacLockDropsOtherSourcesUntilTheStationUsesItsMAC() throws {
        let lab = try makeLab()
        let a = try lab.namespace("A"), b = try lab.namespace("B")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2")
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            mac = 02:00:00:00:00:11
            mac-lock = true
            [port t2]
            type = tap
            interface = \(t2)
            [switch br0]
            ports = t1, t2
            """, taps: [t1, t2])
        try lab.tapStation(t1, in: a, mac: "02:00:00:00:00:99", address: "10.9.0.1")
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: "10.9.0.2")

        XCTAssertTrue(lab.cannotReach(a, "10.9.0.2"), "the locked port forwarded a foreign source MAC")
        XCTAssertTrue(lab.cannotReach(b, "10.9.0.1"), "t2 got an answer from a foreign MAC on the locked port")
        let locked = try lab.counter("port.t1.drop.mac_lock")
        XCTAssertGreaterThan(locked, 0, "port.t1.drop.mac_lock")
        XCTAssertFalse(try lab.fdb().contains { $0.port == "t1" }, "a foreign MAC was learned on the locked port")

        try lab.sh("ip -n \(a) link set \(t1) address 02:00:00:00:00:11"
                   + " && ip -n \(a) neigh flush dev \(t1) && ip -n \(b) neigh flush dev \(t2)")
        XCTAssertTrue(lab.canReach(a, "10.9.0.2"), "t1 with the locked MAC cannot ping t2")
        XCTAssertTrue(lab.canReach(b, "10.9.0.1"), "t2 cannot ping t1 with the locked MAC")
        XCTAssertEqual(try lab.counter("port.t1.drop.mac_lock"), locked, "frames from the right MAC were dropped")
        XCTAssertTrue(try lab.fdb().contains { $0.macText == "02:00:00:00:00:11" && $0.port == "t1" })
        try lab.stopAndCheck()
    }

    // MARK: - 6. max-macs per port

    /// `max-macs = 2` on t1: five source MACs send three broadcast frames each; the
    /// first two are learned and forwarded, the other nine frames are dropped as
    /// drop.max_macs, and the table holds two entries for t1.
    func testPortMaxMACsLimitsLearning() throws {
        let lab = try makeLab(needs: [.command("python3", package: "python3")])
        let a = try lab.namespace("A"), b = try lab.namespace("B")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2")
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            max-macs = 2
            [port t2]
            type = tap
            interface = \(t2)
            [switch br0]
            ports = t1, t2
            """, taps: [t1, t2])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: nil)
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: nil)

        let sources = (1...5).map { "02:00:00:09:aa:0\($0)" }
        let sent = try lab.sh("ip netns exec \(a) \(lab.sendFrames) \(t1) ff:ff:ff:ff:ff:ff 3 \(sources.joined(separator: " "))")
        XCTAssertTrue(sent.output.contains("sent 15 frames"), sent.output)
        XCTAssertTrue(try lab.eventually { try lab.counter("port.t1.rx_packets") >= 15 },
                      "port.t1.rx_packets is \(lab.show("port.t1.rx_packets")) after 15 frames")
        XCTAssertEqual(try lab.counter("port.t1.drop.max_macs"), 9, "three frames from each of three sources over the limit")
        XCTAssertEqual(try lab.counter("port.t2.tx_packets"), 6, "three frames from each of the two learned sources")
        let onT1 = try lab.fdb().filter { $0.port == "t1" }
        XCTAssertEqual(onT1.count, 2, "entries for t1: \(onT1)")
        XCTAssertEqual(Set(onT1.map(\.macText)), Set(sources.prefix(2)), "the first two sources are the learned ones")
        XCTAssertTrue(try lab.eventually { try lab.counter("switch.br0.macs") == 2 },
                      "switch.br0.macs is \(lab.show("switch.br0.macs")), expected 2: \(lab.fdbText())")
        try lab.stopAndCheck()
    }

    // MARK: - 7. Aging

    /// `aging = 2`: after a ping both stations are in the table; with no traffic they
    /// are aged out a few seconds later (and not at once).
    func testLearnedAddressesAgeOut() throws {
        let lab = try makeLab()
        let a = try lab.namespace("A"), b = try lab.namespace("B")
        let t1 = lab.ifname("t1"), t2 = lab.ifname("t2")
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            [port t2]
            type = tap
            interface = \(t2)
            [switch br0]
            ports = t1, t2
            aging = 2
            """, taps: [t1, t2])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: "10.9.0.1")
        try lab.tapStation(t2, in: b, mac: "02:00:00:09:00:02", address: "10.9.0.2")

        XCTAssertTrue(lab.canReach(a, "10.9.0.2"), "t1 cannot ping t2")
        let quiet = Date()
        XCTAssertTrue(try lab.eventually { try lab.counter("switch.br0.macs") == 2 },
                      "switch.br0.macs is \(lab.show("switch.br0.macs")) after a ping, expected 2")
        XCTAssertTrue(try lab.eventually(timeout: 8) { try lab.counter("switch.br0.macs") == 0 },
                      "switch.br0.macs is still \(lab.show("switch.br0.macs")) 8 s after the last frame")
        let idle = Date().timeIntervalSince(quiet)
        XCTAssertGreaterThanOrEqual(idle, 1.5, "entries aged after \(idle) s with aging = 2")
        XCTAssertGreaterThanOrEqual(try lab.counter("switch.br0.aged"), 2)
        XCTAssertEqual(try lab.fdb().count, 0, "the table file still lists entries")
        print("SwitchNamespaceTests: aging = 2 emptied the table \(String(format: "%.1f", idle)) s after the last frame")
        try lab.stopAndCheck()
    }

    // MARK: - 8. TCP

    /// iperf3 over TCP for 3 s from a station behind the af-packet port to one behind
    /// a tap: it completes with a positive rate (printed in the log).
    func testTCPThroughTapAndAfPacket() throws {
        let lab = try makeLab(needs: [.command("iperf3", package: "iperf3")])
        let a = try lab.namespace("A"), c = try lab.namespace("C")
        let t1 = lab.ifname("t1"), u0 = lab.ifname("u0"), u1 = lab.ifname("u1")
        try lab.veth(root: u0, peer: u1, in: c)
        try lab.start("""
            [port t1]
            type = tap
            interface = \(t1)
            [port up0]
            type = af-packet
            interface = \(u0)
            [switch br0]
            ports = t1, up0
            """, taps: [t1])
        try lab.tapStation(t1, in: a, mac: "02:00:00:09:00:01", address: "10.9.0.1")
        try lab.station(u1, in: c, mac: "02:00:00:09:00:03", address: "10.9.0.3")
        XCTAssertTrue(lab.canReach(c, "10.9.0.1"), "the veth station cannot ping the tap station")

        let server = try lab.background("ip", ["netns", "exec", a, "iperf3", "-s", "-1", "-B", "10.9.0.1"], log: "iperf3-server.out")
        XCTAssertTrue(lab.eventually(timeout: 5) {
            (try? lab.sh("ip netns exec \(a) ss -Hltn 'sport = :5201'").output.contains("5201")) == true
        }, "iperf3 server did not listen: \(server.output())")
        let client = try lab.sh("ip netns exec \(c) iperf3 -c 10.9.0.1 -t 3 -J --connect-timeout 3000",
                                timeout: 25, check: false)
        XCTAssertFalse(client.timedOut, "iperf3 client ran past 25 s")
        XCTAssertEqual(client.status, 0, "iperf3 client failed:\n\(client.tail(30))\nsluice: \(lab.countersLine())")
        let json = try? JSONSerialization.jsonObject(with: Data(client.output.utf8)) as? [String: Any]
        let end = json?["end"] as? [String: Any]
        let received = (end?["sum_received"] as? [String: Any])?["bits_per_second"] as? Double ?? 0
        let sentBytes = (end?["sum_sent"] as? [String: Any])?["bytes"] as? Double ?? 0
        print("SwitchNamespaceTests: TCP af-packet -> tap: \(String(format: "%.1f", received / 1e6)) Mbit/s received, "
              + "\(Int(sentBytes)) bytes sent in 3 s")
        XCTAssertGreaterThan(received, 0, "iperf3 received nothing:\n\(client.tail(30))\nsluice: \(lab.countersLine())")
        try lab.stopAndCheck()
    }

    // MARK: - 9. Two workers

    /// `--cores 0,1` with four taps that sluice creates itself (assigned to the workers
    /// round robin, so a frame often crosses from one worker to the other): all twelve
    /// ordered pairs ping each other, and each station is learned on its own port.
    func testTwoWorkersForwardBetweenAllPorts() throws {
        let lab = try makeLab()
        let names = ["A", "B", "C", "D"]
        var spaces: [String] = []
        for n in names { spaces.append(try lab.namespace(n)) }
        let taps = (1...4).map { lab.ifname("t\($0)") }
        var config = ""
        for (i, tap) in taps.enumerated() { config += "[port t\(i + 1)]\ntype = tap\ninterface = \(tap)\n" }
        config += "[switch br0]\nports = t1, t2, t3, t4\n"
        // Here sluice creates the taps (the other tests make them first): they are up in
        // the root namespace for a moment, so the table may also hold their first MACs.
        try lab.start(config, taps: taps, cores: "0,1", sluiceCreatesTaps: true)
        XCTAssertNotNil(try lab.snapshot().value("worker.1.loops"), "a second worker runs")
        for (i, tap) in taps.enumerated() {
            try lab.tapStation(tap, in: spaces[i], mac: "02:00:00:09:00:0\(i + 1)", address: "10.9.0.\(i + 1)")
        }
        // Frames flooded to a tap while it moves between namespaces (down) are dropped;
        // from here on nothing may be.
        let dropsBefore = try lab.drops(ports: (1...4).map { "t\($0)" })
        for (i, from) in spaces.enumerated() {
            for j in 0..<4 where j != i {
                XCTAssertTrue(lab.canReach(from, "10.9.0.\(j + 1)"), "t\(i + 1) cannot ping t\(j + 1)")
            }
        }
        for i in 1...4 {
            XCTAssertGreaterThan(try lab.counter("port.t\(i).tx_packets"), 0, "port t\(i) tx")
        }
        let table = try lab.fdb()
        for i in 1...4 {
            XCTAssertTrue(table.contains { $0.macText == "02:00:00:09:00:0\(i)" && $0.port == "t\(i)" && $0.vlan == 1 },
                          "station \(i) is not learned on t\(i):\(lab.fdbText())")
        }
        XCTAssertEqual(try lab.counter("switch.br0.moved"), 0, "no station moved between ports")
        XCTAssertEqual(try lab.drops(ports: (1...4).map { "t\($0)" }), dropsBefore, "no port dropped anything while pinging")
        try lab.stopAndCheck()
    }

    // MARK: - helpers

    nonisolated(unsafe) private static var runs = 0

    /// Skip (one line) without root or a needed tool; otherwise a lab that cleans up
    /// after the test, and prints sluice's log when the test failed.
    private func makeLab(needs: [Prerequisite] = []) throws -> NamespaceLab {
        if getuid() != 0 { throw XCTSkip("system test skipped: needs root (network namespaces, tap devices, /dev/shm)") }
        try Prerequisite.require([.command("ip", package: "iproute2"), .command("ping", package: "iputils-ping"),
                                  .sluiceBinaries] + needs)
        Self.runs += 1
        let lab = try NamespaceLab(run: Self.runs)
        addTeardownBlock { [weak self] in
            if let run = self?.testRun, run.failureCount + run.unexpectedExceptionCount > 0 {
                print("--- sluice log (\(lab.instance)) ---\n\(lab.daemonLog())--- end of sluice log ---")
            }
            lab.cleanUp()
        }
        return lab
    }
}
