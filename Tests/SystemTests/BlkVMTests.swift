// Real-guest tests of vhost-user-blk: tools/guest/test-blk.sh boots a QEMU guest (TCG) with
// vhost-user-blk-pci disks twice per backend. Boot 1 has three disks: a whole image written and
// read back by the guest (md5 = host image), partition 2 of a GPT image (exactly its size, its
// bytes, a write to its last block lands there and nothing else changes), and a read-only export
// (read matches, write refused, image unchanged). Boot 2 runs a write+verify loop while the
// backend is killed with SIGKILL and started again on the same socket (QEMU reconnect=1): every
// block verified, no I/O error in the guest. The same script runs against qemu-storage-daemon
// (the reference) and against sluice (`[disk]`/`[blk]` sections, plus serials, blk.* counters and
// a clean SIGTERM). Skipped (one line) without root, QEMU, sgdisk, qemu-storage-daemon (qsd) or a
// built sluice (sluice); SLUICE_BIN_DIR picks the binaries (default .build/debug, then
// .build/release).

import XCTest

final class BlkVMTests: XCTestCase {
    /// A run takes 30–40 s under TCG on an idle 2-core host (two boots, a 12 s I/O loop).
    static let scriptTimeout = 240.0

    /// qemu-storage-daemon as the backend: the checks themselves are sound against the reference.
    func testQemuStorageDaemonReference() throws {
        try Prerequisite.require([
            .root, .command("qemu-system-x86_64", package: "qemu-system-x86"),
            .command("qemu-storage-daemon", package: "qemu-system-common"), .command("sgdisk", package: "gdisk"),
        ])
        let result = try runBlkScript(backend: "qsd")
        try expectPass(result, backend: "qsd")
    }

    /// sluice as the backend: the same checks, the partition exported by its GPT GUID.
    func testSluiceBackend() throws {
        try Prerequisite.require(Prerequisite.realVM + [.command("sgdisk", package: "gdisk")])
        let result = try runBlkScript(backend: "sluice")
        try expectPass(result, backend: "sluice")
        XCTAssertTrue(result.output.contains("counters: vda wrote 262144 bytes"), result.tail(40))
        // Both runs (three disks, the loop disk after its restart) end with SIGTERM and status 0.
        XCTAssertEqual(result.output.components(separatedBy: "sluice stopped by SIGTERM").count - 1, 2,
                       result.tail(40))
    }

    // MARK: - helpers

    private func runBlkScript(backend: String) throws -> ScriptResult {
        let script = SystemTestEnvironment.repositoryRoot().appendingPathComponent("tools/guest/test-blk.sh").path
        let result = try ScriptRunner.run(script, ["--backend", backend],
                                          environment: ["SLUICE_BIN_DIR": SystemTestEnvironment.binaryDirectory()],
                                          timeout: Self.scriptTimeout)
        if result.status == ScriptRunner.skipStatus {
            throw XCTSkip("system test skipped: \(result.line(startingWith: "SKIP:") ?? "script reported a missing prerequisite")")
        }
        return result
    }

    private func expectPass(_ result: ScriptResult, backend: String) throws {
        XCTAssertFalse(result.timedOut, "test-blk.sh ran past \(Self.scriptTimeout) s:\n\(result.tail(80))")
        XCTAssertEqual(result.status, 0, "test-blk.sh --backend \(backend) failed:\n\(result.tail(80))")
        let pass = try XCTUnwrap(result.line(startingWith: "PASS "), "no PASS line:\n\(result.tail(80))")
        XCTAssertTrue(pass.hasPrefix("PASS test-blk \(backend) phase=all:"), pass)
        for part in ["= image", "partition 2: 49152 sectors, tail write in place, partition 1 and outside unchanged",
                     "read-only: read matches, write refused (guest ro=", "image unchanged", "kill -9 mid-loop",
                     "all read back intact afterwards, no I/O error"] {
            XCTAssertTrue(pass.contains(part), "'\(part)' missing from: \(pass)")
        }
        XCTAssertFalse(result.output.contains("FAIL:"), result.tail(80))
        print(pass)
    }
}
