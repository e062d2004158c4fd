import Stats
import CSluice
import Memory

/// Frame access on mempool buffers as the datapath uses them: the frame starts at
/// `data(p) + offset`, where a signed 16-bit offset in the metadata lets a VLAN tag be
/// pushed into the headroom or popped without moving the payload.
///
/// Metadata used here (see `BufferLayout`): length (u32 at 0), data offset (i16 at 4),
/// input port (u16 at 6), VLAN (u16 at 20: the switch's VLAN for this frame).
extension MempoolRef {
    public static let vlanOffset = 20

    /// Start of the frame bytes.
    @inlinable
    public func frame(_ p: Packet) -> UnsafeMutableRawPointer {
        let off = Int(Int16(bitPattern: buffer(p).load(fromByteOffset: BufferLayout.dataOffset, as: UInt16.self)))
        return data(p) + off
    }

    /// Set a freshly received frame: `length` bytes at `data(p)`.
    @inlinable
    public func setReceived(_ p: Packet, length: Int) {
        let b = buffer(p)
        b.storeBytes(of: UInt32(truncatingIfNeeded: length), toByteOffset: BufferLayout.lengthOffset, as: UInt32.self)
        b.storeBytes(of: 0, toByteOffset: BufferLayout.dataOffset, as: UInt16.self)
    }

    @inlinable
    public func vlan(_ p: Packet) -> UInt16 { buffer(p).load(fromByteOffset: Self.vlanOffset, as: UInt16.self) }

    @inlinable
    public func setVLAN(_ p: Packet, _ v: UInt16) { buffer(p).storeBytes(of: v, toByteOffset: Self.vlanOffset, as: UInt16.self) }

    /// Insert an 802.1Q tag (TPID 0x8100, `tci`) after the MAC addresses, using the headroom.
    @inlinable
    public func pushTag(_ p: Packet, tci: UInt16) {
        let b = buffer(p)
        let off = Int16(bitPattern: b.load(fromByteOffset: BufferLayout.dataOffset, as: UInt16.self)) &- 4
        let f = data(p) + Int(off)
        f.copyMemory(from: f + 4, byteCount: 12)
        f.storeBytes(of: UInt16(0x8100).bigEndian, toByteOffset: 12, as: UInt16.self)
        f.storeBytes(of: tci.bigEndian, toByteOffset: 14, as: UInt16.self)
        b.storeBytes(of: UInt16(bitPattern: off), toByteOffset: BufferLayout.dataOffset, as: UInt16.self)
        setLength(p, length(p) &+ 4)
    }

    /// Remove the 802.1Q tag after the MAC addresses (the caller checked there is one).
    @inlinable
    public func popTag(_ p: Packet) {
        let b = buffer(p)
        let off = Int16(bitPattern: b.load(fromByteOffset: BufferLayout.dataOffset, as: UInt16.self))
        let f = data(p) + Int(off)
        (f + 4).copyMemory(from: f, byteCount: 12)   // overlapping: memmove semantics
        b.storeBytes(of: UInt16(bitPattern: off &+ 4), toByteOffset: BufferLayout.dataOffset, as: UInt16.self)
        setLength(p, length(p) &- 4)
    }

    /// A copy of `p` (frame and VLAN) in a new buffer from `cache`, or nil when the pool is empty.
    @inlinable
    public func clone(_ p: Packet, cache: MempoolCache) -> Packet? {
        guard let c = cache.alloc() else { return nil }
        let n = length(p)
        data(c).copyMemory(from: frame(p), byteCount: n)
        setReceived(c, length: n)
        setVLAN(c, vlan(p))
        return c
    }
}

/// The Internet checksum (RFC 1071) of `length` bytes at `p`, folded, not complemented.
@inlinable
public func onesComplementSum(_ p: UnsafeRawPointer, _ length: Int) -> UInt16 {
    var sum: UInt64 = 0
    var k = 0
    let b = p.assumingMemoryBound(to: UInt8.self)
    while k &+ 1 < length { sum &+= UInt64(b[k]) << 8 | UInt64(b[k &+ 1]); k &+= 2 }
    if k < length { sum &+= UInt64(b[k]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xffff) &+ (sum >> 16) }
    return UInt16(truncatingIfNeeded: sum)
}

/// Complete a checksum a guest left to the device (virtio NEEDS_CSUM): the field at
/// `start + offset` holds the pseudo-header sum; store the checksum of [start, length).
/// A header whose offsets lie outside the frame is ignored.
@inlinable
public func completeChecksum(frame f: UnsafeMutableRawPointer, length: Int, start: Int, offset: Int) {
    guard start >= 0, offset >= 0, start &+ offset &+ 2 <= length else { return }
    let sum = ~onesComplementSum(f + start, length &- start)
    f.storeBytes(of: (sum == 0 ? 0xffff : sum).bigEndian, toByteOffset: start &+ offset, as: UInt16.self)
}
