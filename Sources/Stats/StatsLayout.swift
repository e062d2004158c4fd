// The byte layout of a stats segment, shared by the writer and the reader.
//
//   0      header (4 KiB)
//            0  magic "SLUICEST"            u64
//            8  layout version              u32
//           12  header size                 u32
//           16  maxCounters                 u32
//           20  slot count (workers + 1)    u32
//           24  worker count                u32
//           28  directory entry size        u32
//           32  directory offset            u64
//           40  slots offset                u64
//           48  slot stride                 u64
//           56  file size                   u64
//           64  writer pid                  i32
//           72  start time, CLOCK_REALTIME ns u64
//           80  instance name, NUL padded   64 bytes
//          192  epoch (own cache line)      u64  odd while the directory changes
//          200  directory count             u64  entries in use, published last
//          256  heartbeat (own cache line)  u64  CLOCK_REALTIME ns
//   4 KiB  directory: maxCounters entries of 64 bytes
//            0..<56  name, NUL padded (at most 55 bytes)
//           56       kind (CounterKind raw value)
//           57       name length
//           58       flags: bit 0 = retired (the thing it counted is gone; readers skip it)
//   slots  slotCount blocks, each on a 4 KiB boundary, one u64 per entry.
//          Block `s` is written only by the thread that owns slot `s`.
//
// Every multi-byte field is in host byte order: the reader runs on the same host.

enum StatsLayout {
    /// "SLUICEST" read as a little-endian u64.
    static let magic: UInt64 = 0x5453_4543_4955_4C53
    static let version: UInt32 = 1

    static let headerSize = 4096
    static let entrySize = 64
    static let maxNameBytes = 55
    static let maxInstanceBytes = 63
    static let slotAlignment = 4096
    static let cacheLine = 64

    static let maxCountersLimit = 1 << 20
    static let maxSlotsLimit = 4096

    // Header field offsets.
    static let offMagic = 0
    static let offVersion = 8
    static let offHeaderSize = 12
    static let offMaxCounters = 16
    static let offSlotCount = 20
    static let offWorkerCount = 24
    static let offEntrySize = 28
    static let offDirectoryOffset = 32
    static let offSlotsOffset = 40
    static let offSlotStride = 48
    static let offFileSize = 56
    static let offPID = 64
    static let offStartTime = 72
    static let offInstance = 80
    static let offEpoch = 192
    static let offCount = 200
    static let offHeartbeat = 256

    // Directory entry field offsets.
    static let entryName = 0
    static let entryKind = 56
    static let entryNameLength = 57
    static let entryFlags = 58
    static let flagRetired: UInt8 = 1

    static func roundUp(_ value: Int, to alignment: Int) -> Int {
        (value + alignment - 1) / alignment * alignment
    }
}

/// Where things are in one segment. The writer computes it; the reader takes it
/// from the header and checks that it fits in the file before using it.
struct StatsGeometry: Equatable {
    var maxCounters: Int
    var slotCount: Int
    var directoryOffset: Int
    var slotsOffset: Int
    var slotStride: Int
    var fileSize: Int

    /// The layout the writer uses for `maxCounters` names and `slotCount` slots.
    init(maxCounters: Int, slotCount: Int) {
        self.maxCounters = maxCounters
        self.slotCount = slotCount
        directoryOffset = StatsLayout.headerSize
        slotsOffset = StatsLayout.roundUp(
            directoryOffset + maxCounters * StatsLayout.entrySize, to: StatsLayout.slotAlignment)
        slotStride = StatsLayout.roundUp(maxCounters * 8, to: StatsLayout.slotAlignment)
        fileSize = slotsOffset + slotCount * slotStride
    }

    init(maxCounters: Int, slotCount: Int, directoryOffset: Int, slotsOffset: Int, slotStride: Int, fileSize: Int) {
        self.maxCounters = maxCounters
        self.slotCount = slotCount
        self.directoryOffset = directoryOffset
        self.slotsOffset = slotsOffset
        self.slotStride = slotStride
        self.fileSize = fileSize
    }

    /// What is wrong when the regions overlap, are misaligned, or do not fit in
    /// `available` bytes; nil when the geometry is usable. Overflow-checked.
    func problem(available: Int) -> String? {
        guard maxCounters > 0, maxCounters <= StatsLayout.maxCountersLimit else {
            return "maxCounters \(maxCounters) out of range"
        }
        guard slotCount > 0, slotCount <= StatsLayout.maxSlotsLimit else {
            return "slot count \(slotCount) out of range"
        }
        guard directoryOffset >= StatsLayout.headerSize, directoryOffset % StatsLayout.cacheLine == 0 else {
            return "directory offset \(directoryOffset) invalid"
        }
        let directoryEnd = directoryOffset.addingReportingOverflow(maxCounters * StatsLayout.entrySize)
        guard !directoryEnd.overflow, directoryEnd.partialValue <= slotsOffset else {
            return "directory overlaps the counter blocks"
        }
        guard slotsOffset % StatsLayout.cacheLine == 0, slotStride % StatsLayout.cacheLine == 0,
              slotStride >= maxCounters * 8
        else {
            return "counter blocks misaligned or too small"
        }
        let blocks = slotStride.multipliedReportingOverflow(by: slotCount)
        guard !blocks.overflow else { return "counter blocks too large" }
        let end = slotsOffset.addingReportingOverflow(blocks.partialValue)
        guard !end.overflow, end.partialValue <= fileSize, fileSize <= available else {
            return "segment needs \(end.partialValue) bytes, file has \(available)"
        }
        return nil
    }
}
