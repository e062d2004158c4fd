// sluice-stat: read a running sluice's shared-memory counters, without any
// call into the daemon.
//
//   sluice-stat [--instance NAME] [--path FILE] [--filter PREFIX]
//               [--json | --prometheus] [--watch SECONDS [--count N]]
//   sluice-stat [--instance NAME] --fdb SWITCH [--json]      a switch's MAC table
//
// Exit status: 0 live, 1 error (no segment, bad arguments), 2 the segment's
// daemon is gone (its last values are still shown).

import ArgumentParser
import Stats

@main
struct SluiceStat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-stat",
        abstract: "Show the live counters of a running sluice instance.",
        discussion: """
            Counters are summed over the worker threads and the control thread. \
            Exit status: 0 when the instance is live, 1 on errors (for example no \
            stats segment), 2 when the segment's daemon is no longer running \
            (its last values are shown).
            """)

    @Option(name: .long, help: ArgumentHelp("Instance name: reads /dev/shm/sluice-<NAME>.stats.", valueName: "NAME"))
    var instance: String = "sluice"

    @Option(name: .long, help: ArgumentHelp("Read this segment file instead.", valueName: "FILE"))
    var path: String?

    @Option(name: .long, help: ArgumentHelp(
        "Refresh every SECONDS (fractions allowed) and show rates per second; stop with Ctrl-C.",
        valueName: "SECONDS"))
    var watch: Double?

    @Option(name: .long, help: ArgumentHelp("With --watch: stop after N refreshes.", valueName: "N"))
    var count: Int?

    @Flag(name: .long, help: "Print one JSON object (one per line with --watch).")
    var json = false

    @Flag(name: .long, help: "Print the Prometheus text exposition format.")
    var prometheus = false

    @Option(name: .long, help: ArgumentHelp("Only counters whose name starts with PREFIX.", valueName: "PREFIX"))
    var filter: String?

    @Option(name: .long, help: ArgumentHelp(
        "Print the MAC table of switch SWITCH (MAC, VLAN, port, age) instead of counters.", valueName: "SWITCH"))
    var fdb: String?

    func validate() throws {
        if json && prometheus {
            throw ValidationError("--json and --prometheus cannot be combined")
        }
        if let watch, !(watch.isFinite && watch > 0) {
            throw ValidationError("--watch needs a positive number of seconds")
        }
        if let count {
            guard watch != nil else { throw ValidationError("--count needs --watch") }
            guard count > 0 else { throw ValidationError("--count needs a positive number") }
        }
    }

    func run() throws {
        if let fdb {
            try showFdb(fdb)
            return
        }
        let reader = try open()
        if let watch {
            var watcher = Watcher(command: self, reader: reader, interval: watch, limit: count)
            try watcher.run()
        } else {
            let snapshot = try sample(reader)
            Output.standardOutput(render(snapshot, previous: nil, elapsed: 0))
            if !snapshot.isLive {
                warnStale(snapshot)
                throw ExitCode(2)
            }
        }
    }

    /// The reader for the requested segment, or exit 1 with a one-line message.
    func open() throws -> StatsReader {
        do throws(StatsError) {
            if let path { return try StatsReader(path: path) }
            return try StatsReader(instance: instance)
        } catch {
            Output.standardError("sluice-stat: \(error.message)\n")
            throw ExitCode.failure
        }
    }

    func sample(_ reader: StatsReader) throws -> StatsSnapshot {
        do throws(StatsError) {
            let snapshot = try reader.snapshot()
            return snapshot.filtered(prefix: filter ?? "")
        } catch {
            Output.standardError("sluice-stat: \(error.message)\n")
            throw ExitCode.failure
        }
    }

    func instanceName(_ snapshot: StatsSnapshot) -> String {
        snapshot.instance.isEmpty ? instance : snapshot.instance
    }

    func render(_ snapshot: StatsSnapshot, previous: StatsSnapshot?, elapsed: Double) -> String {
        if json { return StatsFormat.json(snapshot, instance: instanceName(snapshot)) + "\n" }
        if prometheus { return StatsFormat.prometheus(snapshot) }
        if watch != nil {
            return StatsFormat.textWithRates(snapshot, previous: previous, elapsedSeconds: elapsed)
        }
        return StatsFormat.text(snapshot)
    }

    /// `--fdb SWITCH`: the switch's learned addresses, read from its shared-memory table.
    func showFdb(_ name: String) throws {
        let file = FdbLayout.path(instance: instance, switchName: name)
        let table: (aging: Int, entries: [FdbEntry])
        do throws(StatsError) { table = try FdbReader.read(path: file) } catch {
            Output.standardError("sluice-stat: switch '\(name)' of instance '\(instance)': \(error.message)\n")
            throw ExitCode.failure
        }
        if json {
            let rows = table.entries.map { "{\"mac\":\"\($0.macText)\",\"vlan\":\($0.vlan),\"port\":\"\($0.port)\",\"age\":\($0.ageSeconds)}" }
            Output.standardOutput("{\"switch\":\"\(name)\",\"aging\":\(table.aging),\"entries\":[\(rows.joined(separator: ","))]}\n")
            return
        }
        var out = "mac                vlan  port              age\n"
        for e in table.entries {
            out += "\(e.macText)  \(pad(String(e.vlan), 4))  \(pad(e.port, 16))  \(e.ageSeconds)\n"
        }
        out += "\(table.entries.count) address(es); aging \(table.aging == 0 ? "off" : "\(table.aging) s")\n"
        Output.standardOutput(out)
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    func warnStale(_ snapshot: StatsSnapshot) {
        let reason = snapshot.staleReason ?? "no heartbeat"
        Output.standardError(
            "sluice-stat: instance '\(instanceName(snapshot))' is not running (\(reason)) — showing its last values\n")
    }
}
