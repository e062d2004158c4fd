// First stage: bytes → sections of `key = value` entries. It knows the section
// kinds and name rules, not the keys; it reports every bad line and goes on.

enum SectionKind: String, CaseIterable {
    case dataplane, port, p2p, `switch`, network, disk, nvme, blk

    /// Sections that stand alone, without a name, at most once.
    var isSingleton: Bool { self == .dataplane || self == .nvme }
}

struct RawEntry {
    var key: String
    /// Never empty: the parser reports empty values and records them in `emptyKeys`.
    var value: String
    var line: Int
}

struct RawSection {
    var kind: SectionKind
    /// Empty for `[dataplane]` and `[nvme]`.
    var name: String
    var line: Int
    var entries: [RawEntry] = []
    /// Keys written with an empty value (already reported): present, but with nothing to decode.
    var emptyKeys: Set<String> = []

    /// `[port vm1]` or `[dataplane]`, as it is written in the file.
    var header: String { name.isEmpty ? "[\(kind.rawValue)]" : "[\(kind.rawValue) \(name)]" }
}

struct ParsedINI {
    var sections: [RawSection] = []
    /// Names from section headers that were reported as broken (e.g. `[port a b]`):
    /// references to them are not reported again as undefined.
    var brokenNames: [SectionKind: Set<String>] = [:]
}

enum INIParser {
    /// Longest line accepted, in bytes (without the line ending).
    static let maxLineLength = 4096

    private enum State {
        /// No section header yet.
        case start
        /// Entries go to `sections[index]`.
        case section(Int)
        /// The last header was bad: its entries are skipped without more errors.
        case skipping
    }

    static func parse(_ bytes: [UInt8], log: inout DiagnosticLog) -> ParsedINI {
        var result = ParsedINI()
        var state = State.start
        var firstKeyLine: [String: Int] = [:]
        var sectionLines: [String: Int] = [:]

        var content = bytes[...]
        if content.starts(with: [0xEF, 0xBB, 0xBF]) { content = content.dropFirst(3) }  // UTF-8 byte order mark

        for (index, rawLine) in content.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            var line = rawLine
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }

            if let problem = encodingProblem(line) {
                log.error(lineNumber, problem)
                if trimmed(line).first == UInt8(ascii: "[") { state = .skipping }
                continue
            }
            let body = trimmed(withoutComment(line))
            if body.isEmpty { continue }

            if body.first == UInt8(ascii: "[") {
                firstKeyLine = [:]
                state = .skipping
                guard let header = sectionHeader(body, line: lineNumber, log: &log, result: &result) else { continue }
                let id = header.header
                if let first = sectionLines[id] {
                    log.error(lineNumber, "duplicate section \(id) (first at line \(first))")
                    continue
                }
                sectionLines[id] = lineNumber
                result.sections.append(header)
                state = .section(result.sections.count - 1)
                continue
            }

            guard let equals = body.firstIndex(of: UInt8(ascii: "=")) else {
                log.error(lineNumber, "expected 'key = value', a [section] header or a comment, got '\(excerpt(text(body)))'")
                continue
            }
            let key = text(trimmed(body[..<equals]))
            let value = text(trimmed(body[(equals + 1)...]))
            if key.isEmpty {
                log.error(lineNumber, "missing key before '='")
                continue
            }
            switch state {
            case .start:
                log.error(lineNumber, "key '\(excerpt(key))' is outside any section (put a header such as [dataplane] above it)")
            case .skipping:
                continue
            case .section(let sectionIndex):
                if let first = firstKeyLine[key] {
                    log.error(lineNumber, "duplicate key '\(excerpt(key))' (first set at line \(first))")
                    continue
                }
                firstKeyLine[key] = lineNumber
                if value.isEmpty {
                    log.error(lineNumber, "empty value for '\(excerpt(key))'")
                    result.sections[sectionIndex].emptyKeys.insert(key)
                } else {
                    result.sections[sectionIndex].entries.append(RawEntry(key: key, value: value, line: lineNumber))
                }
            }
        }
        return result
    }

    /// Reads `[kind]` or `[kind name]`; reports and returns nil if it is bad.
    private static func sectionHeader(
        _ body: ArraySlice<UInt8>, line: Int, log: inout DiagnosticLog, result: inout ParsedINI
    ) -> RawSection? {
        guard body.count >= 2, body.last == UInt8(ascii: "]") else {
            log.error(line, "unterminated section header '\(excerpt(text(body)))' (missing ']')")
            return nil
        }
        let inner = body.dropFirst().dropLast()
        if inner.contains(UInt8(ascii: "[")) || inner.contains(UInt8(ascii: "]")) {
            log.error(line, "bad section header '\(excerpt(text(body)))'")
            return nil
        }
        let words = inner.split(whereSeparator: isBlank).map { text($0) }
        guard let kindWord = words.first else {
            log.error(line, "empty section header '[]'")
            return nil
        }
        guard let kind = SectionKind(rawValue: kindWord) else {
            log.error(line, "unknown section kind '\(excerpt(kindWord))' (expected dataplane, port, p2p, switch, network, disk, nvme or blk)")
            return nil
        }
        if kind.isSingleton {
            if words.count > 1 {
                log.error(line, "section [\(kindWord)] takes no name, got '\(words.dropFirst().joined(separator: " "))'")
                return nil
            }
            return RawSection(kind: kind, name: "", line: line)
        }
        guard words.count >= 2 else {
            log.error(line, "section [\(kindWord)] needs a name, like [\(kindWord) NAME]")
            return nil
        }
        let name = words[1]
        if words.count > 2 {
            log.error(line, "extra words after the section name: '\(words.dropFirst(2).joined(separator: " "))'")
            result.brokenNames[kind, default: []].insert(name)
            return nil
        }
        guard isValidSectionName(name) else {
            log.error(line, "bad section name '\(excerpt(name))': use 1 to 32 of A-Z a-z 0-9 _ . -")
            result.brokenNames[kind, default: []].insert(name)
            return nil
        }
        return RawSection(kind: kind, name: name, line: line)
    }

    /// Why a line cannot be read as text at all, or nil if it can.
    private static func encodingProblem(_ line: ArraySlice<UInt8>) -> String? {
        if line.count > maxLineLength {
            return "line is too long (\(line.count) bytes; the limit is \(maxLineLength))"
        }
        if String(validating: line, as: UTF8.self) == nil {
            return "line is not valid UTF-8"
        }
        if let control = line.first(where: { ($0 < 0x20 && $0 != UInt8(ascii: "\t")) || $0 == 0x7F }) {
            return "control character 0x\(String(control, radix: 16, uppercase: true)) in line"
        }
        return nil
    }

    /// The line without a full-line comment or a trailing one (`;` or `#` after a space or tab).
    private static func withoutComment(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let body = trimmed(line)
        if let first = body.first, isCommentMark(first) { return body[body.startIndex..<body.startIndex] }
        var previous = UInt8(ascii: " ")
        for index in body.indices {
            if isCommentMark(body[index]), isBlank(previous) { return body[..<index] }
            previous = body[index]
        }
        return body
    }

    private static func isCommentMark(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ";") || byte == UInt8(ascii: "#")
    }

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, isBlank(first) { slice = slice.dropFirst() }
        while let last = slice.last, isBlank(last) { slice = slice.dropLast() }
        return slice
    }

    private static func text(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
