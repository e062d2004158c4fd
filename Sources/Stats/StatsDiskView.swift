// The blk exports seen from the counters (sluice-stat --disks): requests, bytes, errors,
// requests in flight, and latency percentiles read off the power-of-two buckets.

/// One blk export, from `blk.<name>.*`.
public struct DiskStats: Equatable, Sendable {
    public var name: String
    public var reads: UInt64 = 0
    public var writes: UInt64 = 0
    public var flushes: UInt64 = 0
    public var readBytes: UInt64 = 0
    public var writeBytes: UInt64 = 0
    public var errors: UInt64 = 0
    public var inflight: UInt64 = 0
    public var connected: UInt64 = 0
    /// Requests per latency bucket, in `LatencyHistogram.bucketNames` order.
    public var buckets: [UInt64] = Array(repeating: 0, count: LatencyHistogram.buckets)

    public init(name: String) { self.name = name }

    /// The upper bound (µs) of the bucket where `q` (0…1) of the requests are done;
    /// nil without requests, `.infinity` in the overflow bucket.
    public func latencyQuantile(_ q: Double) -> Double? {
        let total = buckets.reduce(0, +)
        guard total > 0 else { return nil }
        let want = UInt64((Double(total) * q).rounded(.up))
        var seen: UInt64 = 0
        for (k, n) in buckets.enumerated() {
            seen += n
            if seen >= max(want, 1) { return k == buckets.count - 1 ? .infinity : Double(1 << k) }
        }
        return .infinity
    }
}

extension StatsViews {
    static let diskFields: Set<String> = ["reads", "writes", "flushes", "read_bytes", "write_bytes", "errors.ioerr",
                                          "errors.unsupp", "drop.bad_chain", "inflight", "connected"]

    /// Every blk export with `blk.<name>.reads`, by name.
    public static func disks(_ snapshot: StatsSnapshot, since previous: StatsSnapshot? = nil) -> [DiskStats] {
        var names = Set<String>()
        for entry in snapshot.entries where entry.name.hasPrefix("blk.") && entry.name.hasSuffix(".reads") {
            names.insert(String(entry.name.dropFirst(4).dropLast(6)))
        }
        let values = Values(snapshot, since: previous)
        return names.sorted().map { name in
            func v(_ field: String) -> UInt64 { values.value("blk.\(name).\(field)") ?? 0 }
            var d = DiskStats(name: name)
            d.reads = v("reads"); d.writes = v("writes"); d.flushes = v("flushes")
            d.readBytes = v("read_bytes"); d.writeBytes = v("write_bytes")
            d.errors = v("errors.ioerr") + v("errors.unsupp") + v("drop.bad_chain")
            d.inflight = v("inflight"); d.connected = v("connected")
            d.buckets = LatencyHistogram.bucketNames.map { v($0) }
            return d
        }
    }

    /// One row per export; with `seconds` (an interval) the counts become rates.
    public static func disksTable(_ disks: [DiskStats], seconds: Double?) -> String {
        let rate = seconds.map { $0 > 0 ? $0 : 1 }
        let header = rate == nil
            ? ["blk", "conn", "reads", "writes", "flushes", "MB read", "MB written", "errors", "inflight", "p50 µs", "p99 µs"]
            : ["blk", "conn", "reads/s", "writes/s", "flushes/s", "MB/s read", "MB/s written", "errors", "inflight", "p50 µs", "p99 µs"]
        func count(_ n: UInt64) -> String { rate.map { decimal(Double(n) / $0) } ?? String(n) }
        func mb(_ n: UInt64) -> String { decimal(Double(n) / 1e6 / (rate ?? 1)) }
        func bound(_ q: Double?) -> String {
            guard let q else { return "-" }
            return q.isInfinite ? ">\(1 << (LatencyHistogram.buckets - 2))" : "<\(Int(q))"
        }
        let rows = disks.map { d in
            [d.name, String(d.connected), count(d.reads), count(d.writes), count(d.flushes), mb(d.readBytes), mb(d.writeBytes),
             String(d.errors), String(d.inflight), bound(d.latencyQuantile(0.5)), bound(d.latencyQuantile(0.99))]
        }
        return table(header: header, rows: rows, leftAligned: [0])
    }
}
