// libFuzzer target `gpt`: the GPT reader on hostile disks — a disk image handed to
// a `[disk]` section (or a guest's writes to it, read back at the next start) is
// untrusted input.
//
// Input: [flags] [disk size in bytes, 5 bytes little-endian] [head length, 2 bytes LE]
// [head bytes…] [tail bytes…]. The disk reads the head at byte 0, the tail so that it
// ends at the disk's last byte (the head wins where they meet) and zeros elsewhere.
// flags bit 0: 4096-byte logical blocks (else 512); bit 1: bytes the input does not
// hold cannot be read (read gives nil, like a failing device) instead of reading zeros;
// bit 2: before reading, the harness recomputes the entry array and header CRC32s of the
// headers at LBA 1 and at the last LBA (so mutations get past the CRCs to the checks
// behind them).
// Seeds: tools/fuzz/gpt/make-seeds.sh (sgdisk/sfdisk images, damaged copies).
//
// Invariants (abort = a finding): never trap; a second read gives the same result;
// an error says something; .mbrOnly only with the 0x55AA signature; every partition
// lies inside LBAs 2…last of the disk, has a used type, canonical GUIDs, a name of
// at most 36 UTF-16 units and a number in 1…4096; numbers are increasing, unique
// GUIDs, and no two partitions overlap; a GPT without warnings has its primary header.
#if canImport(Glibc)
import Glibc
#endif
import Block

private func fail(_ what: String) -> Never {
    fputs("gpt fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private struct FuzzDisk {
    var head: [UInt8]
    var tail: [UInt8]
    var size: UInt64
    var failUnstored: Bool

    /// `count` bytes at `offset`, as the layout above says; nil past the end (or, with
    /// `failUnstored`, when the range touches bytes the input does not hold).
    func read(_ offset: UInt64, _ count: Int) -> [UInt8]? {
        guard count >= 0, offset <= size, UInt64(count) <= size - offset else { return nil }
        let end = offset + UInt64(count)
        let headEnd = min(UInt64(head.count), size)
        let tailStart = size - min(size, UInt64(tail.count))
        if failUnstored && headEnd < tailStart && offset < tailStart && end > headEnd { return nil }
        var out = [UInt8](repeating: 0, count: count)
        if end > tailStart {
            for o in max(offset, tailStart)..<end { out[Int(o - offset)] = tail[tail.count - Int(size - o)] }
        }
        if offset < headEnd {
            for o in offset..<min(end, headEnd) { out[Int(o - offset)] = head[Int(o)] }
        }
        return out
    }

    /// Overwrites the stored bytes among `offset..<offset+bytes.count` (others stay zero).
    mutating func write(_ offset: UInt64, _ bytes: [UInt8]) {
        let tailStart = size - min(size, UInt64(tail.count))
        for (i, b) in bytes.enumerated() {
            let o = offset + UInt64(i)
            guard o < size else { return }
            if o < UInt64(head.count) { head[Int(o)] = b }
            if o >= tailStart { tail[tail.count - Int(size - o)] = b }
        }
    }

    /// Makes the CRC32s of the header at `lba` match, when its fields allow reading its entries.
    mutating func fixCRCs(lba: UInt64, blockSize: Int) {
        let at = lba * UInt64(blockSize)
        guard let h = read(at, 92), h.starts(with: Array("EFI PART".utf8)) else { return }
        let headerSize = Int(le(Array(h[12..<16])))
        let count = Int(le(Array(h[80..<84]))), entrySize = Int(le(Array(h[84..<88])))
        let entriesLBA = le(Array(h[72..<80]))
        if count <= GPT.maxEntries, entrySize <= GPT.maxEntryArrayBytes, count * entrySize <= GPT.maxEntryArrayBytes,
           entriesLBA <= size / UInt64(blockSize), let entries = read(entriesLBA * UInt64(blockSize), count * entrySize) {
            write(at + 88, le32Bytes(CRC32.checksum(entries)))
        }
        guard headerSize >= 92, headerSize <= blockSize, var header = read(at, headerSize) else { return }
        header.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        write(at + 16, le32Bytes(CRC32.checksum(header)))
    }
}

private func le32Bytes(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

private func le(_ b: [UInt8]) -> UInt64 { b.reversed().reduce(0) { $0 << 8 | UInt64($1) } }

private func check(_ result: Result<DiskLabel, GPTError>, disk: FuzzDisk, blockSize: Int) {
    switch result {
    case .failure(let e):
        if e.description.isEmpty { fail("an empty error") }
    case .success(.none):
        break
    case .success(.mbrOnly):
        guard let mbr = disk.read(510, 2), mbr == [0x55, 0xAA] else { fail(".mbrOnly without the 0x55AA signature") }
    case .success(.gpt(let parts, let warnings)):
        let blocks = disk.size / UInt64(blockSize)
        guard blocks >= 3 else { fail("a GPT on a disk of \(blocks) blocks") }
        if warnings.isEmpty {
            guard disk.read(UInt64(blockSize), 8) == Array("EFI PART".utf8) else { fail("no warning, but no primary header") }
        }
        for w in warnings where w.isEmpty { fail("an empty warning") }
        var uuids = Set<String>()
        for p in parts {
            guard p.number >= 1, p.number <= GPT.maxEntries else { fail("partition number \(p.number)") }
            guard p.firstLBA >= 2, p.firstLBA <= p.lastLBA, p.lastLBA < blocks else {
                fail("partition \(p.number): LBAs \(p.firstLBA)…\(p.lastLBA) on a disk of \(blocks) blocks")
            }
            guard GPT.canonicalUUID(p.uuid) == p.uuid, GPT.canonicalUUID(p.typeUUID) == p.typeUUID else {
                fail("partition \(p.number): GUIDs \(p.uuid), \(p.typeUUID) not canonical")
            }
            if p.typeUUID == "00000000-0000-0000-0000-000000000000" { fail("partition \(p.number) of the unused type") }
            if p.name.utf16.count > 36 { fail("partition \(p.number): name of \(p.name.utf16.count) units") }
            if !uuids.insert(p.uuid).inserted { fail("two partitions with GUID \(p.uuid)") }
        }
        for (a, b) in zip(parts, parts.dropFirst()) where a.number >= b.number {
            fail("partition numbers \(a.number), \(b.number) not increasing")
        }
        for (i, a) in parts.enumerated() {
            for b in parts[(i + 1)...] where a.firstLBA <= b.lastLBA && b.firstLBA <= a.lastLBA {
                fail("partitions \(a.number) and \(b.number) overlap")
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard bytes.count >= 8 else { return 0 }
    let blockSize = bytes[0] & 1 != 0 ? 4096 : 512
    let headLength = min(Int(le(Array(bytes[6..<8]))), bytes.count - 8)
    var disk = FuzzDisk(head: Array(bytes[8..<(8 + headLength)]), tail: Array(bytes[(8 + headLength)...]),
                        size: le(Array(bytes[1..<6])), failUnstored: bytes[0] & 2 != 0)
    if bytes[0] & 4 != 0, disk.size >= UInt64(3 * blockSize) {
        disk.fixCRCs(lba: 1, blockSize: blockSize)
        disk.fixCRCs(lba: disk.size / UInt64(blockSize) - 1, blockSize: blockSize)
    }
    let first = GPT.readLabel(blockSize: blockSize, diskBytes: disk.size, read: disk.read)
    check(first, disk: disk, blockSize: blockSize)
    let again = GPT.readLabel(blockSize: blockSize, diskBytes: disk.size, read: disk.read)
    if again != first { fail("a second read of the same disk differs") }
    return 0
}
