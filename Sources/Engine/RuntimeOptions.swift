import Config
import Platform

public struct EngineError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What the command line said, kept so that a reload resolves the new file the same way
/// (a `--cores` given at start keeps winning over the file's `cores`).
public struct CommandLineOverrides: Sendable {
    public var cores: String?
    public var poll: UInt32?
    public var instance: String?
    public init(cores: String?, poll: UInt32?, instance: String?) {
        self.cores = cores
        self.poll = poll
        self.instance = instance
    }
}

/// The runtime knobs after the command line has overridden the INI's `[dataplane]`.
public struct RuntimeOptions: Sendable {
    public var cores: [Int]
    public var poll: UInt32?
    public var hugepages: HugepagePolicy
    public var instance: String
    /// Packet buffers in the shared mempool.
    public var mempoolSize: Int = 16384

    public init(cores: [Int], poll: UInt32?, hugepages: HugepagePolicy, instance: String) {
        self.cores = cores
        self.poll = poll
        self.hugepages = hugepages
        self.instance = instance
    }

    public var idlePolicy: IdlePolicy { IdlePolicy(poll: poll) }

    public static func resolve(config: SluiceConfig, _ o: CommandLineOverrides) -> Result<RuntimeOptions, EngineError> {
        resolve(config: config, cliCores: o.cores, cliPoll: o.poll, cliInstance: o.instance)
    }

    /// Merge the config with command-line overrides and check the cores exist.
    /// `cliCores` is the raw `--cores` text. Errors name where the bad value came from.
    public static func resolve(config: SluiceConfig, cliCores: String?, cliPoll: UInt32?,
                               cliInstance: String?, online: Set<Int> = CPUInfo.onlineCPUs()) -> Result<RuntimeOptions, EngineError> {
        var cores: CoreSet
        var origin: String
        if let text = cliCores {
            do { cores = try CoreSet.parse(text) } catch {
                return .failure(EngineError("--cores: \(error.message)"))
            }
            origin = "--cores"
        } else if let c = config.dataplane.cores {
            cores = c
            origin = "\(config.file):\(config.dataplane.coresLine ?? 0): cores"
        } else {
            // Default: the highest online CPU, leaving CPU 0 to the system when possible.
            cores = CoreSet([online.max() ?? 0])
            origin = "default core"
        }
        let missing = cores.cores.filter { !online.contains($0) }
        if !missing.isEmpty {
            let list = CoreSet(online).description
            return .failure(EngineError("\(origin): core\(missing.count > 1 ? "s" : "") \(missing.map(String.init).joined(separator: ",")) not online (online: \(list))"))
        }
        let hp: HugepagePolicy = switch config.dataplane.hugepages {
        case .auto: .auto
        case .on: .on
        case .off: .off
        }
        return .success(RuntimeOptions(cores: cores.cores, poll: cliPoll ?? config.dataplane.poll,
                                       hugepages: hp, instance: cliInstance ?? config.dataplane.instance))
    }
}
