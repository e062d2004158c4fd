// libFuzzer target `ndp`: the router's Neighbor Discovery responder (Services/NDP.swift)
// on hostile Router and Neighbor Solicitations — ICMPv6 from a guest is untrusted input.
//
// Input layout:
//   byte 0   control: bit0 the port has a bound MAC; bits1-2 source: the client's link-local
//            address, ::, a global address, the client's address but from another MAC; bits3-4
//            destination: ff02::2, the solicited-node group of fe80::1, fe80::1, the router's
//            global address; bit5 raw mode (the rest is one whole Ethernet frame); bit6 a
//            network without prefix, DNS and domain; bit7 hop limit 64 on odd records
//   then     (wrapped mode) records [seconds to wait, length hi, length lo, ICMPv6 message…],
//            each framed with a valid checksum and answered in turn by one responder
//
// Invariants (abort = a finding): no trap; only RS and NS are answered; a reply parses, is
// ICMPv6 code 0 with hop limit 255 from the router MAC and fe80::1 (or the router's global
// address for an NA about it) to the requester (or to ff02::1 when it had no address); an RA
// has M=1, O=1 and every prefix neither on-link nor autonomous; an NA is about a router
// address with the router's MAC; no two solicited RAs within 3 s on the port.
#if canImport(Glibc)
import Glibc
#endif
import Config
import Services

