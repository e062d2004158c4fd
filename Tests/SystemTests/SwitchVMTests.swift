// Real-VM tests of sluice's learning switch: tools/guest/test-sluice-switch.sh boots two QEMU
// guests (TCG) on vhost-user ports vm1/vm2 of `[switch br0]`, whose third port host0 is a tap
// moved into a network namespace; it checks that all three stations reach each other, that
// `sluice-stat --fdb br0` has each MAC on its port, that a guest reset flushes vm1's MAC and it
// is learned again, and that SIGTERM leaves nothing behind. Each test runs the script once and
// checks its exit status and its summary line. Skipped (one line) without root, QEMU or a
// built sluice; SLUICE_BIN_DIR picks the binaries (default .build/debug, then .build/release).

import XCTest

final class SwitchVMTests: XCTestCase {
    /// A run takes 50–60 s under TCG on a loaded 2-core host (one boot plus one reboot).
    static let scriptTimeout = 240.0

    /// Busy poll on one core: reach, fdb, guest reset mid-traffic, SIGTERM.
    func testSwitchBusyPollReachFdbResetStop() throws {
        try runAndExpectPass(["--poll-arg", "0"], poll: "poll=0")
    }

    /// The same in event mode (no --poll): the workers sleep in epoll between frames.
    func testSwitchEventModeReachFdbResetStop() throws {
        try runAndExpectPass(["--poll-arg", "event"], poll: "event")
    }

    // MARK: - helpers

    private func runAndExpectPass(_ arguments: [String], poll: String) throws {
        try Prerequisite.require(Prerequisite.realVM)
        let script = SystemTestEnvironment.repositoryRoot()
            .appendingPathComponent("tools/guest/test-sluice-switch.sh").path
        let result = try ScriptRunner.run(script, arguments,
                                          environment: ["SLUICE_BIN_DIR": SystemTestEnvironment.binaryDirectory()],
                                          timeout: Self.scriptTimeout)
        if result.status == ScriptRunner.skipStatus {
            throw XCTSkip("system test skipped: \(result.line(startingWith: "SKIP:") ?? "script reported a missing prerequisite")")
        }
        XCTAssertFalse(result.timedOut, "test-sluice-switch.sh ran past \(Self.scriptTimeout) s:\n\(result.tail(80))")
        XCTAssertEqual(result.status, 0, "test-sluice-switch.sh failed:\n\(result.tail(80))")
        let pass = try XCTUnwrap(result.line(startingWith: "PASS "), "no PASS line:\n\(result.tail(80))")
        XCTAssertTrue(pass.hasPrefix("PASS test-sluice-switch \(poll):"), pass)
        for part in ["reach: A->B,A->ns at", "fdb: 3 MACs on vm1/vm2/host0", "reset: flushed",
                     "on vm1 after", "status 0, nothing left"] {
            XCTAssertTrue(pass.contains(part), "'\(part)' missing from: \(pass)")
        }
        XCTAssertFalse(result.output.contains("FAIL:"), result.tail(80))
        XCTAssertEqual(count("sluice stopped by SIGTERM", in: result.output), 1, result.tail(40))
        print(pass)
    }

    private func count(_ needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }
}
