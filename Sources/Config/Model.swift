// The typed configuration that `SluiceConfig.parse` produces. Every value here
// has been range-checked; defaults are filled in.

/// How packet buffer memory is obtained.
public enum HugepageMode: String, Sendable, CaseIterable {
    /// Hugepages if the host has them, normal pages (with a warning) if not.
    case auto
    /// Hugepages or fail.
    case on
    /// Normal pages only.
    case off
}

/// The `[dataplane]` section: runtime knobs (the command line may override
/// `cores` and `poll`).
public struct DataplaneConfig: Equatable, Sendable {
    public static let defaultSocketDir = "/run/sluice"
    public static let defaultInstance = "sluice"
    public static let maxPoll: UInt32 = 1_000_000

    /// Worker cores; nil when the file does not name them.
    public var cores: CoreSet?
    /// Line of the `cores` key, for later errors such as "core 7 is offline".
    public var coresLine: Int?
    /// Poll interval in microseconds (0 = busy poll); nil = event mode.
    public var poll: UInt32?
    public var hugepages: HugepageMode
    /// Absolute directory that relative socket paths resolve against.
    public var socketDir: String
    /// `state-dir`: where leases persist; nil = `stateDirectory`'s default.
    public var stateDir: String?
    /// The state directory in effect: `state-dir`, or `<socket-dir>-state` beside the sockets.
    public var stateDirectory: String { stateDir ?? socketDir + "-state" }
    /// Names the shared-memory stats segment.
    public var instance: String
    /// Owner, group and mode of every server-mode socket (a port may override each).
    public var socketAccess: SocketAccess

    public init(
        cores: CoreSet? = nil,
        coresLine: Int? = nil,
        poll: UInt32? = nil,
        hugepages: HugepageMode = .auto,
        socketDir: String = DataplaneConfig.defaultSocketDir,
        instance: String = DataplaneConfig.defaultInstance,
        socketAccess: SocketAccess = SocketAccess()
    ) {
        self.cores = cores
        self.coresLine = coresLine
        self.poll = poll
        self.hugepages = hugepages
        self.socketDir = socketDir
        self.instance = instance
        self.socketAccess = socketAccess
    }

    /// True if `name` is a usable stats instance name: 1 to 32 of
    /// `A-Z a-z 0-9 _ -`. The `instance` key is checked with it, and so can
    /// be a name given on the command line.
    public static func isValidInstance(_ name: String) -> Bool {
        isValidInstanceName(name)
    }
}

public enum PortType: String, Sendable, CaseIterable {
    /// A VM's virtio-net device over a vhost-user unix socket.
    case vhostUser = "vhost-user"
    /// A tap device that sluice creates: the host kernel's side.
    case tap
    /// An existing host interface, attached with an AF_PACKET socket.
    case afPacket = "af-packet"
}

/// Who listens on a vhost-user socket.
public enum PortMode: String, Sendable, CaseIterable {
    /// Sluice listens; the VM connects.
    case server
    /// Sluice connects (and reconnects) to a socket the VM listens on.
    case client
}

/// VLANs a trunk port carries.
public struct VLANSet: Equatable, Sendable {
    /// Usable VLAN IDs (0 and 4095 are reserved).
    public static let vlanRange = 1...4094

    /// `trunk = all`: every VLAN in 1...4094.
    public var all: Bool
    /// Sorted, unique, each in 1...4094; empty when `all`.
    public var ids: [Int]

    /// Sorts `ids` and drops duplicates and IDs outside 1...4094; `all`
    /// ignores `ids`.
    public init(all: Bool, ids: [Int]) {
        self.all = all
        self.ids = all ? [] : Array(Set(ids.filter { VLANSet.vlanRange.contains($0) })).sorted()
    }

