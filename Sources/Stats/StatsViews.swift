// Operator views computed from a snapshot: per worker (core, busy share, cost
// per packet) and per receive queue (owner and its share of the owner's busy
// cycles). Since the daemon started, or over an interval when given the
// previous snapshot. Pure functions, used by sluice-stat --workers / --queues.

/// One worker thread, from `worker.<n>.{cpu,loops,busy_loops,busy_cycles,idle_cycles,busy_packets}`.
public struct WorkerStats: Equatable, Sendable {
    public var worker: Int
    /// The core the worker is pinned to (gauge `worker.<n>.cpu`); nil when not published.
    public var cpu: UInt64?
    public var loops: UInt64
    /// Loop turns that moved at least one packet; nil when the daemon does not publish it.
    public var busyLoops: UInt64?
    public var busyCycles: UInt64
    public var idleCycles: UInt64
    public var packets: UInt64

    public init(
        worker: Int, cpu: UInt64? = nil, loops: UInt64 = 0, busyLoops: UInt64? = nil,
        busyCycles: UInt64 = 0, idleCycles: UInt64 = 0, packets: UInt64 = 0
    ) {
        self.worker = worker
        self.cpu = cpu
        self.loops = loops
        self.busyLoops = busyLoops
        self.busyCycles = busyCycles
        self.idleCycles = idleCycles
        self.packets = packets
    }

    /// busy_cycles / (busy_cycles + idle_cycles), in percent; nil before any cycle was counted.
    public var busyPercent: Double? {
        let total = Double(busyCycles) + Double(idleCycles)
        return total > 0 ? 100 * Double(busyCycles) / total : nil
    }

    /// Busy cycles per packet moved; nil when no packet moved.
    public var cyclesPerPacket: Double? {
        packets > 0 ? Double(busyCycles) / Double(packets) : nil
    }

    /// Packets per busy loop turn (the average burst); nil without busy turns.
    public var packetsPerBusyLoop: Double? {
        guard let busyLoops, busyLoops > 0 else { return nil }
        return Double(packets) / Double(busyLoops)
    }
}

/// One receive queue, from `rxq.<port>.<q>.{worker,busy_cycles,packets}`.
public struct QueueStats: Equatable, Sendable {
    public var port: String
    public var queue: Int
    /// The worker polling the queue (gauge); nil when not published.
    public var worker: Int?
    /// That worker's core, when the worker publishes it.
    public var cpu: UInt64?
    public var busyCycles: UInt64
    public var packets: UInt64
    /// busyCycles / the owning worker's busy cycles, in percent; nil when the
    /// owner is unknown or had no busy cycles. The queue cycles are sampled, so
    /// the shares of one worker's queues add up to about 100, not exactly.
    public var sharePercent: Double?

    public init(
        port: String, queue: Int, worker: Int? = nil, cpu: UInt64? = nil,
        busyCycles: UInt64 = 0, packets: UInt64 = 0, sharePercent: Double? = nil
    ) {
        self.port = port
        self.queue = queue
        self.worker = worker
        self.cpu = cpu
        self.busyCycles = busyCycles
        self.packets = packets
        self.sharePercent = sharePercent
    }
}

public enum StatsViews {
    /// Counter values of `snapshot`, minus those of `previous` where given. A
    /// counter that went backwards (the daemon restarted) counts from zero;
    /// gauges are never subtracted.
    struct Values {
        let current: [String: (kind: CounterKind, value: UInt64)]
        let previous: [String: UInt64]

        init(_ snapshot: StatsSnapshot, since previous: StatsSnapshot?) {
            var current: [String: (kind: CounterKind, value: UInt64)] = [:]
            for entry in snapshot.entries { current[entry.name] = (entry.kind, entry.value) }
            var before: [String: UInt64] = [:]
            for entry in previous?.entries ?? [] where entry.kind == .counter { before[entry.name] = entry.value }
            self.current = current
            self.previous = before
        }

        func value(_ name: String) -> UInt64? {
            guard let entry = current[name] else { return nil }
            guard entry.kind == .counter, let old = previous[name], entry.value >= old else { return entry.value }
            return entry.value - old
        }
    }

    static let workerFields: Set<String> = ["cpu", "loops", "busy_loops", "busy_cycles", "idle_cycles", "busy_packets"]
    static let queueFields: Set<String> = ["worker", "busy_cycles", "packets"]

    /// Every worker that has at least one `worker.<n>.<field>` entry, by id.
    public static func workers(_ snapshot: StatsSnapshot, since previous: StatsSnapshot? = nil) -> [WorkerStats] {
        var ids = Set<Int>()
        for entry in snapshot.entries {
            let parts = entry.name.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "worker", workerFields.contains(String(parts[2])),
                  StatsFormat.isDecimal(String(parts[1])), let id = Int(parts[1])
            else { continue }
            ids.insert(id)
        }
        let values = Values(snapshot, since: previous)
        return ids.sorted().map { id in
            func field(_ name: String) -> UInt64? { values.value("worker.\(id).\(name)") }
            return WorkerStats(
                worker: id, cpu: field("cpu"), loops: field("loops") ?? 0, busyLoops: field("busy_loops"),
                busyCycles: field("busy_cycles") ?? 0, idleCycles: field("idle_cycles") ?? 0,
                packets: field("busy_packets") ?? 0)
        }
    }

