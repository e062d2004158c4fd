// The `router` fuzz target's independent view of the network it builds: addresses,
// brute-force longest-prefix match, checksums, and the compact frame builder. Pure
// Swift on byte arrays: nothing here calls the code under test.

/// The router's well-known addresses (as RouterQueue documents them).
public let gateway4: UInt32 = 0xA9FE_0001                       // 169.254.0.1
public let gateway6: (UInt64, UInt64) = (0xFE80_0000_0000_0000, 1) // fe80::1
public let global6: (UInt64, UInt64) = (0xFD00_0000_0000_0000, 1)  // fd00::1 (when enabled)
public let routerMACBytes: [UInt8] = [0x02, 0x52, 0x54, 0x00, 0xAA, 0x01]

/// Port k's address: 10.0.0.(k+2)/32 and fd00::(k+2)/128; the routed prefixes are
/// 10.1.0.0/24 and fd00:0:0:1::/64 on one port.
public func portAddress4(_ k: Int) -> UInt32 { 0x0A00_0002 &+ UInt32(k) }
public func portAddress6(_ k: Int) -> (UInt64, UInt64) { (0xFD00_0000_0000_0000, 2 &+ UInt64(k)) }
public let routed4: UInt32 = 0x0A01_0000
public let routed6High: UInt64 = 0xFD00_0000_0000_0001

/// Station n's MAC: 02:00:00:00:00:nn.
public func station(_ n: Int) -> [UInt8] { [0x02, 0, 0, 0, 0, UInt8(truncatingIfNeeded: n)] }

public struct RouteModel {
    public var v4: [(prefix: UInt32, length: Int, port: Int)] = []
    public var v6: [(high: UInt64, low: UInt64, length: Int, port: Int)] = []

    public init(ports: Int, routedPort: Int) {
        for k in 0..<ports {
            v4.append((portAddress4(k), 32, k))
            let a = portAddress6(k)
            v6.append((a.0, a.1, 128, k))
        }
        v4.append((routed4, 24, routedPort))
        v6.append((routed6High, 0, 64, routedPort))
    }

    public func lookup4(_ a: UInt32) -> Int {
        var best = -1, bestLength = -1
        for r in v4 {
            let mask: UInt32 = r.length == 0 ? 0 : ~UInt32(0) << UInt32(32 - r.length)
            if a & mask == r.prefix & mask && r.length > bestLength { best = r.port; bestLength = r.length }
        }
        return best
    }

    public func lookup6(_ h: UInt64, _ l: UInt64) -> Int {
        var best = -1, bestLength = -1
        for r in v6 {
            let mh: UInt64 = r.length >= 64 ? ~0 : (r.length == 0 ? 0 : ~UInt64(0) << UInt64(64 - r.length))
            let ml: UInt64 = r.length <= 64 ? 0 : (r.length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - r.length))
            if h & mh == r.high & mh && l & ml == r.low & ml && r.length > bestLength { best = r.port; bestLength = r.length }
        }
        return best
    }
}

// MARK: Bytes

public func be16(_ f: [UInt8], _ at: Int) -> Int { Int(f[at]) << 8 | Int(f[at + 1]) }
public func be32(_ f: [UInt8], _ at: Int) -> UInt32 {
    UInt32(f[at]) << 24 | UInt32(f[at + 1]) << 16 | UInt32(f[at + 2]) << 8 | UInt32(f[at + 3])
}
public func be64(_ f: [UInt8], _ at: Int) -> UInt64 { UInt64(be32(f, at)) << 32 | UInt64(be32(f, at + 4)) }
public func put16(_ f: inout [UInt8], _ at: Int, _ v: Int) { f[at] = UInt8(truncatingIfNeeded: v >> 8); f[at + 1] = UInt8(truncatingIfNeeded: v) }
public func put32(_ f: inout [UInt8], _ at: Int, _ v: UInt32) {
    for k in 0..<4 { f[at + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(k))) }
}
public func put64(_ f: inout [UInt8], _ at: Int, _ v: UInt64) {
    put32(&f, at, UInt32(truncatingIfNeeded: v >> 32)); put32(&f, at + 4, UInt32(truncatingIfNeeded: v))
}
public func bytes4(_ a: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: a >> (24 - 8 * UInt32($0))) } }
public func bytes6(_ a: (UInt64, UInt64)) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: a.0 >> (56 - 8 * UInt64($0))) } + (0..<8).map { UInt8(truncatingIfNeeded: a.1 >> (56 - 8 * UInt64($0))) }
}

