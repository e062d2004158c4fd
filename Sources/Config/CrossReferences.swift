// Third stage: what sections say about each other. Runs after every section
// is decoded, so the order of sections in the file never matters.

enum CrossReferences {
    static func check(
        links: [DecodedLink], portNames: Set<String>, brokenPortNames: Set<String>,
        ports: [DecodedPort], log: inout DiagnosticLog
    ) {
        let attached = checkAttachments(links, portNames: portNames, brokenPortNames: brokenPortNames, log: &log)
        checkSockets(ports, log: &log)
        for port in ports {
            guard let config = port.config, !attached.contains(config.name) else { continue }
            log.warning(config.line, "port '\(config.name)' is not attached to any p2p link or switch")
        }
    }

    /// Every listed port must exist and belong to one p2p link or switch only.
    /// Returns the names of the ports that are attached.
    private static func checkAttachments(
        _ links: [DecodedLink], portNames: Set<String>, brokenPortNames: Set<String>, log: inout DiagnosticLog
    ) -> Set<String> {
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
        return Set(owner.keys)
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
