import CSluice
import Ports
import Stats
import Virtio

/// One direction of a point-to-point link: frames the guest behind `src` transmits
/// go into the RX buffers of the guest behind `dst`, copied once, guest buffer to
/// guest buffer, in bursts of up to 32.
///
/// A plain value on a worker's poll list. The worker that polls it is the only
/// thread that touches `src` and `dst` (or writes these counters).
@frozen
public struct P2PDirection: BitwiseCopyable, @unchecked Sendable {
    public static let burst = 32
    public let src: Virtqueue
    public let dst: Virtqueue
    public let srcCounters: PortCounters
    public let dstCounters: PortCounters
    /// Largest frame accepted from `src` (its MTU + Ethernet header + VLAN tag).
    public let maxFrame: Int
    /// Scratch for the chains being walked (owned with the entry; see `release`).
    public let srcSegs: SegmentList
    public let dstSegs: SegmentList

    public init(src: Virtqueue, dst: Virtqueue, srcCounters: PortCounters, dstCounters: PortCounters, maxFrame: Int) {
        self.src = src; self.dst = dst; self.srcCounters = srcCounters; self.dstCounters = dstCounters
        self.maxFrame = maxFrame
        srcSegs = .allocate()
        dstSegs = .allocate()
    }

    /// Signal, with a barrier, anything an earlier burst left unsignalled (see
    /// `Virtqueue.notifyLazily`). `poll` calls it whenever it moves nothing, so a worker
    /// whose poll list came back empty has nothing left open when it sleeps.
    @inlinable
    public func settleNotifications() {
        if src.hasUnsignalledUsed && src.isLive { src.notifyIfNeeded() }
        if dst.hasUnsignalledUsed && dst.isLive { dst.notifyIfNeeded() }
    }

    /// Free the scratch (the entry is off every poll list).
    public func release() {
        srcSegs.deallocate()
        dstSegs.deallocate()
    }

