import XCTest

@testable import Config

final class CoreSetTests: XCTestCase {
    private func cores(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [Int]? {
        do {
            return try CoreSet.parse(text).cores
        } catch {
            XCTFail("'\(text)': \(error)", file: file, line: line)
            return nil
        }
    }

    private func error(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let set = try CoreSet.parse(text)
            XCTFail("'\(text)' parsed as \(set.cores)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }

    func testMasks() {
        XCTAssertEqual(cores("0x6"), [1, 2])
        XCTAssertEqual(cores("0x1"), [0])
        XCTAssertEqual(cores("0XfF"), Array(0...7))
        XCTAssertEqual(cores("0x0010"), [4])
        XCTAssertEqual(cores("0x8" + String(repeating: "0", count: 255)), [1023])
    }

    func testLists() {
        XCTAssertEqual(cores("1-2,4"), [1, 2, 4])
        XCTAssertEqual(cores("0"), [0])
        XCTAssertEqual(cores("4,1-2"), [1, 2, 4])
        XCTAssertEqual(cores("2,2,1-3"), [1, 2, 3])
        XCTAssertEqual(cores(" 1 , 3 "), [1, 3])
        XCTAssertEqual(cores("5-5"), [5])
        XCTAssertEqual(cores("1023"), [1023])
    }

    func testErrorsNameTheBadPart() {
        XCTAssertEqual(error("0x0"), "empty core mask '0x0'")
        XCTAssertEqual(error("abc"), "bad core list element 'abc' in 'abc'")
        XCTAssertEqual(error("1,x3"), "bad core list element 'x3' in '1,x3'")
        XCTAssertEqual(error("3-1"), "bad core range '3-1' in '3-1': start is greater than end")
        XCTAssertEqual(error("1,,2"), "empty element in core list '1,,2'")
        XCTAssertEqual(error("-1"), "bad core list element '-1' in '-1'")
        XCTAssertEqual(error("99999"), "core 99999 is out of range 0..1023 in '99999'")
        XCTAssertEqual(error("1-1024"), "core 1024 is out of range 0..1023 in '1-1024'")
        XCTAssertEqual(error("0xZZ"), "bad hex digit 'Z' in core mask '0xZZ'")
        XCTAssertEqual(error(""), "empty core set")
        XCTAssertEqual(error("   "), "empty core set")
        XCTAssertEqual(error("0x"), "core mask '0x' has no hex digits")
        XCTAssertTrue(error("0x1" + String(repeating: "0", count: 256)).contains("more than 256 hex digits"))
        XCTAssertTrue(error("1-2-3").contains("'1-2-3'"))
        XCTAssertTrue(error("1,").contains("empty element"))
        XCTAssertTrue(error("+1").contains("'+1'"))
        XCTAssertTrue(error("99999999999999999999999").contains("out of range"))
    }

    func testDescriptionIsACompactList() {
        XCTAssertEqual(CoreSet([4, 1, 2, 2]).description, "1-2,4")
        XCTAssertEqual(CoreSet([0]).description, "0")
        XCTAssertEqual(CoreSet([1, 3, 5, 6, 7]).description, "1,3,5-7")
        XCTAssertEqual(CoreSet([Int]()).description, "")
    }

    /// Property: printing a set and parsing it back gives the same set, and a
    /// mask built from the set's bits parses to the same set too.
    func testRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let count = Int.random(in: 1...20, using: &generator)
            let set = CoreSet((0..<count).map { _ in Int.random(in: 0...70, using: &generator) })
            XCTAssertEqual(try CoreSet.parse(set.description), set)
            var nibbles = [Int](repeating: 0, count: 18)
            for core in set.cores { nibbles[core / 4] |= 1 << (core % 4) }
            let mask = "0x" + nibbles.reversed().map { String($0, radix: 16) }.joined()
            XCTAssertEqual(try CoreSet.parse(mask), set, mask)
        }
    }
}
