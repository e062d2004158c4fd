#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, and the errno it left.
public struct SystemError: Error, Sendable, CustomStringConvertible, Equatable {
    public var call: String
    public var errno: Int32
    /// A complete explanation, when the errno alone would mislead (e.g. EEXIST
    /// for "a file that is not a socket is in the way"); replaces the
    /// "call: strerror" text.
    public var message: String?

    public init(_ call: String, errno: Int32 = Glibc.errno, message: String? = nil) {
        self.call = call
        self.errno = errno
        self.message = message
    }

    /// "call: strerror", or the message when there is one.
    public var reason: String {
        message ?? "\(call): \(String(cString: strerror(errno)))"
    }

    public var description: String {
        message ?? "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Run a syscall-style closure until it does not fail with EINTR.
/// Returns the result, or throws `SystemError` for a negative result.
@inline(__always)
public func retryingEINTR<T: SignedInteger>(_ call: String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SystemError(call, errno: e)
    }
}

/// Close a file descriptor, ignoring errors (there is nothing useful to do with them).
@inline(__always)
public func closeFD(_ fd: Int32) {
    if fd >= 0 { _ = Glibc.close(fd) }
}
