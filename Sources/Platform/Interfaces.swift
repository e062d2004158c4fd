#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// Network interface queries and settings by name (control plane; each call opens
/// a short-lived AF_INET datagram socket for the SIOC*IF* ioctls).
public enum NetInterface {
    /// The interface index, or nil when no interface has that name.
    public static func index(_ name: String) -> Int32? {
        let i = if_nametoindex(name)
        return i == 0 ? nil : Int32(bitPattern: i)
    }

    /// True when the interface is administratively up (IFF_UP) and operationally
    /// running (IFF_RUNNING: the kernel's "oper up", i.e. it has a carrier and is
    /// not dormant). IFF_LOWER_UP is not used: SIOCGIFFLAGS returns 16 bits only.
    public static func isUp(_ name: String) -> Bool {
        guard let flags = try? flags(name) else { return false }
        let want = sl_iff_up() | sl_iff_running()
        return flags & want == want
    }

    /// Set IFF_UP (like `ip link set NAME up`).
    public static func setUp(_ name: String) throws(SystemError) {
        let current = try flags(name)
        if current & sl_iff_up() != 0 { return }
        try withRequest(name, sl_ioctl_siocsifflags(), "SIOCSIFFLAGS(IFF_UP)",
                        before: { sl_ifreq_set_flags($0, current | sl_iff_up()) })
    }

    /// The MTU, or nil when the interface does not exist.
    public static func mtu(_ name: String) -> Int? {
        var mtu = -1
        do {
            try withRequest(name, sl_ioctl_siocgifmtu(), "SIOCGIFMTU", after: { mtu = Int(sl_ifreq_mtu($0)) })
        } catch { return nil }
        return mtu
    }

    public static func setMTU(_ name: String, _ mtu: Int) throws(SystemError) {
        guard mtu > 0, mtu <= Int(Int32.max) else { throw SystemError("interface '\(name)': MTU \(mtu)", errno: EINVAL) }
        try withRequest(name, sl_ioctl_siocsifmtu(), "SIOCSIFMTU(\(mtu))",
                        before: { sl_ifreq_set_mtu($0, Int32(mtu)) })
    }

    /// The interface flags (SIOCGIFFLAGS).
    static func flags(_ name: String) throws(SystemError) -> Int16 {
        var flags: Int16 = 0
        try withRequest(name, sl_ioctl_siocgifflags(), "SIOCGIFFLAGS", after: { flags = sl_ifreq_flags($0) })
        return flags
    }

    /// The error for a name that no interface has, or that cannot be one.
    static func missing(_ name: String) -> SystemError {
        SystemError("interface '\(name)' does not exist", errno: ENODEV)
    }

    static func validName(_ name: String) -> Bool {
        let n = name.utf8.count
        return n > 0 && n < Int(IFNAMSIZ) && !name.utf8.contains(0) && !name.utf8.contains(UInt8(ascii: "/"))
    }

    /// One ioctl on an ifreq naming `name`: `before` fills the request, `after` reads the answer.
    private static func withRequest(_ name: String, _ request: UInt, _ what: String,
                                    before: (UnsafeMutablePointer<ifreq>) -> Void = { _ in },
                                    after: (UnsafeMutablePointer<ifreq>) -> Void = { _ in }) throws(SystemError) {
        guard validName(name) else { throw SystemError("interface '\(name)': invalid name", errno: EINVAL) }
        let sock = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if sock < 0 { throw SystemError("socket(AF_INET) for \(what) on '\(name)'") }
        defer { closeFD(sock) }
        var req = ifreq()
        _ = sl_ifreq_init(&req, name)
        before(&req)
        if ioctl(sock, request, &req) != 0 {
            let e = Glibc.errno
            if e == ENODEV { throw missing(name) }
            throw SystemError("\(what) on '\(name)'", errno: e)
        }
        after(&req)
    }
}
