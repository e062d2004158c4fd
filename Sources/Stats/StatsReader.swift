// The reading side (sluice-stat, tests): maps the segment read-only, reads the
// directory under the epoch seqlock, sums the slots. Never writes, never
// blocks the writer.

import CSluice
import Platform

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A read-only view of one segment. Not thread-safe: one reader per thread.
public final class StatsReader {
    public let path: String
    /// The instance name from the header.
    public let instance: String
    public let pid: Int32
    public let workerCount: Int
    public let maxCounters: Int
    public let startTimeNanoseconds: UInt64

    /// A heartbeat older than this many seconds means the daemon is gone.
    public static let staleAfterSeconds = 3.0

    private let geometry: StatsGeometry
    private let mapping: SegmentMapping
    private let identity: FileIdentity

    /// Open `/dev/shm/sluice-<instance>.stats`.
    public convenience init(instance: String) throws(StatsError) {
        if let problem = instanceNameProblem(instance) { throw StatsError(problem) }
        try self.init(path: StatsPath.path(forInstance: instance), instanceForErrors: instance)
    }

    /// Open a segment by path.
    public convenience init(path: String) throws(StatsError) {
        try self.init(path: path, instanceForErrors: StatsPath.instance(forPath: path))
    }

    private init(path: String, instanceForErrors instance: String?) throws(StatsError) {
        let file: OwnedFD
        do { file = try SharedFile.openReadOnly(path: path) } catch {
            let code = error.errno
            let who = instance.map { "instance '\($0)'" } ?? "the sluice instance writing it"
            if code == ENOENT {
                throw StatsError(
                    "no stats segment at \(path): \(who) is not running (or runs under another instance name)")
            }
            throw StatsError("cannot open stats segment \(path) of \(who): \(errnoText(code))")
        }
        let status: FileStatus
        do { status = try SharedFile.status(file.raw) } catch {
            throw StatsError("cannot stat stats segment \(path): \(errnoText(error.errno))")
        }
        let size = status.size
        guard size >= StatsLayout.headerSize else {
            throw StatsError("\(path) is not a sluice stats segment (only \(size) bytes)")
        }
        let mapping: SegmentMapping
        do { mapping = try SegmentMapping.map(fd: file.raw, size: size, writable: false) } catch {
            throw StatsError("cannot map stats segment \(path): \(errnoText(error.errno))")
        }
        let geometry: StatsGeometry
        do throws(StatsError) {
            geometry = try Self.validateHeader(mapping, path: path, size: size)
        } catch {
            mapping.unmap()
            throw error
        }
        self.path = path
        self.mapping = mapping
        self.geometry = geometry
        self.identity = FileIdentity(status)
        self.instance = mapping.string(at: StatsLayout.offInstance, capacity: StatsLayout.maxInstanceBytes + 1)
        self.pid = mapping.i32(at: StatsLayout.offPID)
        self.workerCount = Int(mapping.u32(at: StatsLayout.offWorkerCount))
        self.maxCounters = geometry.maxCounters
        self.startTimeNanoseconds = mapping.u64(at: StatsLayout.offStartTime)
    }

    deinit {
        mapping.unmap()
    }

    private static func validateHeader(_ mapping: SegmentMapping, path: String, size: Int) throws(StatsError) -> StatsGeometry {
        typealias L = StatsLayout
        // Pairs with the writer's release store of the magic, written last.
        guard sl_load_acquire_u64(mapping.base + L.offMagic) == L.magic else {
            throw StatsError("\(path) is not a sluice stats segment (bad magic)")
        }
        let version = mapping.u32(at: L.offVersion)
        guard version == L.version else {
            throw StatsError("stats segment \(path) has layout version \(version); this reader understands \(L.version)")
        }
        guard Int(mapping.u32(at: L.offHeaderSize)) == L.headerSize,
              Int(mapping.u32(at: L.offEntrySize)) == L.entrySize
        else {
            throw StatsError("stats segment \(path) has a corrupt header (sizes)")
        }
        let workers = Int(mapping.u32(at: L.offWorkerCount))
        let geometry = StatsGeometry(
            maxCounters: Int(mapping.u32(at: L.offMaxCounters)),
            slotCount: Int(mapping.u32(at: L.offSlotCount)),
            directoryOffset: Int(clamping: mapping.u64(at: L.offDirectoryOffset)),
            slotsOffset: Int(clamping: mapping.u64(at: L.offSlotsOffset)),
            slotStride: Int(clamping: mapping.u64(at: L.offSlotStride)),
            fileSize: Int(clamping: mapping.u64(at: L.offFileSize)))
        if let problem = geometry.problem(available: size) {
            throw StatsError("stats segment \(path) has a corrupt header: \(problem)")
        }
        guard workers + 1 == geometry.slotCount else {
            throw StatsError("stats segment \(path) has a corrupt header: \(workers) workers but \(geometry.slotCount) slots")
        }
        return geometry
    }

