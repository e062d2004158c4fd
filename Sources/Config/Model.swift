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
    /// Names the shared-memory stats segment.
    public var instance: String

    public init(
        cores: CoreSet? = nil,
        coresLine: Int? = nil,
        poll: UInt32? = nil,
        hugepages: HugepageMode = .auto,
        socketDir: String = DataplaneConfig.defaultSocketDir,
        instance: String = DataplaneConfig.defaultInstance
    ) {
        self.cores = cores
        self.coresLine = coresLine
        self.poll = poll
        self.hugepages = hugepages
        self.socketDir = socketDir
        self.instance = instance
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

    public var name: String
    /// Line of the `[port NAME]` header.
    public var line: Int
    public var type: PortType
    /// vhost-user only: absolute socket path (relative ones resolved against `socket-dir`).
    public var socket: String?
    public var mode: PortMode
    /// Unicast MAC to offer the guest; nil = let the guest choose.
    public var mac: MACAddress?
    /// Descriptors per virtqueue: a power of two, 1...32768.
    public var queueSize: Int
    /// Queue pairs offered, 1...16.
    public var queues: Int
    /// Guest memory regions a client may register, 1...32.
    public var dsMax: Int
    public var mtu: Int
    /// tap: the device to create; af-packet: the host interface to attach to.
    public var interface: String?

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
        interface: String? = nil
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
    public static let agingRange = 1...86400

    public var name: String
    /// Line of the `[switch NAME]` header.
    public var line: Int
    /// Port names in the order the file lists them.
    public var ports: [String]
    /// Seconds a learned MAC stays in the table without being seen.
    public var aging: Int

    public init(name: String, line: Int, ports: [String], aging: Int = SwitchConfig.defaultAging) {
        self.name = name
        self.line = line
        self.ports = ports
        self.aging = aging
    }
}
