import Config

/// Where the DHCPv6 server gets addresses from (the lease store implements it). All
/// times are in the units of `now` given to `DHCPv6Server.handle` (seconds since the epoch).
public protocol Lease6Allocator: AnyObject {
    /// The address for `mac` on `port`: `staticAddress` when the port has one, else the
    /// address `mac` had before, else a free one of the prefix; nil when none is left.
    func allocate6(mac: MACAddress, port: String, duid: [UInt8], iaid: UInt32, staticAddress: IPv6Address?, now: UInt64) -> IPv6Address?
    /// The client took `address` (REPLY sent) until `until`.
    func commit6(mac: MACAddress, address: IPv6Address, until: UInt64)
    /// The client gave its address back; returns it, or nil when `mac` had none.
    func release6(mac: MACAddress) -> IPv6Address?
}

/// The DHCPv6 server of one network (RFC 8415): SOLICIT/ADVERTISE (or REPLY with rapid
/// commit), REQUEST, RENEW, REBIND, RELEASE, DECLINE, CONFIRM and INFORMATION-REQUEST,
/// one IA_NA with one /128 of the network's prefix per client MAC, DNS servers (RFC 3646
/// option 23) and the domain search list (option 24).
///
/// Runs on the control thread: each frame is a whole Ethernet frame a worker punted
/// (IPv6, UDP to port 547). Any input gives a reply or nothing; it never traps.
public final class DHCPv6Server {
    public let network: NetworkServiceConfig
    public let serverDUID: [UInt8]
    private let leases: any Lease6Allocator

    public init(network: NetworkServiceConfig, leases: any Lease6Allocator, serverDUID: [UInt8]) {
        self.network = network
        self.leases = leases
        self.serverDUID = serverDUID
    }

    private static let names: [UInt8: String] = [
        DHCPv6.solicit: "solicit", DHCPv6.request: "request", DHCPv6.confirm: "confirm", DHCPv6.renew: "renew",
        DHCPv6.rebind: "rebind", DHCPv6.release: "release", DHCPv6.decline: "decline",
        DHCPv6.informationRequest: "information_request",
    ]

    private static let malformed = ServiceReply(counters: ["dropped.malformed"])

    /// T1 and T2 of an IA_NA: 0.5 and 0.8 of the lease time (infinity stays infinity).
    var timers: (t1: UInt32, t2: UInt32) {
        let lease = network.leaseTime
        if lease == .max { return (.max, .max) }
        return (UInt32(UInt64(lease) / 2), UInt32(UInt64(lease) * 4 / 5))
    }

    /// The answer to one punted frame. Frames that are not DHCPv6 to this server give
    /// `.none`; messages that break RFC 8415's rules give `dropped.malformed`; a frame from a
    /// MAC other than the port's bound one gives `dhcp6.refused`.
    public func handle(_ frame: ParsedFrame, port: ServicePort, now: UInt64) -> ServiceReply {
        guard case .ipv6(let src, let dst, _) = frame.network,
              case .udp(let srcPort, let dstPort, let payload) = frame.transport, dstPort == DHCPv6.serverPort else {
            return .none
        }
        let multicast = dst == DHCPv6.allServers
        guard multicast || dst == .gateway || dst == network.routerIPv6Global else { return .none }
        if let bound = port.mac, bound != frame.srcMAC { return ServiceReply(counters: ["dhcp6.refused"]) }
        // Clients send from a link-local address and port (RFC 8415 §13.1, §7.2).
        guard src.high >> 54 == 0x3FA, srcPort != 0, frame.srcMAC.isUnicast, !frame.srcMAC.isZero else {
            return Self.malformed
        }
        guard let message = try? DHCPv6.Message(frame.bytes, payload), let name = Self.names[message.type] else {
            return Self.malformed
        }
        var counters = ["dhcp6." + name]
        guard let answer = answer(message, multicast: multicast, mac: frame.srcMAC, port: port, now: now) else {
            return ServiceReply(counters: counters)
        }
        guard let body = answer.body else {
            counters.append("dropped.malformed")
            return ServiceReply(counters: counters)
        }
        counters.append(body[0] == DHCPv6.advertise ? "dhcp6.advertise" : "dhcp6.reply")
        let reply = Frames.udp6(srcMAC: network.routerMAC, dstMAC: frame.srcMAC, src: .gateway, dst: src,
                                srcPort: DHCPv6.serverPort, dstPort: srcPort, payload: body)
        return ServiceReply(frame: reply, counters: counters, events: answer.events)
    }