    /// Move up to one burst. Returns the number of frames taken from `src`.
    /// Always inlined into the worker's poll loop: as a call, the 168-byte value would be
    /// copied out of the poll list on every turn.
    @inlinable @inline(__always)
    public func poll() -> Int {
        let src = self.src, dst = self.dst
        // Nothing to move: settle what an earlier burst left open. Once per burst-then-idle
        // (then nothing is open), so idle polls stay on the one line they must read.
        guard src.isLive else { settleNotifications(); return 0 }
        let n0 = src.availableCount()
        if n0 == 0 { settleNotifications(); return 0 }
        let n = n0 < Self.burst ? n0 : Self.burst
        if !dst.isLive { return dropAll(n) }

        let srcSize = src.state.pointee.size
        let hA = src.state.pointee.headerSize
        let hB = dst.state.pointee.headerSize
        let mergeable = dst.state.pointee.mergeable
        let passCsum = dst.state.pointee.guestCsum
        let fastHeaders = hA == 12 && hB == 12
        var dstAvail = dst.availableCount()
        var dstTaken = 0
        // Start every descriptor miss of the burst now, so they overlap (DPDK does the same).
        let srcDesc = src.state.pointee.desc.unsafelyUnwrapped
        for i in 0..<n {
            let h = src.availHead(i)
            if h < srcSize { sl_prefetch(srcDesc + Int(h) &* 16) }
        }
        let dstSize = dst.state.pointee.size
        let dstDesc = dst.state.pointee.desc.unsafelyUnwrapped
        let m = dstAvail < n ? dstAvail : n
        for i in 0..<m {
            let h = dst.availHead(i)
            if h < dstSize { sl_prefetch(dstDesc + Int(h) &* 16) }
        }
        let srcSegs = self.srcSegs, dstSegs = self.dstSegs
        var rxPackets = 0, rxBytes = 0, txPackets = 0, txBytes = 0
        var badDesc = 0, noBuffer = 0, badLength = 0, dstBad = 0
        // The RX head in avail slot `dstTaken`, read once (`peekedAt` is the slot it came
        // from): the fast path, the general path and `placeMerged` fill and return the head
        // that was read, never a second read of a slot the guest may have rewritten since.
        var peekedAt = -1
        var peekedHead: UInt16 = 0

        // Then every frame's first bytes and every RX buffer: the whole burst's misses
        // (each a line the other CPU wrote or read last) are in flight before the first copy.
        // Lines we will probably only read (RX header, used entries: see `storeHeader`,
        // `pushUsed`) are fetched shared, so the guest keeps its copy.
        for i in 0..<n { src.prefetchFirstBuffer(head: src.availHead(i)) }
        for i in 0..<m { dst.prefetchReceiveBuffer(head: dst.availHead(i), headerSize: hB) }
        src.prefetchUsed(n)
        if m > 0 { dst.prefetchUsed(m) }
        for i in 0..<n {
            let head = src.availHead(i)
            if head >= srcSize { badDesc &+= 1; continue }   // not a descriptor: nothing to return
            if fastHeaders && dstTaken < dstAvail {
                if peekedAt != dstTaken { peekedHead = dst.availHead(dstTaken); peekedAt = dstTaken }
                if let moved = moveSimple(head: head, dHead: peekedHead, passCsum: passCsum) {
                    src.pushUsed(id: head, len: 0)
                    dstTaken &+= 1
                    rxPackets &+= 1; rxBytes &+= moved
                    txPackets &+= 1; txBytes &+= moved
                    if dstTaken == dstAvail && i + 1 < n { dstAvail = dst.availableCount() }
                    continue
                }
            }
            if src.walkChain(head: head, deviceWrites: false, into: srcSegs) != .none {
                badDesc &+= 1
                src.pushUsed(id: head, len: 0)
                continue
            }
            let frameLen = srcSegs.totalLength &- hA
            if srcSegs.totalLength < hA + 14 || frameLen > maxFrame {
                badLength &+= 1
                src.pushUsed(id: head, len: 0)
                continue
            }
            rxPackets &+= 1
            rxBytes &+= frameLen
            let need = hB + frameLen
            var placed = false
            while dstTaken < dstAvail {
                if peekedAt != dstTaken { peekedHead = dst.availHead(dstTaken); peekedAt = dstTaken }
                let dHead = peekedHead
                if dst.walkChain(head: dHead, deviceWrites: true, into: dstSegs) != .none || dstSegs.totalLength < hB {
                    // A broken RX chain: give it back empty and try the next one.
                    dstBad &+= 1
                    if dHead < dst.state.pointee.size { dst.pushUsed(id: dHead, len: 0) }
                    dstTaken &+= 1
                    continue
                }
                if dstSegs.totalLength >= need {
                    copyFrame(srcSegs, dstSegs, hA: hA, hB: hB, frameLen: frameLen, numBuffers: 1, passCsum: passCsum)
                    dst.pushUsed(id: dHead, len: UInt32(need))
                    dstTaken &+= 1
                    placed = true
                } else if mergeable {
                    let used = placeMerged(first: dstTaken, firstHead: dHead, firstLen: dstSegs.totalLength,
                                           srcSegs: srcSegs, dstSegs: dstSegs, available: dstAvail &- dstTaken,
                                           hA: hA, hB: hB, frameLen: frameLen, passCsum: passCsum)
                    if used > 0 { dstTaken &+= used; placed = true }
                } else {
                    // Without MRG_RXBUF the frame must fit one chain: return the buffer unused.
                    dst.pushUsed(id: dHead, len: 0)
                    dstTaken &+= 1
                }
                break
            }
            src.pushUsed(id: head, len: 0)
            if placed {
                txPackets &+= 1
                txBytes &+= frameLen
            } else {
                noBuffer &+= 1
            }
            if dstTaken == dstAvail && i + 1 < n { dstAvail = dst.availableCount() }
        }

        src.consume(n)
        src.suppressKicks()
        src.publishUsed()
        if dstTaken > 0 {
            dst.consume(dstTaken)
            dst.publishUsed()
        }
        // The receiver need not kick us when it posts RX buffers: we look at them every burst.
        dst.suppressKicks()
        // No barrier here: it would wait for every store of the burst (lines the other
        // CPU holds) to complete. The next empty poll settles what this leaves open.
        src.notifyLazily()
        dst.notifyLazily()
        srcCounters.rxPackets.add(UInt64(rxPackets))
        srcCounters.rxBytes.add(UInt64(rxBytes))
        dstCounters.txPackets.add(UInt64(txPackets))
        dstCounters.txBytes.add(UInt64(txBytes))
        if badDesc | badLength | noBuffer | dstBad != 0 {
            srcCounters.dropBadDesc.add(UInt64(badDesc))
            srcCounters.dropBadLength.add(UInt64(badLength))
            dstCounters.dropNoRxBuffer.add(UInt64(noBuffer))
            dstCounters.dropBadDesc.add(UInt64(dstBad))
        }
        return n
    }

