import XCTest

@testable import Config

/// The keys and messages for running sluice as a service: socket owner, group
/// and mode; the nearest-key suggestion for a typo; the example service config.
final class ServiceConfigTests: XCTestCase {
    func testSocketAccessDefaultsAndPortOverrides() throws {
        let config = try XCTUnwrap(parseGood("""
            [dataplane]
            socket-owner = root
            socket-group = 64055
            socket-mode = 0660
            [port a]
            type = vhost-user
            socket = a.sock
            [port b]
            type = vhost-user
            socket = b.sock
            socket-group = kvm
            socket-mode = 600
            [port c]
            type = vhost-user
            socket = c.sock
            mode = client
            [switch s]
            ports = a, b, c
            """))
        XCTAssertEqual(config.dataplane.socketAccess,
                       SocketAccess(owner: .name("root"), ownerLine: 2, group: .id(64055), groupLine: 3, mode: 0o660, modeLine: 4))
        let a = try XCTUnwrap(config.port(named: "a"))
        XCTAssertEqual(a.socketAccess, config.dataplane.socketAccess, "a server port without keys takes the [dataplane] defaults")
        XCTAssertEqual(a.socketLine, 7)
        let b = try XCTUnwrap(config.port(named: "b"))
        XCTAssertEqual(b.socketAccess,
                       SocketAccess(owner: .name("root"), ownerLine: 2, group: .name("kvm"), groupLine: 11, mode: 0o600, modeLine: 12),
                       "each key of the port overrides only itself, with its own line")
        XCTAssertTrue(try XCTUnwrap(config.port(named: "c")).socketAccess.isEmpty, "a client port creates no socket")
    }

    func testNoKeysMeansMode0660AndNoOwner() throws {
        let config = try XCTUnwrap(parseGood("[port a]\ntype = vhost-user\nsocket = a.sock\n"))
        let access = try XCTUnwrap(config.port(named: "a")).socketAccess
        XCTAssertNil(access.owner)
        XCTAssertNil(access.group)
        XCTAssertEqual(access.effectiveMode, 0o660)
        XCTAssertEqual(SocketAccess.octal(0o660), "0660")
        XCTAssertEqual(SocketAccess.octal(0o7), "0007")
    }

    func testBadSocketAccessValuesAreErrorsAtTheirLines() {
        let diagnostics = parseBad("""
            [dataplane]
            socket-owner = -x
            socket-group = a b
            socket-mode = 0888
            [port a]
            type = vhost-user
            socket = a.sock
            socket-mode = 01777
            socket-owner = 4294967295
            """)
        XCTAssertEqual(diagnostics.map(\.line), [2, 3, 4, 8, 9], diagnostics.description)
        XCTAssertTrue(diagnostics[0].message.contains("bad 'socket-owner' '-x': use a user name or a numeric uid"), diagnostics[0].message)
        XCTAssertTrue(diagnostics[1].message.contains("bad 'socket-group' 'a b'"), diagnostics[1].message)
        XCTAssertTrue(diagnostics[2].message.contains("'socket-mode' must be octal permission bits like 0660"), diagnostics[2].message)
        XCTAssertTrue(diagnostics[3].message.contains("got '01777'"), diagnostics[3].message)
        for mode in ["66", "abc", "0o660", "07777"] {
            XCTAssertEqual(parseBad("[dataplane]\nsocket-mode = \(mode)\n").map(\.line), [2], mode)
        }
        for mode in ["660", "0660", "0777", "0000"] {
            XCTAssertNotNil(parseGood("[dataplane]\nsocket-mode = \(mode)\n"), mode)
        }
    }

    func testModeWithoutOwnerWriteIsAWarning() throws {
        let config = try XCTUnwrap(parseGood("[dataplane]\nsocket-mode = 0460\n"))
        XCTAssertEqual(config.warnings.map(\.line), [2])
        XCTAssertTrue(config.warnings[0].message.contains("does not let the socket's owner connect"), config.warnings[0].message)
    }

    func testSocketKeysOnlyForServerVhostUserPorts() {
        let client = parseBad("""
            [port a]
            type = vhost-user
            socket = a.sock
            mode = client
            socket-group = kvm
            """)
        XCTAssertEqual(client.map(\.description), ["test.ini:5: 'socket-group' only applies to server mode (in client mode the front-end creates the socket)"])
        let tap = parseBad("""
            [port t]
            type = tap
            interface = sl-t0
            socket-mode = 0660
            """)
        XCTAssertEqual(tap.map(\.description), ["test.ini:4: 'socket-mode' is only for vhost-user ports, not tap"])
    }

    func testUnknownKeySuggestsTheNearestKeyOfItsSection() {
        let diagnostics = parseBad("""
            [dataplane]
            instanse = x
            [port vm1]
            type = vhost-user
            socket = vm1.sock
            queus = 2
            Mtu = 1500
            colour = blue
            [switch br]
            ports = vm1, vm2
            agign = 10
            [port vm2]
            type = tap
            interface = t0
            inteface = t1
            """)
        XCTAssertEqual(diagnostics.map(\.description), [
            "test.ini:2: unknown key 'instanse' in [dataplane]; did you mean 'instance'?",
            "test.ini:6: unknown key 'queus' in [port vm1]; did you mean 'queues'?",
            "test.ini:7: unknown key 'Mtu' in [port vm1]; did you mean 'mtu'?",
            "test.ini:8: unknown key 'colour' in [port vm1]",
            "test.ini:11: unknown key 'agign' in [switch br]; did you mean 'aging'?",
            "test.ini:15: unknown key 'inteface' in [port vm2]; did you mean 'interface'?",
        ])
    }

    func testEditDistance() {
        func d(_ a: String, _ b: String) -> Int { editDistance(Array(a.utf8), Array(b.utf8)) }
        XCTAssertEqual(d("", "abc"), 3)
        XCTAssertEqual(d("queus", "queues"), 1)
        XCTAssertEqual(d("agign", "aging"), 1, "two neighbouring letters swapped count one")
        XCTAssertEqual(d("kitten", "sitting"), 3)
        XCTAssertNil(nearestKey(to: "vlna", among: ["mac", "mtu"]))
        XCTAssertEqual(nearestKey(to: "vlna", among: ["vlan", "mtu"]), "vlan")
        XCTAssertNil(nearestKey(to: "xy", among: ["mtu"]), "short keys need a close match")
        XCTAssertEqual(nearestKey(to: "mac-lok", among: ["mac", "mac-lock", "max-macs"]), "mac-lock")
    }

    /// The example that tools/install.sh puts at /etc/sluice/sluice.ini parses without warnings.
    func testServiceExampleConfigParses() throws {
        let path = Fixtures.examples.deletingLastPathComponent().appendingPathComponent("tools/systemd/sluice.ini").path
        let config = try SluiceConfig.load(path: path)
        XCTAssertEqual(config.warnings, [])
        XCTAssertEqual(config.ports.map(\.name), ["vm1", "vm2"])
        XCTAssertEqual(config.port(named: "vm1")?.socket, "/run/sluice/vm1.sock")
        XCTAssertEqual(config.port(named: "vm1")?.socketAccess.effectiveMode, 0o660)
    }
}
