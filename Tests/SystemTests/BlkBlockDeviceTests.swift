// A [disk] that is a block device with 4096-byte sectors (a loop device), exported with
// 512-byte blocks: requests O_DIRECT refuses (512-byte ones) go through the page cache
// instead (blk.<name>.buffered_retries), aligned ones stay direct; the data is right
// either way. Needs root and a loop device (skips with one line otherwise).

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class BlkBlockDeviceTests: XCTestCase {
    private var dir = ""
    private var loop = ""
    private var daemon: Process?
    private let instance = "blkdev\(getpid())"

    override func setUpWithError() throws {
        try Prerequisite.require([.root, .sluiceBinaries, .command("losetup", package: "mount")])
        dir = NSTemporaryDirectory() + "sluice-blkdev-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/loop.img", contents: nil)
        XCTAssertEqual(truncate(dir + "/loop.img", 16 << 20), 0)
        let r = try ScriptRunner.run(SystemTestEnvironment.which("losetup")!,
                                     ["--sector-size", "4096", "-f", "--show", dir + "/loop.img"], timeout: 30)
        loop = r.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard r.status == 0, loop.hasPrefix("/dev/loop") else {
            throw XCTSkip("system test skipped: no loop device here (losetup: \(r.output.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
    }

    override func tearDown() {
        if let daemon, daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() }
        if !loop.isEmpty { _ = try? ScriptRunner.run(SystemTestEnvironment.which("losetup")!, ["-d", loop], timeout: 30) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func bin(_ name: String) -> String { SystemTestEnvironment.binaryDirectory() + "/" + name }

    func testUnalignedRequestsGoThroughThePageCache() throws {
        let config = dir + "/c.ini"
        try """
            [dataplane]
            socket-dir = \(dir)
            instance = \(instance)
            hugepages = off
            [disk l]
            file = \(loop)
            block-size = 512
            [blk lv]
            device = disk:l
            socket = lv.sock
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin("sluice"))
        p.arguments = ["--config", config, "--cores", "0", "--poll", "0"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        daemon = p
        let socket = dir + "/lv.sock"
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(50_000) }
        func gen(_ args: [String]) throws -> ScriptResult {
            try ScriptRunner.run(bin("sluice-gen"), ["blk"] + args + ["--socket", socket], timeout: 60)
        }
        for (offset, bs) in [("512", "512"), ("1m", "64k")] {
            let w = try gen(["write", "--pattern", "3", "--offset", offset, "--length", "64k", "--bs", bs])
            XCTAssertEqual(w.status, 0, w.output)
            let v = try gen(["verify", "--pattern", "3", "--offset", offset, "--length", "64k", "--bs", bs])
            XCTAssertEqual(v.status, 0, v.output)
        }
        let stats = try ScriptRunner.run(bin("sluice-stat"), ["--instance", instance, "--json", "--filter", "blk.lv."], timeout: 30)
        // The 128 reads of 512 bytes went buffered, and the 128 writes of 512 bytes did
        // too unless the kernel did it for us: an O_DIRECT write to a block device whose
        // page-cache pages are still being written back (our own earlier buffered writes)
        // is turned into a buffered write by the kernel (blkdev_direct_write: invalidation
        // EBUSY → buffered) and succeeds without EINVAL. The 64 KiB ones stay direct.
        let retries = Int(stats.output.split(separator: "\"blk.lv.buffered_retries\":").dropFirst().first?
            .prefix(while: { $0.isNumber }) ?? "") ?? -1
        XCTAssertTrue((128...256).contains(retries), "buffered_retries \(retries): " + stats.output)
        XCTAssertTrue(stats.output.contains("\"blk.lv.reads\":129"), stats.output)
        XCTAssertTrue(stats.output.contains("\"blk.lv.writes\":129"), stats.output)
        XCTAssertTrue(stats.output.contains("\"blk.lv.errors.ioerr\":0"), stats.output)
    }
}
