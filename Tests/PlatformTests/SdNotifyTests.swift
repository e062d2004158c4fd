import XCTest
import Glibc
@testable import Platform

/// sd_notify by hand: a fake service manager binds a datagram socket and reads
/// what `SdNotify` sends. Also the socket file ownership set before listen.
final class SdNotifyTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/sdnotify-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp") }
        dir = String(cString: made)
    }

    override func tearDown() {
        _ = Glibc.system("rm -rf '\(dir)'")
    }

    /// A datagram socket bound at `address` (a path, or `@name` for an abstract one).
    private func fakeManager(_ address: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var addr = sockaddr_un()
        let length = try SdNotify.address(address, into: &addr)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        if r != 0 { throw SystemError("bind \(address)") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    private func receive(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n < 0 ? nil : String(decoding: buffer[0..<n], as: UTF8.self)
    }

    func testReadyAndStoppingReachAPathSocket() throws {
        let path = dir + "/notify"
        let fd = try fakeManager(path)
        defer { close(fd) }
        XCTAssertTrue(try SdNotify.send(["READY=1", "STATUS=2 workers"], to: path))
        XCTAssertEqual(receive(fd), "READY=1\nSTATUS=2 workers\n")

        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        try SdNotify.ready(status: "one\ntwo")
        XCTAssertEqual(receive(fd), "READY=1\nSTATUS=one two\n", "a status stays one line")
        try SdNotify.stopping()
        XCTAssertEqual(receive(fd), "STOPPING=1\n")
    }

    func testAbstractSocket() throws {
        let name = "@sluice-sdnotify-test-\(getpid())"
        let fd = try fakeManager(name)
        defer { close(fd) }
        setenv("NOTIFY_SOCKET", name, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        try SdNotify.status("idle")
        XCTAssertEqual(receive(fd), "STATUS=idle\n")
    }

    func testReloadingCarriesMonotonicTime() throws {
        let path = dir + "/notify"
        let fd = try fakeManager(path)
        defer { close(fd) }
        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        let before = Clock.monotonicNanos() / 1000
        try SdNotify.reloading()
        let after = Clock.monotonicNanos() / 1000
        let text = try XCTUnwrap(receive(fd))
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.first, "RELOADING=1")
        let usec = try XCTUnwrap(lines.first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst(15)) })
        XCTAssertTrue((before...after).contains(usec), "\(usec) not in \(before)...\(after)")
    }

    func testNothingIsSentWithoutNotifySocket() throws {
        unsetenv("NOTIFY_SOCKET")
        XCTAssertNil(SdNotify.socketFromEnvironment)
        XCTAssertFalse(try SdNotify.send(["READY=1"]))
        try SdNotify.ready()   // no error either
        setenv("NOTIFY_SOCKET", "", 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        XCTAssertNil(SdNotify.socketFromEnvironment, "an empty variable is no socket")
    }

    func testBadOrAbsentSocketIsAnError() {
        XCTAssertThrowsError(try SdNotify.send(["READY=1"], to: "relative/path")) { error in
            XCTAssertTrue("\(error)".contains("neither an absolute path nor an @abstract name"), "\(error)")
        }
        XCTAssertThrowsError(try SdNotify.send(["READY=1"], to: dir + "/nobody-listens")) { error in
            XCTAssertEqual((error as? SystemError)?.errno, ENOENT, "\(error)")
        }
        XCTAssertThrowsError(try SdNotify.send(["READY=1"], to: "/" + String(repeating: "x", count: 200)))
    }

    func testListenSetsModeBeforeClientsCanConnect() throws {
        let path = dir + "/s.sock"
        let listener = try UnixSocket.listen(path: path, access: UnixSocket.FileAccess(mode: 0o600))
        var st = stat()
        XCTAssertEqual(lstat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        _ = listener
        let other = dir + "/default.sock"
        let second = try UnixSocket.listen(path: other)
        XCTAssertEqual(lstat(other, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o660, "the default mode is 0660")
        _ = second
    }

    func testListenChownsTheSocketFile() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root: chown of a socket file to another user")
        let nobody = try XCTUnwrap(Accounts.userID(named: "nobody"), "no user nobody on this host")
        let path = dir + "/owned.sock"
        let listener = try UnixSocket.listen(path: path, access: UnixSocket.FileAccess(uid: nobody, gid: 0, mode: 0o640))
        var st = stat()
        XCTAssertEqual(lstat(path, &st), 0)
        XCTAssertEqual(st.st_uid, nobody)
        XCTAssertEqual(st.st_gid, 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o640)
        _ = listener
    }

    func testAccountLookups() {
        XCTAssertEqual(Accounts.userID(named: "root"), 0)
        XCTAssertEqual(Accounts.groupID(named: "root"), 0)
        XCTAssertNil(Accounts.userID(named: "sluice-no-such-user"))
        XCTAssertNil(Accounts.groupID(named: "sluice-no-such-group"))
    }
}
