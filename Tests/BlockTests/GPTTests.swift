import Block
import Foundation
import XCTest

/// The GPT reader on images made by sgdisk/sfdisk and on tables built in memory.
final class GPTTests: XCTestCase {
    static let linuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    static let uuid1 = "6A1E2C4D-8B3F-4E0A-9C7D-1F2E3D4C5B6A"
    static let uuid2 = "B3D1F2A4-0C5E-4F6A-8B7C-9D0E1F2A3B4C"

    /// A 64 MiB image partitioned by sgdisk: 2048…34815 "boot part" and 34816…131038 "données".
    func sgdiskImage(_ dir: String) throws -> String {
        try requireTool("sgdisk", package: "gdisk")
        let img = dir + "/disk.img"
        XCTAssertEqual(try runTool(["truncate", "-s", "64M", img]).status, 0)
        let r = try runTool(["sgdisk", "-n", "1:2048:+16M", "-u", "1:" + Self.uuid1.lowercased(), "-c", "1:boot part",
                         "-n", "2:0:0", "-u", "2:" + Self.uuid2, "-c", "2:données", img])
        guard r.status == 0 else { throw GPTTestFailure("sgdisk failed: \(r.output)") }
        return img
    }

    func expectSgdiskPartitions(_ parts: [GPTPartition]) {
        XCTAssertEqual(parts, [
            GPTPartition(number: 1, uuid: Self.uuid1, typeUUID: Self.linuxData, firstLBA: 2048, lastLBA: 34815, name: "boot part"),
            GPTPartition(number: 2, uuid: Self.uuid2, typeUUID: Self.linuxData, firstLBA: 34816, lastLBA: 131_038, name: "données"),
        ])
    }

