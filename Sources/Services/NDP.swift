import Config

/// The router's side of Neighbor Discovery on every port of a network (RFC 4861) with
/// DNS options in its advertisements (RFC 8106).
///
/// - Router Solicitation → Router Advertisement: M=1, O=1 (addresses and options from
///   DHCPv6), the prefix announced not on-link and not autonomous (L=0, A=0) so every
///   packet goes through the router, MTU, RDNSS and DNSSL. At most one solicited RA per
///   port every `minimumSolicitedInterval`; a suppressed one is counted (`ra.suppressed`).
/// - Neighbor Solicitation for fe80::1 or the router's global address → Neighbor
///   Advertisement (R=1, O=1, S=1 when answering a node, S=0 to ff02::1 for a DAD probe).
///
/// Runs on the control thread. Messages that fail the validity checks of RFC 4861 §6.1.1
/// and §7.1.1 are dropped and counted (`dropped.malformed`); never a trap.
public final class NDPResponder {
    public let network: NetworkServiceConfig
    /// In the units of `now` (seconds): MIN_DELAY_BETWEEN_RAS of RFC 4861 §10.
    public var minimumSolicitedInterval: UInt64 = 3
    private var lastSolicitedRA: [String: UInt64] = [:]

    // RA contents. The router lifetime and the RDNSS/DNSSL lifetimes are 3 × the maximum
    // interval between periodic RAs (600 s), as RFC 4861 §6.2.1 and RFC 8106 §5.1 advise:
    // the engine sends `routerAdvertisement(to:)` at least every `maximumPeriodicInterval`.
    public static let maximumPeriodicInterval: UInt32 = 600
    public static let routerLifetime: UInt16 = 1800
    public static let dnsLifetime: UInt32 = 1800
    public static let prefixValidLifetime: UInt32 = 86400
    public static let prefixPreferredLifetime: UInt32 = 14400
    public static let curHopLimit: UInt8 = 64

    // ICMPv6 types and ND option types.
    public static let routerSolicitation: UInt8 = 133, routerAdvertisement: UInt8 = 134
    public static let neighborSolicitation: UInt8 = 135, neighborAdvertisement: UInt8 = 136
    static let optSourceLL: UInt8 = 1, optTargetLL: UInt8 = 2, optPrefix: UInt8 = 3, optMTU: UInt8 = 5
    static let optRDNSS: UInt8 = 25, optDNSSL: UInt8 = 31

    /// ff02::2, all routers.
    public static let allRouters = IPv6Address(high: 0xff02_0000_0000_0000, low: 2)

    public init(network: NetworkServiceConfig) {
        self.network = network
    }

    private static let malformed = ServiceReply(counters: ["dropped.malformed"])

    /// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1).
    public static func solicitedNode(_ a: IPv6Address) -> IPv6Address {
        IPv6Address(high: 0xff02_0000_0000_0000, low: 0x1_ff00_0000 | (a.low & 0xFF_FFFF))
    }

    /// The router's own addresses on a port: fe80::1 and the global one.
    public func isRouterAddress(_ a: IPv6Address) -> Bool { a == .gateway || a == network.routerIPv6Global }

    public func handle(_ frame: ParsedFrame, port: ServicePort, now: UInt64) -> ServiceReply {
        guard case .ipv6(let src, let dst, let hopLimit) = frame.network,
              case .icmpv6(let type, let code, let message) = frame.transport,
              type == Self.routerSolicitation || type == Self.neighborSolicitation else { return .none }
        if let bound = port.mac, bound != frame.srcMAC { return ServiceReply(counters: ["nd.refused"]) }
        let b = frame.bytes
        // RFC 4861 §6.1.1 / §7.1.1: hop limit 255 (not forwarded), code 0, long enough,
        // every option of non-zero length inside the message, a unicast or unspecified source.
        let fixed = type == Self.routerSolicitation ? 8 : 24
        guard hopLimit == 255, code == 0, message.count >= fixed, !Self.isMulticast(src),
              frame.srcMAC.isUnicast, !frame.srcMAC.isZero,
              let options = Self.options(b, (message.lowerBound + fixed)..<message.upperBound) else { return Self.malformed }
        let unspecified = src == .unspecified
        // From the unspecified address there is no link-layer address to name.
        if unspecified && options.contains(where: { $0.type == Self.optSourceLL }) { return Self.malformed }

        if type == Self.routerSolicitation {
            guard dst == Self.allRouters || isRouterAddress(dst) else { return .none }
            if let last = lastSolicitedRA[port.name], now >= last, now - last < minimumSolicitedInterval {
                return ServiceReply(counters: ["ra.suppressed"])
            }
            lastSolicitedRA[port.name] = now
            let ra = unspecified
                ? routerAdvertisement(to: port)
                : Frames.icmp6(srcMAC: network.routerMAC, dstMAC: frame.srcMAC, src: .gateway, dst: src, message: raMessage())
            return ServiceReply(frame: ra, counters: ["ra.sent"])
        }

        let target = IPv6Address(bytes: Array(b[(message.lowerBound + 8)..<(message.lowerBound + 24)]))!
        guard !Self.isMulticast(target) else { return Self.malformed }
        // A DAD probe goes to the solicited-node address; a node's NS there or to the target.
        guard dst == Self.solicitedNode(target) || (!unspecified && dst == target) else {
            return unspecified ? Self.malformed : .none
        }
        guard isRouterAddress(target) else { return .none }
        var na: [UInt8] = [Self.neighborAdvertisement, 0, 0, 0, unspecified ? 0xA0 : 0xE0, 0, 0, 0]  // R, (S), O
        na += target.bytes
        na += [Self.optTargetLL, 1] + network.routerMAC.octets
        let reply = unspecified
            ? Frames.icmp6(srcMAC: network.routerMAC, dstMAC: Frames.multicastMAC(Frames.allNodes), src: target,
                           dst: Frames.allNodes, message: na)
            : Frames.icmp6(srcMAC: network.routerMAC, dstMAC: frame.srcMAC, src: target, dst: src, message: na)
        return ServiceReply(frame: reply, counters: ["nd.adverts"])
    }

