import Config

/// The lease file of one network, `<state-dir>/leases-<network>`: text, one record a line.
///
///     # sluice leases (written atomically by sluice; do not edit while it runs)
///     version 1
///     network prod
///     lease mac=02:00:00:00:10:01 port=vm1 v4=10.0.0.5 state4=bound until4=1767225600 v6=fd00:1::5 state6=bound until6=1767225600 duid=000300010200000010 iaid=1
///     quarantine4 10.0.0.9 until=1767222000
///     quarantine6 fd00:1::9 until=1767222000
///     end 3
///
/// `end N` counts the lease and quarantine lines: a file without it, or with another
/// count, was cut short and is refused with its line. Values are `key=value` without
/// spaces; a port name is percent-encoded outside `A-Z a-z 0-9 . _ : -`.
enum LeaseFile {
    struct Loaded {
        var leases: [Lease] = []
        var quarantine4: [IPv4Address: UInt64] = [:]
        var quarantine6: [IPv6Address: UInt64] = [:]
    }

    static func render(_ leases: [Lease], quarantine4: [IPv4Address: UInt64], quarantine6: [IPv6Address: UInt64],
                       network: String) -> String {
        var out = "# sluice leases (written atomically by sluice; do not edit while it runs)\nversion 1\nnetwork \(escape(network))\n"
        var count = 0
        for l in leases {
            var line = "lease mac=\(l.mac) port=\(escape(l.port))"
            if let a = l.ipv4 { line += " v4=\(a) state4=\(l.state4.rawValue) until4=\(l.expiry4)" }
            if let a = l.ipv6 { line += " v6=\(a) state6=\(l.state6.rawValue) until6=\(l.expiry6)" }
            if !l.duid.isEmpty { line += " duid=\(hex(l.duid)) iaid=\(l.iaid)" }
            out += line + "\n"
            count += 1
        }
        for (a, until) in quarantine4.sorted(by: { $0.key < $1.key }) {
            out += "quarantine4 \(a) until=\(until)\n"
            count += 1
        }
        for (a, until) in quarantine6.sorted(by: { $0.key < $1.key }) {
            out += "quarantine6 \(a) until=\(until)\n"
            count += 1
        }
        return out + "end \(count)\n"
    }

    /// Reads a file back. Records whose addresses left the network's ranges (the config
    /// changed) lose those addresses; anything that does not parse is an error naming its line.
    static func parse(_ bytes: [UInt8], path: String, network: NetworkServiceConfig) throws(LeaseFileError) -> Loaded {
        var loaded = Loaded()
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        var sawVersion = false, records = 0, ended = false
        func fail(_ n: Int, _ message: String) -> LeaseFileError { LeaseFileError(path: path, line: n, message: message) }
        for (index, raw) in lines.enumerated() {
            let n = index + 1
            let line = trimmed(raw)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if ended { throw fail(n, "text after the 'end' line") }
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let head = words.first else { continue }
            if !sawVersion {
                guard words == ["version", "1"] else { throw fail(n, "expected 'version 1' (not a sluice lease file, or a newer one)") }
                sawVersion = true
                continue
            }
            switch head {
            case "network":
                guard words.count == 2 else { throw fail(n, "expected 'network NAME'") }
                guard unescape(words[1]) == network.name else {
                    throw fail(n, "the file belongs to network '\(unescape(words[1]) ?? words[1])', not '\(network.name)'")
                }
            case "lease":
                loaded.leases.append(try lease(words.dropFirst(), line: n, path: path, network: network))
                records += 1
            case "quarantine4", "quarantine6":
                guard words.count == 3, words[2].hasPrefix("until="), let until = UInt64(words[2].dropFirst(6)) else {
                    throw fail(n, "expected '\(head) ADDRESS until=SECONDS'")
                }
                if head == "quarantine4" {
                    guard let a = IPv4Address(words[1]) else { throw fail(n, "'\(words[1])' is not an IPv4 address") }
                    loaded.quarantine4[a] = until
                } else {
                    guard let a = IPv6Address(words[1]) else { throw fail(n, "'\(words[1])' is not an IPv6 address") }
                    loaded.quarantine6[a] = until
                }
                records += 1
            case "end":
                guard words.count == 2, let count = Int(words[1]) else { throw fail(n, "expected 'end COUNT'") }
                guard count == records else { throw fail(n, "'end \(count)' but \(records) records precede it (damaged file)") }
                ended = true
            default:
                throw fail(n, "unknown record '\(head)'")
            }
        }
        guard sawVersion else { throw fail(0, "empty lease file (no 'version' line)") }
        guard ended else { throw fail(lines.count, "no 'end' line: the file was cut short") }
        return loaded
    }

