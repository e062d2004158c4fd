// Who may connect to a vhost-user socket that sluice listens on: the
// `socket-owner`, `socket-group` and `socket-mode` keys of `[dataplane]`
// (defaults for every server-mode port) and of a vhost-user `[port]`.

/// A user or group as the file names it: a name to look up on the host, or a numeric id.
public enum AccountRef: Equatable, Sendable, CustomStringConvertible {
    case name(String)
    case id(UInt32)

    public var description: String {
        switch self {
        case .name(let name): name
        case .id(let id): String(id)
        }
    }

    /// Numeric ids go up to 2^32 - 2 ((uid_t)-1 means "unchanged" to chown).
    public static let maxID = 4_294_967_294

    /// Digits are an id; anything else must look like a user or group name:
    /// 1 to 32 of `A-Z a-z 0-9 _ . -`, not starting with `-`, optionally ending in `$`.
    static func parse(_ text: String) -> AccountRef? {
        if let id = parseDecimal(text) {
            return id <= maxID ? .id(UInt32(id)) : nil
        }
        var bytes = Array(text.utf8)
        if bytes.last == UInt8(ascii: "$") { bytes.removeLast() }
        guard !bytes.isEmpty, bytes.count <= 32, bytes.first != UInt8(ascii: "-") else { return nil }
        let ok = bytes.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
        return ok ? .name(text) : nil
    }
}

/// Owner, group and permission bits for a listening socket file, each with
/// the line that set it (a `[port]` key, or the `[dataplane]` default).
public struct SocketAccess: Equatable, Sendable {
    /// The mode a socket file gets when no `socket-mode` is set.
    public static let defaultMode: UInt32 = 0o660

    public var owner: AccountRef?
    public var ownerLine: Int?
    public var group: AccountRef?
    public var groupLine: Int?
    /// Permission bits, 0...0o777; nil = `defaultMode`.
    public var mode: UInt32?
    public var modeLine: Int?

    public init(
        owner: AccountRef? = nil, ownerLine: Int? = nil, group: AccountRef? = nil, groupLine: Int? = nil,
        mode: UInt32? = nil, modeLine: Int? = nil
    ) {
        self.owner = owner
        self.ownerLine = ownerLine
        self.group = group
        self.groupLine = groupLine
        self.mode = mode
        self.modeLine = modeLine
    }

    /// The bits the socket file gets.
    public var effectiveMode: UInt32 { mode ?? Self.defaultMode }

    /// True if no key sets anything.
    public var isEmpty: Bool { owner == nil && group == nil && mode == nil }

    /// Each value of `self` where it is set, else the one of `defaults`.
    func over(_ defaults: SocketAccess) -> SocketAccess {
        var merged = self
        if owner == nil { (merged.owner, merged.ownerLine) = (defaults.owner, defaults.ownerLine) }
        if group == nil { (merged.group, merged.groupLine) = (defaults.group, defaults.groupLine) }
        if mode == nil { (merged.mode, merged.modeLine) = (defaults.mode, defaults.modeLine) }
        return merged
    }

    /// `0660`, as the file writes it.
    public static func octal(_ mode: UInt32) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static let keys = ["socket-owner", "socket-group", "socket-mode"]
}

extension SectionReader {
    /// Reads `socket-owner`, `socket-group` and `socket-mode`, reporting bad values at their lines.
    mutating func socketAccess(log: inout DiagnosticLog) -> SocketAccess {
        var access = SocketAccess()
        if let entry = entry("socket-owner") {
            if let owner = AccountRef.parse(entry.value) {
                (access.owner, access.ownerLine) = (owner, entry.line)
            } else {
                log.error(entry.line, "bad 'socket-owner' '\(excerpt(entry.value))': use a user name or a numeric uid")
            }
        }
        if let entry = entry("socket-group") {
            if let group = AccountRef.parse(entry.value) {
                (access.group, access.groupLine) = (group, entry.line)
            } else {
                log.error(entry.line, "bad 'socket-group' '\(excerpt(entry.value))': use a group name or a numeric gid")
            }
        }
        if let entry = entry("socket-mode") {
            if let mode = parseMode(entry.value) {
                (access.mode, access.modeLine) = (mode, entry.line)
            } else {
                log.error(entry.line, "'socket-mode' must be octal permission bits like 0660 (at most 0777), got '\(excerpt(entry.value))'")
            }
        }
        if let mode = access.mode, mode & 0o200 == 0, let line = access.modeLine {
            log.warning(line, "'socket-mode' \(SocketAccess.octal(mode)) does not let the socket's owner connect (a client needs write permission)")
        }
        return access
    }

    /// Three or four octal digits (`660`, `0660`), at most 0777.
    private func parseMode(_ text: String) -> UInt32? {
        let bytes = Array(text.utf8)
        guard (3...4).contains(bytes.count) else { return nil }
        var value: UInt32 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + UInt32(byte - UInt8(ascii: "0"))
        }
        return value <= 0o777 ? value : nil
    }
}
