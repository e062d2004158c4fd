import Foundation
import XCTest

@testable import Stats

final class LeaseSegmentTests: XCTestCase {
    let v6: [UInt8] = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]

    func path(_ tag: String) -> String { NSTemporaryDirectory() + "lease-seg-\(tag)-\(getpid())" }

    func testPublishThenReadBack() throws {
        let p = path("rt")
        let segment = try LeaseSegment(path: p, capacity: 4)
        defer { segment.remove() }
        XCTAssertEqual(try LeaseReader.read(path: p).rows, [], "empty before the first publish")
        let rows = [
            LeaseRow(mac: [2, 0, 0, 0, 0x10, 1], ipv4: [10, 0, 0, 5], ipv6: v6, port: "vm1", expiry4: 1000, expiry6: 2000,
                     bound4: true, bound6: false),
            LeaseRow(mac: [2, 0, 0, 0, 0x10, 2], ipv4: [10, 0, 0, 6], port: String(repeating: "p", count: 40), expiry4: 50, bound4: true),
        ]
        segment.publish(rows, now: 900)
        let t = try LeaseReader.read(path: p)
        XCTAssertEqual(t.rows[0], rows[0])
        XCTAssertEqual(t.rows[1].port, String(repeating: "p", count: 31), "names cut to the 31 bytes the field holds")
        XCTAssertEqual(t.rows[1].ipv6, nil)
        XCTAssertEqual(t.rows[1].expiry6, 0)
        XCTAssertEqual(t.published, 900)
        XCTAssertEqual(t.total, 2)
        XCTAssertEqual(t.writerPID, getpid())
        XCTAssertEqual(t.rows[0].ipv6Text, "fd00:1::5")
        XCTAssertEqual(t.rows[0].macText, "02:00:00:00:10:01")
        // A smaller table replaces the larger one; more rows than capacity are counted, not shown.
        segment.publish(Array(repeating: rows[0], count: 6), now: 901)
        let full = try LeaseReader.read(path: p)
        XCTAssertEqual(full.rows.count, 4)
        XCTAssertEqual(full.total, 6)
        segment.publish([], now: 902)
        XCTAssertEqual(try LeaseReader.read(path: p).rows, [])
        var info = stat()
        XCTAssertEqual(stat(p, &info), 0)
        XCTAssertEqual(Int(info.st_size), LeaseLayout.headerSize + 4 * LeaseLayout.recordSize)
        segment.remove()
        XCTAssertNotEqual(stat(p, &info), 0, "removed")
    }

    func testTextAndJSON() {
        let table = LeaseReader.Table(rows: [
            LeaseRow(mac: [2, 0, 0, 0, 0x10, 1], ipv4: [10, 0, 0, 5], ipv6: v6, port: "vm1", expiry4: 1100, expiry6: 900,
                     bound4: true, bound6: false),
            LeaseRow(mac: [2, 0, 0, 0, 0x10, 2], ipv6: v6, port: "a\"b", expiry6: 1300, bound6: true),
        ], published: 1000, total: 3, writerPID: 1)
        XCTAssertEqual(LeaseTableText.render(table, network: "prod", json: false, now: 1000), """
            mac                ipv4            left4   ipv6                                    left6   port
            02:00:00:00:10:01  10.0.0.5        100     fd00:1::5                               0*      vm1
            02:00:00:00:10:02  -               -       fd00:1::5                               300     a"b
            2 lease(s) in network 'prod', 1 more not shown (table full); * offered, released or expired

            """)
        XCTAssertEqual(LeaseTableText.render(table, network: "prod", json: true, now: 1000),
                       "{\"network\":\"prod\",\"total\":3,\"leases\":["
                       + "{\"mac\":\"02:00:00:00:10:01\",\"port\":\"vm1\",\"ipv4\":\"10.0.0.5\",\"ipv4_bound\":true,\"ipv4_expires_in\":100,"
                       + "\"ipv6\":\"fd00:1::5\",\"ipv6_bound\":false,\"ipv6_expires_in\":0},"
                       + "{\"mac\":\"02:00:00:00:10:02\",\"port\":\"a\\\"b\",\"ipv4\":null,\"ipv4_bound\":false,\"ipv4_expires_in\":null,"
                       + "\"ipv6\":\"fd00:1::5\",\"ipv6_bound\":true,\"ipv6_expires_in\":300}]}\n")
        XCTAssertEqual(LeaseRow.ipv6Text([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]), "2001:db8::1:0:0:1")
        XCTAssertEqual(LeaseRow.ipv6Text([UInt8](repeating: 0, count: 16)), "::")
    }

    /// A reader racing a writer only ever sees whole tables.
    func testReaderNeverSeesAHalfWrittenTable() throws {
        let p = path("race")
        let segment = try LeaseSegment(path: p, capacity: 64)
        defer { segment.remove() }
        let done = ManagedAtomicFlag()
        let finished = DispatchSemaphore(value: 0)
        let writer = Thread {
            defer { finished.signal() }
            var n: UInt8 = 0
            while !done.value {
                n &+= 1
                let rows = (0..<Int(n % 64)).map { LeaseRow(mac: [2, 0, 0, 0, n, UInt8($0)], ipv4: [10, 0, n, UInt8($0)], port: "p\(n)",
                                                           expiry4: UInt64(n), bound4: true) }
                segment.publish(rows, now: UInt64(n))
                // The daemon publishes on lease changes, not back to back: a short pause keeps
                // the race (a read takes about as long) without starving the reader on a busy CI core.
                usleep(20)
            }
        }
        writer.start()
        defer {
            done.set()
            finished.wait()  // before the segment is unmapped
        }
        for _ in 0..<2000 {
            let t = try LeaseReader.read(path: p)
            guard let first = t.rows.first else { continue }
            let n = first.mac[4]
            XCTAssertEqual(t.rows.count, Int(n % 64))
            for (i, r) in t.rows.enumerated() {
                XCTAssertEqual(r.mac, [2, 0, 0, 0, n, UInt8(i)])
                XCTAssertEqual(r.ipv4, [10, 0, n, UInt8(i)])
                XCTAssertEqual(r.port, "p\(n)")
            }
            XCTAssertEqual(t.published, UInt64(n))
        }
    }

    func testReaderRefusesOtherFiles() throws {
        let p = path("short")
        defer { unlink(p) }
        _ = FileManager.default.createFile(atPath: p, contents: Data([1, 2, 3]))
        XCTAssertThrowsError(try LeaseReader.read(path: p)) { XCTAssertTrue("\($0)".contains("not a sluice lease segment"), "\($0)") }
        XCTAssertThrowsError(try LeaseReader.read(path: p + ".absent")) { XCTAssertTrue("\($0)".contains("cannot open"), "\($0)") }
        XCTAssertEqual(LeaseSegment.path(instance: "x", network: "prod"), "/dev/shm/sluice-x.leases.prod")
    }
}

/// A flag one thread sets and another polls.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool { lock.lock(); defer { lock.unlock() }; return flag }
    func set() { lock.lock(); flag = true; lock.unlock() }
}
