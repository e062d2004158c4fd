// libFuzzer target `dhcp6`: the DHCPv6 server (Services/DHCPv6*.swift) on hostile
// client messages — a guest's UDP payload to port 547 is untrusted input to the control thread.
//
// Input layout:
//   byte 0   control: bit0 the port has a bound MAC; bit1 the port has a static address;
//            bit2 raw mode (the rest is one whole Ethernet frame, as a worker would punt it);
//            bit3 the allocator is full; bit4 the allocator answers a bogus address (outside the
//            pool, or the router's); bits5-6 destination: ff02::1:2, fe80::1, the router's
//            global address, another address; bit7 the network has no DNS servers and no domain
//   then     (wrapped mode) records [length hi, length lo, DHCPv6 payload…], each sent as a
//            UDP datagram from fe80::5054:ff:fe12:3456 port 546, answered in turn by one server
//
// Invariants (abort = a finding): no trap; a reply parses with ParsedFrame, is UDP from
// fe80::1 port 547 and the router MAC to the requester's MAC, address and port, an ADVERTISE
// or REPLY with the request's transaction ID, its options well formed, the client ID echoed,
// the server ID ours; an address with non-zero lifetimes and every bound6 event is from the
// pool (inside the prefix, neither its first address nor the router's); an address with
// lifetimes 0 is one the client named.
#if canImport(Glibc)
import Glibc
#endif
import Config
import Services

