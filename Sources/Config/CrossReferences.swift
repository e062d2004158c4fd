// Third stage: what sections say about each other. Runs after every section
// is decoded, so the order of sections in the file never matters.

enum CrossReferences {
    static func check(
        links: [DecodedLink], portNames: Set<String>, brokenPortNames: Set<String>,
        ports: [DecodedPort], log: inout DiagnosticLog
    ) {
        let owners = checkAttachments(links, portNames: portNames, brokenPortNames: brokenPortNames, log: &log)
        checkSockets(ports, log: &log)
        checkSwitchPorts(links, owners: owners, ports: ports, log: &log)
        NetworkChecks.check(networks: links.filter { $0.kind == .network }, ports: ports, owners: owners, log: &log)
        for port in ports {
            guard let config = port.config, owners[config.name] == nil else { continue }
            log.warning(config.line, "port '\(config.name)' is not attached to any p2p link or switch")
        }
    }

    /// Every listed port must exist and belong to one p2p link or switch only.
    /// Returns the link or switch each attached port belongs to (the first that lists it).
    private static func checkAttachments(
        _ links: [DecodedLink], portNames: Set<String>, brokenPortNames: Set<String>, log: inout DiagnosticLog
    ) -> [String: DecodedLink] {
        var owner: [String: DecodedLink] = [:]
        for link in links {
            var listed: Set<String> = []
            for name in link.ports {
                guard portNames.contains(name) else {
                    if !brokenPortNames.contains(name) {
                        log.error(link.portsLine, "\(link.header) names port '\(name)', but there is no [port \(name)] section")
                    }
                    continue
                }
                guard listed.insert(name).inserted else {
                    log.error(link.portsLine, "port '\(name)' is listed twice in \(link.header)")
                    continue
                }
                if let first = owner[name] {
                    log.error(link.portsLine, "port '\(name)' is already attached to \(first.header) (line \(first.portsLine))")
                } else {
                    owner[name] = link
                }
            }
        }
        return owner
    }

    /// Switch-only port keys need the port to be on a switch, and a switch
    /// needs two ports that forward.
    private static func checkSwitchPorts(
        _ links: [DecodedLink], owners: [String: DecodedLink], ports: [DecodedPort], log: inout DiagnosticLog
    ) {
        var monitors: Set<String> = []
        for port in ports {
            guard let config = port.config else { continue }
            if config.monitor { monitors.insert(config.name) }
            guard let owner = owners[config.name], owner.kind == .p2p else { continue }
            for (key, line) in port.switchKeys {
                log.error(line, "port '\(config.name)' is on \(owner.header) (line \(owner.portsLine)), but '\(key)' only applies to switch ports")
            }
        }
        // A list with bad or repeated names was reported already; counting it would only add noise.
        // Ports that are missing or attached elsewhere (also reported) count as forwarding.
        for link in links where link.kind == .switch && link.isCleanList {
            if link.ports.filter({ !monitors.contains($0) }).count < 2 {
                log.error(link.portsLine, "a switch needs at least two forwarding ports (monitor ports do not count)")
            }
        }
    }

    /// Two vhost-user ports cannot share a socket path.
    private static func checkSockets(_ ports: [DecodedPort], log: inout DiagnosticLog) {
        var users: [String: (port: String, line: Int)] = [:]
        for port in ports {
            guard let config = port.config, let path = config.socket, let line = port.socketLine else { continue }
            if let first = users[path] {
                log.error(line, "socket path '\(path)' is already used by port '\(first.port)' (line \(first.line))")
            } else {
                users[path] = (config.name, line)
            }
        }
    }
}