    /// What to send: `body` nil means the message broke a rule of RFC 8415 §16 (dropped
    /// and counted); the whole answer nil means it is silently not for us (another server).
    private struct Answer {
        var body: [UInt8]?
        var events: [AddressEvent] = []
    }

    private func answer(_ m: DHCPv6.Message, multicast: Bool, mac: MACAddress, port: ServicePort, now: UInt64) -> Answer? {
        let invalid = Answer(body: nil)
        let hasIA = !m.ias.isEmpty
        switch m.type {
        case DHCPv6.solicit, DHCPv6.confirm, DHCPv6.rebind:
            // Client ID required, no server ID; only ever multicast (RFC 8415 §16.2, .5, .7).
            guard let clientID = m.clientID, m.serverID == nil, multicast else { return invalid }
            if m.type == DHCPv6.confirm { return confirm(m, clientID: clientID) }
            if m.type == DHCPv6.solicit { return assign(m, clientID: clientID, mac: mac, port: port, now: now) }
            return renew(m, clientID: clientID, mac: mac, port: port, now: now)
        case DHCPv6.request, DHCPv6.renew, DHCPv6.release, DHCPv6.decline:
            guard let clientID = m.clientID, let serverID = m.serverID else { return invalid }
            guard serverID == serverDUID else { return nil }  // For another server: ignored.
            if !multicast {
                // We never send the Server Unicast option (RFC 8415 §18.4).
                return Answer(body: reply(m, clientID: clientID, [status(DHCPv6.useMulticast, "use multicast")]))
            }
            switch m.type {
            case DHCPv6.request: return assign(m, clientID: clientID, mac: mac, port: port, now: now)
            case DHCPv6.renew: return renew(m, clientID: clientID, mac: mac, port: port, now: now)
            default: return release(m, clientID: clientID, mac: mac, port: port)
            }
        case DHCPv6.informationRequest:
            // No IA; a server ID, when present, must be ours (RFC 8415 §16.12).
            guard multicast, !hasIA else { return invalid }
            if let serverID = m.serverID, serverID != serverDUID { return nil }
            return Answer(body: reply(m, clientID: m.clientID, configuration()))
        default:
            return invalid
        }
    }

    // MARK: Exchanges

