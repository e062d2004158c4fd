import Config
import XCTest
@testable import Services

/// Router and Neighbor Solicitations built by scapy, answered by the NDP responder, the
/// replies parsed and checked by scapy (tools/scapy/ndp.py): RA flags M/O, prefix L/A clear,
/// MTU, RDNSS and DNSSL; NA flags and target link-layer address; DAD; invalid messages.
final class NDPScapyTests: XCTestCase {
    func testRepliesConformPerScapy() throws {
        let nd = NDPResponder(network: V6Fixture.network)
        let result = try V6Scapy.conformance(script: "ndp") { _, frame, i in
            nd.handle(frame, port: V6Fixture.port, now: 1000 + UInt64(i) * 10)
        }
        XCTAssertEqual(result.status, 0, result.output)
    }
}
