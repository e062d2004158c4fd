#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// A tap interface (Ethernet frames, no packet-information prefix) owned by the
/// control plane. The fd closes when the owner goes away; a tap this process
/// created (not persistent) disappears with it.
public struct TapDevice: ~Copyable {
    public let name: String
    /// False when `open` attached to a tap that already existed (e.g. a persistent one).
    public let created: Bool
    private let fd: Int32
    /// Queues 1..<n of a multiqueue tap (IFF_MULTI_QUEUE): one more fd each.
    private let extra: [Int32]

    /// The worker's view of queue 0: frame reads and writes on the fd.
    public var io: TapIO { TapIO(fd: fd) }

    /// Queues (fds) of this tap.
    public var queueCount: Int { 1 + extra.count }

    /// The worker's view of queue `q`.
    public func io(queue q: Int) -> TapIO { q == 0 ? TapIO(fd: fd) : TapIO(fd: extra[q - 1]) }

    private init(name: String, created: Bool, fd: Int32, extra: [Int32] = []) {
        self.name = name
        self.created = created
        self.fd = fd
        self.extra = extra
    }

    /// Create (or attach to an existing) tap `name`: IFF_TAP | IFF_NO_PI, non-blocking,
    /// close-on-exec; set its MTU when given, then bring it up (IFF_UP).
    public static func open(name: String, mtu: Int?) throws(SystemError) -> TapDevice {
        try open(name: name, mtu: mtu, queues: 1)
    }

    /// As `open(name:mtu:)`; with `queues` > 1 a multiqueue tap (IFF_MULTI_QUEUE), one fd
    /// per queue: the kernel spreads the frames it sends over the queues by flow.
    public static func open(name: String, mtu: Int?, queues: Int) throws(SystemError) -> TapDevice {
        let mq: Int16 = queues > 1 ? sl_tun_multi_queue_flag() : 0
        guard NetInterface.validName(name) else {
            throw SystemError("tap '\(name)': invalid interface name (1 to \(IFNAMSIZ - 1) bytes)", errno: EINVAL)
        }
        let fd = Glibc.open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 { throw SystemError("tap '\(name)': open(/dev/net/tun)") }
        // First ask for a new device only (IFF_TUN_EXCL → EBUSY if the name is taken),
        // so `created` is exact; then attach to the existing one.
        var created = true
        var req = ifreq()
        _ = sl_ifreq_init(&req, name)
        sl_ifreq_set_flags(&req, sl_tun_tap_flags() | sl_tun_excl_flag() | mq)
        if ioctl(fd, sl_ioctl_tunsetiff(), &req) != 0 {
            var e = Glibc.errno
            if e == EBUSY {
                created = false
                _ = sl_ifreq_init(&req, name)
                sl_ifreq_set_flags(&req, sl_tun_tap_flags() | mq)
                if ioctl(fd, sl_ioctl_tunsetiff(), &req) == 0 { e = 0 } else { e = Glibc.errno }
            }
            if e != 0 {
                closeFD(fd)
                let hint = e == EBUSY ? " (another process has it open)" : e == EINVAL ? " (an existing interface that is not a tap?)" : ""
                throw SystemError("tap '\(name)': ioctl(TUNSETIFF)\(hint)", errno: e)
            }
        }
        var extra: [Int32] = []
        for _ in 1..<max(1, queues) {
            let q = Glibc.open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
            var r = ifreq()
            _ = sl_ifreq_init(&r, name)
            sl_ifreq_set_flags(&r, sl_tun_tap_flags() | mq)
            if q < 0 || ioctl(q, sl_ioctl_tunsetiff(), &r) != 0 {
                let e = Glibc.errno
                if q >= 0 { closeFD(q) }
                for f in extra { closeFD(f) }
                closeFD(fd)
                throw SystemError("tap '\(name)': queue \(extra.count + 1): TUNSETIFF(IFF_MULTI_QUEUE)", errno: e)
            }
            extra.append(q)
        }
        let device = TapDevice(name: name, created: created, fd: fd, extra: extra)
        if let mtu { try NetInterface.setMTU(name, mtu) }
        try NetInterface.setUp(name)
        return device
    }

    deinit {
        for f in extra { closeFD(f) }
        closeFD(fd)
    }
}

/// The worker's view of a tap fd. Copy it to the one thread that polls the tap;
/// the owning `TapDevice` must outlive every copy.
@frozen
public struct TapIO: BitwiseCopyable, @unchecked Sendable {
    public let fd: Int32

    @inlinable
    public init(fd: Int32) { self.fd = fd }

    /// Read one frame into `buffer` (`capacity` bytes; a longer frame is cut to it).
    /// Returns its length, 0 when nothing is waiting, -1 on another error
    /// (e.g. EIO while the interface is down).
    @inlinable
    public func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let n = Glibc.read(fd, buffer, capacity)
        if n >= 0 { return n }
        let e = Glibc.errno
        return e == EAGAIN || e == EINTR ? 0 : -1
    }

    /// Write one frame; false when the kernel refused it (EAGAIN, ENOBUFS, EIO, ...).
    @inlinable
    public func write(_ frame: UnsafeRawPointer, length: Int) -> Bool {
        Glibc.write(fd, frame, length) == length
    }
}
