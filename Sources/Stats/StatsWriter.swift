// The daemon's side of the stats segment: creates the file, registers names,
// hands out per-slot counter handles, beats the heartbeat.

import CSluice
import Platform
import Synchronization

/// Owner of one stats segment.
///
/// Threading: `register`, `lookup`, `beat` and `remove` may be called from any
/// thread (the control thread, in the daemon); registration is serialised by a
/// mutex that the workers never touch. `counter(_:slot:)` returns a handle that
/// only the thread owning `slot` may write (slots `0..<workerCount` are the
/// workers, `controlSlot` is the control thread).
public final class StatsWriter: @unchecked Sendable {
    public let path: String
    /// The instance name stored in the header (derived from `path` when the
    /// writer was created with an explicit path: "x" for "sluice-x.stats",
    /// otherwise empty).
    public let instance: String
    public let maxCounters: Int
    public let workerCount: Int

    /// The slot of the control thread: the last one.
    public var controlSlot: Int { workerCount }

    private let geometry: StatsGeometry
    private let mapping: SegmentMapping
    private let identity: FileIdentity
    private let registry = Mutex(Registry())

    private struct Registry {
        var indexByName: [String: Int] = [:]
        var kinds: [CounterKind] = []
        var retired: Set<Int> = []
        var removed = false
    }

    /// Create `/dev/shm/sluice-<instance>.stats`.
    public convenience init(instance: String, slots workerCount: Int, maxCounters: Int = 4096) throws(StatsError) {
        if let problem = instanceNameProblem(instance) { throw StatsError(problem) }
        try self.init(
            path: StatsPath.path(forInstance: instance), instance: instance,
            workerCount: workerCount, maxCounters: maxCounters)
    }

    /// Create the segment at an explicit path (tests, or a non-default /dev/shm).
    public convenience init(path: String, slots workerCount: Int, maxCounters: Int = 4096) throws(StatsError) {
        try self.init(
            path: path, instance: StatsPath.instance(forPath: path) ?? "",
            workerCount: workerCount, maxCounters: maxCounters)
    }

    private init(path: String, instance: String, workerCount: Int, maxCounters: Int) throws(StatsError) {
        guard workerCount >= 0, workerCount < StatsLayout.maxSlotsLimit else {
            throw StatsError("stats segment \(path): worker count \(workerCount) out of range 0..<\(StatsLayout.maxSlotsLimit)")
        }
        guard maxCounters > 0, maxCounters <= StatsLayout.maxCountersLimit else {
            throw StatsError("stats segment \(path): maxCounters \(maxCounters) out of range 1...\(StatsLayout.maxCountersLimit)")
        }
        try Self.refuseIfOwnedByAnotherProcess(path: path, instance: instance)

        let geometry = StatsGeometry(maxCounters: maxCounters, slotCount: workerCount + 1)
        let (mapping, identity) = try Self.createAndPublish(
            path: path, geometry: geometry, instance: instance, workerCount: workerCount)
        self.path = path
        self.instance = instance
        self.maxCounters = maxCounters
        self.workerCount = workerCount
        self.geometry = geometry
        self.mapping = mapping
        self.identity = identity
    }

    deinit {
        mapping.unmap()
    }

    // MARK: Directory

    /// The id of `name`, adding it to the directory if new. Registering a name
    /// again returns the same id (and does not change the epoch); registering it
    /// with another kind is an error, as is a full directory.
    public func register(_ name: String, kind: CounterKind = .counter) throws(StatsError) -> CounterID {
        if let problem = counterNameProblem(name) {
            throw StatsError("stats segment \(path): \(problem)")
        }
        return try registry.withLock { (state: inout Registry) throws(StatsError) -> CounterID in
            if let index = state.indexByName[name] {
                if state.retired.contains(index) {
                    // Back again (a port re-added by a reload): the same entry, from zero.
                    state.retired.remove(index)
                    state.kinds[index] = kind
                    publishEntry(index: index, name: name, kind: kind)
                    return CounterID(index: index)
                }
                guard state.kinds[index] == kind else {
                    throw StatsError(
                        "stats segment \(path): '\(name)' is already registered as a \(state.kinds[index]), not a \(kind)")
                }
                return CounterID(index: index)
            }
            let index = state.kinds.count
            guard index < maxCounters else {
                throw StatsError(
                    "stats segment \(path): counter directory is full (\(maxCounters) names), cannot register '\(name)'")
            }
            publishEntry(index: index, name: name, kind: kind)
            state.indexByName[name] = index
            state.kinds.append(kind)
            return CounterID(index: index)
        }
    }

    /// Hide the counters `names` (a port or switch removed at run time) and zero them in
    /// every slot, so that registering a name again starts from zero. Only while no
    /// thread writes those counters any more. Unknown names are skipped. Returns how many.
    @discardableResult
    public func retire<S: Sequence<String>>(names: S) -> Int {
        registry.withLock { state in
            var n = 0
            for name in names {
                guard let index = state.indexByName[name], !state.retired.contains(index) else { continue }
                state.retired.insert(index)
                for slot in 0..<geometry.slotCount {
                    sl_store_relaxed_u64(mapping.base + geometry.slotsOffset + slot * geometry.slotStride + index * 8, 0)
                }
                setFlags(index: index, StatsLayout.flagRetired)
                n += 1
            }
            return n
        }
    }

