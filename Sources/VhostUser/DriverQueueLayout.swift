// Split virtqueue layout and notification arithmetic, as the driver sees them.
//
// Source: Virtual I/O Device (VIRTIO) Version 1.2, §2.7 "Split Virtqueues":
//   descriptor table  16 bytes × size     (§2.7.5)  addr u64, len u32, flags u16, next u16
//   available ring    flags u16, idx u16, ring[size] u16, used_event u16   (§2.7.6)
//   used ring         flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16 (§2.7.8)
// Everything is little endian, which every host sluice runs on is.

/// Byte offsets and sizes of one split virtqueue of `size` entries.
public struct DriverQueueLayout: Equatable, Sendable {
    /// Entries: a power of two, 1...32768 (§2.7: "Queue Size ... a power of 2").
    public let size: Int

    public static let descriptorSize = 16
    public static let maxSize = 32_768

    // Descriptor flags (§2.7.5).
    public static let descriptorNext: UInt16 = 1
    public static let descriptorWrite: UInt16 = 2
    public static let descriptorIndirect: UInt16 = 4
    /// Available ring flag: "do not interrupt me" (ignored by the device under EVENT_IDX).
    public static let availNoInterrupt: UInt16 = 1
    /// Used ring flag: "do not kick me" (ignored by the driver under EVENT_IDX).
    public static let usedNoNotify: UInt16 = 1

    public init?(size: Int) {
        guard size >= 1, size <= Self.maxSize, size & (size - 1) == 0 else { return nil }
        self.size = size
    }

    public var descriptorTableBytes: Int { Self.descriptorSize * size }
    /// flags, idx, ring[size], used_event.
    public var availRingBytes: Int { 4 + 2 * size + 2 }
    /// flags, idx, ring[size] of 8-byte elements, avail_event.
    public var usedRingBytes: Int { 4 + 8 * size + 2 }

    // Offsets inside the available ring.
    static let availFlagsOffset = 0
    static let availIndexOffset = 2
    static func availEntryOffset(_ slot: Int) -> Int { 4 + 2 * slot }
    var usedEventOffset: Int { 4 + 2 * size }

    // Offsets inside the used ring.
    static let usedFlagsOffset = 0
    static let usedIndexOffset = 2
    static func usedElementOffset(_ slot: Int) -> Int { 4 + 8 * slot }
    var availEventOffset: Int { 4 + 8 * size }

    /// `n` rounded up to a multiple of `alignment` (a power of two).
    @inline(__always)
    public static func alignUp(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) & ~(alignment - 1) }
}

/// `vring_need_event` (§2.7.10): whether moving an index from `old` to `new`
/// crosses the other side's event index `event`, i.e. `event` is in
/// `[old, new)` modulo 2^16. Used for kicks (event = avail_event) and, by a
/// device, for calls (event = used_event).
@inline(__always)
public func virtqueueNeedsEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
    (new &- event &- 1) < (new &- old)
}
