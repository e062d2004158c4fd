#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Memory
import Platform

/// `Mempool` with per-thread caches timed the way DPDK 22.11's `mempool_perf_autotest`
/// times `rte_mempool` with its default per-lcore cache: each core repeatedly takes
/// `keep` buffers in bulks of `getBulk`, then returns them in bulks of `putBulk`,
/// 65536 buffers per round, for a fixed window; the rate is buffers taken and
/// returned per second, summed over the cores. Output lines have DPDK's shape:
///
///     mempool_autotest cache=256 cores=1 n_get_bulk=32 n_put_bulk=32 n_keep=128 constant_n=0 rate_persec=…
///
/// The bulk sizes come from the command line, so (like DPDK's `constant_n=0` rows)
/// the compiler cannot specialise the loops for them.
struct MempoolBench {
    static let objectsPerRound = 65536

    var cores: [Int]
    var bulks: [Int]
    var keeps: [Int]
    var seconds: Double
    var poolSize: Int
    var cpus: [Int]

    func run() throws(BenchError) {
        guard let maxCores = cores.max(), maxCores >= 1, maxCores <= cpus.count else {
            throw BenchError("--cores must be 1...\(cpus.count) (one cpu each from --cpus)")
        }
        for k in keeps where k < 1 || k > poolSize / maxCores || Self.objectsPerRound % k != 0 {
            throw BenchError("n_keep \(k) must divide \(Self.objectsPerRound) and fit the pool")
        }
        let pool: Mempool
        do {
            pool = try Mempool(name: "bench", count: poolSize, caches: maxCores, policy: .off)
        } catch {
            throw BenchError("cannot create the mempool: \(error)")
        }
        pin(cpus[0])
        print("start performance test (with cache)")
        for n in cores {
            for bulk in bulks {
                for keep in keeps where keep % bulk == 0 {
                    let rate = try launch(pool, cores: n, get: bulk, put: bulk, keep: keep)
                    print("mempool_autotest cache=\(MempoolCache.size) cores=\(n) n_get_bulk=\(bulk) "
                          + "n_put_bulk=\(bulk) n_keep=\(keep) constant_n=0 rate_persec=\(rate)")
                }
            }
        }
        if pool.inUse != 0 { throw BenchError("pool leaked \(pool.inUse) buffers") }
    }

    /// Run the loop on `cores` threads (this one plus workers), each with its own
    /// cache, and return the summed rate.
    private func launch(_ pool: Mempool, cores: Int, get: Int, put: Int, keep: Int) throws(BenchError) -> UInt64 {
        let shared = SharedLines(lines: 2 + cores)   // 0: start flag; 1: failures; 2...: counts
        let nanos = UInt64(seconds * 1e9)
        var workers: [OSThread] = []
        for w in 1..<max(1, cores) {
            let cache = pool.cache(w)
            workers.append(try startThread("bench-pool\(w)", cpu: cpus[w]) {
                while sl_load_acquire_u32(shared.line(0)) == 0 { sl_pause() }
                Self.runCore(cache, get: get, put: put, keep: keep, nanos: nanos, shared: shared, slot: 2 + w)
            })
        }
        sl_store_release_u32(shared.line(0), 1)
        Self.runCore(pool.cache(0), get: get, put: put, keep: keep, nanos: nanos, shared: shared, slot: 2)
        for t in workers { t.join() }
        if shared.word(1) != 0 { throw BenchError("the pool ran dry (n_keep \(keep) x \(cores) cores)") }
        var total: UInt64 = 0
        for c in 0..<cores { total += UInt64(Double(shared.word(2 + c)) / seconds) }
        return total
    }

    private static func runCore(_ cache: MempoolCache, get: Int, put: Int, keep: Int, nanos: UInt64,
                                shared: SharedLines, slot: Int) {
        let table = alignedIndices(keep)
        defer { table.deallocate() }
        let objects = loop(cache, table, get: get, put: put, keep: keep, nanos: nanos)
        if objects == 0 { sl_store_release_u64(shared.line(1), 1) }
        shared.store(slot, objects)
    }

    /// Rounds of take-`keep`-then-return-them until `nanos` have passed; returns the
    /// buffers moved (0 if an allocation came back short).
    @inline(never)
    static func loop(_ cache: MempoolCache, _ table: UnsafeMutablePointer<UInt32>,
                     get: Int, put: Int, keep: Int, nanos: UInt64) -> UInt64 {
        var moved: UInt64 = 0
        let start = Clock.monotonicNanos()
        repeat {
            for _ in 0..<(objectsPerRound / keep) {
                var i = 0
                while i < keep {
                    if cache.alloc(table + i, get) != get { return 0 }
                    i &+= get
                }
                i = 0
                while i < keep {
                    cache.free(table + i, put)
                    i &+= put
                }
            }
            moved &+= UInt64(objectsPerRound)
        } while Clock.monotonicNanos() &- start < nanos
        return moved
    }
}