    /// Names retired and not registered again. For tests.
    public func isRetired(_ name: String) -> Bool {
        registry.withLock { state in state.indexByName[name].map { state.retired.contains($0) } ?? false }
    }

    /// Change an entry's flags under the epoch. Caller holds the registry mutex.
    private func setFlags(index: Int, _ flags: UInt8) {
        let base = mapping.base
        let epoch = sl_load_relaxed_u64(base + StatsLayout.offEpoch)
        sl_store_relaxed_u64(base + StatsLayout.offEpoch, epoch &+ 1)
        sl_fence_release()
        let entry = base + geometry.directoryOffset + index * StatsLayout.entrySize
        entry.storeBytes(of: flags, toByteOffset: StatsLayout.entryFlags, as: UInt8.self)
        sl_store_release_u64(base + StatsLayout.offEpoch, epoch &+ 2)
    }

    /// The id of an already registered name.
    public func lookup(_ name: String) -> CounterID? {
        registry.withLock { state in state.indexByName[name].map { CounterID(index: $0) } }
    }

    /// Names in the directory.
    public var registeredCount: Int {
        Int(sl_load_acquire_u64(mapping.base + StatsLayout.offCount))
    }

    /// Write one entry under the seqlock. Caller holds the registry mutex.
    private func publishEntry(index: Int, name: String, kind: CounterKind) {
        let base = mapping.base
        let epoch = sl_load_relaxed_u64(base + StatsLayout.offEpoch)
        sl_store_relaxed_u64(base + StatsLayout.offEpoch, epoch &+ 1)  // odd: changing
        // Orders the odd epoch before the entry stores below; pairs with the
        // reader's sl_fence_acquire before it re-reads the epoch.
        sl_fence_release()

        let entry = base + geometry.directoryOffset + index * StatsLayout.entrySize
        entry.initializeMemory(as: UInt8.self, repeating: 0, count: StatsLayout.entrySize)
        var length = 0
        for byte in name.utf8 {
            entry.storeBytes(of: byte, toByteOffset: StatsLayout.entryName + length, as: UInt8.self)
            length += 1
        }
        entry.storeBytes(of: kind.rawValue, toByteOffset: StatsLayout.entryKind, as: UInt8.self)
        entry.storeBytes(of: UInt8(length), toByteOffset: StatsLayout.entryNameLength, as: UInt8.self)

        // Publishes the entry; pairs with the reader's acquire load of the count.
        let count = sl_load_relaxed_u64(base + StatsLayout.offCount)
        sl_store_release_u64(base + StatsLayout.offCount, max(count, UInt64(index + 1)))
        // Even: stable again; pairs with the reader's acquire load of the epoch.
        sl_store_release_u64(base + StatsLayout.offEpoch, epoch &+ 2)
    }

    /// The directory epoch (even when stable). For tests.
    var epoch: UInt64 {
        sl_load_acquire_u64(mapping.base + StatsLayout.offEpoch)
    }

    // MARK: Counters

    /// The handle for counter `id` in `slot`. Only the thread owning `slot` may
    /// write through it.
    public func counter(_ id: CounterID, slot: Int) -> StatsCounter {
        precondition(slot >= 0 && slot < geometry.slotCount, "stats slot \(slot) out of range 0...\(workerCount)")
        precondition(id.index >= 0 && id.index < registeredCount, "counter id \(id.index) was not registered")
        let word = mapping.base + geometry.slotsOffset + slot * geometry.slotStride + id.index * 8
        return StatsCounter(word: word)
    }

    /// The sum of a counter over all slots, as a reader would see it.
    public func total(_ id: CounterID) -> UInt64 {
        var sum: UInt64 = 0
        for slot in 0..<geometry.slotCount {
            sum &+= counter(id, slot: slot).value
        }
        return sum
    }

    // MARK: Liveness

    /// Record that the daemon is alive now. Call every ~100 ms.
    public func beat() {
        beat(at: realtimeNanoseconds())
    }

    /// Record a heartbeat at a given CLOCK_REALTIME time (tests drive the clock).
    public func beat(at realtimeNanoseconds: UInt64) {
        sl_store_release_u64(mapping.base + StatsLayout.offHeartbeat, realtimeNanoseconds)
    }

    /// Rewrite the pid in the header. For tests that fake a dead writer.
    func overwritePID(_ pid: Int32) {
        mapping.setI32(pid, at: StatsLayout.offPID)
    }

    /// Unlink the file (if the path still names our file) and detach the memory
    /// from it. Handles already given out stay valid and write into private
    /// memory until the writer is deallocated. Calling it twice is harmless.
    public func remove() {
        let first = registry.withLock { state in
            defer { state.removed = true }
            return !state.removed
        }
        guard first else { return }
        if FileIdentity.of(path: path) == identity {
            SharedFile.remove(path)
        }
        mapping.detachFromFile()
    }
}
