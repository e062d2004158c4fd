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

final class OwnedFDTests: XCTestCase {
    private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

    private func pipePair() throws -> (read: Int32, write: Int32) {
        var p: [Int32] = [-1, -1]
        guard pipe(&p) == 0 else { throw SystemError("pipe") }
        return (p[0], p[1])
    }

    /// Takes the owner and lets it go: the fd closes here.
    private func drop(_ fd: consuming OwnedFD) {}

    func testClosesWhenTheOwnerGoesAway() throws {
        let (r, w) = try pipePair()
        defer { closeFD(r) }
        do {
            let owner = OwnedFD(adopting: w)
            XCTAssertEqual(owner.raw, w)
            XCTAssertTrue(isOpen(w))
            drop(owner)
        }
        XCTAssertFalse(isOpen(w), "the owner closes its fd")
        XCTAssertEqual(errno, EBADF)
        var byte: UInt8 = 0
        XCTAssertEqual(read(r, &byte, 1), 0, "the only write end is gone: EOF")
    }

    func testClosesExactlyOnce() throws {
        let (r, w) = try pipePair()
        defer { closeFD(r) }
        OwnedFD(adopting: w).close()
        XCTAssertFalse(isOpen(w))
        // The lowest free number is handed out next: w again. Nothing may close
        // it a second time on behalf of the owner that is already gone.
        let reuse = dup(r)
        defer { closeFD(reuse) }
        XCTAssertEqual(reuse, w, "fd numbers are reused lowest-first")
        let other = OwnedFD(adopting: try EventFD.create())
        drop(other)
        XCTAssertTrue(isOpen(reuse), "a closed owner never closes a reused number")
    }

    func testReleaseDoesNotClose() throws {
        let (r, w) = try pipePair()
        defer { closeFD(r) }
        let owner = OwnedFD(adopting: w)
        let raw = owner.release()
        XCTAssertEqual(raw, w)
        XCTAssertTrue(isOpen(w), "release hands the fd on open")
        var byte: UInt8 = 7
        XCTAssertEqual(write(w, &byte, 1), 1)
        byte = 0
        XCTAssertEqual(read(r, &byte, 1), 1)
        XCTAssertEqual(byte, 7)
        closeFD(raw)
    }

    func testNegativeIsNeverClosed() {
        drop(OwnedFD(adopting: -1))
    }
}

final class UnixSocketTests: XCTestCase {
    func testPairCarriesBytesAndFDs() throws {
        let pair = try UnixSocket.pair()
        let a = pair.first, b = pair.second
        XCTAssertTrue(fcntl(a.raw, F_GETFD) & FD_CLOEXEC != 0)
        let ev = OwnedFD(adopting: try EventFD.create())
        let (aRaw, bRaw, evRaw) = (a.raw, b.raw, ev.raw)
        let sent = try [UInt8]([1, 2, 3]).withUnsafeBytes { raw throws(SystemError) in
            try UnixSocket.send(aRaw, raw, fds: [evRaw])
        }
        XCTAssertEqual(sent, 3)
        var fds = OwnedFDs()
        var buffer = [UInt8](repeating: 0, count: 8)
        let got = try buffer.withUnsafeMutableBytes { raw throws(SystemError) in
            try UnixSocket.receive(bRaw, into: raw, fds: &fds, maxFDs: 4)
        }
        XCTAssertEqual(got, 3)
        XCTAssertEqual(Array(buffer.prefix(3)), [1, 2, 3])
        XCTAssertEqual(fds.count, 1)
        let received = fds.release()
        XCTAssertNotEqual(received[0], ev.raw, "a new fd for the same eventfd")
        EventFD.signal(received[0])
        XCTAssertEqual(EventFD.drain(ev.raw), 1)
        closeFD(received[0])
    }

    func testReceiveRefusesTooManyFDs() throws {
        let pair = try UnixSocket.pair()
        let e1 = OwnedFD(adopting: try EventFD.create()), e2 = OwnedFD(adopting: try EventFD.create())
        let (first, second, fd1, fd2) = (pair.first.raw, pair.second.raw, e1.raw, e2.raw)
        _ = try [UInt8]([9]).withUnsafeBytes { raw throws(SystemError) in try UnixSocket.send(first, raw, fds: [fd1, fd2]) }
        var fds = OwnedFDs()
        var buffer = [UInt8](repeating: 0, count: 1)
        do {
            _ = try buffer.withUnsafeMutableBytes { raw throws(SystemError) in
                try UnixSocket.receive(second, into: raw, fds: &fds, maxFDs: 1)
            }
            XCTFail("two fds with room for one")
        } catch {
            XCTAssertEqual((error as? SystemError)?.errno, EMSGSIZE)
        }
        XCTAssertEqual(fds.count, 0)
    }

    func testListenConnectAcceptAndStaleSocket() throws {
        let path = "/tmp/sl-unix-test-\(getpid()).sock"
        defer { UnixSocket.removeFile(path) }
        do {
            let listener = try UnixSocket.listen(path: path)
            let client = try UnixSocket.connect(path: path)
            let server = try UnixSocket.accept(listener.raw)
            XCTAssertTrue(fcntl(server.raw, F_GETFD) & FD_CLOEXEC != 0)
            XCTAssertEqual(try Poll.wait(server.raw, for: Poll.readable, timeoutMilliseconds: 0), nil)
            XCTAssertFalse(Poll.peerClosed(server.raw))
            client.close()
            XCTAssertTrue(Poll.peerClosed(server.raw))
            XCTAssertThrowsError(try UnixSocket.listen(path: path).release()) { e in
                XCTAssertEqual((e as? SystemError)?.errno, EADDRINUSE)
            }
            _ = try UnixSocket.accept(listener.raw)   // the probe's connection
        }
        // Nobody listens any more: the stale socket file is replaced.
        _ = try UnixSocket.listen(path: path)
    }
}
