import Config

/// An untagged Ethernet frame taken apart as far as the services need: Ethernet,
/// IPv4 or IPv6 (no extension headers), then UDP or ICMPv6. Every length is checked
/// against the bytes present; anything that does not add up gives nil.
public struct ParsedFrame: Sendable {
    public enum Network: Sendable, Equatable {
        case ipv4(src: IPv4Address, dst: IPv4Address, ttl: UInt8)
        case ipv6(src: IPv6Address, dst: IPv6Address, hopLimit: UInt8)
    }
    public enum Transport: Sendable, Equatable {
        /// Ports and the payload's byte range in `bytes`.
        case udp(srcPort: UInt16, dstPort: UInt16, payload: Range<Int>)
        /// Type, code and the message from its type byte on (checksum verified).
        case icmpv6(type: UInt8, code: UInt8, message: Range<Int>)
        case other(protocol: UInt8)
    }

    public let bytes: [UInt8]
    public let dstMAC: MACAddress
    public let srcMAC: MACAddress
    public let network: Network
    public let transport: Transport

    public init?(_ bytes: [UInt8]) {
        guard bytes.count >= 14 else { return nil }
        self.bytes = bytes
        dstMAC = MACAddress(bytes: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]))
        srcMAC = MACAddress(bytes: (bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11]))
        let type = UInt16(bytes[12]) << 8 | UInt16(bytes[13])
        switch type {
        case 0x0800:
            guard bytes.count >= 34, bytes[14] >> 4 == 4 else { return nil }
            let ihl = Int(bytes[14] & 0x0F) * 4
            let total = Int(Frames.u16(bytes, 16))
            guard ihl >= 20, total >= ihl, 14 + total <= bytes.count,
                  Frames.checksum(bytes[14..<(14 + ihl)]) == 0 else { return nil }
            // Fragments are not for the services (DHCP fits one datagram).
            guard Frames.u16(bytes, 20) & 0x3FFF == 0 else { return nil }
            network = .ipv4(src: IPv4Address(Frames.u32(bytes, 26)), dst: IPv4Address(Frames.u32(bytes, 30)), ttl: bytes[22])
            let l4 = 14 + ihl, end = 14 + total
            if bytes[23] == 17 {
                guard end - l4 >= 8 else { return nil }
                let udpLength = Int(Frames.u16(bytes, l4 + 4))
                guard udpLength >= 8, l4 + udpLength <= end else { return nil }
                transport = .udp(srcPort: Frames.u16(bytes, l4), dstPort: Frames.u16(bytes, l4 + 2),
                                 payload: (l4 + 8)..<(l4 + udpLength))
            } else {
                transport = .other(protocol: bytes[23])
            }
        case 0x86DD:
            guard bytes.count >= 54, bytes[14] >> 4 == 6 else { return nil }
            let payloadLength = Int(Frames.u16(bytes, 18))
            guard 54 + payloadLength <= bytes.count else { return nil }
            let src = IPv6Address(bytes: Array(bytes[22..<38]))!, dst = IPv6Address(bytes: Array(bytes[38..<54]))!
            network = .ipv6(src: src, dst: dst, hopLimit: bytes[21])
            let l4 = 54, end = 54 + payloadLength
            switch bytes[20] {
            case 17:
                guard end - l4 >= 8 else { return nil }
                let udpLength = Int(Frames.u16(bytes, l4 + 4))
                guard udpLength >= 8, l4 + udpLength <= end else { return nil }
                transport = .udp(srcPort: Frames.u16(bytes, l4), dstPort: Frames.u16(bytes, l4 + 2),
                                 payload: (l4 + 8)..<(l4 + udpLength))
            case 58:
                guard end - l4 >= 4,
                      Frames.pseudoChecksum6(src: src, dst: dst, next: 58, body: bytes[l4..<end]) == 0 else { return nil }
                transport = .icmpv6(type: bytes[l4], code: bytes[l4 + 1], message: l4..<end)
            default:
                transport = .other(protocol: bytes[20])
            }
        default:
            return nil
        }
    }

    public var udpPayload: ArraySlice<UInt8>? {
        if case .udp(_, _, let r) = transport { return bytes[r] }
        return nil
    }
}