/// RFC 1071 sum of f[from..<from+count] plus `initial`, folded, not complemented.
public func sum16(_ f: [UInt8], _ from: Int, _ count: Int, initial: UInt32 = 0) -> UInt16 {
    var s = UInt64(initial)
    var k = 0
    while k + 1 < count { s += UInt64(f[from + k]) << 8 | UInt64(f[from + k + 1]); k += 2 }
    if k < count { s += UInt64(f[from + k]) << 8 }
    while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
    return UInt16(s)
}

/// The IPv6 pseudo-header sum (addresses of the header at 14, `length`, next header `next`).
public func pseudo6(_ f: [UInt8], length: Int, next: Int) -> UInt32 {
    UInt32(sum16(f, 22, 32)) + UInt32(length >> 16) + UInt32(length & 0xFFFF) + UInt32(next)
}

public func ipv4HeaderValid(_ f: [UInt8]) -> Bool {
    guard f.count >= 34, f[14] >> 4 == 4 else { return false }
    let ihl = Int(f[14] & 15) * 4
    return ihl >= 20 && 14 + ihl <= f.count && sum16(f, 14, ihl) == 0xFFFF
}

/// The ICMP checksum of an IPv4 frame adds up (over total length − header).
public func icmp4Valid(_ f: [UInt8]) -> Bool {
    let ihl = Int(f[14] & 15) * 4, total = be16(f, 16)
    guard total >= ihl, 14 + total <= f.count else { return false }
    return sum16(f, 14 + ihl, total - ihl) == 0xFFFF
}

/// The ICMPv6 checksum of an IPv6 frame adds up (pseudo-header, payload length bytes).
public func icmp6Valid(_ f: [UInt8]) -> Bool {
    let payload = be16(f, 18)
    guard 54 + payload <= f.count else { return false }
    return sum16(f, 54, payload, initial: pseudo6(f, length: payload, next: 58)) == 0xFFFF
}

// MARK: Compact frames

/// Frame kinds of a compact record (low nibble of its first byte).
public enum Kind: Int, CaseIterable {
    case arpRequest, arpOther, echo4, udp4, dhcp4, tcp4, icmpError4, echo6, ns6, rs6, na6, udp6, dhcp6, icmpError6,
         tagged4, other
}

/// What a compact record describes; `build` turns it into frame bytes.
public struct Compact {
    public var kind: Kind
    public var df: Bool, corrupt: Bool, fragment: Bool, options: Bool
    public var srcMAC: [UInt8], dstMAC: [UInt8]
    public var src: UInt8, dst: UInt8
    public var ttl: UInt8
    public var size: (lo: UInt8, sel: UInt8)
    public var seed: UInt8

    /// `r`: the 8 record bytes [kind, macs, src, dst, ttl, sizeLo, sizeSel, seed];
    /// `port`: the ingress port, `ports`: how many.
    public init(_ r: [UInt8], port: Int, ports: Int) {
        kind = Kind(rawValue: Int(r[0] & 15))!
        df = r[0] & 0x10 != 0; corrupt = r[0] & 0x20 != 0; fragment = r[0] & 0x40 != 0; options = r[0] & 0x80 != 0
        let m = r[1]
        switch m & 7 {
        case 0: srcMAC = station(port + 1)
        case 1: srcMAC = station(port + 9)               // a second guest on a learning port
        case 2: srcMAC = station((port + 1) % ports + 1) // another port's station
        case 3: srcMAC = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        case 4: srcMAC = [0, 0, 0, 0, 0, 0]
        case 5: srcMAC = routerMACBytes
        default: srcMAC = station(0x10 + Int(m >> 6))
        }
        switch (m >> 3) & 7 {
        case 3: dstMAC = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        case 4: dstMAC = r[0] & 15 >= 7 && r[0] & 15 <= 13 ? [0x33, 0x33, 0, 0, 0, 1] : [0x01, 0, 0x5E, 0, 0, 1]
        case 5: dstMAC = station((port + 2) % ports + 1)
        case 6: var b = routerMACBytes; b[5] ^= 0x80; dstMAC = b
        default: dstMAC = routerMACBytes
        }
        src = r[2]; dst = r[3]
        ttl = r[4] < 0x80 ? [0, 1, 2, 64][Int(r[4] & 3)] : r[4]
        size = (r[5], r[6]); seed = r[7]
    }

