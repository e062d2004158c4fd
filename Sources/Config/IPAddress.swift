/// An IPv4 address, kept as a host-order integer (10.0.0.5 is 0x0A000005).
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Dotted quad, exactly four decimal parts 0...255 without leading zeros (so
    /// nobody wonders whether 010 is octal).
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  p.count == 1 || p.first != "0", let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        value = v
    }

    /// The four octets in wire order.
    public var octets: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

    public var description: String { octets.map(String.init).joined(separator: ".") }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }

    /// 169.254.0.1: the gateway every network's guests see.
    public static let gateway = IPv4Address(169, 254, 0, 1)
}

/// An IPv6 address as two host-order halves (`high` holds the first 8 bytes).
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From 16 bytes in wire order.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(bytes[i]) }
        high = h
        low = l
    }

    /// RFC 4291 text: eight groups of up to four hex digits, one `::` for a run of
    /// zero groups, an embedded dotted quad at the end. No zone (`%eth0`).
    public init?(_ text: String) {
        // Split at the one `::` (no Foundation: Config depends on nothing).
        var doubleColon: [String] = []
        let chars = Array(text)
        var start = 0, k = 0
        while k < chars.count {
            if chars[k] == ":" && k + 1 < chars.count && chars[k + 1] == ":" {
                doubleColon.append(String(chars[start..<k]))
                k += 2
                start = k
                if k < chars.count && chars[k] == ":" { return nil }
            } else { k += 1 }
        }
        doubleColon.append(String(chars[start...]))
        guard doubleColon.count <= 2, !text.isEmpty else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, item) in items.enumerated() {
                if i == items.count - 1, item.contains(".") {
                    guard let v4 = IPv4Address(String(item)) else { return nil }
                    out.append(UInt16(v4.value >> 16))
                    out.append(UInt16(v4.value & 0xFFFF))
                    continue
                }
                guard !item.isEmpty, item.count <= 4, let g = UInt16(item, radix: 16),
                      item.allSatisfy({ $0.isHexDigit && $0.isASCII }) else { return nil }
                out.append(g)
            }
            return out
        }
        var all: [UInt16]
        if doubleColon.count == 2 {
            guard let head = groups(doubleColon[0]), let tail = groups(doubleColon[1]), head.count + tail.count <= 7 else {
                return nil
            }
            all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let g = groups(text), g.count == 8 else { return nil }
            all = g
        }
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<4 { h = h << 16 | UInt64(all[i]) }
        for i in 4..<8 { l = l << 16 | UInt64(all[i]) }
        high = h
        low = l
    }

    /// The 16 bytes in wire order.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(high >> (56 - 8 * UInt64($0)) & 0xFF) } + (0..<8).map { UInt8(low >> (56 - 8 * UInt64($0)) & 0xFF) }
    }

    /// RFC 5952 text: lowercase, leading zeros dropped, the longest run (two or more)
    /// of zero groups as `::`.
    public var description: String {
        let g: [UInt16] = (0..<4).map { UInt16(high >> (48 - 16 * UInt64($0)) & 0xFFFF) }
            + (0..<4).map { UInt16(low >> (48 - 16 * UInt64($0)) & 0xFFFF) }
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > bestLength && j - i >= 2 { bestStart = i; bestLength = j - i }
                i = j
            } else { i += 1 }
        }
        func hex(_ range: Range<Int>) -> String { range.map { String(g[$0], radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// fe80::1: the gateway's link-local address in every network.
    public static let gateway = IPv6Address(high: 0xfe80_0000_0000_0000, low: 1)
    /// The unspecified address `::`.
    public static let unspecified = IPv6Address(high: 0, low: 0)
}

/// `address/length` with the host bits zero.
public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var length: Int

    public init(address: IPv4Address, length: Int) {
        self.length = max(0, min(32, length))
        self.address = IPv4Address(address.value & Self.mask(self.length))
    }

    /// `a.b.c.d/n`. Nil when malformed; `hostBitsSet` tells the caller when the
    /// address had bits below the length (an error in a config, not a silent fix).
    public init?(_ text: String, hostBitsSet: inout Bool) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(String(parts[0])),
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(parts[1]), (0...32).contains(n) else { return nil }
        hostBitsSet = a.value & ~Self.mask(n) != 0
        self.init(address: a, length: n)
    }

    public static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length) }

    public func contains(_ a: IPv4Address) -> Bool { a.value & Self.mask(length) == address.value }
    public func overlaps(_ other: IPv4Prefix) -> Bool { contains(other.address) || other.contains(address) }
    /// Addresses in the prefix (2^(32-length)).
    public var size: UInt64 { UInt64(1) << UInt64(32 - length) }

    public var description: String { "\(address)/\(length)" }
}

/// `address/length` with the host bits zero.
public struct IPv6Prefix: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv6Address
    public var length: Int

    public init(address: IPv6Address, length: Int) {
        self.length = max(0, min(128, length))
        let (mh, ml) = Self.mask(self.length)
        self.address = IPv6Address(high: address.high & mh, low: address.low & ml)
    }

    public init?(_ text: String, hostBitsSet: inout Bool) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv6Address(String(parts[0])),
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(parts[1]), (0...128).contains(n) else { return nil }
        let (mh, ml) = Self.mask(n)
        hostBitsSet = a.high & ~mh != 0 || a.low & ~ml != 0
        self.init(address: a, length: n)
    }

    /// The network mask as two halves.
    public static func mask(_ length: Int) -> (UInt64, UInt64) {
        let h: UInt64 = length >= 64 ? ~0 : (length == 0 ? 0 : ~UInt64(0) << UInt64(64 - length))
        let l: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length))
        return (h, l)
    }

    public func contains(_ a: IPv6Address) -> Bool {
        let (mh, ml) = Self.mask(length)
        return a.high & mh == address.high && a.low & ml == address.low
    }
    public func overlaps(_ other: IPv6Prefix) -> Bool { contains(other.address) || other.contains(address) }

    public var description: String { "\(address)/\(length)" }
}
