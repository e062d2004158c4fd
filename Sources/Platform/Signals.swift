#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// SIGINT/SIGTERM/SIGHUP delivered as a readable fd (signalfd), for the control epoll loop.
public enum Signals {
    /// Block the given signals in the calling thread (call before spawning threads so
    /// they inherit the mask) and return a signalfd that reports them.
    public static func signalFD(_ signals: [Int32]) throws(SystemError) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        if pthread_sigmask(SIG_BLOCK, &set, nil) != 0 { throw SystemError("pthread_sigmask") }
        let fd = signalfd(-1, &set, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        if fd < 0 { throw SystemError("signalfd") }
        return fd
    }

    /// Read one pending signal number from a signalfd, or nil.
    public static func read(_ fd: Int32) -> Int32? {
        var info = signalfd_siginfo()
        let n = Glibc.read(fd, &info, MemoryLayout<signalfd_siginfo>.size)
        return n == MemoryLayout<signalfd_siginfo>.size ? Int32(info.ssi_signo) : nil
    }

    /// Ignore SIGPIPE (peers that vanish must become EPIPE, not death).
    public static func ignorePipe() { signal(SIGPIPE, SIG_IGN) }
}
