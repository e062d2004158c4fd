import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Running sluice as a service: the unit file, sd_notify readiness, journald
/// priorities, who may connect to a socket, socket directory errors, client-mode
/// reconnect logging, and the command-line messages an operator meets first.
final class ServiceTests: XCTestCase {
    private var repo: URL { SystemTestEnvironment.repositoryRoot() }
    private var scratch = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/sluice-svc-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { return XCTFail("mkdtemp failed") }
        scratch = String(cString: made)
        chmod(scratch, 0o755)   // a non-root client must reach sockets inside
    }

    override func tearDown() {
        if !scratch.isEmpty { try? FileManager.default.removeItem(atPath: scratch) }
    }

    private func binary(_ name: String) throws -> String {
        let path = SystemTestEnvironment.binaryDirectory() + "/" + name
        guard SystemTestEnvironment.isExecutable(path) else {
            throw XCTSkip("system test skipped: no \(name) in \(SystemTestEnvironment.binaryDirectory()) (run swift build, or set SLUICE_BIN_DIR)")
        }
        return path
    }

    private func run(_ executable: String, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        let o = Pipe(), e = Pipe()
        p.standardOutput = o
        p.standardError = e
        try p.run()
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    private func sluice(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try run(try binary("sluice"), args)
    }

    private func writeConfig(_ text: String, name: String = "sluice.ini") throws -> String {
        let path = scratch + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A running daemon whose stderr goes to a file, with extra environment.
    private func startDaemon(config: String, environment: [String: String] = [:],
                             journal: Bool = false) throws -> (process: Process, log: String) {
        let log = scratch + "/daemon.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = nil
        env["JOURNAL_STREAM"] = nil
        for (k, v) in environment { env[k] = v }
        if journal {
            // What systemd sets: DEVICE:INODE of the stream stderr is connected to.
            var st = stat()
            XCTAssertEqual(fstat(handle.fileDescriptor, &st), 0)
            env["JOURNAL_STREAM"] = "\(st.st_dev):\(st.st_ino)"
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary("sluice"))
        p.arguments = ["--config", config, "--cores", "0", "--poll", "0"]
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = handle
        try p.run()
        try handle.close()
        return (p, log)
    }

    private func waitForLog(_ path: String, containing text: String, seconds: Double = 10) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var content = ""
        repeat {
            content = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if content.contains(text) { return content }
            usleep(50_000)
        } while Date() < deadline
        return content
    }

    private func stop(_ p: Process) {
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
    }

    // MARK: The unit file

    /// `systemd-analyze verify` of tools/systemd/sluice.service. verify needs the
    /// ExecStart binary to exist, so the test checks a copy whose /usr/local/bin/sluice
    /// is the built binary; `--man=no` because the man pages are only installed by
    /// tools/install.sh.
    func testUnitFileVerifies() throws {
        guard let analyze = SystemTestEnvironment.which("systemd-analyze") else {
            throw XCTSkip("system test skipped: no systemd-analyze on PATH (apt-get install systemd)")
        }
        let unit = try String(contentsOf: repo.appendingPathComponent("tools/systemd/sluice.service"), encoding: .utf8)
        for line in ["Type=notify", "ExecStart=/usr/local/bin/sluice --config /etc/sluice/sluice.ini",
                     "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "RuntimeDirectory=sluice",
                     "StateDirectory=sluice", "LimitMEMLOCK=infinity", "ProtectSystem=strict", "NoNewPrivileges=yes"] {
            XCTAssertTrue(unit.split(separator: "\n").contains { $0 == line }, "the unit lacks '\(line)'")
        }
        let copy = scratch + "/sluice.service"
        try unit.replacingOccurrences(of: "/usr/local/bin/sluice", with: try binary("sluice"))
            .write(toFile: copy, atomically: true, encoding: .utf8)
        let r = try run(analyze, ["verify", "--man=no", copy])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        XCTAssertFalse((r.out + r.err).contains("sluice.service:"), "verify complained:\n\(r.out)\(r.err)")

        // A unit that is wrong must fail the same check (the test can fail).
        try (unit.replacingOccurrences(of: "/usr/local/bin/sluice", with: try binary("sluice"))
            + "\n[Service]\nType=notify-sometimes\n").write(toFile: copy, atomically: true, encoding: .utf8)
        let bad = try run(analyze, ["verify", "--man=no", copy])
        XCTAssertTrue((bad.out + bad.err).contains("notify-sometimes"), bad.out + bad.err)
    }

    // MARK: Readiness and logs

    /// Under a fake service manager: READY=1 (with a status) once running,
    /// STOPPING=1 on SIGTERM; with JOURNAL_STREAM naming stderr, every log line
    /// is `<priority>message` without a timestamp.
    func testReadyStoppingAndJournalPriorities() throws {
        let notify = scratch + "/notify"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in notify.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n < 0 ? "(nothing: errno \(errno))" : String(decoding: buffer[0..<n], as: UTF8.self)
        }

        let config = try writeConfig("""
        [dataplane]
        socket-dir = \(scratch)/run
        instance = svcready\(getpid())
        hugepages = off
        [port a]
        type = vhost-user
        socket = a.sock
        [port b]
        type = vhost-user
        socket = b.sock
        [p2p l]
        ports = a, b
        """)
        let (p, log) = try startDaemon(config: config, environment: ["NOTIFY_SOCKET": notify], journal: true)
        defer { stop(p) }
        let ready = receive()
        XCTAssertTrue(ready.hasPrefix("READY=1\n"), ready)
        XCTAssertTrue(ready.contains("STATUS=1 worker(s) on core(s) 0, 2 port(s)"), ready)
        XCTAssertTrue(FileManager.default.fileExists(atPath: scratch + "/run/a.sock"), "sockets listen before READY=1")

        let text = waitForLog(log, containing: "running")
        // systemctl reload: RELOADING=1 (with the monotonic time systemd wants), then READY=1.
        kill(p.processIdentifier, SIGHUP)
        let reloading = receive()
        XCTAssertTrue(reloading.hasPrefix("RELOADING=1\n") && reloading.contains("MONOTONIC_USEC="), reloading)
        XCTAssertTrue(receive().hasPrefix("READY=1\n"))
        p.terminate()
        XCTAssertEqual(receive(), "STOPPING=1\n")
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)

        let all = (try? String(contentsOfFile: log, encoding: .utf8)) ?? text
        let lines = all.split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        for line in lines {
            XCTAssertTrue(line.range(of: #"^<[0-7]>"#, options: .regularExpression) != nil, "no priority prefix: \(line)")
            XCTAssertNil(line.range(of: #"\d{4}-\d{2}-\d{2}T"#, options: .regularExpression), "a timestamp in: \(line)")
        }
        XCTAssertTrue(lines.contains { $0.hasPrefix("<6>port a: listening on \(scratch)/run/a.sock (mode 0660)") }, all)
        XCTAssertTrue(lines.contains { $0.hasPrefix("<6>mempool pkt: ") && $0.contains("normal") }, all)
        XCTAssertTrue(lines.contains { $0.hasPrefix("<6>sluice 'svcready") && $0.contains("running") }, all)
    }

    /// Without JOURNAL_STREAM (or with one that is not stderr) the log keeps its
    /// timestamped stream format.
    func testPlainLogFormatOutsideJournal() throws {
        let config = try writeConfig("""
        [dataplane]
        socket-dir = \(scratch)/run
        instance = svcplain\(getpid())
        hugepages = off
        [port a]
        type = vhost-user
        socket = a.sock
        [port b]
        type = vhost-user
        socket = b.sock
        [p2p l]
        ports = a, b
        """)
        let (p, log) = try startDaemon(config: config, environment: ["JOURNAL_STREAM": "1:1"])
        defer { stop(p) }
        let text = waitForLog(log, containing: "running")
        stop(p)
        XCTAssertTrue(text.contains("running"), text)
        XCTAssertFalse(text.contains("<6>"), text)
        XCTAssertNotNil(text.range(of: #"\d{4}-\d{2}-\d{2}T"#, options: .regularExpression), text)
    }

    // MARK: Socket permissions

    /// socket-group and socket-mode decide which non-root user may connect:
    /// `nobody` with the socket's group gets in, without it (or on a socket left at
    /// root:root 0660) gets EACCES.
    func testSocketGroupAndModeDecideWhoConnects() throws {
        try Prerequisite.require([.root, .command("setpriv", package: "util-linux"), .sluiceBinaries])
        // The client runs as nobody: a python3 under /root (pyenv) would not be reachable.
        let candidates: [String] = ["/usr/bin/python3", "/usr/local/bin/python3"]
        guard let python = candidates.first(where: { SystemTestEnvironment.isExecutable($0) }) else {
            throw XCTSkip("system test skipped: no /usr/bin/python3 to connect as user nobody (apt-get install python3)")
        }
        let group = 54_321   // any gid: setpriv gives it to the client whether or not /etc/group names it
        let config = try writeConfig("""
        [dataplane]
        socket-dir = \(scratch)/run
        instance = svcperm\(getpid())
        hugepages = off
        [port a]
        type = vhost-user
        socket = a.sock
        socket-group = \(group)
        socket-mode = 0660
        [port b]
        type = vhost-user
        socket = b.sock
        [p2p l]
        ports = a, b
        """)
        let (p, log) = try startDaemon(config: config)
        defer { stop(p) }
        let text = waitForLog(log, containing: "running")
        XCTAssertTrue(text.contains("running"), text)
        let a = scratch + "/run/a.sock", b = scratch + "/run/b.sock"
        var st = stat()
        XCTAssertEqual(lstat(a, &st), 0)
        XCTAssertEqual(st.st_gid, gid_t(group))
        XCTAssertEqual(st.st_mode & 0o777, 0o660)

        let setpriv = try XCTUnwrap(SystemTestEnvironment.which("setpriv"))
        func connect(_ path: String, groups: String?) throws -> (Int32, String) {
            var args = ["--reuid=nobody", "--regid=nogroup"]
            args += groups.map { ["--groups=\($0)"] } ?? ["--clear-groups"]
            args += [python, "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')", path]
            let r = try run(setpriv, args)
            return (r.status, r.out + r.err)
        }
        let allowed = try connect(a, groups: "\(group)")
        XCTAssertEqual(allowed.0, 0, "nobody in group \(group) could not connect: \(allowed.1)")
        let noGroup = try connect(a, groups: nil)
        XCTAssertNotEqual(noGroup.0, 0)
        XCTAssertTrue(noGroup.1.contains("Permission denied"), noGroup.1)
        let otherSocket = try connect(b, groups: "\(group)")
        XCTAssertNotEqual(otherSocket.0, 0)
        XCTAssertTrue(otherSocket.1.contains("Permission denied"), otherSocket.1)
    }

    /// An owner or group the host does not know is a FILE:LINE error of --check
    /// (at the [dataplane] line for a default, reported once).
    func testUnknownOwnerAndGroupAreReportedAtTheirLines() throws {
        let config = try writeConfig("""
        [dataplane]
        socket-dir = \(scratch)/run
        socket-group = sluice-no-such-group
        [port a]
        type = vhost-user
        socket = a.sock
        socket-owner = sluice-no-such-user
        [port b]
        type = vhost-user
        socket = b.sock
        [p2p l]
        ports = a, b
        """)
        let r = try sluice(["--check", "--config", config, "--cores", "0"])
        XCTAssertEqual(r.status, 1, r.out)
        XCTAssertTrue(r.err.contains("\(config):7: port a: socket-owner 'sluice-no-such-user': no such user on this host"), r.err)
        XCTAssertTrue(r.err.contains("\(config):3: port a: socket-group 'sluice-no-such-group': no such group on this host"), r.err)
        XCTAssertEqual(r.err.components(separatedBy: "socket-group 'sluice-no-such-group'").count, 2, "reported once:\n\(r.err)")
    }

    /// A socket directory that cannot be created is named with the reason, by
    /// --check and at start-up.
    func testSocketDirectoryThatCannotBeCreated() throws {
        let file = scratch + "/a-file"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let config = try writeConfig("""
        [dataplane]
        socket-dir = \(file)/run
        instance = svcdir\(getpid())
        [port a]
        type = vhost-user
        socket = a.sock
        [port b]
        type = vhost-user
        socket = b.sock
        [p2p l]
        ports = a, b
        """)
        for args in [["--check"], []] {
            let r = try sluice(args + ["--config", config, "--cores", "0"])
            XCTAssertEqual(r.status, 1, r.out)
            XCTAssertTrue(r.err.contains("\(config):6: port a: socket directory \(file)/run: cannot create: \(file) is not a directory"), r.err)
        }
    }

    // MARK: Client mode

    /// A client-mode port whose front-end is not there yet: one info line at the
    /// first failure (not one per retry), then "connected after N attempts".
    func testClientReconnectAttemptsAreLoggedOnceThenOnConnect() throws {
        let peer = scratch + "/vm.sock"
        let config = try writeConfig("""
        [dataplane]
        socket-dir = \(scratch)/run
        instance = svcclient\(getpid())
        hugepages = off
        [port vm]
        type = vhost-user
        socket = \(peer)
        mode = client
        [port b]
        type = vhost-user
        socket = b.sock
        [p2p l]
        ports = vm, b
        """)
        let (p, log) = try startDaemon(config: config)
        defer { stop(p) }
        var text = waitForLog(log, containing: "port vm: cannot connect to \(peer)")
        XCTAssertTrue(text.contains("No such file or directory"), text)
        sleep(3)   // backoff 0.1 s … 2 s: several more attempts fail in this time
        text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertEqual(text.components(separatedBy: "cannot connect to").count - 1, 1, "one line, not one per attempt:\n\(text)")
        XCTAssertFalse(text.contains("still cannot connect"), text)

        // Now the front-end listens.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in peer.utf8.enumerated() { raw[i] = b }
        }
        let listening = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0 && listen(fd, 1) == 0
        XCTAssertTrue(listening)
        text = waitForLog(log, containing: "port vm: connected to \(peer) after")
        let line = text.split(separator: "\n").first { $0.contains("port vm: connected to") }.map(String.init) ?? text
        let attempts = line.range(of: #"after (\d+) attempts"#, options: .regularExpression)
            .flatMap { Int(line[$0].split(separator: " ")[1]) }
        XCTAssertNotNil(attempts, line)
        XCTAssertGreaterThanOrEqual(attempts ?? 0, 3, line)
    }

    // MARK: Command line

    func testVersionMatchesTheSourceOfTruth() throws {
        let source = try String(contentsOf: repo.appendingPathComponent("Sources/Platform/Version.swift"), encoding: .utf8)
        let declared = try XCTUnwrap(source.range(of: #"string = "[^"]+""#, options: .regularExpression).map {
            String(source[$0].dropFirst("string = \"".count).dropLast())
        })
        let r = try sluice(["--version"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out.trimmingCharacters(in: .whitespacesAndNewlines), declared)
    }

    func testPollOutOfRangeSaysTheRange() throws {
        let cfg = repo.path + "/Configs/minimal.ini"
        for value in ["-1", "1000001", "fast"] {
            let r = try sluice(["--check", "--config", cfg, "--poll", value])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertFalse(r.err.contains("Missing value"), r.err)
            XCTAssertTrue(r.err.contains("--poll:") && r.err.contains("0...1000000"), r.err)
            XCTAssertTrue(r.err.contains("omit --poll for event mode"), r.err)
        }
        let ok = try sluice(["--check", "--config", cfg, "--poll", "1000000", "--cores", "0"])
        XCTAssertEqual(ok.status, 0, ok.err)
    }

    func testMissingConfigFileAndTypoMessages() throws {
        let missing = try sluice(["--check", "--config", scratch + "/absent.ini"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.err, "sluice: cannot read config \(scratch)/absent.ini: No such file or directory\n")
        let typo = try writeConfig("[port vm1]\ntype = vhost-user\nsocket = vm1.sock\nqueus = 2\n")
        let r = try sluice(["--check", "--config", typo])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.err.contains("\(typo):4: unknown key 'queus' in [port vm1]; did you mean 'queues'?"), r.err)
    }
}
