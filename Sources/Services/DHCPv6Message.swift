import Config

/// DHCPv6 (RFC 8415) message codec: the client messages the server accepts, taken apart
/// with every length checked, and the options the server writes.
public enum DHCPv6 {
    // Message types (RFC 8415 §7.3).
    public static let solicit: UInt8 = 1, advertise: UInt8 = 2, request: UInt8 = 3, confirm: UInt8 = 4
    public static let renew: UInt8 = 5, rebind: UInt8 = 6, reply: UInt8 = 7, release: UInt8 = 8
    public static let decline: UInt8 = 9, informationRequest: UInt8 = 11

    // Option codes (RFC 8415 §21, RFC 3646).
    public static let optClientID: UInt16 = 1, optServerID: UInt16 = 2, optIANA: UInt16 = 3, optIATA: UInt16 = 4
    public static let optIAAddr: UInt16 = 5, optORO: UInt16 = 6, optPreference: UInt16 = 7
    public static let optElapsedTime: UInt16 = 8, optStatusCode: UInt16 = 13, optRapidCommit: UInt16 = 14
    public static let optDNSServers: UInt16 = 23, optDomainList: UInt16 = 24, optIAPD: UInt16 = 25

    // Status codes (RFC 8415 §21.13).
    public static let success: UInt16 = 0, noAddrsAvail: UInt16 = 2, noBinding: UInt16 = 3
    public static let notOnLink: UInt16 = 4, useMulticast: UInt16 = 5, noPrefixAvail: UInt16 = 6

    /// ff02::1:2, All_DHCP_Relay_Agents_and_Servers.
    public static let allServers = IPv6Address(high: 0xff02_0000_0000_0000, low: 0x1_0002)
    public static let serverPort: UInt16 = 547
    public static let clientPort: UInt16 = 546

    /// At most this many IA options (IA_NA, IA_TA, IA_PD together) in a message, and
    /// addresses in one IA: real clients send one or two; more is refused as malformed so a
    /// reply always fits in one frame.
    public static let maxIAs = 4
    public static let maxAddressesPerIA = 4
    /// A DUID is at most 130 bytes (RFC 8415 §11.1) and has at least its 2-byte type.
    public static let duidLengths = 2...130

    /// One option: its code and the byte range of its data.
    public struct Option: Sendable, Equatable {
        public var code: UInt16
        public var data: Range<Int>
    }

    /// Options from `range` of `b`: nil when an option header or its data runs past the end.
    public static func options(_ b: [UInt8], _ range: Range<Int>) -> [Option]? {
        var out: [Option] = []
        var i = range.lowerBound
        while i < range.upperBound {
            guard range.upperBound - i >= 4 else { return nil }
            let code = Frames.u16(b, i), length = Int(Frames.u16(b, i + 2))
            guard length <= range.upperBound - i - 4 else { return nil }
            out.append(Option(code: code, data: (i + 4)..<(i + 4 + length)))
            i += 4 + length
        }
        return out
    }

    /// An IA_NA (or IA_TA / IA_PD) as a client sent it.
    public struct IA: Sendable, Equatable {
        public var code: UInt16
        public var iaid: UInt32
        /// IAADDR addresses inside (IA_NA and IA_TA only).
        public var addresses: [IPv6Address]
    }

    /// A client message taken apart. Option presence rules of RFC 8415 §16 are left to
    /// the server; this only guarantees that every length adds up.
    public struct Message: Sendable, Equatable {
        public var type: UInt8
        public var transactionID: (UInt8, UInt8, UInt8)
        public var clientID: [UInt8]?
        public var serverID: [UInt8]?
        public var rapidCommit: Bool
        public var ias: [IA]

        public static func == (a: Message, b: Message) -> Bool {
            a.type == b.type && a.transactionID == b.transactionID && a.clientID == b.clientID
                && a.serverID == b.serverID && a.rapidCommit == b.rapidCommit && a.ias == b.ias
        }

        /// Why a message was refused (for tests and logs).
        public enum Malformed: Error, Equatable {
            case truncated, optionPastEnd, duplicate(UInt16), badLength(UInt16), tooMany(UInt16)
        }

