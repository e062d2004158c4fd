/// The whole configuration file, parsed and validated.
///
/// ```swift
/// let config = try SluiceConfig.load(path: "/etc/sluice.ini")   // throws ConfigError
/// for warning in config.warnings { print(warning) }
/// ```
public struct SluiceConfig: Sendable {
    /// The file name used in diagnostics.
    public var file: String
    /// The `[dataplane]` section, or its defaults if there is none.
    public var dataplane: DataplaneConfig
    /// Ports in file order.
    public var ports: [PortConfig]
    public var p2p: [P2PConfig]
    public var switches: [SwitchConfig]
    /// `[network]` sections: routed tenant networks.
    public var networks: [NetworkConfig] = []
    /// `[disk]` sections: backing stores of blk exports.
    public var disks: [DiskConfig] = []
    /// `[blk]` sections: vhost-user-blk devices.
    public var blks: [BlkConfig] = []
    /// The `[nvme]` section; nil when there is none (then every NVMe controller bound to
    /// vfio-pci is used, with `NVMeConfig`'s defaults).
    public var nvme: NVMeConfig?
    /// Problems that do not stop sluice, such as a port attached to nothing.
    public var warnings: [Diagnostic]

    public init(
        file: String,
        dataplane: DataplaneConfig = DataplaneConfig(),
        ports: [PortConfig] = [],
        p2p: [P2PConfig] = [],
        switches: [SwitchConfig] = [],
        warnings: [Diagnostic] = []
    ) {
        self.file = file
        self.dataplane = dataplane
        self.ports = ports
        self.p2p = p2p
        self.switches = switches
        self.warnings = warnings
    }

    /// True if `name` is a usable stats instance name (see `DataplaneConfig.isValidInstance`).
    public static func isValidInstance(_ name: String) -> Bool {
        DataplaneConfig.isValidInstance(name)
    }

    public func port(named name: String) -> PortConfig? {
        ports.first { $0.name == name }
    }

    public func disk(named name: String) -> DiskConfig? {
        disks.first { $0.name == name }
    }

    /// Parses configuration text; `file` names it in diagnostics.
    /// Throws every error found, in line order.
    public static func parse(text: String, file: String) throws(ConfigError) -> SluiceConfig {
        try parse(bytes: Array(text.utf8), file: file)
    }

    /// Reads and parses a file. A file that cannot be read is reported at
    /// line 0 as `cannot read config FILE: <reason>`.
    public static func load(path: String) throws(ConfigError) -> SluiceConfig {
        switch readConfigFile(path) {
        case .success(let bytes):
            return try parse(bytes: bytes, file: path)
        case .failure(let problem):
            throw ConfigError(diagnostics: [Diagnostic(file: path, line: 0, message: "cannot read config \(path): \(problem.message)")])
        }
    }

    /// Parses raw bytes, so that lines which are not UTF-8 are reported by line number.
    public static func parse(bytes: [UInt8], file: String) throws(ConfigError) -> SluiceConfig {
        var log = DiagnosticLog(file: file)
        let ini = INIParser.parse(bytes, log: &log)
        let config = build(ini, file: file, log: &log)
        if !log.errors.isEmpty {
            throw ConfigError(diagnostics: log.sortedErrors)
        }
        return config
    }

    /// Decodes every section, then checks what sections say about each other.
    /// Section order in the file does not matter.
    private static func build(_ ini: ParsedINI, file: String, log: inout DiagnosticLog) -> SluiceConfig {
        let dataplane = DataplaneDecoder.decode(ini.sections.first { $0.kind == .dataplane }, log: &log)

        var ports: [DecodedPort] = []
        var links: [DecodedLink] = []
        var disks: [DiskConfig] = []
        var blks: [DecodedBlk] = []
        var nvme: NVMeConfig?
        for section in ini.sections {
            switch section.kind {
            case .dataplane:
                continue
            case .nvme:
                nvme = NVMeDecoder.decode(section, log: &log)
            case .disk:
                if let d = DiskDecoder.decode(section, log: &log) { disks.append(d) }
            case .blk:
                blks.append(BlkDecoder.decode(section, dataplane: dataplane, log: &log))
            case .port:
                ports.append(PortDecoder.decode(section, dataplane: dataplane, log: &log))
            case .p2p, .switch, .network:
                links.append(LinkDecoder.decode(section, log: &log))
            }
        }

        let portNames = Set(ini.sections.filter { $0.kind == .port }.map(\.name))
        CrossReferences.check(
            links: links, portNames: portNames, brokenPortNames: ini.brokenNames[.port] ?? [],
            ports: ports, log: &log
        )

        BlkDecoder.checkReferences(blks, disks: disks, diskNames: Set(ini.sections.filter { $0.kind == .disk }.map(\.name)),
                                   ports: ports, log: &log)

        var config = SluiceConfig(file: file, dataplane: dataplane)
        config.ports = ports.compactMap(\.config)
        config.disks = disks
        config.blks = blks.compactMap(\.config)
        config.nvme = nvme
        for link in links where link.isValid {
            if link.kind == .p2p, link.ports.count == 2 {
                config.p2p.append(P2PConfig(name: link.name, line: link.line, a: link.ports[0], b: link.ports[1]))
            } else if link.kind == .network, let keys = link.network {
                config.networks.append(NetworkConfig(
                    name: link.name, line: link.line, ports: link.ports, ipv4Subnet: keys.ipv4Subnet,
                    ipv6Prefix: keys.ipv6Prefix, dns4: keys.dns4, dns6: keys.dns6, domain: keys.domain,
                    leaseTime: keys.leaseTime))
            } else if link.kind == .switch {
                config.switches.append(SwitchConfig(
                    name: link.name, line: link.line, ports: link.ports, aging: link.aging, maxMACs: link.maxMACs
                ))
            }
        }
        config.warnings = log.sortedWarnings
        return config
    }
}
