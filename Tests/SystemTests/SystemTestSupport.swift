// Support for system tests: where the repository and the sluice binaries are, which
// prerequisites a real-peer test needs, and running a script as a subprocess with a deadline.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The repository and the binaries under test.
enum SystemTestEnvironment {
    /// The repository root: three levels above this file (Tests/SystemTests/<file>), after
    /// resolving symlinks (a scratch package may link Tests/SystemTests into the repository).
    static func repositoryRoot(filePath: String = #filePath) -> URL {
        var resolved = filePath
        if let real = realpath(filePath, nil) {
            resolved = String(cString: real)
            free(real)
        }
        return URL(fileURLWithPath: resolved)
            .deletingLastPathComponent()  // SystemTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // repository
    }

    /// Directory with `sluice` and `sluice-stat`: `SLUICE_BIN_DIR`, else `<repo>/.build/debug`
    /// when it has a sluice binary, else `<repo>/.build/release`.
    static func binaryDirectory() -> String {
        if let dir = ProcessInfo.processInfo.environment["SLUICE_BIN_DIR"], !dir.isEmpty { return dir }
        let build = repositoryRoot().appendingPathComponent(".build").path
        let debug = build + "/debug"
        if isExecutable(debug + "/sluice") { return debug }
        return build + "/release"
    }

    static func isExecutable(_ path: String) -> Bool {
        access(path, X_OK) == 0
    }

    /// The first executable named `command` on PATH, or nil.
    static func which(_ command: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(command)"
            if isExecutable(candidate) { return candidate }
        }
        return nil
    }
}

/// What a real-VM test needs; each check gives the reason to skip, or nil.
enum Prerequisite {
    case root
    case command(String, package: String)
    case sluiceBinaries

    var missingReason: String? {
        switch self {
        case .root:
            return getuid() == 0 ? nil : "needs root (QEMU guests, hugepages, /dev/shm)"
        case .command(let name, let package):
            return SystemTestEnvironment.which(name) == nil ? "no \(name) on PATH (apt-get install \(package))" : nil
        case .sluiceBinaries:
            let dir = SystemTestEnvironment.binaryDirectory()
            for binary in ["sluice", "sluice-stat"] where !SystemTestEnvironment.isExecutable("\(dir)/\(binary)") {
                return "no \(binary) in \(dir) (run swift build, or set SLUICE_BIN_DIR)"
            }
            return nil
        }
    }

    /// Throws XCTSkip with one line naming the first missing prerequisite.
    static func require(_ list: [Prerequisite]) throws {
        for item in list {
            if let reason = item.missingReason { throw XCTSkip("system test skipped: \(reason)") }
        }
    }

    static let realVM: [Prerequisite] = [
        .root, .command("qemu-system-x86_64", package: "qemu-system-x86"), .sluiceBinaries,
    ]
}

/// The outcome of one subprocess.
struct ScriptResult {
    let status: Int32
    let timedOut: Bool
    let output: String
    let seconds: Double

    /// The last `count` lines of the output (for failure messages).
    func tail(_ count: Int) -> String {
        output.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }

    /// The first line that starts with `prefix`, or nil.
    func line(startingWith prefix: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init)
    }
}

enum ScriptRunner {
    /// Exit status a script uses for "a prerequisite is missing" (it prints `SKIP: reason`).
    static let skipStatus: Int32 = 77

    /// Run `executable arguments` with stdout and stderr merged into one captured text.
    /// Past `timeout` the script gets SIGTERM (its trap stops the guests and sluice it
    /// started), then SIGKILL after 15 s — its whole process group if it leads one.
    static func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                    timeout: Double) throws -> ScriptResult {
        let output = FileManager.default.temporaryDirectory
            .appendingPathComponent("sluice-systest-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle

        let start = Date()
        try process.run()
        let pid = process.processIdentifier
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                kill(pid, SIGTERM)
                let grace = Date()
                while process.isRunning && Date().timeIntervalSince(grace) < 15 { usleep(100_000) }
                if process.isRunning { kill(getpgid(pid) == pid ? -pid : pid, SIGKILL) }
                break
            }
            usleep(100_000)
        }
        process.waitUntilExit()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return ScriptResult(status: process.terminationStatus, timedOut: timedOut, output: text,
                            seconds: Date().timeIntervalSince(start))
    }
}
