// `[network NAME]` sections and the router keys of `[port]`: a routed tenant network
// (each port its own /32 and /128, one gateway, DHCP and router advertisements).

/// A `[network NAME]` section.
public struct NetworkConfig: Equatable, Sendable {
    public static let defaultLeaseTime = 86400
    public static let leaseTimeRange = 60...31_536_000

    public var name: String
    /// Line of the `[network NAME]` header.
    public var line: Int
    public var ports: [String]
    public var ipv4Subnet: IPv4Prefix?
    public var ipv6Prefix: IPv6Prefix?
    public var dns4: [IPv4Address]
    public var dns6: [IPv6Address]
    public var domain: String?
    /// Seconds.
    public var leaseTime: Int

    public init(name: String, line: Int, ports: [String], ipv4Subnet: IPv4Prefix? = nil, ipv6Prefix: IPv6Prefix? = nil,
                dns4: [IPv4Address] = [], dns6: [IPv6Address] = [], domain: String? = nil,
                leaseTime: Int = NetworkConfig.defaultLeaseTime) {
        self.name = name
        self.line = line
        self.ports = ports
        self.ipv4Subnet = ipv4Subnet
        self.ipv6Prefix = ipv6Prefix
        self.dns4 = dns4
        self.dns6 = dns6
        self.domain = domain
        self.leaseTime = leaseTime
    }
}

/// The router keys a `[port]` may set (only on a port of a network).
public struct PortAddressing: Equatable, Sendable {
    public var ipv4: IPv4Address?
    public var ipv6: IPv6Address?
    public var routed4: [IPv4Prefix] = []
    public var routed6: [IPv6Prefix] = []
    public init() {}
    public var isEmpty: Bool { ipv4 == nil && ipv6 == nil && routed4.isEmpty && routed6.isEmpty }
}

/// The network keys of a `[network]` section as decoded, with their lines.
struct DecodedNetworkKeys {
    var ipv4Subnet: IPv4Prefix?
    var ipv6Prefix: IPv6Prefix?
    var dns4: [IPv4Address] = []
    var dns6: [IPv6Address] = []
    var domain: String?
    var leaseTime = NetworkConfig.defaultLeaseTime
}

enum NetworkDecoder {
    static func decode(_ reader: inout SectionReader, log: inout DiagnosticLog) -> DecodedNetworkKeys {
        var out = DecodedNetworkKeys()
        if let e = reader.entry("ipv4-subnet") {
            var host = false
            if let p = IPv4Prefix(e.value, hostBitsSet: &host) {
                if host {
                    log.error(e.line, "'ipv4-subnet' \(excerpt(e.value)) has host bits set; did you mean \(p)?")
                } else if p.length > 30 {
                    log.error(e.line, "'ipv4-subnet' \(p) is too small: it needs room for the ports (at most /30)")
                } else {
                    out.ipv4Subnet = p
                }
            } else {
                log.error(e.line, "'ipv4-subnet' must look like 10.0.0.0/24, got '\(excerpt(e.value))'")
            }
        }
        if let e = reader.entry("ipv6-prefix") {
            var host = false
            if let p = IPv6Prefix(e.value, hostBitsSet: &host) {
                if host {
                    log.error(e.line, "'ipv6-prefix' \(excerpt(e.value)) has host bits set; did you mean \(p)?")
                } else if p.length > 120 {
                    log.error(e.line, "'ipv6-prefix' \(p) is too small: it needs room for the ports (at most /120)")
                } else if p.address.high >> 54 == 0x3FA || p.address.high >> 56 == 0xFF {
                    log.error(e.line, "'ipv6-prefix' \(p) is link-local or multicast; use a global or ULA prefix (e.g. fd00:1::/64)")
                } else {
                    out.ipv6Prefix = p
                }
            } else {
                log.error(e.line, "'ipv6-prefix' must look like fd00:1::/64, got '\(excerpt(e.value))'")
            }
        }
        if let e = reader.entry("dns") {
            for item in e.value.split(separator: ",", omittingEmptySubsequences: false) {
                let text = item.trimmingSpaces()
                if let a = IPv4Address(text) { out.dns4.append(a) } else if let a = IPv6Address(text) { out.dns6.append(a) } else {
                    log.error(e.line, "'dns': '\(excerpt(text))' is not an IPv4 or IPv6 address")
                }
            }
        }
        if let e = reader.entry("domain") {
            if isValidDomain(e.value) { out.domain = e.value.lowercased() } else {
                log.error(e.line, "'domain' '\(excerpt(e.value))' is not a domain name (labels of 1 to 63 of a-z 0-9 -, dot-separated, at most 253 characters)")
            }
        }
        out.leaseTime = reader.integer("lease-time", in: NetworkConfig.leaseTimeRange, log: &log) ?? NetworkConfig.defaultLeaseTime
        return out
    }

