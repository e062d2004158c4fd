import Config

/// The DHCPv4 server of one network (RFC 2131, options RFC 2132, classless routes
/// RFC 3442). Every port gets a /32 behind the gateway 169.254.0.1: subnet mask
/// 255.255.255.255, router 169.254.0.1 and the routes "169.254.0.1/32 on-link, default
/// via 169.254.0.1". Control thread only; any input gives a reply or a counted drop.
public final class DHCPv4Server {
    public let network: NetworkServiceConfig
    public let leases: LeaseStore

    public init(network: NetworkServiceConfig, leases: LeaseStore) {
        self.network = network
        self.leases = leases
    }

    static let serverPort: UInt16 = 67
    static let clientPort: UInt16 = 68
    static let limitedBroadcast = IPv4Address(0xFFFF_FFFF)

    /// Answers one frame a port sent to UDP port 67. `.none` for frames not for this
    /// server (not IPv4 UDP to port 67 at the gateway or the broadcast address, or no
    /// IPv4 subnet in the network); `dropped.malformed` for a message it cannot
    /// understand; `dhcp4.refused` for a client hardware address that is not the
    /// frame's source MAC or not the MAC bound to the port, and for relayed messages.
    public func handle(_ frame: ParsedFrame, port: ServicePort, now: UInt64) -> ServiceReply {
        guard network.ipv4Subnet != nil, case .ipv4(let srcIP, let dstIP, _) = frame.network,
              case .udp(let srcPort, let dstPort, let range) = frame.transport, dstPort == Self.serverPort,
              dstIP == Self.limitedBroadcast || dstIP == .gateway else { return .none }
        guard srcPort == Self.clientPort, case .success(let m) = DHCPv4Message.parse(frame.bytes[range]),
              let type = m.messageType else {
            return ServiceReply(counters: ["dropped.malformed"])
        }
        let received = "dhcp4.\(type.counterName)"
        let mac = m.clientMAC
        guard mac == frame.srcMAC, port.mac == nil || port.mac == mac, m.giaddr.value == 0, mac.isUnicast else {
            return ServiceReply(counters: [received, "dhcp4.refused"])
        }
        switch type {
        case .discover: return discover(m, port: port, now: now, counters: [received])
        case .request: return request(m, port: port, now: now, counters: [received])
        case .release: return release(m, port: port, counters: [received])
        case .decline: return decline(m, port: port, now: now, counters: [received])
        case .inform: return inform(m, srcIP: srcIP, counters: [received])
        case .offer, .ack, .nak: return ServiceReply(counters: ["dropped.malformed"])  // parse refuses these
        }
    }

    // MARK: Messages

    func discover(_ m: DHCPv4Message, port: ServicePort, now: UInt64, counters: [String]) -> ServiceReply {
        guard let address = leases.allocate4(mac: m.clientMAC, port: port.name, requested: m.requestedAddress,
                                             staticAddress: port.staticIPv4, now: now) else {
            return ServiceReply(counters: counters + ["dhcp4.no_address"])
        }
        return ServiceReply(frame: reply(.offer, to: m, yiaddr: address, ciaddr: IPv4Address(0)), counters: counters + ["dhcp4.offer"])
    }

    /// SELECTING (server id + requested address), INIT-REBOOT (requested address only),
    /// RENEWING / REBINDING (ciaddr only): ACK when the address is the one this MAC
    /// gets, NAK otherwise; silence when the client selected another server.
    func request(_ m: DHCPv4Message, port: ServicePort, now: UInt64, counters: [String]) -> ServiceReply {
        let wanted: IPv4Address
        if let server = m.serverIdentifier {
            guard server == .gateway else { return ServiceReply(counters: counters) }  // another server's offer
            guard let r = m.requestedAddress else { return ServiceReply(counters: ["dropped.malformed"]) }
            wanted = r
        } else if let r = m.requestedAddress {
            wanted = r
        } else if m.ciaddr.value != 0 {
            wanted = m.ciaddr
        } else {
            return ServiceReply(counters: ["dropped.malformed"])
        }
        let granted = leases.allocate4(mac: m.clientMAC, port: port.name, requested: wanted,
                                       staticAddress: port.staticIPv4, now: now)
        guard granted == wanted else {
            return ServiceReply(frame: nak(m, message: "address \(wanted) is not yours"), counters: counters + ["dhcp4.nak"])
        }
        leases.commit4(mac: m.clientMAC, address: wanted, until: now &+ UInt64(network.leaseTime))
        // ciaddr stays as the client sent it (set while renewing or rebinding).
        let frame = reply(.ack, to: m, yiaddr: wanted, ciaddr: m.ciaddr)
        return ServiceReply(frame: frame, counters: counters + ["dhcp4.ack"],
                            events: [.bound4(port: port.name, mac: m.clientMAC, address: wanted)])
    }

    func release(_ m: DHCPv4Message, port: ServicePort, counters: [String]) -> ServiceReply {
        guard let held = leases.lease(for: m.clientMAC)?.ipv4, held == m.ciaddr,
              let released = leases.release4(mac: m.clientMAC) else { return ServiceReply(counters: counters) }
        return ServiceReply(counters: counters, events: [.released4(port: port.name, mac: m.clientMAC, address: released)])
    }

