import XCTest

@testable import Config

/// The learning switch's keys: VLANs, MAC limits, flood limits and monitor
/// ports on `[port]`, `max-macs` and `aging` on `[switch]`.
final class SwitchPortTests: XCTestCase {
    /// Two tap ports `p` and `q` on `[switch s]`. `keys` go into `[port p]` from
    /// line 4 on, `qKeys` at the end of `[port q]`, `switchKeys` after `ports`
    /// (from line 9 on when there are no other keys).
    private func text(_ keys: String, q qKeys: String = "", switch switchKeys: String = "") -> String {
        var lines = ["[port p]", "type = tap", "interface = tp"]
        lines += keys.isEmpty ? [] : [keys]
        lines += ["[port q]", "type = tap", "interface = tq"]
        lines += qKeys.isEmpty ? [] : [qKeys]
        lines += ["[switch s]", "ports = p, q"]
        lines += switchKeys.isEmpty ? [] : [switchKeys]
        return lines.joined(separator: "\n") + "\n"
    }

    private func port(_ keys: String, file: StaticString = #filePath, line: UInt = #line) -> PortConfig? {
        parseGood(text(keys), file: file, line: line)?.port(named: "p")
    }

    private func errors(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        parseBad(text, file: file, line: line).map(\.description)
    }

    // MARK: Defaults

    func testDefaults() throws {
        let config = try XCTUnwrap(parseGood(text("")))
        let port = try XCTUnwrap(config.port(named: "p"))
        XCTAssertNil(port.vlan)
        XCTAssertNil(port.trunk)
        XCTAssertNil(port.nativeVLAN)
        XCTAssertFalse(port.macLock)
        XCTAssertNil(port.maxMACs)
        XCTAssertNil(port.floodLimit)
        XCTAssertFalse(port.monitor)
        XCTAssertEqual(port.accessVLAN, 1)
        XCTAssertEqual(config.switches, [SwitchConfig(name: "s", line: 7, ports: ["p", "q"])])
        XCTAssertEqual(config.switches.first?.aging, 300)
        XCTAssertEqual(config.switches.first?.maxMACs, 4096)
        XCTAssertEqual(SwitchConfig.defaultMaxMACs, 4096)
        XCTAssertEqual(SwitchConfig.agingRange, 0...86400)
    }

    func testMemberwiseDefaultsMatchTheParser() throws {
        let parsed = try XCTUnwrap(port(""))
        XCTAssertEqual(parsed, PortConfig(name: "p", line: 1, type: .tap, interface: "tp"))
    }

    // MARK: Good values

    func testAccessVLAN() throws {
        XCTAssertEqual(try XCTUnwrap(port("vlan = 1")).vlan, 1)
        XCTAssertEqual(try XCTUnwrap(port("vlan = 1")).accessVLAN, 1)
        let top = try XCTUnwrap(port("vlan = 4094"))
        XCTAssertEqual(top.vlan, 4094)
        XCTAssertEqual(top.accessVLAN, 4094)
        XCTAssertNil(top.trunk)
    }

    func testTrunkList() throws {
        let parsed = try XCTUnwrap(port("trunk = 20,10 , 4094,1"))
        let trunk = try XCTUnwrap(parsed.trunk)
        XCTAssertFalse(trunk.all)
        XCTAssertEqual(trunk.ids, [1, 10, 20, 4094])
        XCTAssertNil(parsed.vlan)
        XCTAssertEqual(parsed.accessVLAN, 1)
        for vlan in [1, 10, 20, 4094] { XCTAssertTrue(trunk.contains(vlan), "\(vlan)") }
        for vlan in [0, 2, 11, 4093, 4095, -1] { XCTAssertFalse(trunk.contains(vlan), "\(vlan)") }
        XCTAssertEqual(try XCTUnwrap(port("trunk = 7")).trunk, VLANSet(all: false, ids: [7]))
    }

    func testTrunkAll() throws {
        let trunk = try XCTUnwrap(port("trunk = all")?.trunk)
        XCTAssertTrue(trunk.all)
        XCTAssertEqual(trunk.ids, [])
        XCTAssertEqual(trunk, VLANSet(all: true, ids: [5]))
        for vlan in [1, 2, 100, 4094] { XCTAssertTrue(trunk.contains(vlan), "\(vlan)") }
        for vlan in [0, 4095, -1] { XCTAssertFalse(trunk.contains(vlan), "\(vlan)") }
    }