    static func isValidDomain(_ text: String) -> Bool {
        let name = text.hasSuffix(".") ? String(text.dropLast()) : text
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
        }
    }
}

/// The router keys of a `[port]` section, with their lines (for the cross-checks).
struct DecodedPortAddressing {
    var addressing = PortAddressing()
    var ipv4Line: Int?
    var ipv6Line: Int?
    var routedLine: Int?
    /// Keys set, with lines, for the check that the port is on a network.
    var keys: [(key: String, line: Int)] = []
}

enum PortAddressingDecoder {
    static let keys = ["ipv4", "ipv6", "routed-prefixes"]

    static func decode(_ reader: inout SectionReader, log: inout DiagnosticLog) -> DecodedPortAddressing {
        var out = DecodedPortAddressing()
        if let e = reader.entry("ipv4") {
            out.keys.append(("ipv4", e.line))
            out.ipv4Line = e.line
            if let a = IPv4Address(e.value) { out.addressing.ipv4 = a } else {
                log.error(e.line, "'ipv4' must be an address like 10.0.0.5 (a /32 is implied), got '\(excerpt(e.value))'")
            }
        }
        if let e = reader.entry("ipv6") {
            out.keys.append(("ipv6", e.line))
            out.ipv6Line = e.line
            if let a = IPv6Address(e.value) { out.addressing.ipv6 = a } else {
                log.error(e.line, "'ipv6' must be an address like fd00:1::5 (a /128 is implied), got '\(excerpt(e.value))'")
            }
        }
        if let e = reader.entry("routed-prefixes") {
            out.keys.append(("routed-prefixes", e.line))
            out.routedLine = e.line
            for item in e.value.split(separator: ",", omittingEmptySubsequences: false) {
                let text = item.trimmingSpaces()
                var host = false
                if let p = IPv4Prefix(text, hostBitsSet: &host) {
                    if host { log.error(e.line, "'routed-prefixes': \(excerpt(text)) has host bits set; did you mean \(p)?") } else {
                        out.addressing.routed4.append(p)
                    }
                } else if let p = IPv6Prefix(text, hostBitsSet: &host) {
                    if host { log.error(e.line, "'routed-prefixes': \(excerpt(text)) has host bits set; did you mean \(p)?") } else {
                        out.addressing.routed6.append(p)
                    }
                } else {
                    log.error(e.line, "'routed-prefixes': '\(excerpt(text))' is not a prefix like 192.168.50.0/24 or fd00:99::/64")
                }
            }
        }
        return out
    }
}

