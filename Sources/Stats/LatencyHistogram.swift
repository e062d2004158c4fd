/// Names of a power-of-two latency histogram kept as plain counters (blk exports):
/// `latency_us.lt_<2^k>` for k in 0..<buckets-1 counts requests under 2^k µs (and at
/// least the bucket below), `latency_us.ge_<2^(buckets-2)>` the rest.
public enum LatencyHistogram {
    public static let buckets = 20
    public static let bucketNames: [String] =
        (0..<(buckets - 1)).map { "latency_us.lt_\(1 << $0)" } + ["latency_us.ge_\(1 << (buckets - 2))"]

    /// The bucket's upper bound in µs ("+Inf" for the last), nil when `name` is no bucket.
    public static func upperBound(_ name: String) -> String? {
        if name.hasPrefix("latency_us.lt_") { return String(name.dropFirst(14)) }
        if name.hasPrefix("latency_us.ge_") { return "+Inf" }
        return nil
    }
}
