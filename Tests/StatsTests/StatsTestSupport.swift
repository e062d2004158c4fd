import Foundation
import XCTest

@testable import Stats

/// A fresh segment path in a private temporary directory, removed after the test.
func temporarySegmentPath(_ test: XCTestCase, name: String = "sluice-test.stats") throws -> String {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("stats-tests-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    test.addTeardownBlock {
        try? FileManager.default.removeItem(at: directory)
    }
    return directory.appendingPathComponent(name).path
}

/// A pid no process can have (above any pid_max).
let deadPID: Int32 = 0x7FFF_FFF0

extension XCTestCase {
    /// Run `body` and return the StatsError it throws, failing if it throws
    /// nothing or something else.
    func expectStatsError(
        _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line
    ) -> StatsError? {
        do {
            try body()
            XCTFail("expected a StatsError", file: file, line: line)
            return nil
        } catch let error as StatsError {
            return error
        } catch {
            XCTFail("expected a StatsError, got \(error)", file: file, line: line)
            return nil
        }
    }
}
