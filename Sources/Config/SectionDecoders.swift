// Second stage: one decoder per section kind turns a raw section into its
// typed model, reporting every bad or missing key.

/// Longest unix socket path: `sun_path` is 108 bytes including the final NUL.
let maxSocketPathLength = 107

enum DataplaneDecoder {
    static func decode(_ section: RawSection?, log: inout DiagnosticLog) -> DataplaneConfig {
        var config = DataplaneConfig()
        guard let section else { return config }
        var reader = SectionReader(section)

        if let entry = reader.entry("cores") {
            do {
                config.cores = try CoreSet.parse(entry.value)
                config.coresLine = entry.line
            } catch {
                log.error(entry.line, "bad value for 'cores': \(error.message)")
            }
        }
        if let poll = reader.integer("poll", in: 0...Int(DataplaneConfig.maxPoll), log: &log) {
            config.poll = UInt32(poll)
        }
        if let mode = reader.choice("hugepages", HugepageMode.self, log: &log) {
            config.hugepages = mode
        }
        if let entry = reader.entry("socket-dir") {
            if entry.value.hasPrefix("/") {
                config.socketDir = normalizedPath(entry.value)
            } else {
                log.error(entry.line, "'socket-dir' must be an absolute path, got '\(excerpt(entry.value))'")
            }
        }
        if let entry = reader.entry("state-dir") {
            if entry.value.hasPrefix("/") {
                config.stateDir = normalizedPath(entry.value)
            } else {
                log.error(entry.line, "'state-dir' must be an absolute path, got '\(excerpt(entry.value))'")
            }
        }
        if let entry = reader.entry("instance") {
            if isValidInstanceName(entry.value) {
                config.instance = entry.value
            } else {
                log.error(entry.line, "bad 'instance' '\(excerpt(entry.value))': use 1 to 32 of A-Z a-z 0-9 _ -")
            }
        }
        config.socketAccess = reader.socketAccess(log: &log)
        reader.reportUnknownKeys(log: &log)
        return config
    }
}

/// A decoded port with the lines later checks point at.
struct DecodedPort {
    /// nil when the port's type is missing or bad (already reported).
    var config: PortConfig?
    var socketLine: Int?
    /// The switch-only keys the section sets, with their lines, in file order.
    var switchKeys: [(key: String, line: Int)] = []
    /// The router keys (`ipv4`, `ipv6`, `routed-prefixes`) the section sets, with lines.
    var addressingKeys: [(key: String, line: Int)] = []
    var ipv4Line: Int?
    var ipv6Line: Int?
    var routedLine: Int?
}

enum PortDecoder {
    static func decode(_ section: RawSection, dataplane: DataplaneConfig, log: inout DiagnosticLog) -> DecodedPort {
        let socketDir = dataplane.socketDir
        var reader = SectionReader(section)
        _ = reader.required("type", " (vhost-user, tap or af-packet)", log: &log)
        let type = reader.choice("type", PortType.self, log: &log)
        var config = PortConfig(name: section.name, line: section.line, type: type ?? .vhostUser)
        var decoded = DecodedPort()

        switch type {
        case .vhostUser:
            if let entry = reader.required("socket", " for a vhost-user port", log: &log) {
                decoded.socketLine = entry.line
                config.socketLine = entry.line
                config.socket = socketPath(entry, socketDir: socketDir, log: &log)
            }
            config.mode = reader.choice("mode", PortMode.self, log: &log) ?? .server
            if config.mode == .server {
                config.socketAccess = reader.socketAccess(log: &log).over(dataplane.socketAccess)
            } else {
                for key in SocketAccess.keys {
                    reader.forbid(key, "only applies to server mode (in client mode the front-end creates the socket)", log: &log)
                }
            }
            config.dsMax = reader.integer("ds-max", in: 1...PortConfig.maxDsMax, log: &log) ?? PortConfig.defaultDsMax
            reader.forbid("interface", "is not allowed for a vhost-user port (it is for tap and af-packet)", log: &log)
        case .tap, .afPacket:
            let typeName = config.type.rawValue
            if let entry = reader.required("interface", " for a \(typeName) port", log: &log) {
                if isValidInterfaceName(entry.value) {
                    config.interface = entry.value
                } else {
                    log.error(entry.line, "bad 'interface' '\(excerpt(entry.value))': an interface name is 1 to 15 characters without '/', ':' or spaces")
                }
            }
            for key in ["socket", "mode", "ds-max"] + SocketAccess.keys {
                reader.forbid(key, "is only for vhost-user ports, not \(typeName)", log: &log)
            }
        case nil:
            // Type missing or bad (reported): mark the type-specific keys as known, check nothing.
            for key in ["socket", "mode", "ds-max", "interface"] + SocketAccess.keys { _ = reader.entry(key) }
        }

        if let entry = reader.entry("mac") {
            config.mac = macAddress(entry, log: &log)
        }
        config.queueSize = reader.powerOfTwo("queue-size", in: 1...PortConfig.maxQueueSize, log: &log)
            ?? PortConfig.defaultQueueSize
        config.queues = reader.integer("queues", in: 1...PortConfig.maxQueues, log: &log) ?? PortConfig.defaultQueues
        config.mtu = reader.integer("mtu", in: PortConfig.mtuRange, log: &log) ?? PortConfig.defaultMTU
        decoded.switchKeys = decodeSwitchKeys(&reader, into: &config, log: &log)
        let addressing = PortAddressingDecoder.decode(&reader, log: &log)
        config.addressing = addressing.addressing
        decoded.addressingKeys = addressing.keys
        decoded.ipv4Line = addressing.ipv4Line
        decoded.ipv6Line = addressing.ipv6Line
        decoded.routedLine = addressing.routedLine
        reader.reportUnknownKeys(log: &log)

        decoded.config = type == nil ? nil : config
        return decoded
    }