    /// The client found its address in use: quarantine it (a port's static address
    /// stays the port's: only counted).
    func decline(_ m: DHCPv4Message, port: ServicePort, now: UInt64, counters: [String]) -> ServiceReply {
        guard let declined = m.requestedAddress, let l = leases.lease(for: m.clientMAC), l.ipv4 == declined,
              l.state4 == .bound || l.state4 == .offered, declined != port.staticIPv4 else { return ServiceReply(counters: counters) }
        let wasBound = l.bound4(now: now)
        leases.decline4(address: declined, now: now)
        return ServiceReply(counters: counters,
                            events: wasBound ? [.released4(port: port.name, mac: m.clientMAC, address: declined)] : [])
    }

    /// A client with an address asks for the rest of its configuration: ACK without
    /// yiaddr and without lease times (RFC 2131 §4.3.5).
    func inform(_ m: DHCPv4Message, srcIP: IPv4Address, counters: [String]) -> ServiceReply {
        var target = m
        if m.ciaddr.value == 0 { target.ciaddr = srcIP }
        return ServiceReply(frame: reply(.ack, to: target, yiaddr: IPv4Address(0), ciaddr: m.ciaddr, lease: false),
                            counters: counters + ["dhcp4.ack"])
    }

    // MARK: Replies

    /// OFFER or ACK: the network's options, those in the client's parameter request
    /// list first, in its order.
    func reply(_ type: DHCPv4Message.MessageType, to m: DHCPv4Message, yiaddr: IPv4Address, ciaddr: IPv4Address,
               lease: Bool = true) -> [UInt8] {
        var r = m
        r.yiaddr = yiaddr
        r.ciaddr = ciaddr
        r.siaddr = IPv4Address(0)
        var head: [(UInt8, [UInt8])] = [(53, [type.rawValue]), (54, IPv4Address.gateway.octets)]
        if lease {
            let t = network.leaseTime
            head += [(51, be32(t)), (58, be32(t / 2)), (59, be32(UInt32(UInt64(t) * 7 / 8)))]
        }
        var body: [(UInt8, [UInt8])] = [(1, [255, 255, 255, 255]), (3, IPv4Address.gateway.octets), (121, DHCPv4Options.gatewayRoutes)]
        if !network.dns4.isEmpty { body.append((6, network.dns4.prefix(63).flatMap(\.octets))) }
        if let d = network.domain, !d.isEmpty { body.append((15, DHCPv4Options.domainName(d))) }
        if (68...65535).contains(network.mtu) { body.append((26, [UInt8(network.mtu >> 8), UInt8(network.mtu & 0xFF)])) }
        let wanted = m.parameterRequestList
        // Option 249 (the pre-standard Microsoft classless routes): only for clients that ask.
        if wanted.contains(249) { body.append((249, DHCPv4Options.gatewayRoutes)) }
        var ordered: [(UInt8, [UInt8])] = []
        for code in wanted where !ordered.contains(where: { $0.0 == code }) {
            if let o = body.first(where: { $0.0 == code }) { ordered.append(o) }
        }
        for o in body where !ordered.contains(where: { $0.0 == o.0 }) { ordered.append(o) }
        if let id = m.options[61] { ordered.append((61, id)) }  // RFC 6842
        return frame(r.encodeReply(options: head + ordered), for: m, yiaddr: yiaddr)
    }

    func nak(_ m: DHCPv4Message, message: String) -> [UInt8] {
        var r = m
        r.ciaddr = IPv4Address(0)
        r.yiaddr = IPv4Address(0)
        r.siaddr = IPv4Address(0)
        var options: [(UInt8, [UInt8])] = [(53, [DHCPv4Message.MessageType.nak.rawValue]), (54, IPv4Address.gateway.octets),
                                           (56, Array(message.utf8))]
        if let id = m.options[61] { options.append((61, id)) }
        // RFC 2131 §4.1: a NAK is broadcast (no relay here).
        return Frames.udp4(srcMAC: network.routerMAC, dstMAC: Frames.broadcastMAC, src: .gateway, dst: Self.limitedBroadcast,
                           srcPort: Self.serverPort, dstPort: Self.clientPort, payload: r.encodeReply(options: options))
    }

    /// RFC 2131 §4.1: to ciaddr when the client has one; broadcast when it asked for
    /// it (or has no address to receive on); else unicast to yiaddr at chaddr. Only
    /// addresses of the network's subnet are ever used as a unicast destination.
    func frame(_ payload: [UInt8], for m: DHCPv4Message, yiaddr: IPv4Address) -> [UInt8] {
        let subnet = network.ipv4Subnet
        var dstIP = Self.limitedBroadcast, dstMAC = Frames.broadcastMAC
        if m.ciaddr.value != 0, subnet?.contains(m.ciaddr) == true {
            dstIP = m.ciaddr
            dstMAC = m.clientMAC
        } else if !m.broadcast, yiaddr.value != 0 {
            dstIP = yiaddr
            dstMAC = m.clientMAC
        }
        return Frames.udp4(srcMAC: network.routerMAC, dstMAC: dstMAC, src: .gateway, dst: dstIP,
                           srcPort: Self.serverPort, dstPort: Self.clientPort, payload: payload)
    }

    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
}
