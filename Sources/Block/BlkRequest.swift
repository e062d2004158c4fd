#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Virtio

/// One request slot of a blk queue, indexed by the chain's head (heads are unique while
/// a request is in flight): the data buffers as iovecs straight into guest memory, the
/// status byte, and what the request is. Lives in memory the queue owns; the kernel
/// reads the iovecs until the request completes.
@frozen
public struct BlkSlot: BitwiseCopyable {
    public var iov: UnsafeMutablePointer<iovec>
    public var iovCount: Int32 = 0
    public var busy = false
    /// Sent again without O_DIRECT (which refused it with EINVAL).
    public var buffered = false
    public var type: UInt32 = 0
    public var status: UnsafeMutablePointer<UInt8>? = nil
    public var sector: UInt64 = 0
    /// Data bytes (IN/OUT), or bytes of the GET_ID answer.
    public var bytes: UInt32 = 0
    /// TSC when the request was taken.
    public var start: UInt64 = 0

    public init(iov: UnsafeMutablePointer<iovec>) { self.iov = iov }
}

/// What parsing a chain found.
public enum BlkParse: UInt8, Sendable {
    /// A request to run: type, sector, data iovecs and status are in the slot.
    case ok
    /// The status byte is known but the request is wrong (directions, lengths, range):
    /// complete with IOERR.
    case ioerr
    /// A request type this device does not do (or not as asked): complete with UNSUPP.
    case unsupp
    /// Not even a status byte to answer in (loops, addresses outside guest memory, no
    /// writable buffer): the chain goes back with length 0 and is counted.
    case badChain
}

public enum BlkRequestParser {
    /// Data segments a request may have (`seg_max`); the slot has room for two more
    /// (header and status in descriptors of their own).
    public static let segMax = 126
    public static let iovCapacity = segMax + 2
    /// Largest data transfer of one request (and `max_discard_sectors` × 512).
    public static let maxBytes = 32 << 20