    /// Keys that only a port of a switch may set.
    static let switchOnlyKeys = ["vlan", "trunk", "native-vlan", "mac-lock", "max-macs", "flood-limit", "monitor"]

    /// Reads the switch-only keys and checks how they combine within the port.
    /// Returns the ones the section sets, for the check that the port is on a switch.
    private static func decodeSwitchKeys(
        _ reader: inout SectionReader, into config: inout PortConfig, log: inout DiagnosticLog
    ) -> [(key: String, line: Int)] {
        let present = switchOnlyKeys.compactMap { key in reader.entry(key).map { (key: key, line: $0.line) } }
            .sorted { $0.line < $1.line }
        func line(_ key: String) -> Int? { present.first { $0.key == key }?.line }

        config.vlan = reader.integer("vlan", in: VLANSet.vlanRange, log: &log)
        config.trunk = reader.vlanSet("trunk", log: &log)
        config.nativeVLAN = reader.integer("native-vlan", in: VLANSet.vlanRange, log: &log)
        config.macLock = reader.boolean("mac-lock", log: &log) ?? false
        config.maxMACs = reader.integer("max-macs", in: PortConfig.maxMACsRange, log: &log)
        config.floodLimit = reader.integer("flood-limit", in: PortConfig.floodLimitRange, log: &log)
        config.monitor = reader.boolean("monitor", log: &log) ?? false

        // Conflicts are reported at the later of the two keys. They go by the
        // keys' presence, so that a bad value still conflicts.
        if let vlanLine = line("vlan"), let trunkLine = line("trunk") {
            conflict(("vlan", vlanLine), ("trunk", trunkLine), "a port is an access port or a trunk, not both", log: &log)
        }
        if let nativeLine = line("native-vlan") {
            if line("trunk") == nil {
                log.error(nativeLine, "'native-vlan' needs 'trunk' (the VLAN of an access port is set with 'vlan')")
            } else if let native = config.nativeVLAN, let trunk = config.trunk, !trunk.contains(native) {
                log.error(nativeLine, "'native-vlan' \(native) is not one of the VLANs in 'trunk'")
            }
        }
        if config.macLock, let lockLine = line("mac-lock"), !reader.has("mac") {
            log.error(lockLine, "'mac-lock = true' needs 'mac': the one address allowed to send from the port")
        }
        if config.monitor, let monitorLine = line("monitor") {
            var others = ["vlan", "trunk"].compactMap { key in line(key).map { (key, $0) } }
            if config.macLock, let lockLine = line("mac-lock") { others.append(("mac-lock", lockLine)) }
            for other in others {
                conflict(("monitor", monitorLine), other, "a monitor port only receives copies and forwards nothing", log: &log)
            }
        }
        return present
    }

    /// Reports two keys that exclude each other, at the later one's line.
    private static func conflict(
        _ first: (key: String, line: Int), _ second: (key: String, line: Int), _ why: String, log: inout DiagnosticLog
    ) {
        let (earlier, later) = first.line <= second.line ? (first, second) : (second, first)
        log.error(later.line, "'\(later.key)' cannot be used with '\(earlier.key)' (line \(earlier.line)): \(why)")
    }