    func testVLANSetInitSortsAndDropsDuplicatesAndOutOfRange() {
        let set = VLANSet(all: false, ids: [30, 5, 30, 0, 4095, 4094, 1])
        XCTAssertEqual(set.ids, [1, 5, 30, 4094])
        XCTAssertEqual(set, VLANSet(all: false, ids: [1, 5, 30, 4094]))
        XCTAssertFalse(VLANSet(all: false, ids: []).contains(1))
        // Every VLAN of a larger set, against a linear search.
        let ids = Array(stride(from: 3, through: 4094, by: 7))
        let large = VLANSet(all: false, ids: ids.reversed())
        for vlan in 0...4095 { XCTAssertEqual(large.contains(vlan), ids.contains(vlan), "\(vlan)") }
    }

    func testNativeVLAN() throws {
        XCTAssertEqual(try XCTUnwrap(port("trunk = 10, 20\nnative-vlan = 20")).nativeVLAN, 20)
        // With `all`, any VLAN may be native.
        XCTAssertEqual(try XCTUnwrap(port("native-vlan = 4094\ntrunk = all")).nativeVLAN, 4094)
    }

    func testMACLockMaxMACsFloodLimit() throws {
        let low = try XCTUnwrap(port("mac = 02:00:00:00:00:01\nmac-lock = true\nmax-macs = 1\nflood-limit = 1"))
        XCTAssertTrue(low.macLock)
        XCTAssertEqual(low.maxMACs, 1)
        XCTAssertEqual(low.floodLimit, 1)
        let top = try XCTUnwrap(port("mac-lock = false\nmax-macs = 1000000\nflood-limit = 100000000"))
        XCTAssertFalse(top.macLock)
        XCTAssertEqual(top.maxMACs, 1_000_000)
        XCTAssertEqual(top.floodLimit, 100_000_000)
    }

    func testMonitor() throws {
        let config = try XCTUnwrap(parseGood("""
            [port m]
            type = tap
            interface = tm
            monitor = true
            max-macs = 5
            flood-limit = 9
            [port a]
            type = tap
            interface = ta
            monitor = false
            vlan = 3
            [port b]
            type = tap
            interface = tb
            [switch s]
            ports = m, a, b
            """))
        XCTAssertEqual(config.ports.map(\.monitor), [true, false, false])
        XCTAssertEqual(config.port(named: "m")?.maxMACs, 5)
        XCTAssertEqual(config.port(named: "m")?.floodLimit, 9)
        XCTAssertEqual(config.port(named: "a")?.vlan, 3)
        XCTAssertEqual(config.warnings, [])
    }

    func testEveryPortTypeTakesTheSwitchKeys() throws {
        let keys = "vlan = 7\nmac = 02:00:00:00:00:07\nmac-lock = true\nmax-macs = 8\nflood-limit = 9\nmonitor = false"
        let config = try XCTUnwrap(parseGood("""
            [port v]
            type = vhost-user
            socket = /tmp/v.sock
            \(keys)
            [port t]
            type = tap
            interface = tt
            \(keys)
            [port a]
            type = af-packet
            interface = eth0
            trunk = all
            native-vlan = 7
            max-macs = 8
            flood-limit = 9
            monitor = false
            [switch s]
            ports = v, t, a
            """))
        for name in ["v", "t"] {
            let port = try XCTUnwrap(config.port(named: name))
            XCTAssertEqual(port.vlan, 7)
            XCTAssertTrue(port.macLock)
            XCTAssertEqual(port.maxMACs, 8)
            XCTAssertEqual(port.floodLimit, 9)
            XCTAssertFalse(port.monitor)
        }
        let trunk = try XCTUnwrap(config.port(named: "a"))
        XCTAssertEqual(trunk.trunk, VLANSet(all: true, ids: []))
        XCTAssertEqual(trunk.nativeVLAN, 7)
        XCTAssertEqual(trunk.maxMACs, 8)
    }

    func testSwitchAgingAndMaxMACs() throws {
        let never = try XCTUnwrap(parseGood(text("", switch: "aging = 0\nmax-macs = 1"))?.switches.first)
        XCTAssertEqual(never.aging, 0)
        XCTAssertEqual(never.maxMACs, 1)
        let top = try XCTUnwrap(parseGood(text("", switch: "aging = 86400\nmax-macs = 1000000"))?.switches.first)
        XCTAssertEqual(top.aging, 86400)
        XCTAssertEqual(top.maxMACs, 1_000_000)
        XCTAssertEqual(
            SwitchConfig(name: "x", line: 1, ports: [], aging: 5, maxMACs: 6),
            SwitchConfig(name: "x", line: 1, ports: [], aging: 5, maxMACs: 6)
        )
    }