    /// The common frame, kept off the scratch segment lists (fewer stores queue behind
    /// the stores into the receiver's buffers): one TX descriptor, one RX descriptor,
    /// 12-byte headers on both sides, a frame of legal length that fits, and no checksum
    /// to complete. Copies it, pushes the RX used entry and returns the frame length; nil
    /// (nothing touched) sends the frame down the general path.
    @inlinable @inline(__always)
    func moveSimple(head: UInt16, dHead: UInt16, passCsum: Bool) -> Int? {
        guard let s = src.singleBuffer(head: head, deviceWrites: false) else { return nil }
        let frameLen = s.length &- 12
        guard frameLen >= 14, frameLen <= maxFrame else { return nil }
        if s.pointer.load(as: UInt8.self) & VirtioNetHeader.needsCsum != 0 && !passCsum { return nil }
        guard let d = dst.singleBuffer(head: dHead, deviceWrites: true), d.length >= s.length else { return nil }
        (d.pointer + 12).copyMemory(from: s.pointer + 12, byteCount: frameLen)
        storeHeader(receiverHeader(from: s.pointer, numBuffers: 1, passCsum: passCsum), at: d.pointer)
        dst.pushUsed(id: dHead, len: UInt32(s.length))
        return frameLen
    }

    /// The receiving side is down: return the chains to the sender and count the drops.
    @inline(never)
    @usableFromInline
    func dropAll(_ n: Int) -> Int {
        let size = src.state.pointee.size
        for i in 0..<n {
            let head = src.availHead(i)
            if head < size { src.pushUsed(id: head, len: 0) }
        }
        src.consume(n)
        src.suppressKicks()
        src.publishUsed()
        src.notifyLazily()
        // Taken from the source like any frame: received there, dropped at the destination.
        srcCounters.rxPackets.add(UInt64(n))
        dstCounters.dropLinkDown.add(UInt64(n))
        return n
    }

    /// Copy header (translated) and frame into one RX chain.
    @inlinable
    func copyFrame(_ srcSegs: SegmentList, _ dstSegs: SegmentList, hA: Int, hB: Int,
                   frameLen: Int, numBuffers: UInt16, passCsum: Bool) {
        // Fast path: both in one buffer and both 12-byte headers.
        if srcSegs.count == 1 && dstSegs.count == 1 && hA == 12 && hB == 12 {
            let s = srcSegs.pointer(0), d = dstSegs.pointer(0)
            (d + 12).copyMemory(from: s + 12, byteCount: frameLen)
            storeHeader(receiverHeader(from: s, numBuffers: numBuffers, passCsum: passCsum), at: d)
            if s.load(as: UInt8.self) & VirtioNetHeader.needsCsum != 0 && !passCsum {
                finishChecksum(srcSegs, dstSegs, hA: hA, hB: hB, frameLen: frameLen)
            }
            return
        }
        _ = copySegments(from: srcSegs, srcOffset: hA, to: dstSegs, dstOffset: hB, length: frameLen)
        writeHeader(srcSegs, dstSegs, hA: hA, hB: hB, frameLen: frameLen, numBuffers: numBuffers, passCsum: passCsum)
    }

