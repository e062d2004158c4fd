/// Byte-level reads and writes at an offset in a chain's segments (headers that may
/// straddle descriptors, checksum fields), and the software checksum fallback.

/// Copy `len` bytes at `offset` of `segs` into `out`. Returns false if the chain is short.
@inlinable
public func gatherBytes(_ segs: SegmentList, offset: Int, into out: UnsafeMutableRawPointer, _ len: Int) -> Bool {
    var i = 0, off = offset, done = 0
    while i < segs.count && off >= segs.length(i) { off -= segs.length(i); i += 1 }
    while done < len && i < segs.count {
        let n = min(segs.length(i) - off, len - done)
        (out + done).copyMemory(from: segs.pointer(i) + off, byteCount: n)
        done += n; off = 0; i += 1
    }
    return done == len
}

/// Copy `len` bytes from `src` into `segs` at `offset`. Returns false if the chain is short.
@inlinable
public func scatterBytes(_ segs: SegmentList, offset: Int, from src: UnsafeRawPointer, _ len: Int) -> Bool {
    var i = 0, off = offset, done = 0
    while i < segs.count && off >= segs.length(i) { off -= segs.length(i); i += 1 }
    while done < len && i < segs.count {
        let n = min(segs.length(i) - off, len - done)
        (segs.pointer(i) + off).copyMemory(from: src + done, byteCount: n)
        done += n; off = 0; i += 1
    }
    return done == len
}

/// The Internet checksum (RFC 1071) of bytes [start, start+len) of `segs`, folded and
/// complemented, as the NEEDS_CSUM contract asks (§5.1.6.2: the field already holds
/// the pseudo-header sum). Bytes are summed as big-endian 16-bit words.
@inlinable
public func internetChecksum(_ segs: SegmentList, start: Int, length: Int) -> UInt16 {
    var sum: UInt64 = 0
    var i = 0, off = start, left = length
    var odd = false   // an odd byte is pending from the previous segment
    while i < segs.count && off >= segs.length(i) { off -= segs.length(i); i += 1 }
    while left > 0 && i < segs.count {
        let p = (segs.pointer(i) + off).assumingMemoryBound(to: UInt8.self)
        let n = min(segs.length(i) - off, left)
        var k = 0
        if odd && n > 0 { sum &+= UInt64(p[0]); k = 1; odd = false }
        while k + 1 < n { sum &+= UInt64(p[k]) << 8 | UInt64(p[k + 1]); k += 2 }
        if k < n { sum &+= UInt64(p[k]) << 8; odd = true }
        left -= n; off = 0; i += 1
    }
    while sum >> 16 != 0 { sum = (sum & 0xffff) &+ (sum >> 16) }
    return ~UInt16(truncatingIfNeeded: sum)
}
