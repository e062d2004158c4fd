import CSluice

/// Host-side view of one descriptor chain: up to `capacity` (pointer, length)
/// segments. The storage is scratch memory allocated once per poll entry (owned by
/// the one worker that polls it), so walking a chain never allocates or copies.
@frozen
public struct SegmentList: BitwiseCopyable, @unchecked Sendable {
    public static let capacity = 64
    // Layout: count (Int) | totalLength (Int) | addrs [capacity × UInt] | lens [capacity × UInt32]
    @usableFromInline let base: UnsafeMutableRawPointer

    public static func allocate() -> SegmentList {
        let bytes = 16 + capacity * 8 + capacity * 4
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return SegmentList(base: p)
    }

    @usableFromInline init(base: UnsafeMutableRawPointer) { self.base = base }

    public func deallocate() { base.deallocate() }

    @inlinable public var count: Int {
        get { base.load(as: Int.self) }
        nonmutating set { base.storeBytes(of: newValue, as: Int.self) }
    }

    @inlinable public var totalLength: Int {
        get { base.load(fromByteOffset: 8, as: Int.self) }
        nonmutating set { base.storeBytes(of: newValue, toByteOffset: 8, as: Int.self) }
    }

    @inlinable var addrs: UnsafeMutablePointer<UInt> {
        (base + 16).assumingMemoryBound(to: UInt.self)
    }

    @inlinable var lensPtr: UnsafeMutablePointer<UInt32> {
        (base + 16 + Self.capacity * 8).assumingMemoryBound(to: UInt32.self)
    }

    @inlinable public func reset() { count = 0; totalLength = 0 }

    @inlinable public func pointer(_ i: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: addrs[i]).unsafelyUnwrapped
    }

    @inlinable public func length(_ i: Int) -> Int { Int(lensPtr[i]) }

    /// Append a segment; false when full.
    @inlinable public func append(_ p: UnsafeMutableRawPointer, _ len: UInt32) -> Bool {
        let n = count
        guard n < Self.capacity else { return false }
        addrs[n] = UInt(bitPattern: p)
        lensPtr[n] = len
        count = n &+ 1
        totalLength = totalLength &+ Int(len)
        return true
    }
}

/// Why a chain was refused (each maps to a drop counter).
public enum ChainError: UInt8, Sendable {
    case none = 0
    /// Index out of range, loop, too long, bad indirect table, address outside guest memory,
    /// or a buffer of the wrong direction.
    case badDescriptor
}

extension Virtqueue {
    /// Walk the chain starting at `head`, translating every buffer, into `segs`.
    /// `deviceWrites`: true for RX chains (all buffers must be device-writable), false
    /// for TX chains (all must be device-readable). Never follows a loop: at most
    /// `size` steps per table, one level of indirection, `SegmentList.capacity` buffers.
    @inlinable
    public func walkChain(head: UInt16, deviceWrites: Bool, into segs: SegmentList) -> ChainError {
        segs.reset()
        return visitChain(head: head) { p, len, writes in
            writes == deviceWrites && segs.append(p, len)
        }
    }

    /// Visit every buffer of the chain at `head` in order: its host address (translated,
    /// bounds-checked), length and whether the device may write it; zero-length buffers
    /// are skipped. `visit` returns false to refuse the chain. `.badDescriptor` for an
    /// index out of range, a loop (more steps than the table has entries), a bad indirect
    /// table (§2.7.5.3: one level, whole descriptors, not with NEXT), an address outside
    /// guest memory, or a refused buffer.
    @inlinable @inline(__always)
    public func visitChain(head: UInt16, _ visit: (UnsafeMutableRawPointer, UInt32, Bool) -> Bool) -> ChainError {
        let s = state
        guard let mem = s.pointee.memory else { return .badDescriptor }
        var table = s.pointee.desc.unsafelyUnwrapped
        var tableSize = UInt32(s.pointee.size)
        var idx = UInt32(head)
        var steps: UInt32 = 0
        var inIndirect = false
        while true {
            guard idx < tableSize else { return .badDescriptor }
            let d = table + Int(idx) &* 16
            // Unaligned loads: an indirect table may sit at any guest address.
            let addr = d.loadUnaligned(as: UInt64.self)
            let len = d.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
            let flags = d.loadUnaligned(fromByteOffset: 12, as: UInt16.self)
            let next = d.loadUnaligned(fromByteOffset: 14, as: UInt16.self)
            steps &+= 1
            guard steps <= tableSize else { return .badDescriptor }
            if flags & VringDescFlag.indirect != 0 {
                guard s.pointee.indirect, !inIndirect, flags & VringDescFlag.next == 0,
                      len >= 16, len & 15 == 0, len >> 4 <= UInt32(s.pointee.size),
                      let t = mem.translate(addr, len) else { return .badDescriptor }
                table = t
                tableSize = len >> 4
                idx = 0
                steps = 0
                inIndirect = true
                continue
            }
            if len > 0 {
                guard let p = mem.translate(addr, len), visit(p, len, flags & VringDescFlag.write != 0) else {
                    return .badDescriptor
                }
            }
            if flags & VringDescFlag.next == 0 { return .none }
            idx = UInt32(next)
        }
    }
}

