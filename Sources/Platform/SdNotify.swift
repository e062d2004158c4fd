#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// The service manager's readiness protocol (`sd_notify(3)`), spoken by hand:
/// one datagram of `KEY=VALUE` lines to the unix socket named by
/// `$NOTIFY_SOCKET`. A path, or an abstract socket when it starts with `@`.
/// Without `$NOTIFY_SOCKET` (not started by systemd, or not `Type=notify`)
/// nothing is sent.
///
/// ```swift
/// try SdNotify.ready(status: "2 workers")   // READY=1, STATUS=2 workers
/// try SdNotify.stopping()                   // STOPPING=1
/// ```
public enum SdNotify {
    /// The socket named by the environment, or nil.
    public static var socketFromEnvironment: String? {
        guard let raw = getenv("NOTIFY_SOCKET") else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }

    /// `READY=1`: start-up (or a reload) is complete.
    public static func ready(status: String? = nil) throws(SystemError) {
        try send(["READY=1"] + statusField(status))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (systemd 253+ matches the reload
    /// by it with `Type=notify-reload`; older ones ignore it). Send `ready` when done.
    public static func reloading(status: String? = nil) throws(SystemError) {
        try send(["RELOADING=1", "MONOTONIC_USEC=\(Clock.monotonicNanos() / 1000)"] + statusField(status))
    }

    /// `STOPPING=1`: shutting down.
    public static func stopping(status: String? = nil) throws(SystemError) {
        try send(["STOPPING=1"] + statusField(status))
    }

    /// `STATUS=…`: one line shown by `systemctl status`.
    public static func status(_ text: String) throws(SystemError) {
        try send(statusField(text))
    }

    /// Sends the fields as one datagram to `socket` (default: `$NOTIFY_SOCKET`).
    /// Returns false when there is no socket to tell.
    @discardableResult
    public static func send(_ fields: [String], to socket: String? = socketFromEnvironment) throws(SystemError) -> Bool {
        guard let socket else { return false }
        let message = fields.joined(separator: "\n") + "\n"
        var addr = sockaddr_un()
        let length = try address(socket, into: &addr)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket (NOTIFY_SOCKET)") }
        defer { closeFD(fd) }
        let bytes = Array(message.utf8)
        let sent = try retryingEINTR("sendto \(socket)") {
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
                }
            }
        }
        if sent != bytes.count {
            throw SystemError("sendto \(socket)", errno: EMSGSIZE, message: "sendto \(socket): sent \(sent) of \(bytes.count) bytes")
        }
        return true
    }

    private static func statusField(_ status: String?) -> [String] {
        guard let status else { return [] }
        // One line: a newline would start another field.
        return ["STATUS=" + status.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")]
    }

    /// Fills `addr` for `socket` and returns the address length: a path
    /// (absolute, NUL-terminated) or `@name` (abstract: a leading NUL, no terminator).
    static func address(_ socket: String, into addr: inout sockaddr_un) throws(SystemError) -> socklen_t {
        addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(socket.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract {
            bytes[0] = 0
        } else if bytes.first != UInt8(ascii: "/") {
            throw SystemError("NOTIFY_SOCKET", errno: EAFNOSUPPORT,
                              message: "NOTIFY_SOCKET '\(socket)' is neither an absolute path nor an @abstract name")
        }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity, !bytes.dropFirst().contains(0) else {
            throw SystemError("NOTIFY_SOCKET", errno: ENAMETOOLONG,
                              message: "NOTIFY_SOCKET '\(socket)' is longer than \(capacity - 1) bytes or holds a NUL")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
        return socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1))
    }
}
