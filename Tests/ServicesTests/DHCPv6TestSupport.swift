import Config
import Foundation
import XCTest
@testable import Services

/// An in-memory `Lease6Allocator` for the DHCPv6 and NDP tests: a static address when
/// given, else the MAC's earlier address, else the next free one from prefix::2 on.
final class DHCPv6MemoryLeases: Lease6Allocator {
    let prefix: IPv6Prefix
    /// How many addresses may be handed out (to test exhaustion).
    var capacity: Int
    private(set) var byMAC: [MACAddress: IPv6Address] = [:]
    private(set) var commits: [(mac: MACAddress, address: IPv6Address, until: UInt64)] = []
    private(set) var releases: [MACAddress] = []
    /// When set, every allocation answers this (to test a misbehaving store).
    var forced: IPv6Address?

    init(prefix: IPv6Prefix, capacity: Int = 1000) {
        self.prefix = prefix
        self.capacity = capacity
    }

    func allocate6(mac: MACAddress, port: String, duid: [UInt8], iaid: UInt32, staticAddress: IPv6Address?, now: UInt64) -> IPv6Address? {
        if let f = forced { return f }
        if let s = staticAddress { byMAC[mac] = s; return s }
        if let a = byMAC[mac] { return a }
        guard byMAC.count < capacity else { return nil }
        let used = Set(byMAC.values)
        var low = prefix.address.low &+ 2
        while used.contains(IPv6Address(high: prefix.address.high, low: low)) { low &+= 1 }
        let a = IPv6Address(high: prefix.address.high, low: low)
        byMAC[mac] = a
        return a
    }

    func commit6(mac: MACAddress, address: IPv6Address, until: UInt64) {
        commits.append((mac, address, until))
    }

    func release6(mac: MACAddress) -> IPv6Address? {
        releases.append(mac)
        return byMAC.removeValue(forKey: mac)
    }
}

/// Fixtures shared by the DHCPv6 and NDP tests.
enum V6Fixture {
    static let routerMAC = MACAddress("02:00:00:00:00:fe")!
    static let clientMAC = MACAddress("52:54:00:12:34:56")!
    static let otherMAC = MACAddress("52:54:00:65:43:21")!
    static let clientLL = IPv6Address("fe80::5054:ff:fe12:3456")!
    static let prefix: IPv6Prefix = { var h = false; return IPv6Prefix("fd00:1::/64", hostBitsSet: &h)! }()
    static let network = NetworkServiceConfig(
        name: "prod", ipv6Prefix: prefix, dns6: [IPv6Address("fd00:1::53")!], domain: "prod.internal",
        leaseTime: 3600, mtu: 1500, routerMAC: routerMAC)
    static let serverDUID = DHCPv6.duidLL(routerMAC)
    /// DUID-LLT of the client (type 1, hardware 1, time, MAC).
    static let clientDUID: [UInt8] = [0, 1, 0, 1, 0x2b, 0x3c, 0x4d, 0x5e] + clientMAC.octets
    static let port = ServicePort(name: "vm1", mac: clientMAC)

    static func option(_ code: UInt16, _ data: [UInt8]) -> [UInt8] {
        [UInt8(code >> 8), UInt8(code & 0xFF), UInt8(data.count >> 8), UInt8(data.count & 0xFF)] + data
    }

    static func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    /// IA_NA with IAID 1 and T1/T2 0, with IAADDRs of `addresses`.
    static func iaNA(iaid: UInt32 = 1, _ addresses: [IPv6Address] = []) -> [UInt8] {
        option(3, u32(iaid) + u32(0) + u32(0) + addresses.flatMap { option(5, $0.bytes + u32(0) + u32(0)) })
    }

    /// A DHCPv6 client message with transaction ID 0x123456.
    static func message(_ type: UInt8, _ options: [UInt8]) -> [UInt8] { [type, 0x12, 0x34, 0x56] + options }

    static func frame(_ payload: [UInt8], srcMAC: MACAddress = clientMAC, src: IPv6Address = clientLL,
                      dst: IPv6Address = DHCPv6.allServers, srcPort: UInt16 = 546, dstPort: UInt16 = 547) -> ParsedFrame {
        ParsedFrame(Frames.udp6(srcMAC: srcMAC, dstMAC: Frames.multicastMAC(dst), src: src, dst: dst,
                                srcPort: srcPort, dstPort: dstPort, payload: payload))!
    }
}

/// Conformance against scapy (tools/scapy/<script>.py): the script builds requests into a
/// directory, `answer` replies to each in name order, the script checks the replies.
enum V6Scapy {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A Python 3 that can import scapy: Debian's first (python3-scapy installs there),
    /// then the one on PATH. Throws XCTSkip with one line when there is none.
    static func python() throws -> String {
        for candidate in ["/usr/bin/python3", "/usr/local/bin/python3", "python3"] {
            if (try? run(candidate, ["-c", "import scapy.layers.dhcp6, scapy.layers.inet6"]))?.status == 0 { return candidate }
        }
        throw XCTSkip("scapy conformance skipped: no python3 with scapy (apt-get install python3-scapy)")
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        if executable.hasPrefix("/") {
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [executable] + arguments
        }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Generates the requests of `script`, answers each (`answer` returns the reply and
    /// counters, or nil for a frame that does not even parse), and returns the checker's
    /// verdict and output.
    static func conformance(script: String, answer: (_ name: String, _ frame: ParsedFrame, _ index: Int) -> ServiceReply)
        throws -> (status: Int32, output: String)
    {
        let py = try python()
        let path = repositoryRoot.appendingPathComponent("tools/scapy/\(script).py").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-scapy-\(script)-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        // SLUICE_SCAPY_KEEP=1 keeps the requests and replies for a look.
        defer { if ProcessInfo.processInfo.environment["SLUICE_SCAPY_KEEP"] == nil { try? FileManager.default.removeItem(at: dir) } }
        let gen = try run(py, [path, "gen", dir.path])
        guard gen.status == 0 else { return (gen.status, "gen failed:\n" + gen.output) }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".req") }.sorted()
        guard !names.isEmpty else { return (1, "gen wrote no requests") }
        for (i, file) in names.enumerated() {
            let name = String(file.dropLast(4))
            let bytes = [UInt8](try Data(contentsOf: dir.appendingPathComponent(file)))
            var counters: [String] = ["frame.unparsed"]
            if let frame = ParsedFrame(bytes) {
                let r = answer(name, frame, i)
                counters = r.counters
                if let f = r.frame { try Data(f).write(to: dir.appendingPathComponent(name + ".reply")) }
            }
            try Data((counters.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent(name + ".counters"))
        }
        return try run(py, [path, "check", dir.path])
    }
}