    /// Walk the chain at `head` into `slot` (`Virtqueue.visitChain`): every buffer as an
    /// iovec (device-readable ones first, as the spec orders them), then the 16-byte header taken off the front
    /// and the status byte off the back; what remains is the request's data. Checks
    /// directions, lengths and the sector range against `target`.
    @inlinable
    public static func parse(_ vq: Virtqueue, head: UInt16, into slot: UnsafeMutablePointer<BlkSlot>,
                             target: BlockTarget) -> BlkParse {
        let iov = slot.pointee.iov
        var count = 0
        var firstWritable = -1
        var overflow = false
        var lastWritable: (UnsafeMutableRawPointer, UInt32)? = nil
        var readableBytes = 0, writableBytes = 0
        slot.pointee.status = nil
        slot.pointee.iovCount = 0
        let walked = vq.visitChain(head: head) { p, len, writes in
            if writes {
                if firstWritable < 0 { firstWritable = count }
                lastWritable = (p, len)
                writableBytes &+= Int(len)
            } else {
                // A device-readable buffer after a writable one breaks the layout (§2.7.4.2).
                if firstWritable >= 0 { overflow = true }
                readableBytes &+= Int(len)
            }
            if count < iovCapacity {
                iov[count] = iovec(iov_base: p, iov_len: Int(len))
                count &+= 1
            } else {
                overflow = true
            }
            return true
        }
        guard walked == .none else { return .badChain }
        // The status byte: the last byte of the last device-writable buffer.
        guard let (lastP, lastLen) = lastWritable else { return .badChain }
        slot.pointee.status = (lastP + Int(lastLen) - 1).assumingMemoryBound(to: UInt8.self)
        guard !overflow, readableBytes >= VirtioBlk.headerSize else { return .ioerr }
        // The header: 16 bytes off the front of the readable buffers.
        var header = (UInt64(0), UInt64(0))
        var first = 0
        if iov[0].iov_len >= VirtioBlk.headerSize {
            // The usual layout: the header in (the start of) the first buffer.
            let h = iov[0].iov_base.unsafelyUnwrapped
            header = (h.loadUnaligned(as: UInt64.self), h.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            if iov[0].iov_len == VirtioBlk.headerSize { first = 1 } else {
                iov[0].iov_base = h + VirtioBlk.headerSize
                iov[0].iov_len &-= VirtioBlk.headerSize
            }
        } else {
            withUnsafeMutableBytes(of: &header) { h in
                var need = VirtioBlk.headerSize, at = 0
                while need > 0 {
                    let n = min(need, iov[first].iov_len)
                    (h.baseAddress! + at).copyMemory(from: iov[first].iov_base!, byteCount: n)
                    at &+= n; need &-= n
                    if n == iov[first].iov_len { first &+= 1 } else {
                        iov[first].iov_base = iov[first].iov_base! + n
                        iov[first].iov_len &-= n
                    }
                }
            }
        }
        // The status byte off the back of the last buffer.
        count &-= 1
        if iov[count].iov_len > 1 { iov[count].iov_len &-= 1; count &+= 1 }
        // Data iovecs now are [first, count): shift them to the front.
        if first > 0 {
            var k = 0
            while first &+ k < count { iov[k] = iov[first &+ k]; k &+= 1 }
            count &-= first
        }
        slot.pointee.iovCount = Int32(count)
        let type = UInt32(littleEndian: UInt32(truncatingIfNeeded: header.0))
        let sector = UInt64(littleEndian: header.1)
        slot.pointee.type = type
        slot.pointee.sector = sector
        let dataReadable = readableBytes &- VirtioBlk.headerSize
        let dataWritable = writableBytes &- 1
        switch type {
        case VirtioBlk.RequestType.input, VirtioBlk.RequestType.output:
            let reading = type == VirtioBlk.RequestType.input
            // Reads put data only in writable buffers, writes take it only from readable ones.
            let bytes = reading ? dataWritable : dataReadable
            guard (reading ? dataReadable : dataWritable) == 0, bytes > 0, bytes <= maxBytes,
                  bytes & (VirtioBlk.sectorSize &- 1) == 0, count <= segMax,
                  target.contains(sector: sector, count: UInt64(bytes >> 9)) else { return .ioerr }
            if !reading && target.readOnly { return .ioerr }
            slot.pointee.bytes = UInt32(bytes)
            return .ok
        case VirtioBlk.RequestType.flush:
            guard dataReadable == 0, dataWritable == 0 else { return .ioerr }
            slot.pointee.bytes = 0
            return .ok
        case VirtioBlk.RequestType.getID:
            guard dataReadable == 0, dataWritable > 0 else { return .ioerr }
            slot.pointee.bytes = UInt32(min(dataWritable, VirtioBlk.idBytes))
            return .ok
        case VirtioBlk.RequestType.discard, VirtioBlk.RequestType.writeZeroes:
            // One range (max_discard_seg = max_write_zeroes_seg = 1).
            guard dataWritable == 0, dataReadable == VirtioBlk.rangeSize else { return .ioerr }
            if target.readOnly { return .ioerr }
            var range = (UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &range) { r in
                var at = 0, k = 0
                while at < VirtioBlk.rangeSize && k < count {
                    let n = min(VirtioBlk.rangeSize &- at, iov[k].iov_len)
                    (r.baseAddress! + at).copyMemory(from: iov[k].iov_base!, byteCount: n)
                    at &+= n; k &+= 1
                }
            }
            let rsector = UInt64(littleEndian: range.0)
            let num = UInt32(truncatingIfNeeded: UInt64(littleEndian: range.1))
            let rflags = UInt32(truncatingIfNeeded: UInt64(littleEndian: range.1) >> 32)
            let allowed: UInt32 = type == VirtioBlk.RequestType.writeZeroes ? VirtioBlk.writeZeroesUnmap : 0
            guard rflags & ~allowed == 0 else { return .unsupp }
            guard num > 0, Int(num) <= maxBytes >> 9, target.contains(sector: rsector, count: UInt64(num)) else { return .ioerr }
            slot.pointee.sector = rsector
            slot.pointee.bytes = num
            // The unmap flag rides in iovCount's sign: no iovecs are needed any more.
            slot.pointee.iovCount = rflags & VirtioBlk.writeZeroesUnmap != 0 ? -1 : 0
            return .ok
        default:
            return .unsupp
        }
    }
}