    static func address4(_ a: UInt8, seed: UInt8) -> UInt32 {
        let h = Int(a >> 4), l = UInt32(a & 15)
        switch h {
        case 0...3: return portAddress4(h)
        case 4, 5: return routed4 | UInt32(h & 1) << 7 | l
        case 6: return gateway4
        case 7: return 0
        case 8: return 0xFFFF_FFFF
        case 9: return 0xE000_0000 | l
        case 10: return 0x0A00_0014 &+ l
        case 11: return 0x0A01_0100 | l
        case 12: return 0xA9FE_0000 | l << 8 | 1
        default: return 0x0A00_0000 | l
        }
    }

    static func address6(_ a: UInt8, seed: UInt8) -> (UInt64, UInt64) {
        let h = Int(a >> 4), l = UInt64(a & 15)
        switch h {
        case 0...3: return portAddress6(h)
        case 4, 5: return (routed6High, UInt64(h & 1) << 63 | l)
        case 6: return gateway6
        case 7: return (0, 0)
        case 8: return l & 1 == 0 ? (0xFF02_0000_0000_0000, 1) : (0xFF02_0000_0000_0000, 0x1_FF00_0000 | l)
        case 9: return global6
        case 10: return (0xFD00_0000_0000_0000, 20 &+ l)
        case 11: return (0xFD00_0000_0000_0002, l)
        case 12: return (0xFE80_0000_0000_0000, l)
        default: return (0xFD00_0000_0000_0000, l)
        }
    }

    var isIPv6: Bool { (7...13).contains(kind.rawValue) || (kind == .other && !fragment) }

    /// Header bytes before the payload (Ethernet + L3 + L4).
    func headerLength() -> Int {
        switch kind {
        case .arpRequest, .arpOther: return 42
        case .tagged4: return 18 + 20 + 8
        case .other where fragment: return 14
        default:
            if isIPv6 { return 54 + (kind == .other ? 20 : 8) }
            return 34 + (options ? 4 : 0) + (kind == .tcp4 ? 20 : 8)
        }
    }

    /// The frame: headers with consistent lengths and valid checksums (unless `corrupt`),
    /// sized by `size` (minimal, around port `limits[k]`, around 1294, or cut short).
    public func build(limits: [Int]) -> [UInt8] {
        let head = headerLength()
        var length: Int
        switch size.sel & 3 {
        case 0: length = head + Int(size.lo & 31)
        case 1: length = limits[Int(size.sel >> 2) % limits.count] + Int(size.lo % 12) - 6
        case 2: length = 1294 - 8 + Int(size.lo & 15)
        default: length = head + Int(size.lo)
        }
        length = max(length, head)
        let pad = size.sel & 0x10 != 0 ? Int(size.lo >> 4) : 0   // Ethernet padding after the packet
        var f = [UInt8](repeating: 0, count: length + pad)
        for i in head..<f.count { f[i] = UInt8(truncatingIfNeeded: i &* 7 &+ Int(seed) &* 13) }
        f.replaceSubrange(0..<6, with: dstMAC)
        f.replaceSubrange(6..<12, with: srcMAC)
        switch kind {
        case .arpRequest, .arpOther: buildARP(&f)
        case .other where fragment: put16(&f, 12, 0x88B5)
        case .tagged4:
            put16(&f, 12, 0x8100); put16(&f, 14, Int(seed & 7)); put16(&f, 16, 0x0800)
            f[18] = 0x45; put16(&f, 20, length - 18); f[26] = ttl; f[27] = 17
            f.replaceSubrange(30..<34, with: bytes4(Self.address4(src, seed: seed)))
            f.replaceSubrange(34..<38, with: bytes4(Self.address4(dst, seed: seed)))
            put16(&f, 28, Int(~sum16(f, 18, 20)))
        default:
            if isIPv6 { buildIPv6(&f, length: length) } else { buildIPv4(&f, length: length) }
        }
        if size.sel & 3 == 3 && size.sel & 0x20 != 0 {
            // Cut inside the headers: the length fields still describe the whole packet.
            f.removeLast(f.count - max(0, head - 1 - Int(size.lo) % head))
        }
        return f
    }

