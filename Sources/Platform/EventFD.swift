#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// eventfd helpers: kicks, calls and wake-ups are plain fds passed around as Int32.
public enum EventFD {
    public static func create(nonBlocking: Bool = true) throws(SystemError) -> Int32 {
        let fd = sl_eventfd(0, nonBlocking ? 1 : 0)
        if fd < 0 { throw SystemError("eventfd") }
        return fd
    }

    /// Signal the eventfd (add 1). Never blocks on a non-blocking fd.
    @inline(__always)
    public static func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    /// Drain the eventfd; returns the count read (0 if nothing was pending).
    @inline(__always)
    @discardableResult
    public static func drain(_ fd: Int32) -> UInt64 {
        var v: UInt64 = 0
        let n = Glibc.read(fd, &v, 8)
        return n == 8 ? v : 0
    }
}
