import Config

/// A BOOTP/DHCPv4 message (RFC 2131 §2, options RFC 2132): the fixed fields and the
/// options, taken apart with every length checked against the bytes present.
///
///     0 op  1 htype  2 hlen  3 hops  4 xid(4)  8 secs(2)  10 flags(2)
///     12 ciaddr  16 yiaddr  20 siaddr  24 giaddr  28 chaddr(16)  44 sname(64)  108 file(128)
///     236 magic cookie 99.130.83.99   240 options … 255 (end)
public struct DHCPv4Message: Sendable, Equatable {
    public enum MessageType: UInt8, Sendable {
        case discover = 1, offer, request, decline, ack, nak, release, inform

        /// The counter name's last part: `discover`, `offer`, …
        public var counterName: String {
            switch self {
            case .discover: "discover"
            case .offer: "offer"
            case .request: "request"
            case .decline: "decline"
            case .ack: "ack"
            case .nak: "nak"
            case .release: "release"
            case .inform: "inform"
            }
        }
    }

    /// Why a payload is not a DHCP request this server understands.
    public enum ParseError: Error, Sendable, Equatable {
        case tooShort(Int)
        case notARequest(op: UInt8)
        case hardware(type: UInt8, length: UInt8)
        case noMagicCookie
        case optionPastEnd(code: UInt8)
        case noEndOption
        case badOptionLength(code: UInt8, length: Int)
        case badOverload(UInt8)
        case noMessageType
        case notAClientMessage(UInt8)
    }

    public static let magicCookie: [UInt8] = [99, 130, 83, 99]
    public static let broadcastFlag: UInt16 = 0x8000
    public static let fixedLength = 236

    public var op: UInt8 = 1
    public var htype: UInt8 = 1
    public var hlen: UInt8 = 6
    public var hops: UInt8 = 0
    public var xid: UInt32 = 0
    public var secs: UInt16 = 0
    public var flags: UInt16 = 0
    public var ciaddr = IPv4Address(0)
    public var yiaddr = IPv4Address(0)
    public var siaddr = IPv4Address(0)
    public var giaddr = IPv4Address(0)
    /// 16 bytes; the first `hlen` (6) are the client's MAC.
    public var chaddr = [UInt8](repeating: 0, count: 16)
    /// Each option's data; an option given more than once is concatenated (RFC 3396).
    public var options: [UInt8: [UInt8]] = [:]

    public init() {}

    public var messageType: MessageType? { options[53].flatMap { $0.count == 1 ? MessageType(rawValue: $0[0]) : nil } }
    public var clientMAC: MACAddress { MACAddress(bytes: (chaddr[0], chaddr[1], chaddr[2], chaddr[3], chaddr[4], chaddr[5])) }
    public var broadcast: Bool { flags & Self.broadcastFlag != 0 }

    /// Option 50, requested IP address.
    public var requestedAddress: IPv4Address? { address(option: 50) }
    /// Option 54, server identifier.
    public var serverIdentifier: IPv4Address? { address(option: 54) }
    /// Option 55, parameter request list, in the client's order.
    public var parameterRequestList: [UInt8] { options[55] ?? [] }

    func address(option: UInt8) -> IPv4Address? {
        guard let d = options[option], d.count == 4 else { return nil }
        return IPv4Address(d[0], d[1], d[2], d[3])
    }

