// The `router` fuzz target's judge: every frame a guest receives, and every frame the
// router punts to the control thread, must be explained by a frame some guest sent —
// an ARP reply, an echo reply, an ICMP/ICMPv6 error about it, or the frame routed —
// with bytes exactly as that explanation says. Each sent frame explains at most one.

public struct SentFrame {
    public var ingress: Int
    public var bytes: [UInt8]
    public var used = false
}

public enum Outcome: Int, CaseIterable { case arp, echo4, echo6, error4, error6, routed4, routed6, punted }

public final class Oracle {
    public let routes: RouteModel
    /// Largest frame each port may be given (MTU + 14), and may send (VhostRx: + 4, at most 2048).
    public let limits: [Int]
    public let global: Bool
    public private(set) var sent: [SentFrame] = []
    private var byPort: [[Int]]
    private var byRouteKey: [[UInt8]: [Int]] = [:]
    /// Every MAC ever bound to a port (learning ports may be unbound and bound again).
    public var everBound: [Set<[UInt8]>]
    public private(set) var outcomes = [Int](repeating: 0, count: Outcome.allCases.count)

    public init(routes: RouteModel, limits: [Int], global: Bool) {
        self.routes = routes; self.limits = limits; self.global = global
        byPort = limits.map { _ in [] }
        everBound = limits.map { _ in [] }
    }

    public func count(_ o: Outcome) -> Int { outcomes[o.rawValue] }

    public func record(_ f: [UInt8], ingress: Int) {
        let i = sent.count
        sent.append(SentFrame(ingress: ingress, bytes: f))
        byPort[ingress].append(i)
        if let k = routeKey(f) { byRouteKey[k, default: []].append(i) }
    }

    /// The bytes a routed frame keeps: from the EtherType on, TTL/checksum or hop limit zeroed.
    func routeKey(_ f: [UInt8]) -> [UInt8]? {
        guard f.count >= 34 else { return nil }
        var k = Array(f[12...])
        if f[12] == 0x08 && f[13] == 0x00 { k[22 - 12] = 0; k[24 - 12] = 0; k[25 - 12] = 0 }
        else if f[12] == 0x86 && f[13] == 0xDD && f.count >= 54 { k[21 - 12] = 0 } else { return nil }
        return k
    }

    var routerSource6: (UInt64, UInt64) { global ? global6 : gateway6 }

    /// Judge frame `r` that guest `q` received. Returns what is wrong, or nil.
    public func received(_ r: [UInt8], at q: Int) -> String? {
        guard r.count >= 14 else { return "port \(q) received a \(r.count)-byte frame" }
        guard Array(r[6..<12]) == routerMACBytes else { return "port \(q) received a frame not from the router MAC: \(hex(r))" }
        let dst = Array(r[0..<6])
        guard dst != [0, 0, 0, 0, 0, 0], everBound[q].contains(dst) else {
            return "port \(q) received a frame for \(hex(dst)), never bound to it (bound: \(everBound[q].map(hex)))"
        }
        guard r.count <= limits[q] else { return "port \(q) received \(r.count) bytes, more than its MTU allows (\(limits[q])): \(hex(r))" }
        var first: String? = nil
        func attempt(_ candidates: [Int], _ o: Outcome, _ judge: (SentFrame) -> String?) -> Bool {
            for i in candidates where !sent[i].used {
                if let why = judge(sent[i]) { if first == nil { first = "sent #\(i): \(why)" }; continue }
                sent[i].used = true
                outcomes[o.rawValue] += 1
                return true
            }
            return false
        }
        let type = be16(r, 12)
        let mine = byPort[q]
        if type == 0x0806 {
            if attempt(mine, .arp, { arp($0, r, q) }) { return nil }
        } else if type == 0x0800 && r.count >= 34 && be32(r, 26) == gateway4 && r[23] == 1 {
            let l4 = 14 + Int(r[14] & 15) * 4
            let t = r.count > l4 ? r[l4] : 255
            if t == 0 && attempt(mine, .echo4, { echo4($0, r, q) }) { return nil }
            if t != 0 && attempt(mine, .error4, { error4($0, r, q) }) { return nil }
        } else if type == 0x86DD && r.count >= 58 && r[20] == 58 && isRouter6(be64(r, 22), be64(r, 30)) {
            if r[54] == 129 && attempt(mine, .echo6, { echo6($0, r, q) }) { return nil }
            if r[54] != 129 && attempt(mine, .error6, { error6($0, r, q) }) { return nil }
        }
        if let k = routeKey(r), let c = byRouteKey[k] {
            if type == 0x0800 && attempt(c, .routed4, { routed4($0, r, q) }) { return nil }
            if type == 0x86DD && attempt(c, .routed6, { routed6($0, r, q) }) { return nil }
        }
        return "port \(q) received \(r.count) bytes that no sent frame explains: \(hex(r))" + (first.map { "; \($0)" } ?? "")
    }

