#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor with exactly one owner, closed exactly once: when the
/// owner goes away, or at `close()`. Not copyable, so ownership is in the type
/// rather than in a comment: passing it `consuming` hands the fd on, and
/// `release()` gives up ownership (for a callee that still takes a raw `Int32`
/// and closes it itself).
///
/// Borrow `raw` for calls; do not close it by hand while the owner is alive.
public struct OwnedFD: ~Copyable, Sendable {
    public let raw: Int32

    /// Take ownership of `raw` (which must be open, or negative for "none";
    /// a negative value is never closed).
    @inline(__always)
    public init(adopting raw: Int32) {
        self.raw = raw
    }

    /// Give up ownership without closing; the caller now owns the fd.
    @inline(__always)
    public consuming func release() -> Int32 {
        let fd = raw
        discard self
        return fd
    }

    /// Close now (the same as letting the owner go, but at a visible point).
    @inline(__always)
    public consuming func close() {
        let fd = release()
        closeFD(fd)
    }

    deinit { closeFD(raw) }
}

/// A list of owned fds (e.g. the SCM_RIGHTS fds of one message), each closed
/// once when the list goes away unless `release()` handed them on first.
public struct OwnedFDs: ~Copyable, Sendable {
    public private(set) var raw: [Int32]

    public init() { raw = [] }

    /// Take ownership of every fd in `raw` (negative entries are never closed).
    public init(adopting raw: [Int32]) { self.raw = raw }

    public var count: Int { raw.count }

    /// Take ownership of one more fd.
    public mutating func append(_ fd: consuming OwnedFD) {
        raw.append(fd.release())
    }

    /// Take ownership of fds the kernel just handed over.
    public mutating func append(adopting fds: some Sequence<Int32>) {
        raw.append(contentsOf: fds)
    }

    /// Give up ownership of all of them without closing.
    public consuming func release() -> [Int32] {
        let fds = raw
        raw = []
        return fds
    }

    deinit { for fd in raw { closeFD(fd) } }
}