    func buildARP(_ f: inout [UInt8]) {
        put16(&f, 12, 0x0806)
        let oper = kind == .arpRequest ? 1 : Int(seed & 3) == 1 ? 2 : Int(seed & 3)
        put16(&f, 14, kind == .arpOther && seed & 4 != 0 ? 6 : 1)
        put16(&f, 16, 0x0800)
        f[18] = 6; f[19] = kind == .arpOther && seed & 8 != 0 ? 16 : 4
        put16(&f, 20, oper)
        f.replaceSubrange(22..<28, with: srcMAC)
        f.replaceSubrange(28..<32, with: bytes4(Self.address4(src, seed: seed)))
        f.replaceSubrange(38..<42, with: bytes4(Self.address4(dst, seed: seed)))
    }

    func buildIPv4(_ f: inout [UInt8], length: Int) {
        put16(&f, 12, 0x0800)
        let ihl = options ? 24 : 20
        f[14] = UInt8(0x40 | ihl / 4)
        put16(&f, 16, length - 14)
        put16(&f, 18, Int(seed) << 8 | Int(seed))
        put16(&f, 20, (df ? 0x4000 : 0) | (fragment ? Int(seed & 0x1F) + 1 : 0))
        f[22] = ttl
        let l4 = 14 + ihl
        if options { f[34] = 1; f[35] = 1; f[36] = 1; f[37] = 0 }   // NOPs, end of options
        f.replaceSubrange(26..<30, with: bytes4(Self.address4(src, seed: seed)))
        f.replaceSubrange(30..<34, with: bytes4(Self.address4(dst, seed: seed)))
        switch kind {
        case .echo4, .icmpError4:
            f[23] = 1
            f[l4] = kind == .echo4 ? 8 : 3; f[l4 + 1] = kind == .echo4 ? 0 : 1
            f[l4 + 2] = 0; f[l4 + 3] = 0
            // The checksum word may hit 0xFFFF/0x0000 edges: the seed picks id/sequence.
            put16(&f, l4 + 4, Int(seed) * 257)
            put16(&f, l4 + 2, Int(~sum16(f, l4, length - l4)) ^ (corrupt ? 1 : 0))
        case .tcp4:
            f[23] = 6
            put16(&f, l4, 40000 + Int(seed)); put16(&f, l4 + 2, 80); f[l4 + 12] = 0x50
        default:
            f[23] = 17
            put16(&f, l4, kind == .dhcp4 ? 68 : 5000 + Int(seed))
            put16(&f, l4 + 2, kind == .dhcp4 ? 67 : (seed & 1 == 0 ? 53 : 67 + Int(seed & 2)))
            put16(&f, l4 + 4, length - l4)
        }
        put16(&f, 24, Int(~sum16(f, 14, ihl)) ^ (corrupt && kind != .echo4 ? 0x10 : 0))
    }

    func buildIPv6(_ f: inout [UInt8], length: Int) {
        put16(&f, 12, 0x86DD)
        put32(&f, 14, 0x6000_0000 | (fragment ? UInt32(seed) << 4 : 0))
        var payload = length - 54
        if corrupt && kind != .echo6 { payload += Int(seed & 3) + 1 }   // more than the frame holds
        put16(&f, 18, payload)
        f[21] = ttl
        f.replaceSubrange(22..<38, with: bytes6(Self.address6(src, seed: seed)))
        f.replaceSubrange(38..<54, with: bytes6(Self.address6(dst, seed: seed)))
        let real = length - 54
        switch kind {
        case .udp6, .dhcp6:
            f[20] = 17
            put16(&f, 54, kind == .dhcp6 ? 546 : 5000 + Int(seed)); put16(&f, 56, kind == .dhcp6 ? 547 : 53)
            put16(&f, 58, real); put16(&f, 60, 0)
            put16(&f, 60, Int(~sum16(f, 54, real, initial: pseudo6(f, length: real, next: 17))))
        case .other:
            f[20] = 6
            put16(&f, 54, 40000 + Int(seed)); put16(&f, 56, 22)
        default:
            f[20] = 58
            let type: UInt8 = switch kind { case .echo6: 128; case .ns6: 135; case .rs6: 133; case .na6: 136; default: 1 }
            f[54] = type; f[55] = 0; f[56] = 0; f[57] = 0
            put16(&f, 58, Int(seed) * 257)
            put16(&f, 56, Int(~sum16(f, 54, real, initial: pseudo6(f, length: real, next: 58))) ^ (corrupt ? 1 : 0))
        }
    }
}
