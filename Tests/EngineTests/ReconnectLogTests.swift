import XCTest

@testable import Engine

/// The rate limit of client-mode connect failures: the first of a series, then
/// at most one line every 30 s, and the attempt count once connected.
final class ReconnectLogTests: XCTestCase {
    func testFirstFailureThenEveryThirtySeconds() {
        var log = ReconnectLog()
        let s: UInt64 = 1_000_000_000
        XCTAssertEqual(log.failed(now: 100 * s), .first)
        XCTAssertEqual(log.failed(now: 101 * s), .quiet)
        XCTAssertEqual(log.failed(now: 129 * s), .quiet)
        XCTAssertEqual(log.failed(now: 130 * s), .still(attempts: 4))
        XCTAssertEqual(log.failed(now: 131 * s), .quiet)
        XCTAssertEqual(log.failed(now: 160 * s), .still(attempts: 6))
        XCTAssertEqual(log.connected(), 7, "six failures and the connect that worked")
        // A new series after a disconnect starts with a line again.
        XCTAssertEqual(log.failed(now: 161 * s), .first)
        XCTAssertEqual(log.connected(), 2)
        XCTAssertEqual(log.connected(), 1, "connected at the first try")
    }
}
