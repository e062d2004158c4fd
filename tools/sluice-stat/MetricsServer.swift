// --serve: a small blocking HTTP/1.1 server for Prometheus scrapes. One
// connection at a time, each with a 2 s deadline, closed after one response;
// GET (or HEAD) /metrics reads a fresh snapshot, anything else is 404 (405 for
// other methods, 400 for what is not HTTP). The segment is reopened when the
// daemon restarts; without one the answer is `sluice_up 0`.

import ArgumentParser
import Platform
import Stats

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where to listen: numeric IPv4 or IPv6 address (or "localhost") and port.
struct ListenAddress: Equatable {
    var host: String
    var port: UInt16

    /// "PORT" (on 127.0.0.1), "HOST:PORT" or "[IPV6]:PORT".
    static func parse(_ text: String) -> Result<ListenAddress, ListenAddressError> {
        var host = "127.0.0.1"
        var portText = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return .failure(.init("'\(text)' is not [IPV6]:PORT"))
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(close, offsetBy: 2)...])
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
            if host.contains(":") { return .failure(.init("'\(text)': write an IPv6 address as [ADDRESS]:PORT")) }
        }
        if host == "localhost" { host = "127.0.0.1" }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let port = UInt16(portText)
        else {
            return .failure(.init("'\(portText)' is not a port number (0-65535) in '\(text)'"))
        }
        var probe = in6_addr()
        guard inet_pton(AF_INET, host, &probe) == 1 || inet_pton(AF_INET6, host, &probe) == 1 else {
            return .failure(.init("'\(host)' is not a numeric IPv4 or IPv6 address"))
        }
        return .success(ListenAddress(host: host, port: port))
    }

    var isLoopback: Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        return host == "::1"
    }

    /// How to write it in a URL.
    func urlHost() -> String { host.contains(":") ? "[\(host)]" : host }
}

struct ListenAddressError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct MetricsServer {
    let command: SluiceStat
    let address: ListenAddress
    private var reader: StatsReader?
    private var lastState = ""

    static let requestDeadlineSeconds = 2.0
    static let maxRequestBytes = 8192

    init(command: SluiceStat, address: ListenAddress) {
        self.command = command
        self.address = address
    }

    mutating func run() throws {
        Signals.ignorePipe()
        installStopHandlers()
        let listener: OwnedFD
        do { listener = try listen() } catch {
            Output.standardError("sluice-stat: --serve \(address.urlHost()):\(address.port): \(error.description)\n")
            throw ExitCode.failure
        }
        if !address.isLoopback {
            Output.standardError(
                "sluice-stat: warning: \(address.host) is not a loopback address; the metrics are readable by anyone who can reach it (no authentication)\n")
        }
        let port = Self.boundPort(listener.raw)
        Output.standardError("sluice-stat: serving http://\(address.urlHost()):\(port)/metrics for instance '\(instanceLabel)'\n")
        _ = metrics()  // say once at start whether the segment is there
        while !stopRequested.load(ordering: .relaxed) {
            guard Poll.once(listener.raw, for: Poll.readable, timeoutMilliseconds: 200) & Poll.readable != 0 else {
                continue
            }
            let client = accept(listener.raw, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)  // the deadline needs non-blocking I/O
            let connection = OwnedFD(adopting: client)
            answer(connection.raw)
        }
    }

    /// The instance label while no segment can be read.
    var instanceLabel: String {
        command.path.flatMap(StatsPath.instance(forPath:)) ?? command.instance
    }

