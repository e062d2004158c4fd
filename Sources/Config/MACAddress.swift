/// A 48-bit Ethernet address, written `02:00:00:00:00:01` (or with `-`).
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    /// The six octets in wire order.
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    public init(bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        self.bytes = bytes
    }

    /// Parses six groups of exactly two hex digits, separated all by `:` or
    /// all by `-`. Returns nil for anything else.
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 17 else { return nil }
        let separator = utf8[2]
        guard separator == UInt8(ascii: ":") || separator == UInt8(ascii: "-") else { return nil }
        var octets: [UInt8] = []
        for group in 0..<6 {
            let start = group * 3
            if group > 0, utf8[start - 1] != separator { return nil }
            guard let high = Self.hexValue(utf8[start]), let low = Self.hexValue(utf8[start + 1]) else {
                return nil
            }
            octets.append(high << 4 | low)
        }
        bytes = (octets[0], octets[1], octets[2], octets[3], octets[4], octets[5])
    }

    /// The octets as an array (for code that is not on a hot path).
    public var octets: [UInt8] { [bytes.0, bytes.1, bytes.2, bytes.3, bytes.4, bytes.5] }

    /// The group bit (bit 0 of the first octet) is set: multicast or broadcast.
    public var isMulticast: Bool { bytes.0 & 0x01 != 0 }
    public var isBroadcast: Bool { octets.allSatisfy { $0 == 0xFF } }
    public var isUnicast: Bool { !isMulticast }
    public var isZero: Bool { octets.allSatisfy { $0 == 0 } }
    /// Bit 1 of the first octet: the address was not assigned by a vendor.
    public var isLocallyAdministered: Bool { bytes.0 & 0x02 != 0 }

    /// Lowercase, colon-separated.
    public var description: String {
        octets.map { octet in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(octet >> 4)], digits[Int(octet & 0x0F)]], as: UTF8.self)
        }.joined(separator: ":")
    }

    public static func == (lhs: MACAddress, rhs: MACAddress) -> Bool {
        lhs.octets == rhs.octets
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes.0)
        hasher.combine(bytes.1)
        hasher.combine(bytes.2)
        hasher.combine(bytes.3)
        hasher.combine(bytes.4)
        hasher.combine(bytes.5)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
