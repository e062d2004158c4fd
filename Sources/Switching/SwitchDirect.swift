import CSluice
import Memory
import Ports
import Stats
import Virtio

/// The switch's one-copy path, as the p2p link's: a frame from a guest that goes to one
/// known guest port polled by this same worker is copied from the sender's buffer
/// straight into the receiver's, with no mempool buffer in between. It applies to the
/// common frame only — one descriptor, 12-byte headers on both sides, no checksum left to
/// the device, untagged, unicast, access port to access port, no monitor port; anything
/// else goes through a mempool buffer and the general path (`forward`).
extension SwitchPortQueue {
    @inlinable
    func pollVhostDirect(_ vrx: VhostRx, _ info: SwitchPortInfo, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        let q = vrx.queue
        guard q.isLive else { return 0 }
        let avail = q.availableCount()
        if avail == 0 { vrx.settle(); tx.settle(); return 0 }
        let n = avail < PacketBatch.capacity ? avail : PacketBatch.capacity
        let size = q.state.pointee.size
        let hA = q.state.pointee.headerSize
        let sw = shared.pointee
        let pool = ctx.pool
        var dirty = Dirty()
        // Receivers this burst copied into directly, with what each got.
        var touched = InlineArray<8, Int16>(repeating: -1)
        var sentTo = InlineArray<8, Int>(repeating: 0)
        var bytesTo = InlineArray<8, Int>(repeating: 0)
        var touchedCount = 0
        var lastSrcKey: UInt64 = ~0, lastDstKey: UInt64 = ~0, lastDest = -1
        var rxPackets = 0, rxBytes = 0, badDesc = 0, badLength = 0
        for i in 0..<n { q.prefetchFirstBuffer(head: q.availHead(i)) }
        for i in 0..<n {
            let head = q.availHead(i)
            if head >= size { badDesc &+= 1; continue }
            if hA == 12, let s = q.singleBuffer(head: head, deviceWrites: false) {
                let f = s.pointer + 12
                let len = s.length &- 12
                let flags = s.pointer.load(as: UInt8.self)
                if len >= 14 && len <= vrx.maxFrame && flags & ~VirtioNetHeader.needsCsum == 0
                    && f.load(as: UInt8.self) & 1 == 0 && f.load(fromByteOffset: 6, as: UInt8.self) & 1 == 0
                    && UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 12, as: UInt16.self)) != 0x8100 {
                    let vlan = info.accessVLAN
                    let src = MacTable.key(mac: f + 6, vlan: 0)
                    // Frames of one burst mostly share their addresses: look each up once.
                    let dstKey = MacTable.key(mac: f, vlan: vlan)
                    if dstKey != lastDstKey { lastDstKey = dstKey; lastDest = sw.table.lookup(dstKey) }
                    let d = lastDest
                    var slot = -1
                    if d >= 0 {
                        for k in 0..<touchedCount where touched[k] == Int16(d) { slot = k }
                        if slot < 0 && touchedCount < 8 { slot = touchedCount }
                    }
                    // Frames already staged for `d` in this burst (flooded ones) go first: a
                    // later frame to `d` is staged behind them, so one sender's frames keep their order.
                    if (info.lockedMAC == 0 || src == info.lockedMAC) && d >= 0 && d != port && slot >= 0
                        && view.pointee.staged[d].count == 0,
                       case .local(let out, _, _) = view.pointee.routes[d], case .vhost(let vtx) = out,
                       !sw.ports[d].trunk && !sw.ports[d].monitor && len <= sw.ports[d].maxFrame {
                        let srcKey = src | UInt64(vlan) << 48
                        if srcKey != lastSrcKey {
                            if !learn(srcKey, info, ctx, c) {
                                q.pushUsed(id: head, len: 0); rxPackets &+= 1; rxBytes &+= len; continue
                            }
                            lastSrcKey = srcKey
                        }
                        if slot == touchedCount { prefetchReceiver(vtx.queue, frames: n &- i) }
                        if copyDirect(f, len, header: s.pointer, to: vtx) {
                            q.pushUsed(id: head, len: 0)
                            rxPackets &+= 1; rxBytes &+= len
                            if slot == touchedCount { touched[slot] = Int16(d); touchedCount &+= 1 }
                            sentTo[slot] &+= 1
                            bytesTo[slot] &+= len
                            continue
                        }
                    }
                }
            }
            // The general path: into a mempool buffer, then classify.
            guard let p = ctx.cache.alloc() else {
                // Leave the rest in the guest's ring for the next poll.
                ctx.allocFail.increment()
                return finish(q, taken: i, touched, sentTo, bytesTo, touchedCount, &dirty, ctx, c, rxPackets, rxBytes, badDesc, badLength)
            }
            let frameLen = vrx.copyOut(head: head, into: p, pool)
            q.pushUsed(id: head, len: 0)
            if frameLen < 0 {
                if frameLen == VhostRx.badDescriptor { badDesc &+= 1 } else { badLength &+= 1 }
                ctx.cache.free(p)
                continue
            }
            rxPackets &+= 1; rxBytes &+= frameLen
            forward(p, info, ctx, c, &dirty)
        }
        return finish(q, taken: n, touched, sentTo, bytesTo, touchedCount, &dirty, ctx, c, rxPackets, rxBytes, badDesc, badLength)
    }

    /// End a burst: give the sender its buffers back, publish what the direct copies put
    /// into each receiver, send the staged frames, count.
    @inlinable
    func finish(_ q: Virtqueue, taken: Int, _ touched: InlineArray<8, Int16>, _ sentTo: InlineArray<8, Int>,
                _ bytesTo: InlineArray<8, Int>, _ touchedCount: Int, _ dirty: inout Dirty,
                _ ctx: WorkerContext, _ c: PortCounters, _ rxPackets: Int, _ rxBytes: Int, _ badDesc: Int, _ badLength: Int) -> Int {
        q.consume(taken)
        q.suppressKicks()
        q.publishUsed()
        q.notifyLazily()
        for k in 0..<touchedCount {
            let d = Int(touched[k])
            if case .local(let out, _, _) = view.pointee.routes[d], case .vhost(let vtx) = out {
                vtx.queue.publishUsed()
                vtx.queue.suppressKicks()
                vtx.queue.notifyLazily()
            }
            let dc = view.pointee.portCounters[d]
            dc.txPackets.add(UInt64(sentTo[k]))
            dc.txBytes.add(UInt64(bytesTo[k]))
        }
        view.pointee.egress.flushAll(dirty, ctx)
        c.rxPackets.add(UInt64(rxPackets))
        c.rxBytes.add(UInt64(rxBytes))
        if badDesc | badLength != 0 {
            c.dropBadDesc.add(UInt64(badDesc))
            c.dropBadLength.add(UInt64(badLength))
        }
        return taken
    }

    /// The first frame of a burst for a receiver: start loading the descriptors, buffers
    /// and used-ring lines the rest of the burst will probably use there (as the p2p link
    /// does for its one receiver), so the misses overlap.
    @inlinable
    func prefetchReceiver(_ dq: Virtqueue, frames: Int) {
        guard dq.isLive else { return }
        let avail = dq.availableCount()
        let m = avail < frames ? avail : frames
        if m == 0 { return }
        let size = dq.state.pointee.size
        let desc = dq.state.pointee.desc.unsafelyUnwrapped
        for j in 0..<m {
            let h = dq.availHead(j)
            if h < size { sl_prefetch(desc + Int(h) &* 16) }
        }
        for j in 0..<m { dq.prefetchReceiveBuffer(head: dq.availHead(j), headerSize: 12) }
        dq.prefetchUsed(m)
    }

    /// Copy one frame into the next RX buffer of `vtx` if it is one descriptor with room;
    /// the used entry is queued (published by `finish`). A checksum the sender left to the
    /// device goes to the receiver as it is when it negotiated GUEST_CSUM, else it is
    /// completed in the receiver's copy. False: nothing was touched.
    @inlinable @inline(__always)
    func copyDirect(_ f: UnsafeRawPointer, _ len: Int, header h: UnsafeRawPointer, to vtx: VhostTx) -> Bool {
        let dq = vtx.queue
        guard dq.isLive, dq.state.pointee.headerSize == 12, dq.availableCount() > 0 else { return false }
        let head = dq.availHead(0)
        guard let d = dq.singleBuffer(head: head, deviceWrites: true), d.length >= 12 &+ len else { return false }
        (d.pointer + 12).copyMemory(from: f, byteCount: len)
        if h.load(as: UInt8.self) & VirtioNetHeader.needsCsum == 0 {
            vtx.storeEmptyHeader(d.pointer, 12, numBuffers: 1)
        } else {
            let start = Int(UInt16(littleEndian: h.loadUnaligned(fromByteOffset: VirtioNetHeader.csumStartOffset, as: UInt16.self)))
            let off = Int(UInt16(littleEndian: h.loadUnaligned(fromByteOffset: VirtioNetHeader.csumOffsetOffset, as: UInt16.self)))
            if dq.state.pointee.guestCsum {
                // flags, gso none, csum_start, csum_offset, num_buffers 1
                d.pointer.storeBytes(of: UInt64(VirtioNetHeader.needsCsum) | UInt64(start) << 48, as: UInt64.self)
                d.pointer.storeBytes(of: (UInt32(off) | 1 << 16).littleEndian, toByteOffset: 8, as: UInt32.self)
            } else {
                completeChecksum(frame: d.pointer + 12, length: len, start: start, offset: off)
                d.pointer.storeBytes(of: UInt64(VirtioNetHeader.dataValid), as: UInt64.self)
                d.pointer.storeBytes(of: (UInt32(1) << 16).littleEndian, toByteOffset: 8, as: UInt32.self)
            }
        }
        dq.pushUsed(id: head, len: UInt32(12 &+ len))
        dq.consume(1)
        return true
    }
}