    private static func macAddress(_ entry: RawEntry, log: inout DiagnosticLog) -> MACAddress? {
        guard let mac = MACAddress(entry.value) else {
            log.error(entry.line, "'mac' must look like 02:00:00:00:00:01, got '\(excerpt(entry.value))'")
            return nil
        }
        if mac.isBroadcast {
            log.error(entry.line, "'mac' \(mac) is the broadcast address; a port needs a unicast MAC")
        } else if mac.isMulticast {
            log.error(entry.line, "'mac' \(mac) is a multicast address; a port needs a unicast MAC")
        } else if mac.isZero {
            log.error(entry.line, "'mac' 00:00:00:00:00:00 is not a usable address")
        } else {
            return mac
        }
        return nil
    }

    static func socketPath(_ entry: RawEntry, socketDir: String, log: inout DiagnosticLog) -> String? {
        if entry.value.hasSuffix("/") {
            log.error(entry.line, "'socket' must name a file, got '\(excerpt(entry.value))'")
            return nil
        }
        let path = entry.value.hasPrefix("/")
            ? normalizedPath(entry.value)
            : normalizedPath(socketDir + "/" + entry.value)
        let length = path.utf8.count
        if length > maxSocketPathLength {
            log.error(entry.line, "socket path '\(excerpt(path))' is \(length) bytes; a unix socket path is at most \(maxSocketPathLength)")
            return nil
        }
        return path
    }
}

/// A decoded `[p2p NAME]` or `[switch NAME]`, before cross-references are checked.
struct DecodedLink {
    var kind: SectionKind
    var name: String
    var line: Int
    var header: String
    /// The port names it lists (bad ones already dropped and reported).
    var ports: [String]
    /// Line of `ports` (the header line if it is missing).
    var portsLine: Int
    var aging: Int
    var maxMACs: Int
    /// True if `ports` has no bad or duplicate element, so that counting it means something.
    var isCleanList: Bool
    /// False if any key of the section was bad.
    var isValid: Bool
    /// `[network]`: its own keys.
    var network: DecodedNetworkKeys? = nil
}

enum LinkDecoder {
    static func decode(_ section: RawSection, log: inout DiagnosticLog) -> DecodedLink {
        let errorsBefore = log.errors.count
        var reader = SectionReader(section)
        _ = reader.required("ports", log: &log)
        let list = reader.nameList("ports", log: &log)
        var aging = SwitchConfig.defaultAging
        var maxMACs = SwitchConfig.defaultMaxMACs
        let isCleanList = list.map { list in
            list.names.count == reader.listedCount("ports") && Set(list.names).count == list.names.count
        } ?? false
        var network: DecodedNetworkKeys?
        if section.kind == .network {
            network = NetworkDecoder.decode(&reader, log: &log)
        } else if section.kind == .p2p {
            if let list, list.names.count != 2, list.names.count == reader.listedCount("ports") {
                log.error(list.line, "a p2p link joins exactly two ports, got \(list.names.count)")
            }
        } else {
            aging = reader.integer("aging", in: SwitchConfig.agingRange, log: &log) ?? SwitchConfig.defaultAging
            maxMACs = reader.integer("max-macs", in: SwitchConfig.maxMACsRange, log: &log) ?? SwitchConfig.defaultMaxMACs
        }
        reader.reportUnknownKeys(log: &log)
        return DecodedLink(
            kind: section.kind, name: section.name, line: section.line, header: section.header,
            ports: list?.names ?? [], portsLine: list?.line ?? section.line, aging: aging, maxMACs: maxMACs,
            isCleanList: isCleanList, isValid: log.errors.count == errorsBefore, network: network
        )
    }
}

extension SectionReader {
    /// How many elements a list value has, bad ones included.
    func listedCount(_ key: String) -> Int {
        section.entries.first { $0.key == key }?.value
            .split(separator: ",", omittingEmptySubsequences: false).count ?? 0
    }
}

/// Collapses repeated `/` and drops `.` components and a trailing `/`, so
/// that two spellings of one socket path compare equal. `..` is kept as is.
func normalizedPath(_ path: String) -> String {
    let components = path.split(separator: "/").filter { $0 != "." }
    let joined = components.joined(separator: "/")
    return path.hasPrefix("/") ? "/" + joined : joined
}
