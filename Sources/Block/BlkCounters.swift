import Stats

/// Counters of one blk export in one worker's slot (`blk.<name>.<counter>`).
@frozen
public struct BlkCounters: BitwiseCopyable {
    public var reads: StatsCounter
    public var writes: StatsCounter
    public var flushes: StatsCounter
    public var discards: StatsCounter
    public var writeZeroes: StatsCounter
    public var getID: StatsCounter
    public var readBytes: StatsCounter
    public var writeBytes: StatsCounter
    public var ioerr: StatsCounter
    public var unsupp: StatsCounter
    public var badChain: StatsCounter
    /// Reads and writes O_DIRECT refused (EINVAL: alignment) and the buffered file served.
    public var bufferedRetries: StatsCounter
    /// Gauge: requests with the backend now (this worker's queues).
    public var inflight: StatsCounter
    /// Latency buckets: bucket k counts requests that took < 2^k µs; the last one the rest.
    public var latency: LatencyBuckets

    /// In the order of `names`, then the latency buckets (`LatencyBuckets.names`).
    public static let names = ["reads", "writes", "flushes", "discards", "write_zeroes", "get_id", "read_bytes", "write_bytes",
                               "errors.ioerr", "errors.unsupp", "drop.bad_chain", "inflight", "buffered_retries"]
    public static var allNames: [String] { names + LatencyBuckets.names }
    public static func kind(_ name: String) -> CounterKind { name == "inflight" ? .gauge : .counter }

    /// `counters` in the order of `allNames`.
    public init(_ c: [StatsCounter]) {
        reads = c[0]; writes = c[1]; flushes = c[2]; discards = c[3]; writeZeroes = c[4]; getID = c[5]
        readBytes = c[6]; writeBytes = c[7]; ioerr = c[8]; unsupp = c[9]; badChain = c[10]; inflight = c[11]
        bufferedRetries = c[12]
        latency = LatencyBuckets(Array(c[13...]))
    }

    public static var discard: BlkCounters { BlkCounters(Array(repeating: .discard, count: allNames.count)) }
}

/// A power-of-two latency histogram: `latency_us.lt_<2^k>` for k in 0..<buckets-1, then
/// `latency_us.ge_<2^(buckets-2)>`. Counters in a slot; sluice-stat sums the slots.
@frozen
public struct LatencyBuckets: BitwiseCopyable {
    public static let buckets = LatencyHistogram.buckets   // up to ~0.26 s, then the overflow bucket
    public static var names: [String] { LatencyHistogram.bucketNames }
    /// The counters, one line each (pointer to `buckets` StatsCounter values the builder allocates).
    public let base: UnsafeMutablePointer<StatsCounter>

    public init(_ c: [StatsCounter]) {
        base = .allocate(capacity: Self.buckets)
        for i in 0..<Self.buckets { (base + i).initialize(to: i < c.count ? c[i] : .discard) }
    }

    public func free() { base.deallocate() }

    /// Count one request of `us` microseconds.
    @inlinable
    public func record(micros us: UInt64) {
        // Bucket k holds [2^(k-1), 2^k) µs; 0 µs goes to bucket 0 (< 1 µs).
        var k = us == 0 ? 0 : 64 - us.leadingZeroBitCount
        if k >= Self.buckets { k = Self.buckets - 1 }
        base[k].increment()
    }
}