    /// Every receive queue with at least one `rxq.<port>.<q>.<field>` entry,
    /// ordered by worker, port, queue.
    public static func queues(_ snapshot: StatsSnapshot, since previous: StatsSnapshot? = nil) -> [QueueStats] {
        var keys: [String: (port: String, queue: Int)] = [:]  // "rxq.<port>.<q>" → parts
        for entry in snapshot.entries {
            guard let (base, field) = splitLast(entry.name), queueFields.contains(field),
                  base.hasPrefix("rxq."), let (port, queueText) = splitLast(String(base.dropFirst(4))),
                  !port.isEmpty, StatsFormat.isDecimal(queueText), let queue = Int(queueText)
            else { continue }
            keys[base] = (port, queue)
        }
        let values = Values(snapshot, since: previous)
        let workers = Dictionary(workers(snapshot, since: previous).map { ($0.worker, $0) }, uniquingKeysWith: { a, _ in a })
        var result: [QueueStats] = []
        for (base, key) in keys {
            var queue = QueueStats(
                port: key.port, queue: key.queue, busyCycles: values.value(base + ".busy_cycles") ?? 0,
                packets: values.value(base + ".packets") ?? 0)
            if let owner = values.value(base + ".worker"), owner <= UInt64(Int32.max) {
                queue.worker = Int(owner)
                if let stats = workers[Int(owner)] {
                    queue.cpu = stats.cpu
                    if stats.busyCycles > 0 {
                        queue.sharePercent = 100 * Double(queue.busyCycles) / Double(stats.busyCycles)
                    }
                }
            }
            result.append(queue)
        }
        return result.sorted {
            ($0.worker ?? Int.max, $0.port, $0.queue) < ($1.worker ?? Int.max, $1.port, $1.queue)
        }
    }

    /// "a.b.c" → ("a.b", "c").
    static func splitLast(_ name: String) -> (String, String)? {
        guard let dot = name.utf8.lastIndex(of: UInt8(ascii: ".")) else { return nil }
        return (String(name[..<dot]), String(name[name.index(after: dot)...]))
    }

    // MARK: Tables

    /// One row per worker: core, busy %, packets, cycles per packet, packets per
    /// busy loop turn, loop turns, busy turns.
    public static func workersTable(_ workers: [WorkerStats]) -> String {
        let header = ["worker", "core", "busy%", "packets", "cycles/pkt", "pkts/busy-loop", "loops", "busy-loops"]
        let rows = workers.map { w in
            [
                String(w.worker), w.cpu.map(String.init) ?? "-", decimal(w.busyPercent), String(w.packets),
                decimal(w.cyclesPerPacket), decimal(w.packetsPerBusyLoop), String(w.loops),
                w.busyLoops.map(String.init) ?? "-",
            ]
        }
        return table(header: header, rows: rows, leftAligned: [])
    }

    /// One row per receive queue: port, queue, worker, core, % of the worker's busy cycles, packets.
    public static func queuesTable(_ queues: [QueueStats]) -> String {
        let header = ["port", "queue", "worker", "core", "busy%", "packets"]
        let rows = queues.map { q in
            [
                q.port, String(q.queue), q.worker.map(String.init) ?? "-", q.cpu.map(String.init) ?? "-",
                decimal(q.sharePercent), String(q.packets),
            ]
        }
        return table(header: header, rows: rows, leftAligned: [0])
    }

    /// One decimal, "-" for nil.
    public static func decimal(_ value: Double?) -> String {
        guard let value, value.isFinite, value >= 0 else { return "-" }
        if value >= 1e15 { return String(value) }
        let tenths = UInt64((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// Columns separated by two spaces; numbers right-aligned, `leftAligned` columns left.
    static func table(header: [String], rows: [[String]], leftAligned: Set<Int>) -> String {
        var widths = header.map(\.utf8.count)
        for row in rows {
            for (column, cell) in row.enumerated() where column < widths.count {
                widths[column] = max(widths[column], cell.utf8.count)
            }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (column, cell) in cells.enumerated() {
                let last = column == cells.count - 1
                if leftAligned.contains(column) {
                    parts.append(last ? cell : StatsFormat.pad(cell, to: widths[column]))
                } else {
                    parts.append(StatsFormat.padLeft(cell, to: widths[column]))
                }
            }
            return parts.joined(separator: "  ") + "\n"
        }
        return ([line(header)] + rows.map(line)).joined()
    }
}