    /// SOLICIT (ADVERTISE, or REPLY with rapid commit) and REQUEST (REPLY).
    private func assign(_ m: DHCPv6.Message, clientID: [UInt8], mac: MACAddress, port: ServicePort, now: UInt64) -> Answer {
        let commit = m.type == DHCPv6.request || m.rapidCommit
        var ias: [UInt8] = [], events: [AddressEvent] = []
        var assigned: IPv6Address?, anyGranted = false
        for ia in m.ias {
            switch ia.code {
            case DHCPv6.optIANA where assigned == nil:
                guard let a = allocate(mac: mac, port: port, clientID: clientID, iaid: ia.iaid, now: now) else {
                    ias += iaWithStatus(ia, DHCPv6.noAddrsAvail, "no addresses available")
                    continue
                }
                assigned = a
                anyGranted = true
                ias += iaGranting(ia, a)
            case DHCPv6.optIANA:
                // One address per client MAC: a second IA_NA gets none.
                ias += iaWithStatus(ia, DHCPv6.noAddrsAvail, "one address per client")
            case DHCPv6.optIAPD:
                ias += iaWithStatus(ia, DHCPv6.noPrefixAvail, "no prefixes delegated")
            default:
                break  // IA_TA (deprecated by RFC 8415) is ignored.
            }
        }
        if m.type == DHCPv6.solicit && !anyGranted {
            // RFC 8415 §18.3.9: no IA options, a top-level NoAddrsAvail.
            return Answer(body: message(DHCPv6.advertise, m, clientID: clientID,
                                        [status(DHCPv6.noAddrsAvail, "no addresses available")] + configuration()))
        }
        if m.type == DHCPv6.request && m.ias.isEmpty {
            return Answer(body: reply(m, clientID: clientID, [status(DHCPv6.noAddrsAvail, "no IA in request")] + configuration()))
        }
        if commit, let a = assigned {
            leases.commit6(mac: mac, address: a, until: now &+ UInt64(network.leaseTime))
            events.append(.bound6(port: port.name, mac: mac, address: a))
        }
        var extra: [[UInt8]] = []
        if m.type == DHCPv6.solicit {
            if m.rapidCommit {
                extra.append(option(DHCPv6.optRapidCommit, []))
            } else {
                extra.append(option(DHCPv6.optPreference, [255]))  // The client need not wait for others.
            }
        }
        let type = m.type == DHCPv6.solicit && !m.rapidCommit ? DHCPv6.advertise : DHCPv6.reply
        return Answer(body: message(type, m, clientID: clientID, extra + [ias] + configuration()), events: events)
    }

    /// RENEW and REBIND: the client's MAC keeps its address; any other address it names is
    /// returned with lifetimes 0 (RFC 8415 §18.3.4, §18.3.5).
    private func renew(_ m: DHCPv6.Message, clientID: [UInt8], mac: MACAddress, port: ServicePort, now: UInt64) -> Answer {
        var ias: [UInt8] = [], events: [AddressEvent] = []
        var assigned: IPv6Address?
        for ia in m.ias {
            switch ia.code {
            case DHCPv6.optIANA where assigned == nil:
                guard let a = allocate(mac: mac, port: port, clientID: clientID, iaid: ia.iaid, now: now) else {
                    ias += iaWithStatus(ia, DHCPv6.noBinding, "no binding")
                    continue
                }
                assigned = a
                ias += iaGranting(ia, a)
            case DHCPv6.optIANA, DHCPv6.optIAPD:
                ias += iaWithStatus(ia, DHCPv6.noBinding, "no binding")
            default:
                break
            }
        }
        if let a = assigned {
            leases.commit6(mac: mac, address: a, until: now &+ UInt64(network.leaseTime))
            events.append(.bound6(port: port.name, mac: mac, address: a))
        }
        return Answer(body: reply(m, clientID: clientID, [ias] + configuration()), events: events)
    }

    /// RELEASE and DECLINE: the MAC's address is given back. A DECLINEd address is in use
    /// by someone else; with one address per MAC the best the server can do is drop the
    /// binding (the router stops routing it to this port).
    private func release(_ m: DHCPv6.Message, clientID: [UInt8], mac: MACAddress, port: ServicePort) -> Answer {
        // Only a message naming an address of the pool gives the MAC's binding back.
        let named = m.ias.filter { $0.code == DHCPv6.optIANA }.flatMap(\.addresses)
        let pool = network.ipv6Prefix.map { p in named.contains { isAssignable($0, in: p) } } ?? false
        var events: [AddressEvent] = []
        var released: IPv6Address?
        if pool, let a = leases.release6(mac: mac) {
            released = a
            events.append(.released6(port: port.name, mac: mac, address: a))
        }
        // IAs the server has no binding for get NoBinding (RFC 8415 §18.3.7, §18.3.8).
        var ias: [UInt8] = []
        for ia in m.ias where ia.code == DHCPv6.optIANA {
            if released == nil || !ia.addresses.contains(where: { $0 == released }) {
                ias += iaWithStatus(ia, DHCPv6.noBinding, "no binding")
            }
        }
        let text = m.type == DHCPv6.release ? "released" : "declined"
        return Answer(body: reply(m, clientID: clientID, [status(DHCPv6.success, text), ias]), events: events)
    }

