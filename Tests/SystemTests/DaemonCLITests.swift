import XCTest
import Foundation
import Stats

/// The sluice binary as a user runs it: --check, bad input, start, live stats, SIGTERM.
final class DaemonCLITests: XCTestCase {
    private var repo: URL { URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    private func binary(_ name: String) throws -> String {
        let dirs = [ProcessInfo.processInfo.environment["SLUICE_BIN_DIR"], repo.path + "/.build/debug", repo.path + "/.build/release"].compactMap { $0 }
        for d in dirs where FileManager.default.isExecutableFile(atPath: d + "/" + name) { return d + "/" + name }
        throw XCTSkip("\(name) is not built (run swift build first; looked in \(dirs.joined(separator: ", ")))")
    }

    private func run(_ args: [String], bin: String = "sluice") throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary(bin))
        p.arguments = args
        let o = Pipe(), e = Pipe()
        p.standardOutput = o; p.standardError = e
        try p.run()
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    private func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "sluice-cli-\(UUID().uuidString).ini"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testCheckAcceptsEveryExampleConfig() throws {
        for name in ["p2p.ini", "switch.ini", "minimal.ini", "router.ini"] {
            let r = try run(["--check", "--config", repo.path + "/Configs/" + name, "--cores", "0"])
            XCTAssertEqual(r.status, 0, "\(name): \(r.err)")
            XCTAssertTrue(r.out.contains("OK"), r.out)
        }
    }

    /// A valid file that cannot run here is refused by --check, as start-up would refuse it.
    func testCheckRefusesWhatCannotRun() throws {
        let path = try write("""
        [port vm]
        type = vhost-user
        socket = /tmp/sluice-cli-vm.sock
        [port up]
        type = af-packet
        interface = sl-nosuch0
        [switch br]
        ports = vm, up
        """)
        let r = try run(["--check", "--config", path, "--cores", "0"])
        XCTAssertEqual(r.status, 1, r.out)
        XCTAssertTrue(r.err.contains("\(path):4: port up: interface 'sl-nosuch0' does not exist"), r.err)
        let jumbo = try write("""
        [port a]
        type = vhost-user
        socket = /tmp/sluice-cli-a.sock
        mtu = 9000
        [port b]
        type = vhost-user
        socket = /tmp/sluice-cli-b.sock
        [switch br]
        ports = a, b
        """)
        let j = try run(["--check", "--config", jumbo, "--cores", "0"])
        XCTAssertEqual(j.status, 1, j.out)
        XCTAssertTrue(j.err.contains("\(jumbo):1: port a: mtu 9000 is too large for switch br"), j.err)
        let badName = try run(["--check", "--config", repo.path + "/Configs/minimal.ini", "--cores", "0", "--instance", "a/b"])
        XCTAssertEqual(badName.status, 1)
        XCTAssertTrue(badName.err.contains("--instance: bad name 'a/b'"), badName.err)
    }