    func testPortMaxMACsMayExceedTheSwitchs() throws {
        let config = try XCTUnwrap(parseGood(text("max-macs = 1000000", switch: "max-macs = 10")))
        XCTAssertEqual(config.port(named: "p")?.maxMACs, 1_000_000)
        XCTAssertEqual(config.switches.first?.maxMACs, 10)
    }

    // MARK: Bad values

    func testBadVLAN() {
        XCTAssertEqual(errors(text("vlan = 0")), ["test.ini:4: 'vlan' must be in 1..4094, got 0"])
        XCTAssertEqual(errors(text("vlan = 4095")), ["test.ini:4: 'vlan' must be in 1..4094, got 4095"])
        XCTAssertEqual(errors(text("vlan = ten")), ["test.ini:4: 'vlan' must be a decimal number, got 'ten'"])
        XCTAssertEqual(errors(text("vlan = 10, 20")), ["test.ini:4: 'vlan' must be a decimal number, got '10, 20'"])
        XCTAssertEqual(errors(text("vlan =")), ["test.ini:4: empty value for 'vlan'"])
    }

    func testBadTrunk() {
        let hint = "use 'all' or VLAN IDs 1..4094"
        XCTAssertEqual(errors(text("trunk = 0")), ["test.ini:4: bad VLAN '0' in 'trunk': \(hint)"])
        XCTAssertEqual(errors(text("trunk = 10, 4095")), ["test.ini:4: bad VLAN '4095' in 'trunk': \(hint)"])
        XCTAssertEqual(errors(text("trunk = 10-20")), ["test.ini:4: bad VLAN '10-20' in 'trunk': \(hint)"])
        XCTAssertEqual(errors(text("trunk = ALL")), ["test.ini:4: bad VLAN 'ALL' in 'trunk': \(hint)"])
        XCTAssertEqual(errors(text("trunk = 10,,20")), ["test.ini:4: empty VLAN in the list '10,,20'"])
        XCTAssertEqual(errors(text("trunk = 10,")), ["test.ini:4: empty VLAN in the list '10,'"])
        XCTAssertEqual(errors(text("trunk = 10, 20, 10")), ["test.ini:4: VLAN 10 is listed twice in 'trunk'"])
        XCTAssertEqual(errors(text("trunk = all, 10")), ["test.ini:4: 'all' must stand alone in 'trunk', got 'all, 10'"])
        XCTAssertEqual(errors(text("trunk = x, 0")), [
            "test.ini:4: bad VLAN 'x' in 'trunk': \(hint)",
            "test.ini:4: bad VLAN '0' in 'trunk': \(hint)",
        ])
    }

    func testBadNativeVLAN() {
        XCTAssertEqual(errors(text("trunk = all\nnative-vlan = 0")), ["test.ini:5: 'native-vlan' must be in 1..4094, got 0"])
        XCTAssertEqual(errors(text("trunk = all\nnative-vlan = x")), ["test.ini:5: 'native-vlan' must be a decimal number, got 'x'"])
    }

    func testBadBooleans() {
        XCTAssertEqual(errors(text("mac-lock = yes")), ["test.ini:4: 'mac-lock' must be true or false, got 'yes'"])
        XCTAssertEqual(errors(text("mac-lock = True")), ["test.ini:4: 'mac-lock' must be true or false, got 'True'"])
        XCTAssertEqual(errors(text("monitor = 1")), ["test.ini:4: 'monitor' must be true or false, got '1'"])
    }

    func testBadLimits() {
        XCTAssertEqual(errors(text("max-macs = 0")), ["test.ini:4: 'max-macs' must be in 1..1000000, got 0"])
        XCTAssertEqual(errors(text("max-macs = 1000001")), ["test.ini:4: 'max-macs' must be in 1..1000000, got 1000001"])
        XCTAssertEqual(errors(text("flood-limit = 0")), ["test.ini:4: 'flood-limit' must be in 1..100000000, got 0"])
        XCTAssertEqual(errors(text("flood-limit = 100000001")), ["test.ini:4: 'flood-limit' must be in 1..100000000, got 100000001"])
        XCTAssertEqual(errors(text("flood-limit = 1k")), ["test.ini:4: 'flood-limit' must be a decimal number, got '1k'"])
    }

