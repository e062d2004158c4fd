import XCTest

@testable import Config

/// `[disk]` and `[blk]` sections: decoding, defaults, and every error with its line.
final class BlockConfigTests: XCTestCase {
    private func parse(_ text: String) throws -> SluiceConfig {
        try SluiceConfig.parse(text: "[dataplane]\nsocket-dir = /run/s\n" + text, file: "t.ini")
    }

    private func errors(_ text: String) -> [String] {
        do throws(ConfigError) {
            _ = try SluiceConfig.parse(text: "[dataplane]\nsocket-dir = /run/s\n" + text, file: "t.ini")
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    func testWholeDiskAndPartitionExports() throws {
        let c = try parse("""
            [disk d0]
            file = /var/lib/d0.img
            block-size = 4096
            [blk a]
            device = disk:d0
            socket = a.sock
            queues = 4
            queue-size = 1024
            read-only = true
            serial = disk-a
            [blk b]
            device = 0fc63daf-8483-4772-8e79-3d69d8477de4
            socket = /tmp/b.sock
            mode = client
            """)
        XCTAssertEqual(c.disks, [DiskConfig(name: "d0", line: 3, file: "/var/lib/d0.img", fileLine: 4, blockSize: 4096)])
        XCTAssertEqual(c.blks.map(\.name), ["a", "b"])
        let a = c.blks[0], b = c.blks[1]
        XCTAssertEqual(a.device, .disk("d0"))
        XCTAssertEqual(a.socket, "/run/s/a.sock")
        XCTAssertEqual([a.queues, a.queueSize], [4, 1024])
        XCTAssertTrue(a.readOnly)
        XCTAssertEqual(a.serial, "disk-a")
        XCTAssertTrue(a.serialGiven)
        XCTAssertEqual(b.device, .partition("0FC63DAF-8483-4772-8E79-3D69D8477DE4"))
        XCTAssertEqual(b.mode, .client)
        XCTAssertEqual(b.serial, "b", "the serial defaults to the section name")
        XCTAssertFalse(b.serialGiven, "an NVMe export answers GET_ID with the controller's serial then")
        XCTAssertEqual([b.queues, b.queueSize, b.dsMax], [1, 256, PortConfig.defaultDsMax])
        XCTAssertFalse(b.readOnly)
    }

    func testErrorsNameTheirLines() {
        let e = errors("""
            [disk d0]
            file = d0.img
            block-size = 1024
            [disk d1]
            [blk a]
            device = disk:dd0
            socket = a.sock
            serial = this-serial-is-far-too-long
            queues = 17
            queue-size = 100
            [blk b]
            device = 0FC63DAF-8483-4772
            socket = b.sock
            read-only = perhaps
            [blk c]
            socket = c.sock
            colour = blue
            """)
        XCTAssertEqual(e, [
            "t.ini:4: 'file' must be an absolute path, got 'd0.img'",
            "t.ini:5: bad 'block-size' '1024': 512 or 4096",
            "t.ini:6: missing required key 'file' in [disk d1] (a regular file or a block device)",
            "t.ini:8: blk 'a': no [disk dd0] section (did you mean 'd0'?)",
            "t.ini:10: bad 'serial' 'this-serial-is-far-too-long': at most 20 printable ASCII characters",
            "t.ini:11: 'queues' must be in 1..16, got 17",
            "t.ini:12: 'queue-size' must be a power of two in 1..32768, got '100'",
            "t.ini:14: bad 'device' '0FC63DAF-8483-4772': use disk:NAME for a whole [disk], SERIAL:nN for namespace N of the NVMe controller with that serial (e.g. SN1234:n1), or a GPT partition GUID such as 0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "t.ini:16: 'read-only' must be true or false, got 'perhaps'",
            "t.ini:17: missing required key 'device' in [blk c] (disk:NAME, SERIAL:nN or a GPT partition GUID)",
            "t.ini:19: unknown key 'colour' in [blk c]",
        ], e.joined(separator: "\n"))
    }

    func testASocketIsUsedOnce() {
        let e = errors("""
            [port vm1]
            type = vhost-user
            socket = x.sock
            [disk d0]
            file = /d0.img
            [blk a]
            device = disk:d0
            socket = x.sock
            [blk b]
            device = disk:d0
            socket = /run/s/x.sock
            """)
        XCTAssertEqual(e.count, 2, e.joined(separator: "\n"))
        XCTAssertTrue(e[0].hasPrefix("t.ini:10: socket path '/run/s/x.sock' is already used by port 'vm1' (line 5)"), e[0])
    }
}
