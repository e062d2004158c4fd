#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Switching

/// The switch's per-frame table work, alone: `learn` of a known source key (cycling over
/// the `entries` learned keys, as `sluice-gen tx --macs N` makes it) plus `lookup` of a
/// known destination key, on one pinned thread. The table is sized as the switch sizes it
/// (capacity: the power of two ≥ 2 × max-macs) in ordinary memory. Prints one line per
/// table size:
///
///     mactable entries=4000 capacity=8192 ops=20000000 cycles_per_op=… ns_per_op=…
///
/// One op = one learn + one lookup. Keys are walked in a shuffled order fixed at start
/// (not in slot order), so with many entries the walk touches the table as frames would.
struct MacTableBench {
    var entries: [Int]
    var maxMACs: Int
    var ops: Int
    var cpu: Int

    func run() throws(BenchError) {
        pin(cpu)
        var capacity = 64
        while capacity < maxMACs * 2 { capacity <<= 1 }
        for n in entries {
            guard n >= 1 && n <= maxMACs else { throw BenchError("--entries \(n) must be 1...\(maxMACs) (--max-macs)") }
            let table = UnsafeMutableRawPointer.allocate(byteCount: capacity * 16, alignment: 64)
            table.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * 16)
            let countsBytes = MacTable.countsBytes(ports: 2)
            let counts = UnsafeMutableRawPointer.allocate(byteCount: countsBytes, alignment: 64)
            counts.initializeMemory(as: UInt8.self, repeating: 0, count: countsBytes)
            defer { table.deallocate(); counts.deallocate() }
            let t = MacTable(entries: table, capacity: capacity, counts: counts, limit: maxMACs)

            // Keys as the generator makes them: 02:00:(i in bytes 2-4):01, VLAN 1, on port 0;
            // the destination is learned on port 1.
            let keys = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: n)
            defer { keys.deallocate() }
            for i in 0..<n { keys[i] = 1 << 48 | 0x0200 << 32 | UInt64(i) << 8 | 0x01 }
            var rng = SystemRandomNumberGenerator()
            for i in stride(from: n - 1, to: 0, by: -1) { keys.swapAt(i, Int.random(in: 0...i, using: &rng)) }
            let destination: UInt64 = 1 << 48 | 0x0200 << 32 | 0x0000_bb02
            let now: UInt32 = 1000
            for i in 0..<n where t.learn(keys[i], port: 0, now: now, portLimit: .max) != .learned {
                throw BenchError("key \(i) of \(n) not learned")
            }
            guard t.learn(destination, port: 1, now: now, portLimit: .max) == .learned else {
                throw BenchError("destination not learned")
            }

            // Warm up one pass, then time.
            var sink = 0
            let total = ops
            var k = 0
            for _ in 0..<min(total, max(n, 100_000)) {
                _ = t.learn(keys[k], port: 0, now: now, portLimit: .max)
                sink &+= t.lookup(destination)
                k = k &+ 1 == n ? 0 : k &+ 1
            }
            var unexpected = 0
            let c0 = sl_rdtsc()
            let n0 = Clock.monotonicNanos()
            for _ in 0..<total {
                if t.learn(keys[k], port: 0, now: now, portLimit: .max) != .known { unexpected &+= 1 }
                sink &+= t.lookup(destination)
                k = k &+ 1 == n ? 0 : k &+ 1
            }
            let c1 = sl_rdtsc()
            let n1 = Clock.monotonicNanos()
            if unexpected != 0 { throw BenchError("\(unexpected) learns of known keys did not answer .known") }
            if sink != total + min(total, max(n, 100_000)) { throw BenchError("lookups did not all find port 1") }
            print("mactable entries=\(n) capacity=\(capacity) ops=\(total) "
                  + "cycles_per_op=\(fixed2(Double(c1 &- c0) / Double(total))) "
                  + "ns_per_op=\(fixed2(Double(n1 &- n0) / Double(total)))")
        }
    }
}
