import Config
import XCTest
@testable import Services

/// DHCPv6 requests built by scapy, answered by the server, the replies parsed and checked by
/// scapy (tools/scapy/dhcp6.py): SOLICIT with and without rapid commit, REQUEST, RENEW,
/// REBIND, CONFIRM, INFORMATION-REQUEST, RELEASE, DECLINE, unicast, and malformed messages.
final class DHCPv6ScapyTests: XCTestCase {
    func testRepliesConformPerScapy() throws {
        let leases = DHCPv6MemoryLeases(prefix: V6Fixture.prefix)
        let server = DHCPv6Server(network: V6Fixture.network, leases: leases, serverDUID: V6Fixture.serverDUID)
        let result = try V6Scapy.conformance(script: "dhcp6") { _, frame, i in
            server.handle(frame, port: V6Fixture.port, now: 1000 + UInt64(i) * 10)
        }
        XCTAssertEqual(result.status, 0, result.output)
    }
}
