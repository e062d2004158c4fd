#if canImport(Glibc)
import Glibc
#endif
import Config
import Platform

/// The `socket-owner`, `socket-group`, `socket-mode` and socket directory of
/// server-mode vhost-user ports, against this host: names looked up, the
/// directory checked. `--check` and start-up report the same problems.
enum SocketPermissions {
    struct Problem: Error {
        var message: String
    }

    /// Owner and group as ids (names looked up now), and the mode.
    static func resolve(_ access: SocketAccess) -> Result<UnixSocket.FileAccess, Problem> {
        var file = UnixSocket.FileAccess(mode: mode_t(access.effectiveMode))
        switch access.owner {
        case nil: break
        case .id(let uid): file.uid = uid
        case .name(let name):
            guard let uid = Accounts.userID(named: name) else { return .failure(Problem(message: unknownUser(name))) }
            file.uid = uid
        }
        switch access.group {
        case nil: break
        case .id(let gid): file.gid = gid
        case .name(let name):
            guard let gid = Accounts.groupID(named: name) else { return .failure(Problem(message: unknownGroup(name))) }
            file.gid = gid
        }
        return .success(file)
    }

    /// `mode 0660, owner root, group kvm`, for the log.
    static func describe(_ access: SocketAccess) -> String {
        var parts = ["mode \(SocketAccess.octal(access.effectiveMode))"]
        if let owner = access.owner { parts.append("owner \(owner)") }
        if let group = access.group { parts.append("group \(group)") }
        return parts.joined(separator: ", ")
    }

    static func unknownUser(_ name: String) -> String { "socket-owner '\(name)': no such user on this host" }
    static func unknownGroup(_ name: String) -> String { "socket-group '\(name)': no such group on this host" }

    /// Every problem of every server-mode port, as `FILE:LINE: port NAME: …`:
    /// unknown users and groups (at the line that names them), an owner or
    /// group that needs root to set, and a socket directory that cannot be created.
    static func problems(_ config: SluiceConfig) -> [String] {
        var out: [String] = []
        var reported: Set<Int> = []   // a [dataplane] default is reported once, not per port
        let root = geteuid() == 0
        // Every socket sluice listens on: server-mode vhost-user ports and blk exports.
        var sockets: [(what: String, access: SocketAccess, path: String?, line: Int)] = []
        for p in config.ports where p.type == .vhostUser && p.mode == .server {
            sockets.append(("port \(p.name)", p.socketAccess, p.socket, p.socketLine ?? p.line))
        }
        for b in config.blks where b.mode == .server {
            sockets.append(("blk \(b.name)", b.socketAccess, b.socket, b.line))
        }
        for (what, access, socket, socketLine) in sockets {
            if case .name(let name) = access.owner, Accounts.userID(named: name) == nil,
               let line = access.ownerLine, reported.insert(line).inserted {
                out.append("\(config.file):\(line): \(what): \(unknownUser(name))")
            }
            if case .name(let name) = access.group, Accounts.groupID(named: name) == nil,
               let line = access.groupLine, reported.insert(line).inserted {
                out.append("\(config.file):\(line): \(what): \(unknownGroup(name))")
            }
            if !root, case .success(let ids) = resolve(access), let line = access.ownerLine ?? access.groupLine,
               let why = unprivilegedChownProblem(ids), reported.insert(-line).inserted {
                out.append("\(config.file):\(line): \(what): \(why)")
            }
            if let socket, let problem = directoryProblem(socket) {
                out.append("\(config.file):\(socketLine): \(what): \(problem)")
            }
        }
        return out
    }

    /// Without root, chown(2) may only keep the owner and pick one of the process's own groups.
    static func unprivilegedChownProblem(_ ids: UnixSocket.FileAccess) -> String? {
        if let uid = ids.uid, uid != geteuid() {
            return "giving the socket to uid \(uid) needs root (CAP_CHOWN)"
        }
        if let gid = ids.gid, gid != getegid() {
            var groups = [gid_t](repeating: 0, count: Int(max(0, getgroups(0, nil))))
            let count = getgroups(Int32(groups.count), &groups)
            if count < 0 || !groups.prefix(Int(count)).contains(gid) {
                return "giving the socket to gid \(gid), a group sluice is not in, needs root (CAP_CHOWN)"
            }
        }
        return nil
    }

    /// Why the directory of `socket` could not be made or used, or nil: it
    /// (or, if missing, its nearest existing ancestor) is a directory this
    /// process may write to.
    /// Nothing is created (`--check` changes nothing).
    static func directoryProblem(_ socket: String) -> String? {
        guard let slash = socket.lastIndex(of: "/"), slash != socket.startIndex else { return nil }
        let dir = String(socket[..<slash])
        var current = dir
        while true {
            var st = stat()
            if stat(current, &st) == 0 {
                if st.st_mode & S_IFMT != S_IFDIR {
                    return "socket directory \(dir): cannot create: \(current) is not a directory"
                }
                if access(current, W_OK | X_OK) != 0 {
                    let why = String(cString: strerror(errno))
                    return current == dir
                        ? "socket directory \(dir): cannot create sockets in it: \(why)"
                        : "socket directory \(dir): cannot create: \(current): \(why)"
                }
                return nil
            }
            let e = errno
            if e != ENOENT && e != ENOTDIR {   // ENOTDIR: a file higher up, found on the way up
                return "socket directory \(dir): cannot create: \(current): \(String(cString: strerror(e)))"
            }
            guard let up = current.lastIndex(of: "/"), up != current.startIndex else { return nil }
            current = String(current[..<up])
        }
    }
}