    func testBadSwitchKeys() {
        XCTAssertEqual(errors(text("", switch: "aging = 86401")), ["test.ini:9: 'aging' must be in 0..86400, got 86401"])
        XCTAssertEqual(errors(text("", switch: "aging = -1")), ["test.ini:9: 'aging' must be a decimal number, got '-1'"])
        XCTAssertEqual(errors(text("", switch: "max-macs = 0")), ["test.ini:9: 'max-macs' must be in 1..1000000, got 0"])
        XCTAssertEqual(errors(text("", switch: "max-macs = 1000001")), ["test.ini:9: 'max-macs' must be in 1..1000000, got 1000001"])
        XCTAssertEqual(errors(text("", switch: "max-macs = many")), ["test.ini:9: 'max-macs' must be a decimal number, got 'many'"])
    }

    func testP2PTakesNoSwitchKeys() {
        XCTAssertEqual(errors("""
            [port a]
            type = tap
            interface = ta
            [port b]
            type = tap
            interface = tb
            [p2p l]
            ports = a, b
            max-macs = 10
            aging = 0
            """), [
            "test.ini:9: unknown key 'max-macs' in [p2p l]",
            "test.ini:10: unknown key 'aging' in [p2p l]",
        ])
    }

    // MARK: Keys that do not go together

    func testVLANAndTrunk() {
        let why = "a port is an access port or a trunk, not both"
        XCTAssertEqual(errors(text("vlan = 10\ntrunk = 10, 20")), ["test.ini:5: 'trunk' cannot be used with 'vlan' (line 4): \(why)"])
        XCTAssertEqual(errors(text("trunk = all\nmtu = 1500\nvlan = 10")), ["test.ini:6: 'vlan' cannot be used with 'trunk' (line 4): \(why)"])
        // A bad value still conflicts.
        XCTAssertEqual(errors(text("vlan = 0\ntrunk = 10")), [
            "test.ini:4: 'vlan' must be in 1..4094, got 0",
            "test.ini:5: 'trunk' cannot be used with 'vlan' (line 4): \(why)",
        ])
    }

    func testNativeVLANWithoutTrunk() {
        let message = "'native-vlan' needs 'trunk' (the VLAN of an access port is set with 'vlan')"
        XCTAssertEqual(errors(text("native-vlan = 10")), ["test.ini:4: \(message)"])
        XCTAssertEqual(errors(text("vlan = 10\nnative-vlan = 10")), ["test.ini:5: \(message)"])
        // A bad trunk is reported once, not also as missing.
        XCTAssertEqual(errors(text("trunk = 0\nnative-vlan = 10")), [
            "test.ini:4: bad VLAN '0' in 'trunk': use 'all' or VLAN IDs 1..4094",
        ])
    }

    func testNativeVLANOutsideTheTrunk() {
        XCTAssertEqual(errors(text("native-vlan = 30\ntrunk = 10, 20")), ["test.ini:4: 'native-vlan' 30 is not one of the VLANs in 'trunk'"])
        XCTAssertEqual(errors(text("trunk = 10\nnative-vlan = 1")), ["test.ini:5: 'native-vlan' 1 is not one of the VLANs in 'trunk'"])
    }

    func testMACLockWithoutMAC() {
        XCTAssertEqual(errors(text("mac-lock = true")), [
            "test.ini:4: 'mac-lock = true' needs 'mac': the one address allowed to send from the port",
        ])
        XCTAssertNotNil(port("mac-lock = false"))
        // A bad mac is reported once, not also as missing.
        XCTAssertEqual(errors(text("mac = ff:ff:ff:ff:ff:ff\nmac-lock = true")), [
            "test.ini:4: 'mac' ff:ff:ff:ff:ff:ff is the broadcast address; a port needs a unicast MAC",
        ])
    }

