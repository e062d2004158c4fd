// Real-peer test of the NVMe driver (issue #12): tools/guest/test-nvme.sh boots one q35 TCG
// guest with an emulated IOMMU and QEMU's NVMe controller (serial SN1234, two namespaces, a
// GPT on the first). In the guest the controller moves to vfio-pci and sluice, from the
// guest's initramfs, exports SN1234:n1, SN1234:n2, partition 2 of namespace 1 (by GUID) and a
// read-only SN1234:n2; sluice-gen blk writes and verifies patterns through the sockets in
// (a) busy poll with a restart on the re-initialised controller, (b) event mode with
// `sgl = off`, `interrupts = intx`, (c) event mode with MSI-X, and (d) `interrupts = msi` must
// be refused at start (the controller has no MSI). Then the kernel's nvme driver reads the
// ranges back, and the host finds exactly the patterns in the image files and nothing else
// changed. One guest boot serves every test here (the script runs once, its result is kept).
// Skipped (one line) without root, QEMU, sgdisk, cpio, python3 or built sluice binaries
// (SLUICE_BIN_DIR, default .build/debug, then .build/release).

import XCTest

final class NVMeVMTests: XCTestCase {
    /// The guest's own step limits add up to well under 10 minutes even when every step times
    /// out; a passing run takes about a minute under TCG.
    static let scriptTimeout = 780.0

    /// The script's one run, shared by the tests of this class (one guest boot in all).
    nonisolated(unsafe) private static var shared: ScriptResult?

    /// Busy poll, sgl on: both namespaces and the partition written and verified, the
    /// read-only export refuses a write, SIGTERM, restart, everything verified again.
    func testBusyPollNamespacesPartitionRestart() throws {
        let line = try passLine("a (")
        for part in ["n1 1024 KiB", "n2 1024 KiB", "p2 1024 KiB at", "(bs 1m)", "through /dev/nvme0n1",
                     "through /dev/nvme0n2", "write refused", "2 start(s)", "SIGTERM status 0",
                     "after the restart every range verified again"] {
            XCTAssertTrue(line.contains(part), "'\(part)' missing from: \(line)")
        }
    }

    /// Event mode with PRPs only (`sgl = off`) and INTx.
    func testEventModeIntxWithoutSGL() throws {
        let line = try passLine("b (")
        XCTAssertTrue(line.contains("p2 1024 KiB") && line.contains("write refused"), line)
    }

    /// Event mode with MSI-X.
    func testEventModeMSIX() throws {
        let line = try passLine("c (")
        XCTAssertTrue(line.contains("p2 1024 KiB") && line.contains("write refused"), line)
    }

    /// `interrupts = msi` on a controller without MSI: sluice exits non-zero naming MSI.
    func testMSIRefusedAtStart() throws {
        _ = try passLine("d (")
    }

    /// The guest moved the controller to vfio-pci and back to nvme with both namespaces, and
    /// nothing outside the written ranges changed (GPT, partition 1, refused write).
    func testGuestRebindAndUntouchedBytes() throws {
        let guest = try passLine("guest:")
        XCTAssertTrue(guest.contains("driver=vfio-pci dev=/dev/vfio/") && guest.contains("back on nvme with 2 namespaces"), guest)
        _ = try passLine("untouched:")
    }

    // MARK: - helpers

    /// The `PASS test-nvme <prefix>…` line; fails with the matching FAIL line (sluice's own
    /// error when it did not start) or the output's tail.
    private func passLine(_ prefix: String) throws -> String {
        let result = try scriptResult()
        XCTAssertFalse(result.timedOut, "test-nvme.sh ran past \(Self.scriptTimeout) s:\n\(result.tail(80))")
        if let pass = result.line(startingWith: "PASS test-nvme " + prefix) {
            print(pass)
            return pass
        }
        let failure = result.line(startingWith: "FAIL test-nvme " + prefix)
            ?? result.line(startingWith: "FAIL test-nvme all")
        throw ScriptFailure(description: failure.map { "\($0)\n\(result.tail(40))" }
                            ?? "no 'PASS test-nvme \(prefix)' line:\n\(result.tail(80))")
    }

    /// A missing PASS line, thrown so that the test fails with the script's own words.
    private struct ScriptFailure: Error, CustomStringConvertible {
        let description: String
    }

    private func scriptResult() throws -> ScriptResult {
        try Prerequisite.require(Prerequisite.realVM + [
            .command("sgdisk", package: "gdisk"), .command("cpio", package: "cpio"),
            .command("python3", package: "python3"),
        ])
        let bin = SystemTestEnvironment.binaryDirectory()
        guard SystemTestEnvironment.isExecutable(bin + "/sluice-gen") else {
            throw XCTSkip("system test skipped: no sluice-gen in \(bin) (run swift build, or set SLUICE_BIN_DIR)")
        }
        if let done = Self.shared { return done }
        let script = SystemTestEnvironment.repositoryRoot().appendingPathComponent("tools/guest/test-nvme.sh").path
        let result = try ScriptRunner.run(script, [], environment: ["SLUICE_BIN_DIR": bin], timeout: Self.scriptTimeout)
        if result.status == ScriptRunner.skipStatus {
            throw XCTSkip("system test skipped: \(result.line(startingWith: "SKIP:") ?? "script reported a missing prerequisite")")
        }
        Self.shared = result
        return result
    }
}
