import Stats
import CSluice

/// A switch's MAC learning table: (VLAN, MAC) → port, with a last-seen time.
///
/// Open addressing with linear probing over 16-byte entries in shared memory (the
/// `FdbSegment` file, so `sluice-stat --fdb` reads it live). Every worker that runs a
/// port of the switch looks up and learns without a lock:
/// - a key is claimed with one compare-and-swap (empty or deleted → key), then its
///   value is stored; readers skip a key whose value is still 0;
/// - a known address is written again only when something changed: its port, or its
///   coarse (1 s) timestamp. A line rewritten with the same bytes still moves between
///   CPUs, so an unchanged entry is only read;
/// - two workers learning the same new address at once may both claim a slot; lookups
///   find the first and the other ages out.
/// The control thread ages entries and flushes a port's entries (compare-and-swap
/// to "deleted"), and recounts the per-port totals on each sweep.
@frozen
public struct MacTable: BitwiseCopyable, @unchecked Sendable {
    /// Entries: key u64 (0 empty, ~0 deleted, else VLAN << 48 | MAC), value u64 (port + 1 | seen << 32).
    public let entries: UnsafeMutableRawPointer
    public let mask: Int
    /// Counts: live entries (u32 at 0, its own line), then one u32 per port from byte 64.
    public let counts: UnsafeMutableRawPointer
    /// At most this many live entries (the switch's `max-macs`).
    public let limit: UInt32
    public static let maxProbes = 32

    public enum Learned: UInt8 {
        /// Known on this port (timestamp refreshed if it was older than a second).
        case known
        /// New address, now in the table.
        case learned
        /// Known on another port, now on this one.
        case moved
        /// The switch's table is full: not learned (frames to it are flooded).
        case tableFull
        /// The port has its `max-macs` already.
        case portFull
    }