    func testMonitorWithForwardingKeys() {
        let why = "a monitor port only receives copies and forwards nothing"
        let three = "[port r]\ntype = tap\ninterface = tr\n"  // a third port keeps two forwarding ports on the switch
        func errors(_ keys: String) -> [String] {
            self.errors(text(keys).replacingOccurrences(of: "ports = p, q", with: "ports = p, q, r") + three)
        }
        XCTAssertEqual(errors("monitor = true\nvlan = 10"), ["test.ini:5: 'vlan' cannot be used with 'monitor' (line 4): \(why)"])
        XCTAssertEqual(errors("vlan = 10\nmonitor = true"), ["test.ini:5: 'monitor' cannot be used with 'vlan' (line 4): \(why)"])
        XCTAssertEqual(errors("monitor = true\ntrunk = all"), ["test.ini:5: 'trunk' cannot be used with 'monitor' (line 4): \(why)"])
        XCTAssertEqual(errors("mac = 02:00:00:00:00:01\nmac-lock = true\nmonitor = true"), [
            "test.ini:6: 'monitor' cannot be used with 'mac-lock' (line 5): \(why)",
        ])
        XCTAssertEqual(errors("monitor = true\nvlan = 10\ntrunk = 10"), [
            "test.ini:5: 'vlan' cannot be used with 'monitor' (line 4): \(why)",
            "test.ini:6: 'trunk' cannot be used with 'vlan' (line 5): a port is an access port or a trunk, not both",
            "test.ini:6: 'trunk' cannot be used with 'monitor' (line 4): \(why)",
        ])
        // `mac-lock = false` locks nothing, so it does not conflict.
        let good = text("monitor = true\nmac-lock = false\nmax-macs = 3\nflood-limit = 4")
            .replacingOccurrences(of: "ports = p, q", with: "ports = p, q, r") + three
        XCTAssertEqual(parseGood(good)?.port(named: "p")?.monitor, true)
    }

    // MARK: Switch-only keys on a p2p link

    func testSwitchKeysOnAP2PPort() {
        let keys = [
            "vlan = 10", "trunk = 10", "native-vlan = 10", "mac-lock = false", "max-macs = 10", "flood-limit = 10",
            "monitor = false",
        ]
        let diagnostics = errors("""
            [port a]
            type = vhost-user
            socket = /tmp/a.sock
            \(keys.joined(separator: "\n"))
            [port b]
            type = tap
            interface = tb
            [p2p l]
            ports = a, b
            """)
        // Every switch-only key is reported at its own line, even when its value is the default;
        // vlan and trunk also conflict with each other (line 5).
        XCTAssertEqual(diagnostics, [
            "test.ini:4: port 'a' is on [p2p l] (line 15), but 'vlan' only applies to switch ports",
            "test.ini:5: 'trunk' cannot be used with 'vlan' (line 4): a port is an access port or a trunk, not both",
            "test.ini:5: port 'a' is on [p2p l] (line 15), but 'trunk' only applies to switch ports",
            "test.ini:6: port 'a' is on [p2p l] (line 15), but 'native-vlan' only applies to switch ports",
            "test.ini:7: port 'a' is on [p2p l] (line 15), but 'mac-lock' only applies to switch ports",
            "test.ini:8: port 'a' is on [p2p l] (line 15), but 'max-macs' only applies to switch ports",
            "test.ini:9: port 'a' is on [p2p l] (line 15), but 'flood-limit' only applies to switch ports",
            "test.ini:10: port 'a' is on [p2p l] (line 15), but 'monitor' only applies to switch ports",
        ])
    }

    /// Each key alone (with what it needs), at the last line of `[port a]`.
    func testEachSwitchKeyOnAP2PPort() {
        let cases = [
            ("vlan", "vlan = 10"), ("trunk", "trunk = all"), ("native-vlan", "trunk = all\nnative-vlan = 10"),
            ("mac-lock", "mac = 02:00:00:00:00:01\nmac-lock = true"), ("max-macs", "max-macs = 10"),
            ("flood-limit", "flood-limit = 10"), ("monitor", "monitor = true"),
        ]
        XCTAssertEqual(cases.map(\.0), PortDecoder.switchOnlyKeys)
        for (key, keys) in cases {
            let count = keys.split(separator: "\n").count
            let diagnostics = errors("""
                [p2p l]
                ports = b, a
                [port b]
                type = tap
                interface = tb
                [port a]
                type = tap
                interface = ta
                \(keys)
                """)
            XCTAssertEqual(
                diagnostics.last, "test.ini:\(8 + count): port 'a' is on [p2p l] (line 2), but '\(key)' only applies to switch ports", key
            )
            // The other reported key is `trunk`, which needs a switch too.
            XCTAssertEqual(diagnostics.count, key == "native-vlan" ? 2 : 1, "\(diagnostics)")
        }
    }

    func testSwitchKeysOnAnUnattachedPortAreOnlyAWarning() throws {
        let config = try XCTUnwrap(parseGood("[port a]\ntype = tap\ninterface = ta\nvlan = 5\nflood-limit = 3\n"))
        XCTAssertEqual(config.warnings.map(\.description), ["test.ini:1: port 'a' is not attached to any p2p link or switch"])
    }

