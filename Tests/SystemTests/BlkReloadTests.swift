// A blk export across SIGHUP reloads: while sluice-gen keeps requests in flight, reloads
// that move the workers (cores 0 → 0,1 → 0) and change the poll mode keep the front-end
// connected and lose no request; a pattern written before the reloads verifies after them;
// removing the [blk] section closes its socket and retires its counters.

import Foundation
import Stats
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class BlkReloadTests: XCTestCase {
    private var dir = ""
    private var configPath: String { dir + "/sluice.ini" }
    private var logPath: String { dir + "/sluice.log" }
    private let instance = "blkreload\(getpid())"
    private var daemon: Process?

    override func setUpWithError() throws {
        try Prerequisite.require([.sluiceBinaries])
        dir = NSTemporaryDirectory() + "sluice-blkreload-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/disk.img", contents: nil)
        XCTAssertEqual(truncate(dir + "/disk.img", 32 << 20), 0)
    }

    override func tearDown() {
        if let daemon, daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func bin(_ name: String) -> String { SystemTestEnvironment.binaryDirectory() + "/" + name }

    private func config(cores: String, poll: String?, blk: Bool = true) -> String {
        """
        [dataplane]
        socket-dir = \(dir)
        instance = \(instance)
        hugepages = off
        cores = \(cores)
        \(poll.map { "poll = \($0)" } ?? "")

        [disk img0]
        file = \(dir)/disk.img

        """ + (blk ? """
        [blk vda]
        device = disk:img0
        socket = vda.sock
        queues = 2

        """ : "")
    }

    private func write(_ text: String) throws {
        try text.write(toFile: configPath + ".new", atomically: false, encoding: .utf8)
        XCTAssertEqual(rename(configPath + ".new", configPath), 0)
    }

    private func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    private func waitForLog(_ text: String, count: Int, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if log().components(separatedBy: text).count - 1 >= count { return true }
            usleep(20_000)
        }
        return false
    }

    private func counter(_ name: String) throws -> UInt64? {
        try StatsReader(path: "/dev/shm/sluice-\(instance).stats").snapshot().entries.first { $0.name == name }?.value
    }

    func testReloadsKeepTheBlkFrontEndConnectedAndLoseNoRequest() throws {
        try write(config(cores: "0", poll: "0"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin("sluice"))
        p.arguments = ["--config", configPath]
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let logFile = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = logFile
        p.standardError = logFile
        try p.run()
        daemon = p
        let socket = dir + "/vda.sock"
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(50_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: socket), log())

        let pattern = try ScriptRunner.run(bin("sluice-gen"), ["blk", "write", "--socket", socket, "--pattern", "42",
                                                               "--offset", "1m", "--length", "2m"], timeout: 60)
        XCTAssertEqual(pattern.status, 0, pattern.output)

        // Load on both queues while the workers move and the poll mode changes.
        let load = Process()
        load.executableURL = URL(fileURLWithPath: bin("sluice-gen"))
        load.arguments = ["blk", "load", "--socket", socket, "--rw", "randread", "--queues", "2", "--iodepth", "8",
                          "--seconds", "5", "--json"]
        let out = Pipe()
        load.standardOutput = out
        load.standardError = FileHandle.nullDevice
        try load.run()
        usleep(500_000)
        let connectsBefore = try counter("blk.vda.vhost.connects") ?? 0
        var reloads = 0
        for (cores, poll) in [("0,1", "0"), ("0", nil), ("0,1", nil), ("0", "0")] as [(String, String?)] {
            try write(config(cores: cores, poll: poll))
            kill(p.processIdentifier, SIGHUP)
            reloads += 1
            XCTAssertTrue(waitForLog("reloaded ", count: reloads), log())
            usleep(400_000)
        }
        load.waitUntilExit()
        let json = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(load.terminationStatus, 0, json + log())
        XCTAssertTrue(json.contains("\"errors\":0"), json)
        XCTAssertEqual(try counter("blk.vda.vhost.connects"), connectsBefore, "the front-end stayed connected")
        XCTAssertEqual(try counter("blk.vda.errors.ioerr"), 0)
        XCTAssertEqual(try counter("blk.vda.inflight"), 0)

        let verify = try ScriptRunner.run(bin("sluice-gen"), ["blk", "verify", "--socket", socket, "--pattern", "42",
                                                              "--offset", "1m", "--length", "2m"], timeout: 60)
        XCTAssertEqual(verify.status, 0, verify.output)

        // The section goes: socket closed, counters retired.
        try write(config(cores: "0", poll: "0", blk: false))
        kill(p.processIdentifier, SIGHUP)
        XCTAssertTrue(waitForLog("reloaded ", count: reloads + 1), log())
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket))
        XCTAssertNil(try counter("blk.vda.reads"))
        p.terminate()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, log())
    }
}
