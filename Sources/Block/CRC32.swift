/// CRC-32 as used by GPT headers and partition entry arrays (UEFI §5.3.2): the
/// IEEE 802.3 polynomial in its reflected form 0xEDB88320, initial value and final
/// XOR 0xFFFFFFFF (the same CRC as zlib's `crc32`). Pure Swift, no imports.
public enum CRC32 {
    /// One entry per byte value: the CRC register after shifting that byte through.
    static let table: [UInt32] = (0..<256).map { (n: Int) -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 {
            c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1
        }
        return c
    }

    /// The CRC-32 of `bytes`.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        update(0, bytes)
    }

    /// Continues a checksum: `update(checksum(a), b) == checksum(a + b)`.
    public static func update<C: Collection>(_ crc: UInt32, _ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c = ~crc
        table.withUnsafeBufferPointer { t in
            for b in bytes {
                c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8)
            }
        }
        return ~c
    }
}
