import Block
import Foundation
import XCTest

/// Builds a GPT disk in memory, laid out as sgdisk does: protective MBR at LBA 0,
/// primary header at LBA 1 and its entries from LBA 2, backup entries just before
/// the backup header in the last LBA. Entries are written as given, unchecked, so
/// tests can build broken tables with valid CRCs.
struct GPTImage {
    struct Entry {
        var type = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  // Linux filesystem data
        var uuid: String
        var first: UInt64
        var last: UInt64
        var name = ""
        /// 0-based slot in the entry array; nil: the next free one.
        var slot: Int?
    }

    var blockSize: Int
    var blocks: Int
    var entryCount = 128
    var entrySize = 128
    var entries: [Entry] = []
    var diskGUID = "5B2C7E9A-1D40-4C8B-9E33-6A1F0D2B7C11"

    var arrayBlocks: Int { (entryCount * entrySize + blockSize - 1) / blockSize }
    var lastLBA: UInt64 { UInt64(blocks - 1) }
    var firstUsable: UInt64 { UInt64(2 + arrayBlocks) }
    var lastUsable: UInt64 { lastLBA - UInt64(arrayBlocks) - 1 }

    func bytes() -> [UInt8] {
        var disk = [UInt8](repeating: 0, count: blocks * blockSize)
        // Protective MBR: one 0xEE entry from LBA 1 over the rest of the disk (capped).
        disk[446 + 4] = 0xEE
        put32(&disk, 446 + 8, 1)
        put32(&disk, 446 + 12, UInt32(min(UInt64(UInt32.max), lastLBA)))
        disk[510] = 0x55
        disk[511] = 0xAA

        var array = [UInt8](repeating: 0, count: entryCount * entrySize)
        var next = 0
        for e in entries {
            let slot = e.slot ?? next
            next = slot + 1
            let base = slot * entrySize
            array.replaceSubrange(base..<(base + 16), with: GPTImage.guidBytes(e.type))
            array.replaceSubrange((base + 16)..<(base + 32), with: GPTImage.guidBytes(e.uuid))
            put64(&array, base + 32, e.first)
            put64(&array, base + 40, e.last)
            for (i, u) in e.name.utf16.prefix(36).enumerated() {
                array[base + 56 + 2 * i] = UInt8(u & 0xFF)
                array[base + 57 + 2 * i] = UInt8(u >> 8)
            }
        }
        let arrayCRC = CRC32.checksum(array)
        let backupArrayLBA = lastLBA - UInt64(arrayBlocks)
        for (lba, alternate, arrayLBA) in [(UInt64(1), lastLBA, UInt64(2)), (lastLBA, UInt64(1), backupArrayLBA)] {
            let at = Int(lba) * blockSize
            var h = [UInt8](repeating: 0, count: 92)
            h.replaceSubrange(0..<8, with: Array("EFI PART".utf8))
            put32(&h, 8, 0x0001_0000)
            put32(&h, 12, 92)
            put64(&h, 24, lba)
            put64(&h, 32, alternate)
            put64(&h, 40, firstUsable)
            put64(&h, 48, lastUsable)
            h.replaceSubrange(56..<72, with: GPTImage.guidBytes(diskGUID))
            put64(&h, 72, arrayLBA)
            put32(&h, 80, UInt32(entryCount))
            put32(&h, 84, UInt32(entrySize))
            put32(&h, 88, arrayCRC)
            put32(&h, 16, CRC32.checksum(h))
            disk.replaceSubrange(at..<(at + 92), with: h)
            let a = Int(arrayLBA) * blockSize
            disk.replaceSubrange(a..<(a + array.count), with: array)
        }
        return disk
    }

    /// Canonical GUID text to its on-disk bytes (first three fields little-endian).
    static func guidBytes(_ text: String) -> [UInt8] {
        let hex = Array(text.replacingOccurrences(of: "-", with: "").utf8)
        precondition(hex.count == 32, "bad GUID \(text)")
        let b = (0..<16).map { UInt8(String(decoding: hex[(2 * $0)..<(2 * $0 + 2)], as: UTF8.self), radix: 16)! }
        return [b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]] + b[8...]
    }
}

func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
    for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
}

func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) {
    for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
}

func get32(_ b: [UInt8], _ o: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * $1) }
}

/// Recomputes the CRC of the header at `lba` (after a test changed one of its fields).
func fixHeaderCRC(_ disk: inout [UInt8], lba: Int, blockSize: Int) {
    let at = lba * blockSize
    let size = Int(get32(disk, at + 12))
    put32(&disk, at + 16, 0)
    put32(&disk, at + 16, CRC32.checksum(disk[at..<(at + size)]))
}

/// Reads a disk held in memory; nil past its end, like a short pread.
func label(_ disk: [UInt8], blockSize: Int, diskBytes: UInt64? = nil) -> Result<DiskLabel, GPTError> {
    GPT.readLabel(blockSize: blockSize, diskBytes: diskBytes ?? UInt64(disk.count)) { offset, count in
        guard offset <= UInt64(disk.count), count <= disk.count - Int(offset) else { return nil }
        return Array(disk[Int(offset)..<(Int(offset) + count)])
    }
}

/// Reads an image file with pread.
func label(file: String, blockSize: Int) throws -> Result<DiskLabel, GPTError> {
    let fd = open(file, O_RDONLY)
    guard fd >= 0 else { throw GPTTestFailure("cannot open \(file)") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw GPTTestFailure("cannot stat \(file)") }
    return GPT.readLabel(blockSize: blockSize, diskBytes: UInt64(st.st_size)) { offset, count in
        var buf = [UInt8](repeating: 0, count: count)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return n == count ? buf : nil
    }
}

struct GPTTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs a program; returns its exit status and standard output + error.
@discardableResult
func runTool(_ args: [String], stdin: String? = nil) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    env["PATH"] = (env["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    p.environment = env
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    let input = Pipe()
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Throws XCTSkip with one line when `tool` (from `package`) is not installed.
func requireTool(_ tool: String, package: String) throws {
    let found = try runTool(["sh", "-c", "command -v \(tool)"]).status == 0
    if !found { throw XCTSkip("GPT test skipped: \(tool) is missing (apt-get install \(package))") }
}

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-gpt-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

extension Result where Success == DiskLabel, Failure == GPTError {
    /// The partitions and warnings of a `.gpt` label, or a test failure naming what came instead.
    func gpt() throws -> (partitions: [GPTPartition], warnings: [String]) {
        switch self {
        case .success(.gpt(let partitions, let warnings)): return (partitions, warnings)
        case .success(let other): throw GPTTestFailure("expected a GPT, got \(other)")
        case .failure(let e): throw GPTTestFailure("expected a GPT, got the error: \(e)")
        }
    }

    /// The error message, or a test failure when there was none.
    func error() throws -> String {
        switch self {
        case .success(let l): throw GPTTestFailure("expected an error, got \(l)")
        case .failure(let e): return e.description
        }
    }
}
