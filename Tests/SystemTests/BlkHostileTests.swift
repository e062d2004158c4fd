// The sluice daemon's vhost-user-blk export against a hostile driver: `sluice-gen blk
// raw-request` sends requests out of range, straddling the end, with overflowing
// sectors, lengths not whole sectors, unknown types, no status descriptor, a zero-length
// status. Each gets IOERR/UNSUPP or is dropped, sluice-stat counts it, the daemon stays
// up and a normal write/verify works afterwards. A read-only export refuses writes and
// the image stays as it was. Skipped (one line) without root or the built binaries.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

private struct BlkExportFailed: Error, CustomStringConvertible {
    var description: String
}

final class BlkHostileTests: XCTestCase {
    private static let diskBytes = 8 << 20
    private static let sectors = diskBytes / 512
    private var dir = ""
    private var daemon: Process?
    private let instance = "blkhostile\(getpid())"

    override func setUpWithError() throws {
        try Prerequisite.require([.root, .sluiceBinaries])
        guard SystemTestEnvironment.isExecutable(bin("sluice-gen")) else {
            throw XCTSkip("system test skipped: no sluice-gen in \(SystemTestEnvironment.binaryDirectory()) (run swift build, or set SLUICE_BIN_DIR)")
        }
        dir = NSTemporaryDirectory() + "sluice-blkhostile-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let daemon, daemon.isRunning {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        daemon = nil
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
        super.tearDown()
    }

    private func bin(_ name: String) -> String { SystemTestEnvironment.binaryDirectory() + "/" + name }
    private var image: String { dir + "/disk.img" }
    private var socket: String { dir + "/vda.sock" }
    private var logText: String { (try? String(contentsOfFile: dir + "/sluice.log", encoding: .utf8)) ?? "" }

