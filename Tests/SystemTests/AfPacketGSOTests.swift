// System test of an af-packet port on a veth with the kernel's default offloads on:
// tools/peers/test-afpacket-gso.sh puts a namespace behind a tap port and one behind the
// veth, on `[switch br0]`, and runs iperf3 TCP both ways (the veth peer's stack sends
// partial checksums and 64 KiB TSO super-frames, which sluice completes and segments).
// Skipped (one line) without root, iperf3 or a built sluice; SLUICE_BIN_DIR picks the
// binaries (default .build/debug, then .build/release).

import XCTest

final class AfPacketGSOTests: XCTestCase {
    static let scriptTimeout = 90.0

    func testIperf3BothWaysThroughVethWithOffloads() throws {
        try Prerequisite.require([.root, .command("iperf3", package: "iperf3"), .sluiceBinaries])
        let script = SystemTestEnvironment.repositoryRoot()
            .appendingPathComponent("tools/peers/test-afpacket-gso.sh").path
        let result = try ScriptRunner.run(script, ["--seconds", "3"],
                                          environment: ["SLUICE_BIN_DIR": SystemTestEnvironment.binaryDirectory()],
                                          timeout: Self.scriptTimeout)
        if result.status == ScriptRunner.skipStatus {
            throw XCTSkip("system test skipped: \(result.line(startingWith: "SKIP:") ?? "script reported a missing prerequisite")")
        }
        XCTAssertFalse(result.timedOut, "test-afpacket-gso.sh ran past \(Self.scriptTimeout) s:\n\(result.tail(40))")
        XCTAssertEqual(result.status, 0, "test-afpacket-gso.sh failed:\n\(result.tail(40))")
        let pass = try XCTUnwrap(result.line(startingWith: "PASS "), "no PASS line:\n\(result.tail(40))")
        for part in ["iperf3 TCP A->B", "B->A", "drop.bad_length 0"] {
            XCTAssertTrue(pass.contains(part), "'\(part)' missing from: \(pass)")
        }
        print(pass)
    }
}
