// The test lab of SwitchNamespaceTests: network namespaces, veth pairs and taps named after
// the test process, one sluice process with its config and log, background tools (tcpdump,
// iperf3), counters and the MAC table read from shared memory, and a clean-up that removes
// everything the lab made, also when a test fails.

import Foundation
import Stats
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// One test's namespaces, links, sluice process and background tools.
final class NamespaceLab: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A background process whose output goes to a file.
    final class Background {
        let process: Process
        let path: String
        init(process: Process, path: String) { self.process = process; self.path = path }
        func output() -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        /// SIGINT (tcpdump prints its summary and exits), then wait up to 3 s.
        func interrupt() {
            guard process.isRunning else { return }
            process.interrupt()
            let t0 = Date()
            while process.isRunning && Date().timeIntervalSince(t0) < 3 { usleep(20_000) }
        }
    }

    /// Short and unique per process and run: names interfaces (≤ 15 chars) and namespaces.
    let tag: String
    let instance: String
    let dir: String
    let binDir: String
    /// tools/netns/send-frames.py.
    let sendFrames: String
    private var namespaces: [String] = []
    private var rootLinks: [String] = []
    private var background: [Background] = []
    private var daemon: Process?
    private var reader: StatsReader?

    init(run: Int) throws {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        tag = "\(getpid() % 100_000)\(letters[(run - 1) % letters.count])"
        instance = "nstest\(tag)"
        dir = NSTemporaryDirectory() + "sluice-ns-\(tag)-\(UUID().uuidString.prefix(8))"
        binDir = SystemTestEnvironment.binaryDirectory()
        sendFrames = SystemTestEnvironment.repositoryRoot().appendingPathComponent("tools/netns/send-frames.py").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    var statsPath: String { "/dev/shm/sluice-\(instance).stats" }
    var fdbPath: String { "/dev/shm/sluice-\(instance).fdb.br0" }

    /// An interface name for this run: `sl<tag><suffix>`.
    func ifname(_ suffix: String) -> String {
        let name = "sl\(tag)\(suffix)"
        precondition(name.count <= 12, "interface name \(name) leaves no room for a .VLAN suffix")
        return name
    }

    // MARK: commands

    /// Run `command` with /bin/sh; unless `check` is false, a non-zero exit throws with its output.
    @discardableResult
    func sh(_ command: String, timeout: Double = 10, check: Bool = true) throws -> ScriptResult {
        let r = try ScriptRunner.run("/bin/sh", ["-c", command], timeout: timeout)
        if check && (r.status != 0 || r.timedOut) {
            throw Failure(description: "`\(command)` \(r.timedOut ? "timed out" : "exited \(r.status)"):\n\(r.tail(20))")
        }
        return r
    }

    /// Start `executable` (looked up on PATH) in the background; stopped in cleanUp.
    func background(_ executable: String, _ arguments: [String], log name: String) throws -> Background {
        guard let path = SystemTestEnvironment.which(executable) else { throw Failure(description: "no \(executable)") }
        let out = dir + "/" + name
        FileManager.default.createFile(atPath: out, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        defer { try? handle.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        let b = Background(process: p, path: out)
        background.append(b)
        return b
    }

    // MARK: stations

    /// A namespace with lo up and IPv6 off (also for interfaces moved in later).
    func namespace(_ short: String) throws -> String {
        let ns = "sl\(tag)-\(short)"
        try sh("ip netns add \(ns)")
        namespaces.append(ns)
        try sh("ip -n \(ns) link set lo up && ip netns exec \(ns) sysctl -qw net.ipv6.conf.all.disable_ipv6=1"
               + " net.ipv6.conf.default.disable_ipv6=1")
        return ns
    }

    /// A veth pair for an af-packet port: `root` stays here (up, IPv6 off), `peer` goes into `ns`.
    func veth(root: String, peer: String, in ns: String) throws {
        try sh("ip link add \(root) type veth peer name \(peer) netns \(ns)")
        rootLinks.append(root)
        try sh("sysctl -qw net.ipv6.conf.\(root).disable_ipv6=1 && ip link set \(root) up")
    }

    /// Move sluice's tap `tap` into `ns` and make it a station there.
    func tapStation(_ tap: String, in ns: String, mac: String, address: String?) throws {
        try sh("ip link set \(tap) netns \(ns)")
        try station(tap, in: ns, mac: mac, address: address)
    }

    /// Give `ifname` in `ns` a fixed MAC, optionally an address in a /24, and bring it up.
    func station(_ ifname: String, in ns: String, mac: String, address: String?) throws {
        var command = "ip netns exec \(ns) sysctl -qw net.ipv6.conf.\(ifname).disable_ipv6=1"
            + " && ip -n \(ns) link set \(ifname) address \(mac)"
        if let address { command += " && ip -n \(ns) addr add \(address)/24 dev \(ifname)" }
        command += " && ip -n \(ns) link set \(ifname) up"
        try sh(command)
    }

    /// A ping from `ns` to `address` is answered (up to three tries of `count` echoes, 2 s each).
    func canReach(_ ns: String, _ address: String, count: Int = 1) -> Bool {
        for _ in 0..<3 {
            if let r = try? sh("ip netns exec \(ns) ping -n -c \(count) -i 0.2 -W 2 \(address)", check: false),
               r.status == 0 { return true }
        }
        return false
    }

    /// Two echoes from `ns` to `address` (ARP included) all go unanswered.
    func cannotReach(_ ns: String, _ address: String) -> Bool {
        guard let r = try? sh("ip netns exec \(ns) ping -n -c 2 -i 0.3 -W 1 \(address)", check: false) else { return false }
        return r.status != 0 && !r.timedOut
    }

    // MARK: sluice

    /// Write a config (this run's [dataplane] section, then `body`), start sluice with
    /// `--cores cores --poll 0`, and wait until its stats segment is live with the
    /// switch's counters and the tap interfaces exist.
    ///
    /// sluice brings a tap up as soon as it has it, while it is still in the root
    /// namespace, whose kernel then sends IPv6 frames (MLD, DAD) from the tap's random
    /// MAC into the switch before the test can move it. So unless `sluiceCreatesTaps`,
    /// the taps are made here first with IPv6 off, and sluice attaches to them.
    func start(_ body: String, taps: [String], cores: String = "1", sluiceCreatesTaps: Bool = false,
               readyCounter: String = "switch.br0.macs", dataplane: String = "") throws {
        if !sluiceCreatesTaps {
            for tap in taps {
                try sh("ip tuntap add dev \(tap) mode tap")
                rootLinks.append(tap)
                try sh("sysctl -qw net.ipv6.conf.\(tap).disable_ipv6=1")
            }
        }
        let config = dir + "/switch.ini"
        try """
            [dataplane]
            instance = \(instance)
            socket-dir = \(dir)/sockets
            hugepages = off
            \(dataplane)

            \(body)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let log = dir + "/sluice.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? handle.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binDir + "/sluice")
        p.arguments = ["--config", config, "--cores", cores, "--poll", "0"]
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        daemon = p

        let ready = eventually(timeout: 15) {
            guard p.isRunning else { return true }
            if reader == nil { reader = try? StatsReader(path: statsPath) }
            guard let snap = try? reader?.snapshot(), snap.isLive, snap.value(readyCounter) != nil else { return false }
            return taps.allSatisfy { FileManager.default.fileExists(atPath: "/sys/class/net/\($0)") }
        }
        guard p.isRunning else {
            p.waitUntilExit()
            throw Failure(description: "sluice exited \(p.terminationStatus) at start:\n\(daemonLog())")
        }
        guard ready else { throw Failure(description: "sluice not running after 15 s:\n\(daemonLog())") }
    }

    func daemonLog() -> String { (try? String(contentsOfFile: dir + "/sluice.log", encoding: .utf8)) ?? "" }

    func snapshot() throws -> StatsSnapshot {
        guard let reader else { throw Failure(description: "sluice is not running") }
        return try reader.snapshot()
    }

    /// A counter's value summed over workers; a missing name throws.
    func counter(_ name: String) throws -> UInt64 {
        guard let v = try snapshot().value(name) else { throw Failure(description: "no counter \(name)") }
        return v
    }

    /// A counter's value as text for messages ("?" when it cannot be read).
    func show(_ name: String) -> String {
        (try? counter(name)).map { String($0) } ?? "?"
    }

    /// Every non-zero drop.* counter of `ports` (empty when nothing was dropped).
    func drops(ports: [String]) throws -> [String: UInt64] {
        let snap = try snapshot()
        var out: [String: UInt64] = [:]
        for port in ports {
            for e in snap.entries where e.name.hasPrefix("port.\(port).drop.") && e.value > 0 { out[e.name] = e.value }
        }
        return out
    }

    /// The port counters that moved, for failure messages.
    func countersLine() -> String {
        guard let snap = try? snapshot() else { return "(no stats)" }
        return snap.entries.filter { $0.name.hasPrefix("port.") && $0.value > 0 }
            .map { "\($0.name)=\($0.value)" }.joined(separator: " ")
    }

    /// The switch's MAC table, read from its shared-memory file.
    func fdb() throws -> [FdbEntry] { try FdbReader.read(path: fdbPath).entries }

    /// The MAC table as "MAC vlan V port P age A" lines, for failure messages.
    func fdbText() -> String {
        guard let entries = try? fdb() else { return "(no MAC table file)" }
        return "\n" + entries.map { "  \($0.macText) vlan \($0.vlan) port \($0.port) age \($0.ageSeconds)" }.joined(separator: "\n")
    }

    /// Poll `condition` every 50 ms until it holds or `timeout` passes.
    func eventually(timeout: Double = 2, _ condition: () throws -> Bool) rethrows -> Bool {
        let t0 = Date()
        while true {
            if try condition() { return true }
            if Date().timeIntervalSince(t0) > timeout { return false }
            usleep(50_000)
        }
    }

    /// SIGTERM: sluice exits 0 within 5 s and removes its stats and MAC table files.
    func stopAndCheck(file: StaticString = #filePath, line: UInt = #line) throws {
        guard let p = daemon else { return XCTFail("sluice was not started", file: file, line: line) }
        XCTAssertTrue(p.isRunning, "sluice died during the test:\n\(daemonLog())", file: file, line: line)
        reader = nil
        let t0 = Date()
        p.terminate()
        while p.isRunning && Date().timeIntervalSince(t0) < 5 { usleep(20_000) }
        let running = p.isRunning
        if running { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        daemon = nil
        XCTAssertFalse(running, "sluice still running 5 s after SIGTERM", file: file, line: line)
        XCTAssertEqual(p.terminationReason, .exit, "sluice killed by signal \(p.terminationStatus)", file: file, line: line)
        XCTAssertEqual(p.terminationStatus, 0, "sluice exit status after SIGTERM:\n\(daemonLog())", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: statsPath), "stats segment left behind", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fdbPath), "MAC table file left behind", file: file, line: line)
    }

    /// Stop what is still running and remove everything this run created.
    func cleanUp() {
        for b in background where b.process.isRunning {
            b.process.terminate()
            let t0 = Date()
            while b.process.isRunning && Date().timeIntervalSince(t0) < 2 { usleep(20_000) }
            if b.process.isRunning { kill(b.process.processIdentifier, SIGKILL) }
        }
        background.removeAll()
        reader = nil
        if let p = daemon, p.isRunning {
            p.terminate()
            let t0 = Date()
            while p.isRunning && Date().timeIntervalSince(t0) < 5 { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }
        daemon = nil
        for ns in namespaces { _ = try? sh("ip netns del \(ns)", check: false) }
        namespaces.removeAll()
        for link in rootLinks where FileManager.default.fileExists(atPath: "/sys/class/net/\(link)") {
            _ = try? sh("ip link del \(link)", check: false)
        }
        rootLinks.removeAll()
        if let names = try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm") {
            for n in names where n == "sluice-\(instance).stats" || n.hasPrefix("sluice-\(instance).fdb.") {
                try? FileManager.default.removeItem(atPath: "/dev/shm/" + n)
            }
        }
        try? FileManager.default.removeItem(atPath: dir)
    }
}
