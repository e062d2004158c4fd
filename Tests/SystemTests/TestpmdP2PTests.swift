// DPDK's dpdk-testpmd as both VMs of a p2p link (two net_virtio_user ports: generator and
// sink, closed loop): tools/peers/test-testpmd-p2p.sh checks traffic flows both ways and
// that testpmd's per-port counts agree with sluice's counters. Skipped (one line) without
// root, dpdk-testpmd or a built sluice.

import XCTest

final class TestpmdP2PTests: XCTestCase {
    private func run(_ arguments: [String]) throws {
        try Prerequisite.require([.root, .command("dpdk-testpmd", package: "dpdk"), .sluiceBinaries])
        let script = SystemTestEnvironment.repositoryRoot().appendingPathComponent("tools/peers/test-testpmd-p2p.sh").path
        let result = try ScriptRunner.run(script, arguments,
                                          environment: ["SLUICE_BIN_DIR": SystemTestEnvironment.binaryDirectory()],
                                          timeout: 90)
        if result.status == ScriptRunner.skipStatus {
            throw XCTSkip("system test skipped: \(result.line(startingWith: "SKIP:") ?? "missing prerequisite")")
        }
        XCTAssertFalse(result.timedOut, result.tail(40))
        XCTAssertEqual(result.status, 0, result.tail(40))
        XCTAssertNotNil(result.line(startingWith: "PASS:"), result.tail(40))
    }

    /// sluice listens, testpmd connects; busy polling; 64-byte frames.
    func testServerModeBusyPoll64() throws { try run(["--mode", "server", "--poll", "0"]) }

    /// testpmd listens (server=1), sluice connects; event mode (sleep on kicks).
    func testClientModeEventMode() throws { try run(["--mode", "client", "--poll", "event"]) }

    /// 1518-byte frames, polling every 50 µs.
    func testServerModeInterval1518() throws { try run(["--mode", "server", "--poll", "50", "--size", "1518"]) }
}