    /// CONFIRM: are the client's addresses on this link? No addresses: no reply (§18.3.3).
    private func confirm(_ m: DHCPv6.Message, clientID: [UInt8]) -> Answer? {
        let addresses = m.ias.filter { $0.code == DHCPv6.optIANA || $0.code == DHCPv6.optIATA }.flatMap(\.addresses)
        guard !addresses.isEmpty else { return nil }
        let onLink = network.ipv6Prefix.map { p in addresses.allSatisfy { p.contains($0) } } ?? false
        let s = onLink ? status(DHCPv6.success, "all addresses on link") : status(DHCPv6.notOnLink, "not on link")
        return Answer(body: reply(m, clientID: clientID, [s]))
    }

    // MARK: Pieces

    /// The allocator's address, when it is one the pool may hand out: inside the prefix,
    /// neither its first address nor the router's.
    private func allocate(mac: MACAddress, port: ServicePort, clientID: [UInt8], iaid: UInt32, now: UInt64) -> IPv6Address? {
        guard let prefix = network.ipv6Prefix,
              let a = leases.allocate6(mac: mac, port: port.name, duid: clientID, iaid: iaid,
                                       staticAddress: port.staticIPv6, now: now),
              isAssignable(a, in: prefix) else { return nil }
        return a
    }

    func isAssignable(_ a: IPv6Address, in prefix: IPv6Prefix) -> Bool {
        prefix.contains(a) && a != prefix.address && a != network.routerIPv6Global
    }

    /// An IA_NA granting `a` (and any other address the client named, with lifetimes 0).
    private func iaGranting(_ ia: DHCPv6.IA, _ a: IPv6Address) -> [UInt8] {
        var inner = DHCPv6.iaAddress(a, preferred: network.leaseTime, valid: network.leaseTime)
        for other in ia.addresses where other != a {
            inner += DHCPv6.iaAddress(other, preferred: 0, valid: 0)
        }
        return DHCPv6.ia(ia.code, iaid: ia.iaid, t1: timers.t1, t2: timers.t2, inner: inner)
    }

    private func iaWithStatus(_ ia: DHCPv6.IA, _ code: UInt16, _ text: String) -> [UInt8] {
        DHCPv6.ia(ia.code, iaid: ia.iaid, t1: 0, t2: 0, inner: status(code, text))
    }

    private func option(_ code: UInt16, _ data: [UInt8]) -> [UInt8] {
        var o: [UInt8] = []
        DHCPv6.put(code, data, into: &o)
        return o
    }

    private func status(_ code: UInt16, _ text: String) -> [UInt8] {
        option(DHCPv6.optStatusCode, DHCPv6.status(code, text))
    }

    /// DNS servers (23) and the domain search list (24) when the network has them.
    private func configuration() -> [[UInt8]] {
        var out: [[UInt8]] = []
        if !network.dns6.isEmpty { out.append(option(DHCPv6.optDNSServers, network.dns6.flatMap(\.bytes))) }
        if let d = network.domain, let wire = DHCPv6.dnsName(d) { out.append(option(DHCPv6.optDomainList, wire)) }
        return out
    }

    private func reply(_ m: DHCPv6.Message, clientID: [UInt8]?, _ options: [[UInt8]]) -> [UInt8] {
        message(DHCPv6.reply, m, clientID: clientID, options)
    }

    /// Type, the client's transaction ID, client ID (echoed), server ID, then `options`.
    private func message(_ type: UInt8, _ m: DHCPv6.Message, clientID: [UInt8]?, _ options: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = [type, m.transactionID.0, m.transactionID.1, m.transactionID.2]
        if let c = clientID { DHCPv6.put(DHCPv6.optClientID, c, into: &out) }
        DHCPv6.put(DHCPv6.optServerID, serverDUID, into: &out)
        for o in options { out += o }
        return out
    }
}
