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

    /// Reports every key no decoder asked for, with the nearest known key of
    /// the section when one is close (`did you mean 'queues'?`).
    func reportUnknownKeys(log: inout DiagnosticLog) {
        for entry in section.entries where !used.contains(entry.key) {
            var message = "unknown key '\(excerpt(entry.key))' in \(section.header)"
            if let near = nearestKey(to: entry.key, among: used) { message += "; did you mean '\(near)'?" }
            log.error(entry.line, message)
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

/// The known key closest to `key` by edit distance (a typo, a swapped pair of
/// letters, a wrong case), or nil when none is close enough to be a likely
/// meaning: at most 1 edit for keys up to 4 characters, 2 for longer ones.
/// Ties go to the alphabetically first key.
func nearestKey(to key: String, among known: Set<String>) -> String? {
    let typed = Array(key.lowercased().utf8)
    guard typed.count <= 64 else { return nil }
    let limit = typed.count <= 4 ? 1 : 2
    var best: (key: String, distance: Int)?
    for candidate in known.sorted() {
        let distance = editDistance(typed, Array(candidate.utf8))
        if distance <= limit, distance < (best?.distance ?? Int.max) {
            best = (candidate, distance)
        }
    }
    return best?.key
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbouring bytes each count one.
func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous2 = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            var value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                value = min(value, previous2[j - 2] + 1)
            }
            current[j] = value
        }
        (previous2, previous, current) = (previous, current, previous2)
    }
    return previous[b.count]
}
