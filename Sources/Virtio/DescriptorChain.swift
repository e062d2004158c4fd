/// Host-side view of one descriptor chain: up to `capacity` (pointer, length)
/// segments in inline storage. Lives on the worker's stack.
@frozen
public struct SegmentList: ~Copyable {
    public static let capacity = 64
    public var count = 0
    public var totalLength = 0
    public var addrs: InlineArray<64, UInt> = .init(repeating: 0)
    public var lens: InlineArray<64, UInt32> = .init(repeating: 0)

    @inlinable public init() {}

    @inlinable
    public mutating func reset() { count = 0; totalLength = 0 }

    @inlinable
    public func pointer(_ i: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: addrs[i]).unsafelyUnwrapped
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
    public func walkChain(head: UInt16, deviceWrites: Bool, into segs: inout SegmentList) -> ChainError {
        segs.reset()
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
            let addr = d.load(as: UInt64.self)
            let len = d.load(fromByteOffset: 8, as: UInt32.self)
            let flags = d.load(fromByteOffset: 12, as: UInt16.self)
            let next = d.load(fromByteOffset: 14, as: UInt16.self)
            steps &+= 1
            guard steps <= tableSize else { return .badDescriptor }
            if flags & VringDescFlag.indirect != 0 {
                // §2.7.5.3: one level only, a whole number of descriptors, not combined with NEXT.
                guard s.pointee.indirect, !inIndirect, flags & VringDescFlag.next == 0,
                      len >= 16, len & 15 == 0, let t = mem.translate(addr, len) else { return .badDescriptor }
                table = t
                tableSize = len >> 4
                idx = 0
                steps = 0
                inIndirect = true
                continue
            }
            guard (flags & VringDescFlag.write != 0) == deviceWrites else { return .badDescriptor }
            if len > 0 {
                guard segs.count < SegmentList.capacity, let p = mem.translate(addr, len) else { return .badDescriptor }
                segs.addrs[segs.count] = UInt(bitPattern: p)
                segs.lens[segs.count] = len
                segs.count &+= 1
                segs.totalLength &+= Int(len)
            }
            if flags & VringDescFlag.next == 0 { return .none }
            idx = UInt32(next)
        }
    }
}

/// Copy `length` bytes from the segments of `src` starting at byte `srcOffset` into
/// the segments of `dst` starting at byte `dstOffset`. Returns the bytes copied
/// (less than `length` only if `dst` is too small).
@inlinable
public func copySegments(from src: borrowing SegmentList, srcOffset: Int, to dst: borrowing SegmentList,
                         dstOffset: Int, length: Int) -> Int {
    var si = 0, so = srcOffset
    while si < src.count && so >= Int(src.lens[si]) { so -= Int(src.lens[si]); si += 1 }
    var di = 0, dOff = dstOffset
    while di < dst.count && dOff >= Int(dst.lens[di]) { dOff -= Int(dst.lens[di]); di += 1 }
    var left = length
    while left > 0 && si < src.count && di < dst.count {
        let sAvail = Int(src.lens[si]) - so
        let dAvail = Int(dst.lens[di]) - dOff
        var n = sAvail < dAvail ? sAvail : dAvail
        if n > left { n = left }
        (dst.pointer(di) + dOff).copyMemory(from: src.pointer(si) + so, byteCount: n)
        left -= n
        so += n; dOff += n
        if so == Int(src.lens[si]) { si += 1; so = 0 }
        if dOff == Int(dst.lens[di]) { di += 1; dOff = 0 }
    }
    return length - left
}