    /// Judge a frame the router handed the control thread, tagged with `port`.
    public func punted(_ r: [UInt8], port: Int) -> String? {
        guard port >= 0 && port < limits.count else { return "punted frame tagged with port \(port)" }
        var first: String? = nil
        for i in byPort[port] where !sent[i].used && sent[i].bytes == r {
            if let why = puntable(sent[i]) { first = first ?? why; continue }
            sent[i].used = true
            outcomes[Outcome.punted.rawValue] += 1
            return nil
        }
        return "punted \(r.count) bytes from port \(port) that no sent frame explains: \(hex(r))" + (first.map { "; \($0)" } ?? "")
    }

    // MARK: Explanations

    /// The router took `s` from its port: a unicast, bound sender, for the router or a group.
    func admitted(_ s: SentFrame) -> String? {
        let f = s.bytes
        guard f.count >= 14, f.count <= limits[s.ingress] else { return "not a frame the port accepts" }
        let src = Array(f[6..<12])
        if src[0] & 1 != 0 || src == [0, 0, 0, 0, 0, 0] { return "group or zero source MAC" }
        if !everBound[s.ingress].contains(src) { return "source MAC never bound to port \(s.ingress)" }
        if Array(f[0..<6]) != routerMACBytes && f[0] & 1 == 0 { return "unicast to another MAC" }
        return nil
    }

    func arp(_ s: SentFrame, _ r: [UInt8], _ q: Int) -> String? {
        let f = s.bytes
        guard s.ingress == q, f.count >= 42, be16(f, 12) == 0x0806 else { return "not an ARP frame from this port" }
        if let why = admitted(s) { return why }
        guard f[14..<22].elementsEqual([0, 1, 8, 0, 6, 4, 0, 1]), be32(f, 38) == gateway4 else { return "not a request for the gateway" }
        let expected = Array(f[6..<12]) + routerMACBytes + [0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2] + routerMACBytes
            + bytes4(gateway4) + Array(f[22..<28]) + Array(f[28..<32])
        return r == expected ? nil : "ARP reply differs from \(hex(expected))"
    }

    /// The IPv4 header checks RouterQueue makes before anything else.
    func wellFormed4(_ f: [UInt8]) -> String? {
        guard f.count >= 34, be16(f, 12) == 0x0800 else { return "not IPv4" }
        let ihl = Int(f[14] & 15) * 4, total = be16(f, 16)
        guard f[14] >> 4 == 4, ihl >= 20, total >= ihl, 14 + total <= f.count else { return "malformed IPv4" }
        return ipv4HeaderValid(f) ? nil : "bad IPv4 header checksum"
    }

    func echo4(_ s: SentFrame, _ r: [UInt8], _ q: Int) -> String? {
        let f = s.bytes
        guard s.ingress == q, r.count == f.count else { return "other port or length" }
        if let why = admitted(s) ?? wellFormed4(f) { return why }
        let ihl = Int(f[14] & 15) * 4, l4 = 14 + ihl
        guard be32(f, 30) == gateway4, f[23] == 1, l4 + 8 <= 14 + be16(f, 16), f[l4] == 8 else { return "not an echo request to the gateway" }
        guard routes.lookup4(be32(f, 26)) == q else { return "echo request from an address not on port \(q)" }
        var e = f
        e.replaceSubrange(0..<6, with: f[6..<12]); e.replaceSubrange(6..<12, with: routerMACBytes)
        e.replaceSubrange(26..<30, with: f[30..<34]); e.replaceSubrange(30..<34, with: f[26..<30])
        e[22] = 64; put16(&e, 24, 0); put16(&e, 24, Int(~sum16(e, 14, ihl)))
        e[l4] = 0; e[l4 + 2] = r[l4 + 2]; e[l4 + 3] = r[l4 + 3]
        guard r == e else { return "echo reply differs from the request turned around" }
        guard icmp4Valid(f) else { return "an echo request with a bad checksum (RFC 1122: discard) was answered" }
        return icmp4Valid(r) ? nil : "echo reply ICMP checksum is wrong"

    }

