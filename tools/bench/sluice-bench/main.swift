#if canImport(Glibc)
import Glibc
#endif

// sluice-bench: Sluice's IndexRing and Mempool timed like DPDK's ring_perf_autotest and
// mempool_perf_autotest, printed in their shape. tools/bench/ring-mempool.sh runs both
// side by side and builds the table in BENCHMARKS.md. `mactable` times the switch's
// MacTable (learn + lookup per frame) with few and many entries.

let usage = """
    usage: sluice-bench ring    [--sizes 8,32] [--cpus 0,1]
           sluice-bench mempool [--cores 1,2] [--bulk 1,32] [--keep 32,128]
                                [--seconds 5] [--pool-size 2047] [--cpus 0,1]
           sluice-bench mactable [--entries 1,4000] [--max-macs 4096] [--ops 20000000] [--cpu 1]
           sluice-bench lpm --depths N1,...,N32 [--batches 1024] [--cpu 1] [--seed 1]

      ring     single, burst, bulk and empty enq/deq on one core (cycles per enq+deq
               turn), bulk on two cores (producer on the first cpu, consumer on the
               second; cycles per entry), MP/MC turns per core in 100 ms on both cores
      mempool  take n_keep buffers in bulks, return them in bulks, through the
               per-thread cache; buffers per second summed over cores
      mactable the switch's MacTable: learn of a known source key (cycling over the
               learned entries) + lookup of a known destination; cycles and ns per op
      lpm      the router's IPv4 prefix table (PrefixTable4): N1...N32 random prefixes of
               length 1...32, then single lookups of random addresses in batches of
               4096 (as DPDK's lpm_perf_autotest); cycles per lookup
    """

/// Hand-parsed `--name value` options (no ArgumentParser: this tool stays small).
struct Options {
    private var values: [String: String] = [:]

    init(_ args: ArraySlice<String>, allowed: Set<String>) throws(BenchError) {
        var i = args.startIndex
        while i < args.endIndex {
            let name = args[i]
            guard name.hasPrefix("--"), allowed.contains(String(name.dropFirst(2))) else {
                throw BenchError("unknown option \(name)")
            }
            guard i + 1 < args.endIndex else { throw BenchError("\(name) needs a value") }
            values[String(name.dropFirst(2))] = args[i + 1]
            i += 2
        }
    }

    func list(_ name: String, default d: [Int]) throws(BenchError) -> [Int] {
        guard let text = values[name] else { return d }
        var out: [Int] = []
        for part in text.split(separator: ",") {
            guard let v = Int(part), v >= 0 else { throw BenchError("--\(name): '\(part)' is not a number") }
            out.append(v)
        }
        if out.isEmpty { throw BenchError("--\(name) is empty") }
        return out
    }

    func number(_ name: String, default d: Double) throws(BenchError) -> Double {
        guard let text = values[name] else { return d }
        guard let v = Double(text), v > 0 else { throw BenchError("--\(name): '\(text)' is not a positive number") }
        return v
    }
}

func runMain() throws(BenchError) {
    let args = CommandLine.arguments
    guard args.count >= 2 else { throw BenchError(usage) }
    let rest = args[2...]
    switch args[1] {
    case "ring":
        let o = try Options(rest, allowed: ["sizes", "cpus"])
        let cpus = try o.list("cpus", default: [0, 1])
        guard cpus.count == 2 else { throw BenchError("--cpus needs two cpus: producer,consumer") }
        try RingBench(sizes: try o.list("sizes", default: [8, 32]),
                      producerCPU: cpus[0], consumerCPU: cpus[1]).run()
    case "mempool":
        let o = try Options(rest, allowed: ["cores", "bulk", "keep", "seconds", "pool-size", "cpus"])
        try MempoolBench(cores: try o.list("cores", default: [1, 2]),
                         bulks: try o.list("bulk", default: [1, 32]),
                         keeps: try o.list("keep", default: [32, 128]),
                         seconds: try o.number("seconds", default: 5),
                         poolSize: Int(try o.number("pool-size", default: 2047)),
                         cpus: try o.list("cpus", default: [0, 1])).run()
    case "mactable":
        let o = try Options(rest, allowed: ["entries", "max-macs", "ops", "cpu"])
        try MacTableBench(entries: try o.list("entries", default: [1, 4000]),
                          maxMACs: Int(try o.number("max-macs", default: 4096)),
                          ops: Int(try o.number("ops", default: 20_000_000)),
                          cpu: try o.list("cpu", default: [1])[0]).run()
    case "lpm":
        let o = try Options(rest, allowed: ["depths", "batches", "cpu", "seed"])
        let depths = try o.list("depths", default: [])
        if depths.isEmpty { throw BenchError("lpm needs --depths N1,...,N32\n\(usage)") }
        try LpmBench(depths: depths, batches: Int(try o.number("batches", default: 1024)),
                     cpu: try o.list("cpu", default: [1])[0], seed: UInt64(try o.list("seed", default: [1])[0])).run()
    case "-h", "--help", "help":
        print(usage)
    default:
        throw BenchError("unknown benchmark '\(args[1])'\n\(usage)")
    }
}

do {
    try runMain()
} catch {
    printErr("sluice-bench: \(error)")
    exit(1)
}
