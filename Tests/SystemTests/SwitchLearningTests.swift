// A learning switch with real peers: sluice-gen sends into port a with many source MACs
// (`tx --macs N`), dpdk-testpmd (rxonly) or sluice-gen rx sinks port b. Checks the
// switch table bound (`max-macs` of the switch: table_full, frames still forwarded) and
// the per-port bound (`max-macs` of a port: drop.max_macs, at most N entries), from the
// counters and from `sluice-stat --fdb`. Skipped (one line) without root, dpdk-testpmd,
// or built sluice, sluice-stat and sluice-gen.
//
// The switch flushes a port's addresses when the port goes down, so every check on the
// table runs while the generator is still connected (it sends at a modest rate until
// stopped with SIGINT).

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class SwitchLearningTests: XCTestCase {
    private var run: SwitchRun!

    override func setUpWithError() throws {
        try Prerequisite.require([.root, .command("dpdk-testpmd", package: "dpdk"), .sluiceBinaries])
        let dir = SystemTestEnvironment.binaryDirectory()
        if !SystemTestEnvironment.isExecutable(dir + "/sluice-gen") {
            throw XCTSkip("system test skipped: no sluice-gen in \(dir) (run swift build, or set SLUICE_BIN_DIR)")
        }
    }

    override func tearDown() {
        run?.stop()
        run = nil
    }

    /// Switch `max-macs = 100`: 50 addresses are all learned on port a; 300 fill the table
    /// to its bound, count table_full, and every frame still reaches testpmd on port b.
    func testSwitchTableBoundWithTestpmdSink() throws {
        run = try SwitchRun(switchMaxMACs: 100, portAMaxMACs: nil)
        let testpmd = try run.startTestpmd(port: "b")
        try run.waitForPortUp("b")

        // 50 addresses.
        var gen = try run.startGenerator(macs: 50)
        try run.waitUntil("switch.br0.macs reaches 50") { $0["switch.br0.macs"] == 50 }
        let fdb50 = try run.fdb()
        XCTAssertEqual(fdb50.filter { $0.port == "a" }.count, 50, "fdb: \(fdb50.prefix(5))")
        XCTAssertEqual(Set(fdb50.map(\.mac)).count, 50)
        XCTAssertTrue(fdb50.allSatisfy { $0.mac.hasPrefix("02:00:") && $0.mac.hasSuffix(":01") }, "\(fdb50.prefix(5))")
        let sent50 = try run.stopGenerator(gen)
        XCTAssertGreaterThan(sent50, 0)

        // 300 addresses into a table of 100.
        gen = try run.startGenerator(macs: 300)
        try run.waitUntil("switch.br0.table_full > 0") { ($0["switch.br0.table_full"] ?? 0) > 0 }
        var c = try run.counters()
        // Steady for a while: the bound holds under continued new addresses.
        for _ in 0..<5 {
            c = try run.counters()
            XCTAssertLessThanOrEqual(c["switch.br0.macs"] ?? .max, 100, "switch.br0.macs above max-macs")
            usleep(200_000)
        }
        let fdb300 = try run.fdb()
        XCTAssertLessThanOrEqual(fdb300.count, 100, "fdb lists more entries than max-macs")
        XCTAssertGreaterThan(fdb300.count, 50, "the table did not fill towards its bound")
        let sent300 = try run.stopGenerator(gen)

        // Every frame was forwarded (flooded: its destination is unknown) towards testpmd. A
        // busy-polling testpmd shares its CPU with the generator here, so when it is off the
        // CPU its 256-entry ring can run dry (port.b.drop.no_rx_buffer): count those too.
        try run.waitUntil("port b accounts for every frame port a took") {
            ($0["port.b.tx_packets"] ?? 0) + ($0["port.b.drop.no_rx_buffer"] ?? 0) >= ($0["port.a.rx_packets"] ?? 1)
        }
        c = try run.counters()
        let received = try testpmd.quitReturningRxPackets()
        let total = UInt64(sent50 + sent300)
        let shown = c.filter { $0.key.hasPrefix("port.") && $0.value != 0 }
        XCTAssertEqual(c["port.a.rx_packets"], total, "sluice took every generated frame")
        XCTAssertEqual(c["port.a.flood_packets"], total, "unknown destination: every frame flooded")
        XCTAssertEqual((c["port.b.tx_packets"] ?? 0) + (c["port.b.drop.no_rx_buffer"] ?? 0), total, "\(shown)")
        XCTAssertEqual(c["port.b.drop.link_down"] ?? 0, 0, "\(shown)")
        XCTAssertEqual(received, c["port.b.tx_packets"], "testpmd received what sluice sent to port b")
        XCTAssertGreaterThan(received, total / 2, "most frames reach testpmd (\(shown))")
        XCTAssertEqual(c["port.a.drop.max_macs"] ?? 0, 0)
    }

    /// Port a `max-macs = 10`: of 40 addresses 10 are learned, the rest's frames dropped
    /// (drop.max_macs); the frames of the 10 reach sluice-gen rx on port b.
    func testPortBoundWithGenSink() throws {
        run = try SwitchRun(switchMaxMACs: nil, portAMaxMACs: 10)
        let sink = try run.startGenReceiver(port: "b")
        try run.waitForPortUp("b")

        let gen = try run.startGenerator(macs: 40)
        try run.waitUntil("port.a.drop.max_macs > 0 and 10 addresses") {
            ($0["port.a.drop.max_macs"] ?? 0) > 0 && $0["switch.br0.macs"] == 10
        }
        let fdb = try run.fdb()
        let onA = fdb.filter { $0.port == "a" }.count
        XCTAssertLessThanOrEqual(onA, 10, "port a holds more than its max-macs")
        XCTAssertEqual(onA, 10)
        let sent = try run.stopGenerator(gen)
        try run.waitUntil("every frame port a took is dropped or out on port b") {
            ($0["port.b.tx_packets"] ?? 0) + ($0["port.b.drop.no_rx_buffer"] ?? 0) + ($0["port.a.drop.max_macs"] ?? 0)
                >= UInt64(sent)
        }
        let c = try run.counters()
        let dropped = c["port.a.drop.max_macs"] ?? 0
        XCTAssertEqual(c["port.a.rx_packets"], UInt64(sent))
        XCTAssertEqual(dropped + (c["port.b.tx_packets"] ?? 0) + (c["port.b.drop.no_rx_buffer"] ?? 0), UInt64(sent))
        XCTAssertEqual(c["switch.br0.table_full"] ?? 0, 0)
        // The generator cycles the 40 addresses in order: 30 in 40 frames are over the bound
        // (the first ten of the cycle are the ones learned), give or take the part cycle.
        XCTAssertEqual(Double(dropped) / Double(sent), 0.75, accuracy: 0.02, "dropped \(dropped) of \(sent)")
        let rx = try sink.stop()
        XCTAssertEqual(rx, c["port.b.tx_packets"], "sluice-gen rx got what sluice sent to port b")
    }
}

