#if canImport(Glibc)
import Glibc
#endif

/// poll(2) on one fd or a caller-kept set.
public enum Poll {
    public static let readable = Int16(POLLIN)
    public static let writable = Int16(POLLOUT)
    /// POLLRDHUP (a _GNU_SOURCE name Glibc's module does not export).
    public static let peerHangUp: Int16 = 0x2000

    /// Waits up to `timeoutMilliseconds` (-1: forever) for `events` on `fd`,
    /// retrying EINTR (with the whole timeout again). Returns the events that
    /// fired, or nil on time-out.
    public static func wait(_ fd: Int32, for events: Int16, timeoutMilliseconds: Int32) throws(SystemError) -> Int16? {
        var p = pollfd(fd: fd, events: events, revents: 0)
        let r = try retryingEINTR("poll") { Glibc.poll(&p, 1, timeoutMilliseconds) }
        return r == 0 ? nil : p.revents
    }

    /// One poll(2) on `fd`, no retry: the events that fired; 0 on time-out,
    /// EINTR or another error (for waits whose caller only re-checks state).
    @inline(__always)
    public static func once(_ fd: Int32, for events: Int16, timeoutMilliseconds: Int32) -> Int16 {
        var p = pollfd(fd: fd, events: events, revents: 0)
        return Glibc.poll(&p, 1, timeoutMilliseconds) > 0 ? p.revents : 0
    }

    /// One poll(2) over `count` entries of `set`, no retry: the number that
    /// fired (their `revents` set), 0 on time-out, -1 on EINTR or an error.
    @inline(__always)
    public static func once(_ set: UnsafeMutablePointer<pollfd>, count: Int, timeoutMilliseconds: Int32) -> Int32 {
        Glibc.poll(set, nfds_t(count), timeoutMilliseconds)
    }

    /// True when the peer of a connected socket has closed or broken the
    /// connection (a zero-timeout poll for hang-up or error).
    public static func peerClosed(_ fd: Int32) -> Bool {
        let fired = once(fd, for: peerHangUp, timeoutMilliseconds: 0)
        return fired & (peerHangUp | Int16(POLLHUP | POLLERR | POLLNVAL)) != 0
    }
}
