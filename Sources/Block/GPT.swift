// GUID partition tables (UEFI 2.x §5.2–5.3): finds the partitions a `[blk]` section
// may export by their unique GUID. Reads through a caller's closure, so it runs on a
// file, a block device or bytes in memory alike; pure Swift (the fuzz target builds
// this file and CRC32.swift on their own), and every value read from the disk is
// bounds-checked before use: any input gives a label or a GPTError, never a trap.

/// One used entry of a partition table.
public struct GPTPartition: Sendable, Equatable {
    /// 1-based index of the entry in the partition entry array.
    public var number: Int
    /// Unique partition GUID, canonical upper-case form.
    public var uuid: String
    /// Partition type GUID, canonical upper-case form.
    public var typeUUID: String
    /// First and last logical block, inclusive.
    public var firstLBA: UInt64, lastLBA: UInt64
    /// The entry's name (UTF-16LE, up to 36 code units, ends at the first NUL).
    public var name: String

    public init(number: Int, uuid: String, typeUUID: String, firstLBA: UInt64, lastLBA: UInt64, name: String) {
        self.number = number
        self.uuid = uuid
        self.typeUUID = typeUUID
        self.firstLBA = firstLBA
        self.lastLBA = lastLBA
        self.name = name
    }
}

/// What the start (and end) of a disk holds.
public enum DiskLabel: Sendable, Equatable {
    /// A usable GPT; `warnings` says what was repaired around or looks odd.
    case gpt(partitions: [GPTPartition], warnings: [String])
    /// A valid MBR (0x55AA) without a protective 0xEE entry pointing at a GPT.
    case mbrOnly
    /// No partition table.
    case none
}

public struct GPTError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum GPT {
    /// Partition entry arrays with more entries, or more bytes, are refused.
    public static let maxEntries = 4096
    public static let maxEntryArrayBytes = 1 << 20

    /// `read(offset, count)` returns exactly `count` bytes at byte `offset` of the disk, or nil.
    /// `blockSize` 512 or 4096 (the disk's logical block size), `diskBytes` its size.
    public static func readLabel(blockSize: Int, diskBytes: UInt64,
                                 read: (UInt64, Int) -> [UInt8]?) -> Result<DiskLabel, GPTError> {
        guard blockSize == 512 || blockSize == 4096 else {
            return .failure(GPTError("logical block size \(blockSize): must be 512 or 4096"))
        }
        guard diskBytes >= 512 else { return .success(.none) }
        return withoutActuallyEscaping(read) { read in
            readLabel(Disk(blockSize: blockSize, size: diskBytes, read: read))
        }
    }

