import Foundation
import Stats
import XCTest

/// Live reconfiguration as an orchestrator uses it: rewrite the file, SIGHUP. Traffic on
/// the unchanged link must not lose a frame while other ports, links, switches and the
/// workers come and go; a broken file changes nothing; counters always add up.
final class ReloadTests: XCTestCase {
    private var dir = ""
    private var configPath: String { dir + "/sluice.ini" }
    private var logPath: String { dir + "/sluice.log" }
    private let instance = "reload\(getpid())"

    override func setUpWithError() throws {
        try Prerequisite.require([.sluiceBinaries])
        dir = NSTemporaryDirectory() + "sluice-reload-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func bin(_ name: String) -> String { SystemTestEnvironment.binaryDirectory() + "/" + name }

    /// The base config (ports a and b on link ab, s1 and s2 on switch keep) plus `extra` sections.
    private func config(cores: String = "0", poll: String? = nil, _ extra: String = "") -> String {
        """
        [dataplane]
        socket-dir = \(dir)
        instance = \(instance)
        hugepages = off
        cores = \(cores)
        \(poll.map { "poll = \($0)" } ?? "")

        [port a]
        type = vhost-user
        socket = a.sock

        [port b]
        type = vhost-user
        socket = b.sock
        queue-size = 1024

        [p2p ab]
        ports = a, b

        [port s1]
        type = vhost-user
        socket = s1.sock

        [port s2]
        type = vhost-user
        socket = s2.sock
        queue-size = 1024

        [switch keep]
        ports = s1, s2
        \(extra)
        """
    }

    private let extraLink = """

        [port c]
        type = vhost-user
        socket = c.sock

        [port d]
        type = vhost-user
        socket = d.sock

        [p2p cd]
        ports = c, d
        """

    private func extraSwitch(queueSize: Int) -> String {
        """

        [port e]
        type = vhost-user
        socket = e.sock
        queue-size = \(queueSize)

        [port f]
        type = vhost-user
        socket = f.sock

        [switch sw]
        ports = e, f
        """
    }

    private func write(_ text: String) throws {
        // As an orchestrator should: write aside, rename over (the daemon never reads half a file).
        try text.write(toFile: configPath + ".new", atomically: false, encoding: .utf8)
        XCTAssertEqual(rename(configPath + ".new", configPath), 0)
    }

    private func startDaemon() throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin("sluice"))
        p.arguments = ["--config", configPath]
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = log
        p.standardError = log
        try p.run()
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: dir + "/b.sock") { usleep(50_000) }
        return p
    }

    private func gen(_ args: [String]) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin("sluice-gen"))
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        return (p, out)
    }

    private func snapshot() throws -> StatsSnapshot {
        try StatsReader(path: "/dev/shm/sluice-\(instance).stats").snapshot()
    }

    private func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    private func waitForLog(_ text: String, count: Int = 1, seconds: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if log().components(separatedBy: text).count - 1 >= count { return true }
            usleep(20_000)
        }
        return false
    }

    private func rss(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return (Int(line.split(separator: " ")[1]) ?? 0) * 1024
    }

    private func fdCount(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    private func drops(_ s: StatsSnapshot, port: String) -> UInt64 {
        s.entries.filter { $0.name.hasPrefix("port.\(port).drop.") }.reduce(0) { $0 + $1.value }
    }

    func testReloadsUnderTrafficLoseNothingOnTheUnchangedLink() throws {
        try write(config())
        let daemon = try startDaemon()
        defer { if daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/b.sock"), log())
        let pid = daemon.processIdentifier

        let frames = 150_000, switched = 60_000
        // Receivers with deep rings: a receiver the (shared) machine deschedules for a moment
        // must not turn into drops that have nothing to do with the reloads.
        let (rx, rxOut) = try gen(["rx", "--socket", dir + "/b.sock", "--queue-size", "1024", "--count", "\(frames)", "--check-sequence",
                                   "--timeout", "20", "--json"])
        let (rx2, rx2Out) = try gen(["rx", "--socket", dir + "/s2.sock", "--queue-size", "1024", "--count", "\(switched)", "--check-sequence",
                                     "--timeout", "20", "--json"])
        usleep(300_000)
        let (tx, _) = try gen(["tx", "--socket", dir + "/a.sock", "--count", "\(frames)", "--rate", "40000", "--size", "64"])
        let (tx2, _) = try gen(["tx", "--socket", dir + "/s1.sock", "--count", "\(switched)", "--rate", "16000", "--size", "64"])
        usleep(200_000)
        let rssAtStart = rss(pid)

        // While a→b runs: other links, a switch, a changed port, more workers, polling, and back.
        let variants = [
            config(extraLink),
            config(extraLink + extraSwitch(queueSize: 256)),
            config(extraSwitch(queueSize: 512)),                 // cd removed, e changed
            config(cores: "0,1", extraSwitch(queueSize: 512)),   // workers change: everything re-balanced
            config(cores: "0,1", poll: "50", extraLink),         // poll interval, switch removed
            config(),
        ]
        var fdsAtBase: [Int] = []
        for round in 0..<3 {
            for (i, text) in variants.enumerated() {
                try write(text)
                kill(pid, SIGHUP)
                XCTAssertTrue(waitForLog("reloaded ", count: round * variants.count + i + 1), "no reload logged:\n\(log())")
                usleep(100_000)
            }
            fdsAtBase.append(fdCount(pid))
        }
        let rssAtEnd = rss(pid)
        tx.waitUntilExit()
        rx.waitUntilExit()
        tx2.waitUntilExit()
        rx2.waitUntilExit()
        let switchedResult = String(decoding: rx2Out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let sj = try JSONSerialization.jsonObject(with: Data(switchedResult.utf8)) as? [String: Any] ?? [:]
        XCTAssertEqual(sj["packets"] as? Int, switched, "frames lost through the unchanged switch: \(switchedResult)")
        XCTAssertEqual(sj["lost"] as? Int, 0, switchedResult)
        XCTAssertLessThan(rssAtEnd - rssAtStart, 8 << 20, "resident memory grew by \(rssAtEnd - rssAtStart) bytes over 18 reloads")
        let result = String(decoding: rxOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let json = try JSONSerialization.jsonObject(with: Data(result.utf8)) as? [String: Any] ?? [:]
        XCTAssertEqual(json["packets"] as? Int, frames, "frames lost on the unchanged link: \(result)\n\(log().suffix(3000))")
        XCTAssertEqual(json["lost"] as? Int, 0, result)
        XCTAssertEqual(json["reordered"] as? Int, 0, result)
        XCTAssertEqual(Set(fdsAtBase).count, 1, "fds after each round at the base config: \(fdsAtBase)")

        let s = try snapshot()
        XCTAssertEqual(s.value("port.a.rx_packets"), UInt64(frames))
        XCTAssertEqual(s.value("port.b.tx_packets"), UInt64(frames))
        XCTAssertEqual(drops(s, port: "b"), 0)
        // Removed ports and switches are gone from the stats; sockets too.
        XCTAssertNil(s.value("port.c.rx_packets"), "a removed port's counters are retired")
        XCTAssertNil(s.value("switch.sw.macs"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/c.sock"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/e.sock"))
        XCTAssertNil(s.value("worker.1.loops"), "worker 1 is gone again")
        XCTAssertNotNil(s.value("rxq.a.0.worker"))
        XCTAssertEqual(s.value("port.s1.rx_packets"), UInt64(switched))
        XCTAssertEqual(s.value("port.s2.tx_packets"), UInt64(switched))
        XCTAssertEqual(drops(s, port: "s2"), 0)
    }

    func testABrokenFileChangesNothing() throws {
        try write(config(extraLink))
        let daemon = try startDaemon()
        defer { if daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: dir + "/d.sock") { usleep(50_000) }
        // Valid except for two lines: nothing of it may be applied (c and d stay, g does not come).
        try write(config("""

            [port g]
            type = vhost-user
            socket = g.sock
            queues = 0

            [p2p gx]
            ports = g, nosuch
            """))
        kill(daemon.processIdentifier, SIGHUP)
        XCTAssertTrue(waitForLog("reload refused"), log())
        let text = log()
        XCTAssertTrue(text.contains("\(configPath):"), "errors name FILE:LINE: \(text)")
        XCTAssertTrue(text.contains("queues"), text)
        XCTAssertTrue(daemon.isRunning)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/c.sock"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/g.sock"))
        XCTAssertNotNil(try snapshot().value("port.d.rx_packets"))

        // Fixed: applied.
        try write(config())
        kill(daemon.processIdentifier, SIGHUP)
        XCTAssertTrue(waitForLog("reloaded "), log())
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/c.sock"))
    }

    /// rx(a) = tx(b) + drops(b) at any quiet moment, across the receiver connecting and
    /// disconnecting under traffic (frames taken while b is down are dropped as link_down).
    func testCountersAddUpAcrossReconnects() throws {
        try write(config())
        let daemon = try startDaemon()
        defer { if daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
        let (tx, _) = try gen(["tx", "--socket", dir + "/a.sock", "--duration", "4", "--rate", "30000", "--size", "64"])
        for _ in 0..<8 {
            let (rx, _) = try gen(["rx", "--socket", dir + "/b.sock", "--count", "2000", "--timeout", "3"])
            rx.waitUntilExit()
            usleep(100_000)
        }
        tx.waitUntilExit()
        usleep(300_000)
        let s = try snapshot()
        let rxA = s.value("port.a.rx_packets") ?? 0
        let txB = s.value("port.b.tx_packets") ?? 0
        XCTAssertGreaterThan(rxA, 0)
        XCTAssertGreaterThan(s.value("port.b.drop.link_down") ?? 0, 0, "some frames met a disconnected b")
        XCTAssertEqual(rxA, txB + drops(s, port: "b"), "rx(a) = tx(b) + drops(b)")
    }
}
