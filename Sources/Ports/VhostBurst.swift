import Stats
import CSluice
import Memory
import Virtio

/// The receive side of a vhost-user net queue pair as a port: frames the guest
/// transmits (its TX virtqueue) copied into mempool buffers, up to a burst at a time
/// (the counterpart of DPDK's `rte_vhost_dequeue_burst`). Owned by one worker.
@frozen
public struct VhostRx: BitwiseCopyable, @unchecked Sendable {
    public let queue: Virtqueue
    /// Scratch for chains that are not one descriptor (owned with the port queue).
    public let segs: SegmentList
    /// Largest frame accepted (MTU + Ethernet header + one VLAN tag), and never more
    /// than a mempool buffer holds: the frame is copied into one.
    public let maxFrame: Int

    public init(queue: Virtqueue, segs: SegmentList, maxFrame: Int) {
        self.queue = queue; self.segs = segs; self.maxFrame = min(maxFrame, BufferLayout.dataRoom)
    }

    /// Signal what an earlier burst left unsignalled (see `Virtqueue.notifyLazily`).
    @inlinable
    public func settle() {
        if queue.hasUnsignalledUsed && queue.isLive { queue.notifyIfNeeded() }
    }

    /// Append up to `limit` frames to `batch`. Frames the guest got wrong are returned
    /// to it and counted; a checksum the guest left to the device is completed here
    /// (the frame may leave through a port that cannot offload it).
    @inlinable
    public func receive(into batch: inout PacketBatch, limit: Int, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        let q = queue
        guard q.isLive else { return 0 }
        let avail = q.availableCount()
        if avail == 0 { settle(); return 0 }
        var n = avail < limit ? avail : limit
        let room = PacketBatch.capacity &- batch.count
        if n > room { n = room }
        if n <= 0 { return 0 }
        // Buffers first: a frame we cannot store stays in the guest's ring for later.
        var bufs = PacketBatch()
        let want = n
        let got = bufs.withIndices { ctx.cache.alloc($0, want) }
        if got < n {
            ctx.allocFail.add(UInt64(n &- got))
            n = got
            if n == 0 { return 0 }
        }
        let size = q.state.pointee.size
        let pool = ctx.pool
        var used = 0, bytes = 0, badDesc = 0, badLength = 0
        for i in 0..<n { q.prefetchFirstBuffer(head: q.availHead(i)) }
        for i in 0..<n {
            let head = q.availHead(i)
            if head >= size { badDesc &+= 1; continue }   // not a descriptor: nothing to return
            let p = bufs[used]
            let frameLen = copyOut(head: head, into: p, pool)
            q.pushUsed(id: head, len: 0)
            if frameLen < 0 {
                if frameLen == Self.badDescriptor { badDesc &+= 1 } else { badLength &+= 1 }
                continue
            }
            batch.append(p)
            used &+= 1
            bytes &+= frameLen
        }
        if used < n {
            let from = used, left = n &- used
            bufs.withIndices { ctx.cache.free($0 + from, left) }
        }
        q.consume(n)
        q.suppressKicks()
        q.publishUsed()
        q.notifyLazily()
        c.rxPackets.add(UInt64(used))
        c.rxBytes.add(UInt64(bytes))
        if badDesc | badLength != 0 {
            c.dropBadDesc.add(UInt64(badDesc))
            c.dropBadLength.add(UInt64(badLength))
        }
        return n
    }

    /// `copyOut` results for a chain that is not a frame.
    public static let badDescriptor = -1, badLength = -2

