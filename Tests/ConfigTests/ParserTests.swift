import XCTest

@testable import Config

/// The line-level format: sections, comments, whitespace, what counts as a bad line.
final class ParserTests: XCTestCase {
    func testEmptyAndCommentOnlyFilesGiveDefaults() throws {
        for text in ["", "\n\n", "; only a comment\n# another\n   ; indented\n", "[dataplane]\n"] {
            let config = try XCTUnwrap(parseGood(text))
            XCTAssertEqual(config.dataplane, DataplaneConfig())
            XCTAssertEqual(config.dataplane.socketDir, "/run/sluice")
            XCTAssertEqual(config.dataplane.instance, "sluice")
            XCTAssertEqual(config.dataplane.hugepages, .auto)
            XCTAssertNil(config.dataplane.cores)
            XCTAssertNil(config.dataplane.poll)
            XCTAssertTrue(config.ports.isEmpty && config.p2p.isEmpty && config.switches.isEmpty)
        }
    }

    func testCommentsAndWhitespace() throws {
        let config = try XCTUnwrap(parseGood("""
            \t[dataplane]\t# header comment
              instance=x_y   ; comment
            socket-dir =\t/x;y#z\t#comment: ';' and '#' count only after a space or tab
            poll = 7\t;tab before the comment
            """))
        XCTAssertEqual(config.dataplane.instance, "x_y")
        XCTAssertEqual(config.dataplane.socketDir, "/x;y#z")
        XCTAssertEqual(config.dataplane.poll, 7)
        XCTAssertTrue(parseBad("[dataplane]\ninstance = a#b\n").contains { $0.message.contains("bad 'instance' 'a#b'") })
        XCTAssertEqual(parseBad("[dataplane]\npoll = 7;\n").map(\.message), ["'poll' must be a decimal number, got '7;'"])
    }

    func testDiagnosticFormat() {
        let diagnostic = Diagnostic(file: "a/b.ini", line: 12, message: "something")
        XCTAssertEqual(diagnostic.description, "a/b.ini:12: something")
        let error = ConfigError(diagnostics: [diagnostic, Diagnostic(file: "a/b.ini", line: 13, message: "more")])
        XCTAssertEqual(error.description, "a/b.ini:12: something\na/b.ini:13: more")
        let diagnostics = parseBad("\n\n[dataplane]\nfoo = 1\n")
        XCTAssertEqual(diagnostics.map(\.description), ["test.ini:4: unknown key 'foo' in [dataplane]"])
    }

    func testCRLFInText() throws {
        let config = try XCTUnwrap(parseGood("[dataplane]\r\ninstance = crlf\r\npoll = 3 ; comment\r\n"))
        XCTAssertEqual(config.dataplane.instance, "crlf")
        XCTAssertEqual(config.dataplane.poll, 3)
    }

    func testLongLines() {
        let value = String(repeating: "a", count: 4096 - "; ".count)
        XCTAssertNotNil(parseGood("; " + value + "\n"), "a line of exactly 4096 bytes is fine")
        let diagnostics = parseBad("[dataplane]\n; " + value + "a\ninstance = ok\n")
        XCTAssertEqual(diagnostics.map(\.description), ["test.ini:2: line is too long (4097 bytes; the limit is 4096)"])
        let huge = parseBad("[dataplane]\ninstance = " + String(repeating: "x", count: 1_000_000))
        XCTAssertEqual(huge.map(\.line), [2])
    }

    func testLongValuesAreShortenedInMessages() throws {
        let diagnostics = parseBad("[dataplane]\ninstance = " + String(repeating: "y", count: 1000) + "\n")
        let message = try XCTUnwrap(diagnostics.first?.message)
        XCTAssertLessThan(message.count, 150)
        XCTAssertTrue(message.contains("…"))
    }

    func testBadHeadersSkipTheirKeysWithoutMoreErrors() {
        let diagnostics = parseBad("""
            [port]
            nonsense = 1
            [dataplane]
            poll = 5
            """)
        XCTAssertEqual(diagnostics.map(\.line), [1])
    }

    func testKeysAfterADuplicateSectionAreNotCheckedAgainstTheFirst() {
        let diagnostics = parseBad("""
            [dataplane]
            poll = 1
            [dataplane]
            poll = 2
            """)
        XCTAssertEqual(diagnostics.map(\.description), ["test.ini:3: duplicate section [dataplane] (first at line 1)"])
    }

    func testDuplicateKeysAreCheckedPerSection() throws {
        let config = try XCTUnwrap(parseGood("""
            [port a]
            type = tap
            interface = ta
            [port b]
            type = tap
            interface = tb
            [switch s]
            ports = a, b
            """))
        XCTAssertEqual(config.ports.map(\.interface), ["ta", "tb"])
    }

    func testEveryErrorIsReportedNotOnlyTheFirst() {
        let text = (1...500).map { "garbage line \($0)" }.joined(separator: "\n")
        let diagnostics = parseBad(text)
        XCTAssertEqual(diagnostics.count, 500)
        XCTAssertEqual(diagnostics.map(\.line), Array(1...500))
    }

    func testValueMayContainEqualsAndSpaces() {
        XCTAssertEqual(
            parseBad("[dataplane]\ninstance = a = b\n").map(\.message),
            ["bad 'instance' 'a = b': use 1 to 32 of A-Z a-z 0-9 _ -"]
        )
    }

    func testNonUTF8Bytes() throws {
        var bytes = Array("[dataplane]\ninstance = ".utf8)
        bytes += [0xC3, 0x28]  // a two-byte lead followed by a non-continuation byte
        bytes += Array("\npoll = 1\n[port \u{00E9}]\ntype = tap\n".utf8)
        do {
            _ = try SluiceConfig.parse(bytes: bytes, file: "raw.ini")
            XCTFail("parsed")
        } catch {
            // The é in the header is valid UTF-8 but not a valid name.
            XCTAssertEqual(error.diagnostics.map(\.description), [
                "raw.ini:2: line is not valid UTF-8",
                "raw.ini:4: bad section name 'é': use 1 to 32 of A-Z a-z 0-9 _ . -",
            ])
        }
    }

    /// Property: any input, however broken, gives either a model or diagnostics
    /// whose lines exist in the input; it never crashes.
    func testRandomInputNeverCrashes() {
        let pieces: [[UInt8]] = [
            "[", "]", "=", ";", "#", " ", "\t", "\n", "\r\n", "\r", "port", "p2p", "switch", "dataplane",
            "type", "vhost-user", "tap", "socket", "ports", "a", "b", ",", "0x", "1-2", "mac", "02:00:00:00:00:01",
            "interface", "eth0", "cores", "queue-size", "256", "-", "vlan", "trunk", "all", "native-vlan", "monitor",
            "mac-lock", "true", "max-macs", "4094",
        ].map { Array($0.utf8) } + [[0x00], [0xFF], [0xC3], [0xE2, 0x82]]
        var generator = SeededGenerator(seed: 1)
        for _ in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...60, using: &generator) {
                bytes += pieces[Int.random(in: 0..<pieces.count, using: &generator)]
            }
            let lineCount = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
            do {
                _ = try SluiceConfig.parse(bytes: bytes, file: "fuzz.ini")
            } catch {
                XCTAssertFalse(error.diagnostics.isEmpty)
                for diagnostic in error.diagnostics {
                    XCTAssert((1...lineCount).contains(diagnostic.line), "\(diagnostic) in \(bytes)")
                }
            }
        }
    }
}
