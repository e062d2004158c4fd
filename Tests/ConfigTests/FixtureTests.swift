import XCTest

@testable import Config

final class FixtureTests: XCTestCase {
    /// Every bad fixture reports exactly the errors its `; expect:` comments name.
    func testEveryBadFixtureReportsItsExpectedErrors() throws {
        let files = try Fixtures.iniFiles(in: Fixtures.directory).filter { $0.hasSuffix(".ini") && $0.contains("/bad-") }
        XCTAssertGreaterThanOrEqual(files.count, 8)
        for path in files {
            let expected = try Expectation.read(from: path)
            XCTAssertFalse(expected.errors.isEmpty, "\(path) names no expected error")
            do {
                _ = try SluiceConfig.load(path: path)
                XCTFail("\(path) parsed without errors")
            } catch {
                assertMatches(error.diagnostics, expected.errors, path)
                XCTAssert(error.diagnostics.allSatisfy { $0.file == path }, path)
                XCTAssertEqual(error.diagnostics.map(\.line), error.diagnostics.map(\.line).sorted(), "\(path): not in line order")
            }
        }
    }

    /// Every good fixture parses, with exactly the warnings its `; expect-warning:` comments name.
    func testEveryGoodFixtureParses() throws {
        let files = try Fixtures.iniFiles(in: Fixtures.directory).filter { $0.contains("/good-") }
        XCTAssertGreaterThanOrEqual(files.count, 3)
        for path in files {
            let expected = try Expectation.read(from: path)
            do {
                let config = try SluiceConfig.load(path: path)
                assertMatches(config.warnings, expected.warnings, path)
            } catch {
                XCTFail("\(path):\n\(error)")
            }
        }
    }

    func testSeveralDifferentErrorsAreAllReportedInLineOrder() throws {
        let path = Fixtures.path("bad-mixed.ini")
        XCTAssertThrowsError(try SluiceConfig.load(path: path)) { error in
            guard let error = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.diagnostics.map(\.line), [3, 7, 9, 11, 12])
            let lines = error.description.split(separator: "\n")
            XCTAssertEqual(lines.count, 5)
            XCTAssertEqual(String(lines[0]), "\(path):3: bad value for 'cores': bad core range '3-1' in '3-1': start is greater than end")
            XCTAssertTrue(lines[4].hasPrefix("\(path):12: expected 'key = value'"))
        }
    }

    func testFullFixtureModel() throws {
        let config = try SluiceConfig.load(path: Fixtures.path("good-full.ini"))
        let dataplane = config.dataplane
        XCTAssertEqual(dataplane.cores?.cores, [1, 2, 4])
        XCTAssertEqual(dataplane.coresLine, 3)
        XCTAssertEqual(dataplane.poll, 50)
        XCTAssertEqual(dataplane.hugepages, .off)
        XCTAssertEqual(dataplane.socketDir, "/var/run/sluice")
        XCTAssertEqual(dataplane.instance, "test_1-a")

        XCTAssertEqual(config.ports.map(\.name), ["vm1", "vm.2", "tap0", "up_link"])
        XCTAssertEqual(
            config.port(named: "vm1"),
            PortConfig(
                name: "vm1", line: 9, type: .vhostUser, socket: "/var/run/sluice/vm1.sock", mode: .client,
                mac: MACAddress(bytes: (0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x0E)),
                queueSize: 1024, queues: 4, dsMax: 32, mtu: 9000, socketLine: 11
            )
        )
        XCTAssertEqual(
            config.port(named: "vm.2"),
            PortConfig(name: "vm.2", line: 21, type: .vhostUser, socket: "/tmp/other;semi#hash.sock", socketLine: 23)
        )
        XCTAssertEqual(
            config.port(named: "tap0"),
            PortConfig(
                name: "tap0", line: 25, type: .tap, mac: MACAddress("02:00:00:00:00:03"), interface: "sl-tap0",
                vlan: 4094, macLock: true, maxMACs: 1
            )
        )
        XCTAssertEqual(
            config.port(named: "up_link"),
            PortConfig(
                name: "up_link", line: 34, type: .afPacket, queueSize: 1, queues: 16, mtu: 68, interface: "eth0",
                trunk: VLANSet(all: false, ids: [1, 10, 4094]), nativeVLAN: 1, maxMACs: 1_000_000, floodLimit: 100_000_000
            )
        )
        XCTAssertNil(config.port(named: "nothing"))

        XCTAssertEqual(config.p2p, [P2PConfig(name: "link-0", line: 45, a: "vm1", b: "vm.2")])
        XCTAssertEqual(config.p2p.first?.ports.0, "vm1")
        XCTAssertEqual(config.p2p.first?.ports.1, "vm.2")
        XCTAssertEqual(config.switches, [SwitchConfig(name: "br0", line: 48, ports: ["tap0", "up_link"], aging: 86400, maxMACs: 1_000_000)])
        XCTAssertEqual(config.warnings, [])
    }

    func testReorderedFixtureResolvesSocketsAgainstALaterDataplane() throws {
        let config = try SluiceConfig.load(path: Fixtures.path("good-reordered.ini"))
        XCTAssertEqual(config.port(named: "a")?.socket, "/srv/sluice/a.sock")
        XCTAssertEqual(config.port(named: "c")?.socket, "/srv/sluice/sub/c.sock")
        XCTAssertEqual(config.switches.first?.ports, ["c", "b"])
        XCTAssertEqual(config.p2p.first.map { [$0.a, $0.b] }, ["d", "a"])
        XCTAssertEqual(config.warnings.map(\.description), [
            "\(Fixtures.path("good-reordered.ini")):25: port 'e' is not attached to any p2p link or switch",
        ])
    }

    func testCRLFAndByteOrderMark() throws {
        let config = try SluiceConfig.load(path: Fixtures.path("good-crlf.ini"))
        XCTAssertEqual(config.dataplane.cores?.cores, [1, 2])
        XCTAssertEqual(config.dataplane.poll, 0)
        XCTAssertEqual(config.ports.map(\.socket), ["/tmp/crlf/vm1.sock", "/tmp/crlf/vm2.sock"])
        XCTAssertEqual(config.ports.map(\.line), [6, 10])
        XCTAssertEqual(config.p2p.map(\.name), ["link0"])
    }
}
