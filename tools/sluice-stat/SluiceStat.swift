// sluice-stat: read a running sluice's shared-memory counters, without any
// call into the daemon.
//
//   sluice-stat [--instance NAME] [--path FILE] [--filter PREFIX]
//               [--json | --prometheus] [--watch SECONDS [--count N]]
//   sluice-stat --workers | --queues | --disks [--watch SECONDS [--count N]]
//   sluice-stat --serve [HOST:]PORT                          Prometheus endpoint GET /metrics
//   sluice-stat [--instance NAME] --fdb SWITCH [--json]      a switch's MAC table
//   sluice-stat [--instance NAME] --leases NETWORK [--json]  a network's DHCP leases
//
// Exit status: 0 live, 1 error (no segment, nothing to show), 2 the segment's
// daemon is gone (its last values are still shown), 64 bad arguments.

import ArgumentParser
import Platform
import Stats

@main
struct SluiceStat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-stat",
        abstract: "Show the live counters of a running sluice instance.",
        discussion: """
            Counters are summed over the worker threads and the control thread. \
            Exit status: 0 when the instance is live, 1 on errors (for example no \
            stats segment, or a --filter, --workers or --queues that matches nothing), \
            2 when the segment's daemon is no longer running (its last values are shown). \
            With --watch an empty match is reported on stderr and the watch goes on.
            """,
        version: SluiceVersion.string)

    @Option(name: .long, help: ArgumentHelp("Instance name: reads /dev/shm/sluice-<NAME>.stats.", valueName: "NAME"))
    var instance: String = "sluice"

    @Option(name: .long, help: ArgumentHelp("Read this segment file instead.", valueName: "FILE"))
    var path: String?

    @Option(name: .long, help: ArgumentHelp(
        "Refresh every SECONDS (fractions allowed), each refresh under a timestamp line; counters get rates per second, --workers/--queues show the interval. Stop with Ctrl-C.",
        valueName: "SECONDS"))
    var watch: Double?

    @Option(name: .long, help: ArgumentHelp("With --watch: stop after N refreshes.", valueName: "N"))
    var count: Int?

    @Flag(name: .long, help: "Print one JSON object (one per line with --watch, with a \"time\" field).")
    var json = false

    @Flag(name: .long, help: "Print the Prometheus text exposition format.")
    var prometheus = false

    @Option(name: .long, help: ArgumentHelp("Only counters whose name starts with PREFIX.", valueName: "PREFIX"))
    var filter: String?

    @Flag(name: .long, help: "Per worker: core, busy %, packets, busy cycles per packet, packets per busy loop turn.")
    var workers = false

    @Flag(name: .long, help: "Per receive queue: the worker polling it, its share of that worker's busy cycles, packets.")
    var queues = false

    @Flag(name: .long, help: "Per blk export: requests, MB, errors, requests in flight, p50/p99 latency (bucket bounds); rates under --watch.")
    var disks = false

    @Option(name: .long, help: ArgumentHelp(
        "Serve the Prometheus format at http://ADDRESS/metrics until stopped. ADDRESS is PORT (on 127.0.0.1), HOST:PORT or [IPv6]:PORT; port 0 picks a free one.",
        valueName: "ADDRESS"))
    var serve: String?

    @Option(name: .long, help: ArgumentHelp(
        "Print the MAC table of switch SWITCH (MAC, VLAN, port, age) instead of counters.", valueName: "SWITCH"))
    var fdb: String?

    @Option(name: .long, help: ArgumentHelp(
        "Print the leases of network NETWORK (MAC, IPv4, IPv6, port, seconds left) instead of counters.", valueName: "NETWORK"))
    var leases: String?

    func validate() throws {
        if leases != nil, prometheus || filter != nil || workers || queues || disks || fdb != nil || serve != nil || watch != nil || path != nil {
            throw ValidationError("--leases can only be combined with --instance and --json")
        }
        if json && prometheus {
            throw ValidationError("--json and --prometheus cannot be combined")
        }
        if [workers, queues, disks].filter({ $0 }).count > 1 {
            throw ValidationError("--workers, --queues and --disks cannot be combined")
        }
        if workers || queues || disks {
            let view = workers ? "--workers" : queues ? "--queues" : "--disks"
            if json || prometheus || filter != nil || fdb != nil {
                throw ValidationError("\(view) cannot be combined with --json, --prometheus, --filter or --fdb")
            }
        }
        if let serve {
            if watch != nil || count != nil || json || prometheus || filter != nil || workers || queues || disks || fdb != nil {
                throw ValidationError("--serve cannot be combined with other output options")
            }
            if case .failure(let problem) = ListenAddress.parse(serve) {
                throw ValidationError("--serve: \(problem)")
            }
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
        if let leases {
            try showLeases(leases)
            return
        }
        if let fdb {
            try showFdb(fdb)
            return
        }
        if let serve, case .success(let address) = ListenAddress.parse(serve) {
            var server = MetricsServer(command: self, address: address)
            try server.run()
            return
        }
        let reader: StatsReader
        do throws(StatsError) { reader = try openReader() } catch {
            if prometheus, watch == nil {
                // A textfile collector still gets a valid file that says the instance is down.
                Output.standardOutput(StatsFormat.prometheusUnavailable(instance: path.flatMap(StatsPath.instance(forPath:)) ?? instance))
            }
            Output.standardError("sluice-stat: \(error.message)\n")
            throw ExitCode.failure
        }
        if let watch {
            var watcher = Watcher(command: self, reader: reader, interval: watch, limit: count)
            try watcher.run()
            return
        }
        let snapshot = try sample(reader)
        if let problem = nothingToShow(snapshot) {
            Output.standardError("sluice-stat: \(problem)\n")
            throw ExitCode.failure
        }
        Output.standardOutput(render(snapshot, previous: nil, elapsed: 0, time: nil))
        if !snapshot.isLive {
            warnStale(snapshot)
            throw ExitCode(2)
        }
    }

    /// The reader for the requested segment.
    func openReader() throws(StatsError) -> StatsReader {
        if let path { return try StatsReader(path: path) }
        return try StatsReader(instance: instance)
    }

    /// A whole snapshot (the filter is applied when rendering).
    func sample(_ reader: StatsReader) throws -> StatsSnapshot {
        do throws(StatsError) { return try reader.snapshot() } catch {
            Output.standardError("sluice-stat: \(error.message)\n")
            throw ExitCode.failure
        }
    }

    func instanceName(_ snapshot: StatsSnapshot) -> String {
        snapshot.instance.isEmpty ? (path.flatMap(StatsPath.instance(forPath:)) ?? instance) : snapshot.instance
    }

    /// Why the requested view of `snapshot` is empty, or nil when there is something to show.
    func nothingToShow(_ snapshot: StatsSnapshot) -> String? {
        let who = "instance '\(instanceName(snapshot))'"
        if workers, StatsViews.workers(snapshot).isEmpty {
            return "\(who) publishes no worker.<n>.* counters (it has not started its workers yet?)"
        }
        if queues, StatsViews.queues(snapshot).isEmpty {
            return "\(who) publishes no rxq.<port>.<queue>.* counters (no receive queue is polled, or its sluice predates them)"
        }
        if disks, StatsViews.disks(snapshot).isEmpty {
            return "\(who) has no blk export (no [blk] section, or none has started)"
        }
        if let filter, !filter.isEmpty, snapshot.filtered(prefix: filter).entries.isEmpty {
            return "no counter of \(who) starts with '\(filter)' (it has \(snapshot.entries.count) counters; try without --filter)"
        }
        return nil
    }

    /// One refresh of output. `time` (set under --watch) adds a timestamp: a
    /// header line, a comment in Prometheus text, a "time" field in JSON.
    func render(_ full: StatsSnapshot, previous: StatsSnapshot?, elapsed: Double, time: String?) -> String {
        var header = ""
        if let time {
            let span = previous == nil ? "since start" : "last \(StatsViews.decimal(elapsed)) s"
            header = "--- \(time)  instance '\(instanceName(full))'  \(span)\n"
        }
        if workers {
            return header + StatsViews.workersTable(StatsViews.workers(full, since: previous))
        }
        if queues {
            return header + StatsViews.queuesTable(StatsViews.queues(full, since: previous))
        }
        if disks {
            return header + StatsViews.disksTable(StatsViews.disks(full, since: previous), seconds: previous == nil ? nil : elapsed)
        }
        let snapshot = full.filtered(prefix: filter ?? "")
        if json { return StatsFormat.json(snapshot, instance: instanceName(snapshot), time: time) + "\n" }
        if prometheus {
            let text = StatsFormat.prometheus(snapshot, instance: instanceName(snapshot))
            return time.map { "# sluice-stat \($0)\n" + text } ?? text
        }
        if watch != nil {
            return header + StatsFormat.textWithRates(snapshot, previous: previous, elapsedSeconds: elapsed)
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

    /// `--leases NETWORK`: the network's leases, read from its shared-memory table.
    func showLeases(_ name: String) throws {
        let file = LeaseSegment.path(instance: instance, network: name)
        let table: LeaseReader.Table
        do throws(StatsError) { table = try LeaseReader.read(path: file) } catch {
            Output.standardError("sluice-stat: network '\(name)' of instance '\(instance)': \(error.message)\n")
            throw ExitCode.failure
        }
        Output.standardOutput(LeaseTableText.render(table, network: name, json: json,
                                                    now: Int64(Clock.realtimeNanos() / 1_000_000_000)))
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    func warnStale(_ snapshot: StatsSnapshot) {
        let reason = snapshot.staleReason ?? "no heartbeat"
        Output.standardError(
            "sluice-stat: instance '\(instanceName(snapshot))' is not running (\(reason)) — showing its last values\n")
    }
}
