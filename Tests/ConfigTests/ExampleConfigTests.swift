import XCTest

@testable import Config

/// The files in Configs/ are what a newcomer reads first: they must stay valid.
final class ExampleConfigTests: XCTestCase {
    func testEveryExampleConfigParses() throws {
        let files = try Fixtures.iniFiles(in: Fixtures.examples)
        XCTAssertGreaterThanOrEqual(files.count, 3, "no example configs in \(Fixtures.examples.path)")
        for path in files {
            do {
                let config = try SluiceConfig.load(path: path)
                XCTAssertEqual(config.warnings, [], path)
            } catch {
                XCTFail("\(error)")
            }
        }
    }

    func testP2PExample() throws {
        let config = try SluiceConfig.load(path: Fixtures.examples.appendingPathComponent("p2p.ini").path)
        XCTAssertEqual(config.dataplane.socketDir, "/tmp/sluice")
        XCTAssertEqual(config.ports.map(\.name), ["vm1", "vm2"])
        XCTAssertEqual(config.ports.map(\.socket), ["/tmp/sluice/vm1.sock", "/tmp/sluice/vm2.sock"])
        XCTAssert(config.ports.allSatisfy { $0.type == .vhostUser && $0.mode == .server })
        XCTAssertEqual(config.p2p.map { [$0.name, $0.a, $0.b] }, [["link0", "vm1", "vm2"]])
        XCTAssertEqual(config.switches.count, 0)
    }

    func testSwitchExample() throws {
        let config = try SluiceConfig.load(path: Fixtures.examples.appendingPathComponent("switch.ini").path)
        XCTAssertEqual(config.ports.map(\.name), ["vm1", "vm2", "tap0", "mon0"])
        XCTAssertEqual(config.switches.map(\.ports), [["vm1", "vm2", "tap0", "mon0"]])
        XCTAssertEqual(config.switches.first?.name, "br0")
        XCTAssertEqual(config.switches.first?.aging, 300)
        XCTAssertEqual(config.switches.first?.maxMACs, 4096)
        XCTAssertNil(config.dataplane.poll)
        XCTAssertEqual(config.ports.map(\.vlan), [10, 10, 10, nil])
        XCTAssertEqual(config.ports.map(\.macLock), [true, false, false, false])
        XCTAssertEqual(config.ports.map(\.monitor), [false, false, false, true])
        XCTAssertEqual(config.port(named: "vm2")?.maxMACs, 16)
        XCTAssertEqual(config.port(named: "vm2")?.floodLimit, 10000)
        XCTAssertEqual(config.port(named: "tap0")?.interface, "sl-tap0")
        XCTAssertEqual(config.port(named: "mon0")?.interface, "sl-mon0")
    }

    func testSwitchUplinkExample() throws {
        let config = try SluiceConfig.load(path: Fixtures.examples.appendingPathComponent("switch-uplink.ini").path)
        XCTAssertEqual(config.ports.map(\.name), ["vm10", "vm20", "uplink"])
        XCTAssertEqual(config.ports.map(\.vlan), [10, 20, nil])
        XCTAssertEqual(config.ports.map(\.accessVLAN), [10, 20, 1])
        let uplink = try XCTUnwrap(config.port(named: "uplink"))
        XCTAssertEqual(uplink.type, .afPacket)
        XCTAssertEqual(uplink.interface, "veth-up0")
        XCTAssertEqual(uplink.trunk, VLANSet(all: false, ids: [10, 20]))
        XCTAssertNil(uplink.nativeVLAN)
        XCTAssertEqual(config.switches.map(\.ports), [["vm10", "vm20", "uplink"]])
        XCTAssertEqual(config.p2p, [])
    }

    func testMinimalExample() throws {
        let config = try SluiceConfig.load(path: Fixtures.examples.appendingPathComponent("minimal.ini").path)
        XCTAssertEqual(config.ports.count, 0)
        XCTAssertEqual(config.dataplane.cores, CoreSet([1]))
        XCTAssertEqual(config.dataplane.socketDir, "/run/sluice")
    }
}
