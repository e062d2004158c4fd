import Config
import Foundation
import XCTest
@testable import Services

/// Conformance against an independent implementation: tools/scapy/dhcp4.py builds the
/// requests with scapy, this test answers them (in name order, one server), and the
/// script parses the replies with scapy's BOOTP/DHCP dissectors and checks them.
final class DHCPv4ScapyTests: XCTestCase {
    static func repositoryRoot() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A python3 that can import scapy (Debian's python3-scapy lives in /usr/bin's python).
    static func pythonWithScapy() -> String? {
        var candidates = ["/usr/bin/python3"]
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") { candidates.append("\(dir)/python3") }
        for python in candidates where FileManager.default.isExecutableFile(atPath: python) {
            if (try? run(python, ["-c", "import scapy.all"]).status) == 0 { return python }
        }
        return nil
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testScapyBuiltRequestsAndScapyCheckedReplies() throws {
        guard let python = Self.pythonWithScapy() else {
            throw XCTSkip("scapy conformance skipped: no python3 that imports scapy (apt-get install python3-scapy)")
        }
        let script = Self.repositoryRoot().appendingPathComponent("tools/scapy/dhcp4.py").path
        let dir = NSTemporaryDirectory() + "sluice-dhcp4-scapy-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gen = try Self.run(python, [script, "gen", dir])
        XCTAssertEqual(gen.status, 0, gen.output)

        var host = false
        let network = NetworkServiceConfig(name: "prod", ipv4Subnet: IPv4Prefix("10.0.0.0/24", hostBitsSet: &host),
                                           dns4: [IPv4Address("10.0.0.53")!], domain: "prod.internal", leaseTime: 3600,
                                           mtu: 1500, routerMAC: MACAddress("02:00:00:00:00:fe")!)
        let server = DHCPv4Server(network: network, leases: try LeaseStore(network: network, path: nil))
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".req") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 20)
        for (i, name) in names.enumerated() {
            let base = dir + "/" + String(name.dropLast(4))
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            guard let frame = ParsedFrame(bytes) else {
                try "unparsed-frame\n".write(toFile: base + ".counters", atomically: true, encoding: .utf8)
                continue
            }
            let reply = server.handle(frame, port: ServicePort(name: "vm1"), now: 1_700_000_000 + UInt64(i))
            try reply.counters.map { $0 + "\n" }.joined().write(toFile: base + ".counters", atomically: true, encoding: .utf8)
            if let f = reply.frame { try Data(f).write(to: URL(fileURLWithPath: base + ".reply")) }
        }
        let check = try Self.run(python, [script, "check", dir])
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.output.contains(" 0 failed checks"), check.output)
    }
}