    public func contains(_ vlan: Int) -> Bool {
        if all { return VLANSet.vlanRange.contains(vlan) }
        // Binary search: `ids` is sorted.
        var low = 0
        var high = ids.count
        while low < high {
            let middle = (low + high) / 2
            if ids[middle] < vlan {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low < ids.count && ids[low] == vlan
    }
}

/// A `[port NAME]` section.
public struct PortConfig: Equatable, Sendable {
    public static let defaultQueueSize = 256
    public static let maxQueueSize = 32768
    public static let defaultQueues = 1
    public static let maxQueues = 16
    public static let defaultDsMax = 8
    public static let maxDsMax = 32
    public static let defaultMTU = 1500
    public static let mtuRange = 68...9000
    public static let maxMACsRange = 1...1_000_000
    /// Frames per second.
    public static let floodLimitRange = 1...100_000_000

    public var name: String
    /// Line of the `[port NAME]` header.
    public var line: Int
    public var type: PortType
    /// vhost-user only: absolute socket path (relative ones resolved against `socket-dir`).
    public var socket: String?
    /// Line of the `socket` key.
    public var socketLine: Int?
    /// vhost-user server mode only: owner, group and mode of the socket file
    /// (the port's keys over the `[dataplane]` defaults); empty otherwise.
    public var socketAccess: SocketAccess
    public var mode: PortMode
    /// Unicast MAC to offer the guest; nil = let the guest choose.
    public var mac: MACAddress?
    /// On a port of a `[network]`: static addresses and routed prefixes.
    public var addressing = PortAddressing()
    /// Descriptors per virtqueue: a power of two, 1...32768.
    public var queueSize: Int
    /// Queue pairs offered, 1...16.
    public var queues: Int
    /// Guest memory regions a client may register, 1...32.
    public var dsMax: Int
    public var mtu: Int
    /// tap: the device to create; af-packet: the host interface to attach to.
    public var interface: String?

    // Switch ports only (an error on a port of a p2p link).

    /// Access port: untagged frames belong to this VLAN, 1...4094.
    public var vlan: Int?
    /// Trunk port: the tagged VLANs it carries. Never set together with `vlan`.
    public var trunk: VLANSet?
    /// Trunk port: the VLAN of its untagged frames, one of `trunk`'s (any when `all`); nil = none.
    public var nativeVLAN: Int?
    /// Only `mac` may send from this port; needs `mac`.
    public var macLock: Bool
    /// Most MAC addresses learned on this port; nil = no per-port limit (the
    /// switch's `maxMACs` still applies, and may be smaller).
    public var maxMACs: Int?
    /// Flood limit in frames per second; nil = no limit.
    public var floodLimit: Int?
    /// Monitor port: receives copies of the switch's traffic and is not a
    /// forwarding port. Never set together with `vlan`, `trunk` or `macLock`.
    public var monitor: Bool

    /// The VLAN of an access port: `vlan`, or 1 for a port with neither `vlan` nor `trunk`.
    public var accessVLAN: Int { vlan ?? 1 }

    public init(
        name: String,
        line: Int,
        type: PortType,
        socket: String? = nil,
        mode: PortMode = .server,
        mac: MACAddress? = nil,
        queueSize: Int = PortConfig.defaultQueueSize,
        queues: Int = PortConfig.defaultQueues,
        dsMax: Int = PortConfig.defaultDsMax,
        mtu: Int = PortConfig.defaultMTU,
        interface: String? = nil,
        vlan: Int? = nil,
        trunk: VLANSet? = nil,
        nativeVLAN: Int? = nil,
        macLock: Bool = false,
        maxMACs: Int? = nil,
        floodLimit: Int? = nil,
        monitor: Bool = false,
        socketLine: Int? = nil,
        socketAccess: SocketAccess = SocketAccess()
    ) {
        self.name = name
        self.line = line
        self.type = type
        self.socket = socket
        self.mode = mode
        self.mac = mac
        self.queueSize = queueSize
        self.queues = queues
        self.dsMax = dsMax
        self.mtu = mtu
        self.interface = interface
        self.vlan = vlan
        self.trunk = trunk
        self.nativeVLAN = nativeVLAN
        self.macLock = macLock
        self.maxMACs = maxMACs
        self.floodLimit = floodLimit
        self.monitor = monitor
        self.socketLine = socketLine
        self.socketAccess = socketAccess
    }
}

/// A `[p2p NAME]` section: two ports joined with nothing in between.
public struct P2PConfig: Equatable, Sendable {
    public var name: String
    /// Line of the `[p2p NAME]` header.
    public var line: Int
    public var a: String
    public var b: String

    public init(name: String, line: Int, a: String, b: String) {
        self.name = name
        self.line = line
        self.a = a
        self.b = b
    }

    /// The two port names, in the order the file lists them.
    public var ports: (String, String) { (a, b) }
}

/// A `[switch NAME]` section: a learning L2 switch.
public struct SwitchConfig: Equatable, Sendable {
    public static let defaultAging = 300
    /// 0 = learned MACs never age out.
    public static let agingRange = 0...86400
    public static let defaultMaxMACs = 4096
    public static let maxMACsRange = 1...1_000_000

    public var name: String
    /// Line of the `[switch NAME]` header.
    public var line: Int
    /// Port names in the order the file lists them.
    public var ports: [String]
    /// Seconds a learned MAC stays in the table without being seen; 0 = forever.
    public var aging: Int
    /// Size of the MAC table: most addresses learned over all ports.
    public var maxMACs: Int

    public init(
        name: String, line: Int, ports: [String], aging: Int = SwitchConfig.defaultAging,
        maxMACs: Int = SwitchConfig.defaultMaxMACs
    ) {
        self.name = name
        self.line = line
        self.ports = ports
        self.aging = aging
        self.maxMACs = maxMACs
    }
}
