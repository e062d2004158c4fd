#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// Clocks. The hot path passes `now` in; these are read once per loop turn.
public enum Clock {
    /// CLOCK_MONOTONIC in nanoseconds.
    @inline(__always)
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// CLOCK_REALTIME in nanoseconds (for values another process compares).
    public static func realtimeNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The CPU timestamp counter.
    @inline(__always)
    public static func cycles() -> UInt64 { sl_rdtsc() }

    /// TSC ticks per second, measured once against CLOCK_MONOTONIC (~20 ms).
    public static let cyclesPerSecond: Double = {
        let t0 = monotonicNanos(), c0 = sl_rdtsc()
        var req = timespec(tv_sec: 0, tv_nsec: 20_000_000)
        _ = nanosleep(&req, nil)
        let t1 = monotonicNanos(), c1 = sl_rdtsc()
        return Double(c1 &- c0) * 1e9 / Double(max(1, t1 &- t0))
    }()

    /// Sleep for `micros` microseconds (EINTR resumes the remaining time).
    public static func sleep(micros: UInt32) {
        var req = timespec(tv_sec: Int(micros / 1_000_000), tv_nsec: Int(micros % 1_000_000) * 1000)
        var rem = timespec()
        while nanosleep(&req, &rem) != 0 && Glibc.errno == EINTR { req = rem }
    }
}
