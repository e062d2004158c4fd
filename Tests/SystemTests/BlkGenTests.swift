// sluice-gen blk (the driver side of virtio-blk) against the reference vhost-user-blk
// backend, qemu-storage-daemon, exporting a temporary raw file: capacity, a pattern
// written and verified (and found byte for byte in the host file), a read-only export,
// a short load run and a hand-made out-of-range request. Skipped (one line) without
// qemu-storage-daemon or a built sluice-gen.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

private struct ExportFailed: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

final class BlkGenTests: XCTestCase {
    private static let diskBytes = 16 << 20
    private var directory = ""
    private var daemon: Process?

    override func tearDown() {
        if let daemon, daemon.isRunning {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        daemon = nil
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
        super.tearDown()
    }

    private func generator() throws -> String {
        try Prerequisite.require([.command("qemu-storage-daemon", package: "qemu-system-x86")])
        let dir = SystemTestEnvironment.binaryDirectory()
        let path = dir + "/sluice-gen"
        guard SystemTestEnvironment.isExecutable(path) else {
            throw XCTSkip("system test skipped: no sluice-gen in \(dir) (run swift build, or set SLUICE_BIN_DIR)")
        }
        return path
    }

    /// A 16 MiB file exported by qemu-storage-daemon; returns the socket and the file.
    private func startExport(writable: Bool = true, queues: Int = 1) throws -> (socket: String, image: String) {
        directory = NSTemporaryDirectory() + "sluice-blkgen-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let image = directory + "/disk.img"
        let socket = directory + "/vda.sock"
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: nil))
        XCTAssertEqual(truncate(image, off_t(Self.diskBytes)), 0)
        let ro = writable ? "" : ",read-only=on"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: SystemTestEnvironment.which("qemu-storage-daemon")!)
        p.arguments = [
            "--blockdev", "driver=file,node-name=f0,filename=\(image)\(ro)",
            "--blockdev", "driver=raw,node-name=d0,file=f0\(ro)",
            "--export", "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=\(socket),"
                + "writable=\(writable ? "on" : "off"),num-queues=\(queues)",
        ]
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        daemon = p
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) && p.isRunning { usleep(50_000) }
        guard FileManager.default.fileExists(atPath: socket) else {
            throw ExportFailed(reason: "qemu-storage-daemon did not create \(socket) within 5 s (running: \(p.isRunning))")
        }
        return (socket, image)
    }

    private func gen(_ arguments: [String]) throws -> ScriptResult {
        try ScriptRunner.run(try generator(), ["blk"] + arguments, timeout: 30)
    }

    /// The pattern sluice-gen documents, computed here on its own: sector s is 64
    /// little-endian u64 words, word i = splitmix64(seed + (s*64 + i) * γ).
    private func expectedPattern(seed: UInt64, offset: Int, length: Int) -> [UInt8] {
        let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
        func splitmix(_ x: UInt64) -> UInt64 {
            var z = x &+ gamma
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        for sector in (offset / 512)..<((offset + length) / 512) {
            for i in 0..<64 {
                let word = splitmix(seed &+ (UInt64(sector) &* 64 &+ UInt64(i)) &* gamma)
                for b in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(b)))) }
            }
        }
        return bytes
    }

    private func hostBytes(_ path: String, offset: Int, length: Int) throws -> [UInt8] {
        let handle = try XCTUnwrap(FileHandle(forReadingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        return [UInt8](try handle.read(upToCount: length) ?? Data())
    }

    func testInfoShowsCapacityAndFeatures() throws {
        _ = try generator()
        let (socket, _) = try startExport()
        let text = try gen(["info", "--socket", socket])
        XCTAssertEqual(text.status, 0, text.output)
        XCTAssertNotNil(text.line(startingWith: "capacity: 32768 sectors (16777216 bytes)"), text.output)
        XCTAssertNotNil(text.line(startingWith: "read-only: no"), text.output)
        let json = try gen(["info", "--socket", socket, "--json"])
        XCTAssertEqual(json.status, 0, json.output)
        let obj = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["capacity_bytes"] as? Int, Self.diskBytes, json.output)
        XCTAssertTrue((obj?["features"] as? String ?? "").contains("VERSION_1"), json.output)
        XCTAssertTrue((obj?["protocol_features"] as? String ?? "").contains("CONFIG"), json.output)
    }

    func testWriteVerifyAndTheHostFileHoldsThePattern() throws {
        _ = try generator()
        let (socket, image) = try startExport(queues: 2)
        let offset = 1 << 20, length = 256 << 10
        let write = try gen(["write", "--socket", socket, "--queues", "2", "--pattern", "1234",
                             "--offset", "\(offset)", "--length", "\(length)", "--bs", "4k", "--iodepth", "8"])
        XCTAssertEqual(write.status, 0, write.output)

        // Whatever request size wrote it, any range verifies.
        let verify = try gen(["verify", "--socket", socket, "--pattern", "1234", "--offset", "\(offset + 4096)",
                              "--length", "\(length - 8192)", "--bs", "64k"])
        XCTAssertEqual(verify.status, 0, verify.output)
        XCTAssertTrue(verify.output.contains("pattern matches"), verify.output)

        // The bytes are in the file at that offset, and nothing before it was touched.
        let got = try hostBytes(image, offset: offset, length: length)
        XCTAssertTrue(got == expectedPattern(seed: 1234, offset: offset, length: length), "host file differs from the pattern")
        XCTAssertEqual(try hostBytes(image, offset: offset - 4096, length: 4096), [UInt8](repeating: 0, count: 4096))

        // read --out gives the same bytes back.
        let out = directory + "/out.bin"
        let read = try gen(["read", "--socket", socket, "--offset", "\(offset)", "--length", "64k", "--out", out])
        XCTAssertEqual(read.status, 0, read.output)
        XCTAssertEqual(try hostBytes(out, offset: 0, length: 1 << 20), Array(got.prefix(64 << 10)))

        let wrong = try gen(["verify", "--socket", socket, "--pattern", "1235", "--offset", "\(offset)", "--length", "4k"])
        XCTAssertEqual(wrong.status, 1, wrong.output)
        XCTAssertTrue(wrong.output.contains("MISMATCH in 8 sectors"), wrong.output)
    }

    func testReadOnlyExportReportsTheWriteError() throws {
        _ = try generator()
        let (socket, image) = try startExport(writable: false)
        let info = try gen(["info", "--socket", socket])
        XCTAssertNotNil(info.line(startingWith: "read-only: yes"), info.output)
        let write = try gen(["write", "--socket", socket, "--pattern", "9", "--offset", "0", "--length", "4k"])
        XCTAssertEqual(write.status, 1, write.output)
        XCTAssertTrue(write.output.contains("IOERR"), write.output)
        XCTAssertEqual(try hostBytes(image, offset: 0, length: 4096), [UInt8](repeating: 0, count: 4096))
        // Reads still work: the zeroes do not match a pattern.
        let verify = try gen(["verify", "--socket", socket, "--pattern", "9", "--length", "4k"])
        XCTAssertEqual(verify.status, 1, verify.output)
        XCTAssertTrue(verify.output.contains("MISMATCH"), verify.output)
    }

    func testLoadReportsIOPSAndLatencies() throws {
        _ = try generator()
        let (socket, _) = try startExport()
        let load = try gen(["load", "--socket", socket, "--rw", "rw", "--seconds", "2", "--iodepth", "8", "--json"])
        XCTAssertEqual(load.status, 0, load.output)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(load.output.utf8)) as? [String: Any], load.output)
        let iops = try XCTUnwrap(obj["iops"] as? Double, load.output)
        XCTAssertGreaterThan(iops, 0, load.output)
        XCTAssertEqual(obj["errors"] as? Int, 0, load.output)
        XCTAssertGreaterThan(obj["reads"] as? Int ?? 0, 0, load.output)
        XCTAssertGreaterThan(obj["writes"] as? Int ?? 0, 0, load.output)
        let p50 = try XCTUnwrap(obj["p50_us"] as? Double, load.output)
        let p99 = try XCTUnwrap(obj["p99_us"] as? Double, load.output)
        let max = try XCTUnwrap(obj["max_us"] as? Double, load.output)
        XCTAssertGreaterThan(p50, 0, load.output)
        XCTAssertLessThanOrEqual(p50, p99, load.output)
        XCTAssertLessThanOrEqual(p99, max, load.output)
    }

    func testRawRequestsGetTheDevicesStatus() throws {
        _ = try generator()
        let (socket, _) = try startExport()
        let inside = try gen(["raw-request", "--socket", socket, "--type", "in", "--sector", "32767", "--length", "512"])
        XCTAssertEqual(inside.status, 0, inside.output)
        XCTAssertTrue(inside.output.contains("status OK"), inside.output)
        // One sector past the end of the 16 MiB disk.
        let outside = try gen(["raw-request", "--socket", socket, "--type", "in", "--sector", "32768", "--length", "512"])
        XCTAssertEqual(outside.status, 1, outside.output)
        XCTAssertTrue(outside.output.contains("status IOERR"), outside.output)
        let unknown = try gen(["raw-request", "--socket", socket, "--type", "99", "--json"])
        XCTAssertEqual(unknown.status, 1, unknown.output)
        let obj = try JSONSerialization.jsonObject(with: Data(unknown.output.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["status"] as? String, "UNSUPP", unknown.output)
    }
}