    func error4(_ s: SentFrame, _ r: [UInt8], _ q: Int) -> String? {
        let f = s.bytes
        guard s.ingress == q, f.count >= 14, Array(r[0..<6]) == Array(f[6..<12]) else { return "other port or sender" }
        if let why = admitted(s) ?? wellFormed4(f) { return why }
        let ihl = Int(f[14] & 15) * 4, total = be16(f, 16)
        let quoted = min(ihl + 8, total, limits[q] - 42)
        guard r.count == 42 + quoted, ipv4HeaderValid(r), be16(r, 16) == 28 + quoted, be32(r, 30) == be32(f, 26),
              r[42..<(42 + quoted)].elementsEqual(f[14..<(14 + quoted)]) else { return "error does not quote it" }
        guard icmp4Valid(r) else { return "ICMP error checksum is wrong" }
        guard Array(f[0..<6]) == routerMACBytes, routes.lookup4(be32(f, 26)) == q else { return "not routable from port \(q)" }
        if f[23] == 1 && total > ihl && f[14 + ihl] != 0 && f[14 + ihl] != 8 { return "an ICMP error about an ICMP error" }
        if be16(f, 20) & 0x1FFF != 0 { return "an ICMP error about a later fragment" }
        let j = routes.lookup4(be32(f, 30))
        switch (r[34], r[35]) {
        case (3, 1): return j < 0 ? nil : "host unreachable, but \(hex(bytes4(be32(f, 30)))) routes to port \(j)"
        case (11, 0): return j >= 0 && f[22] <= 1 ? nil : "time exceeded with TTL \(f[22])"
        case (3, 4):
            guard j >= 0, f[22] > 1, f.count > limits[j], f[20] & 0x40 != 0 else { return "fragmentation needed without cause" }
            return be32(r, 38) == UInt32(limits[j] - 14) ? nil : "fragmentation needed with MTU \(be32(r, 38)), port \(j) has \(limits[j] - 14)"
        default: return "ICMP type \(r[34]) code \(r[35])"
        }
    }

    func routed4(_ s: SentFrame, _ r: [UInt8], _ q: Int) -> String? {
        let f = s.bytes
        if let why = admitted(s) ?? wellFormed4(f) { return why }
        guard Array(f[0..<6]) == routerMACBytes else { return "not sent to the router MAC" }
        guard routes.lookup4(be32(f, 26)) == s.ingress else { return "spoofed source" }
        guard routes.lookup4(be32(f, 30)) == q else { return "destination does not route to port \(q)" }
        guard f[22] > 1, r[22] == f[22] - 1 else { return "TTL \(f[22]) → \(r[22])" }
        guard ipv4HeaderValid(r) else { return "routed frame's header checksum is wrong" }
        guard f.count <= limits[q] else { return "larger than port \(q)'s MTU" }
        return nil
    }

    func wellFormed6(_ f: [UInt8]) -> String? {
        guard f.count >= 54, be16(f, 12) == 0x86DD, f[14] >> 4 == 6, 54 + be16(f, 18) <= f.count else { return "malformed IPv6" }
        return nil
    }

    func isRouter6(_ h: UInt64, _ l: UInt64) -> Bool { (h, l) == gateway6 || (global && (h, l) == global6) }

    func echo6(_ s: SentFrame, _ r: [UInt8], _ q: Int) -> String? {
        let f = s.bytes
        guard s.ingress == q, r.count == f.count else { return "other port or length" }
        if let why = admitted(s) ?? wellFormed6(f) { return why }
        guard isRouter6(be64(f, 38), be64(f, 46)), f[20] == 58, be16(f, 18) >= 4, f[54] == 128 else { return "not an echo request to the router" }
        guard be64(f, 22) >> 54 == 0x3FA || routes.lookup6(be64(f, 22), be64(f, 30)) == q else { return "echo request from an address not on port \(q)" }
        var e = f
        e.replaceSubrange(0..<6, with: f[6..<12]); e.replaceSubrange(6..<12, with: routerMACBytes)
        e.replaceSubrange(22..<38, with: f[38..<54]); e.replaceSubrange(38..<54, with: f[22..<38])
        e[21] = 64; e[54] = 129; e[56] = r[56]; e[57] = r[57]
        guard r == e else { return "echo reply differs from the request turned around" }
        if icmp6Valid(r) != icmp6Valid(f) { return "echo reply ICMPv6 checksum valid=\(icmp6Valid(r)), request's valid=\(icmp6Valid(f))" }
        return nil
    }