/// What networks say about their ports: addresses inside the subnet, no address twice,
/// no overlapping routed prefixes, router keys only on network ports.
enum NetworkChecks {
    static func check(networks: [DecodedLink], ports: [DecodedPort], owners: [String: DecodedLink], log: inout DiagnosticLog) {
        var byName: [String: DecodedPort] = [:]
        for p in ports { if let c = p.config { byName[c.name] = p } }
        // Router keys need the port to be on a network.
        for p in ports {
            guard let c = p.config, !p.addressingKeys.isEmpty else { continue }
            if let owner = owners[c.name], owner.kind == .network { continue }
            for (key, line) in p.addressingKeys {
                let on = owners[c.name].map { " (it is on \($0.header))" } ?? ""
                log.error(line, "'\(key)' only applies to a port of a [network]\(on)")
            }
        }
        for net in networks {
            guard let keys = net.network else { continue }
            // Networks are isolated from each other: their address spaces may overlap.
            var seen4: [IPv4Address: (String, Int)] = [:]
            var seen6: [IPv6Address: (String, Int)] = [:]
            var routes4: [(IPv4Prefix, String, Int)] = []
            var routes6: [(IPv6Prefix, String, Int)] = []
            if keys.ipv4Subnet == nil && keys.ipv6Prefix == nil && net.isValid {
                log.error(net.line, "\(net.header) needs 'ipv4-subnet' or 'ipv6-prefix' (or both)")
            }
            for name in net.ports {
                guard let p = byName[name], let c = p.config, owners[name]?.name == net.name, owners[name]?.kind == .network else { continue }
                for (key, line) in p.switchKeys {
                    log.error(line, "port '\(name)' is on \(net.header), but '\(key)' only applies to switch ports")
                }
                let a = c.addressing
                if let v4 = a.ipv4, let line = p.ipv4Line {
                    if let s = keys.ipv4Subnet {
                        if !s.contains(v4) {
                            log.error(line, "'ipv4' \(v4) is outside \(net.header)'s ipv4-subnet \(s)")
                        } else if v4 == s.address || v4.value == s.address.value | ~IPv4Prefix.mask(s.length) {
                            log.error(line, "'ipv4' \(v4) is the network or broadcast address of \(s)")
                        }
                    } else {
                        log.error(line, "'ipv4' is set, but \(net.header) has no 'ipv4-subnet'")
                    }
                    if let first = seen4[v4] {
                        log.error(line, "'ipv4' \(v4) is already the address of port '\(first.0)' (line \(first.1))")
                    } else { seen4[v4] = (name, line) }
                }
                if let v6 = a.ipv6, let line = p.ipv6Line {
                    if let s = keys.ipv6Prefix {
                        if !s.contains(v6) {
                            log.error(line, "'ipv6' \(v6) is outside \(net.header)'s ipv6-prefix \(s)")
                        } else if v6 == s.address || v6.low == s.address.low | 1 && v6.high == s.address.high {
                            log.error(line, "'ipv6' \(v6) is reserved: \(s.address) and the prefix's first address (the router's) are not for ports")
                        }
                    } else {
                        log.error(line, "'ipv6' is set, but \(net.header) has no 'ipv6-prefix'")
                    }
                    if let first = seen6[v6] {
                        log.error(line, "'ipv6' \(v6) is already the address of port '\(first.0)' (line \(first.1))")
                    } else { seen6[v6] = (name, line) }
                }
                guard let line = p.routedLine else { continue }
                for r in a.routed4 {
                    if let s = keys.ipv4Subnet, s.overlaps(r) {
                        log.error(line, "routed prefix \(r) overlaps \(net.header)'s ipv4-subnet \(s)")
                    }
                    if let o = routes4.first(where: { $0.0.overlaps(r) }) {
                        log.error(line, "routed prefix \(r) overlaps \(o.0), routed to port '\(o.1)' (line \(o.2))")
                    }
                    routes4.append((r, name, line))
                }
                for r in a.routed6 {
                    if let s = keys.ipv6Prefix, s.overlaps(r) {
                        log.error(line, "routed prefix \(r) overlaps \(net.header)'s ipv6-prefix \(s)")
                    }
                    if let o = routes6.first(where: { $0.0.overlaps(r) }) {
                        log.error(line, "routed prefix \(r) overlaps \(o.0), routed to port '\(o.1)' (line \(o.2))")
                    }
                    routes6.append((r, name, line))
                }
            }
        }
    }
}
