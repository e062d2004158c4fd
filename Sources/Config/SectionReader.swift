// Second stage helpers: read typed values out of one raw section, reporting
// each bad value at its own line.

struct SectionReader {
    let section: RawSection
    private var used: Set<String> = []

    init(_ section: RawSection) {
        self.section = section
    }

    /// True if the file sets `key` at all (even to an empty value, which was already reported).
    func has(_ key: String) -> Bool {
        section.emptyKeys.contains(key) || section.entries.contains { $0.key == key }
    }

    /// The entry for `key`, marking it as known; nil if absent or empty.
    mutating func entry(_ key: String) -> RawEntry? {
        used.insert(key)
        return section.entries.first { $0.key == key }
    }

    /// Like `entry`, but reports a missing key at the section header.
    mutating func required(_ key: String, _ why: String = "", log: inout DiagnosticLog) -> RawEntry? {
        if !has(key) {
            log.error(section.line, "missing required key '\(key)' in \(section.header)\(why)")
        }
        return entry(key)
    }

    /// Reports a key that this kind of section knows but that does not fit here.
    mutating func forbid(_ key: String, _ why: String, log: inout DiagnosticLog) {
        if let entry = entry(key) {
            log.error(entry.line, "'\(key)' \(why)")
        }
    }

    /// Reports every key no decoder asked for.
    func reportUnknownKeys(log: inout DiagnosticLog) {
        for entry in section.entries where !used.contains(entry.key) {
            log.error(entry.line, "unknown key '\(excerpt(entry.key))' in \(section.header)")
        }
    }

    // MARK: Typed values

    /// A decimal integer in `range`.
    mutating func integer(_ key: String, in range: ClosedRange<Int>, log: inout DiagnosticLog) -> Int? {
        guard let entry = entry(key) else { return nil }
        guard let value = parseDecimal(entry.value) else {
            log.error(entry.line, "'\(key)' must be a decimal number, got '\(excerpt(entry.value))'")
            return nil
        }
        guard range.contains(value) else {
            log.error(entry.line, "'\(key)' must be in \(range.lowerBound)..\(range.upperBound), got \(excerpt(entry.value))")
            return nil
        }
        return value
    }

    /// A power of two in `range`.
    mutating func powerOfTwo(_ key: String, in range: ClosedRange<Int>, log: inout DiagnosticLog) -> Int? {
        guard let entry = entry(key) else { return nil }
        guard let value = parseDecimal(entry.value), range.contains(value), value & (value - 1) == 0 else {
            log.error(entry.line, "'\(key)' must be a power of two in \(range.lowerBound)..\(range.upperBound), got '\(excerpt(entry.value))'")
            return nil
        }
        return value
    }

    /// `true` or `false`.
    mutating func boolean(_ key: String, log: inout DiagnosticLog) -> Bool? {
        guard let entry = entry(key) else { return nil }
        switch entry.value {
        case "true": return true
        case "false": return false
        default:
            log.error(entry.line, "'\(key)' must be true or false, got '\(excerpt(entry.value))'")
            return nil
        }
    }

    /// `all`, or a comma-separated list of VLAN IDs (`10, 20`). Nil if any element is bad.
    mutating func vlanSet(_ key: String, log: inout DiagnosticLog) -> VLANSet? {
        guard let entry = entry(key) else { return nil }
        if entry.value == "all" { return VLANSet(all: true, ids: []) }
        let range = VLANSet.vlanRange
        var ids: [Int] = []
        var isValid = true
        for element in entry.value.split(separator: ",", omittingEmptySubsequences: false) {
            let text = element.trimmingSpaces()
            if text.isEmpty {
                log.error(entry.line, "empty VLAN in the list '\(excerpt(entry.value))'")
                isValid = false
            } else if text == "all" {
                log.error(entry.line, "'all' must stand alone in '\(key)', got '\(excerpt(entry.value))'")
                isValid = false
            } else if let id = parseDecimal(text), range.contains(id) {
                if ids.contains(id) {
                    log.error(entry.line, "VLAN \(id) is listed twice in '\(key)'")
                    isValid = false
                } else {
                    ids.append(id)
                }
            } else {
                log.error(entry.line, "bad VLAN '\(excerpt(text))' in '\(key)': use 'all' or VLAN IDs \(range.lowerBound)..\(range.upperBound)")
                isValid = false
            }
        }
        return isValid ? VLANSet(all: false, ids: ids) : nil
    }

    /// One of an enum's raw values.
    mutating func choice<Value: RawRepresentable & CaseIterable>(
        _ key: String, _: Value.Type, log: inout DiagnosticLog
    ) -> Value? where Value.RawValue == String {
        guard let entry = entry(key) else { return nil }
        if let value = Value(rawValue: entry.value) { return value }
        let names = Value.allCases.map(\.rawValue)
        let list = names.dropLast().joined(separator: ", ") + (names.count > 1 ? " or " : "") + (names.last ?? "")
        log.error(entry.line, "'\(key)' must be \(list), got '\(excerpt(entry.value))'")
        return nil
    }

    /// A comma-separated list of section names (`vm1, vm2`), with the line it is on.
    mutating func nameList(_ key: String, log: inout DiagnosticLog) -> (names: [String], line: Int)? {
        guard let entry = entry(key) else { return nil }
        var names: [String] = []
        for element in entry.value.split(separator: ",", omittingEmptySubsequences: false) {
            let name = element.trimmingSpaces()
            if name.isEmpty {
                log.error(entry.line, "empty name in the list '\(excerpt(entry.value))'")
            } else if !isValidSectionName(name) {
                log.error(entry.line, "bad port name '\(excerpt(name))' in '\(key)': use 1 to 32 of A-Z a-z 0-9 _ . -")
            } else {
                names.append(name)
            }
        }
        return (names, entry.line)
    }
}