    /// Write the receiver's header from the sender's, completing a partial checksum in
    /// software when the receiver did not negotiate GUEST_CSUM.
    @inlinable
    func writeHeader(_ srcSegs: SegmentList, _ dstSegs: SegmentList, hA: Int, hB: Int,
                     frameLen: Int, numBuffers: UInt16, passCsum: Bool) {
        var hdr: (UInt64, UInt32) = (0, 0)   // 12 bytes
        var srcFlags: UInt8 = 0
        withUnsafeMutableBytes(of: &hdr) { h in
            _ = gatherBytes(srcSegs, offset: 0, into: h.baseAddress!, 10)
            srcFlags = h.load(as: UInt8.self)
            let words = receiverHeader(from: h.baseAddress!, numBuffers: numBuffers, passCsum: passCsum)
            h.storeBytes(of: words.lo.littleEndian, as: UInt64.self)
            h.storeBytes(of: words.hi.littleEndian, toByteOffset: 8, as: UInt32.self)
            _ = scatterBytes(dstSegs, offset: 0, from: h.baseAddress!, hB)
        }
        if srcFlags & VirtioNetHeader.needsCsum != 0 && !passCsum {
            finishChecksum(srcSegs, dstSegs, hA: hA, hB: hB, frameLen: frameLen)
        }
    }

