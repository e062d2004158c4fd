// What `sluice --check` (and so start-up) says about blk exports it cannot run: a disk
// file that cannot be used, a partition GUID on no disk, the same GUID on two disks.
// Each error names the config line.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class BlkCheckTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        try Prerequisite.require([.sluiceBinaries, .command("sgdisk", package: "gdisk")])
        dir = NSTemporaryDirectory() + "sluice-blkcheck-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func gptImage(_ name: String, uuid: String) throws -> String {
        let path = dir + "/" + name
        FileManager.default.createFile(atPath: path, contents: nil)
        XCTAssertEqual(truncate(path, 8 << 20), 0)
        let r = try ScriptRunner.run(SystemTestEnvironment.which("sgdisk")!, ["-n", "1:2048:+2M", "-u", "1:\(uuid)", path], timeout: 30)
        XCTAssertEqual(r.status, 0, r.output)
        return path
    }

    private func check(_ body: String) throws -> ScriptResult {
        let config = dir + "/c.ini"
        try ("[dataplane]\nsocket-dir = \(dir)\n" + body).write(toFile: config, atomically: true, encoding: .utf8)
        return try ScriptRunner.run(SystemTestEnvironment.binaryDirectory() + "/sluice", ["--check", "--config", config], timeout: 30)
    }

    func testPartitionLookupAndUnusableDisks() throws {
        let u = "5B0E2B6C-8A43-4C57-9A37-0D5F1D4E6A01"
        let a = try gptImage("a.img", uuid: u)
        let b = try gptImage("b.img", uuid: "11111111-2222-3333-4444-555555555555")
        let ok = try check("[disk a]\nfile = \(a)\n[disk b]\nfile = \(b)\n[blk p]\ndevice = \(u.lowercased())\nsocket = p.sock\n")
        XCTAssertEqual(ok.status, 0, ok.output)

        let missing = try check("[disk a]\nfile = \(a)\n[blk p]\ndevice = 99999999-2222-3333-4444-555555555555\nsocket = p.sock\n")
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.output.contains("c.ini:6: blk p: no GPT partition 99999999-2222-3333-4444-555555555555 on any disk (searched: disk a)"), missing.output)

        let copy = dir + "/a2.img"
        try FileManager.default.copyItem(atPath: a, toPath: copy)
        let twice = try check("[disk a]\nfile = \(a)\n[disk a2]\nfile = \(copy)\n[blk p]\ndevice = \(u)\nsocket = p.sock\n")
        XCTAssertNotEqual(twice.status, 0)
        XCTAssertTrue(twice.output.contains("c.ini:8: blk p: GPT partition \(u) is on more than one disk (partition 1 of disk a and partition 1 of disk a2)"), twice.output)

        let notAFile = try check("[disk d]\nfile = \(dir)\n[blk w]\ndevice = disk:d\nsocket = w.sock\n")
        XCTAssertNotEqual(notAFile.status, 0)
        XCTAssertTrue(notAFile.output.contains("c.ini:4: disk d (for blk w): \(dir): "), notAFile.output)

        let owner = try check("[disk a]\nfile = \(a)\n[blk w]\ndevice = disk:a\nsocket = w.sock\nsocket-owner = nosuchuser\n")
        XCTAssertTrue(owner.output.contains("c.ini:8: blk w: socket-owner 'nosuchuser': no such user on this host"), owner.output)

        let absent = try check("[disk d]\nfile = \(dir)/none.img\n[blk w]\ndevice = disk:d\nsocket = w.sock\n")
        XCTAssertTrue(absent.output.contains("c.ini:4: disk d (for blk w): \(dir)/none.img: cannot open for writing: No such file or directory"), absent.output)
    }

    /// `--check` on NVMe namespace exports looks at sysfs only: a listed controller that is
    /// not there, or (without [nvme]) no NVMe controller bound to vfio-pci at all.
    func testNamespaceExportsAreCheckedAgainstSysfs() throws {
        let absent = try check("[nvme]\npci = 0000:00:1f.7\n[blk n]\ndevice = SN1234:n1\nsocket = n.sock\n")
        XCTAssertNotEqual(absent.status, 0)
        XCTAssertTrue(absent.output.contains("c.ini:6: blk n: PCI device 0000:00:1f.7 does not exist"), absent.output)
        guard !PCIProbe.nvmeBoundToVFIO else { return }
        let none = try check("[blk n]\ndevice = SN1234:n1\nsocket = n.sock\n")
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.output.contains("c.ini:4: blk n: no NVMe controller is bound to vfio-pci"), none.output)
    }
}

/// Whether this host has an NVMe controller on vfio-pci (then "none bound" cannot be shown).
enum PCIProbe {
    static var nvmeBoundToVFIO: Bool {
        let root = "/sys/bus/pci/devices"
        for d in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            let cls = (try? String(contentsOfFile: "\(root)/\(d)/class", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            let driver = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/\(d)/driver")).map { ($0 as NSString).lastPathComponent }
            if cls == "0x010802" && driver == "vfio-pci" { return true }
        }
        return false
    }
}
