import ArgumentParser
import Config
import Engine
import Logging
import Platform
#if canImport(Glibc)
import Glibc
#endif

@main
struct Sluice: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A userspace poll-mode data plane for VMs: vhost-user ports, p2p links, switch, router.",
        discussion: """
        Configuration comes from one INI file (man 5 sluice.ini); the options below override its
        [dataplane] section. Under systemd (Type=notify) it reports READY=1 once the workers run
        and logs with journald priorities; SIGHUP reloads, SIGINT/SIGTERM stop.
        Examples:
          sluice --config Configs/p2p.ini --cores 0x2 --poll 0
          sluice --check --config Configs/p2p.ini
        """,
        version: SluiceVersion.string)

    @Option(name: .long, help: "The INI configuration file.")
    var config: String

    @Option(name: .long, help: "Worker cores: a hex mask (0x6, as DPDK -c) or a list (1-2,4, as DPDK -l).")
    var cores: String?

    // Parsed by hand, and taking the next word even if it starts with '-', so that
    // `--poll -1` says what the range is instead of "Missing value".
    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("Poll interval in microseconds, 0...\(DataplaneConfig.maxPoll): 0 busy-polls; N polls every N microseconds; omit for event mode.",
                               valueName: "usec"))
    var poll: String?

    @Option(name: .long, help: "Instance name (names the stats segment /dev/shm/sluice-<instance>.stats).")
    var instance: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(name: .long, help: "Validate the configuration (and the core set) and exit: 0 if valid, 1 with every error.")
    var check = false

    /// `--poll` as a number, checked in `validate`.
    var pollInterval: UInt32? {
        poll.flatMap { UInt32($0) }.flatMap { $0 <= DataplaneConfig.maxPoll ? $0 : nil }
    }

    func validate() throws {
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let poll, pollInterval == nil {
            let what = !poll.isEmpty && poll.allSatisfy(\.isASCIIDigit) ? "\(poll) µs is out of range" : "'\(poll)' is not a poll interval"
            throw ValidationError("--poll: \(what): use 0...\(DataplaneConfig.maxPoll) µs (0 busy-polls), or omit --poll for event mode")
        }
    }

    mutating func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let journal = JournalLogHandler.stderrIsJournal
        LoggingSystem.bootstrap { label in
            if journal {
                var h = JournalLogHandler()
                h.logLevel = level
                return h
            }
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "sluice")

        let cfg: SluiceConfig
        do { cfg = try SluiceConfig.load(path: config) } catch {
            // Line 0: the file itself could not be read ("cannot read config FILE: reason").
            for d in error.diagnostics { printErr(d.line == 0 ? "sluice: \(d.message)" : d.description) }
            throw ExitCode(1)
        }
        for w in cfg.warnings { printErr("\(w.description) (warning)") }
        let options: RuntimeOptions
        let overrides = CommandLineOverrides(cores: cores, poll: pollInterval, instance: instance)
        switch RuntimeOptions.resolve(config: cfg, overrides) {
        case .success(let o): options = o
        case .failure(let e):
            printErr(e.description)
            throw ExitCode(1)
        }
        let problems = Preflight.problems(cfg, options: options)
        if !problems.isEmpty {
            for p in problems { printErr(p) }
            throw ExitCode(1)
        }
        if check {
            print("\(config): OK — \(cfg.ports.count) port(s), \(cfg.p2p.count) p2p link(s), \(cfg.switches.count) switch(es), \(cfg.networks.count) network(s)\(cfg.nvme.map { ", [nvme] pci \($0.pci)" } ?? ""); cores \(options.cores.map(String.init).joined(separator: ",")), \(options.idlePolicy)")
            return
        }
        let dataplane: Dataplane
        do { dataplane = try Dataplane(config: cfg, options: options, overrides: overrides, logger: logger) } catch {
            printErr("sluice: \(error.description)")
            throw ExitCode(1)
        }
        let status = dataplane.run()
        if status != 0 { throw ExitCode(status) }
    }
}

func printErr(_ s: String) {
    var line = s
    line.append("\n")
    _ = line.withCString { write(2, $0, strlen($0)) }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