    /// The receiver's 12-byte header for a sender's header at `s` (its first 10 bytes
    /// are read) as two little-endian words: NEEDS_CSUM and its offsets only when the
    /// receiver negotiated GUEST_CSUM; never GSO fields (no GUEST_TSO/UFO offered) or
    /// other flags; `numBuffers` in bytes 10–11 (a 10-byte receiver header drops them).
    /// DATA_VALID is set later if the checksum is completed here.
    @inlinable @inline(__always)
    func receiverHeader(from s: UnsafeRawPointer, numBuffers: UInt16, passCsum: Bool) -> (lo: UInt64, hi: UInt32) {
        // lo: flags, gso_type, hdr_len, gso_size, csum_start; hi: csum_offset, num_buffers
        var lo: UInt64 = 0, hi = UInt32(numBuffers) << 16
        if passCsum && s.load(as: UInt8.self) & VirtioNetHeader.needsCsum != 0 {
            lo = UInt64(VirtioNetHeader.needsCsum) | UInt64(littleEndian: s.loadUnaligned(as: UInt64.self)) & 0xffff_0000_0000_0000
            hi |= UInt32(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
        }
        return (lo, hi)
    }

    /// Store a 12-byte header at `d`, only the words that differ from what is there: a
    /// recycled buffer usually holds exactly this header already (DPDK's vhost does the
    /// same), and a line we only read stays valid in the guest's cache, so its read of
    /// the header does not have to fetch the line back from this CPU.
    @inlinable @inline(__always)
    func storeHeader(_ h: (lo: UInt64, hi: UInt32), at d: UnsafeMutableRawPointer) {
        if d.loadUnaligned(as: UInt64.self) != h.lo.littleEndian { d.storeBytes(of: h.lo.littleEndian, as: UInt64.self) }
        if d.loadUnaligned(fromByteOffset: 8, as: UInt32.self) != h.hi.littleEndian {
            d.storeBytes(of: h.hi.littleEndian, toByteOffset: 8, as: UInt32.self)
        }
    }

    /// Compute the checksum the sender left to the device (NEEDS_CSUM) from the sender's
    /// bytes, store it in the receiver's copy, and mark the receiver's header DATA_VALID.
    /// The field must lie in the receiver's first chain (`dstSegs`); a header that lies
    /// about its offsets gets no checksum.
    @inline(never)
    @usableFromInline
    func finishChecksum(_ srcSegs: SegmentList, _ dstSegs: SegmentList, hA: Int, hB: Int, frameLen: Int) {
        var hdr: (UInt64, UInt32) = (0, 0)
        withUnsafeMutableBytes(of: &hdr) { h in
            guard gatherBytes(srcSegs, offset: 0, into: h.baseAddress!, 10) else { return }
            let start = Int(UInt16(littleEndian: h.load(fromByteOffset: VirtioNetHeader.csumStartOffset, as: UInt16.self)))
            let field = Int(UInt16(littleEndian: h.load(fromByteOffset: VirtioNetHeader.csumOffsetOffset, as: UInt16.self)))
            guard start + field + 2 <= frameLen, hB + start + field + 2 <= dstSegs.totalLength else { return }
            let sum = internetChecksum(srcSegs, start: hA + start, length: frameLen - start)
            // A computed 0 goes out as 0xffff (the same in ones' complement; 0 means "none" to UDP).
            var be = (sum == 0 ? 0xffff : sum).bigEndian
            _ = scatterBytes(dstSegs, offset: hB + start + field, from: &be, 2)
            var flags = VirtioNetHeader.dataValid
            _ = scatterBytes(dstSegs, offset: 0, from: &flags, 1)
        }
    }

    /// Most RX chains one frame may be spread over (MRG_RXBUF). A 9018-byte frame in
    /// chains of at least 144 bytes fits; a guest that posts smaller buffers gets a drop.
    public static let maxMergedChains = 64

    /// MRG_RXBUF: spread a frame over several RX chains. Checks there is room first
    /// (walking ahead), then copies. Returns the chains used, or 0 when there was not
    /// enough room (nothing consumed).
    ///
    /// Each avail slot is read once: `firstHead` is the head the caller read from slot
    /// `first` and measured (`firstLen`), and the heads seen while measuring the rest are
    /// the heads filled and returned. Re-reading them would return ids the guest never
    /// offered when an RX buffer overlaps the guest's own avail ring (the copy rewrites
    /// it), and a guest that rewrites a descriptor between the two walks gets short
    /// copies, never a negative length or an offset outside the frame.
    @inline(never)
    @usableFromInline
    func placeMerged(first: Int, firstHead: UInt16, firstLen: Int, srcSegs: SegmentList, dstSegs: SegmentList,
                     available: Int, hA: Int, hB: Int, frameLen: Int, passCsum: Bool) -> Int {
        let need = hB + frameLen
        var heads = InlineArray<64, UInt16>(repeating: 0)
        heads[0] = firstHead   // read (and measured) by the caller
        var room = firstLen
        var chains = 1
        while room < need {
            if chains >= available || chains >= Self.maxMergedChains { return 0 }
            let h = dst.availHead(first &+ chains)
            if dst.walkChain(head: h, deviceWrites: true, into: dstSegs) != .none { return 0 }
            heads[chains] = h
            room += dstSegs.totalLength
            chains += 1
        }
        // Copy: chain k receives bytes [written, written + its length) of header+frame.
        var written = 0
        var srcOffset = hA
        for k in 0..<chains {
            let h = heads[k]
            if dst.walkChain(head: h, deviceWrites: true, into: dstSegs) != .none { dstSegs.reset() }
            let length = dstSegs.totalLength
            if k == 0 {
                // A chain that shrank below the header since it was measured gets nothing.
                let n = length >= hB ? min(length - hB, frameLen) : 0
                if length >= hB {
                    _ = copySegments(from: srcSegs, srcOffset: srcOffset, to: dstSegs, dstOffset: hB, length: n)
                    writeHeader(srcSegs, dstSegs, hA: hA, hB: hB, frameLen: frameLen, numBuffers: UInt16(chains), passCsum: passCsum)
                }
                dst.pushUsed(id: h, len: UInt32(length >= hB ? hB + n : 0))
                srcOffset += n
                written += hB + n
            } else {
                let n = min(length, max(0, need - written))
                _ = copySegments(from: srcSegs, srcOffset: srcOffset, to: dstSegs, dstOffset: 0, length: n)
                dst.pushUsed(id: h, len: UInt32(n))
                srcOffset += n
                written += n
            }
        }
        return chains
    }
}
