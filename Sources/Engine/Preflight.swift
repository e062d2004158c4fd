#if canImport(Glibc)
import Glibc
#endif
import Config
import Memory
import Platform

/// What a valid config can still not run on this host: checked by `sluice --check`
/// and before start-up, so both refuse the same things, each with FILE:LINE.
public enum Preflight {
    public static func problems(_ config: SluiceConfig, options: RuntimeOptions) -> [String] {
        var out: [String] = []
        if !DataplaneConfig.isValidInstance(options.instance) {
            out.append("--instance: bad name '\(options.instance)': use 1 to 32 of A-Z a-z 0-9 _ -")
        }
        let root = geteuid() == 0
        for p in config.ports {
            let at = "\(config.file):\(p.line): port \(p.name)"
            switch p.type {
            case .vhostUser:
                break
            case .tap:
                let name = p.interface ?? p.name
                if access("/dev/net/tun", R_OK | W_OK) != 0 {
                    out.append("\(at): tap interface '\(name)' needs /dev/net/tun (load the tun module; run as root or with CAP_NET_ADMIN)")
                } else if !root && NetInterface.index(name) == nil {
                    out.append("\(at): creating tap interface '\(name)' needs root (CAP_NET_ADMIN)")
                }
            case .afPacket:
                let name = p.interface ?? p.name
                if p.queues > 1 {
                    out.append("\(at): an af-packet port has one queue (queues = \(p.queues)); use a multiqueue tap port for more")
                }
                if NetInterface.index(name) == nil {
                    out.append("\(at): interface '\(name)' does not exist (an af-packet port attaches to an existing interface, e.g. `ip link add \(name) type veth peer name \(name)p`)")
                } else if !root {
                    out.append("\(at): attaching to '\(name)' needs root (CAP_NET_RAW)")
                }
            }
        }
        out += SocketPermissions.problems(config)
        out += bufferMTUProblems(config)
        // Each blk export's disk opens (for writing unless read-only) and its partition is found.
        for b in config.blks {
            do { _ = try BlkTargets.resolve(b, config: config, drives: nil) } catch { out.append(error.description) }
        }
        if let n = config.networks.first, let problem = stateDirectoryProblem(config.dataplane.stateDirectory) {
            out.append("\(config.file):\(n.line): network \(n.name): leases are kept in \(config.dataplane.stateDirectory): \(problem) (set [dataplane] state-dir)")
        }
        return out
    }

    /// Why the lease directory cannot be used: the nearest existing ancestor must be a
    /// writable directory (sluice creates the rest).
    static func stateDirectoryProblem(_ path: String) -> String? {
        var p = path
        while !p.isEmpty {
            var st = stat()
            if stat(p, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR else { return "\(p) is not a directory" }
                return access(p, W_OK | X_OK) == 0 ? nil : "\(p) is not writable"
            }
            guard let slash = p.lastIndex(of: "/") else { break }
            p = String(p[..<slash])
        }
        return access("/", W_OK) == 0 ? nil : "/ is not writable"
    }

    /// Frames through a switch, or a p2p link with a host port, travel in mempool buffers:
    /// a port there may not have an MTU whose frames do not fit one.
    static func bufferMTUProblems(_ config: SluiceConfig) -> [String] {
        let limit = BufferLayout.dataRoom - 18
        var through: [String: String] = [:]
        for sw in config.switches { for name in sw.ports { through[name] = "switch \(sw.name)" } }
        for n in config.networks { for name in n.ports { through[name] = "network \(n.name)" } }
        for link in config.p2p {
            let ports = [link.a, link.b].compactMap { n in config.ports.first { $0.name == n } }
            if ports.contains(where: { $0.type != .vhostUser }) {
                for p in ports { through[p.name] = "p2p \(link.name) (with a host port)" }
            }
        }
        return config.ports.compactMap { p in
            guard let via = through[p.name], p.mtu > limit else { return nil }
            return "\(config.file):\(p.line): port \(p.name): mtu \(p.mtu) is too large for \(via): frames there travel in \(BufferLayout.dataRoom)-byte packet buffers (mtu at most \(limit))"
        }
    }
}
