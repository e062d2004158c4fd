// Creating a segment: temp file, size, header, rename into place.

import CSluice
import Platform

extension StatsWriter {
    /// Refuse to replace the segment of a live daemon other than us.
    static func refuseIfOwnedByAnotherProcess(path: String, instance: String) throws(StatsError) {
        guard let reader = try? StatsReader(path: path), let snapshot = try? reader.snapshot() else { return }
        if snapshot.isLive, snapshot.pid != Processes.currentID {
            let who = instance.isEmpty ? "another sluice" : "instance '\(instance)'"
            throw StatsError("stats segment \(path): \(who) is already running (pid \(snapshot.pid))")
        }
    }

    /// Write a complete segment under a temporary name in the same directory and
    /// rename it over `path`, so a reader only ever opens a finished header.
    static func createAndPublish(
        path: String, geometry: StatsGeometry, instance: String, workerCount: Int
    ) throws(StatsError) -> (SegmentMapping, FileIdentity) {
        let directory: String
        let fileName: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
            fileName = String(path[path.index(after: slash)...])
        } else {
            directory = "."
            fileName = path
        }
        guard !fileName.isEmpty else { throw StatsError("stats segment path '\(path)' names a directory") }
        let tempPath = "\(directory)/.\(fileName).\(Processes.currentID).tmp"

        SharedFile.remove(tempPath)
        let file: OwnedFD
        do { file = try SharedFile.create(path: tempPath, mode: 0o644) } catch {
            throw StatsError("cannot create stats segment \(tempPath): \(errnoText(error.errno))")
        }
        SharedFile.setMode(file.raw, 0o644)  // readable by a non-root sluice-stat whatever the umask

        func fail(_ what: String, _ code: Int32) -> StatsError {
            SharedFile.remove(tempPath)
            return StatsError("cannot create stats segment \(path): \(what): \(errnoText(code))")
        }
        // Allocate every page now: a full /dev/shm fails here, not as SIGBUS in a worker.
        do { try SharedFile.allocate(file.raw, size: geometry.fileSize) } catch {
            throw fail("allocating \(geometry.fileSize) bytes", error.errno)
        }
        let mapping: SegmentMapping
        do { mapping = try SegmentMapping.map(fd: file.raw, size: geometry.fileSize, writable: true) } catch {
            throw fail("mmap", error.errno)
        }
        let status: FileStatus
        do { status = try SharedFile.status(file.raw) } catch {
            mapping.unmap()
            throw fail("fstat", error.errno)
        }

        writeHeader(mapping, geometry: geometry, instance: instance, workerCount: workerCount)

        do { try SharedFile.rename(tempPath, to: path) } catch {
            mapping.unmap()
            throw fail("rename to \(path)", error.errno)
        }
        return (mapping, FileIdentity(status))
    }

    private static func writeHeader(
        _ mapping: SegmentMapping, geometry: StatsGeometry, instance: String, workerCount: Int
    ) {
        typealias L = StatsLayout
        let now = realtimeNanoseconds()
        mapping.setU32(L.version, at: L.offVersion)
        mapping.setU32(UInt32(L.headerSize), at: L.offHeaderSize)
        mapping.setU32(UInt32(geometry.maxCounters), at: L.offMaxCounters)
        mapping.setU32(UInt32(geometry.slotCount), at: L.offSlotCount)
        mapping.setU32(UInt32(workerCount), at: L.offWorkerCount)
        mapping.setU32(UInt32(L.entrySize), at: L.offEntrySize)
        mapping.setU64(UInt64(geometry.directoryOffset), at: L.offDirectoryOffset)
        mapping.setU64(UInt64(geometry.slotsOffset), at: L.offSlotsOffset)
        mapping.setU64(UInt64(geometry.slotStride), at: L.offSlotStride)
        mapping.setU64(UInt64(geometry.fileSize), at: L.offFileSize)
        mapping.setI32(Processes.currentID, at: L.offPID)
        mapping.setU64(now, at: L.offStartTime)
        mapping.setString(instance, at: L.offInstance, capacity: L.maxInstanceBytes + 1)
        mapping.setU64(0, at: L.offEpoch)
        mapping.setU64(0, at: L.offCount)
        mapping.setU64(now, at: L.offHeartbeat)
        // Everything above before the magic that says "complete".
        sl_store_release_u64(mapping.base + L.offMagic, L.magic)
    }
}
