import Block
import Stats

/// Turning a request's data segments (IOVA, bytes — in the pair's scratch arrays) into
/// NVMe commands: where to cut, and each command's PRPs or SGL.
///
/// Cuts: a command carries at most `maxBytes` (MDTS, 2 MiB at most) and every cut lies
/// on a logical block boundary (a command moves whole blocks). With PRPs a command also
/// ends wherever the segments stop being PRP-expressible: every entry after the first
/// is page aligned, so a segment that does not end on a page boundary must be followed
/// by one that starts exactly where it ended (then they are one run of bytes), and a
/// segment that does not start on a page boundary must start the command or continue
/// its predecessor. Such a forced cut has to fall on a block boundary too — if it does
/// not, no split can carry the request and it fails (counted as unexpressible). SGLs
/// need no forced cuts: one Data Block descriptor per run.
@frozen
public struct NVMePart: BitwiseCopyable {
    /// First segment and the offset in it where the command's data starts.
    public var seg: Int
    public var offset: Int
    public var bytes: Int

    @inlinable
    public init(seg: Int, offset: Int, bytes: Int) { self.seg = seg; self.offset = offset; self.bytes = bytes }
}

@frozen
public struct NVMeSplitter {
    @usableFromInline let iova: UnsafeMutablePointer<UInt64>
    @usableFromInline let bytes: UnsafeMutablePointer<Int>
    @usableFromInline let count: Int
    @usableFromInline let blockMask: Int
    @usableFromInline let maxBytes: Int
    @usableFromInline let prp: Bool
    @usableFromInline var seg = 0
    @usableFromInline var offset = 0
    /// The segments cannot be cut into expressible commands.
    public var failed = false

    @inlinable
    public init(iova: UnsafeMutablePointer<UInt64>, bytes: UnsafeMutablePointer<Int>, count: Int, blockMask: Int,
                maxBytes: Int, prp: Bool) {
        self.iova = iova; self.bytes = bytes; self.count = count; self.blockMask = blockMask
        self.maxBytes = maxBytes; self.prp = prp
    }

    @inlinable
    public mutating func next() -> NVMePart? {
        if seg >= count || failed { return nil }
        let part = NVMePart(seg: seg, offset: offset, bytes: 0)
        // PRP1 may start anywhere in a page, but dword aligned (its bits 1:0 are reserved).
        if prp && (iova[seg] &+ UInt64(offset)) & 3 != 0 { failed = true; return nil }
        var n = 0
        while true {
            let avail = bytes[seg] &- offset
            let room = maxBytes &- n
            if avail > room {
                // MDTS: cut inside the segment (maxBytes is a block multiple and the part
                // started on a block boundary).
                offset &+= room
                return NVMePart(seg: part.seg, offset: part.offset, bytes: maxBytes)
            }
            n &+= avail
            seg &+= 1
            offset = 0
            if seg == count || n == maxBytes { break }
            if prp {
                let end = iova[seg &- 1] &+ UInt64(bytes[seg &- 1])
                let start = iova[seg]
                if end != start && (end | start) & 4095 != 0 { break }
            }
        }
        if n & blockMask != 0 { failed = true; return nil }
        return NVMePart(seg: part.seg, offset: part.offset, bytes: n)
    }
}

extension UnsafeMutablePointer where Pointee == NVMeQueuePairState {
    /// PRP1/PRP2 of `c` for `part`; more than two pages go to the CID's list page
    /// (at most 1 + 512 entries: a part is at most 2 MiB).
    @inlinable
    func fillPRP(_ c: inout NVMeCommand, _ part: NVMePart, list: UnsafeMutableRawPointer, listIOVA: UInt64) {
        let segIOVA = pointee.segIOVA, segBytes = pointee.segBytes
        let entries = list.assumingMemoryBound(to: UInt64.self)
        var used = 0   // entries so far: the first is PRP1, the rest entries[used - 1]
        var prevEnd: UInt64 = 0
        var seg = part.seg, offset = part.offset, left = part.bytes
        while left > 0 {
            let a = segIOVA[seg] &+ UInt64(offset)
            let n = Swift.min(segBytes[seg] &- offset, left)
            var page = a & ~4095
            if used == 0 {
                c.prp1 = a
                used = 1
                page &+= 4096
            } else if a == prevEnd && a & 4095 != 0 {
                page &+= 4096   // continues inside the page the previous entry covers
            }
            let end = a &+ UInt64(n)
            while page < end {
                entries[used &- 1] = page
                used &+= 1
                page &+= 4096
            }
            prevEnd = end
            left &-= n
            seg &+= 1
            offset = 0
        }
        if used == 2 { c.prp2 = entries[0] } else if used > 2 { c.prp2 = listIOVA }
    }