    /// Copy the frame of the TX chain at `head` (`head` < queue size) into mempool buffer
    /// `p`, completing a checksum the guest left to the device, and set its length.
    /// Returns the frame length, or `badDescriptor` / `badLength` (nothing usable in `p`).
    /// The caller returns the chain to the guest either way.
    @inlinable
    public func copyOut(head: UInt16, into p: Packet, _ pool: MempoolRef) -> Int {
        let q = queue
        let hA = q.state.pointee.headerSize
        let dst = pool.data(p)
        var frameLen = 0
        var hdr: (UInt64, UInt16) = (0, 0)   // the first 10 header bytes
        if let s = q.singleBuffer(head: head, deviceWrites: false) {
            frameLen = s.length &- hA
            if frameLen < 14 || frameLen > maxFrame { return Self.badLength }
            dst.copyMemory(from: s.pointer + hA, byteCount: frameLen)
            withUnsafeMutableBytes(of: &hdr) { $0.baseAddress!.copyMemory(from: s.pointer, byteCount: 10) }
        } else {
            if q.walkChain(head: head, deviceWrites: false, into: segs) != .none { return Self.badDescriptor }
            frameLen = segs.totalLength &- hA
            if frameLen < 14 || frameLen > maxFrame { return Self.badLength }
            _ = gatherBytes(segs, offset: hA, into: dst, frameLen)
            withUnsafeMutableBytes(of: &hdr) { _ = gatherBytes(segs, offset: 0, into: $0.baseAddress!, 10) }
        }
        withUnsafeBytes(of: &hdr) { h in
            if h.load(as: UInt8.self) & VirtioNetHeader.needsCsum != 0 {
                let start = Int(UInt16(littleEndian: h.loadUnaligned(fromByteOffset: VirtioNetHeader.csumStartOffset, as: UInt16.self)))
                let off = Int(UInt16(littleEndian: h.loadUnaligned(fromByteOffset: VirtioNetHeader.csumOffsetOffset, as: UInt16.self)))
                completeChecksum(frame: dst, length: frameLen, start: start, offset: off)
            }
        }
        pool.setReceived(p, length: frameLen)
        return frameLen
    }
}

/// The transmit side of a vhost-user net queue pair: mempool frames copied into the
/// guest's RX buffers (`rte_vhost_enqueue_burst`), with MRG_RXBUF when a frame does
/// not fit one chain. Owned by one worker.
@frozen
public struct VhostTx: BitwiseCopyable, @unchecked Sendable {
    public let queue: Virtqueue
    public let segs: SegmentList

    public init(queue: Virtqueue, segs: SegmentList) { self.queue = queue; self.segs = segs }

    @inlinable
    public func settle() {
        if queue.hasUnsignalledUsed && queue.isLive { queue.notifyIfNeeded() }
    }

    /// Give every frame of `batch` to the guest (or drop and count it), free the
    /// buffers and empty the batch. Returns the frames delivered.
    @inlinable
    public func transmit(_ batch: inout PacketBatch, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        let q = queue
        let n = batch.count
        if n == 0 { return 0 }
        let pool = ctx.pool
        guard q.isLive else {
            c.dropLinkDown.add(UInt64(n))
            batch.withIndices { ctx.cache.free($0, n) }
            batch.removeAll()
            return 0
        }
        let hB = q.state.pointee.headerSize
        let size = q.state.pointee.size
        let mergeable = q.state.pointee.mergeable
        var avail = q.availableCount()
        var taken = 0, sent = 0, bytes = 0, noBuf = 0, bad = 0
        for i in 0..<(avail < n ? avail : n) { q.prefetchReceiveBuffer(head: q.availHead(i), headerSize: hB) }
        for i in 0..<n {
            let p = batch[i]
            let f = pool.frame(p)
            let len = pool.length(p)
            var placed = false
            while taken < avail {
                let head = q.availHead(taken)
                if head >= size { bad &+= 1; taken &+= 1; continue }
                if let d = q.singleBuffer(head: head, deviceWrites: true), d.length >= hB &+ len {
                    (d.pointer + hB).copyMemory(from: f, byteCount: len)
                    storeEmptyHeader(d.pointer, hB, numBuffers: 1)
                    q.pushUsed(id: head, len: UInt32(hB &+ len))
                    taken &+= 1
                    placed = true
                    break
                }
                if q.walkChain(head: head, deviceWrites: true, into: segs) != .none || segs.totalLength < hB {
                    bad &+= 1; q.pushUsed(id: head, len: 0); taken &+= 1; continue
                }
                if segs.totalLength >= hB &+ len {
                    var h = (UInt64(0), UInt32(1) << 16)
                    withUnsafeBytes(of: &h) { _ = scatterBytes(segs, offset: 0, from: $0.baseAddress!, hB) }
                    _ = scatterBytes(segs, offset: hB, from: f, len)
                    q.pushUsed(id: head, len: UInt32(hB &+ len))
                    taken &+= 1
                    placed = true
                } else if mergeable {
                    let chains = placeMerged(first: taken, available: avail &- taken, frame: f, length: len, hB: hB)
                    if chains > 0 { taken &+= chains; placed = true }
                } else {
                    q.pushUsed(id: head, len: 0)
                    taken &+= 1
                }
                break
            }
            if placed { sent &+= 1; bytes &+= len } else { noBuf &+= 1 }
            if taken == avail && i &+ 1 < n { avail = q.availableCount() }
        }
        if taken > 0 {
            q.consume(taken)
            q.publishUsed()
            q.notifyLazily()
        }
        q.suppressKicks()
        batch.withIndices { ctx.cache.free($0, n) }
        batch.removeAll()
        c.txPackets.add(UInt64(sent))
        c.txBytes.add(UInt64(bytes))
        if noBuf | bad != 0 {
            c.dropNoRxBuffer.add(UInt64(noBuf))
            c.dropBadDesc.add(UInt64(bad))
        }
        return sent
    }

