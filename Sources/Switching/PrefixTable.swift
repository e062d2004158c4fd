/// IPv4 longest-prefix match over a fixed set of routes: a DIR-16-8-8 table. The top
/// level has an entry per /16 (65,536 entries, 256 KiB); an entry either holds the port
/// of the longest prefix covering that whole /16, or points to a group of 256 entries
/// for the next 8 bits, whose entries again hold a port or point to a group for the last
/// 8 bits. A lookup is one to three dependent loads whatever the number of routes or
/// of distinct lengths. Built on the control thread, never changed after: a new route
/// set is a new table swapped in while the workers are paused.
public struct PrefixTable4: @unchecked Sendable, BitwiseCopyable {
    /// 65,536 entries: 0 = no route, `port + 1`, or `groupBit | group index`.
    @usableFromInline let top: UnsafeMutablePointer<UInt32>
    /// Groups of 256 entries, same encoding.
    @usableFromInline let groups: UnsafeMutablePointer<UInt32>
    public let groupCount: Int

    @usableFromInline static var groupBit: UInt32 { 0x8000_0000 }

    /// `routes`: (prefix, length, port), length 0...32, port 0..<2^31 - 1. A later
    /// duplicate of a (prefix, length) wins.
    public init(_ routes: [(prefix: UInt32, length: Int, port: Int)]) {
        var t = [UInt32](repeating: 0, count: 1 << 16)
        var g: [UInt32] = []
        // Shorter prefixes first (stable: a later duplicate comes later): each route then
        // simply overwrites its whole range, groups included, since everything already
        // there is no longer than it.
        let ordered = routes.enumerated().sorted { ($0.element.length, $0.offset) < ($1.element.length, $1.offset) }
        /// Entry `e` as a group index, making a group (filled with the entry's route) if it is none.
        func group(of e: UInt32) -> (index: Int, entry: UInt32) {
            if e & Self.groupBit != 0 { return (Int(e & ~Self.groupBit), e) }
            let index = g.count >> 8
            g.append(contentsOf: repeatElement(e, count: 256))
            return (index, Self.groupBit | UInt32(index))
        }
        /// Write `value` over `count` entries from `first` of group `gi` (or the top level),
        /// into every group below them.
        func paint(group gi: Int?, first: Int, count: Int, value: UInt32) {
            for i in first..<(first + count) {
                let e = gi.map { g[$0 << 8 | i] } ?? t[i]
                if e & Self.groupBit != 0 {
                    paint(group: Int(e & ~Self.groupBit), first: 0, count: 256, value: value)
                } else if let gi {
                    g[gi << 8 | i] = value
                } else {
                    t[i] = value
                }
            }
        }
        for (_, r) in ordered {
            let length = min(max(r.length, 0), 32)
            let a = r.prefix & Self.netmask(length)
            let value = UInt32(truncatingIfNeeded: r.port &+ 1) & ~Self.groupBit
            if length <= 16 {
                paint(group: nil, first: Int(a >> 16), count: 1 << (16 - length), value: value)
                continue
            }
            let hi = Int(a >> 16)
            let (g2, e2) = group(of: t[hi])
            t[hi] = e2
            if length <= 24 {
                paint(group: g2, first: Int(a >> 8 & 0xFF), count: 1 << (24 - length), value: value)
                continue
            }
            let mid = g2 << 8 | Int(a >> 8 & 0xFF)
            let (g3, e3) = group(of: g[mid])
            g[mid] = e3
            paint(group: g3, first: Int(a & 0xFF), count: 1 << (32 - length), value: value)
        }
        top = .allocate(capacity: t.count)
        top.initialize(from: t, count: t.count)
        groupCount = g.count >> 8
        groups = .allocate(capacity: max(1, g.count))
        groups.initialize(from: g, count: g.count)
    }

    public func destroy() {
        top.deallocate()
        groups.deallocate()
    }

    @inlinable @inline(__always)
    static func netmask(_ length: Int) -> UInt32 { length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length) }

    /// The port of the longest prefix that holds `address` (host order), or -1.
    @inlinable @inline(__always)
    public func lookup(_ address: UInt32) -> Int {
        var e = top[Int(address >> 16)]
        if e & Self.groupBit != 0 {
            e = groups[Int(e & ~Self.groupBit) &<< 8 | Int(address >> 8 & 0xFF)]
            if e & Self.groupBit != 0 {
                e = groups[Int(e & ~Self.groupBit) &<< 8 | Int(address & 0xFF)]
            }
        }
        return Int(e) &- 1
    }
}

/// IPv6 longest-prefix match: one open-addressing hash table of (length, masked address)
/// → port, probed once per distinct prefix length, longest first. A network has few
/// lengths (the ports' /128, a routed /64), so a lookup is two or three probes.
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
