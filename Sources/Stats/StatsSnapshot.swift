// One consistent reading of a segment: the directory at one epoch, each
// counter summed over all slots, and whether the daemon is still alive.

public struct StatsSnapshot: Sendable {
    /// Directory order; values summed over every slot.
    public var entries: [(name: String, kind: CounterKind, value: UInt64)]
    /// The directory epoch the names were read at (even unless a writer died mid-change).
    public var epoch: UInt64
    /// The writer's pid.
    public var pid: Int32
    /// Seconds since the writer's last heartbeat (0 if the heartbeat is in the future).
    public var heartbeatAgeSeconds: Double
    /// The heartbeat is younger than the stale limit (3 s) and the pid exists.
    public var isLive: Bool
    /// Why the snapshot is not live, e.g. "last heartbeat 12.0 s ago, pid 4242 gone".
    public var staleReason: String?
    /// The instance name stored in the header.
    public var instance: String
    /// Worker slots in the segment (the control thread's slot is extra).
    public var workerCount: Int
    /// CLOCK_REALTIME ns when the writer created the segment.
    public var startTimeNanoseconds: UInt64

    public init(
        entries: [(name: String, kind: CounterKind, value: UInt64)],
        epoch: UInt64 = 0,
        pid: Int32 = 0,
        heartbeatAgeSeconds: Double = 0,
        isLive: Bool = true,
        staleReason: String? = nil,
        instance: String = "",
        workerCount: Int = 0,
        startTimeNanoseconds: UInt64 = 0
    ) {
        self.entries = entries
        self.epoch = epoch
        self.pid = pid
        self.heartbeatAgeSeconds = heartbeatAgeSeconds
        self.isLive = isLive
        self.staleReason = staleReason
        self.instance = instance
        self.workerCount = workerCount
        self.startTimeNanoseconds = startTimeNanoseconds
    }

    /// The summed value of `name`, nil when it is not in the directory.
    public func value(_ name: String) -> UInt64? {
        entries.first(where: { $0.name == name })?.value
    }

    /// The same snapshot with only the names starting with `prefix`.
    public func filtered(prefix: String) -> StatsSnapshot {
        guard !prefix.isEmpty else { return self }
        var copy = self
        copy.entries = entries.filter { $0.name.hasPrefix(prefix) }
        return copy
    }
}
