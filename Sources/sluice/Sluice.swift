import ArgumentParser
import Config
import Engine
import Logging
#if canImport(Glibc)
import Glibc
#endif

@main
struct Sluice: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A userspace poll-mode data plane for VMs: vhost-user ports, p2p links, switch, router.",
        discussion: """
        Configuration comes from one INI file; the options below override its [dataplane] section.
        Examples:
          sluice --config Configs/p2p.ini --cores 0x2 --poll 0
          sluice --check --config Configs/p2p.ini
        """)

    @Option(name: .long, help: "The INI configuration file.")
    var config: String

    @Option(name: .long, help: "Worker cores: a hex mask (0x6, as DPDK -c) or a list (1-2,4, as DPDK -l).")
    var cores: String?

    @Option(name: .long, help: "Poll interval in µs: 0 busy-polls; N polls every N µs; omit for event mode.")
    var poll: UInt32?

    @Option(name: .long, help: "Instance name (names the stats segment /dev/shm/sluice-<instance>.stats).")
    var instance: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(name: .long, help: "Validate the configuration (and the core set) and exit: 0 if valid, 1 with every error.")
    var check = false

    mutating func run() throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let p = poll, p > DataplaneConfig.maxPoll {
            throw ValidationError("--poll: \(p) µs is out of range 0...\(DataplaneConfig.maxPoll)")
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "sluice")

        let cfg: SluiceConfig
        do { cfg = try SluiceConfig.load(path: config) } catch {
            printErr(error.description)
            throw ExitCode(1)
        }
        for w in cfg.warnings { printErr("\(w.description) (warning)") }
        let options: RuntimeOptions
        let overrides = CommandLineOverrides(cores: cores, poll: poll, instance: instance)
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
            print("\(config): OK — \(cfg.ports.count) port(s), \(cfg.p2p.count) p2p link(s), \(cfg.switches.count) switch(es); cores \(options.cores.map(String.init).joined(separator: ",")), \(options.idlePolicy)")
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
