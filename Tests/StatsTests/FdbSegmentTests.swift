import Foundation
import XCTest

@testable import Stats

final class FdbSegmentTests: XCTestCase {
    func testWriteThenReadBack() throws {
        let path = NSTemporaryDirectory() + "fdb-test-\(getpid())"
        let segment = try FdbSegment(path: path, capacity: 4, ports: ["a", "b"], aging: 300)
        defer { segment.remove() }
        let key: UInt64 = 7 << 48 | 0x0200_0000_0001
        segment.entries.storeBytes(of: key, as: UInt64.self)
        segment.entries.storeBytes(of: UInt64(2) | 90 << 32, toByteOffset: 8, as: UInt64.self)
        segment.setNow(seconds: 100)
        let (aging, entries) = try FdbReader.read(path: path)
        XCTAssertEqual(aging, 300)
        XCTAssertEqual(entries, [FdbEntry(mac: [2, 0, 0, 0, 0, 1], vlan: 7, port: "b", ageSeconds: 10)])
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        XCTAssertEqual(Int(info.st_size), FdbLayout.headerSize + 4 * FdbLayout.entrySize)
    }

    func testReaderRefusesOtherFiles() throws {
        let path = NSTemporaryDirectory() + "fdb-test-short-\(getpid())"
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3]))
        XCTAssertThrowsError(try FdbReader.read(path: path)) { e in
            XCTAssertTrue("\(e)".contains("not a sluice fdb segment"), "\(e)")
        }
        XCTAssertThrowsError(try FdbReader.read(path: path + ".absent")) { e in
            XCTAssertTrue("\(e)".contains("cannot open"), "\(e)")
        }
    }
}
