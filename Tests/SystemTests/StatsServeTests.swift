// sluice-stat as an operator runs it, against a segment this test writes the way
// the daemon does: --workers/--queues tables, --watch timestamps, --filter that
// matches nothing, `promtool check metrics` on the Prometheus output, and
// --serve answering GET /metrics over loopback while the "daemon" restarts.

import Foundation
import Platform
import Stats
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class StatsServeTests: XCTestCase {
    // MARK: A realistic segment

    /// The counters the daemon registers (names as in the engine), with made-up values.
    private func writeRealisticSegment(_ writer: StatsWriter) throws {
        func set(_ name: String, _ value: UInt64, kind: CounterKind = .counter, slot: Int) throws {
            writer.counter(try writer.register(name, kind: kind), slot: slot).set(value)
        }
        for worker in 0..<2 {
            try set("worker.\(worker).cpu", UInt64(2 + worker), kind: .gauge, slot: worker)
            try set("worker.\(worker).loops", 1_000_000, slot: worker)
            try set("worker.\(worker).busy_loops", 100_000 * UInt64(worker + 1), slot: worker)
            try set("worker.\(worker).busy_cycles", 400_000_000 * UInt64(worker + 1), slot: worker)
            try set("worker.\(worker).idle_cycles", 1_200_000_000, slot: worker)
            try set("worker.\(worker).busy_packets", 3_200_000 * UInt64(worker + 1), slot: worker)
        }
        let portCounters = [
            "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drop.bad_desc", "drop.no_rx_buffer",
            "drop.link_down", "drop.bad_length", "flood_packets", "drop.vlan", "drop.mac_lock", "drop.max_macs",
            "drop.flood_limit", "drop.monitor_tx", "drop.mtu", "drop.no_buffer",
        ]
        for (index, port) in ["vm1", "vm.2", "tap-0"].enumerated() {
            if port != "tap-0" {
                try set("port.\(port).connected", 1, kind: .gauge, slot: writer.controlSlot)
                for name in ["vhost.bad_message", "vhost.refused_message", "vhost.connects"] {
                    try set("port.\(port).\(name)", 1, slot: writer.controlSlot)
                }
            }
            for (offset, name) in portCounters.enumerated() {
                try set("port.\(port).\(name)", UInt64(index * 100 + offset), slot: index % 2)
            }
            try set("rxq.\(port).0.worker", UInt64(index % 2), kind: .gauge, slot: writer.controlSlot)
            try set("rxq.\(port).0.busy_cycles", 100_000_000 * UInt64(index + 1), slot: index % 2)
            try set("rxq.\(port).0.packets", 1_000_000 * UInt64(index + 1), slot: index % 2)
        }
        try set("switch.br0.macs", 12, kind: .gauge, slot: writer.controlSlot)
        for name in ["aged", "flushed", "learned", "moved", "table_full"] {
            try set("switch.br0.\(name)", 3, slot: writer.controlSlot)
        }
        try set("mempool.pkt.in_use", 2048, kind: .gauge, slot: writer.controlSlot)
        try set("mempool.pkt.alloc_fail", 0, slot: 0)
        try set("future.thing", 5, slot: writer.controlSlot)  // a name no mapping knows
        writer.beat()
    }

    /// A fresh segment path `…/sluice-<instance>.stats` in a private directory.
    private func segmentPath(instance: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stats-serve-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        return directory.appendingPathComponent("sluice-\(instance).stats").path
    }

    private func sluiceStat() throws -> String {
        try Prerequisite.require([.sluiceBinaries])
        return SystemTestEnvironment.binaryDirectory() + "/sluice-stat"
    }

    private func run(_ executable: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), stdin = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    // MARK: promtool

    func testPromtoolAcceptsTheExpositionOfARealisticSegment() throws {
        try Prerequisite.require([.command("promtool", package: "prometheus")])
        let path = try segmentPath(instance: "promtool")
        let writer = try StatsWriter(path: path, slots: 2)
        defer { writer.remove() }
        try writeRealisticSegment(writer)
        let text = StatsFormat.prometheus(try StatsReader(path: path).snapshot())
        XCTAssertTrue(text.contains("sluice_port_drops_total{instance=\"promtool\",port=\"vm.2\",reason=\"no_rx_buffer\"} 105\n"))
        XCTAssertTrue(text.contains("sluice_unmapped_total{instance=\"promtool\",name=\"future.thing\"} 5\n"))

        let promtool = try XCTUnwrap(SystemTestEnvironment.which("promtool"))
        let checked = try run(promtool, ["check", "metrics"], input: text)
        XCTAssertEqual(checked.status, 0, "promtool: \(checked.out)\(checked.err)\n\(text)")
        XCTAssertEqual(checked.out + checked.err, "", "promtool lint findings")

        // The "segment gone" answer is valid too, and so is a broken exposition not (the check can fail).
        XCTAssertEqual(try run(promtool, ["check", "metrics"], input: StatsFormat.prometheusUnavailable(instance: "x")).status, 0)
        XCTAssertNotEqual(try run(promtool, ["check", "metrics"], input: "# TYPE a_total counter\na_total{x=\"1} 1\n").status, 0)
    }

    // MARK: The command line

    func testWorkersQueuesFilterWatchAndVersion() throws {
        let binary = try sluiceStat()
        let path = try segmentPath(instance: "views")
        let writer = try StatsWriter(path: path, slots: 2)
        try writeRealisticSegment(writer)
        let heartbeat = Heartbeat(writer)
        defer { heartbeat.stop(); writer.remove() }

        let workers = try run(binary, ["--path", path, "--workers"])
        XCTAssertEqual(workers.status, 0, workers.err)
        XCTAssertEqual(workers.out, """
            worker  core  busy%  packets  cycles/pkt  pkts/busy-loop    loops  busy-loops
                 0     2   25.0  3200000       125.0            32.0  1000000      100000
                 1     3   40.0  6400000       125.0            32.0  1000000      200000

            """)

        let queues = try run(binary, ["--path", path, "--queues"])
        XCTAssertEqual(queues.status, 0, queues.err)
        XCTAssertEqual(queues.out, """
            port   queue  worker  core  busy%  packets
            tap-0      0       0     2   75.0  3000000
            vm1        0       0     2   25.0  1000000
            vm.2       0       1     3   25.0  2000000

            """)

        let nothing = try run(binary, ["--path", path, "--filter", "port.vm9."])
        XCTAssertEqual(nothing.status, 1)
        XCTAssertEqual(nothing.out, "")
        XCTAssertTrue(nothing.err.contains("no counter of instance 'views' starts with 'port.vm9.'"), nothing.err)

        let watched = try run(binary, ["--path", path, "--workers", "--watch", "0.2", "--count", "2"])
        XCTAssertEqual(watched.status, 0, watched.err)
        let headers = watched.out.split(separator: "\n").filter { $0.hasPrefix("--- ") }
        XCTAssertEqual(headers.count, 2, watched.out)
        let stamp = try NSRegularExpression(pattern: #"^--- \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d  instance 'views'  "#)
        for header in headers {
            let text = String(header)
            XCTAssertNotNil(stamp.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), text)
        }
        XCTAssertTrue(headers[0].hasSuffix("since start"))
        XCTAssertTrue(headers[1].contains("last 0.2 s") || headers[1].contains("last 0.3 s"), String(headers[1]))
        // Nothing moved between the two refreshes: the interval row shows no packets.
        XCTAssertTrue(watched.out.contains("     0     2      -        0           -               -      0           0\n"), watched.out)

        for (address, problem) in [("foo:1", "'foo' is not a numeric IPv4 or IPv6 address"),
                                   ("127.0.0.1:70000", "'70000' is not a port number"),
                                   ("::1:9477", "write an IPv6 address as [ADDRESS]:PORT")] {
            let refused = try run(binary, ["--path", path, "--serve", address])
            XCTAssertEqual(refused.status, 64, address)
            XCTAssertTrue(refused.err.contains(problem), refused.err)
        }

        let version = try run(binary, ["--version"])
        XCTAssertEqual(version.out.trimmingCharacters(in: .whitespacesAndNewlines), SluiceVersion.string)
    }

    // MARK: --serve

    func testServeAnswersMetricsAndFollowsARestart() throws {
        let binary = try sluiceStat()
        let path = try segmentPath(instance: "served")
        var writer: StatsWriter? = try StatsWriter(path: path, slots: 2)
        try writeRealisticSegment(writer!)
        var heartbeat: Heartbeat? = Heartbeat(writer!)
        defer { heartbeat?.stop(); writer?.remove() }

        let log = FileManager.default.temporaryDirectory.appendingPathComponent("stats-serve-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let logHandle = try FileHandle(forWritingTo: log)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: binary)
        server.arguments = ["--path", path, "--serve", "127.0.0.1:0"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = logHandle
        try server.run()
        defer { if server.isRunning { server.terminate(); server.waitUntilExit() } }

        // The server says where it listens (port 0: the kernel picked one).
        var port: UInt16?
        for _ in 0..<100 where port == nil {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: #"serving http://127\.0\.0\.1:(\d+)/metrics"#, options: .regularExpression) {
                port = UInt16(text[range].split(separator: ":").last!.split(separator: "/").first!)
            }
            if port == nil { usleep(50_000) }
        }
        let serving = try XCTUnwrap(port, "no 'serving' line: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")

        var response = try httpGet(port: serving, path: "/metrics")
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK\r\n"), response)
        XCTAssertTrue(response.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), response)
        XCTAssertTrue(response.contains("\nsluice_up{instance=\"served\"} 1\n"), response)
        XCTAssertTrue(response.contains("\nsluice_worker_busy_cycles_total{instance=\"served\",worker=\"1\"} 800000000\n"), response)
        let body = response.components(separatedBy: "\r\n\r\n").last ?? ""
        let length = response.components(separatedBy: "\r\n").first { $0.hasPrefix("Content-Length: ") }
        XCTAssertEqual(length, "Content-Length: \(body.utf8.count)")

        // Each scrape reads a fresh snapshot.
        writer!.counter(writer!.lookup("port.vm1.rx_packets")!, slot: 0).set(424_242)
        response = try httpGet(port: serving, path: "/metrics")
        XCTAssertTrue(response.contains("\nsluice_port_rx_packets_total{instance=\"served\",port=\"vm1\"} 424242\n"), response)

        response = try httpGet(port: serving, path: "/")
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 404 Not Found\r\n"), response)
        response = try httpGet(port: serving, path: "/metrics", method: "POST")
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"), response)
        response = try httpSend(port: serving, request: "garbage\r\n\r\n")
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), response)

        // The daemon stops: its segment is gone, the server keeps answering sluice_up 0.
        heartbeat?.stop()
        heartbeat = nil
        writer!.remove()
        writer = nil
        response = try httpGet(port: serving, path: "/metrics")
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK\r\n"), response)
        XCTAssertTrue(response.hasSuffix("\nsluice_up{instance=\"served\"} 0\n"), response)
        XCTAssertFalse(response.contains("sluice_worker"), response)

        // It starts again: the new segment is found and read.
        writer = try StatsWriter(path: path, slots: 1)
        writer!.counter(try writer!.register("worker.0.loops"), slot: 0).set(7)
        heartbeat = Heartbeat(writer!)
        response = try httpGet(port: serving, path: "/metrics")
        XCTAssertTrue(response.contains("\nsluice_up{instance=\"served\"} 1\n"), response)
        XCTAssertTrue(response.contains("\nsluice_worker_loops_total{instance=\"served\",worker=\"0\"} 7\n"), response)

        server.terminate()
        server.waitUntilExit()
        XCTAssertEqual(server.terminationStatus, 0)
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        XCTAssertTrue(text.contains("answering sluice_up 0"), text)
    }

    // MARK: A minimal HTTP client

    private func httpGet(port: UInt16, path: String, method: String = "GET") throws -> String {
        try httpSend(port: port, request: "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: StatsServeTests\r\n\r\n")
    }

    /// Connect to 127.0.0.1:port, send `request`, read until the server closes (5 s at most).
    private func httpSend(port: UInt16, request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("system test skipped: no TCP socket (\(errno))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0, "connect to 127.0.0.1:\(port): errno \(errno)")
        let bytes = Array(request.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }, bytes.count)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got <= 0 { break }
            received += buffer[0..<got]
        }
        return String(decoding: received, as: UTF8.self)
    }
}

/// Beats a writer's heartbeat every 100 ms on a thread, as the daemon does, so a
/// slow machine never sees the test's segment as stale.
final class Heartbeat: @unchecked Sendable {
    private let writer: StatsWriter
    private let lock = NSLock()
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init(_ writer: StatsWriter) {
        self.writer = writer
        writer.beat()
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                writer.beat()
                usleep(100_000)
            }
            done.signal()
        }
    }

    func stop() {
        lock.withLock { running = false }
        done.wait()
    }
}