    /// An unsolicited Router Advertisement to all nodes (ff02::1), for the periodic timer.
    public func routerAdvertisement(to port: ServicePort) -> [UInt8] {
        Frames.icmp6(srcMAC: network.routerMAC, dstMAC: Frames.multicastMAC(Frames.allNodes), src: .gateway,
                     dst: Frames.allNodes, message: raMessage())
    }

    /// The router asking a port who has `target`: to its solicited-node address, from fe80::1,
    /// with the router's link-layer address.
    public func neighborSolicitation(for target: IPv6Address, port: ServicePort) -> [UInt8] {
        var ns: [UInt8] = [Self.neighborSolicitation, 0, 0, 0, 0, 0, 0, 0]
        ns += target.bytes
        ns += [Self.optSourceLL, 1] + network.routerMAC.octets
        let dst = Self.solicitedNode(target)
        return Frames.icmp6(srcMAC: network.routerMAC, dstMAC: Frames.multicastMAC(dst), src: .gateway, dst: dst, message: ns)
    }

    /// The RA message (type byte on, checksum zero until framed).
    func raMessage() -> [UInt8] {
        var m: [UInt8] = [Self.routerAdvertisement, 0, 0, 0, Self.curHopLimit, 0xC0]  // M=1, O=1
        Frames.put16(Self.routerLifetime, into: &m)
        Frames.put32(0, into: &m)  // reachable time: unspecified
        Frames.put32(0, into: &m)  // retrans timer: unspecified
        m += [Self.optSourceLL, 1] + network.routerMAC.octets
        if network.mtu >= 1280, network.mtu <= Int(UInt32.max) {
            m += [Self.optMTU, 1, 0, 0]
            Frames.put32(UInt32(network.mtu), into: &m)
        }
        if let p = network.ipv6Prefix {
            m += [Self.optPrefix, 4, UInt8(p.length), 0x00]  // L=0, A=0
            Frames.put32(Self.prefixValidLifetime, into: &m)
            Frames.put32(Self.prefixPreferredLifetime, into: &m)
            Frames.put32(0, into: &m)
            m += p.address.bytes
        }
        if !network.dns6.isEmpty {
            let servers = network.dns6.prefix(127)  // the length byte counts 8-byte units
            m += [Self.optRDNSS, UInt8(1 + 2 * servers.count), 0, 0]
            Frames.put32(Self.dnsLifetime, into: &m)
            for s in servers { m += s.bytes }
        }
        if let d = network.domain, var wire = DHCPv6.dnsName(d) {
            while (8 + wire.count) % 8 != 0 { wire.append(0) }
            m += [Self.optDNSSL, UInt8((8 + wire.count) / 8), 0, 0]
            Frames.put32(Self.dnsLifetime, into: &m)
            m += wire
        }
        return m
    }

    static func isMulticast(_ a: IPv6Address) -> Bool { a.high >> 56 == 0xFF }

    /// ND options (type, length in 8-byte units, data) in `range`: nil when one has length 0
    /// or runs past the end.
    static func options(_ b: [UInt8], _ range: Range<Int>) -> [(type: UInt8, data: Range<Int>)]? {
        var out: [(type: UInt8, data: Range<Int>)] = []
        var i = range.lowerBound
        while i < range.upperBound {
            guard range.upperBound - i >= 2 else { return nil }
            let length = Int(b[i + 1]) * 8
            guard length > 0, length <= range.upperBound - i else { return nil }
            out.append((b[i], (i + 2)..<(i + length)))
            i += length
        }
        return out
    }
}
