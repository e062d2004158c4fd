// The README's "Attaching a QEMU VM" recipes: tools/guest/test-attach-recipe.sh boots the
// server-mode QEMU command line from the README (socket directory, disk, accelerator and
// MSI-X vectors replaced; see the script) against sluice on the README's INI, and attaches
// dpdk-testpmd with the port's MAC. The libvirt domains in Configs/libvirt validate against
// libvirt's schema. Each test skips with one line when its peer program is missing.

import Foundation
import XCTest

final class AttachRecipeTests: XCTestCase {
    /// The README's QEMU line boots (TCG, ~6–30 s), its virtio-net comes up with the
    /// README's MAC, frames cross the p2p link, and QEMU prints no PROTOCOL_F_CONFIG warning.
    func testReadmeQemuServerLineRunsAsWritten() throws {
        let pass = try runRecipe("qemu", needs: [.root, .command("qemu-system-x86_64", package: "qemu-system-x86"),
                                                 .sluiceBinaries], timeout: 120)
        XCTAssertTrue(pass.contains("guest NET-UP mac=02:00:00:00:00:01"), pass)
        XCTAssertTrue(pass.contains("no PROTOCOL_F_CONFIG warning"), pass)
    }

    /// DPDK's virtio-user on the README's port vm1 with `mac=`: testpmd's port has that MAC
    /// and sluice accepted every message.
    func testTestpmdGetsThePortMAC() throws {
        let pass = try runRecipe("testpmd", needs: [.root, .command("dpdk-testpmd", package: "dpdk"), .sluiceBinaries],
                                 timeout: 60)
        XCTAssertTrue(pass.contains("MAC 02:00:00:00:00:01 (= port vm1 mac)"), pass)
    }

    /// `virt-xml-validate FILE domain` accepts every domain in Configs/libvirt, and rejects a
    /// broken copy (so a pass means the schema was really checked).
    func testLibvirtDomainsValidate() throws {
        try Prerequisite.require([.command("virt-xml-validate", package: "libvirt-clients"),
                                  .command("xmllint", package: "libxml2-utils")])
        let dir = SystemTestEnvironment.repositoryRoot().appendingPathComponent("Configs/libvirt")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".xml") }.sorted()
        XCTAssertEqual(files, ["vm-client.xml", "vm-hugepages.xml", "vm-server.xml"])
        for file in files {
            let path = dir.appendingPathComponent(file).path
            let result = try ScriptRunner.run(try validator(), [path, "domain"], timeout: 30)
            XCTAssertEqual(result.status, 0, "\(file): \(result.output)")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            XCTAssertTrue(text.contains("<access mode='shared'/>"), "\(file): guest RAM must be shared with sluice")
            XCTAssertTrue(text.contains("<interface type='vhostuser'>"), file)
        }
        let server = try String(contentsOf: dir.appendingPathComponent("vm-server.xml"), encoding: .utf8)
        XCTAssertTrue(server.contains("path='/run/sluice/vm1.sock' mode='client'"), "sluice mode = server: QEMU is the client")
        let client = try String(contentsOf: dir.appendingPathComponent("vm-client.xml"), encoding: .utf8)
        XCTAssertTrue(client.contains("path='/run/sluice/vm2.sock' mode='server'"), "sluice mode = client: QEMU listens")

        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-broken-\(getpid()).xml")
        defer { try? FileManager.default.removeItem(at: broken) }
        try server.replacingOccurrences(of: "<model type='virtio'/>", with: "<model type='virtio'/><bogus/>")
            .write(to: broken, atomically: true, encoding: .utf8)
        let bad = try ScriptRunner.run(try validator(), [broken.path, "domain"], timeout: 30)
        XCTAssertNotEqual(bad.status, 0, "virt-xml-validate accepted an unknown element: \(bad.output)")
    }

    // MARK: - helpers

    private func validator() throws -> String {
        try XCTUnwrap(SystemTestEnvironment.which("virt-xml-validate"))
    }

    /// Runs test-attach-recipe.sh --case NAME; returns its PASS line.
    private func runRecipe(_ name: String, needs: [Prerequisite], timeout: Double) throws -> String {
        try Prerequisite.require(needs)
        let script = SystemTestEnvironment.repositoryRoot().appendingPathComponent("tools/guest/test-attach-recipe.sh").path
        let result = try ScriptRunner.run(script, ["--case", name],
                                          environment: ["SLUICE_BIN_DIR": SystemTestEnvironment.binaryDirectory()],
                                          timeout: timeout)
        if result.status == ScriptRunner.skipStatus {
            throw XCTSkip("system test skipped: \(result.line(startingWith: "SKIP:") ?? "missing prerequisite")")
        }
        XCTAssertFalse(result.timedOut, "test-attach-recipe.sh --case \(name) ran past \(timeout) s:\n\(result.tail(60))")
        XCTAssertEqual(result.status, 0, "test-attach-recipe.sh --case \(name) failed:\n\(result.tail(60))")
        let pass = try XCTUnwrap(result.line(startingWith: "PASS "), "no PASS line:\n\(result.tail(60))")
        print(pass)
        return pass
    }
}
