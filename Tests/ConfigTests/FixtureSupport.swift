import Foundation
import XCTest

@testable import Config

/// Fixtures live beside this file, found through `#filePath` (no bundle resources).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    /// The repository's example configurations: /work/main/Configs.
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Configs")

    static func path(_ name: String) -> String {
        directory.appendingPathComponent(name).path
    }

    static func iniFiles(in directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".ini") }
            .sorted()
            .map { directory.appendingPathComponent($0).path }
    }
}

/// What a fixture says about itself: `; expect: PHRASE` on a line means an
/// error at that line whose message contains PHRASE; `; expect-warning: PHRASE`
/// the same for a warning. A line may carry several.
struct Expectation: CustomStringConvertible {
    var line: Int
    var phrase: String
    var description: String { "line \(line): \(phrase)" }

    static func read(from path: String) throws -> (errors: [Expectation], warnings: [Expectation]) {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        var errors: [Expectation] = []
        var warnings: [Expectation] = []
        // Split bytes, not characters: "\r\n" is one Character in Swift.
        for (index, lineBytes) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let line = String(decoding: lineBytes, as: UTF8.self)
            for part in line.components(separatedBy: "; expect").dropFirst() {
                let isWarning = part.hasPrefix("-warning: ")
                guard isWarning || part.hasPrefix(": ") else { continue }
                let phrase = part.dropFirst(isWarning ? 10 : 2)
                    .trimmingCharacters(in: .whitespacesAndNewlines.union(CharacterSet(charactersIn: "\r")))
                let expectation = Expectation(line: index + 1, phrase: phrase)
                if isWarning { warnings.append(expectation) } else { errors.append(expectation) }
            }
        }
        return (errors, warnings)
    }
}

/// Asserts that `actual` and `expected` match one to one: same line, phrase contained in the message.
func assertMatches(
    _ actual: [Diagnostic], _ expected: [Expectation], _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    var unmatched = actual
    var missing: [Expectation] = []
    for expectation in expected {
        if let index = unmatched.firstIndex(where: { $0.line == expectation.line && $0.message.contains(expectation.phrase) }) {
            unmatched.remove(at: index)
        } else {
            missing.append(expectation)
        }
    }
    XCTAssert(missing.isEmpty, "\(what): expected but not reported:\n  " + missing.map(\.description).joined(separator: "\n  ")
        + "\nreported:\n  " + actual.map(\.description).joined(separator: "\n  "), file: file, line: line)
    XCTAssert(unmatched.isEmpty, "\(what): reported but not expected:\n  " + unmatched.map(\.description).joined(separator: "\n  "),
              file: file, line: line)
}

/// Parses text that must be good.
func parseGood(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> SluiceConfig? {
    do {
        return try SluiceConfig.parse(text: text, file: "test.ini")
    } catch {
        XCTFail("unexpected errors:\n\(error)", file: file, line: line)
        return nil
    }
}

/// Parses text that must be bad; returns its diagnostics.
func parseBad(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [Diagnostic] {
    do {
        let config = try SluiceConfig.parse(text: text, file: "test.ini")
        XCTFail("parsed, but errors were expected: \(config.ports.map(\.name))", file: file, line: line)
        return []
    } catch {
        return error.diagnostics
    }
}