    /// The uplink example runs once its veth pair exists (as its comments say to create).
    func testUplinkExampleChecksWithItsVethPair() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root: creates the veth pair veth-up0")
        let ip = "/usr/sbin/ip"
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: ip) || FileManager.default.isExecutableFile(atPath: "/sbin/ip"), "needs ip (apt-get install iproute2)")
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/bin/sh")
        made.arguments = ["-c", "ip link show veth-up0 >/dev/null 2>&1 || ip link add veth-up0 type veth peer name veth-up0p"]
        try made.run(); made.waitUntilExit()
        defer {
            let del = Process()
            del.executableURL = URL(fileURLWithPath: "/bin/sh")
            del.arguments = ["-c", "ip link del veth-up0 2>/dev/null"]
            try? del.run(); del.waitUntilExit()
        }
        let r = try run(["--check", "--config", repo.path + "/Configs/switch-uplink.ini", "--cores", "0"])
        XCTAssertEqual(r.status, 0, r.err)
    }

    func testCheckReportsEveryErrorWithFileAndLine() throws {
        let path = try write("""
        [dataplane]
        poll = -3
        colour = blue
        [port a]
        type = vhost-user
        queue-size = 300
        [p2p l]
        ports = a, ghost
        """)
        let r = try run(["--check", "--config", path])
        XCTAssertEqual(r.status, 1)
        for line in [2, 3, 6, 8] {
            XCTAssertTrue(r.err.contains("\(path):\(line):"), "missing line \(line) in:\n\(r.err)")
        }
    }

    func testBadCoresAndPollAreErrors() throws {
        let cfg = repo.path + "/Configs/minimal.ini"
        let offline = try run(["--check", "--config", cfg, "--cores", "0x8000"])
        XCTAssertEqual(offline.status, 1)
        XCTAssertTrue(offline.err.contains("core 15 not online"), offline.err)
        let garbage = try run(["--check", "--config", cfg, "--cores", "1-x"])
        XCTAssertNotEqual(garbage.status, 0)
        XCTAssertTrue(garbage.err.contains("1-x"), garbage.err)
        let poll = try run(["--check", "--config", cfg, "--poll", "99999999"])
        XCTAssertNotEqual(poll.status, 0)
        let missing = try run(["--check", "--config", "/nonexistent/x.ini"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.contains("sluice: cannot read config /nonexistent/x.ini: No such file or directory"), missing.err)
    }

    /// Start, see worker counters grow through the stats segment, stop with SIGTERM:
    /// exit 0 within 2 s, no socket and no segment left behind.
    /// Start `sluice` on core 0 (busy polling) with two vhost-user ports a and b joined
    /// by a p2p link, sockets in a fresh directory. The caller stops it.
    private func startP2PDaemon(instance: String, hugepages: String) throws -> (process: Process, dir: String) {
        let dir = NSTemporaryDirectory() + "sluice-cli-\(UUID().uuidString)"
        let path = try write("""
        [dataplane]
        socket-dir = \(dir)
        instance = \(instance)
        hugepages = \(hugepages)
        [port a]
        type = vhost-user
        socket = a.sock
        [port b]
        type = vhost-user
        socket = b.sock
        [p2p l]
        ports = a, b
        """)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary("sluice"))
        p.arguments = ["--config", path, "--cores", "0", "--poll", "0"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        return (p, dir)
    }

    func testStartStatsAndCleanShutdown() throws {
        let instance = "clitest\(getpid())"
        let (p, dir) = try startP2PDaemon(instance: instance, hugepages: "auto")
        defer { if p.isRunning { p.terminate() } }
        let segment = "/dev/shm/sluice-\(instance).stats"
        var reader: StatsReader?
        for _ in 0..<100 where reader == nil {
            reader = try? StatsReader(path: segment)
            if reader == nil { usleep(50_000) }
        }
        guard let reader else { return XCTFail("no stats segment at \(segment)") }
        // The segment appears first; the daemon registers its counters right after.
        var first = try reader.snapshot()
        for _ in 0..<100 where first.value("port.b.drop.bad_desc") == nil {
            usleep(50_000)
            first = try reader.snapshot()
        }
        usleep(300_000)
        let second = try reader.snapshot()
        XCTAssertTrue(second.isLive)
        XCTAssertGreaterThan(second.value("worker.0.loops") ?? 0, first.value("worker.0.loops") ?? 0, "loops grow")
        XCTAssertNotNil(second.value("port.a.rx_packets"))
        XCTAssertNotNil(second.value("port.b.drop.bad_desc"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/a.sock"))

        let json = try run(["--instance", instance, "--json"], bin: "sluice-stat")
        XCTAssertEqual(json.status, 0, json.err)
        let obj = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["live"] as? Bool, true)

        let t0 = Date()
        p.terminate()   // SIGTERM
        p.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2.0)
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: segment), "stats segment removed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/a.sock"), "socket removed")
    }

    func testSigtermMidTrafficExitsCleanlyAndTheSenderNotices() throws {
        // A sender that keeps its TX ring full while the daemon stops: sluice exits 0 at
        // once, and sluice-gen tx reports the closed connection instead of waiting forever.
        let instance = "clistop\(getpid())"
        let (daemon, dir) = try startP2PDaemon(instance: instance, hugepages: "off")
        defer { if daemon.isRunning { daemon.terminate() } }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: dir + "/a.sock") { usleep(50_000) }

        let sender = Process()
        sender.executableURL = URL(fileURLWithPath: try binary("sluice-gen"))
        sender.arguments = ["tx", "--socket", dir + "/a.sock", "--count", "1000000000", "--size", "64"]
        let err = Pipe()
        sender.standardOutput = FileHandle.nullDevice
        sender.standardError = err
        try sender.run()
        defer { if sender.isRunning { sender.interrupt() } }
        // Wait until frames flow (nobody is on b: each one is a counted link_down drop).
        var flowing = false
        for _ in 0..<100 where !flowing {
            usleep(50_000)
            if let r = try? StatsReader(path: "/dev/shm/sluice-\(instance).stats"),
               let n = try? r.snapshot().value("port.b.drop.link_down"), n > 0 { flowing = true }
        }
        XCTAssertTrue(flowing, "no frames reached sluice within 5 s")
        XCTAssertTrue(sender.isRunning, "sender still sending")

        let t0 = Date()
        daemon.terminate()
        daemon.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2.0)
        XCTAssertEqual(daemon.terminationStatus, 0)
        for _ in 0..<50 where sender.isRunning { usleep(100_000) }
        XCTAssertFalse(sender.isRunning, "sluice-gen tx still running 5 s after the backend went away")
        if sender.isRunning { return }
        XCTAssertEqual(sender.terminationStatus, 1)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(text.contains("closed the connection"), text)
    }
}