// MARK: - One sluice with a two-port switch, and its peers

struct FdbRow { let mac: String; let port: String }

final class SwitchRun {
    let dir: String
    let instance: String
    let bin = SystemTestEnvironment.binaryDirectory()
    private var sluice: Process?
    private var peers: [Process] = []
    private var prefixes: [String] = []

    init(switchMaxMACs: Int?, portAMaxMACs: Int?) throws {
        instance = "swlearn\(getpid())x\(UInt16.random(in: 0...UInt16.max))"
        dir = "/tmp/sluice-\(instance)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        var ini = """
            [dataplane]
            socket-dir = \(dir)
            instance = \(instance)
            hugepages = auto
            [port a]
            type = vhost-user
            socket = a.sock

            """
        if let n = portAMaxMACs { ini += "max-macs = \(n)\n" }
        ini += """
            [port b]
            type = vhost-user
            socket = b.sock
            [switch br0]
            ports = a, b
            aging = 300

            """
        if let n = switchMaxMACs { ini += "max-macs = \(n)\n" }
        try ini.write(toFile: dir + "/switch.ini", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin + "/sluice")
        p.arguments = ["--config", dir + "/switch.ini", "--cores", "1", "--poll", "20"]
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try FileHandle(forWritingTo: Self.touch(dir + "/sluice.log"))
        p.standardError = p.standardOutput
        try p.run()
        sluice = p
        let deadline = Date().addingTimeInterval(10)
        while !(FileManager.default.fileExists(atPath: dir + "/a.sock") && FileManager.default.fileExists(atPath: dir + "/b.sock")) {
            guard p.isRunning else { throw failure("sluice exited early") }
            guard Date() < deadline else { throw failure("sluice made no sockets in 10 s") }
            usleep(50_000)
        }
    }

    static func touch(_ path: String) -> URL {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        return URL(fileURLWithPath: path)
    }

    func log(_ name: String) -> String {
        let text = (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(25).joined(separator: "\n")
    }

    func failure(_ what: String) -> Error {
        NSError(domain: "SwitchLearningTests", code: 1,
                userInfo: [NSLocalizedDescriptionKey: "\(what)\n--- sluice.log\n\(log("sluice.log"))"])
    }

    // MARK: Peers

    /// dpdk-testpmd rxonly on one net_virtio_user port; commands go through a pipe.
    func startTestpmd(port: String) throws -> Testpmd {
        let prefix = "swlearn\(getpid())\(port)"
        prefixes.append(prefix)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: SystemTestEnvironment.which("dpdk-testpmd")!)
        p.arguments = ["--no-pci", "--no-huge", "-m", "256", "--single-file-segments", "--lcores", "0@0,1@0",
                       "--file-prefix", prefix, "--vdev", "net_virtio_user0,path=\(dir)/\(port).sock,queues=1",
                       "--", "-i", "--total-num-mbufs=8192"]
        let input = Pipe()
        let logURL = Self.touch(dir + "/testpmd-\(port).log")
        p.standardInput = input
        p.standardOutput = try FileHandle(forWritingTo: logURL)
        p.standardError = p.standardOutput
        try p.run()
        peers.append(p)
        let t = Testpmd(process: p, input: input.fileHandleForWriting, logPath: logURL.path)
        try t.waitFor("Port 0: ", seconds: 30)
        t.send("set fwd rxonly")
        t.send("start")
        return t
    }

    func startGenReceiver(port: String) throws -> GenReceiver {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin + "/sluice-gen")
        p.arguments = ["rx", "--socket", "\(dir)/\(port).sock", "--timeout", "60", "--json"]
        let out = Pipe()
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: Self.touch(dir + "/rx-\(port).log"))
        try p.run()
        peers.append(p)
        return GenReceiver(process: p, output: out)
    }

    /// sluice-gen tx into port a at a modest rate, source MAC cycling over `macs` addresses,
    /// to a destination nobody has (frames are flooded to b).
    func startGenerator(macs: Int) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin + "/sluice-gen")
        p.arguments = ["tx", "--socket", "\(dir)/a.sock", "--macs", String(macs), "--src-mac", "02:00:00:00:00:01",
                       "--dst-mac", "02:ff:00:00:00:99", "--rate", "20000", "--duration", "60", "--json"]
        let out = Pipe()
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: Self.touch(dir + "/tx-\(macs).log"))
        try p.run()
        peers.append(p)
        return (p, out)
    }

    /// SIGINT, wait, and the number of frames it sent (from its JSON summary).
    func stopGenerator(_ gen: (Process, Pipe)) throws -> Int {
        kill(gen.0.processIdentifier, SIGINT)
        let text = String(decoding: gen.1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        gen.0.waitUntilExit()
        guard gen.0.terminationStatus == 0, let n = jsonInt(text, "packets") else {
            throw failure("sluice-gen tx exit \(gen.0.terminationStatus): \(text)")
        }
        return n
    }

    // MARK: Observing sluice

    func counters() throws -> [String: UInt64] {
        let text = try capture(bin + "/sluice-stat", ["--instance", instance, "--json"])
        guard let data = text.data(using: .utf8),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let counters = object["counters"] as? [String: Any]
        else { throw failure("sluice-stat --json: \(text)") }
        var out: [String: UInt64] = [:]
        for (k, v) in counters { if let n = v as? NSNumber { out[k] = n.uint64Value } }
        return out
    }

    func fdb() throws -> [FdbRow] {
        let text = try capture(bin + "/sluice-stat", ["--instance", instance, "--fdb", "br0", "--json"])
        guard let data = text.data(using: .utf8),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let entries = object["entries"] as? [[String: Any]]
        else { throw failure("sluice-stat --fdb br0 --json: \(text)") }
        return entries.map { FdbRow(mac: $0["mac"] as? String ?? "", port: $0["port"] as? String ?? "") }
    }

    func waitUntil(_ what: String, seconds: Double = 15, _ condition: ([String: UInt64]) -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: UInt64] = [:]
        while Date() < deadline {
            last = try counters()
            if condition(last) { return }
            usleep(100_000)
        }
        let shown = last.filter { $0.key.hasPrefix("switch.") || $0.key.hasPrefix("port.") }
            .sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        throw failure("timed out waiting until \(what): \(shown)")
    }

    /// Until the switch has a vhost-user device on `port` (its frontend finished set-up),
    /// plus a moment for the peer to start polling.
    func waitForPortUp(_ port: String) throws {
        try waitUntil("port.\(port).connected = 1") { $0["port.\(port).connected"] == 1 }
        usleep(500_000)
    }

    func capture(_ executable: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    func stop() {
        for p in peers where p.isRunning { p.terminate() }
        for p in peers { p.waitUntilExit() }
        if let s = sluice, s.isRunning {
            s.interrupt()
            let deadline = Date().addingTimeInterval(10)
            while s.isRunning && Date() < deadline { usleep(50_000) }
            if s.isRunning { kill(s.processIdentifier, SIGKILL) }
            s.waitUntilExit()
        }
        if ProcessInfo.processInfo.environment["KEEP_LOGS"] == nil { try? FileManager.default.removeItem(atPath: dir) }
        for prefix in prefixes { try? FileManager.default.removeItem(atPath: "/var/run/dpdk/" + prefix) }
    }
}

final class Testpmd {
    let process: Process
    let input: FileHandle
    let logPath: String

    init(process: Process, input: FileHandle, logPath: String) {
        self.process = process; self.input = input; self.logPath = logPath
    }

    func send(_ command: String) { input.write((command + "\n").data(using: .utf8)!) }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func waitFor(_ text: String, occurrences: Int = 1, seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if log.components(separatedBy: text).count - 1 >= occurrences { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        throw NSError(domain: "SwitchLearningTests", code: 2,
                      userInfo: [NSLocalizedDescriptionKey: "testpmd: no '\(text)'\n\(log.suffix(2000))"])
    }

    /// Ends testpmd and returns RX-packets of port 0 from a final `show port stats all`
    /// (testpmd's stdout is block buffered into the log: read it once testpmd has exited).
    func quitReturningRxPackets() throws -> UInt64 {
        send("show port stats all")
        send("quit")
        try? input.close()
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(100_000) }
        let text = log
        guard let stats = text.range(of: "NIC statistics for port 0"),
              let line = text[stats.upperBound...].split(separator: "\n").first(where: { $0.contains("RX-packets:") }),
              let n = line.split(separator: " ").dropFirst().first.flatMap({ UInt64($0) })
        else {
            throw NSError(domain: "SwitchLearningTests", code: 3,
                          userInfo: [NSLocalizedDescriptionKey: "no port statistics from testpmd: \(text.suffix(1500))"])
        }
        return n
    }
}

final class GenReceiver {
    let process: Process
    let output: Pipe

    init(process: Process, output: Pipe) { self.process = process; self.output = output }

    /// SIGINT, and the frames it received.
    func stop() throws -> UInt64? {
        kill(process.processIdentifier, SIGINT)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return jsonInt(text, "packets").map(UInt64.init)
    }
}

/// An integer field of a one-line JSON object (sluice-gen's summaries).
func jsonInt(_ text: String, _ key: String) -> Int? {
    guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
          let data = String(line).data(using: .utf8),
          let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let n = object[key] as? NSNumber
    else { return nil }
    return n.intValue
}