    func testSwitchKeysOnAPortOnASwitchAndAP2PLinkAreNotReportedTwice() {
        // The port belongs to the switch (listed first); the p2p listing is the error.
        XCTAssertEqual(errors("""
            [port a]
            type = tap
            interface = ta
            vlan = 5
            [port b]
            type = tap
            interface = tb
            [port c]
            type = tap
            interface = tc
            [switch s]
            ports = a, b
            [p2p l]
            ports = c, a
            """), ["test.ini:14: port 'a' is already attached to [switch s] (line 12)"])
    }

    // MARK: Attachments

    func testPortInTwoSwitches() {
        XCTAssertEqual(errors("""
            [port a]
            type = tap
            interface = ta
            [port b]
            type = tap
            interface = tb
            [port c]
            type = tap
            interface = tc
            [switch s1]
            ports = a, b
            [switch s2]
            ports = c, a
            """), ["test.ini:13: port 'a' is already attached to [switch s1] (line 11)"])
    }

    func testPortOnAP2PLinkAndThenASwitch() {
        XCTAssertEqual(errors("""
            [p2p l]
            ports = a, b
            [switch s]
            ports = c, b
            [port a]
            type = tap
            interface = ta
            [port b]
            type = tap
            interface = tb
            [port c]
            type = tap
            interface = tc
            """), ["test.ini:4: port 'b' is already attached to [p2p l] (line 2)"])
    }

    // MARK: Forwarding ports

    func testSwitchNeedsTwoForwardingPorts() {
        let message = "a switch needs at least two forwarding ports (monitor ports do not count)"
        XCTAssertEqual(errors("[port a]\ntype = tap\ninterface = ta\n[switch s]\nports = a\n"), ["test.ini:5: \(message)"])
        XCTAssertEqual(errors(text("monitor = true")), ["test.ini:9: \(message)"])
        XCTAssertEqual(errors(text("monitor = true", q: "monitor = true")), ["test.ini:10: \(message)"])
    }

    func testMonitorPortsComeOnTopOfTwoForwardingPorts() throws {
        let text = text("").replacingOccurrences(of: "ports = p, q", with: "ports = m, p, q")
            + "[port m]\ntype = tap\ninterface = tm\nmonitor = true\n"
        let config = try XCTUnwrap(parseGood(text))
        XCTAssertEqual(config.switches.first?.ports, ["m", "p", "q"])
        XCTAssertEqual(config.ports.filter(\.monitor).map(\.name), ["m"])
        XCTAssertEqual(config.warnings, [])
    }

    func testForwardingPortCountDoesNotRepeatOtherErrors() {
        // A missing port counts (its error is enough); so does a port that is also elsewhere.
        XCTAssertEqual(errors("[port a]\ntype = tap\ninterface = ta\n[switch s]\nports = a, zz\n"), [
            "test.ini:5: [switch s] names port 'zz', but there is no [port zz] section",
        ])
        // A list with a repeated or bad name is not counted.
        XCTAssertEqual(errors("[port a]\ntype = tap\ninterface = ta\n[switch s]\nports = a, a\n"), [
            "test.ini:5: port 'a' is listed twice in [switch s]",
        ])
        XCTAssertEqual(errors("[port a]\ntype = tap\ninterface = ta\n[switch s]\nports = a, b/c\n"), [
            "test.ini:5: bad port name 'b/c' in 'ports': use 1 to 32 of A-Z a-z 0-9 _ . -",
        ])
        // A port whose monitor value is bad counts as forwarding.
        XCTAssertEqual(errors(text("monitor = maybe")), ["test.ini:4: 'monitor' must be true or false, got 'maybe'"])
    }

    // MARK: Instance names

    func testInstanceNameCheckIsPublic() {
        for good in ["sluice", "a", "A-b_9", String(repeating: "x", count: 32)] {
            XCTAssertTrue(DataplaneConfig.isValidInstance(good), good)
            XCTAssertTrue(SluiceConfig.isValidInstance(good), good)
            XCTAssertNotNil(parseGood("[dataplane]\ninstance = \(good)\n"), good)
        }
        for bad in ["", "a.b", "a/b", "a b", "é", String(repeating: "x", count: 33)] {
            XCTAssertFalse(DataplaneConfig.isValidInstance(bad), bad)
            XCTAssertFalse(SluiceConfig.isValidInstance(bad), bad)
        }
        XCTAssertEqual(errors("[dataplane]\ninstance = a.b\n"), ["test.ini:2: bad 'instance' 'a.b': use 1 to 32 of A-Z a-z 0-9 _ -"])
    }
}