    /// True when `path` no longer names the file this reader mapped (the daemon
    /// removed it, or restarted and published a new one). Reopen to follow it.
    public var fileWasReplaced: Bool {
        FileIdentity.of(path: path) != identity
    }

    /// Read the directory and sum every counter over all slots.
    public func snapshot() throws(StatsError) -> StatsSnapshot {
        try snapshot(now: realtimeNanoseconds())
    }

    /// `snapshot()` at a given CLOCK_REALTIME time (tests drive the clock).
    public func snapshot(now: UInt64) throws(StatsError) -> StatsSnapshot {
        let (names, epoch) = try readDirectory()
        var values = [UInt64](repeating: 0, count: names.count)
        for slot in 0..<geometry.slotCount {
            let block = UnsafeRawPointer(mapping.base + geometry.slotsOffset + slot * geometry.slotStride)
            for index in values.indices {
                values[index] &+= sl_load_relaxed_u64(block + index * 8)
            }
        }
        var entries: [(name: String, kind: CounterKind, value: UInt64)] = []
        entries.reserveCapacity(names.count)
        for (index, entry) in names.enumerated() where !entry.retired {
            entries.append((name: entry.name, kind: entry.kind, value: values[index]))
        }

        let heartbeat = sl_load_acquire_u64(mapping.base + StatsLayout.offHeartbeat)
        let age = now > heartbeat ? Double(now - heartbeat) / 1e9 : 0
        let exists = processExists(pid)
        let live = exists && age < Self.staleAfterSeconds
        let reason: String? = live
            ? nil
            : "last heartbeat \(formatSeconds(age)) s ago, pid \(pid) \(exists ? "still exists" : "gone")"
        return StatsSnapshot(
            entries: entries, epoch: epoch, pid: pid, heartbeatAgeSeconds: age, isLive: live,
            staleReason: reason, instance: instance, workerCount: workerCount,
            startTimeNanoseconds: startTimeNanoseconds)
    }

    /// Retired entries (things removed at run time) are read but not shown.
    private typealias DirectoryEntry = (name: String, kind: CounterKind, retired: Bool)

    /// The directory at one stable epoch (seqlock read, retried while it changes).
    private func readDirectory() throws(StatsError) -> ([DirectoryEntry], UInt64) {
        let epochWord = UnsafeRawPointer(mapping.base + StatsLayout.offEpoch)
        let countWord = UnsafeRawPointer(mapping.base + StatsLayout.offCount)
        for attempt in 0..<2_000 {
            // Pairs with the writer's release store of the even epoch.
            let before = sl_load_acquire_u64(epochWord)
            if before & 1 == 1 {
                if attempt < 100 { sl_pause() } else { Clock.sleep(micros: 50) }
                continue
            }
            let read = readEntries(count: sl_load_acquire_u64(countWord))
            // Pairs with the writer's sl_fence_release after its odd epoch store.
            sl_fence_acquire()
            if sl_load_relaxed_u64(epochWord) == before {
                return (try read.get(), before)
            }
        }
        // The epoch never settled: a writer died in the middle of a change. The
        // entries below the count are complete (the count is published after the
        // entry, with release), so they are still safe to show.
        let read = readEntries(count: sl_load_acquire_u64(countWord))
        return (try read.get(), sl_load_acquire_u64(epochWord))
    }

    /// The first `count` entries, or the error for the first corrupt one (only
    /// meaningful once the epoch check has passed).
    private func readEntries(count rawCount: UInt64) -> Result<[DirectoryEntry], StatsError> {
        let count = Int(min(rawCount, UInt64(geometry.maxCounters)))
        var entries: [DirectoryEntry] = []
        entries.reserveCapacity(count)
        for index in 0..<count {
            let entry = UnsafeRawBufferPointer(
                start: mapping.base + geometry.directoryOffset + index * StatsLayout.entrySize,
                count: StatsLayout.entrySize)
            let length = Int(entry[StatsLayout.entryNameLength])
            let nameBytes = entry[StatsLayout.entryName..<(StatsLayout.entryName + min(length, StatsLayout.maxNameBytes))]
            guard length > 0, length <= StatsLayout.maxNameBytes,
                  nameBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
                  let kind = CounterKind(rawValue: entry[StatsLayout.entryKind])
            else {
                return .failure(StatsError("stats segment \(path): directory entry \(index) is corrupt"))
            }
            entries.append((name: String(decoding: nameBytes, as: UTF8.self), kind: kind,
                            retired: entry[StatsLayout.entryFlags] & StatsLayout.flagRetired != 0))
        }
        return .success(entries)
    }
}

/// "12.3" — one decimal, for messages.
func formatSeconds(_ seconds: Double) -> String {
    let tenths = (seconds * 10).rounded()
    guard tenths.isFinite, tenths < 1e15 else { return "\(seconds)" }
    let whole = Int(tenths) / 10
    let fraction = Int(tenths) % 10
    return "\(whole).\(fraction)"
}