        /// Parses the UDP payload of a client message.
        public init(_ b: [UInt8], _ range: Range<Int>) throws(Malformed) {
            guard range.count >= 4 else { throw .truncated }
            let s = range.lowerBound
            type = b[s]
            transactionID = (b[s + 1], b[s + 2], b[s + 3])
            guard let opts = DHCPv6.options(b, (s + 4)..<range.upperBound) else { throw .optionPastEnd }
            clientID = nil
            serverID = nil
            rapidCommit = false
            ias = []
            for o in opts {
                switch o.code {
                case optClientID, optServerID:
                    guard duidLengths.contains(o.data.count) else { throw .badLength(o.code) }
                    let duid = Array(b[o.data])
                    if o.code == optClientID {
                        guard clientID == nil else { throw .duplicate(o.code) }
                        clientID = duid
                    } else {
                        guard serverID == nil else { throw .duplicate(o.code) }
                        serverID = duid
                    }
                case optRapidCommit:
                    guard o.data.isEmpty else { throw .badLength(o.code) }
                    rapidCommit = true
                case optIANA, optIAPD, optIATA:
                    // IA_NA and IA_PD: IAID, T1, T2 (12 bytes); IA_TA: IAID (4).
                    let fixed = o.code == optIATA ? 4 : 12
                    guard o.data.count >= fixed else { throw .badLength(o.code) }
                    guard ias.count < maxIAs else { throw .tooMany(o.code) }
                    guard let inner = DHCPv6.options(b, (o.data.lowerBound + fixed)..<o.data.upperBound) else {
                        throw .optionPastEnd
                    }
                    var addresses: [IPv6Address] = []
                    for a in inner where a.code == optIAAddr && o.code != optIAPD {
                        // Address, preferred and valid lifetimes, then options of its own.
                        guard a.data.count >= 24 else { throw .badLength(optIAAddr) }
                        guard DHCPv6.options(b, (a.data.lowerBound + 24)..<a.data.upperBound) != nil else {
                            throw .optionPastEnd
                        }
                        guard addresses.count < maxAddressesPerIA else { throw .tooMany(optIAAddr) }
                        addresses.append(IPv6Address(bytes: Array(b[a.data.lowerBound..<(a.data.lowerBound + 16)]))!)
                    }
                    ias.append(IA(code: o.code, iaid: Frames.u32(b, o.data.lowerBound), addresses: addresses))
                case optElapsedTime:
                    guard o.data.count == 2 else { throw .badLength(o.code) }
                case optORO:
                    guard o.data.count % 2 == 0 else { throw .badLength(o.code) }
                default:
                    break  // Unknown options are ignored (RFC 8415 §16).
                }
            }
        }
    }

    // MARK: Building

    /// Appends option `code` with `data`.
    static func put(_ code: UInt16, _ data: [UInt8], into out: inout [UInt8]) {
        Frames.put16(code, into: &out)
        Frames.put16(UInt16(data.count), into: &out)
        out += data
    }

    /// A Status Code option's data: the code and a short UTF-8 message.
    static func status(_ code: UInt16, _ text: String) -> [UInt8] {
        var d: [UInt8] = []
        Frames.put16(code, into: &d)
        return d + Array(text.utf8)
    }

    /// An IAADDR option (whole, header included) with lifetimes and no options.
    static func iaAddress(_ a: IPv6Address, preferred: UInt32, valid: UInt32) -> [UInt8] {
        var d = a.bytes
        Frames.put32(preferred, into: &d)
        Frames.put32(valid, into: &d)
        var o: [UInt8] = []
        put(optIAAddr, d, into: &o)
        return o
    }

    /// An IA option (IA_NA / IA_PD: IAID, T1, T2; IA_TA: IAID) around `inner` options.
    static func ia(_ code: UInt16, iaid: UInt32, t1: UInt32, t2: UInt32, inner: [UInt8]) -> [UInt8] {
        var d: [UInt8] = []
        Frames.put32(iaid, into: &d)
        if code != optIATA {
            Frames.put32(t1, into: &d)
            Frames.put32(t2, into: &d)
        }
        var o: [UInt8] = []
        put(code, d + inner, into: &o)
        return o
    }

    /// A domain name in DNS wire format (RFC 1035 §3.1), one trailing dot allowed;
    /// nil when a label is empty or longer than 63 bytes, or the name longer than 255.
    public static func dnsName(_ name: String) -> [UInt8]? {
        var text = Array(name.utf8)
        if text.last == UInt8(ascii: ".") { text.removeLast() }
        guard !text.isEmpty else { return nil }
        var out: [UInt8] = []
        for label in text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard (1...63).contains(label.count) else { return nil }
            out.append(UInt8(label.count))
            out += label
        }
        out.append(0)
        return out.count <= 255 ? out : nil
    }

    /// DUID-LL (RFC 8415 §11.4) of an Ethernet MAC: type 3, hardware type 1, the MAC.
    public static func duidLL(_ mac: MACAddress) -> [UInt8] { [0, 3, 0, 1] + mac.octets }
}
