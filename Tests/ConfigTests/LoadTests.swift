import Foundation
import XCTest

@testable import Config

final class LoadTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-tests-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: directory)
    }

    private func loadError(_ path: String) -> [String] {
        do {
            _ = try SluiceConfig.load(path: path)
            XCTFail("loaded \(path)")
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    func testMissingFile() {
        let path = directory.appendingPathComponent("absent.ini").path
        XCTAssertEqual(loadError(path), ["cannot read config \(path): No such file or directory"])
    }

    func testDirectory() {
        XCTAssertEqual(loadError(directory.path), ["cannot read config \(directory.path): Is a directory"])
    }

    func testTooLargeFile() throws {
        let path = directory.appendingPathComponent("big.ini").path
        try Data(repeating: UInt8(ascii: "\n"), count: (1 << 20) + 1).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(loadError(path), ["cannot read config \(path): file is too large (more than 1048576 bytes)"])
    }

    func testLoadReportsTheGivenPath() throws {
        let path = directory.appendingPathComponent("one.ini").path
        try Data("[dataplane]\npoll = x\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(loadError(path), ["\(path):2: 'poll' must be a decimal number, got 'x'"])
    }

    func testLoadGoodFile() throws {
        let path = directory.appendingPathComponent("good.ini").path
        try Data("[dataplane]\ncores = 0x2\n".utf8).write(to: URL(fileURLWithPath: path))
        let config = try SluiceConfig.load(path: path)
        XCTAssertEqual(config.file, path)
        XCTAssertEqual(config.dataplane.cores?.cores, [1])
        XCTAssertEqual(config.dataplane.coresLine, 2)
    }
}