/// Building the frames the services send, and the Internet checksum.
public enum Frames {
    public static func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
    public static func u32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
    public static func put16(_ v: UInt16, into b: inout [UInt8]) { b.append(UInt8(v >> 8)); b.append(UInt8(v & 0xFF)) }
    public static func put32(_ v: UInt32, into b: inout [UInt8]) {
        b += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    /// The ones' complement sum folded and inverted (0 when a checksummed span is valid).
    public static func checksum<C: Collection>(_ bytes: C, initial: UInt32 = 0) -> UInt16 where C.Element == UInt8 {
        var sum = initial
        var high = true
        for b in bytes {
            sum &+= high ? UInt32(b) << 8 : UInt32(b)
            high.toggle()
        }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(sum)
    }

    static func pseudoSum6(src: IPv6Address, dst: IPv6Address, next: UInt8, length: Int) -> UInt32 {
        var sum: UInt32 = 0
        for word in [src.high, src.low, dst.high, dst.low] {
            for k in 0..<4 { sum &+= UInt32(word >> (48 - 16 * UInt64(k)) & 0xFFFF) }
        }
        return sum &+ UInt32(length >> 16) &+ UInt32(length & 0xFFFF) &+ UInt32(next)
    }

    /// Checksum of an upper-layer body under the IPv6 pseudo-header.
    public static func pseudoChecksum6<C: Collection>(src: IPv6Address, dst: IPv6Address, next: UInt8, body: C) -> UInt16
    where C.Element == UInt8 {
        checksum(body, initial: pseudoSum6(src: src, dst: dst, next: next, length: body.count))
    }

    static func ethernet(dst: MACAddress, src: MACAddress, type: UInt16) -> [UInt8] {
        var f = dst.octets + src.octets
        put16(type, into: &f)
        return f
    }

    /// Ethernet + IPv4 (TTL 64, DF clear) + UDP with its checksum.
    public static func udp4(srcMAC: MACAddress, dstMAC: MACAddress, src: IPv4Address, dst: IPv4Address,
                            srcPort: UInt16, dstPort: UInt16, payload: [UInt8]) -> [UInt8] {
        var f = ethernet(dst: dstMAC, src: srcMAC, type: 0x0800)
        let udpLength = 8 + payload.count
        var ip: [UInt8] = [0x45, 0]
        put16(UInt16(20 + udpLength), into: &ip)
        ip += [0, 0, 0, 0, 64, 17, 0, 0]
        put32(src.value, into: &ip)
        put32(dst.value, into: &ip)
        let ipSum = checksum(ip)
        ip[10] = UInt8(ipSum >> 8); ip[11] = UInt8(ipSum & 0xFF)
        var udp: [UInt8] = []
        put16(srcPort, into: &udp); put16(dstPort, into: &udp); put16(UInt16(udpLength), into: &udp); put16(0, into: &udp)
        udp += payload
        var pseudo: UInt32 = (src.value >> 16) &+ (src.value & 0xFFFF) &+ (dst.value >> 16) &+ (dst.value & 0xFFFF)
        pseudo &+= 17 &+ UInt32(udpLength)
        var sum = checksum(udp, initial: pseudo)
        if sum == 0 { sum = 0xFFFF }
        udp[6] = UInt8(sum >> 8); udp[7] = UInt8(sum & 0xFF)
        return f + ip + udp
    }

    /// Ethernet + IPv6 (`hopLimit`) + `next` with `body`, whose checksum field at
    /// `checksumOffset` (within the body) is filled in.
    public static func ip6(srcMAC: MACAddress, dstMAC: MACAddress, src: IPv6Address, dst: IPv6Address,
                           next: UInt8, hopLimit: UInt8, body: [UInt8], checksumOffset: Int) -> [UInt8] {
        var f = ethernet(dst: dstMAC, src: srcMAC, type: 0x86DD)
        f += [0x60, 0, 0, 0]
        put16(UInt16(body.count), into: &f)
        f += [next, hopLimit]
        f += src.bytes + dst.bytes
        var b = body
        b[checksumOffset] = 0; b[checksumOffset + 1] = 0
        var sum = pseudoChecksum6(src: src, dst: dst, next: next, body: b)
        if next == 17 && sum == 0 { sum = 0xFFFF }
        b[checksumOffset] = UInt8(sum >> 8); b[checksumOffset + 1] = UInt8(sum & 0xFF)
        return f + b
    }

    /// Ethernet + IPv6 + UDP.
    public static func udp6(srcMAC: MACAddress, dstMAC: MACAddress, src: IPv6Address, dst: IPv6Address,
                            srcPort: UInt16, dstPort: UInt16, payload: [UInt8]) -> [UInt8] {
        var udp: [UInt8] = []
        put16(srcPort, into: &udp); put16(dstPort, into: &udp); put16(UInt16(8 + payload.count), into: &udp); put16(0, into: &udp)
        return ip6(srcMAC: srcMAC, dstMAC: dstMAC, src: src, dst: dst, next: 17, hopLimit: 255,
                   body: udp + payload, checksumOffset: 6)
    }

    /// Ethernet + IPv6 (hop limit 255, as NDP requires) + ICMPv6 `message` (type first).
    public static func icmp6(srcMAC: MACAddress, dstMAC: MACAddress, src: IPv6Address, dst: IPv6Address,
                             message: [UInt8]) -> [UInt8] {
        ip6(srcMAC: srcMAC, dstMAC: dstMAC, src: src, dst: dst, next: 58, hopLimit: 255, body: message, checksumOffset: 2)
    }

    /// The Ethernet multicast MAC of an IPv6 multicast address (33:33 + last 4 bytes).
    public static func multicastMAC(_ a: IPv6Address) -> MACAddress {
        MACAddress(bytes: (0x33, 0x33, UInt8(a.low >> 24 & 0xFF), UInt8(a.low >> 16 & 0xFF),
                           UInt8(a.low >> 8 & 0xFF), UInt8(a.low & 0xFF)))
    }

    /// ff02::1, all nodes.
    public static let allNodes = IPv6Address(high: 0xff02_0000_0000_0000, low: 1)
    public static let broadcastMAC = MACAddress(bytes: (0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF))
}