    func patch(_ file: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: file))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        try h.write(contentsOf: Data(bytes))
    }

    // MARK: - sgdisk images

    func testSgdiskTwoPartitions() throws {
        let img = try sgdiskImage(try temporaryDirectory(self))
        let found = try label(file: img, blockSize: 512).gpt()
        expectSgdiskPartitions(found.partitions)
        XCTAssertEqual(found.warnings, [])
    }

    func testPrimaryHeaderCRCDamagedUsesBackup() throws {
        let img = try sgdiskImage(try temporaryDirectory(self))
        try patch(img, at: 512 + 60, [0x42])  // a byte of the disk GUID: the header CRC no longer matches
        let found = try label(file: img, blockSize: 512).gpt()
        expectSgdiskPartitions(found.partitions)
        XCTAssertEqual(found.warnings.count, 1)
        XCTAssertTrue(found.warnings[0].hasPrefix("primary GPT at LBA 1 damaged (header CRC32 is 0x"), found.warnings[0])
        XCTAssertTrue(found.warnings[0].hasSuffix("using the backup at LBA 131071"), found.warnings[0])
    }

    func testPrimaryEntriesDamagedUsesBackup() throws {
        let img = try sgdiskImage(try temporaryDirectory(self))
        try patch(img, at: 1024 + 32, [0x09])  // partition 1's first LBA in the primary array
        let found = try label(file: img, blockSize: 512).gpt()
        expectSgdiskPartitions(found.partitions)
        XCTAssertEqual(found.warnings.count, 1)
        XCTAssertTrue(found.warnings[0].contains("partition entries CRC32"), found.warnings[0])
        XCTAssertTrue(found.warnings[0].hasSuffix("using the backup at LBA 131071"), found.warnings[0])
    }

    func testBackupDamagedPrimaryIntact() throws {
        let img = try sgdiskImage(try temporaryDirectory(self))
        try patch(img, at: 131_071 * 512 + 60, [0x42])
        let found = try label(file: img, blockSize: 512).gpt()
        expectSgdiskPartitions(found.partitions)
        XCTAssertEqual(found.warnings.count, 1)
        XCTAssertTrue(found.warnings[0].hasPrefix("backup GPT at LBA 131071 damaged (header CRC32"), found.warnings[0])
    }

    func testBothHeadersDamagedIsAnError() throws {
        let img = try sgdiskImage(try temporaryDirectory(self))
        try patch(img, at: 512 + 60, [0x42])
        try patch(img, at: 131_071 * 512, Array("NOT GPT!".utf8))
        let message = try label(file: img, blockSize: 512).error()
        XCTAssertTrue(message.hasPrefix("no usable GPT: primary GPT at LBA 1: header CRC32 is 0x"), message)
        XCTAssertTrue(message.hasSuffix("; backup GPT at LBA 131071: no \"EFI PART\" signature"), message)
    }

    func testGrownDiskWarnsAboutTheBackup() throws {
        let img = try sgdiskImage(try temporaryDirectory(self))
        XCTAssertEqual(try runTool(["truncate", "-s", "128M", img]).status, 0)
        let found = try label(file: img, blockSize: 512).gpt()
        expectSgdiskPartitions(found.partitions)
        XCTAssertEqual(found.warnings, ["the backup GPT is at LBA 131071, not at the disk's last LBA 262143 (disk grown?)"])
    }

    func testTruncatedDiskIsAnError() throws {
        let img = try sgdiskImage(try temporaryDirectory(self))
        XCTAssertEqual(try runTool(["truncate", "-s", "32M", img]).status, 0)
        let message = try label(file: img, blockSize: 512).error()
        XCTAssertTrue(message.hasPrefix("no usable GPT: primary GPT at LBA 1: last usable LBA 131038 is beyond the disk's "
                                        + "last LBA 65535 (disk truncated?)"), message)
    }

    func testWipedMBRStillReadsTheGPT() throws {
        let img = try sgdiskImage(try temporaryDirectory(self))
        try patch(img, at: 0, [UInt8](repeating: 0, count: 512))
        let found = try label(file: img, blockSize: 512).gpt()
        expectSgdiskPartitions(found.partitions)
        XCTAssertEqual(found.warnings, ["no protective MBR (LBA 0 lacks the 0x55AA signature); reading the GPT anyway"])
    }

    func testSfdiskMBRImageIsMBROnly() throws {
        try requireTool("sfdisk", package: "fdisk")
        let img = try temporaryDirectory(self) + "/mbr.img"
        XCTAssertEqual(try runTool(["truncate", "-s", "64M", img]).status, 0)
        let r = try runTool(["sfdisk", "--no-reread", "--no-tell-kernel", img], stdin: "label: dos\n,10M,L\n,,L\n")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(try label(file: img, blockSize: 512), .success(.mbrOnly))
    }

    func testSgdisk4096ByteBlocksOnALoopDevice() throws {
        try requireTool("sgdisk", package: "gdisk")
        try requireTool("losetup", package: "mount")
        guard geteuid() == 0 else { throw XCTSkip("GPT test skipped: needs root for a loop device with 4096-byte blocks") }
        let img = try temporaryDirectory(self) + "/disk4k.img"
        XCTAssertEqual(try runTool(["truncate", "-s", "8M", img]).status, 0)
        let attach = try runTool(["losetup", "--show", "-f", "-b", "4096", img])
        guard attach.status == 0 else {
            throw XCTSkip("GPT test skipped: cannot attach a loop device (\(attach.output.split(separator: "\n").first ?? ""))")
        }
        let loop = attach.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let r = try runTool(["sgdisk", "-n", "1:0:+2M", "-u", "1:" + Self.uuid1, "-c", "1:data", "-n", "2:0:0", "-u", "2:" + Self.uuid2, loop])
        XCTAssertEqual(try runTool(["losetup", "-d", loop]).status, 0)
        XCTAssertEqual(r.status, 0, r.output)

        let found = try label(file: img, blockSize: 4096).gpt()
        XCTAssertEqual(found.warnings, [])
        // 8 MiB = 2048 blocks; 128 entries fill LBAs 2…5 and, for the backup, 2043…2046: the last usable LBA is 2042.
        XCTAssertEqual(found.partitions, [
            GPTPartition(number: 1, uuid: Self.uuid1, typeUUID: Self.linuxData, firstLBA: 256, lastLBA: 767, name: "data"),
            GPTPartition(number: 2, uuid: Self.uuid2, typeUUID: Self.linuxData, firstLBA: 768, lastLBA: 2042, name: ""),
        ])
        let wrongSize = try label(file: img, blockSize: 512).error()
        XCTAssertTrue(wrongSize.hasSuffix("a GPT header is at byte 4096, so the disk was partitioned with 4096-byte blocks, "
                                          + "not 512 (set block-size = 4096)"), wrongSize)
    }

    // MARK: - Tables built in memory

    func twoPartitionImage(blockSize: Int, blocks: Int) -> GPTImage {
        var image = GPTImage(blockSize: blockSize, blocks: blocks)
        image.entries = [
            .init(uuid: Self.uuid1, first: image.firstUsable, last: image.firstUsable + 99, name: "één"),
            .init(type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", uuid: Self.uuid2, first: 200, last: image.lastUsable,
                  name: "EFI system", slot: 5),
        ]
        return image
    }

    func testHandBuilt4096ByteBlocks() throws {
        let image = twoPartitionImage(blockSize: 4096, blocks: 256)
        XCTAssertEqual(image.firstUsable, 6)
        XCTAssertEqual(image.lastUsable, 250)
        let disk = image.bytes()
        let found = try label(disk, blockSize: 4096).gpt()
        XCTAssertEqual(found.warnings, [])
        XCTAssertEqual(found.partitions, [
            GPTPartition(number: 1, uuid: Self.uuid1, typeUUID: Self.linuxData, firstLBA: 6, lastLBA: 105, name: "één"),
            GPTPartition(number: 6, uuid: Self.uuid2, typeUUID: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                         firstLBA: 200, lastLBA: 250, name: "EFI system"),
        ])
        // Read as 512-byte blocks, the table is not found where LBA 1 would be.
        XCTAssertTrue(try label(disk, blockSize: 512).error().contains("partitioned with 4096-byte blocks"))
    }

    /// sgdisk agrees that the in-memory builder writes a valid GPT (so the other cases test the reader).
    func testBuilderOutputPassesSgdiskVerify() throws {
        try requireTool("sgdisk", package: "gdisk")
        let img = try temporaryDirectory(self) + "/built.img"
        _ = FileManager.default.createFile(atPath: img, contents: Data(twoPartitionImage(blockSize: 512, blocks: 2048).bytes()))
        let r = try runTool(["sgdisk", "-v", img])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("No problems found"), r.output)
    }

    func testLargeEntriesAndSmallArray() throws {
        var image = twoPartitionImage(blockSize: 512, blocks: 2048)
        image.entrySize = 256
        image.entryCount = 8
        image.entries[0].first = image.firstUsable
        let found = try label(image.bytes(), blockSize: 512).gpt()
        XCTAssertEqual(found.partitions.map(\.number), [1, 6])
        XCTAssertEqual(found.partitions.map(\.firstLBA), [6, 200])
        XCTAssertEqual(found.partitions.map(\.name), ["één", "EFI system"])
    }

    func testOverlappingPartitionsAreAnError() throws {
        var image = twoPartitionImage(blockSize: 512, blocks: 2048)
        image.entries[1].first = image.entries[0].last
        let message = try label(image.bytes(), blockSize: 512).error()
        XCTAssertTrue(message.hasPrefix("no usable GPT: primary GPT at LBA 1: partitions 1 (LBAs 34…133) and 6 (LBAs 133…2014) overlap"),
                      message)
        XCTAssertTrue(message.hasSuffix("backup GPT at LBA 2047: partitions 1 (LBAs 34…133) and 6 (LBAs 133…2014) overlap"), message)
    }

    func testPartitionOutsideTheUsableLBAs() throws {
        var image = twoPartitionImage(blockSize: 512, blocks: 2048)
        image.entries[1].last = image.lastUsable + 1
        XCTAssertTrue(try label(image.bytes(), blockSize: 512).error()
            .contains("primary GPT at LBA 1: partition 6: LBAs 200…2015 outside the usable LBAs 34…2014"))
        image.entries[1].last = 199
        XCTAssertTrue(try label(image.bytes(), blockSize: 512).error()
            .contains("partition 6: first LBA 200 is after its last LBA 199"))
    }

    func testDuplicateUniqueGUIDsAreAnError() throws {
        var image = twoPartitionImage(blockSize: 512, blocks: 2048)
        image.entries[1].uuid = Self.uuid1
        XCTAssertTrue(try label(image.bytes(), blockSize: 512).error()
            .contains("partitions 1 and 6 share the unique GUID \(Self.uuid1)"))
    }

    func testAbsurdHeaderFieldsAreRefused() throws {
        let image = twoPartitionImage(blockSize: 512, blocks: 2048)
        let cases: [(offset: Int, value: UInt32, reason: String)] = [
            (80, 100_000, "100000 partition entries (at most 4096)"),
            (84, 16384, "partition entry array of 2097152 bytes (at most 1048576)"),
            (84, 200, "partition entry size 200 is not a multiple of 128"),
            (84, 0, "partition entry size 0 is not a multiple of 128"),
            (12, 91, "header size 91 outside 92…512"),
            (12, 513, "header size 513 outside 92…512"),
            (8, 0x0002_0000, "revision 0x00020000, not 1.x (0x00010000)"),
            (24, 7, "the header says it is at LBA 7"),
            (72, 2040, "partition entries at LBA 2040 (32 blocks) are outside LBAs 2…2047"),
            (72, 20, "partition entries at LBAs 20…51 overlap the usable LBAs 34…2014"),
            (40, 1, "usable LBAs 1…2014 cover LBA 0, 1 or this header"),
            (40, 3000, "first usable LBA 3000 is after the last usable LBA 2014"),
        ]
        for c in cases {
            var disk = image.bytes()
            put32(&disk, 512 + c.offset, c.value)
            if c.offset == 24 || c.offset == 72 || c.offset == 40 { put32(&disk, 512 + c.offset + 4, 0) }
            fixHeaderCRC(&disk, lba: 1, blockSize: 512)
            let found = try label(disk, blockSize: 512).gpt()
            XCTAssertEqual(found.partitions.map(\.number), [1, 6])
            XCTAssertEqual(found.warnings, ["primary GPT at LBA 1 damaged (\(c.reason)); using the backup at LBA 2047"])
        }
    }

    func testBackupFoundAtTheLastLBAWhenThePrimaryPointsElsewhere() throws {
        let image = twoPartitionImage(blockSize: 512, blocks: 2048)
        var disk = image.bytes()
        put32(&disk, 512 + 32, 1000)   // AlternateLBA: a block that holds no header
        put32(&disk, 512 + 88, 0)      // and the entries CRC broken, so the primary is refused
        fixHeaderCRC(&disk, lba: 1, blockSize: 512)
        let found = try label(disk, blockSize: 512).gpt()
        XCTAssertEqual(found.partitions.map(\.number), [1, 6])
        XCTAssertEqual(found.warnings.count, 1)
        XCTAssertTrue(found.warnings[0].hasSuffix("using the backup at LBA 2047"), found.warnings[0])
    }

    func testShortReadsAreErrorsNotTraps() throws {
        let disk = twoPartitionImage(blockSize: 512, blocks: 2048).bytes()
        // The disk claims 1 MiB but only the first 1536 bytes can be read: header fine, entries not.
        let short = Array(disk[0..<1536])
        let message = try label(short, blockSize: 512, diskBytes: UInt64(disk.count)).error()
        XCTAssertEqual(message, "no usable GPT: primary GPT at LBA 1: cannot read the partition entries at LBA 2; "
                       + "backup GPT at LBA 2047: cannot read LBA 2047")
        // Every prefix of the disk, as a disk of its own size: a label or an error, never a trap.
        for cut in stride(from: 0, through: 20 * 512, by: 37) {
            _ = label(Array(disk[0..<cut]), blockSize: 512)
        }
    }

    func testEmptyAndTinyDisks() throws {
        XCTAssertEqual(label([UInt8](repeating: 0, count: 1 << 20), blockSize: 512), .success(.none))
        XCTAssertEqual(label([UInt8](repeating: 0, count: 1 << 20), blockSize: 4096), .success(.none))
        XCTAssertEqual(label([UInt8](repeating: 0, count: 100), blockSize: 512), .success(.none))
        XCTAssertEqual(label([], blockSize: 512), .success(.none))
        var mbr = [UInt8](repeating: 0, count: 1024)
        mbr[510] = 0x55
        mbr[511] = 0xAA
        XCTAssertEqual(label(mbr, blockSize: 512), .success(.mbrOnly))
        mbr[446 + 4] = 0xEE
        XCTAssertEqual(label(mbr, blockSize: 512), .success(.mbrOnly), "an 0xEE entry not starting at LBA 1")
        mbr[446 + 8] = 1
        XCTAssertEqual(try label(mbr, blockSize: 512).error(), "protective MBR on a disk of 2 blocks: too small for a GPT")
        mbr += [UInt8](repeating: 0, count: 4096)
        XCTAssertTrue(try label(mbr, blockSize: 512).error().hasPrefix("no usable GPT: primary GPT at LBA 1: no \"EFI PART\" signature"))
        XCTAssertEqual(try label(mbr, blockSize: 1024).error(), "logical block size 1024: must be 512 or 4096")
    }

    // MARK: - GUIDs and CRC

    func testCanonicalUUID() {
        XCTAssertEqual(GPT.canonicalUUID("0fc63daf-8483-4772-8e79-3d69d8477de4"), Self.linuxData)
        XCTAssertEqual(GPT.canonicalUUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4"), Self.linuxData)
        XCTAssertEqual(GPT.canonicalUUID("0Fc63dAF-8483-4772-8e79-3D69d8477dE4"), Self.linuxData)
        for bad in ["", "0fc63daf84834772 8e793d69d8477de4", "0fc63daf-8483-4772-8e79-3d69d8477de", "0fc63daf-8483-4772-8e79-3d69d8477de45",
                    "0fc63daf-8483-4772-8e79_3d69d8477de4", "0fc63daf-8483-4772-8e79-3d69d8477dg4", "{0fc63daf-8483-4772-8e79-3d69d8477de}",
                    " 0fc63daf-8483-4772-8e79-3d69d8477de4", "0fc63daf-8483-4772-8e793-d69d8477de4", "0fc63daf-8483-4772-8e79-3d69d8477dé"] {
            XCTAssertNil(GPT.canonicalUUID(bad), bad)
        }
    }

    func testCRC32() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
        let a = Array("EFI PART".utf8), b = Array("0123456789abcdef".utf8)
        XCTAssertEqual(CRC32.update(CRC32.checksum(a), b), CRC32.checksum(a + b))
    }
}
