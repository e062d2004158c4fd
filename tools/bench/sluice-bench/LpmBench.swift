#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Switching

/// The router's IPv4 longest-prefix match (`PrefixTable4`) timed the way DPDK's
/// `lpm_perf_autotest` times `rte_lpm`: a large random route set with a given number of
/// prefixes per length, then single lookups of random addresses in batches of 4,096,
/// 1,024 batches, TSC cycles per lookup (the addresses of a batch are drawn before its
/// timer starts). Prints:
///
///     lpm routes=N distinct=N build_ms=… groups=N memory_kib=… lookups=N cycles_per_lookup=… misses_pct=… mlookups_per_s=…
///
/// `depths`: 32 counts, prefixes of length 1...32. For each length the prefixes are
/// spread over the address space from a random start with an even step (as DPDK's test
/// spreads its per-class counts), so the set nests and overlaps like a routing table.
struct LpmBench {
    var depths: [Int]
    var batches: Int
    var cpu: Int
    var seed: UInt64

    /// SplitMix64: a fixed seed gives the same route set and addresses every run.
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func routes(_ rng: inout Rng) -> [(prefix: UInt32, length: Int, port: Int)] {
        var out: [(prefix: UInt32, length: Int, port: Int)] = []
        out.reserveCapacity(depths.reduce(0, +))
        for (i, count) in depths.enumerated() where count > 0 {
            let length = i + 1
            let range = UInt64(1) << UInt64(length)          // distinct prefixes of this length
            let step = max(1, range / UInt64(count))
            var k = rng.next() & (range - 1)
            for _ in 0..<count {
                let prefix = UInt32(truncatingIfNeeded: k << UInt64(32 - length))
                out.append((prefix, length, Int(rng.next() % 255)))   // next hops 0...254
                k = (k &+ step) & (range - 1)
            }
        }
        // Shuffled, as a table dumped from a router comes in no particular order.
        for i in stride(from: out.count - 1, to: 0, by: -1) { out.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return out
    }

    func run() throws(BenchError) {
        guard depths.count == 32 else { throw BenchError("--depths needs 32 counts (lengths 1...32), got \(depths.count)") }
        pin(cpu)
        var rng = Rng(state: seed)
        let set = routes(&rng)
        var distinct = Set<UInt64>()
        for r in set { distinct.insert(UInt64(r.length) << 32 | UInt64(r.prefix)) }
        let b0 = Clock.monotonicNanos()
        let table = PrefixTable4(set)
        let b1 = Clock.monotonicNanos()
        defer { table.destroy() }

        let batch = 4096
        let addresses = UnsafeMutablePointer<UInt32>.allocate(capacity: batch)
        defer { addresses.deallocate() }
        var cycles: UInt64 = 0
        var misses = 0
        var sink = 0
        for round in 0..<(batches + 8) {
            for j in 0..<batch { addresses[j] = UInt32(truncatingIfNeeded: rng.next()) }
            let c0 = sl_rdtsc()
            for j in 0..<batch {
                let p = table.lookup(addresses[j])
                if p < 0 { misses &+= 1 }
                sink &+= p
            }
            let c1 = sl_rdtsc()
            if round >= 8 { cycles &+= c1 &- c0 } else { misses = 0 }   // 8 warm-up batches
        }
        let lookups = batches * batch
        let perLookup = Double(cycles) / Double(lookups)
        let hz = Double(tscHz())
        // Keep `sink` alive so the loop is not optimised away.
        if sink == .min { print("") }
        print("lpm routes=\(set.count) distinct=\(distinct.count) build_ms=\(fixed2(Double(b1 &- b0) / 1e6)) "
              + "groups=\(table.groupCount) memory_kib=\((65536 + table.groupCount * 256) * 4 / 1024) lookups=\(lookups) "
              + "cycles_per_lookup=\(fixed2(perLookup)) misses_pct=\(fixed2(Double(misses) * 100 / Double(lookups))) "
              + "mlookups_per_s=\(fixed2(hz / perLookup / 1e6))")
    }

    /// TSC ticks per second, measured over 200 ms of monotonic time.
    func tscHz() -> UInt64 {
        let n0 = Clock.monotonicNanos(), c0 = sl_rdtsc()
        var t = timespec(tv_sec: 0, tv_nsec: 200_000_000)
        _ = nanosleep(&t, nil)
        let n1 = Clock.monotonicNanos(), c1 = sl_rdtsc()
        return (c1 &- c0) * 1_000_000_000 / max(1, n1 &- n0)
    }
}