    /// SGL1 of `c` for `part`: one Data Block for one run of bytes, else a Last Segment
    /// pointing at Data Blocks in the CID's list page (adjacent segments merged).
    @inlinable
    func fillSGL(_ c: inout NVMeCommand, _ part: NVMePart, list: UnsafeMutableRawPointer, listIOVA: UInt64) {
        let segIOVA = pointee.segIOVA, segBytes = pointee.segBytes
        let d = list.assumingMemoryBound(to: UInt64.self)
        var count = 0
        var lastAddress: UInt64 = 0, lastBytes = 0
        var seg = part.seg, offset = part.offset, left = part.bytes
        while left > 0 {
            let a = segIOVA[seg] &+ UInt64(offset)
            let n = Swift.min(segBytes[seg] &- offset, left)
            if count > 0 && lastAddress &+ UInt64(lastBytes) == a && lastBytes &+ n <= Int(UInt32.max) {
                lastBytes &+= n
            } else {
                if count > 0 {
                    d[2 &* (count &- 1)] = lastAddress
                    d[2 &* (count &- 1) &+ 1] = NVMeSGL.lengthAndType(lastBytes, NVMeSGL.dataBlock)
                }
                count &+= 1
                lastAddress = a
                lastBytes = n
            }
            left &-= n
            seg &+= 1
            offset = 0
        }
        c.cdw0 |= NVMeCommand.psdtSGL
        if count == 1 {
            c.prp1 = lastAddress
            c.prp2 = NVMeSGL.lengthAndType(lastBytes, NVMeSGL.dataBlock)
            return
        }
        d[2 &* (count &- 1)] = lastAddress
        d[2 &* (count &- 1) &+ 1] = NVMeSGL.lengthAndType(lastBytes, NVMeSGL.dataBlock)
        c.prp1 = listIOVA
        c.prp2 = NVMeSGL.lengthAndType(count &* NVMeSGL.descriptorBytes, NVMeSGL.lastSegment)
    }

    /// Reserve a request record and check `parts` CIDs are free. Returns the record, or
    /// -1 (`.full`: try again later) or -2 (`.failed`: more than the pair has at all).
    @inlinable
    func begin(parts: Int, head: UInt16, result: Int32, now: UInt64) -> Int {
        if parts > pointee.cidCount || parts > Int(UInt16.max) { return -2 }
        if parts > pointee.freeCIDCount { return -1 }
        let r = takeRequest()
        let req = pointee.requests + Int(r)
        req.pointee.head = head
        req.pointee.partsLeft = UInt16(truncatingIfNeeded: parts)
        req.pointee.reported = false
        req.pointee.result = result
        req.pointee.reportResult = 0
        req.pointee.deadline = now &+ pointee.timeoutTicks
        return Int(r)
    }

    @inlinable
    func commit() -> BlkPrepare {
        pointee.owed &+= 1
        pointee.preparedRequests &+= 1
        return .queued
    }

    /// Read or Write of the `segments` in the scratch arrays, starting at `lba`: cut,
    /// check CIDs, write the commands. Nothing is written unless all of them fit.
    @inlinable
    func queueTransfer(opcode: UInt8, nsid: UInt32, lba: UInt64, lbaShift: Int, segments: Int, head: UInt16,
                       now: UInt64) -> BlkPrepare {
        let blockMask = (1 &<< lbaShift) &- 1
        let maxBytes = pointee.maxTransfer & ~blockMask
        let prp = !pointee.useSGL
        if maxBytes == 0 || segments == 0 { return refuse() }
        var split = NVMeSplitter(iova: pointee.segIOVA, bytes: pointee.segBytes, count: segments, blockMask: blockMask,
                                 maxBytes: maxBytes, prp: prp)
        var parts = 0, total = 0
        while let p = split.next() { parts &+= 1; total &+= p.bytes }
        if split.failed {
            pointee.unexpressible &+= 1
            return refuse()
        }
        let r = begin(parts: parts, head: head, result: Int32(truncatingIfNeeded: total), now: now)
        if r == -1 { return .full }
        if r < 0 { return refuse() }
        split = NVMeSplitter(iova: pointee.segIOVA, bytes: pointee.segBytes, count: segments, blockMask: blockMask,
                             maxBytes: maxBytes, prp: prp)
        var at = lba
        while let p = split.next() {
            let cid = takeCID(request: UInt16(truncatingIfNeeded: r))
            let blocks = p.bytes &>> lbaShift
            var c = NVMeCommand.blocks(opcode, nsid: nsid, lba: at, blocks: blocks)
            c.cid = cid
            let list = pointee.lists + Int(cid) &* NVMeQueuePairState.listPageBytes
            let listIOVA = pointee.listsIOVA &+ UInt64(Int(cid) &* NVMeQueuePairState.listPageBytes)
            if prp { fillPRP(&c, p, list: list, listIOVA: listIOVA) } else { fillSGL(&c, p, list: list, listIOVA: listIOVA) }
            push(c)
            at &+= UInt64(blocks)
        }
        return commit()
    }

    /// A request this pair will not take: counted, answered IOERR by the queue.
    @inlinable
    func refuse() -> BlkPrepare {
        pointee.counters.errors.increment()
        return .failed
    }
}
