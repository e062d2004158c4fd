#if canImport(Glibc)
import Glibc
#endif
import Stats
import Memory
import Platform

/// Bursts for host ports: a tap fd (one read/write per frame; the kernel has no
/// batched tap API without a vnet header) and an AF_PACKET socket with mmap'ed
/// TPACKET_V3 rings (no syscall per frame on receive; one `sendto` per burst on transmit).
public enum HostBurst {
    @inlinable
    public static func receive(tap: TapIO, into batch: inout PacketBatch, limit: Int, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        var taken = 0, got = 0, bytes = 0
        let pool = ctx.pool
        while taken < limit && batch.count < PacketBatch.capacity {
            guard let p = ctx.cache.alloc() else { ctx.allocFail.increment(); break }
            let n = tap.read(into: pool.data(p), capacity: BufferLayout.dataRoom)
            if n <= 0 { ctx.cache.free(p); break }
            taken &+= 1
            if n < 14 { c.dropBadLength.increment(); ctx.cache.free(p); continue }
            pool.setReceived(p, length: n)
            batch.append(p)
            got &+= 1
            bytes &+= n
        }
        if taken > 0 {
            c.rxPackets.add(UInt64(got))
            c.rxBytes.add(UInt64(bytes))
        }
        return taken
    }

    @inlinable
    public static func transmit(tap: TapIO, _ batch: inout PacketBatch, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        sendEach(&batch, ctx, c, syscall: true) { tap.write($0, length: $1) }
    }

    /// Hand every frame of `batch` to `send`, free the buffers, empty the batch, count.
    /// Frames `send` refuses count as drop.link_down when `send` is a system call that
    /// failed because the interface is down (EIO, ENETDOWN, ENXIO), as drop.no_rx_buffer
    /// otherwise (the kernel's queue or the TX ring was full).
    @inlinable
    static func sendEach(_ batch: inout PacketBatch, _ ctx: WorkerContext, _ c: PortCounters, syscall: Bool,
                         _ send: (UnsafeRawPointer, Int) -> Bool) -> Int {
        let n = batch.count
        let pool = ctx.pool
        var sent = 0, bytes = 0, down = 0
        for i in 0..<n {
            let p = batch[i]
            let len = pool.length(p)
            if send(pool.frame(p), len) {
                sent &+= 1; bytes &+= len
            } else if syscall {
                let e = errno
                if e == EIO || e == ENETDOWN || e == ENXIO { down &+= 1 }
            }
        }
        batch.withIndices { ctx.cache.free($0, n) }
        batch.removeAll()
        c.txPackets.add(UInt64(sent))
        c.txBytes.add(UInt64(bytes))
        if sent < n {
            c.dropLinkDown.add(UInt64(down))
            c.dropNoRxBuffer.add(UInt64(n &- sent &- down))
        }
        return sent
    }

    /// Copy frames out of the RX ring into mempool buffers. A frame whose L4
    /// checksum the sender left partial (virtio NEEDS_CSUM) gets it completed; a
    /// GSO super-frame is cut into segments (`Segmentation`), each its own buffer.
    /// A frame is taken from the ring only once all of it is in the batch: when the
    /// batch fills in the middle of a super-frame, the next burst resumes it. Returns
    /// the frames taken from the ring (+1 for a super-frame cut only in part, so a
    /// burst that delivered segments never reads as idle); rx_packets counts the
    /// frames delivered (segments).
    @inlinable
    public static func receive(ring: PacketRingIO, into batch: inout PacketBatch, limit: Int, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        var taken = 0, got = 0, bytes = 0
        var partial = false
        let pool = ctx.pool
        while taken < limit && batch.count < PacketBatch.capacity {
            guard let f = ring.peekFrame() else { break }
            if f.isGSO && !f.truncated {
                let cut = Segmentation.cut(f, from: ring.resumeOffset, into: &batch, ctx, c)
                got &+= cut.segments
                bytes &+= cut.bytes
                if !cut.finished {
                    ring.resumeOffset = cut.resume
                    partial = true
                    break
                }
                ring.takeFrame()
                taken &+= 1
                continue
            }
            ring.takeFrame()
            taken &+= 1
            // The ring hands frames as they were on the wire (a VLAN tag the kernel took
            // out is put back), so a trunk uplink sees its tags.
            if f.truncated || f.length < 14 || f.length > BufferLayout.dataRoom { c.dropBadLength.increment(); continue }
            guard let p = ctx.cache.alloc() else { ctx.allocFail.increment(); c.dropNoBuffer.increment(); continue }
            let d = pool.data(p)
            d.copyMemory(from: f.bytes, byteCount: f.length)
            if f.needsChecksum {
                completeChecksum(frame: d, length: f.length, start: Int(f.csumStart), offset: Int(f.csumOffset))
            }
            pool.setReceived(p, length: f.length)
            batch.append(p)
            got &+= 1
            bytes &+= f.length
        }
        ring.releaseReceived()
        if got > 0 {
            c.rxPackets.add(UInt64(got))
            c.rxBytes.add(UInt64(bytes))
        }
        return partial ? taken &+ 1 : taken
    }

    @inlinable
    public static func transmit(ring: PacketRingIO, _ batch: inout PacketBatch, _ ctx: WorkerContext, _ c: PortCounters) -> Int {
        let sent = sendEach(&batch, ctx, c, syscall: false) { ring.transmit($0, length: $1) }
        if sent > 0 { ring.flush() }
        return sent
    }
}
