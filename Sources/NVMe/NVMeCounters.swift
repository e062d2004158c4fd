import Stats

/// Counters of one NVMe I/O queue pair, in the slot of the worker that owns it
/// (`nvme.<ctrl>.qp<n>.<name>`).
@frozen
public struct NVMeQueueCounters: BitwiseCopyable {
    /// Commands written to the submission queue and handed to the controller (a request
    /// split by MDTS or by its buffer layout counts once per command).
    public var submissions: StatsCounter
    /// Completion entries consumed.
    public var completions: StatsCounter
    /// MMIO doorbell writes (SQ tail and CQ head); shadow-only updates the EventIdx
    /// rule let pass are not counted, so this shows what shadow doorbells save.
    public var doorbells: StatsCounter
    /// Commands found older than the I/O timeout (each counted once).
    public var timeouts: StatsCounter
    /// Requests failed here: an NVMe error status, a fatal controller status, or a
    /// request the queue cannot express (misaligned to the LBA size, memory not mapped
    /// for the device, a buffer chain no PRP/SGL split can carry).
    public var errors: StatsCounter

    public static let allNames = ["submissions", "completions", "doorbells", "timeouts", "errors"]
    public static func kind(_ name: String) -> CounterKind { .counter }

    /// `counters` in the order of `allNames`.
    public init(_ c: [StatsCounter]) {
        submissions = c[0]; completions = c[1]; doorbells = c[2]; timeouts = c[3]; errors = c[4]
    }

    public static var discard: NVMeQueueCounters { NVMeQueueCounters(Array(repeating: .discard, count: allNames.count)) }
}
