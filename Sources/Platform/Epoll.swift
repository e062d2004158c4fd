#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// A thin epoll wrapper. Each registration carries a 64-bit token chosen by the caller.
public final class Epoll: @unchecked Sendable {
    public let fd: Int32
    private var events: UnsafeMutablePointer<epoll_event>
    private let capacity: Int

    public init(capacity: Int = 64) throws(SystemError) {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw SystemError("epoll_create1") }
        self.fd = fd
        self.capacity = capacity
        self.events = .allocate(capacity: capacity)
    }

    deinit {
        events.deallocate()
        closeFD(fd)
    }

    public func add(_ target: Int32, token: UInt64, events mask: UInt32 = EPOLLIN.rawValue) throws(SystemError) {
        var ev = epoll_event()
        ev.events = mask
        ev.data.u64 = token
        if epoll_ctl(fd, EPOLL_CTL_ADD, target, &ev) != 0 { throw SystemError("epoll_ctl(ADD \(target))") }
    }

    public func remove(_ target: Int32) {
        _ = epoll_ctl(fd, EPOLL_CTL_DEL, target, nil)
    }

    /// Wait up to `timeoutMillis` (-1 forever). Returns the tokens that fired (and their event masks).
    public func wait(timeoutMillis: Int32, _ body: (UInt64, UInt32) -> Void) {
        let n = epoll_wait(fd, events, Int32(capacity), timeoutMillis)
        if n <= 0 { return }
        for i in 0..<Int(n) { body(events[i].data.u64, events[i].events) }
    }

    /// Wait without handing events back (a worker in event mode only needs to wake).
    @inline(__always)
    public func waitAny(timeoutMillis: Int32) -> Int {
        Int(epoll_wait(fd, events, Int32(capacity), timeoutMillis))
    }
}
