/// Longest-prefix match over a fixed set of routes: one open-addressing hash table of
/// (length, masked prefix) → port, probed once per distinct prefix length, longest
/// first. A network has few lengths (the ports' /32 or /128, a routed /24 or /64), so a
/// lookup is two or three probes. Built on the control thread, never changed after:
/// a new route set is a new table swapped in while the workers are paused.
public struct PrefixTable4: @unchecked Sendable, BitwiseCopyable {
    /// Occupied slots hold `1 << 63 | length << 32 | prefix`.
    @usableFromInline let keys: UnsafeMutablePointer<UInt64>
    @usableFromInline let values: UnsafeMutablePointer<UInt16>
    @usableFromInline let mask: Int
    /// Distinct lengths, longest first.
    @usableFromInline let lengths: UnsafeMutablePointer<UInt8>
    @usableFromInline let lengthCount: Int

    /// `routes`: (prefix, length, port). A later duplicate of a (prefix, length) wins.
    public init(_ routes: [(prefix: UInt32, length: Int, port: Int)]) {
        var capacity = 16
        while capacity < routes.count * 2 { capacity <<= 1 }
        keys = .allocate(capacity: capacity)
        keys.initialize(repeating: 0, count: capacity)
        values = .allocate(capacity: capacity)
        values.initialize(repeating: 0, count: capacity)
        mask = capacity - 1
        let distinct = Array(Set(routes.map(\.length))).sorted(by: >)
        lengths = .allocate(capacity: max(1, distinct.count))
        for (i, l) in distinct.enumerated() { lengths[i] = UInt8(l) }
        lengthCount = distinct.count
        for r in routes {
            let key = Self.key(r.prefix & Self.netmask(r.length), r.length)
            var i = Self.hash(key) & mask
            while keys[i] != 0 && keys[i] != key { i = (i + 1) & mask }
            keys[i] = key
            values[i] = UInt16(r.port)
        }
    }

    public func destroy() {
        keys.deallocate()
        values.deallocate()
        lengths.deallocate()
    }

    @inlinable @inline(__always)
    static func netmask(_ length: Int) -> UInt32 { length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length) }

    @inlinable @inline(__always)
    static func key(_ prefix: UInt32, _ length: Int) -> UInt64 { 1 << 63 | UInt64(length) << 32 | UInt64(prefix) }

    @inlinable @inline(__always)
    static func hash(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) }

    /// The port of the longest prefix that holds `address` (host order), or -1.
    @inlinable
    public func lookup(_ address: UInt32) -> Int {
        for k in 0..<lengthCount {
            let length = Int(lengths[k])
            let key = Self.key(address & Self.netmask(length), length)
            var i = Self.hash(key) & mask
            while true {
                let slot = keys[i]
                if slot == key { return Int(values[i]) }
                if slot == 0 { break }
                i = (i &+ 1) & mask
            }
        }
        return -1
    }
}

/// The IPv6 twin of `PrefixTable4`: keys are the masked address halves plus the length.
public struct PrefixTable6: @unchecked Sendable, BitwiseCopyable {
    /// Three words per slot: high, low, `1 << 63 | length << 16 | port` (0 = empty).
    @usableFromInline let slots: UnsafeMutablePointer<UInt64>
    @usableFromInline let mask: Int
    @usableFromInline let lengths: UnsafeMutablePointer<UInt8>
    @usableFromInline let lengthCount: Int

    public init(_ routes: [(high: UInt64, low: UInt64, length: Int, port: Int)]) {
        var capacity = 16
        while capacity < routes.count * 2 { capacity <<= 1 }
        slots = .allocate(capacity: capacity * 3)
        slots.initialize(repeating: 0, count: capacity * 3)
        mask = capacity - 1
        let distinct = Array(Set(routes.map(\.length))).sorted(by: >)
        lengths = .allocate(capacity: max(1, distinct.count))
        for (i, l) in distinct.enumerated() { lengths[i] = UInt8(l) }
        lengthCount = distinct.count
        for r in routes {
            let (mh, ml) = Self.netmask(r.length)
            let h = r.high & mh, l = r.low & ml
            var i = Self.hash(h, l, r.length) & mask
            while slots[i * 3 + 2] != 0 && !(slots[i * 3] == h && slots[i * 3 + 1] == l && Int(slots[i * 3 + 2] >> 16 & 0xFF) == r.length) {
                i = (i + 1) & mask
            }
            slots[i * 3] = h
            slots[i * 3 + 1] = l
            slots[i * 3 + 2] = 1 << 63 | UInt64(r.length) << 16 | UInt64(r.port)
        }
    }

    public func destroy() {
        slots.deallocate()
        lengths.deallocate()
    }

    @inlinable @inline(__always)
    static func netmask(_ length: Int) -> (UInt64, UInt64) {
        let h: UInt64 = length >= 64 ? ~0 : (length == 0 ? 0 : ~UInt64(0) << UInt64(64 - length))
        let l: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length))
        return (h, l)
    }

    @inlinable @inline(__always)
    static func hash(_ h: UInt64, _ l: UInt64, _ length: Int) -> Int {
        Int(truncatingIfNeeded: ((h ^ (l &* 0xC2B2_AE3D_27D4_EB4F) ^ UInt64(length)) &* 0x9E37_79B9_7F4A_7C15) >> 32)
    }

    /// The port of the longest prefix that holds `high:low`, or -1.
    @inlinable
    public func lookup(_ high: UInt64, _ low: UInt64) -> Int {
        for k in 0..<lengthCount {
            let length = Int(lengths[k])
            let (mh, ml) = Self.netmask(length)
            let h = high & mh, l = low & ml
            var i = Self.hash(h, l, length) & mask
            while true {
                let tag = slots[i &* 3 &+ 2]
                if tag == 0 { break }
                if slots[i &* 3] == h && slots[i &* 3 &+ 1] == l && Int(tag >> 16 & 0xFF) == length {
                    return Int(tag & 0xFFFF)
                }
                i = (i &+ 1) & mask
            }
        }
        return -1
    }
}