    static func lease(_ words: ArraySlice<String>, line n: Int, path: String,
                      network: NetworkServiceConfig) throws(LeaseFileError) -> Lease {
        func fail(_ message: String) -> LeaseFileError { LeaseFileError(path: path, line: n, message: message) }
        var fields: [String: String] = [:]
        for w in words {
            guard let eq = w.firstIndex(of: "=") else { throw fail("'\(w)' is not key=value") }
            let key = String(w[..<eq])
            guard fields.updateValue(String(w[w.index(after: eq)...]), forKey: key) == nil else { throw fail("'\(key)' given twice") }
        }
        let known: Set<String> = ["mac", "port", "v4", "state4", "until4", "v6", "state6", "until6", "duid", "iaid"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) { throw fail("unknown field '\(unknown)'") }
        guard let macText = fields["mac"], let mac = MACAddress(macText) else { throw fail("missing or bad mac=") }
        guard let portText = fields["port"], let port = unescape(portText) else { throw fail("missing or bad port=") }
        var l = Lease(mac: mac, port: port)
        if let v4 = fields["v4"] {
            guard let a = IPv4Address(v4) else { throw fail("'\(v4)' is not an IPv4 address") }
            guard let s = fields["state4"].flatMap(Lease.State.init(rawValue:)) else { throw fail("missing or bad state4=") }
            guard let u = fields["until4"].flatMap({ UInt64($0) }) else { throw fail("missing or bad until4=") }
            if network.ipv4Subnet?.contains(a) == true { (l.ipv4, l.state4, l.expiry4) = (a, s == .offered ? .expired : s, u) }
        } else if fields["state4"] != nil || fields["until4"] != nil {
            throw fail("state4=/until4= without v4=")
        }
        if let v6 = fields["v6"] {
            guard let a = IPv6Address(v6) else { throw fail("'\(v6)' is not an IPv6 address") }
            guard let s = fields["state6"].flatMap(Lease.State.init(rawValue:)) else { throw fail("missing or bad state6=") }
            guard let u = fields["until6"].flatMap({ UInt64($0) }) else { throw fail("missing or bad until6=") }
            if network.ipv6Prefix?.contains(a) == true { (l.ipv6, l.state6, l.expiry6) = (a, s == .offered ? .expired : s, u) }
        } else if fields["state6"] != nil || fields["until6"] != nil {
            throw fail("state6=/until6= without v6=")
        }
        if let d = fields["duid"] {
            guard let bytes = unhex(d), !bytes.isEmpty, bytes.count <= 130 else { throw fail("bad duid=") }
            guard let iaid = fields["iaid"].flatMap({ UInt32($0) }) else { throw fail("missing or bad iaid=") }
            l.duid = bytes
            l.iaid = iaid
        }
        return l
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    static func unhex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let h = nibble(chars[i]), let l = nibble(chars[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }

    static func plain(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x3A || c == 0x2D
    }

    static func escape(_ s: String) -> String {
        if s.isEmpty { return "%" }
        var out = ""
        for c in s.utf8 {
            if plain(c) { out.unicodeScalars.append(Unicode.Scalar(c)) } else { out += "%" + hex([c]) }
        }
        return out
    }

    static func unescape(_ s: String) -> String? {
        if s == "%" { return "" }
        let b = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if b[i] == 0x25 {
                guard i + 2 < b.count, let h = nibble(b[i + 1]), let l = nibble(b[i + 2]) else { return nil }
                out.append(h << 4 | l)
                i += 3
            } else {
                guard plain(b[i]) else { return nil }
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func trimmed(_ raw: Substring) -> Substring {
        var s = raw
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}