    /// sluice with one [disk] on a fresh image and one [blk vda] in server mode.
    private func startDaemon(readOnly: Bool = false, fill: UInt8 = 0) throws {
        let bytes = [UInt8](repeating: fill, count: Self.diskBytes)
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: Data(bytes)))
        let config = """
            [dataplane]
            socket-dir = \(dir)
            instance = \(instance)
            hugepages = off
            cores = 0

            [disk img0]
            file = \(image)
            block-size = 512

            [blk vda]
            device = disk:img0
            socket = vda.sock
            mode = server
            read-only = \(readOnly)
            queues = 1
            queue-size = 256
            serial = hostile-disk
            """
        try config.write(toFile: dir + "/sluice.ini", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin("sluice"))
        p.arguments = ["--config", dir + "/sluice.ini"]
        FileManager.default.createFile(atPath: dir + "/sluice.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/sluice.log"))
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        daemon = p
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) && p.isRunning { usleep(50_000) }
        guard FileManager.default.fileExists(atPath: socket) else {
            if let line = logText.split(separator: "\n").first(where: { $0.contains("io_uring disabled") }) {
                throw XCTSkip("system test skipped: \(line)")
            }
            throw BlkExportFailed(description: "sluice did not create \(socket) within 10 s (running: \(p.isRunning)): \(logText.suffix(1500))")
        }
    }

    private func gen(_ arguments: [String]) throws -> ScriptResult {
        try ScriptRunner.run(bin("sluice-gen"), ["blk"] + arguments, timeout: 30)
    }

    private func raw(_ arguments: [String]) throws -> ScriptResult {
        try gen(["raw-request", "--socket", socket, "--timeout", "3", "--json"] + arguments)
    }

    /// The blk counters of vda as sluice-stat shows them.
    private func counters() throws -> [String: Int] {
        let r = try ScriptRunner.run(bin("sluice-stat"), ["--instance", instance, "--filter", "blk.vda.", "--json"], timeout: 10)
        XCTAssertEqual(r.status, 0, r.output)
        let obj = try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any]
        let c = obj?["counters"] as? [String: Any] ?? [:]
        var out: [String: Int] = [:]
        for (k, v) in c { out[String(k.dropFirst("blk.vda.".count))] = (v as? NSNumber)?.intValue ?? -1 }
        return out
    }

    private func status(_ r: ScriptResult) -> String? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any] else { return nil }
        return obj["status"] as? String
    }

    private func assertAlive(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(daemon?.isRunning ?? false, "sluice exited: \(logText.suffix(2000))", file: file, line: line)
    }

    func testHostileRequestsAreAnsweredAndCounted() throws {
        try startDaemon()
        let last = Self.sectors - 1
        // (arguments, expected status): IOERR or UNSUPP in the status byte.
        let answered: [([String], String)] = [
            (["--type", "in", "--sector", "\(Self.sectors)", "--length", "512"], "IOERR"),        // past the end
            (["--type", "out", "--sector", "\(last)", "--length", "1024"], "IOERR"),              // straddles the end
            (["--type", "in", "--sector", "\(UInt64.max)", "--length", "512"], "IOERR"),          // sector + count overflows
            (["--type", "in", "--sector", "\(UInt64.max >> 9)", "--length", "512"], "IOERR"),     // byte offset would overflow
            (["--type", "in", "--sector", "0", "--length", "100"], "IOERR"),                      // not whole sectors
            (["--type", "out", "--sector", "0", "--length", "513"], "IOERR"),
            (["--type", "in", "--sector", "0", "--length", "0"], "IOERR"),                        // zero-length transfer
            (["--type", "in", "--sector", "0", "--length", "512", "--data-readable-for-read"], "IOERR"),
            (["--type", "99", "--length", "512"], "UNSUPP"),                                      // unknown type
            (["--type", "2"], "UNSUPP"),
            (["--type", "discard", "--length", "16", "--segment-sectors", "8", "--segment-flags", "1"], "UNSUPP"),
            (["--type", "write-zeroes", "--length", "16", "--sector", "\(last)", "--segment-sectors", "8"], "IOERR"),
        ]
        var ioerr = 0, unsupp = 0
        for (args, want) in answered {
            let r = try raw(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.output)")
            XCTAssertEqual(status(r), want, "\(args): \(r.output)")
            if want == "IOERR" { ioerr += 1 } else { unsupp += 1 }
            assertAlive()
        }

        // No status descriptor: a write with nothing device-writable is a bad chain; it
        // comes back with length 0 and no status.
        let noStatus = try raw(["--type", "out", "--sector", "0", "--length", "512", "--no-status"])
        XCTAssertEqual(noStatus.status, 1, noStatus.output)
        XCTAssertEqual(status(noStatus), "none", noStatus.output)
        XCTAssertTrue(noStatus.output.contains("\"used_len\":0"), noStatus.output)
        // A zero-length status descriptor on a flush: no byte to answer in either.
        let zeroStatus = try raw(["--type", "flush", "--bad-status-len"])
        XCTAssertEqual(zeroStatus.status, 1, zeroStatus.output)
        XCTAssertEqual(status(zeroStatus), "none", zeroStatus.output)
        assertAlive()

        // The counters as an operator sees them (workers publish them as they go).
        var c: [String: Int] = [:]
        let deadline = Date().addingTimeInterval(3)
        repeat {
            c = try counters()
            if c["errors.ioerr"] == ioerr && c["errors.unsupp"] == unsupp && c["drop.bad_chain"] == 2 { break }
            usleep(50_000)
        } while Date() < deadline
        XCTAssertEqual(c["errors.ioerr"], ioerr, "\(c)")
        XCTAssertEqual(c["errors.unsupp"], unsupp, "\(c)")
        XCTAssertEqual(c["drop.bad_chain"], 2, "\(c)")
        XCTAssertEqual(c["writes"], 0, "nothing was written: \(c)")
        XCTAssertEqual(c["inflight"], 0, "\(c)")

        // The file is untouched, and normal I/O still works.
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: image))
        XCTAssertTrue(bytes.allSatisfy { $0 == 0 }, "a refused request changed the image")
        let write = try gen(["write", "--socket", socket, "--pattern", "77", "--offset", "\(Self.diskBytes - (1 << 20))",
                             "--length", "1m", "--bs", "64k", "--iodepth", "4"])
        XCTAssertEqual(write.status, 0, write.output)
        let verify = try gen(["verify", "--socket", socket, "--pattern", "77", "--offset", "\(Self.diskBytes - (1 << 20))",
                              "--length", "1m", "--bs", "4k"])
        XCTAssertEqual(verify.status, 0, verify.output)
        XCTAssertTrue(verify.output.contains("pattern matches"), verify.output)
        let id = try gen(["id", "--socket", socket])
        XCTAssertEqual(id.status, 0, id.output)
        XCTAssertTrue(id.output.contains("hostile-disk"), id.output)
        assertAlive()
    }

    func testReadOnlyExportRefusesWritesAndKeepsTheImage() throws {
        try startDaemon(readOnly: true, fill: 0x3c)
        let info = try gen(["info", "--socket", socket])
        XCTAssertNotNil(info.line(startingWith: "read-only: yes"), info.output)
        let write = try gen(["write", "--socket", socket, "--pattern", "5", "--offset", "0", "--length", "64k", "--bs", "4k"])
        XCTAssertEqual(write.status, 1, write.output)
        XCTAssertTrue(write.output.contains("IOERR"), write.output)
        for type in ["discard", "write-zeroes"] {
            let r = try raw(["--type", type, "--length", "16", "--segment-sectors", "8"])
            XCTAssertEqual(status(r), "IOERR", "\(type) on a read-only export: \(r.output)")
        }
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: image))
        XCTAssertEqual(bytes.count, Self.diskBytes)
        XCTAssertTrue(bytes.allSatisfy { $0 == 0x3c }, "the read-only image changed")
        // Reads work and see the image.
        let out = dir + "/read.bin"
        let read = try gen(["read", "--socket", socket, "--offset", "4096", "--length", "4k", "--out", out])
        XCTAssertEqual(read.status, 0, read.output)
        XCTAssertEqual(FileManager.default.contents(atPath: out).map { [UInt8]($0) }, [UInt8](repeating: 0x3c, count: 4096))
        let c = try counters()
        XCTAssertEqual(c["writes"], 0, "\(c)")
        XCTAssertGreaterThanOrEqual(c["errors.ioerr"] ?? 0, 3, "\(c)")
        assertAlive()
    }
}
