// System tests of sluice's router with the Linux kernel as its clients: each client is a
// network namespace behind a tap port. Addresses come from the config (static) or from
// sluice's DHCP servers through Debian's dhclient; router advertisements are read with
// rdisc6. Skipped with one line when not root or a tool is missing.

import Foundation
import Stats
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class RouterNamespaceTests: XCTestCase {
    nonisolated(unsafe) private static var runs = 40

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

    /// A namespace client on tap `tap`: fixed MAC, the given /32 (if any), the gateway
    /// on-link and the default route through it — what the DHCP options say.
    private func client(_ lab: NamespaceLab, _ tap: String, in ns: String, mac: String, v4: String?) throws {
        try lab.sh("ip link set \(tap) netns \(ns) && ip -n \(ns) link set \(tap) address \(mac) && ip -n \(ns) link set \(tap) up")
        if let v4 {
            try lab.sh("ip -n \(ns) addr add \(v4)/32 dev \(tap) && ip -n \(ns) route add 169.254.0.1/32 dev \(tap)"
                       + " && ip -n \(ns) route add default via 169.254.0.1 dev \(tap)")
        }
    }

    private func networkBody(_ taps: [String: String], extra: String = "") -> String {
        var body = """
            [network prod]
            ports = a, b
            ipv4-subnet = 10.0.0.0/24
            ipv6-prefix = fd00:1::/64
            dns = 10.0.0.53, fd00:1::53
            domain = prod.internal
            lease-time = 600

            [port a]
            type = tap
            interface = \(taps["a"]!)
            mac = 02:00:00:00:10:01
            ipv4 = 10.0.0.5

            [port b]
            type = tap
            interface = \(taps["b"]!)
            mac = 02:00:00:00:10:02
            ipv4 = 10.0.0.6
            ipv6 = fd00:1::6
            routed-prefixes = 192.168.50.0/24

            """
        body += extra
        return body
    }

    /// Static addresses: the gateway answers ARP and ping, the two clients reach each other
    /// only through the router (TTL decremented), a routed prefix behind b is reachable,
    /// a spoofed source is dropped and counted, a client of another network cannot reach them,
    /// and the counters add up.
    func testStaticClientsRouteThroughTheGatewayAndAreIsolated() throws {
        let lab = try makeLab()
        let a = try lab.namespace("A"), b = try lab.namespace("B"), c = try lab.namespace("C")
        let ta = lab.ifname("ra"), tb = lab.ifname("rb"), tc = lab.ifname("rc")
        try lab.start(networkBody(["a": ta, "b": tb], extra: """
            [network other]
            ports = c
            ipv4-subnet = 10.0.0.0/24

            [port c]
            type = tap
            interface = \(tc)
            mac = 02:00:00:00:20:01
            ipv4 = 10.0.0.7
            """), taps: [ta, tb, tc], readyCounter: "network.prod.leases")
        try client(lab, ta, in: a, mac: "02:00:00:00:10:01", v4: "10.0.0.5")
        try client(lab, tb, in: b, mac: "02:00:00:00:10:02", v4: "10.0.0.6")
        try client(lab, tc, in: c, mac: "02:00:00:00:20:01", v4: "10.0.0.7")
        try lab.sh("ip -n \(b) addr add 192.168.50.1/32 dev lo")

        XCTAssertTrue(lab.canReach(a, "169.254.0.1"), "the gateway answers ARP and echo\n\(lab.countersLine())")
        XCTAssertTrue(lab.canReach(a, "10.0.0.6"), "a reaches b through the router\n\(lab.countersLine())")
        XCTAssertTrue(lab.canReach(b, "10.0.0.5"))
        XCTAssertTrue(lab.canReach(a, "192.168.50.1"), "a prefix routed to b")
        // One hop: the router decrements the TTL (64 → 63 at b's reply to a).
        let ttl = try lab.sh("ip netns exec \(a) ping -n -c 1 -W 2 10.0.0.6").output
        XCTAssertTrue(ttl.contains("ttl=63"), ttl)
        // Isolation: c has the same address space in another network.
        XCTAssertTrue(lab.cannotReach(c, "10.0.0.5"))
        XCTAssertTrue(lab.canReach(c, "169.254.0.1"), "c's own gateway answers")
        // Spoofing: a source address a does not own.
        let before = try lab.counter("port.a.drop.spoofed_src")
        try lab.sh("ip -n \(a) addr add 10.0.0.99/32 dev \(ta)")
        XCTAssertTrue(lab.cannotReach(a, "10.0.0.6 -I 10.0.0.99"))
        XCTAssertGreaterThan(try lab.counter("port.a.drop.spoofed_src"), before)
        XCTAssertGreaterThan(try lab.counter("network.prod.routed_packets"), 0)
        XCTAssertGreaterThan(try lab.counter("network.prod.arp.replies"), 0)
        // Every frame a port sent in ended as a send or a drop reason.
        usleep(300_000)
        let s = try lab.snapshot()
        func v(_ n: String) -> UInt64 { s.value(n) ?? 0 }
        func drops(_ p: String) -> UInt64 { s.entries.filter { $0.name.hasPrefix("port.\(p).drop.") }.reduce(0) { $0 + $1.value } }
        // Frames the services built (RAs, DHCP and ND answers) are sent without being received.
        let injected = ["ra.sent", "nd.adverts", "nd.solicits", "dhcp4.offer", "dhcp4.ack", "dhcp4.nak", "dhcp6.advertise", "dhcp6.reply"]
            .reduce(0) { $0 + v("network.prod.\($1)") }
        let taken = v("port.a.rx_packets") + v("port.b.rx_packets") + injected
        let accounted = v("port.a.tx_packets") + v("port.b.tx_packets") + drops("a") + drops("b") + v("network.prod.punted")
        XCTAssertEqual(taken, accounted, "rx + built = tx + drops + punted\n\(lab.countersLine())")
        try lab.stopAndCheck()
    }

    /// DHCPv4 with dhclient: a client without a static address gets one from the subnet,
    /// a /32 with option 121 routes, DNS, domain and MTU; the lease survives a restart.
    func testDHCPv4GivesAClientItsAddressAndRoutes() throws {
        let lab = try makeLab(needs: [.command("dhclient", package: "isc-dhcp-client")])
        let a = try lab.namespace("A"), b = try lab.namespace("B")
        let ta = lab.ifname("ra"), tb = lab.ifname("rb")
        var body = networkBody(["a": ta, "b": tb])
        body = body.replacingOccurrences(of: "ipv4 = 10.0.0.5\n", with: "")

        try lab.start(body, taps: [ta, tb], readyCounter: "network.prod.leases", dataplane: "state-dir = \(lab.dir)/state")
        try client(lab, ta, in: a, mac: "02:00:00:00:10:01", v4: nil)
        try client(lab, tb, in: b, mac: "02:00:00:00:10:02", v4: "10.0.0.6")
        let script = lab.dir + "/dhclient-script"
        try "#!/bin/sh\nenv | grep -E '^(reason|new_)' | sort > \(lab.dir)/lease-$reason.env\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        // dhclient in the foreground (-d), stopped once it has bound (its daemon mode would
        // outlive the test's process bookkeeping).
        let client = try lab.background("ip", ["netns", "exec", a, "dhclient", "-d", "-4", "-1", "-v", "-sf", script,
                                               "-lf", lab.dir + "/dhclient.leases", "-pf", lab.dir + "/dhclient.pid", ta], log: "dhclient.log")
        _ = lab.eventually(timeout: 20) { FileManager.default.fileExists(atPath: lab.dir + "/lease-BOUND.env") }
        usleep(100_000)
        client.interrupt()
        let r = (output: client.output(), 0)
        let env = (try? String(contentsOfFile: lab.dir + "/lease-BOUND.env", encoding: .utf8)) ?? ""
        XCTAssertTrue(env.contains("new_ip_address=10.0.0."), "dhclient: \(r.output)\n\(env)\n\(lab.countersLine())")
        XCTAssertTrue(env.contains("new_subnet_mask=255.255.255.255"), env)
        XCTAssertTrue(env.contains("new_routers=169.254.0.1"), env)
        XCTAssertTrue(env.contains("new_domain_name=prod.internal"), env)
        XCTAssertTrue(env.contains("new_domain_name_servers=10.0.0.53"), env)
        XCTAssertTrue(env.contains("new_rfc3442_classless_static_routes=32 169 254 0 1 0 0 0 0 0 169 254 0 1"), env)
        XCTAssertTrue(env.contains("new_dhcp_lease_time=600"), env)
        let address = env.split(separator: "\n").first { $0.hasPrefix("new_ip_address=") }.map { String($0.dropFirst(15)) } ?? ""
        // Apply it as a client script would, then route through the gateway to b.
        try lab.sh("ip -n \(a) addr add \(address)/32 dev \(ta) && ip -n \(a) route add 169.254.0.1/32 dev \(ta)"
                   + " && ip -n \(a) route add default via 169.254.0.1 dev \(ta)")
        XCTAssertTrue(lab.canReach(a, "10.0.0.6"), "the bound address is routed\n\(lab.countersLine())")
        XCTAssertGreaterThanOrEqual(try lab.counter("network.prod.dhcp4.ack"), 1)
        XCTAssertEqual(try lab.counter("network.prod.leases"), 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: lab.dir + "/state/leases-prod"), "the lease persists")
        try lab.stopAndCheck()
    }

    /// Router advertisements (rdisc6): M and O set, the prefix neither on-link nor
    /// autonomous, MTU, RDNSS and DNSSL; DHCPv6 (dhclient -6) hands out an address of the prefix.
    func testRouterAdvertisementAndDHCPv6() throws {
        let lab = try makeLab(needs: [.command("rdisc6", package: "ndisc6"), .command("dhclient", package: "isc-dhcp-client")])
        let a = try lab.namespace("A"), b = try lab.namespace("B")
        let ta = lab.ifname("ra"), tb = lab.ifname("rb")
        try lab.start(networkBody(["a": ta, "b": tb]), taps: [ta, tb], readyCounter: "network.prod.leases",
                      dataplane: "state-dir = \(lab.dir)/state")
        try client(lab, ta, in: a, mac: "02:00:00:00:10:01", v4: "10.0.0.5")
        try lab.sh("ip netns exec \(a) sysctl -qw net.ipv6.conf.\(ta).accept_dad=0 net.ipv6.conf.\(ta).disable_ipv6=0")
        // The link-local address must exist (not tentative) before rdisc6 can send from it.
        _ = lab.eventually(timeout: 5) {
            let out = (try? lab.sh("ip -n \(a) -6 addr show dev \(ta) scope link", check: false).output) ?? ""
            return out.contains("fe80") && !out.contains("tentative")
        }
        var ra = ""
        for _ in 0..<3 where !ra.contains("Stateful") {
            ra = try lab.sh("ip netns exec \(a) rdisc6 -1 -w 2000 \(ta)", timeout: 15, check: false).output
        }
        XCTAssertTrue(ra.range(of: #"Stateful address conf\.\s*:\s*Yes"#, options: .regularExpression) != nil, ra)
        XCTAssertTrue(ra.range(of: #"Stateful other conf\.\s*:\s*Yes"#, options: .regularExpression) != nil, ra)
        XCTAssertTrue(ra.contains("fd00:1::/64"), ra)
        XCTAssertTrue(ra.range(of: #"On-link\s*:\s*No"#, options: .regularExpression) != nil, ra)
        XCTAssertTrue(ra.range(of: #"Autonomous address conf\.\s*:\s*No"#, options: .regularExpression) != nil, ra)
        XCTAssertTrue(ra.contains("fd00:1::53"), "RDNSS\n\(ra)")
        XCTAssertTrue(ra.contains("prod.internal"), "DNSSL\n\(ra)")
        XCTAssertTrue(ra.range(of: #"MTU\s*:\s*1500"#, options: .regularExpression) != nil, ra)
        XCTAssertTrue(lab.canReach(a, "fe80::1%\(ta)"), "the router answers echo on fe80::1")

        let script = lab.dir + "/dhclient6-script"
        try "#!/bin/sh\nenv | grep -E '^(reason|new_)' | sort > \(lab.dir)/lease6-$reason.env\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let dhc = try lab.background("ip", ["netns", "exec", a, "dhclient", "-d", "-6", "-1", "-v", "-sf", script,
                                               "-lf", lab.dir + "/dhclient6.leases", "-pf", lab.dir + "/dhclient6.pid", ta], log: "dhclient6.log")
        _ = lab.eventually(timeout: 20) { FileManager.default.fileExists(atPath: lab.dir + "/lease6-BOUND6.env") }
        usleep(100_000)
        dhc.interrupt()
        let r = (output: dhc.output(), 0)
        let env = (try? String(contentsOfFile: lab.dir + "/lease6-BOUND6.env", encoding: .utf8)) ?? ""
        XCTAssertTrue(env.contains("new_ip6_address=fd00:1::"), "dhclient -6: \(r.output)\n\(env)\n\(lab.countersLine())")
        XCTAssertTrue(env.contains("new_dhcp6_name_servers=fd00:1::53"), env)
        XCTAssertGreaterThanOrEqual(try lab.counter("network.prod.dhcp6.reply"), 1)
        // Routed over IPv6: a's DHCPv6 address to b's static one, through fe80::1.
        let address = env.split(separator: "\n").first { $0.hasPrefix("new_ip6_address=") }.map { String($0.dropFirst(16)) } ?? ""
        try client(lab, tb, in: b, mac: "02:00:00:00:10:02", v4: "10.0.0.6")
        try lab.sh("ip netns exec \(b) sysctl -qw net.ipv6.conf.\(tb).accept_dad=0 net.ipv6.conf.\(tb).disable_ipv6=0"
                   + " && ip -n \(b) addr add fd00:1::6/128 dev \(tb) nodad && ip -n \(b) route replace default via fe80::1 dev \(tb)")
        try lab.sh("ip -n \(a) addr add \(address)/128 dev \(ta) nodad && ip -n \(a) route replace default via fe80::1 dev \(ta)")
        XCTAssertTrue(lab.canReach(a, "fd00:1::6"), "a reaches b over IPv6 through the router\n\(lab.countersLine())")
        let hop = try lab.sh("ip netns exec \(a) ping -n -c 1 -W 2 fd00:1::6", check: false).output
        XCTAssertTrue(hop.contains("ttl=63"), "one hop: hop limit decremented\n\(hop)")
        try lab.stopAndCheck()
    }


    /// A frame with another source MAC than the port's (configured) one is dropped as
    /// spoofed; the DHCP lease of a client survives a restart of sluice (same state-dir):
    /// the same MAC gets the same address, and `sluice-stat --leases` lists it.
    func testSpoofedMACAndLeasesKeptAcrossARestart() throws {
        let lab = try makeLab(needs: [.command("dhclient", package: "isc-dhcp-client"), .command("python3", package: "python3")])
        let a = try lab.namespace("A"), b = try lab.namespace("B")
        let ta = lab.ifname("ra"), tb = lab.ifname("rb")
        let body = networkBody(["a": ta, "b": tb]).replacingOccurrences(of: "ipv4 = 10.0.0.5\n", with: "")
        let dataplane = "state-dir = \(lab.dir)/state"
        try lab.start(body, taps: [ta, tb], readyCounter: "network.prod.leases", dataplane: dataplane)
        try client(lab, ta, in: a, mac: "02:00:00:00:10:01", v4: nil)
        try client(lab, tb, in: b, mac: "02:00:00:00:10:02", v4: "10.0.0.6")

        let sender = SystemTestEnvironment.repositoryRoot().path + "/tools/netns/send-frames.py"
        try lab.sh("ip netns exec \(a) python3 \(sender) \(ta) ff:ff:ff:ff:ff:ff 5 02:00:00:00:99:99")
        XCTAssertTrue(lab.eventually { (try? lab.counter("port.a.drop.spoofed_src")) ?? 0 >= 5 }, lab.countersLine())

        func lease(_ tag: String) throws -> String {
            let script = lab.dir + "/script-\(tag)"
            try "#!/bin/sh\nenv | grep -E '^(reason|new_)' | sort > \(lab.dir)/\(tag)-$reason.env\n"
                .write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
            let client = try lab.background("ip", ["netns", "exec", a, "dhclient", "-d", "-4", "-1", "-sf", script,
                                                   "-lf", lab.dir + "/\(tag).leases", "-pf", lab.dir + "/\(tag).pid", ta], log: "\(tag).log")
            _ = lab.eventually(timeout: 20) { FileManager.default.fileExists(atPath: lab.dir + "/\(tag)-BOUND.env") }
            usleep(100_000)
            client.interrupt()
            let env = (try? String(contentsOfFile: lab.dir + "/\(tag)-BOUND.env", encoding: .utf8)) ?? ""
            return env.split(separator: "\n").first { $0.hasPrefix("new_ip_address=") }.map { String($0.dropFirst(15)) } ?? ""
        }
        let first = try lease("first")
        XCTAssertTrue(first.hasPrefix("10.0.0."), "no lease: \(lab.countersLine())\n\(lab.daemonLog())")
        let stat = try lab.sh("\(SystemTestEnvironment.binaryDirectory())/sluice-stat --instance \(lab.instance) --leases prod --json").output
        XCTAssertTrue(stat.contains(first) && stat.contains("02:00:00:00:10:01"), stat)

        try lab.stopAndCheck()
        // The tap is in a's namespace now: sluice attaches to it there? No — it is created anew in the
        // root namespace; move the new one in as before.
        try lab.sh("ip -n \(a) link del \(ta)", check: false)
        try lab.sh("ip -n \(b) link del \(tb)", check: false)
        try lab.start(body, taps: [ta, tb], readyCounter: "network.prod.leases", dataplane: dataplane)
        XCTAssertEqual(try lab.counter("network.prod.leases"), 1, "the lease file was read back")
        try client(lab, ta, in: a, mac: "02:00:00:00:10:01", v4: nil)
        let second = try lease("second")
        XCTAssertEqual(second, first, "the same MAC gets the same address after a restart")
        try lab.stopAndCheck()
    }
}
