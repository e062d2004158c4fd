import XCTest
import Foundation
import Glibc
import CSluice
@testable import Platform

/// Tap and AF_PACKET host ports against the real kernel (root, /dev/net/tun, iproute2).
final class HostPortTests: XCTestCase {
    private var links: [String] = []
    private let pid = Int(getpid()) % 1_000_000

    override func tearDown() {
        for link in links { _ = run("ip", "link", "del", link) }
        links = []
        super.tearDown()
    }

    // MARK: - Tap

    func testTapFramesBothWays() throws {
        try requireNetAdmin()
        let name = "sl-t-\(pid)"
        let tap = try TapDevice.open(name: name, mtu: 1400)
        let io = tap.io
        XCTAssertTrue(tap.created)
        XCTAssertEqual(tap.name, name)
        XCTAssertNotNil(NetInterface.index(name))
        XCTAssertTrue(NetInterface.isUp(name), "the tap is up and, with our fd attached, running")
        XCTAssertEqual(NetInterface.mtu(name), 1400)
        _ = run("sysctl", "-qw", "net.ipv6.conf.\(name).disable_ipv6=1")
        try sh("ip", "addr", "add", "10.77.0.1/24", "dev", name)
        let peerMAC: [UInt8] = [0x02, 0x00, 0x00, 0x77, 0x00, 0x02]
        try sh("ip", "neigh", "replace", "10.77.0.2", "lladdr", "02:00:00:77:00:02", "dev", name, "nud", "permanent")

        // Kernel → tap: a UDP datagram to the static neighbour comes out as one frame.
        try sendUDP(to: "10.77.0.2", port: 9, payload: Array("sluice-tap".utf8))
        let out = readTap(io) { f in
            f.count >= 42 && Array(f[0..<6]) == peerMAC && f[12] == 0x08 && f[13] == 0x00
                && Array(f[30..<34]) == [10, 77, 0, 2] && f[23] == 17
        }
        let frame = try XCTUnwrap(out, "the UDP datagram to 10.77.0.2 never came out of the tap")
        let tapMAC = Array(frame[6..<12])
        XCTAssertEqual(Array(frame.suffix(10)), Array("sluice-tap".utf8))

        // Tap → kernel: an ARP request for 10.77.0.1 from 10.77.0.2 gets a reply.
        var arp: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + peerMAC + [0x08, 0x06]
        arp += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]      // Ethernet/IPv4, request
        arp += peerMAC + [10, 77, 0, 2] + [0, 0, 0, 0, 0, 0] + [10, 77, 0, 1]
        XCTAssertTrue(arp.withUnsafeBytes { io.write($0.baseAddress!, length: $0.count) })
        let reply = readTap(io) { f in
            f.count >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2 && Array(f[28..<32]) == [10, 77, 0, 1]
        }
        let r = try XCTUnwrap(reply, "the kernel did not answer the ARP request written to the tap")
        XCTAssertEqual(Array(r[0..<6]), peerMAC)
        XCTAssertEqual(Array(r[22..<28]), tapMAC, "the reply names the tap's MAC")

