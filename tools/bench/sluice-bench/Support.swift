#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform

/// A failure of the benchmark itself (bad arguments, a pool that ran dry, a thread
/// that could not start). Printed and turned into exit status 1 by `main`.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A few 64-byte lines of raw memory shared between the threads of one test: start
/// barriers and results. Raw words (not Swift objects) so the timed loops touch no
/// reference count. Each word sits on its own line so the threads never false-share.
final class SharedLines: @unchecked Sendable {
    private let base: UnsafeMutableRawPointer
    private let lines: Int

    init(lines: Int) {
        self.lines = lines
        base = .allocate(byteCount: lines * 64, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: lines * 64)
    }

    deinit { base.deallocate() }

    func line(_ i: Int) -> UnsafeMutableRawPointer {
        precondition(i >= 0 && i < lines)
        return base + i * 64
    }

    /// Arrive at barrier word `i` and spin until `target` threads have arrived in
    /// total. Reuse the same word for a later phase with a larger target.
    func arriveAndWait(_ i: Int, target: UInt32) {
        let p = line(i)
        _ = sl_fetch_add_u32(p, 1)
        // Acquire pairs with the other thread's fetch_add (acq_rel).
        while sl_load_acquire_u32(p) < target { sl_pause() }
    }

    /// Publish a result (release pairs with `result`'s acquire after join).
    func store(_ i: Int, _ v: Double) { sl_store_release_u64(line(i), v.bitPattern) }
    func store(_ i: Int, _ v: UInt64) { sl_store_release_u64(line(i), v) }
    func double(_ i: Int) -> Double { Double(bitPattern: sl_load_acquire_u64(line(i))) }
    func word(_ i: Int) -> UInt64 { sl_load_acquire_u64(line(i)) }
}

/// Pin the calling thread; a failure is reported once on stderr (numbers from an
/// unpinned thread are still numbers, but the table should say so).
func pin(_ cpu: Int) {
    do {
        try OSThread.pinCurrent(to: cpu)
    } catch {
        printErr("warning: cannot pin to cpu \(cpu): \(error)")
    }
}

func printErr(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// `%.2f` without Foundation.
func fixed2(_ v: Double) -> String {
    if !v.isFinite { return "\(v)" }
    let scaled = (v * 100).rounded()
    let negative = scaled < 0
    let units = Int(abs(scaled))
    let frac = units % 100
    return (negative ? "-" : "") + "\(units / 100)." + (frac < 10 ? "0" : "") + "\(frac)"
}

/// A buffer of `count` UInt32 slots, cache-line aligned, zeroed; freed by the caller.
func alignedIndices(_ count: Int) -> UnsafeMutablePointer<UInt32> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(64, count * 4), alignment: 64)
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(64, count * 4))
    return raw.assumingMemoryBound(to: UInt32.self)
}

/// Start a pinned thread; throws `BenchError` if the OS refuses.
func startThread(_ name: String, cpu: Int, _ body: @escaping @Sendable () -> Void) throws(BenchError) -> OSThread {
    do {
        return try OSThread(name: name) {
            pin(cpu)
            body()
        }
    } catch {
        throw BenchError("cannot start thread \(name): \(error)")
    }
}
