import Memory
import Stats

/// What a worker lends every poll source on each turn: its private mempool cache,
/// the time, and how it waits. A plain value; built once per loop turn.
@frozen
public struct WorkerContext: BitwiseCopyable, @unchecked Sendable {
    /// Index of the worker (its stats slot).
    public let worker: Int
    /// This worker's cache in front of the packet mempool (this thread only).
    public let cache: MempoolCache
    /// CLOCK_MONOTONIC nanoseconds at the start of this loop turn.
    public var now: UInt64
    /// Coarse seconds (now / 1e9), the unit of MAC table timestamps.
    @inlinable public var nowSeconds: UInt32 { UInt32(truncatingIfNeeded: now / 1_000_000_000) }
    /// True in event mode: whoever hands this worker's sources work from another
    /// thread must also write their wake-up eventfd.
    public let eventMode: Bool
    /// Allocations the mempool could not serve (this worker's slot).
    public let allocFail: StatsCounter

    @inlinable public var pool: MempoolRef { cache.pool }

    public init(worker: Int, cache: MempoolCache, now: UInt64, eventMode: Bool, allocFail: StatsCounter) {
        self.worker = worker; self.cache = cache; self.now = now; self.eventMode = eventMode; self.allocFail = allocFail
    }
}
