import XCTest
import Glibc
@testable import Platform

final class PlatformTests: XCTestCase {
    func testHugepageAutoFallsBackWithOneWarning() throws {
        let mem = try Hugepages.allocate(bytes: 1 << 20, policy: .auto, name: "t")
        if mem.region.isHuge {
            XCTAssertNil(mem.warning)
        } else {
            XCTAssertNotNil(mem.warning, "a fallback to normal pages must say so")
        }
        mem.region.base.storeBytes(of: 42, toByteOffset: mem.region.length - 1, as: UInt8.self)
        XCTAssertGreaterThanOrEqual(mem.region.fd, 0, "packet memory is an fd that can be shared")
    }

    func testHugepageOffNeverWarns() throws {
        let mem = try Hugepages.allocate(bytes: 4096, policy: .off)
        XCTAssertFalse(mem.region.isHuge)
        XCTAssertNil(mem.warning)
    }

    func testHugepageOnFailsClearlyWithoutPages() throws {
        guard Hugepages.freePages == 0 else { throw XCTSkip("host has free huge pages; the 'on' failure path cannot be shown") }
        XCTAssertThrowsError(try Hugepages.allocate(bytes: 1 << 21, policy: .on)) { e in
            XCTAssertTrue("\(e)".contains("hugepages = on"), "\(e)")
        }
    }

    func testHugepagesWhenAvailable() throws {
        guard Hugepages.freePages >= 2, Hugepages.defaultPageSize != nil else {
            throw XCTSkip("needs 2 free huge pages (echo 64 > /proc/sys/vm/nr_hugepages as root)")
        }
        let mem = try Hugepages.allocate(bytes: 1 << 21, policy: .on)
        XCTAssertTrue(mem.region.isHuge)
    }

    func testEventFDAndEpollWake() throws {
        let ev = try EventFD.create()
        defer { closeFD(ev) }
        let ep = try Epoll()
        try ep.add(ev, token: 7)
        XCTAssertEqual(ep.waitAny(timeoutMillis: 0), 0)
        EventFD.signal(ev); EventFD.signal(ev)
        var tokens: [UInt64] = []
        ep.wait(timeoutMillis: 100) { t, _ in tokens.append(t) }
        XCTAssertEqual(tokens, [7])
        XCTAssertEqual(EventFD.drain(ev), 2)
        XCTAssertEqual(EventFD.drain(ev), 0)
    }

    func testOnlineCPUsAndPinning() throws {
        let cpus = CPUInfo.onlineCPUs()
        XCTAssertFalse(cpus.isEmpty)
        let first = cpus.min()!
        final class Out: @unchecked Sendable { var cpu: Int32 = -1; var err: (any Error)? }
        let out = Out()
        let t = try OSThread(name: "pin") {
            do { try OSThread.pinCurrent(to: first); out.cpu = Int32(OSThread.currentCPU) } catch { out.err = error }
        }
        t.join()
        XCTAssertNil(out.err)
        XCTAssertEqual(Int(out.cpu), first)
        XCTAssertThrowsError(try OSThread.pinCurrent(to: 1000))
    }

    func testClockIsMonotonicAndTSCCalibrated() {
        let a = Clock.monotonicNanos(), b = Clock.monotonicNanos()
        XCTAssertGreaterThanOrEqual(b, a)
        XCTAssertGreaterThan(Clock.cyclesPerSecond, 1e8)
    }
}
