import XCTest

@testable import Config

/// `[network]` sections and the router keys of their ports.
final class NetworkConfigTests: XCTestCase {
    private let contract = """
        [dataplane]
        state-dir = /var/lib/sluice

        [network prod]
        ports = vm1, vm2, host0
        ipv4-subnet = 10.0.0.0/24
        ipv6-prefix = fd00:1::/64
        dns = 10.0.0.53, fd00:1::53
        domain = prod.internal
        lease-time = 3600

        [port vm1]
        type = vhost-user
        socket = vm1.sock
        mac = 02:00:00:00:10:01
        ipv4 = 10.0.0.5
        ipv6 = fd00:1::5
        routed-prefixes = 192.168.50.0/24, fd00:99::/64

        [port vm2]
        type = vhost-user
        socket = vm2.sock

        [port host0]
        type = tap
        interface = sl-host0
        """

    func testTheContractExampleParses() throws {
        let c = try XCTUnwrap(parseGood(contract))
        XCTAssertEqual(c.dataplane.stateDirectory, "/var/lib/sluice")
        let n = try XCTUnwrap(c.networks.first)
        XCTAssertEqual(n.name, "prod")
        XCTAssertEqual(n.ports, ["vm1", "vm2", "host0"])
        XCTAssertEqual(n.ipv4Subnet?.description, "10.0.0.0/24")
        XCTAssertEqual(n.ipv6Prefix?.description, "fd00:1::/64")
        XCTAssertEqual(n.dns4.map(\.description), ["10.0.0.53"])
        XCTAssertEqual(n.dns6.map(\.description), ["fd00:1::53"])
        XCTAssertEqual(n.domain, "prod.internal")
        XCTAssertEqual(n.leaseTime, 3600)
        let vm1 = try XCTUnwrap(c.port(named: "vm1")).addressing
        XCTAssertEqual(vm1.ipv4?.description, "10.0.0.5")
        XCTAssertEqual(vm1.ipv6?.description, "fd00:1::5")
        XCTAssertEqual(vm1.routed4.map(\.description), ["192.168.50.0/24"])
        XCTAssertEqual(vm1.routed6.map(\.description), ["fd00:99::/64"])
        XCTAssertTrue(try XCTUnwrap(c.port(named: "vm2")).addressing.isEmpty)
    }

    func testDefaults() throws {
        let c = try XCTUnwrap(parseGood("""
            [network n]
            ports = a, b
            ipv6-prefix = fd00:2::/64
            [port a]
            type = tap
            interface = ta
            [port b]
            type = tap
            interface = tb
            """))
        XCTAssertEqual(c.networks[0].leaseTime, 86400)
        XCTAssertNil(c.networks[0].ipv4Subnet)
        XCTAssertEqual(c.dataplane.stateDirectory, "/run/sluice-state")
    }

    private func errors(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        parseBad(text, file: file, line: line).map(\.description)
    }

    private func replacing(_ old: String, with new: String) -> String {
        precondition(contract.contains(old))
        return contract.replacingOccurrences(of: old, with: new)
    }

    func testAddressesOutsideTheSubnetOrReserved() {
        XCTAssertTrue(errors(replacing("ipv4 = 10.0.0.5", with: "ipv4 = 10.0.1.5")).contains {
            $0.contains(":16:") && $0.contains("outside [network prod]'s ipv4-subnet 10.0.0.0/24")
        })
        XCTAssertTrue(errors(replacing("ipv4 = 10.0.0.5", with: "ipv4 = 10.0.0.255")).contains { $0.contains("broadcast") })
        XCTAssertTrue(errors(replacing("ipv6 = fd00:1::5", with: "ipv6 = fd00:2::5")).contains { $0.contains(":17:") && $0.contains("outside") })
        XCTAssertTrue(errors(replacing("ipv6 = fd00:1::5", with: "ipv6 = fd00:1::1")).contains { $0.contains("router") })
    }

    func testOneAddressForTwoPorts() {
        let e = errors(replacing("socket = vm2.sock", with: "socket = vm2.sock\nipv4 = 10.0.0.5"))
        XCTAssertTrue(e.contains { $0.contains(":23:") && $0.contains("already the address of port 'vm1' (line 16)") }, "\(e)")
    }

    func testOverlappingRoutedPrefixes() {
        var e = errors(replacing("socket = vm2.sock", with: "socket = vm2.sock\nrouted-prefixes = 192.168.50.128/25"))
        XCTAssertTrue(e.contains { $0.contains(":23:") && $0.contains("overlaps 192.168.50.0/24, routed to port 'vm1' (line 18)") }, "\(e)")
        e = errors(replacing("192.168.50.0/24", with: "10.0.0.0/25"))
        XCTAssertTrue(e.contains { $0.contains("overlaps [network prod]'s ipv4-subnet") }, "\(e)")
        e = errors(replacing("192.168.50.0/24", with: "192.168.50.1/24"))
        XCTAssertTrue(e.contains { $0.contains("host bits set; did you mean 192.168.50.0/24?") }, "\(e)")
    }

    func testAPortInANetworkAndASwitch() {
        let e = errors(contract + "\n[port x]\ntype = tap\ninterface = tx\n[switch s]\nports = vm2, x\n")
        XCTAssertTrue(e.contains { $0.contains("port 'vm2' is already attached to [network prod]") }, "\(e)")
    }

    func testRouterKeysOnlyOnNetworkPorts() {
        let e = errors("""
            [port a]
            type = tap
            interface = ta
            ipv4 = 10.0.0.1
            [port b]
            type = tap
            interface = tb
            [switch s]
            ports = a, b
            """)
        XCTAssertTrue(e.contains { $0.contains(":4:") && $0.contains("'ipv4' only applies to a port of a [network] (it is on [switch s])") }, "\(e)")
        let e2 = errors(replacing("ports = vm1, vm2, host0", with: "ports = vm1, vm2, host0\nvlan = 5"))
        XCTAssertTrue(e2.contains { $0.contains("unknown key 'vlan'") }, "\(e2)")
    }

    func testBadNetworkKeys() {
        XCTAssertTrue(errors(replacing("ipv4-subnet = 10.0.0.0/24", with: "ipv4-subnet = 10.0.0.1/24")).contains {
            $0.contains(":6:") && $0.contains("did you mean 10.0.0.0/24?")
        })
        XCTAssertTrue(errors(replacing("ipv6-prefix = fd00:1::/64", with: "ipv6-prefix = fe80::/64")).contains { $0.contains("link-local") })
        XCTAssertTrue(errors(replacing("dns = 10.0.0.53, fd00:1::53", with: "dns = 10.0.0.53, nameserver")).contains { $0.contains(":8:") })
        XCTAssertTrue(errors(replacing("domain = prod.internal", with: "domain = prod..internal")).contains { $0.contains(":9:") })
        XCTAssertTrue(errors(replacing("lease-time = 3600", with: "lease-time = 5")).contains { $0.contains(":10:") })
        let e = errors("""
            [network n]
            ports = a, b
            [port a]
            type = tap
            interface = ta
            [port b]
            type = tap
            interface = tb
            """)
        XCTAssertTrue(e.contains { $0.contains(":1:") && $0.contains("needs 'ipv4-subnet' or 'ipv6-prefix'") }, "\(e)")
    }
}
