import XCTest

@testable import Config

final class CrossReferenceTests: XCTestCase {
    private let sections = [
        "[dataplane]\ncores = 1\nsocket-dir = /tmp/order\n",
        "[port a]\ntype = vhost-user\nsocket = a.sock\nmac = 02:00:00:00:00:0a\n",
        "[port b]\ntype = vhost-user\nsocket = b.sock\nmode = client\n",
        "[port c]\ntype = tap\ninterface = tapc\n",
        "[port d]\ntype = af-packet\ninterface = eth0\n",
        "[port e]\ntype = vhost-user\nsocket = /abs/e.sock\n",
        "[p2p ab]\nports = a, b\n",
        "[switch cd]\nports = d, c\naging = 10\n",
    ]

    /// A model with the line numbers taken out, so that orders can be compared.
    private struct Shape: Equatable {
        var dataplane: DataplaneConfig
        var ports: [String: PortConfig]
        var p2p: [String: [String]]
        var switches: [String: [String]]
        var warnings: Set<String>

        init(_ config: SluiceConfig) {
            var dataplane = config.dataplane
            dataplane.coresLine = nil
            self.dataplane = dataplane
            ports = Dictionary(uniqueKeysWithValues: config.ports.map { port in
                var port = port
                port.line = 0
                port.socketLine = nil
                return (port.name, port)
            })
            p2p = Dictionary(uniqueKeysWithValues: config.p2p.map { ($0.name, [$0.a, $0.b]) })
            switches = Dictionary(uniqueKeysWithValues: config.switches.map { ($0.name, $0.ports + ["\($0.aging)"]) })
            warnings = Set(config.warnings.map(\.message))
        }
    }

    /// Property: the order of sections never changes the model.
    func testSectionOrderDoesNotMatter() throws {
        let reference = try XCTUnwrap(parseGood(sections.joined()))
        XCTAssertEqual(reference.port(named: "b")?.socket, "/tmp/order/b.sock")
        XCTAssertEqual(reference.warnings.map(\.message), ["port 'e' is not attached to any p2p link or switch"])
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<100 {
            let shuffled = sections.shuffled(using: &generator)
            let config = try XCTUnwrap(parseGood(shuffled.joined()))
            XCTAssertEqual(Shape(config), Shape(reference), shuffled.joined())
        }
    }

    /// Property: an undefined reference is reported whatever the order, at the line of `ports`.
    func testUndefinedReferenceIsFoundInAnyOrder() {
        var broken = sections
        broken[6] = "[p2p ab]\nports = a, zz\n"
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<50 {
            let text = broken.shuffled(using: &generator).joined()
            let diagnostics = parseBad(text)
            XCTAssertEqual(diagnostics.map(\.message), ["[p2p ab] names port 'zz', but there is no [port zz] section"])
            let portsLine = text.split(separator: "\n", omittingEmptySubsequences: false)
                .firstIndex { $0 == "ports = a, zz" }.map { $0 + 1 }
            XCTAssertEqual(diagnostics.first?.line, portsLine)
        }
    }

    func testSocketDuplicateAcrossRelativeAndAbsoluteSpelling() {
        let diagnostics = parseBad("""
            [port x]
            type = vhost-user
            socket = /run/sluice/x.sock
            [port y]
            type = vhost-user
            socket = x.sock
            """)
        XCTAssertEqual(diagnostics.map(\.description), [
            "test.ini:6: socket path '/run/sluice/x.sock' is already used by port 'x' (line 3)",
        ])
    }

    func testPortOnBothALinkAndASwitch() {
        let diagnostics = parseBad("""
            [switch s]
            ports = a, c
            [port a]
            type = tap
            interface = ta
            [port b]
            type = tap
            interface = tb
            [p2p l]
            ports = b, a
            [port c]
            type = tap
            interface = tc
            """)
        XCTAssertEqual(diagnostics.map(\.description), ["test.ini:10: port 'a' is already attached to [switch s] (line 2)"])
    }

    func testUnusedPortsAreWarningsNotErrors() throws {
        let config = try XCTUnwrap(parseGood("[port lonely]\ntype = tap\ninterface = t0\n"))
        XCTAssertEqual(config.ports.map(\.name), ["lonely"])
        XCTAssertEqual(config.warnings.map(\.description), ["test.ini:1: port 'lonely' is not attached to any p2p link or switch"])
    }

    func testSocketPathLengthLimitCountsTheSocketDirectory() {
        let directory = "/" + String(repeating: "d", count: 96)  // 97 bytes; "/x.sock" makes 104
        XCTAssertNotNil(parseGood("[dataplane]\nsocket-dir = \(directory)\n[port p]\ntype = vhost-user\nsocket = x.sock\n"))
        let diagnostics = parseBad("[dataplane]\nsocket-dir = \(directory)\n[port p]\ntype = vhost-user\nsocket = xyzab.sock\n")
        XCTAssertEqual(diagnostics.map(\.line), [5])
        XCTAssertTrue(diagnostics.first?.message.contains("is 108 bytes") ?? false)
    }
}

/// A small deterministic generator (SplitMix64), so shuffles repeat from run to run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
