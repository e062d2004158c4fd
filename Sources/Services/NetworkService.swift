import Config

/// What the control-plane services of one `[network]` (DHCPv4, DHCPv6, router
/// advertisements, neighbour discovery) need to know. Built by the engine from the
/// config; the services never read the config themselves.
public struct NetworkServiceConfig: Sendable, Equatable {
    public var name: String
    /// Addresses handed out, a /32 each.
    public var ipv4Subnet: IPv4Prefix?
    /// Addresses handed out, a /128 each.
    public var ipv6Prefix: IPv6Prefix?
    public var dns4: [IPv4Address]
    public var dns6: [IPv6Address]
    public var domain: String?
    /// Seconds.
    public var leaseTime: UInt32
    /// The MTU every port of the network has (DHCPv4 option 26, the RA's MTU option).
    public var mtu: Int
    /// The one MAC the router answers with, on every port of the network.
    public var routerMAC: MACAddress

    public init(name: String, ipv4Subnet: IPv4Prefix? = nil, ipv6Prefix: IPv6Prefix? = nil,
                dns4: [IPv4Address] = [], dns6: [IPv6Address] = [], domain: String? = nil,
                leaseTime: UInt32 = 86400, mtu: Int = 1500, routerMAC: MACAddress) {
        self.name = name
        self.ipv4Subnet = ipv4Subnet
        self.ipv6Prefix = ipv6Prefix
        self.dns4 = dns4
        self.dns6 = dns6
        self.domain = domain
        self.leaseTime = leaseTime
        self.mtu = mtu
        self.routerMAC = routerMAC
    }

    /// The router's global addresses: the first address of each range is never handed
    /// out (it names the router in NDP answers and DHCPv6 server identifiers).
    public var routerIPv6Global: IPv6Address? {
        ipv6Prefix.map { IPv6Address(high: $0.address.high, low: $0.address.low | 1) }
    }
}

/// One port of a network as the services see it.
public struct ServicePort: Sendable, Equatable {
    public var name: String
    /// The MAC bound to the port: configured, or the first source MAC seen after connect.
    /// nil while nothing is bound yet (then any source MAC may ask, and gets bound).
    public var mac: MACAddress?
    public var staticIPv4: IPv4Address?
    public var staticIPv6: IPv6Address?

    public init(name: String, mac: MACAddress? = nil, staticIPv4: IPv4Address? = nil, staticIPv6: IPv6Address? = nil) {
        self.name = name
        self.mac = mac
        self.staticIPv4 = staticIPv4
        self.staticIPv6 = staticIPv6
    }
}

/// What a service tells the router after answering: an address now belongs to a port
/// (routing and anti-spoofing start to accept it) or no longer does.
public enum AddressEvent: Sendable, Equatable {
    case bound4(port: String, mac: MACAddress, address: IPv4Address)
    case released4(port: String, mac: MACAddress, address: IPv4Address)
    case bound6(port: String, mac: MACAddress, address: IPv6Address)
    case released6(port: String, mac: MACAddress, address: IPv6Address)
}

/// A service's answer to one frame: the frame to send back on the same port (a whole
/// Ethernet frame, no virtio header), the counter to bump (`dhcp4.offer`, `nd.adverts`,
/// …, relative to `network.<name>.`), and an address change for the router.
public struct ServiceReply: Sendable, Equatable {
    public var frame: [UInt8]?
    public var counters: [String]
    public var events: [AddressEvent]

    public init(frame: [UInt8]? = nil, counters: [String] = [], events: [AddressEvent] = []) {
        self.frame = frame
        self.counters = counters
        self.events = events
    }

    /// Nothing to send, nothing to count (not for this service).
    public static let none = ServiceReply()
}