private func fail(_ what: String) -> Never {
    fputs("dhcp6 fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private final class Leases: Lease6Allocator {
    var byMAC: [MACAddress: IPv6Address] = [:]
    var full = false
    var bogus: IPv6Address?
    let prefix: IPv6Prefix
    init(prefix: IPv6Prefix) { self.prefix = prefix }

    func allocate6(mac: MACAddress, port: String, duid: [UInt8], iaid: UInt32, staticAddress: IPv6Address?, now: UInt64) -> IPv6Address? {
        if let b = bogus { return b }
        if let s = staticAddress { return s }
        if let a = byMAC[mac] { return a }
        if full { return nil }
        let a = IPv6Address(high: prefix.address.high, low: prefix.address.low &+ 2 &+ UInt64(byMAC.count))
        byMAC[mac] = a
        return a
    }
    func commit6(mac: MACAddress, address: IPv6Address, until: UInt64) {}
    func release6(mac: MACAddress) -> IPv6Address? { byMAC.removeValue(forKey: mac) }
}

private let routerMAC = MACAddress(bytes: (2, 0, 0, 0, 0, 0xfe))
private let clientMAC = MACAddress(bytes: (0x52, 0x54, 0, 0x12, 0x34, 0x56))
private let clientLL = IPv6Address(high: 0xfe80_0000_0000_0000, low: 0x5054_00ff_fe12_3456)
private let prefix = IPv6Prefix(address: IPv6Address(high: 0xfd00_0001_0000_0000, low: 0), length: 64)

private func inPool(_ a: IPv6Address, _ network: NetworkServiceConfig) -> Bool {
    prefix.contains(a) && a != prefix.address && a != network.routerIPv6Global
}

private func check(_ reply: ServiceReply, request: ParsedFrame, network: NetworkServiceConfig, serverDUID: [UInt8]) {
    for e in reply.events {
        switch e {
        case .bound6(_, let mac, let a):
            if !inPool(a, network) { fail("bound6 of \(a), outside the pool") }
            if mac != request.srcMAC { fail("bound6 for \(mac), not the requester") }
        case .released6(_, let mac, _):
            if mac != request.srcMAC { fail("released6 for \(mac), not the requester") }
        default: fail("a DHCPv4 event from the DHCPv6 server")
        }
    }
    guard let frame = reply.frame else { return }
    if reply.counters.isEmpty { fail("a reply without a counter") }
    guard let p = ParsedFrame(frame) else { fail("the reply does not parse") }
    guard case .ipv6(let rsrc, _, _) = request.network, case .udp(let rport, _, let rpayload) = request.transport else {
        fail("a reply to something that is not UDP over IPv6")
    }
    guard case .ipv6(let src, let dst, _) = p.network, case .udp(let sp, let dp, let payload) = p.transport else {
        fail("the reply is not UDP over IPv6")
    }
    if p.srcMAC != routerMAC || p.dstMAC != request.srcMAC { fail("reply MACs \(p.srcMAC) → \(p.dstMAC)") }
    if src != .gateway || dst != rsrc || sp != 547 || dp != rport { fail("reply addressed \(src):\(sp) → \(dst):\(dp)") }
    if frame.count > 14 + network.mtu { fail("a \(frame.count)-byte reply") }
    let b = frame
    guard payload.count >= 4, b[payload.lowerBound] == 2 || b[payload.lowerBound] == 7 else { fail("reply type") }
    let q = request.bytes
    if Array(b[(payload.lowerBound + 1)..<(payload.lowerBound + 4)]) != Array(q[(rpayload.lowerBound + 1)..<(rpayload.lowerBound + 4)]) {
        fail("transaction ID not echoed")
    }
    guard let asked = try? DHCPv6.Message(q, rpayload) else { fail("answered a message that does not parse") }
    guard let opts = DHCPv6.options(b, (payload.lowerBound + 4)..<payload.upperBound) else { fail("reply options") }
    let named = Set(asked.ias.flatMap(\.addresses))
    for o in opts {
        switch o.code {
        case DHCPv6.optClientID:
            if Array(b[o.data]) != asked.clientID { fail("client ID not echoed") }
        case DHCPv6.optServerID:
            if Array(b[o.data]) != serverDUID { fail("server ID not ours") }
        case DHCPv6.optIANA:
            guard o.data.count >= 12, let inner = DHCPv6.options(b, (o.data.lowerBound + 12)..<o.data.upperBound) else {
                fail("IA_NA in the reply")
            }
            for a in inner where a.code == DHCPv6.optIAAddr {
                guard a.data.count >= 24 else { fail("IAADDR in the reply") }
                let address = IPv6Address(bytes: Array(b[a.data.lowerBound..<(a.data.lowerBound + 16)]))!
                let lifetimes = b[(a.data.lowerBound + 16)..<(a.data.lowerBound + 24)]
                if lifetimes.allSatisfy({ $0 == 0 }) {
                    if !named.contains(address) { fail("\(address) with lifetimes 0 that the client did not name") }
                } else if !inPool(address, network) {
                    fail("\(address) handed out, outside the pool")
                }
            }
        default: break
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let control = bytes.first else { return 0 }
    var network = NetworkServiceConfig(name: "fuzz", ipv6Prefix: prefix, dns6: [IPv6Address(high: 0xfd00_0001_0000_0000, low: 0x53)],
                                       domain: "prod.internal", leaseTime: 3600, routerMAC: routerMAC)
    if control & 0x80 != 0 { network.dns6 = []; network.domain = nil }
    let leases = Leases(prefix: prefix)
    leases.full = control & 0x08 != 0
    if control & 0x10 != 0 {
        leases.bogus = control & 0x01 != 0 ? network.routerIPv6Global : IPv6Address(high: 0xfd00_0002_0000_0000, low: 5)
    }
    let duid: [UInt8] = [0, 3, 0, 1] + routerMAC.octets
    let server = DHCPv6Server(network: network, leases: leases, serverDUID: duid)
    let port = ServicePort(name: "vm1", mac: control & 0x01 != 0 ? clientMAC : nil,
                           staticIPv6: control & 0x02 != 0 ? IPv6Address(high: 0xfd00_0001_0000_0000, low: 5) : nil)

    if control & 0x04 != 0 {
        guard let f = ParsedFrame(Array(bytes.dropFirst())) else { return 0 }
        check(server.handle(f, port: port, now: 1), request: f, network: network, serverDUID: duid)
        return 0
    }
    let dst: IPv6Address
    switch control >> 5 & 3 {
    case 0: dst = DHCPv6.allServers
    case 1: dst = .gateway
    case 2: dst = network.routerIPv6Global!
    default: dst = IPv6Address(high: 0xfd00_0001_0000_0000, low: 9)
    }
    var i = 1, now: UInt64 = 1000
    while i + 2 <= bytes.count {
        let length = min(Int(bytes[i]) << 8 | Int(bytes[i + 1]), bytes.count - i - 2)
        let payload = Array(bytes[(i + 2)..<(i + 2 + length)])
        i += 2 + length
        let frame = Frames.udp6(srcMAC: clientMAC, dstMAC: Frames.multicastMAC(dst), src: clientLL, dst: dst,
                                srcPort: 546, dstPort: 547, payload: payload)
        guard let f = ParsedFrame(frame) else { fail("the harness built a frame that does not parse") }
        check(server.handle(f, port: port, now: now), request: f, network: network, serverDUID: duid)
        now += 60
    }
    return 0
}
