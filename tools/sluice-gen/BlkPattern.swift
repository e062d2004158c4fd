/// The data `blk write --pattern SEED` writes and `blk verify --pattern SEED`
/// expects: a function of the seed and the 512-byte sector number only, so
/// any range can be checked on its own, whatever request size wrote it.
///
/// Sector `s` is 64 little-endian u64 words; word `i` is
/// `splitmix64(seed &+ (s &* 64 &+ i) &* 0x9E3779B97F4A7C15)`, with
/// splitmix64(x): z = x &+ 0x9E3779B97F4A7C15;
/// z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) &* 0x94D049BB133111EB;
/// z ^ (z >> 31).
enum BlkPattern {
    static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
    static let wordsPerSector = 64

    @inline(__always)
    static func splitmix64(_ x: UInt64) -> UInt64 {
        var z = x &+ gamma
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    static func word(seed: UInt64, sector: UInt64, index: Int) -> UInt64 {
        splitmix64(seed &+ (sector &* 64 &+ UInt64(index)) &* gamma)
    }

    /// Writes `sectors` sectors of pattern starting at `firstSector` into `buffer`.
    static func fill(_ buffer: UnsafeMutableRawPointer, seed: UInt64, firstSector: UInt64, sectors: Int) {
        for s in 0..<sectors {
            let sector = firstSector &+ UInt64(s)
            let base = buffer + s * 512
            for i in 0..<wordsPerSector {
                base.storeBytes(of: word(seed: seed, sector: sector, index: i).littleEndian,
                                toByteOffset: 8 * i, as: UInt64.self)
            }
        }
    }

    /// Whether one 512-byte sector at `buffer` holds the pattern of `sector`.
    static func matches(_ buffer: UnsafeRawPointer, seed: UInt64, sector: UInt64) -> Bool {
        for i in 0..<wordsPerSector {
            let got = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
            if got != word(seed: seed, sector: sector, index: i) { return false }
        }
        return true
    }
}

/// Byte sizes on the command line: `4096`, `4k`, `64K`, `1m`, `2g` (powers of 1024).
enum BlkSize {
    static func parse(_ text: String) -> Int? {
        let t = text.lowercased()
        var digits = Substring(t)
        var scale = 1
        if let last = t.last, let power = ["k": 10, "m": 20, "g": 30, "t": 40][String(last)] {
            scale = 1 << power
            digits = digits.dropLast()
            if digits.hasSuffix("i") { digits = digits.dropLast() }
        } else if t.hasSuffix("kib") || t.hasSuffix("mib") || t.hasSuffix("gib") {
            return parse(String(t.dropLast(2)))
        }
        guard let n = Int(digits), n >= 0 else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }

    /// A seed: decimal or 0x hex.
    static func parseSeed(_ text: String) -> UInt64? {
        if text.lowercased().hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }
}