    public init(entries: UnsafeMutableRawPointer, capacity: Int, counts: UnsafeMutableRawPointer, limit: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0)
        self.entries = entries; self.mask = capacity - 1; self.counts = counts; self.limit = UInt32(limit)
    }

    /// Bytes of the `counts` block for `ports` ports.
    public static func countsBytes(ports: Int) -> Int { 64 + ports * 4 }

    public var capacity: Int { mask + 1 }

    /// The key of the MAC address at `mac` (6 bytes) in `vlan`.
    @inlinable
    public static func key(mac: UnsafeRawPointer, vlan: UInt16) -> UInt64 {
        let hi = UInt64(UInt16(bigEndian: mac.loadUnaligned(as: UInt16.self)))
        let lo = UInt64(UInt32(bigEndian: mac.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
        return UInt64(vlan) << 48 | hi << 32 | lo
    }

    @inlinable
    func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask }

    @inlinable
    func entry(_ i: Int) -> UnsafeMutableRawPointer { entries + i &* 16 }

    /// The port that `key` was learned on, or -1.
    @inlinable
    public func lookup(_ key: UInt64) -> Int {
        var i = slot(key)
        for _ in 0..<Self.maxProbes {
            let e = entry(i)
            let k = sl_load_acquire_u64(e)
            if k == key {
                let v = sl_load_relaxed_u64(e + 8)
                if v & 0xffff != 0 { return Int(v & 0xffff) &- 1 }
            } else if k == 0 {
                return -1
            }
            i = (i &+ 1) & mask
        }
        return -1
    }

    @inlinable
    func portCount(_ port: Int) -> UnsafeMutableRawPointer { counts + 64 + port &* 4 }

    /// Record that `key` was seen on `port` at `now` (seconds). `portLimit` is the
    /// port's `max-macs` (UInt32.max when unlimited).
    @inlinable
    public func learn(_ key: UInt64, port: Int, now: UInt32, portLimit: UInt32) -> Learned {
        let value = UInt64(port &+ 1) | UInt64(now) << 32
        var i = slot(key)
        var free = -1
        for _ in 0..<Self.maxProbes {
            let e = entry(i)
            let k = sl_load_acquire_u64(e)
            if k == key {
                let v = sl_load_relaxed_u64(e + 8)
                let old = Int(v & 0xffff) &- 1
                if old == port {
                    if UInt32(truncatingIfNeeded: v >> 32) != now { sl_store_relaxed_u64(e + 8, value) }
                    return .known
                }
                if old >= 0 {
                    if sl_fetch_add_u32(portCount(port), 1) >= portLimit {
                        _ = sl_fetch_add_u32(portCount(port), UInt32.max)   // -1
                        return .portFull
                    }
                    _ = sl_fetch_add_u32(portCount(old), UInt32.max)
                    sl_store_release_u64(e + 8, value)
                    return .moved
                }
                // Claimed but not yet valued by another worker: treat as new below.
            } else if k == 0 {
                if free < 0 { free = i }
                break
            } else if k == ~0 && free < 0 {
                free = i
            }
            i = (i &+ 1) & mask
        }
        if free < 0 { return .tableFull }
        if sl_fetch_add_u32(counts, 1) >= limit {
            _ = sl_fetch_add_u32(counts, UInt32.max)
            return .tableFull
        }
        if sl_fetch_add_u32(portCount(port), 1) >= portLimit {
            _ = sl_fetch_add_u32(portCount(port), UInt32.max)
            _ = sl_fetch_add_u32(counts, UInt32.max)
            return .portFull
        }
        let e = entry(free)
        var expected = sl_load_relaxed_u64(e)
        if (expected == 0 || expected == ~0) && sl_cas_u64(e, &expected, key) {
            sl_store_release_u64(e + 8, value)
            return .learned
        }
        // Another worker took the slot first; learn on a later frame.
        _ = sl_fetch_add_u32(portCount(port), UInt32.max)
        _ = sl_fetch_add_u32(counts, UInt32.max)
        return .known
    }

    /// Live entries now.
    public var count: Int { Int(sl_load_relaxed_u32(counts)) }

    public func count(port: Int) -> Int { Int(sl_load_relaxed_u32(portCount(port))) }

    /// Control thread: delete entries older than `aging` seconds (0 = never) and those
    /// of the ports `flush` says; then recount. Returns (aged, flushed).
    public func sweep(now: UInt32, aging: UInt32, ports: Int, flush: (Int) -> Bool) -> (aged: Int, flushed: Int) {
        var aged = 0, flushed = 0
        var perPort = [UInt32](repeating: 0, count: ports)
        var live: UInt32 = 0
        for i in 0...mask {
            let e = entry(i)
            var k = sl_load_acquire_u64(e)
            guard k != 0, k != ~0 else { continue }
            let v = sl_load_relaxed_u64(e + 8)
            guard v & 0xffff != 0 else { continue }
            let port = Int(v & 0xffff) - 1
            let seen = UInt32(truncatingIfNeeded: v >> 32)
            let old = aging > 0 && now &- seen > aging && now >= seen
            let drop = port < ports && flush(port)
            if old || drop {
                if sl_cas_u64(e, &k, ~0) {
                    sl_store_release_u64(e + 8, 0)
                    if drop { flushed += 1 } else { aged += 1 }
                    continue
                }
            }
            live += 1
            if port < ports { perPort[port] += 1 }
        }
        // Deleted slots followed by an empty one end their probe chains: make them empty.
        var i = mask
        while i >= 0 {
            let e = entry(i)
            var k = sl_load_relaxed_u64(e)
            if k == ~0 && sl_load_relaxed_u64(entry((i + 1) & mask)) == 0 { _ = sl_cas_u64(e, &k, 0) }
            i -= 1
        }
        sl_store_relaxed_u32(counts, live)
        for p in 0..<ports { sl_store_relaxed_u32(portCount(p), perPort[p]) }
        return (aged, flushed)
    }
}