        // Nothing waiting → 0, not an error.
        var buf = [UInt8](repeating: 0, count: 2048)
        while buf.withUnsafeMutableBytes({ io.read(into: $0.baseAddress!, capacity: $0.count) }) > 0 {}
        XCTAssertEqual(buf.withUnsafeMutableBytes { io.read(into: $0.baseAddress!, capacity: $0.count) }, 0)
        _ = tap.name
    }

    func testTapAttachesToExistingPersistentTap() throws {
        try requireNetAdmin()
        let name = "sl-p-\(pid)"
        try sh("ip", "tuntap", "add", "dev", name, "mode", "tap")
        links.append(name)
        let tap = try TapDevice.open(name: name, mtu: nil)
        XCTAssertFalse(tap.created)
        XCTAssertTrue(NetInterface.isUp(name))
        _ = tap.name
    }

    func testTapRejectsOverlongName() throws {
        try requireNetAdmin()
        XCTAssertThrowsError(try { _ = try TapDevice.open(name: "sluice-name-too-long", mtu: nil) }()) { e in
            XCTAssertTrue("\(e)".contains("sluice-name-too-long"), "\(e)")
        }
    }

    // MARK: - AF_PACKET rings

    func testPacketRingBothWaysAndNoEcho() throws {
        let (a, b) = try vethPair()
        let sa = try PacketSocket.open(interface: a, frameSize: 1518)
        let sb = try PacketSocket.open(interface: b, frameSize: 1518)
        XCTAssertEqual(sa.ifindex, NetInterface.index(a))
        let ioA = sa.io, ioB = sb.io

        // B → A
        let f1 = testFrame(marker: 1, length: 200)
        XCTAssertTrue(f1.withUnsafeBytes { ioB.transmit($0.baseAddress!, length: $0.count) })
        ioB.flush()
        XCTAssertEqual(receive(ioA) { $0 == f1 }, f1, "A did not receive B's frame")

        // A → B, and A never sees its own transmission.
        let f2 = testFrame(marker: 2, length: 1514)
        XCTAssertTrue(f2.withUnsafeBytes { ioA.transmit($0.baseAddress!, length: $0.count) })
        ioA.flush()
        XCTAssertEqual(receive(ioB) { $0 == f2 }, f2, "B did not receive A's frame")
        XCTAssertNil(receive(ioA, timeout: 0.1) { $0 == f2 }, "A received its own transmission")

        // Longer than frameSize: refused.
        let big = [UInt8](repeating: 0, count: 1519)
        XCTAssertFalse(big.withUnsafeBytes { ioA.transmit($0.baseAddress!, length: $0.count) })

        // Many frames in one burst all arrive, in order.
        var sent = 0
        for i in 0..<300 {
            let f = testFrame(marker: 3, length: 64 + i)
            if f.withUnsafeBytes({ ioB.transmit($0.baseAddress!, length: $0.count) }) { sent += 1 }
        }
        ioB.flush()
        XCTAssertEqual(sent, 300)
        var lengths: [Int] = []
        let deadline = Date().addingTimeInterval(3)
        while lengths.count < 300 && Date() < deadline {
            while let f = ioA.nextFrame() {
                if f.length >= 15 && f.bytes.load(fromByteOffset: 14, as: UInt8.self) == 3
                    && f.bytes.load(fromByteOffset: 12, as: UInt16.self) == UInt16(0x88b5).bigEndian {
                    lengths.append(f.length)
                }
            }
            ioA.releaseReceived()
            usleep(1000)
        }
        XCTAssertEqual(lengths, Array(64..<364))
        if let st = sa.takeStatistics() { XCTAssertEqual(st.dropped, 0) }
        _ = (sa.interface, sb.interface)
    }

    func testPacketRingRestoresVLANTag() throws {
        let (a, b) = try vethPair()
        let sa = try PacketSocket.open(interface: a, frameSize: 1518)
        let sb = try PacketSocket.open(interface: b, frameSize: 1518)
        // 802.1Q, PCP 5, VID 100, then the test EtherType.
        var tagged = testFrame(marker: 4, length: 300)
        tagged.insert(contentsOf: [0x81, 0x00, 0xa0, 0x64], at: 12)
        XCTAssertTrue(tagged.withUnsafeBytes { sb.io.transmit($0.baseAddress!, length: $0.count) })
        sb.io.flush()
        let got = receive(sa.io) { $0.count > 18 && $0[18] == 4 && $0[12] == 0x81 }
        XCTAssertEqual(got, tagged, "the VLAN tag must be back in the received frame, in place")
        XCTAssertEqual(sa.io.ring.pointee.rx_vlan_restored, 1, "the kernel stripped the tag and the ring walk put it back")
        // A tag with VID 0 (priority tag) too.
        var prio = testFrame(marker: 5, length: 100)
        prio.insert(contentsOf: [0x81, 0x00, 0x60, 0x00], at: 12)
        XCTAssertTrue(prio.withUnsafeBytes { sb.io.transmit($0.baseAddress!, length: $0.count) })
        sb.io.flush()
        XCTAssertEqual(receive(sa.io) { $0.count > 18 && $0[18] == 5 }, prio)
        XCTAssertEqual(sa.io.ring.pointee.rx_vlan_restored, 2)
        _ = (sa.interface, sb.interface)
    }

    func testPacketRingReportsTruncatedFrames() throws {
        let (a, b) = try vethPair()
        let small = try PacketSocket.open(interface: a, frameSize: 256)
        let sb = try PacketSocket.open(interface: b, frameSize: 1518)
        let f = testFrame(marker: 6, length: 1000)
        XCTAssertTrue(f.withUnsafeBytes { sb.io.transmit($0.baseAddress!, length: $0.count) })
        sb.io.flush()
        let deadline = Date().addingTimeInterval(2)
        var seen: ReceivedFrame?
        outer: while Date() < deadline {
            while let r = small.io.nextFrame() {
                if r.length > 14 && r.bytes.load(fromByteOffset: 14, as: UInt8.self) == 6 { seen = r; break outer }
            }
            small.io.releaseReceived()
            usleep(1000)
        }
        let r = try XCTUnwrap(seen)
        XCTAssertTrue(r.truncated)
        XCTAssertEqual(r.length, 256)
        XCTAssertEqual(r.wireLength, 1000)
        XCTAssertTrue(memcmp(r.bytes, f, 256) == 0)
        _ = (small.interface, sb.interface)
    }

    /// PACKET_VNET_HDR: a GSO super-frame (sent here by a raw packet socket with a
    /// virtio_net_hdr; a veth passes it on whole) arrives whole on a ring sized for
    /// GSO frames, with its GSO type, size and checksum offsets; tagged too, where
    /// the kernel strips the tag and the ring puts it back, offsets moved by 4.
    func testPacketRingDeliversGSOFramesWithVnetHeader() throws {
        let (a, b) = try vethPair()
        let sa = try PacketSocket.open(interface: a, frameSize: 1518, rxFrameSize: PacketSocket.gsoFrameSize)
        XCTAssertEqual(sa.rxFrameSize, PacketSocket.gsoFrameSize)
        XCTAssertGreaterThanOrEqual(sa.rxBlockSize, 128 << 10)
        let tx = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
        guard tx >= 0 else { throw SystemError("socket(AF_PACKET)") }
        defer { closeFD(tx) }
        var one: Int32 = 1
        XCTAssertEqual(setsockopt(tx, 263 /* SOL_PACKET */, 15 /* PACKET_VNET_HDR */, &one, 4), 0)
        let ifindex = try XCTUnwrap(NetInterface.index(b))

        for tag in [nil, [UInt8(0x81), 0x00, 0x20, 0x07] as [UInt8]?] {
            var frame = gsoFrame(payload: 3000, marker: tag == nil ? 1 : 2)
            if let tag { frame.insert(contentsOf: tag, at: 12) }
            let l4 = tag == nil ? 34 : 38
            // flags NEEDS_CSUM, gso TCPV4, hdr_len, gso_size 1000, csum_start, csum_offset 16 (little-endian)
            let vnet: [UInt8] = [1, 1, UInt8(l4 + 20), 0, 0xe8, 0x03, UInt8(l4), 0, 16, 0]
            var addr = sl_sockaddr_ll_storage()
            let alen = sl_fill_sockaddr_ll(&addr, ifindex)
            let sent = (vnet + frame).withUnsafeBytes { buf in
                withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(tx, buf.baseAddress, buf.count, 0, $0, alen)
                    }
                }
            }
            XCTAssertEqual(sent, vnet.count + frame.count, "sendto: errno \(errno)")
            var seen: (bytes: [UInt8], frame: ReceivedFrame)?
            let deadline = Date().addingTimeInterval(2)
            outer: while Date() < deadline {
                while let r = sa.io.nextFrame() {
                    let bytes = Array(UnsafeRawBufferPointer(start: r.bytes, count: r.length))
                    if bytes.count > l4 + 1, bytes[l4 + 1] == frame[l4 + 1], bytes[6..<12] == frame[6..<12] { seen = (bytes, r); break outer }
                }
                sa.io.releaseReceived()
                usleep(1000)
            }
            let (bytes, r) = try XCTUnwrap(seen, "the GSO frame (tag \(tag ?? [])) did not arrive")
            XCTAssertFalse(r.truncated)
            XCTAssertEqual(bytes, frame, "the super-frame arrives whole and as sent")
            XCTAssertEqual(r.gsoType, ReceivedFrame.gsoTCPv4)
            XCTAssertEqual(r.gsoSize, 1000)
            XCTAssertTrue(r.needsChecksum)
            XCTAssertEqual(Int(r.csumStart), l4, "checksum start counts from the frame as handed out (tag included)")
            XCTAssertEqual(r.csumOffset, 16)
            sa.io.releaseReceived()
        }
        XCTAssertEqual(sa.io.ring.pointee.rx_vlan_restored, 1)
        _ = (sa.interface, b)
    }

    /// An IPv4/TCP frame from 02:..:0b with `payload` bytes; TCP source port 40000 + marker.
    private func gsoFrame(payload: Int, marker: UInt8) -> [UInt8] {
        func be16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
        var ip: [UInt8] = [0x45, 0] + be16(40 + payload) + [0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]
        var s = 0
        for i in stride(from: 0, to: 20, by: 2) { s += Int(ip[i]) << 8 | Int(ip[i + 1]) }
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        ip[10] = UInt8((~s >> 8) & 0xff); ip[11] = UInt8(~s & 0xff)
        let tcp: [UInt8] = be16(40000 + Int(marker)) + be16(5201) + [0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]
        return [0x02, 0, 0, 0, 0, 0x0a, 0x02, 0, 0, 0, 0, 0x0b, 0x08, 0x00] + ip + tcp
            + (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
    }

    func testPacketRingFullAndMissingInterface() throws {
        let (a, _) = try vethPair()
        let s = try PacketSocket.open(interface: a, frameSize: 1518)
        let f = testFrame(marker: 7, length: 100)
        var accepted = 0
        for _ in 0..<(s.txSlotCount + 10) where f.withUnsafeBytes({ s.io.transmit($0.baseAddress!, length: $0.count) }) {
            accepted += 1
        }
        XCTAssertEqual(accepted, s.txSlotCount, "without a flush the ring fills and then refuses")
        XCTAssertGreaterThanOrEqual(s.txSlotCount, 512)
        s.io.flush()
        // The kernel hands the slots back once the frames are out.
        let deadline = Date().addingTimeInterval(2)
        var again = false
        while !again && Date() < deadline {
            again = f.withUnsafeBytes { s.io.transmit($0.baseAddress!, length: $0.count) }
            if !again { usleep(1000) }
        }
        XCTAssertTrue(again)
        _ = s.interface

        XCTAssertThrowsError(try { _ = try PacketSocket.open(interface: "veth-up0", frameSize: 1518) }()) { e in
            XCTAssertTrue("\(e)".contains("interface 'veth-up0' does not exist"), "\(e)")
        }
    }

    func testNetInterfaceQueries() throws {
        let (a, b) = try vethPair()
        XCTAssertNil(NetInterface.index("sl-nope-\(pid)"))
        XCTAssertNil(NetInterface.mtu("sl-nope-\(pid)"))
        XCTAssertFalse(NetInterface.isUp("sl-nope-\(pid)"))
        try NetInterface.setMTU(a, 1400)
        XCTAssertEqual(NetInterface.mtu(a), 1400)
        _ = run("ip", "link", "set", b, "down")
        XCTAssertFalse(NetInterface.isUp(a), "up but no carrier (peer down) is not running")
        try NetInterface.setUp(b)
        XCTAssertTrue(waitUp([a, b]))
        XCTAssertThrowsError(try NetInterface.setUp("sl-nope-\(pid)")) { e in
            XCTAssertTrue("\(e)".contains("does not exist"), "\(e)")
        }
    }

    // MARK: - Helpers

    private func requireNetAdmin() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root: creates tap/veth interfaces") }
        guard access("/dev/net/tun", F_OK) == 0 else { throw XCTSkip("needs root: /dev/net/tun is missing") }
        guard run("ip", "-V") == 0 else { throw XCTSkip("needs root: iproute2 'ip' is missing") }
    }

    private func vethPair() throws -> (String, String) {
        try requireNetAdmin()
        let a = "vA-\(pid)", b = "vB-\(pid)"
        _ = run("ip", "link", "del", a)
        try sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        links.append(a)
        for n in [a, b] {
            _ = run("sysctl", "-qw", "net.ipv6.conf.\(n).disable_ipv6=1")
            try sh("ip", "link", "set", n, "up")
        }
        XCTAssertTrue(waitUp([a, b]), "veth pair did not come up")
        return (a, b)
    }

    private func waitUp(_ names: [String]) -> Bool {
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            if names.allSatisfy(NetInterface.isUp) { return true }
            usleep(10_000)
        }
        return false
    }

    /// Ethernet frame from 02:..:0b to 02:..:0a, EtherType 0x88b5 (local experimental),
    /// first payload byte `marker`, padded with a counting pattern to `length`.
    private func testFrame(marker: UInt8, length: Int) -> [UInt8] {
        var f: [UInt8] = [0x02, 0, 0, 0, 0, 0x0a, 0x02, 0, 0, 0, 0, 0x0b, 0x88, 0xb5, marker]
        while f.count < length { f.append(UInt8(truncatingIfNeeded: f.count)) }
        return f
    }

    private func receive(_ io: PacketRingIO, timeout: Double = 2, _ match: ([UInt8]) -> Bool) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            while let f = io.nextFrame() {
                let bytes = Array(UnsafeRawBufferPointer(start: f.bytes, count: f.length))
                if match(bytes) { io.releaseReceived(); return bytes }
            }
            io.releaseReceived()
            usleep(1000)
        }
        return nil
    }

    private func readTap(_ io: TapIO, timeout: Double = 2, _ match: ([UInt8]) -> Bool) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 2048)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let n = buf.withUnsafeMutableBytes { io.read(into: $0.baseAddress!, capacity: $0.count) }
            if n > 0 {
                let f = Array(buf[0..<n])
                if match(f) { return f }
            } else {
                XCTAssertEqual(n, 0)
                usleep(1000)
            }
        }
        return nil
    }

    private func sendUDP(to ip: String, port: UInt16, payload: [UInt8]) throws {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard s >= 0 else { throw SystemError("socket") }
        defer { closeFD(s) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, ip, &addr.sin_addr)
        let n = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(s, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard n == payload.count else { throw SystemError("sendto(\(ip))") }
    }

    @discardableResult
    private func run(_ args: String...) -> Int32 { runArgs(args) }

    private func runArgs(_ args: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    private func sh(_ args: String...) throws {
        let rc = runArgs(args)
        if rc != 0 { throw XCTSkip("needs root: '\(args.joined(separator: " "))' failed (exit \(rc))") }
    }
}