    /// A receive header with no offload flags and `numBuffers`, stored only where the
    /// buffer does not hold it already (a recycled buffer usually does).
    @inlinable @inline(__always)
    public func storeEmptyHeader(_ d: UnsafeMutableRawPointer, _ hB: Int, numBuffers: UInt16) {
        if d.loadUnaligned(as: UInt64.self) != 0 { d.storeBytes(of: 0, as: UInt64.self) }
        if hB == 12 {
            let hi = (UInt32(numBuffers) << 16).littleEndian
            if d.loadUnaligned(fromByteOffset: 8, as: UInt32.self) != hi { d.storeBytes(of: hi, toByteOffset: 8, as: UInt32.self) }
        } else if d.loadUnaligned(fromByteOffset: 8, as: UInt16.self) != 0 {
            d.storeBytes(of: 0, toByteOffset: 8, as: UInt16.self)
        }
    }

    /// MRG_RXBUF: one frame over several RX chains, each avail slot read once. Returns
    /// the chains used, 0 when there is not enough room (nothing consumed).
    @inline(never) @usableFromInline
    func placeMerged(first: Int, available: Int, frame f: UnsafeRawPointer, length len: Int, hB: Int) -> Int {
        let need = hB &+ len
        var heads = InlineArray<64, UInt16>(repeating: 0)
        var room = 0, chains = 0
        while room < need {
            if chains >= available || chains >= 64 { return 0 }
            let h = queue.availHead(first &+ chains)
            if queue.walkChain(head: h, deviceWrites: true, into: segs) != .none { return 0 }
            if chains == 0 && segs.totalLength < hB { return 0 }
            heads[chains] = h
            room &+= segs.totalLength
            chains &+= 1
        }
        var written = 0   // bytes of header + frame placed so far
        for k in 0..<chains {
            let h = heads[k]
            if queue.walkChain(head: h, deviceWrites: true, into: segs) != .none { segs.reset() }
            var n = segs.totalLength
            if n > need &- written { n = need &- written }
            if k == 0 && n >= hB {
                var hdr = (UInt64(0), UInt32(chains) << 16)
                withUnsafeBytes(of: &hdr) { _ = scatterBytes(segs, offset: 0, from: $0.baseAddress!, hB) }
                _ = scatterBytes(segs, offset: hB, from: f, n &- hB)
            } else if k > 0 && n > 0 && written >= hB {
                _ = scatterBytes(segs, offset: 0, from: f + (written &- hB), n)
            } else {
                n = 0
            }
            queue.pushUsed(id: h, len: UInt32(n))
            written &+= n
        }
        return chains
    }
}
