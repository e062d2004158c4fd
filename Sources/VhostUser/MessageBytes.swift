// Little-endian field access for payloads. The decoder checks a payload's
// exact length before it reads any field, so a read past the end here is a
// bug in the codec, and traps (which is what the fuzzer is for).

extension Array where Element == UInt8 {
    @inline(__always)
    func loadLE16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    @inline(__always)
    func loadLE32(at offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(self[offset + i]) << (8 * UInt32(i)) }
        return v
    }

    @inline(__always)
    func loadLE64(at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(self[offset + i]) << (8 * UInt64(i)) }
        return v
    }
}

/// Sequential reader over a payload whose size has been checked.
struct PayloadReader {
    let bytes: [UInt8]
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    mutating func u16() -> UInt16 { defer { offset += 2 }; return bytes.loadLE16(at: offset) }
    mutating func u32() -> UInt32 { defer { offset += 4 }; return bytes.loadLE32(at: offset) }
    mutating func u64() -> UInt64 { defer { offset += 8 }; return bytes.loadLE64(at: offset) }
    mutating func u8() -> UInt8 { defer { offset += 1 }; return bytes[offset] }
    mutating func skip(_ n: Int) { offset += n }
    mutating func raw(_ n: Int) -> [UInt8] { defer { offset += n }; return Array(bytes[offset..<offset + n]) }
}

/// Appends little-endian fields to a byte array.
struct PayloadWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt16(i)))) } }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
    mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
}
