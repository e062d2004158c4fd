import Config
import Foundation
import XCTest
@testable import Services

final class LeaseStoreTests: XCTestCase {
    let now: UInt64 = 1_700_000_000
    let router = MACAddress("02:00:00:00:00:fe")!

    func net(_ v4: String? = "10.0.0.0/24", _ v6: String? = "fd00:1::/64") -> NetworkServiceConfig {
        var host = false
        return NetworkServiceConfig(name: "prod", ipv4Subnet: v4.flatMap { IPv4Prefix($0, hostBitsSet: &host) },
                                    ipv6Prefix: v6.flatMap { IPv6Prefix($0, hostBitsSet: &host) }, routerMAC: router)
    }

    func mac(_ n: Int) -> MACAddress { MACAddress(bytes: (0x02, 0, 0, 0, UInt8(n >> 8), UInt8(n & 0xFF))) }

    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "sluice-leases-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testAllocationIsStablePerMACAndStaysInThePool() throws {
        let a = try LeaseStore(network: net(), path: nil), b = try LeaseStore(network: net(), path: nil)
        var seen = Set<IPv4Address>()
        for n in 0..<200 {
            let x = try XCTUnwrap(a.allocate4(mac: mac(n), port: "p\(n)", requested: nil, staticAddress: nil, now: now))
            XCTAssertTrue(a.inPool4(x), "\(x)")
            XCTAssertNotEqual(x, IPv4Address("10.0.0.0")!)
            XCTAssertNotEqual(x, IPv4Address("10.0.0.255")!)
            XCTAssertTrue(seen.insert(x).inserted, "\(x) handed out twice")
            // The same MAC again: the same address (its own record wins).
            XCTAssertEqual(a.allocate4(mac: mac(n), port: "p\(n)", requested: IPv4Address("10.0.0.9"), staticAddress: nil, now: now), x)
        }
        // Another store, same order of MACs: the same answers (the hash is not per process).
        for n in 0..<200 {
            XCTAssertEqual(b.allocate4(mac: mac(n), port: "p\(n)", requested: nil, staticAddress: nil, now: now),
                           a.lease(for: mac(n))?.ipv4)
        }
        // The first MAC alone in a fresh store gets its hash's address, whatever the order.
        let c = try LeaseStore(network: net(), path: nil)
        XCTAssertEqual(c.allocate4(mac: mac(0), port: "p0", requested: nil, staticAddress: nil, now: now), a.lease(for: mac(0))?.ipv4)
    }

    func testRequestedAddressHonouredWhenFree() throws {
        let s = try LeaseStore(network: net(), path: nil)
        let wanted = IPv4Address("10.0.0.77")!
        XCTAssertEqual(s.allocate4(mac: mac(1), port: "a", requested: wanted, staticAddress: nil, now: now), wanted)
        // Taken (offered to mac 1): mac 2 gets another one.
        let other = s.allocate4(mac: mac(2), port: "b", requested: wanted, staticAddress: nil, now: now)
        XCTAssertNotEqual(other, wanted)
        XCTAssertNotNil(other)
        // Outside the pool: ignored.
        let third = s.allocate4(mac: mac(3), port: "c", requested: IPv4Address("10.0.1.7")!, staticAddress: nil, now: now)
        XCTAssertTrue(third.map(s.inPool4) == true)
    }

    func testStaticsAreNeverHandedToOthers() throws {
        let s = try LeaseStore(network: net("10.0.0.0/29", nil), path: nil)  // .1 … .6 usable
        let statics = (1...5).map { ServicePort(name: "s\($0)", staticIPv4: IPv4Address(10, 0, 0, UInt8($0))) }
        s.reserveStatics(statics + [ServicePort(name: "dyn")])
        let first = s.allocate4(mac: mac(1), port: "dyn", requested: IPv4Address("10.0.0.2"), staticAddress: nil, now: now)
        XCTAssertEqual(first, IPv4Address("10.0.0.6"), "the only address that is not another port's static")
        XCTAssertNil(s.allocate4(mac: mac(2), port: "dyn2", requested: nil, staticAddress: nil, now: now), "pool exhausted")
        // A static port gets its own address, even one a dynamic MAC once held.
        XCTAssertEqual(s.allocate4(mac: mac(3), port: "s3", requested: nil, staticAddress: IPv4Address("10.0.0.3"), now: now),
                       IPv4Address("10.0.0.3"))
    }

    func testExhaustionAndReclaimOfExpiredLeases() throws {
        let s = try LeaseStore(network: net("10.0.0.0/29", nil), path: nil)
        var got: [IPv4Address] = []
        for n in 0..<6 {
            let a = try XCTUnwrap(s.allocate4(mac: mac(n), port: "p", requested: nil, staticAddress: nil, now: now))
            s.commit4(mac: mac(n), address: a, until: now + 100 + UInt64(n))
            got.append(a)
        }
        XCTAssertEqual(Set(got).count, 6)
        XCTAssertNil(s.allocate4(mac: mac(9), port: "p", requested: nil, staticAddress: nil, now: now))
        // Expiry: events for the bindings that ended, and the oldest one is reclaimed first.
        let events = s.expire(now: now + 101)
        XCTAssertEqual(Set(events.map { "\($0)" }),
                       Set([AddressEvent.released4(port: "p", mac: mac(0), address: got[0]),
                            .released4(port: "p", mac: mac(1), address: got[1])].map { "\($0)" }))
        XCTAssertEqual(s.allocate4(mac: mac(9), port: "p", requested: nil, staticAddress: nil, now: now + 101), got[0])
        XCTAssertNil(s.lease(for: mac(0))?.ipv4)
        // mac 1's expired record is still its own: it gets the same address back.
        XCTAssertEqual(s.allocate4(mac: mac(1), port: "p", requested: nil, staticAddress: nil, now: now + 101), got[1])
    }

    func testOffersLapse() throws {
        let s = try LeaseStore(network: net("10.0.0.0/30", nil), path: nil)  // usable: .1 and .2
        let a = try XCTUnwrap(s.allocate4(mac: mac(1), port: "a", requested: nil, staticAddress: nil, now: now))
        let b = try XCTUnwrap(s.allocate4(mac: mac(2), port: "b", requested: nil, staticAddress: nil, now: now))
        XCTAssertEqual(Set([a, b]), [IPv4Address("10.0.0.1")!, IPv4Address("10.0.0.2")!])
        s.commit4(mac: mac(2), address: b, until: now + 3600)
        XCTAssertNil(s.allocate4(mac: mac(3), port: "c", requested: nil, staticAddress: nil, now: now + 10))
        XCTAssertEqual(s.allocate4(mac: mac(3), port: "c", requested: nil, staticAddress: nil, now: now + s.offerSeconds + 1), a,
                       "an offer that was never requested frees its address")
    }

    func testDeclineQuarantines() throws {
        let s = try LeaseStore(network: net(), path: nil)
        let a = try XCTUnwrap(s.allocate4(mac: mac(1), port: "a", requested: nil, staticAddress: nil, now: now))
        s.decline4(address: a, now: now)
        let b = try XCTUnwrap(s.allocate4(mac: mac(1), port: "a", requested: a, staticAddress: nil, now: now + 1))
        XCTAssertNotEqual(a, b, "a declined address is not offered again")
        XCTAssertNotEqual(s.allocate4(mac: mac(2), port: "b", requested: a, staticAddress: nil, now: now + 2), a)
        _ = s.expire(now: now + s.quarantineSeconds + 1)
        XCTAssertEqual(s.allocate4(mac: mac(3), port: "c", requested: a, staticAddress: nil, now: now + s.quarantineSeconds + 1), a)
    }

    func testReleaseKeepsTheAddressForTheMAC() throws {
        let s = try LeaseStore(network: net(), path: nil)
        let a = try XCTUnwrap(s.allocate4(mac: mac(1), port: "a", requested: nil, staticAddress: nil, now: now))
        XCTAssertNil(s.release4(mac: mac(2)))
        s.commit4(mac: mac(1), address: a, until: now + 60)
        XCTAssertEqual(s.release4(mac: mac(1)), a)
        XCTAssertNil(s.release4(mac: mac(1)), "released once")
        XCTAssertEqual(s.lease(for: mac(1))?.state4, .released)
        XCTAssertNotEqual(s.allocate4(mac: mac(2), port: "b", requested: a, staticAddress: nil, now: now), a,
                          "remembered for its MAC while other addresses are free")
        XCTAssertEqual(s.allocate4(mac: mac(1), port: "a", requested: nil, staticAddress: nil, now: now), a)
    }

    func testIPv6AllocationInPrefix() throws {
        let s = try LeaseStore(network: net(nil, "fd00:1::/64"), path: nil)
        let prefix = s.network.ipv6Prefix!
        var seen = Set<IPv6Address>()
        for n in 0..<50 {
            let a = try XCTUnwrap(s.allocate6(mac: mac(n), port: "p", duid: [0, 3, 0, 1] + mac(n).octets, iaid: 7, staticAddress: nil, now: now))
            XCTAssertTrue(prefix.contains(a))
            XCTAssertNotEqual(a, prefix.address)
            XCTAssertNotEqual(a, s.network.routerIPv6Global)
            XCTAssertTrue(seen.insert(a).inserted)
            XCTAssertEqual(s.allocate6(mac: mac(n), port: "p", duid: [1], iaid: 1, staticAddress: nil, now: now), a)
        }
        let tiny = try LeaseStore(network: net(nil, "fd00:1::/126"), path: nil)  // ::2 and ::3
        XCTAssertNotNil(tiny.allocate6(mac: mac(1), port: "a", duid: [1], iaid: 1, staticAddress: nil, now: now))
        XCTAssertNotNil(tiny.allocate6(mac: mac(2), port: "b", duid: [2], iaid: 1, staticAddress: nil, now: now))
        XCTAssertNil(tiny.allocate6(mac: mac(3), port: "c", duid: [3], iaid: 1, staticAddress: nil, now: now))
        let v4only = try LeaseStore(network: net("10.0.0.0/24", nil), path: nil)
        XCTAssertNil(v4only.allocate6(mac: mac(1), port: "a", duid: [1], iaid: 0, staticAddress: nil, now: now))
    }

    func testPersistenceRoundTrip() throws {
        let path = try tempDir() + "/leases-prod"
        let s = try LeaseStore(network: net(), path: path)
        s.reserveStatics([ServicePort(name: "vm 9", staticIPv4: IPv4Address("10.0.0.9"))])
        let a = try XCTUnwrap(s.allocate4(mac: mac(1), port: "vm1", requested: nil, staticAddress: nil, now: now))
        s.commit4(mac: mac(1), address: a, until: now + 3600)
        let b6 = try XCTUnwrap(s.allocate6(mac: mac(1), port: "vm1", duid: [0, 1, 2, 3], iaid: 42, staticAddress: nil, now: now))
        s.commit6(mac: mac(1), address: b6, until: now + 7200)
        let c = try XCTUnwrap(s.allocate4(mac: mac(2), port: "vm 9", requested: nil, staticAddress: IPv4Address("10.0.0.9"), now: now))
        s.commit4(mac: mac(2), address: c, until: now + 10)
        _ = s.release4(mac: mac(2))
        s.decline4(address: IPv4Address("10.0.0.100")!, now: now)
        XCTAssertNil(s.persistProblem)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.contains("port=vm%209"), text)
        XCTAssertTrue(text.hasSuffix("end 3\n"), text)

        let again = try LeaseStore(network: net(), path: path)
        XCTAssertEqual(again.all, s.all)
        XCTAssertEqual(again.lease(for: mac(1))?.duid, [0, 1, 2, 3])
        XCTAssertEqual(again.lease(for: mac(1))?.iaid, 42)
        XCTAssertEqual(again.activeBindings(now: now + 1), [.bound4(port: "vm1", mac: mac(1), address: a),
                                                            .bound6(port: "vm1", mac: mac(1), address: b6)])
        // After a restart the MAC gets its address again, and the quarantine still holds.
        XCTAssertEqual(again.allocate4(mac: mac(1), port: "vm1", requested: nil, staticAddress: nil, now: now + 5), a)
        XCTAssertNotEqual(again.allocate4(mac: mac(3), port: "x", requested: IPv4Address("10.0.0.100"), staticAddress: nil, now: now),
                          IPv4Address("10.0.0.100"))
        // A changed subnet drops the addresses that left it, not the file.
        let moved = try LeaseStore(network: net("10.1.0.0/24", "fd00:1::/64"), path: path)
        XCTAssertNil(moved.lease(for: mac(1))?.ipv4)
        XCTAssertEqual(moved.lease(for: mac(1))?.ipv6, b6)
    }

    func testCorruptFilesAreReportedWithTheirLine() throws {
        let dir = try tempDir()
        func load(_ text: String) -> String? {
            let path = dir + "/leases-prod"
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            do { _ = try LeaseStore(network: net(), path: path); return nil } catch { return "\(error)" }
        }
        let good = "version 1\nnetwork prod\nlease mac=02:00:00:00:00:01 port=a v4=10.0.0.5 state4=bound until4=5\n"
        XCTAssertNil(load(good + "end 1\n"))
        XCTAssertEqual(load(good), "\(dir)/leases-prod:4: no 'end' line: the file was cut short")
        XCTAssertEqual(load(String(good.dropLast(20))), "\(dir)/leases-prod:3: 'st' is not key=value")
        XCTAssertEqual(load(String(good.dropLast(1))), "\(dir)/leases-prod:3: no 'end' line: the file was cut short")
        XCTAssertEqual(load(good + "end 2\n"), "\(dir)/leases-prod:4: 'end 2' but 1 records precede it (damaged file)")
        XCTAssertEqual(load("version 1\nnetwork prod\nlease mac=zz port=a\nend 1\n"), "\(dir)/leases-prod:3: missing or bad mac=")
        XCTAssertEqual(load("version 1\nnetwork prod\nlease mac=02:00:00:00:00:01 port=a v4=10.0.0.300 state4=bound until4=5\nend 1\n"),
                       "\(dir)/leases-prod:3: '10.0.0.300' is not an IPv4 address")
        XCTAssertEqual(load("version 1\nnetwork test\nend 0\n"), "\(dir)/leases-prod:2: the file belongs to network 'test', not 'prod'")
        XCTAssertEqual(load("version 2\n"), "\(dir)/leases-prod:1: expected 'version 1' (not a sluice lease file, or a newer one)")
        XCTAssertEqual(load(""), "\(dir)/leases-prod: empty lease file (no 'version' line)")
        XCTAssertEqual(load("version 1\nbogus\nend 0\n"), "\(dir)/leases-prod:2: unknown record 'bogus'")
        XCTAssertEqual(load(good + "end 1\nlease x\n"), "\(dir)/leases-prod:5: text after the 'end' line")
        XCTAssertEqual(load("version 1\nlease mac=02:00:00:00:00:01 port=a duid=0g iaid=1\nend 1\n"), "\(dir)/leases-prod:2: bad duid=")
        XCTAssertNotNil(load(String(decoding: [0xFF, 0xFE, 0x00, 0x0A, 0x80], as: UTF8.self)))
    }

    func testWriteFailureIsReportedNotFatal() throws {
        let path = try tempDir() + "/missing-dir/leases-prod"
        let s = try LeaseStore(network: net(), path: path)
        let a = try XCTUnwrap(s.allocate4(mac: mac(1), port: "a", requested: nil, staticAddress: nil, now: now))
        s.commit4(mac: mac(1), address: a, until: now + 60)
        XCTAssertNotNil(s.persistProblem)
        XCTAssertTrue(s.persistProblem!.contains("missing-dir"), s.persistProblem!)
        XCTAssertEqual(s.lease(for: mac(1))?.state4, .bound, "answers go on from memory")
    }
}