extension Virtqueue {
    /// The common chain, answered without touching a `SegmentList`: when the chain at
    /// `head` is one direct descriptor of the right direction with a non-empty buffer
    /// inside guest memory, its host pointer and length; otherwise nil and the caller
    /// walks the chain with `walkChain` (which also judges whether it is bad).
    @inlinable @inline(__always)
    public func singleBuffer(head: UInt16, deviceWrites: Bool) -> (pointer: UnsafeMutableRawPointer, length: Int)? {
        let s = state
        guard head < s.pointee.size, let mem = s.pointee.memory else { return nil }
        let d = s.pointee.desc.unsafelyUnwrapped + Int(head) &* 16
        let flags = d.loadUnaligned(fromByteOffset: 12, as: UInt16.self)
        let want: UInt16 = deviceWrites ? VringDescFlag.write : 0
        guard flags & (VringDescFlag.next | VringDescFlag.indirect | VringDescFlag.write) == want else { return nil }
        let len = d.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard len > 0, let p = mem.translate(d.loadUnaligned(as: UInt64.self), len) else { return nil }
        return (p, Int(len))
    }

    /// The first descriptor's buffer of the chain at `head`, translated (at most
    /// `limit` bytes checked), for prefetch hints only: nil for an indirect chain or
    /// anything that does not translate; nothing followed or validated further.
    @inlinable
    func firstBufferHint(head: UInt16, limit: UInt32) -> (pointer: UnsafeMutableRawPointer, length: UInt32)? {
        let s = state
        guard head < s.pointee.size, let mem = s.pointee.memory else { return nil }
        let d = s.pointee.desc.unsafelyUnwrapped + Int(head) &* 16
        if d.loadUnaligned(fromByteOffset: 12, as: UInt16.self) & VringDescFlag.indirect != 0 { return nil }
        let len = d.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard let p = mem.translate(d.loadUnaligned(as: UInt64.self), len < limit ? len : limit) else { return nil }
        return (p, len)
    }

    /// Start loading the first buffer of the chain at `head` (its first two lines, for
    /// reading). Lets the frames' data arrive while earlier ones are copied.
    @inlinable
    public func prefetchFirstBuffer(head: UInt16) {
        guard let (p, len) = firstBufferHint(head: head, limit: 128) else { return }
        sl_prefetch(p)
        if len > 64 { sl_prefetch(p + 64) }
    }

    /// Start loading the first buffer of the RX chain at `head`: the line of its
    /// `headerSize`-byte header for reading (it is rewritten only where it differs), the
    /// line where the frame starts for writing.
    @inlinable
    public func prefetchReceiveBuffer(head: UInt16, headerSize: Int) {
        guard let (p, len) = firstBufferHint(head: head, limit: UInt32(headerSize) &+ 1),
              len > UInt32(headerSize) else { return }
        let frame = p + headerSize
        if UInt(bitPattern: p) & ~63 != UInt(bitPattern: frame) & ~63 { sl_prefetch(p) }
        sl_prefetch_w(frame)
    }
}

/// Copy `length` bytes from the segments of `src` starting at byte `srcOffset` into
/// the segments of `dst` starting at byte `dstOffset`. Returns the bytes copied
/// (less than `length` only if `dst` is too small).
@inlinable
public func copySegments(from src: SegmentList, srcOffset: Int, to dst: SegmentList,
                         dstOffset: Int, length: Int) -> Int {
    var si = 0, so = srcOffset
    while si < src.count && so >= src.length(si) { so -= src.length(si); si += 1 }
    var di = 0, dOff = dstOffset
    while di < dst.count && dOff >= dst.length(di) { dOff -= dst.length(di); di += 1 }
    var left = length
    while left > 0 && si < src.count && di < dst.count {
        let sAvail = src.length(si) - so
        let dAvail = dst.length(di) - dOff
        var n = sAvail < dAvail ? sAvail : dAvail
        if n > left { n = left }
        (dst.pointer(di) + dOff).copyMemory(from: src.pointer(si) + so, byteCount: n)
        left -= n
        so += n; dOff += n
        if so == src.length(si) { si += 1; so = 0 }
        if dOff == dst.length(di) { di += 1; dOff = 0 }
    }
    return length - left
}