    private func listen() throws(ListenAddressError) -> OwnedFD {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host, String(address.port), &hints, &list)
        guard status == 0, let info = list else {
            throw ListenAddressError(String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        let socket = OwnedFD(adopting: Glibc.socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0))
        guard socket.raw >= 0 else { throw ListenAddressError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(socket.raw, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(socket.raw, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            throw ListenAddressError("bind: \(String(cString: strerror(errno)))")
        }
        guard Glibc.listen(socket.raw, 16) == 0 else {
            throw ListenAddressError("listen: \(String(cString: strerror(errno)))")
        }
        return socket
    }

    /// The port the kernel bound (the asked one, or the free one it picked for 0).
    static func boundPort(_ fd: Int32) -> UInt16 {
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &bound) { storage in
            _ = storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            if Int32(storage.pointee.ss_family) == AF_INET6 {
                return storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    // MARK: One request

    private mutating func answer(_ fd: Int32) {
        let deadline = monotonicSeconds() + Self.requestDeadlineSeconds
        guard let head = readHead(fd, deadline: deadline) else {
            send(fd, status: "400 Bad Request", body: "bad or incomplete HTTP request\n", deadline: deadline)
            return
        }
        let requestLine = head.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? ""
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            send(fd, status: "400 Bad Request", body: "bad HTTP request line\n", deadline: deadline)
            return
        }
        let method = parts[0]
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else {
            send(fd, status: "404 Not Found", body: "not found; the metrics are at /metrics\n", deadline: deadline)
            return
        }
        guard method == "GET" || method == "HEAD" else {
            send(fd, status: "405 Method Not Allowed", body: "only GET and HEAD\n", deadline: deadline,
                 extraHeaders: "Allow: GET, HEAD\r\n")
            return
        }
        send(fd, status: "200 OK", body: metrics(), deadline: deadline,
             contentType: "text/plain; version=0.0.4; charset=utf-8", includeBody: method == "GET")
    }

    /// The request up to the empty line, or nil on timeout, close, or more than 8 KiB.
    private func readHead(_ fd: Int32, deadline: Double) -> String? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while bytes.count < Self.maxRequestBytes {
            let left = Int32(max(0, (deadline - monotonicSeconds()) * 1000))
            guard left > 0, Poll.once(fd, for: Poll.readable, timeoutMilliseconds: left) != 0 else { return nil }
            let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got < 0, errno == EINTR || errno == EAGAIN { continue }
            guard got > 0 else { return nil }
            bytes += chunk[0..<got]
            if Self.headIsComplete(bytes) { return String(decoding: bytes, as: UTF8.self) }
        }
        return nil
    }

    /// The head ends with an empty line: CRLF CRLF (or bare LF LF from a hand-typed request).
    static func headIsComplete(_ bytes: [UInt8]) -> Bool {
        var lineStart = 0
        for (index, byte) in bytes.enumerated() where byte == 10 {
            let length = index - lineStart
            let empty = length == 0 || (length == 1 && bytes[lineStart] == 13)
            if empty, lineStart > 0 { return true }
            lineStart = index + 1
        }
        return false
    }

    private func send(
        _ fd: Int32, status: String, body: String, deadline: Double,
        contentType: String = "text/plain; charset=utf-8", includeBody: Bool = true, extraHeaders: String = ""
    ) {
        var response = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n"
        response += extraHeaders + "Connection: close\r\n\r\n"
        if includeBody { response += body }
        var bytes = Array(response.utf8)
        var offset = 0
        bytes.withUnsafeMutableBytes { buffer in
            while offset < buffer.count {
                let left = Int32(max(0, (deadline - monotonicSeconds()) * 1000))
                guard left > 0, Poll.once(fd, for: Poll.writable, timeoutMilliseconds: left) != 0 else { return }
                let sent = Glibc.send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if sent < 0, errno == EINTR || errno == EAGAIN { continue }
                guard sent > 0 else { return }
                offset += sent
            }
        }
        shutdown(fd, Int32(SHUT_WR))
    }

    // MARK: The segment

    /// The exposition of a fresh snapshot; reopens the segment when the daemon
    /// replaced or removed it, and says so on stderr when the state changes.
    private mutating func metrics() -> String {
        if let current = reader, current.fileWasReplaced { reader = nil }
        if reader == nil {
            do throws(StatsError) { reader = try command.openReader() } catch {
                report("\(error.message); answering sluice_up 0")
                return StatsFormat.prometheusUnavailable(instance: instanceLabel)
            }
        }
        guard let current = reader else { return StatsFormat.prometheusUnavailable(instance: instanceLabel) }
        let snapshot: StatsSnapshot
        do throws(StatsError) { snapshot = try current.snapshot() } catch {
            reader = nil
            report("\(error.message); answering sluice_up 0")
            return StatsFormat.prometheusUnavailable(instance: instanceLabel)
        }
        let name = command.instanceName(snapshot)
        if snapshot.isLive {
            report("instance '\(name)' is live (pid \(snapshot.pid))")
        } else {
            report("instance '\(name)' is not running (\(snapshot.staleReason ?? "no heartbeat")); answering sluice_up 0 with its last values")
        }
        return StatsFormat.prometheus(snapshot, instance: name)
    }

    private mutating func report(_ state: String) {
        guard state != lastState else { return }
        lastState = state
        Output.standardError("sluice-stat: \(state)\n")
    }
}
