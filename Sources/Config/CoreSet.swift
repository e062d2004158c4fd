/// A set of CPU core ids, written as DPDK writes them: a hex mask like `-c`
/// (`0x6` is cores 1 and 2) or a list like `-l` (`1-2,4`).
public struct CoreSet: Equatable, Sendable, CustomStringConvertible {
    /// Highest core id accepted (a 1024-bit mask, as `CPU_SETSIZE`).
    public static let maxCore = 1023
    /// Longest hex mask accepted: 256 digits cover cores 0...1023.
    public static let maxMaskDigits = 256

    /// Core ids, sorted ascending, without repeats.
    public var cores: [Int]

    /// Builds a set from any core ids (sorted and deduplicated here).
    public init(_ cores: some Sequence<Int>) {
        self.cores = Array(Set(cores)).sorted()
    }

    public var count: Int { cores.count }

    public func contains(_ core: Int) -> Bool { cores.contains(core) }

    /// The set as a compact DPDK-style list, e.g. `1-2,4`.
    public var description: String {
        var parts: [String] = []
        var index = 0
        while index < cores.count {
            var end = index
            while end + 1 < cores.count, cores[end + 1] == cores[end] + 1 { end += 1 }
            parts.append(end == index ? "\(cores[index])" : "\(cores[index])-\(cores[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }

    /// Parses `0x…` as a hex mask and anything else as a core list.
    /// Surrounding spaces are ignored; an empty set is an error.
    public static func parse(_ text: String) throws(CoreSetError) -> CoreSet {
        let trimmed = text.trimmingSpaces()
        if trimmed.isEmpty { throw CoreSetError("empty core set") }
        if trimmed.hasPrefix("0x") || trimmed.hasPrefix("0X") {
            return try parseMask(trimmed)
        }
        return try parseList(trimmed)
    }

    private static func parseMask(_ text: String) throws(CoreSetError) -> CoreSet {
        let digits = Array(text.utf8.dropFirst(2))
        if digits.isEmpty { throw CoreSetError("core mask '\(text)' has no hex digits") }
        if digits.count > maxMaskDigits {
            throw CoreSetError("core mask '\(text.prefix(20))…' has more than \(maxMaskDigits) hex digits")
        }
        var cores: [Int] = []
        // The last digit holds cores 0-3, the one before it 4-7, and so on.
        for (position, digit) in digits.reversed().enumerated() {
            guard let nibble = hexValue(digit) else {
                let bad = String(decoding: [digit], as: UTF8.self)
                throw CoreSetError("bad hex digit '\(bad)' in core mask '\(text)'")
            }
            for bit in 0..<4 where nibble & (1 << bit) != 0 {
                cores.append(position * 4 + bit)
            }
        }
        if cores.isEmpty { throw CoreSetError("empty core mask '\(text)'") }
        return CoreSet(cores)
    }

    private static func parseList(_ text: String) throws(CoreSetError) -> CoreSet {
        var cores: [Int] = []
        for rawElement in text.split(separator: ",", omittingEmptySubsequences: false) {
            let element = String(rawElement).trimmingSpaces()
            if element.isEmpty { throw CoreSetError("empty element in core list '\(text)'") }
            let bounds = element.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2, let first = decimal(bounds[0]) else {
                throw CoreSetError("bad core list element '\(element)' in '\(text)'")
            }
            let last: Int
            if bounds.count == 2 {
                guard let end = decimal(bounds[1]) else {
                    throw CoreSetError("bad core list element '\(element)' in '\(text)'")
                }
                last = end
            } else {
                last = first
            }
            for core in [first, last] where core > maxCore {
                throw CoreSetError("core \(core) is out of range 0..\(maxCore) in '\(text)'")
            }
            if first > last {
                throw CoreSetError("bad core range '\(element)' in '\(text)': start is greater than end")
            }
            cores.append(contentsOf: first...last)
        }
        return CoreSet(cores)
    }

    /// Decimal digits only; large numbers saturate so they can be reported as out of range.
    private static func decimal(_ text: Substring) -> Int? {
        parseDecimal(text.trimmingSpaces())
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}

/// Why a core set could not be parsed; the message names the bad part.
public struct CoreSetError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