    func error6(_ s: SentFrame, _ r: [UInt8], _ q: Int) -> String? {
        let f = s.bytes
        guard s.ingress == q, f.count >= 14, Array(r[0..<6]) == Array(f[6..<12]) else { return "other port or sender" }
        if let why = admitted(s) ?? wellFormed6(f) { return why }
        let payload = be16(f, 18)
        // As much of the packet as fits both the IPv6 minimum MTU and the port's MTU.
        let quoted = min(40 + payload, min(1280, limits[q] - 14) - 48)
        guard r.count == 62 + quoted, be16(r, 18) == 8 + quoted, (be64(r, 22), be64(r, 30)) == routerSource6,
              be64(r, 38) == be64(f, 22), be64(r, 46) == be64(f, 30), r[21] == 64,
              r[62..<(62 + quoted)].elementsEqual(f[14..<(14 + quoted)]) else { return "error does not quote it (\(r.count) bytes)" }
        guard icmp6Valid(r) else { return "ICMPv6 error checksum is wrong" }
        guard Array(f[0..<6]) == routerMACBytes, routes.lookup6(be64(f, 22), be64(f, 30)) == q else { return "not routable from port \(q)" }
        if f[20] == 58 && payload >= 1 && f[54] < 128 { return "an ICMPv6 error about an ICMPv6 error" }
        let j = routes.lookup6(be64(f, 38), be64(f, 46))
        switch (r[54], r[55]) {
        case (1, 0): return j < 0 ? nil : "no route, but the destination routes to port \(j)"
        case (3, 0): return j >= 0 && f[21] <= 1 ? nil : "time exceeded with hop limit \(f[21])"
        case (2, 0):
            guard j >= 0, f[21] > 1, f.count > limits[j] else { return "packet too big without cause" }
            return be32(r, 58) == UInt32(limits[j] - 14) ? nil : "packet too big with MTU \(be32(r, 58)), port \(j) has \(limits[j] - 14)"
        default: return "ICMPv6 type \(r[54]) code \(r[55])"
        }
    }

    func routed6(_ s: SentFrame, _ r: [UInt8], _ q: Int) -> String? {
        let f = s.bytes
        if let why = admitted(s) ?? wellFormed6(f) { return why }
        guard Array(f[0..<6]) == routerMACBytes else { return "not sent to the router MAC" }
        let dh = be64(f, 38), dl = be64(f, 46)
        guard dh >> 56 != 0xFF, !isRouter6(dh, dl) else { return "multicast or the router's own address" }
        guard routes.lookup6(be64(f, 22), be64(f, 30)) == s.ingress else { return "spoofed source" }
        guard routes.lookup6(dh, dl) == q else { return "destination does not route to port \(q)" }
        guard f[21] > 1, r[21] == f[21] - 1 else { return "hop limit \(f[21]) → \(r[21])" }
        guard f.count <= limits[q] else { return "larger than port \(q)'s MTU" }
        return nil
    }

    /// DHCPv4 to the server port, neighbour discovery and DHCPv6 for the router.
    func puntable(_ s: SentFrame) -> String? {
        if let why = admitted(s) { return why }
        let f = s.bytes
        if be16(f, 12) == 0x0800 {
            if let why = wellFormed4(f) { return why }
            let ihl = Int(f[14] & 15) * 4, l4 = 14 + ihl
            let d = be32(f, 30)
            guard d == gateway4 || d == 0xFFFF_FFFF, f[23] == 17, l4 + 8 <= 14 + be16(f, 16), be16(f, l4 + 2) == 67 else {
                return "not DHCP to the server"
            }
            return nil
        }
        if let why = wellFormed6(f) { return why }
        let dh = be64(f, 38), dl = be64(f, 46), payload = be16(f, 18)
        guard dh >> 56 == 0xFF || isRouter6(dh, dl) else { return "not for the router or a group" }
        if f[20] == 58 && payload >= 4 && [133, 135, 136].contains(f[54]) { return nil }
        if f[20] == 17 && payload >= 8 && be16(f, 56) == 547 { return nil }
        return "not neighbour discovery or DHCPv6"
    }
}

public func hex(_ b: [UInt8]) -> String { b.prefix(64).map { String($0, radix: 16) }.joined(separator: " ") }
