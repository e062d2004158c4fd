// Small text helpers shared by the parser and the value decoders.

/// Space or horizontal tab: the only whitespace the INI format knows.
func isBlank(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
}

/// A string of decimal digits as an `Int`, or nil for anything else (no sign,
/// no spaces). Values too big for `Int` saturate to `Int.max`, so the caller
/// reports them as out of range rather than malformed.
func parseDecimal(_ text: some StringProtocol) -> Int? {
    if text.isEmpty { return nil }
    var value = 0
    for byte in text.utf8 {
        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
        let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
        value = overflow1 || overflow2 ? Int.max : sum
    }
    return value
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        let bytes = Array(utf8)
        var start = 0
        var end = bytes.count
        while start < end, isBlank(bytes[start]) { start += 1 }
        while end > start, isBlank(bytes[end - 1]) { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}

/// Names that may follow a section kind: `[A-Za-z0-9_.-]{1,32}`.
func isValidSectionName(_ name: String) -> Bool {
    isWord(name, maxLength: 32, extra: [UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-")])
}

/// A stats instance name: `[A-Za-z0-9_-]{1,32}`.
func isValidInstanceName(_ name: String) -> Bool {
    isWord(name, maxLength: 32, extra: [UInt8(ascii: "_"), UInt8(ascii: "-")])
}

private func isWord(_ text: String, maxLength: Int, extra: [UInt8]) -> Bool {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
    return bytes.allSatisfy { byte in
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            || extra.contains(byte)
    }
}

/// A Linux network interface name (`dev_valid_name`): 1 to 15 bytes (IFNAMSIZ
/// less the NUL), not `.` or `..`, and no `/`, `:` or whitespace.
func isValidInterfaceName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard !bytes.isEmpty, bytes.count <= 15, name != ".", name != ".." else { return false }
    return !bytes.contains { byte in
        byte == UInt8(ascii: "/") || byte == UInt8(ascii: ":") || byte <= 0x20 || byte == 0x7F
    }
}

/// User text to quote in a message, shortened if it is long.
func excerpt(_ text: some StringProtocol, limit: Int = 60) -> String {
    text.count <= limit ? String(text) : String(text.prefix(limit)) + "…"
}