    /// Parses a client's message (op BOOTREQUEST, Ethernet hardware address, magic
    /// cookie, options ending with 255, a message type a client sends).
    public static func parse(_ p: ArraySlice<UInt8>) -> Result<DHCPv4Message, ParseError> {
        let b = Array(p)
        guard b.count >= fixedLength + 4 else { return .failure(.tooShort(b.count)) }
        guard b[0] == 1 else { return .failure(.notARequest(op: b[0])) }
        guard b[1] == 1, b[2] == 6 else { return .failure(.hardware(type: b[1], length: b[2])) }
        guard Array(b[236..<240]) == magicCookie else { return .failure(.noMagicCookie) }
        var m = DHCPv4Message()
        m.op = b[0]; m.htype = b[1]; m.hlen = b[2]; m.hops = b[3]
        m.xid = Frames.u32(b, 4)
        m.secs = Frames.u16(b, 8)
        m.flags = Frames.u16(b, 10)
        m.ciaddr = IPv4Address(Frames.u32(b, 12))
        m.yiaddr = IPv4Address(Frames.u32(b, 16))
        m.siaddr = IPv4Address(Frames.u32(b, 20))
        m.giaddr = IPv4Address(Frames.u32(b, 24))
        m.chaddr = Array(b[28..<44])
        if let e = scan(b, 240..<b.count, into: &m.options) { return .failure(e) }
        // Option overload (52): more options in the file and/or sname fields.
        if let overload = m.options[52] {
            guard overload.count == 1, (1...3).contains(overload[0]) else { return .failure(.badOverload(overload.first ?? 0)) }
            if overload[0] & 1 != 0, let e = scan(b, 108..<236, into: &m.options) { return .failure(e) }
            if overload[0] & 2 != 0, let e = scan(b, 44..<108, into: &m.options) { return .failure(e) }
        }
        let fixed: [UInt8: ClosedRange<Int>] = [53: 1...1, 50: 4...4, 54: 4...4, 57: 2...2, 61: 2...255, 55: 1...255]
        for (code, range) in fixed {
            if let d = m.options[code], !range.contains(d.count) { return .failure(.badOptionLength(code: code, length: d.count)) }
        }
        guard let t = m.options[53]?.first else { return .failure(.noMessageType) }
        switch MessageType(rawValue: t) {
        case .discover, .request, .decline, .release, .inform: return .success(m)
        default: return .failure(.notAClientMessage(t))
        }
    }

    /// Options of one region, up to and including the end option (which must be there).
    static func scan(_ b: [UInt8], _ region: Range<Int>, into options: inout [UInt8: [UInt8]]) -> ParseError? {
        var i = region.lowerBound
        while i < region.upperBound {
            let code = b[i]
            if code == 0 { i += 1; continue }
            if code == 255 { return nil }
            guard i + 1 < region.upperBound else { return .optionPastEnd(code: code) }
            let length = Int(b[i + 1])
            guard i + 2 + length <= region.upperBound else { return .optionPastEnd(code: code) }
            options[code, default: []] += b[(i + 2)..<(i + 2 + length)]
            i += 2 + length
        }
        return .noEndOption
    }

    /// The reply's bytes: op BOOTREPLY, hops and secs 0, the other fields as set, the magic cookie, `options`
    /// in the given order (each split into 255-byte pieces when longer, RFC 3396), the
    /// end option, padded to the 300 bytes BOOTP clients expect (RFC 1542).
    public func encodeReply(options ordered: [(UInt8, [UInt8])]) -> [UInt8] {
        var b: [UInt8] = [2, htype, hlen, 0]
        Frames.put32(xid, into: &b)
        Frames.put16(0, into: &b)  // secs: 0 in replies (RFC 2131 table 3)
        Frames.put16(flags, into: &b)
        for a in [ciaddr, yiaddr, siaddr, giaddr] { Frames.put32(a.value, into: &b) }
        b += chaddr.prefix(16) + [UInt8](repeating: 0, count: max(0, 16 - chaddr.count))
        b += [UInt8](repeating: 0, count: 64 + 128)
        b += Self.magicCookie
        for (code, data) in ordered {
            var rest = data[...]
            repeat {
                let piece = rest.prefix(255)
                b += [code, UInt8(piece.count)] + piece
                rest = rest.dropFirst(piece.count)
            } while !rest.isEmpty
        }
        b.append(255)
        if b.count < 300 { b += [UInt8](repeating: 0, count: 300 - b.count) }
        return b
    }
}

/// Encodings of the option values the server sends.
enum DHCPv4Options {
    /// RFC 3442 classless static routes: width, the significant octets of the
    /// destination, the router.
    static func classlessRoutes(_ routes: [(IPv4Prefix, IPv4Address)]) -> [UInt8] {
        var out: [UInt8] = []
        for (prefix, router) in routes {
            out.append(UInt8(prefix.length))
            out += prefix.address.octets.prefix((prefix.length + 7) / 8)
            out += router.octets
        }
        return out
    }

    /// 169.254.0.1/32 on-link (router 0.0.0.0), then the default route via 169.254.0.1.
    static let gatewayRoutes: [UInt8] = classlessRoutes([
        (IPv4Prefix(address: .gateway, length: 32), IPv4Address(0)),
        (IPv4Prefix(address: IPv4Address(0), length: 0), .gateway),
    ])

    /// A domain name as option 15 carries it: the ASCII text, no terminator.
    static func domainName(_ d: String) -> [UInt8] { Array(d.utf8.prefix(255)) }
}