private func fail(_ what: String) -> Never {
    fputs("ndp fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private let routerMAC = MACAddress(bytes: (2, 0, 0, 0, 0, 0xfe))
private let clientMAC = MACAddress(bytes: (0x52, 0x54, 0, 0x12, 0x34, 0x56))
private let otherMAC = MACAddress(bytes: (0x52, 0x54, 0, 0x65, 0x43, 0x21))
private let clientLL = IPv6Address(high: 0xfe80_0000_0000_0000, low: 0x5054_00ff_fe12_3456)
private let prefix = IPv6Prefix(address: IPv6Address(high: 0xfd00_0001_0000_0000, low: 0), length: 64)

private func ndOptions(_ b: [UInt8], _ range: Range<Int>) -> [(UInt8, Range<Int>)] {
    var out: [(UInt8, Range<Int>)] = []
    var i = range.lowerBound
    while i < range.upperBound {
        guard range.upperBound - i >= 2, b[i + 1] > 0, Int(b[i + 1]) * 8 <= range.upperBound - i else {
            fail("a reply option is malformed")
        }
        out.append((b[i], i..<(i + Int(b[i + 1]) * 8)))
        i += Int(b[i + 1]) * 8
    }
    return out
}

private func check(_ reply: ServiceReply, request: ParsedFrame, responder: NDPResponder, lastRA: inout UInt64?, now: UInt64) {
    if !reply.events.isEmpty { fail("NDP produced an address event") }
    guard let frame = reply.frame else { return }
    guard case .ipv6(let rsrc, _, _) = request.network, case .icmpv6(let rtype, _, _) = request.transport,
          rtype == 133 || rtype == 135 else { fail("answered something that is not RS or NS") }
    guard let p = ParsedFrame(frame), case .ipv6(let src, let dst, let hop) = p.network,
          case .icmpv6(let type, let code, let m) = p.transport else { fail("the reply is not ICMPv6") }
    if hop != 255 || code != 0 || p.srcMAC != routerMAC { fail("reply hop \(hop) code \(code) from \(p.srcMAC)") }
    if rsrc == .unspecified {
        if dst != IPv6Address(high: 0xff02_0000_0000_0000, low: 1) || p.dstMAC != MACAddress(bytes: (0x33, 0x33, 0, 0, 0, 1)) {
            fail("a reply to :: not to all nodes")
        }
    } else if dst != rsrc || p.dstMAC != request.srcMAC {
        fail("a reply to \(dst) \(p.dstMAC), not the requester")
    }
    let b = frame
    switch (rtype, type) {
    case (133, 134):
        if let last = lastRA, now >= last, now - last < 3 { fail("two solicited RAs within 3 s") }
        lastRA = now
        if src != .gateway { fail("RA from \(src)") }
        guard m.count >= 16, b[m.lowerBound + 5] & 0xC0 == 0xC0 else { fail("RA without M and O") }
        for (t, r) in ndOptions(b, (m.lowerBound + 16)..<m.upperBound) where t == 3 {
            if r.count != 32 || b[r.lowerBound + 3] & 0xC0 != 0 { fail("a prefix on-link or autonomous") }
            if IPv6Address(bytes: Array(b[(r.lowerBound + 16)..<(r.lowerBound + 32)])) != responder.network.ipv6Prefix?.address {
                fail("a prefix that is not the network's")
            }
        }
    case (135, 136):
        guard m.count >= 24 else { fail("short NA") }
        let target = IPv6Address(bytes: Array(b[(m.lowerBound + 8)..<(m.lowerBound + 24)]))!
        if !responder.isRouterAddress(target) || src != target { fail("NA about \(target) from \(src)") }
        let options = ndOptions(b, (m.lowerBound + 24)..<m.upperBound)
        guard let tll = options.first(where: { $0.0 == 2 }), Array(b[(tll.1.lowerBound + 2)..<(tll.1.lowerBound + 8)]) == routerMAC.octets
        else { fail("NA without the router's MAC") }
    default:
        fail("type \(type) in reply to \(rtype)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let control = bytes.first else { return 0 }
    var network = NetworkServiceConfig(name: "fuzz", ipv6Prefix: prefix, dns6: [IPv6Address(high: 0xfd00_0001_0000_0000, low: 0x53)],
                                       domain: "prod.internal", leaseTime: 3600, routerMAC: routerMAC)
    if control & 0x40 != 0 { network.ipv6Prefix = nil; network.dns6 = []; network.domain = nil }
    let responder = NDPResponder(network: network)
    let port = ServicePort(name: "vm1", mac: control & 0x01 != 0 ? clientMAC : nil)
    var lastRA: UInt64?

    if control & 0x20 != 0 {
        guard let f = ParsedFrame(Array(bytes.dropFirst())) else { return 0 }
        check(responder.handle(f, port: port, now: 1), request: f, responder: responder, lastRA: &lastRA, now: 1)
        return 0
    }
    var src = clientLL, srcMAC = clientMAC
    switch control >> 1 & 3 {
    case 0: break
    case 1: src = .unspecified
    case 2: src = IPv6Address(high: prefix.address.high, low: 0x42)
    default: srcMAC = otherMAC
    }
    let dst: IPv6Address
    switch control >> 3 & 3 {
    case 0: dst = IPv6Address(high: 0xff02_0000_0000_0000, low: 2)
    case 1: dst = NDPResponder.solicitedNode(.gateway)
    case 2: dst = .gateway
    default: dst = network.routerIPv6Global ?? .gateway
    }
    var i = 1, now: UInt64 = 1000, n = 0
    while i + 3 <= bytes.count {
        now += UInt64(bytes[i])
        let length = min(Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]), bytes.count - i - 3)
        var message = Array(bytes[(i + 3)..<(i + 3 + length)])
        i += 3 + length
        n += 1
        guard message.count >= 4 else { continue }
        message[2] = 0
        message[3] = 0
        let dstMAC = dst.high >> 56 == 0xFF ? Frames.multicastMAC(dst) : routerMAC
        let hop: UInt8 = control & 0x80 != 0 && n % 2 == 1 ? 64 : 255
        let frame = Frames.ip6(srcMAC: srcMAC, dstMAC: dstMAC, src: src, dst: dst, next: 58, hopLimit: hop,
                               body: message, checksumOffset: 2)
        guard let f = ParsedFrame(frame) else { fail("the harness built a frame that does not parse") }
        check(responder.handle(f, port: port, now: now), request: f, responder: responder, lastRA: &lastRA, now: now)
    }
    return 0
}
