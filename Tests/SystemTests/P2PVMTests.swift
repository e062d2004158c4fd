// Real-VM tests of sluice's p2p link: tools/guest/test-sluice-p2p.sh boots two QEMU guests
// (TCG) on two vhost-user ports joined by a p2p link, pings between them, resets a guest,
// restarts sluice, and checks sluice-stat's counters. Each test runs the script once and
// checks its exit status and its summary line. Skipped (one line) without root, QEMU or a
// built sluice; SLUICE_BIN_DIR picks the binaries (default .build/debug, then .build/release).

import XCTest

final class P2PVMTests: XCTestCase {
    /// A run takes 40–140 s under TCG (more on a loaded host); the two runs aim at ~4 minutes.
    static let scriptTimeout = 300.0

    /// Server mode (QEMU connects, reconnect=1), busy poll: first ping, guest reset, then
    /// sluice SIGTERM with both front-ends connected and a restart polling every 100 µs;
    /// counters after each step.
    func testServerModeBusyPollPingResetRestart() throws {
        let result = try runP2PScript(["--mode", "server", "--phase", "all", "--poll-arg", "0",
                                       "--restart-poll-arg", "100"])
        try expectPass(result, mode: "server", poll: "poll=0 restart-poll=100", phase: "all")
        XCTAssertTrue(result.output.contains("reset: ping back after"), result.tail(40))
        XCTAssertTrue(result.output.contains("restart: stop"), result.tail(40))
        // restart + final stop: both exit 0 quickly and leave nothing behind.
        XCTAssertEqual(count("sluice stopped by SIGTERM", in: result.output), 2, result.tail(40))
    }

    /// Client mode (QEMU listens, sluice connects with backoff), event mode: sluice starts
    /// 2 s before the guests exist; then guest reset, and sluice restarted mid-ping.
    func testClientModeEventModePingResetRestart() throws {
        let result = try runP2PScript(["--mode", "client", "--phase", "all", "--poll-arg", "event"])
        try expectPass(result, mode: "client", poll: "event", phase: "all")
        XCTAssertTrue(result.output.contains("reset: ping back after"), result.tail(40))
        XCTAssertTrue(result.output.contains("restart: stop"), result.tail(40))
        XCTAssertEqual(count("sluice stopped by SIGTERM", in: result.output), 2, result.tail(40))
    }

    // MARK: - helpers

    private func runP2PScript(_ arguments: [String]) throws -> ScriptResult {
        try Prerequisite.require(Prerequisite.realVM)
        let script = SystemTestEnvironment.repositoryRoot()
            .appendingPathComponent("tools/guest/test-sluice-p2p.sh").path
        let result = try ScriptRunner.run(script, arguments,
                                          environment: ["SLUICE_BIN_DIR": SystemTestEnvironment.binaryDirectory()],
                                          timeout: Self.scriptTimeout)
        if result.status == ScriptRunner.skipStatus {
            throw XCTSkip("system test skipped: \(result.line(startingWith: "SKIP:") ?? "script reported a missing prerequisite")")
        }
        return result
    }

    private func expectPass(_ result: ScriptResult, mode: String, poll: String, phase: String) throws {
        XCTAssertFalse(result.timedOut, "test-sluice-p2p.sh ran past \(Self.scriptTimeout) s:\n\(result.tail(80))")
        XCTAssertEqual(result.status, 0, "test-sluice-p2p.sh failed:\n\(result.tail(80))")
        let pass = try XCTUnwrap(result.line(startingWith: "PASS "), "no PASS line:\n\(result.tail(80))")
        XCTAssertTrue(pass.contains("mode=\(mode) \(poll) phase=\(phase)"), pass)
        XCTAssertTrue(pass.contains("first PING-OK at"), pass)
        XCTAssertFalse(result.output.contains("FAIL:"), result.tail(80))
        print(pass)
    }

    private func count(_ needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }
}