    /// Parses a GUID given by a user ("0fc63daf-8483-4772-8e79-3d69d8477de4", either case)
    /// to the canonical upper-case form; nil if it is not 8-4-4-4-12 hex digits.
    public static func canonicalUUID(_ text: String) -> String? {
        let chars = Array(text.utf8)
        guard chars.count == 36 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (i, c) in chars.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard c == UInt8(ascii: "-") else { return nil }
                out.append(c)
                continue
            }
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "F"): out.append(c)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): out.append(c - 0x20)
            default: return nil
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - The label

    static let signature = Array("EFI PART".utf8)

    /// The disk as the parser sees it: whole logical blocks, reads checked for length.
    struct Disk {
        let blockSize: Int
        let size: UInt64
        let read: (UInt64, Int) -> [UInt8]?

        var blocks: UInt64 { size / UInt64(blockSize) }
        /// The last whole block (callers check `blocks >= 3` before relying on it).
        var lastLBA: UInt64 { blocks == 0 ? 0 : blocks - 1 }

        func bytes(at offset: UInt64, count: Int) -> [UInt8]? {
            guard count >= 0, offset <= size, UInt64(count) <= size - offset,
                  let b = read(offset, count), b.count == count else { return nil }
            return b
        }

        func block(_ lba: UInt64) -> [UInt8]? {
            guard lba < blocks else { return nil }
            return bytes(at: lba * UInt64(blockSize), count: blockSize)
        }

        func hasSignature(atByte offset: UInt64) -> Bool {
            bytes(at: offset, count: 8).map { $0 == GPT.signature } ?? false
        }
    }

    static func readLabel(_ disk: Disk) -> Result<DiskLabel, GPTError> {
        guard let mbr = disk.bytes(at: 0, count: 512) else {
            return .failure(GPTError("cannot read the MBR (bytes 0…511)"))
        }
        let mbrSigned = mbr[510] == 0x55 && mbr[511] == 0xAA
        // Protective (or hybrid) MBR: an entry of type 0xEE starting at LBA 1 (UEFI §5.2.3).
        let protective = (0..<4).contains { i in
            let r = 446 + 16 * i
            return mbr[r + 4] == 0xEE && le32(mbr, r + 8) == 1
        }
        if mbrSigned && !protective { return .success(.mbrOnly) }
        let bs = UInt64(disk.blockSize)
        var warnings: [String] = []
        if !mbrSigned {
            // LBA 0 wiped (or never written): still a GPT when a header carries the signature.
            guard disk.blocks >= 3,
                  disk.hasSignature(atByte: bs) || disk.hasSignature(atByte: disk.lastLBA * bs) else {
                if let hint = blockSizeHint(disk) { return .failure(GPTError("no partition table: " + hint)) }
                return .success(.none)
            }
            warnings.append("no protective MBR (LBA 0 lacks the 0x55AA signature); reading the GPT anyway")
        }
        return readGPT(disk).map { found in
            .gpt(partitions: found.partitions, warnings: warnings + found.warnings)
        }
    }

    /// When the disk has a GPT header where the other block size would put it, says so.
    static func blockSizeHint(_ disk: Disk) -> String? {
        let other = disk.blockSize == 512 ? 4096 : 512
        guard !disk.hasSignature(atByte: UInt64(disk.blockSize)), disk.hasSignature(atByte: UInt64(other)) else { return nil }
        return "a GPT header is at byte \(other), so the disk was partitioned with \(other)-byte blocks, "
            + "not \(disk.blockSize) (set block-size = \(other))"
    }

    /// The primary table if it is intact, else the backup with a warning.
    static func readGPT(_ disk: Disk) -> Result<(partitions: [GPTPartition], warnings: [String]), GPTError> {
        guard disk.blocks >= 3 else {
            return .failure(GPTError("protective MBR on a disk of \(disk.blocks) blocks: too small for a GPT"))
        }
        switch readTable(disk, at: 1) {
        case .success(let primary):
            return .success((primary.partitions, backupWarnings(disk, primary: primary)))
        case .failure(let damage):
            // Where the backup is: the primary's AlternateLBA when its header is intact,
            // then the last LBA of the disk, then an AlternateLBA of a damaged header.
            var candidates: [UInt64] = []
            func consider(_ lba: UInt64?) {
                if let lba, lba > 1, lba <= disk.lastLBA, !candidates.contains(lba) { candidates.append(lba) }
            }
            if damage.headerIntact { consider(damage.alternateLBA) }
            consider(disk.lastLBA)
            consider(damage.alternateLBA)
            var failures = ["primary GPT at LBA 1: \(damage.reason)"]
            for lba in candidates {
                switch readTable(disk, at: lba) {
                case .success(let backup):
                    return .success((backup.partitions,
                                     ["primary GPT at LBA 1 damaged (\(damage.reason)); using the backup at LBA \(lba)"]))
                case .failure(let f):
                    failures.append("backup GPT at LBA \(lba): \(f.reason)")
                }
            }
            var message = "no usable GPT: " + failures.joined(separator: "; ")
            if let hint = blockSizeHint(disk) { message += "; " + hint }
            return .failure(GPTError(message))
        }
    }

    /// With an intact primary: what is wrong with the backup, if anything.
    static func backupWarnings(_ disk: Disk, primary: Table) -> [String] {
        let alt = primary.alternateLBA
        guard alt > 1, alt <= disk.lastLBA else {
            return ["the primary GPT puts its backup at LBA \(alt), outside LBAs 2…\(disk.lastLBA) of the disk"]
        }
        var warnings: [String] = []
        if alt != disk.lastLBA {
            warnings.append("the backup GPT is at LBA \(alt), not at the disk's last LBA \(disk.lastLBA) (disk grown?)")
        }
        switch readTable(disk, at: alt) {
        case .success(let backup):
            if backup.partitions != primary.partitions {
                warnings.append("the backup GPT at LBA \(alt) lists other partitions than the primary; using the primary")
            }
        case .failure(let f):
            warnings.append("backup GPT at LBA \(alt) damaged (\(f.reason)); the primary is intact")
        }
        return warnings
    }

    // MARK: - One copy of the table

    struct Table {
        var alternateLBA: UInt64
        var partitions: [GPTPartition]
    }

    struct Damage: Error {
        var reason: String
        /// The header's own CRC matched: its AlternateLBA can be trusted.
        var headerIntact = false
        var alternateLBA: UInt64?
    }

    /// Reads and checks the header at `lba`, its entry array and its entries.
    static func readTable(_ disk: Disk, at lba: UInt64) -> Result<Table, Damage> {
        let bs = disk.blockSize
        guard let h = disk.block(lba) else { return .failure(Damage(reason: "cannot read LBA \(lba)")) }
        guard h.starts(with: signature) else { return .failure(Damage(reason: "no \"EFI PART\" signature")) }
        let alternate = le64(h, 32)
        var damage = Damage(reason: "", alternateLBA: alternate)
        func fail(_ reason: String) -> Result<Table, Damage> {
            damage.reason = reason
            return .failure(damage)
        }
        let headerSize = Int(le32(h, 12))
        guard headerSize >= 92, headerSize <= bs else { return fail("header size \(headerSize) outside 92…\(bs)") }
        var crcInput = Array(h[0..<headerSize])
        crcInput.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        let storedCRC = le32(h, 16), headerCRC = CRC32.checksum(crcInput)
        guard storedCRC == headerCRC else {
            return fail("header CRC32 is \(hex(storedCRC)) but its bytes give \(hex(headerCRC))")
        }
        damage.headerIntact = true

        let revision = le32(h, 8)
        guard revision >> 16 == 1 else { return fail("revision \(hex(revision)), not 1.x (0x00010000)") }
        let myLBA = le64(h, 24)
        guard myLBA == lba else { return fail("the header says it is at LBA \(myLBA)") }
        let firstUsable = le64(h, 40), lastUsable = le64(h, 48)
        guard firstUsable <= lastUsable else {
            return fail("first usable LBA \(firstUsable) is after the last usable LBA \(lastUsable)")
        }
        guard lastUsable <= disk.lastLBA else {
            return fail("last usable LBA \(lastUsable) is beyond the disk's last LBA \(disk.lastLBA) (disk truncated?)")
        }
        guard firstUsable >= 2, !(firstUsable...lastUsable).contains(lba) else {
            return fail("usable LBAs \(firstUsable)…\(lastUsable) cover LBA 0, 1 or this header")
        }

        let count = Int(le32(h, 80)), entrySize = Int(le32(h, 84))
        guard count <= maxEntries else { return fail("\(count) partition entries (at most \(maxEntries))") }
        guard entrySize >= 128, entrySize % 128 == 0 else {
            return fail("partition entry size \(entrySize) is not a multiple of 128")
        }
        guard count * entrySize <= maxEntryArrayBytes else {
            return fail("partition entry array of \(count * entrySize) bytes (at most \(maxEntryArrayBytes))")
        }
        let arrayBytes = count * entrySize
        var entries: [UInt8] = []
        if count > 0 {
            let entriesLBA = le64(h, 72)
            let arrayBlocks = UInt64((arrayBytes + bs - 1) / bs)
            guard entriesLBA >= 2, entriesLBA <= disk.lastLBA, arrayBlocks <= disk.lastLBA - entriesLBA + 1 else {
                return fail("partition entries at LBA \(entriesLBA) (\(arrayBlocks) blocks) are outside LBAs 2…\(disk.lastLBA)")
            }
            let arrayEnd = entriesLBA + arrayBlocks - 1
            guard !(entriesLBA...arrayEnd).contains(lba) else {
                return fail("partition entries at LBAs \(entriesLBA)…\(arrayEnd) overlap the header")
            }
            guard arrayEnd < firstUsable || entriesLBA > lastUsable else {
                return fail("partition entries at LBAs \(entriesLBA)…\(arrayEnd) overlap the usable LBAs \(firstUsable)…\(lastUsable)")
            }
            guard let e = disk.bytes(at: entriesLBA * UInt64(bs), count: arrayBytes) else {
                return fail("cannot read the partition entries at LBA \(entriesLBA)")
            }
            entries = e
        }
        let storedArrayCRC = le32(h, 88), arrayCRC = CRC32.checksum(entries)
        guard storedArrayCRC == arrayCRC else {
            return fail("partition entries CRC32 is \(hex(storedArrayCRC)) but the entries give \(hex(arrayCRC))")
        }

        switch parseEntries(entries, count: count, entrySize: entrySize, usable: firstUsable...lastUsable) {
        case .success(let partitions): return .success(Table(alternateLBA: alternate, partitions: partitions))
        case .failure(let f): return fail(f.reason)
        }
    }

    /// The used entries of a CRC-checked array: inside the usable LBAs, disjoint, unique GUIDs.
    static func parseEntries(_ entries: [UInt8], count: Int, entrySize: Int,
                             usable: ClosedRange<UInt64>) -> Result<[GPTPartition], Damage> {
        var partitions: [GPTPartition] = []
        for i in 0..<count {
            let base = i * entrySize
            guard entries[base..<(base + 16)].contains(where: { $0 != 0 }) else { continue }  // type zero: unused
            let number = i + 1
            let first = le64(entries, base + 32), last = le64(entries, base + 40)
            guard first <= last else {
                return .failure(Damage(reason: "partition \(number): first LBA \(first) is after its last LBA \(last)"))
            }
            guard usable.contains(first), usable.contains(last) else {
                return .failure(Damage(reason: "partition \(number): LBAs \(first)…\(last) outside the usable LBAs "
                                       + "\(usable.lowerBound)…\(usable.upperBound)"))
            }
            var units: [UInt16] = []
            for o in stride(from: base + 56, to: base + 128, by: 2) {
                let u = UInt16(entries[o]) | UInt16(entries[o + 1]) << 8
                if u == 0 { break }
                units.append(u)
            }
            partitions.append(GPTPartition(number: number, uuid: guid(entries, base + 16), typeUUID: guid(entries, base),
                                           firstLBA: first, lastLBA: last, name: String(decoding: units, as: UTF16.self)))
        }
        let byStart = partitions.sorted { ($0.firstLBA, $0.number) < ($1.firstLBA, $1.number) }
        for (a, b) in zip(byStart, byStart.dropFirst()) where b.firstLBA <= a.lastLBA {
            return .failure(Damage(reason: "partitions \(a.number) (LBAs \(a.firstLBA)…\(a.lastLBA)) and "
                                   + "\(b.number) (LBAs \(b.firstLBA)…\(b.lastLBA)) overlap"))
        }
        var seen: [String: Int] = [:]
        for p in partitions {
            if let other = seen.updateValue(p.number, forKey: p.uuid) {
                return .failure(Damage(reason: "partitions \(other) and \(p.number) share the unique GUID \(p.uuid)"))
            }
        }
        return .success(partitions)
    }

    // MARK: - Bytes

    static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * $1) }
    }

    static func le64(_ b: [UInt8], _ o: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * $1) }
    }

    /// A GUID as stored on disk (first three fields little-endian, the rest in order)
    /// in canonical upper-case text.
    static func guid(_ b: [UInt8], _ o: Int) -> String {
        let order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for i in order {
            if i < 0 {
                out.append(UInt8(ascii: "-"))
            } else {
                out.append(digits[Int(b[o + i] >> 4)])
                out.append(digits[Int(b[o + i] & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
    }
}
