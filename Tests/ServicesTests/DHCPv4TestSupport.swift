import Config
@testable import Services

/// Client-side DHCPv4 frames for the tests, built field by field (independent of the
/// server's encoder).
struct DHCPv4Client {
    var mac: MACAddress
    var xid: UInt32 = 0x1234_5678
    var secs: UInt16 = 0
    var broadcast = false
    var ciaddr = IPv4Address(0)
    var srcIP = IPv4Address(0)
    var dstIP = IPv4Address(0xFFFF_FFFF)
    var srcPort: UInt16 = 68
    var dstPort: UInt16 = 67

    /// op, htype, hlen, …, chaddr, zero sname/file, then `cookie` and `options` as given.
    func payload(options: [UInt8], op: UInt8 = 1, hlen: UInt8 = 6, chaddr: MACAddress? = nil,
                 cookie: [UInt8] = DHCPv4Message.magicCookie) -> [UInt8] {
        var b: [UInt8] = [op, 1, hlen, 0]
        Frames.put32(xid, into: &b)
        Frames.put16(secs, into: &b)
        Frames.put16(broadcast ? 0x8000 : 0, into: &b)
        Frames.put32(ciaddr.value, into: &b)
        b += [UInt8](repeating: 0, count: 12)
        b += (chaddr ?? mac).octets + [UInt8](repeating: 0, count: 10)
        b += [UInt8](repeating: 0, count: 192)
        return b + cookie + options
    }

    func frame(_ payload: [UInt8], srcMAC: MACAddress? = nil) -> ParsedFrame {
        ParsedFrame(Frames.udp4(srcMAC: srcMAC ?? mac, dstMAC: Frames.broadcastMAC, src: srcIP, dst: dstIP,
                                srcPort: srcPort, dstPort: dstPort, payload: payload))!
    }

    /// A message of `type` with extra options, ended by 255.
    func message(_ type: UInt8, _ extra: [UInt8] = []) -> ParsedFrame {
        frame(payload(options: [53, 1, type] + extra + [255]))
    }

    static func opt(_ code: UInt8, _ a: IPv4Address) -> [UInt8] { [code, 4] + a.octets }
}

/// A reply taken apart by the tests: the frame's addressing and the DHCP fields.
struct DHCPv4Reply {
    let frame: ParsedFrame
    let payload: [UInt8]
    /// Options in the order they appear.
    let options: [(UInt8, [UInt8])]

    init?(_ bytes: [UInt8]?) {
        guard let bytes, let f = ParsedFrame(bytes), let p = f.udpPayload, p.count >= 240 else { return nil }
        frame = f
        payload = Array(p)
        var out: [(UInt8, [UInt8])] = []
        var i = 240
        while i < payload.count, payload[i] != 255 {
            if payload[i] == 0 { i += 1; continue }
            guard i + 1 < payload.count, i + 2 + Int(payload[i + 1]) <= payload.count else { return nil }
            out.append((payload[i], Array(payload[(i + 2)..<(i + 2 + Int(payload[i + 1]))])))
            i += 2 + Int(payload[i + 1])
        }
        options = out
    }

    var op: UInt8 { payload[0] }
    var xid: UInt32 { Frames.u32(payload, 4) }
    var flags: UInt16 { Frames.u16(payload, 10) }
    var ciaddr: IPv4Address { IPv4Address(Frames.u32(payload, 12)) }
    var yiaddr: IPv4Address { IPv4Address(Frames.u32(payload, 16)) }
    var chaddr: [UInt8] { Array(payload[28..<44]) }
    var type: UInt8? { option(53)?.first }
    func option(_ code: UInt8) -> [UInt8]? { options.first { $0.0 == code }?.1 }
    var codes: [UInt8] { options.map(\.0) }
    var dstIP: IPv4Address? { if case .ipv4(_, let d, _) = frame.network { return d }; return nil }
    var srcIP: IPv4Address? { if case .ipv4(let s, _, _) = frame.network { return s }; return nil }
}
