/// One problem found in a configuration file, located by file and line.
///
/// `line` is 1-based; line 0 means "the file as a whole" (for example, it
/// could not be read): its message names the file itself. `description` is
/// the conventional `FILE:LINE: message`, or only the message for line 0.
public struct Diagnostic: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { line == 0 ? message : "\(file):\(line): \(message)" }
}

/// Every error found in one configuration file (never only the first).
/// `description` prints one diagnostic per line, in line order.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// Collects errors and warnings while one file is parsed.
struct DiagnosticLog {
    let file: String
    private(set) var errors: [Diagnostic] = []
    private(set) var warnings: [Diagnostic] = []

    init(file: String) {
        self.file = file
    }

    mutating func error(_ line: Int, _ message: String) {
        errors.append(Diagnostic(file: file, line: line, message: message))
    }

    mutating func warning(_ line: Int, _ message: String) {
        warnings.append(Diagnostic(file: file, line: line, message: message))
    }

    /// Errors in line order; errors of the same line keep the order they were found in.
    var sortedErrors: [Diagnostic] { Self.byLine(errors) }
    var sortedWarnings: [Diagnostic] { Self.byLine(warnings) }

    private static func byLine(_ items: [Diagnostic]) -> [Diagnostic] {
        items.enumerated()
            .sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }
            .map(\.element)
    }
}
