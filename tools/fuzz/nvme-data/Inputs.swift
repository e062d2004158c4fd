// The `nvme-data` fuzz target's reading of its input: bytes as they come (zeros past
// the end), and the byte codes for a guest buffer and a completion status (layout:
// Fuzz.swift).

/// The guest memory area and its regions as the IOVA table maps them: regions 0 and 1
/// adjacent in host memory but not in IOVA space, region 2 adjacent to region 0 in IOVA
/// space but not in host memory, 512 K..640 K not mapped at all.
public enum GuestLayout {
    public static let areaBytes = 1 << 20
    public static let windowA: UInt64 = 0x10_0000_0000
    public static let windowB: UInt64 = 0x30_0000_0000
    public static let regions: [(offset: Int, bytes: Int, iova: UInt64)] = [
        (0, 256 << 10, windowA), (256 << 10, 256 << 10, windowB), (640 << 10, 384 << 10, windowA + (256 << 10)),
    ]
}

public struct Input {
    public let bytes: UnsafeRawBufferPointer
    public var at = 0
    public init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
    public var more: Bool { at < bytes.count }
    public mutating func u8() -> UInt8 {
        defer { at += 1 }
        return at < bytes.count ? bytes[at] : 0
    }
    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
}

/// The 15-bit status field the controller posts (SC | SCT << 8 | CRD | M | DNR).
public func status(_ b: UInt8) -> UInt16 {
    if b < 0xA0 { return 0 }
    if b < 0xB0 { return 0x4000 }   // DNR with a success code: still a success
    let codes: [UInt16] = [0x002, 0x004, 0x006, 0x007, 0x080, 0x281, 0x102, 0x7FF]
    return codes[Int(b & 7)] | (b & 8 != 0 ? 0x4000 : 0) | (b & 0x10 != 0 ? 0x2000 : 0)
}

/// One iovec: where (bits 0-2: region 0, 1, 2; across regions 0|1; region 1 into the
/// hole or inside it; before the area, after it or off its end; after the previous
/// iovec; exactly continuing it — bits 3-4: start aligned to a page, 512, 4, any byte, or
/// after the previous iovec: at its end, the next page, one page on, 512 bytes back;
/// bits 5-7: length class), pos, len. `previous`: where the previous iovec ended.
/// Returns the iovec's base (`area` + offset, which may lie outside the area) and length.
public func segment(_ w: UInt8, _ pos: UInt8, _ l: UInt8, previous: Int, area: UnsafeMutableRawPointer) -> (base: UInt, len: Int) {
    let areaBytes = GuestLayout.areaBytes
    let p = Int(pos), n = Int(l), a = Int(w >> 3) & 3
    let sub: Int
    switch a {
    case 0: sub = 0
    case 1: sub = 512 * (p % 8)
    case 2: sub = 4 * p
    default: sub = 1 + p      // any residue mod 4 (odd, and 2 mod 4)
    }
    let start: Int
    switch w & 7 {
    case 0: start = (p * 4096 + sub) % (256 << 10)
    case 1: start = (256 << 10) + (p * 4096 + sub) % (256 << 10)
    case 2: start = (640 << 10) + (p * 4096 + sub) % (384 << 10)
    case 3: start = (256 << 10) - 4096 * (1 + p % 4) + sub
    case 4: start = p & 1 == 0 ? (512 << 10) - 4096 * (1 + p % 4) + sub : (512 << 10) + (p * 4096 + sub) % (128 << 10)
    case 5: start = [-(64 << 10) + sub, areaBytes + 4096 * (p % 16) + sub, areaBytes - 4096 * (1 + p % 4) + sub][p % 3]
    case 6: start = previous + [0, (4096 - previous % 4096) % 4096, 4096, -512][a]
    default: start = previous
    }
    let len: Int
    switch w >> 5 {
    case 0: len = 4096 * (1 + n % 64)
    case 1: len = 512 * (1 + n)
    case 2: len = 1 + n
    case 3: len = 4096 - ((start % 4096) + 4096) % 4096 + 4096 * (n % 8)
    case 4: len = 16384 * (1 + n)
    case 5: len = 4 * (1 + n)
    case 6: len = 0
    default: len = 8 * n + 1
    }
    return (UInt(bitPattern: Int(bitPattern: UInt(bitPattern: area)) + start), len)
}

