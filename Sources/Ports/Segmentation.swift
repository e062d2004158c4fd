import Stats
import Memory
import Platform

/// Software segmentation of GSO super-frames from an af-packet port.
///
/// A veth (or any device with TSO/GSO on) hands its packet sockets what the
/// sending stack built: TCP (or UDP with UDP_L4) super-frames of up to 64 KiB
/// whose L4 checksum holds only the pseudo-header sum, described by the
/// virtio_net_hdr the ring puts before each frame. Nothing behind the switch can
/// take them as they are (a tap without a vnet header, another af-packet port,
/// a guest), so they are cut here, once, into `gsoSize` segments — each in its
/// own mempool buffer, headers copied and fixed, checksums computed:
///
/// - IPv4: total length, identification (+1 per segment), header checksum;
/// - IPv6: payload length;
/// - TCP: sequence number (+ payload offset), FIN and PSH only on the last
///   segment, CWR only on the first, checksum over the pseudo-header and segment;
/// - UDP (UDP_L4): length, checksum (0 sent as 0xffff).
///
/// Up to two VLAN tags (802.1Q, 802.1ad) before the IP header are kept in every
/// segment. A frame that does not parse, or has a GSO type other than TCPv4,
/// TCPv6 and UDP_L4 (UFO, tunnels), is dropped (drop.bad_length).
///
/// When the batch fills before the end of a frame, `cut` stops and says where
/// to resume; the frame stays in the ring (not taken) and the next burst carries
/// on from that payload offset. Every segment's headers derive from the
/// unmodified super-frame headers and the offset, so a resumed cut is identical
/// to an uninterrupted one.
public enum Segmentation {
    /// What `cut` did.
    @frozen
    public struct Cut: BitwiseCopyable {
        /// Segments appended to the batch, and their total length.
        public var segments: Int
        public var bytes: Int
        /// False when the batch filled first: call again with `from: resume`.
        public var finished: Bool
        public var resume: Int

        @inlinable
        init() { segments = 0; bytes = 0; finished = true; resume = 0 }
    }

    /// Where the headers of a GSO frame are (offsets from the frame start).
    @frozen
    public struct Headers: BitwiseCopyable, Equatable {
        /// IP header, L4 header, first payload byte.
        public var l3: Int
        public var l4: Int
        public var end: Int
        public var ipv6: Bool
        public var udp: Bool

        @inlinable
        public init(l3: Int, l4: Int, end: Int, ipv6: Bool, udp: Bool) {
            self.l3 = l3; self.l4 = l4; self.end = end; self.ipv6 = ipv6; self.udp = udp
        }
    }

    /// Parse the headers of GSO frame `f` (Ethernet, up to two VLAN tags, IPv4 or
    /// IPv6, TCP or UDP as its GSO type says); nil when they do not parse, do not
    /// match the GSO type or the checksum offsets, or the GSO type is not one we cut.
    @inlinable
    public static func headers(_ f: ReceivedFrame) -> Headers? {
        let b = f.bytes
        let len = f.length
        let type = f.gsoType & ~ReceivedFrame.gsoECN
        let udp: Bool
        switch type {
        case ReceivedFrame.gsoTCPv4, ReceivedFrame.gsoTCPv6: udp = false
        case ReceivedFrame.gsoUDPL4: udp = true
        default: return nil
        }
        guard len >= 14 else { return nil }
        var l3 = 14
        var ether = be16(b, 12)
        var tags = 0
        while ether == 0x8100 || ether == 0x88a8 {
            guard tags < 2, len >= l3 &+ 4 else { return nil }
            ether = be16(b, l3 &+ 2)
            l3 &+= 4
            tags &+= 1
        }
        let proto: UInt8 = udp ? 17 : 6
        let l4: Int
        let ipv6: Bool
        if ether == 0x0800 {
            guard type != ReceivedFrame.gsoTCPv6, len >= l3 &+ 20 else { return nil }
            let vihl = b.load(fromByteOffset: l3, as: UInt8.self)
            let ihl = Int(vihl & 0x0f) &* 4
            guard vihl >> 4 == 4, ihl >= 20, b.load(fromByteOffset: l3 &+ 9, as: UInt8.self) == proto,
                  be16(b, l3 &+ 6) & 0x3fff == 0 else { return nil }   // not a fragment
            l4 = l3 &+ ihl
            ipv6 = false
        } else if ether == 0x86dd {
            guard type != ReceivedFrame.gsoTCPv4, len >= l3 &+ 40,
                  b.load(fromByteOffset: l3, as: UInt8.self) >> 4 == 6 else { return nil }
            if b.load(fromByteOffset: l3 &+ 6, as: UInt8.self) == proto {
                l4 = l3 &+ 40
            } else if f.needsChecksum && Int(f.csumStart) > l3 &+ 40 {
                l4 = Int(f.csumStart)   // extension headers: the kernel says where L4 starts
            } else {
                return nil
            }
            ipv6 = true
        } else {
            return nil
        }
        let l4Header: Int
        if udp {
            l4Header = 8
        } else {
            guard len >= l4 &+ 20 else { return nil }
            l4Header = Int(b.load(fromByteOffset: l4 &+ 12, as: UInt8.self) >> 4) &* 4
            guard l4Header >= 20 else { return nil }
        }
        let end = l4 &+ l4Header
        guard end <= len else { return nil }
        if f.needsChecksum && Int(f.csumStart) != l4 { return nil }
        return Headers(l3: l3, l4: l4, end: end, ipv6: ipv6, udp: udp)
    }

    /// Cut GSO frame `f` into segments appended to `batch`, starting at payload
    /// offset `start` (0, or a `Cut.resume`). The caller leaves room for at least
    /// one segment. Drops are counted here: a frame that cannot be cut
    /// (drop.bad_length), an empty mempool (drop.no_buffer and the worker's
    /// allocation failures; the rest of the frame is dropped).
    @inlinable
    public static func cut(_ f: ReceivedFrame, from start: Int, into batch: inout PacketBatch,
                           _ ctx: WorkerContext, _ c: PortCounters) -> Cut {
        var out = Cut()
        let mss = Int(f.gsoSize)
        guard let h = headers(f), mss > 0, h.end &+ mss <= BufferLayout.dataRoom,
              start >= 0, start == 0 || start < f.length &- h.end else {
            c.dropBadLength.increment()
            return out
        }
        let src = f.bytes
        let pool = ctx.pool
        let payload = f.length &- h.end
        let l3 = h.l3, l4 = h.l4
        let id0 = h.ipv6 ? 0 : be16(src, l3 &+ 4)
        let seq0 = h.udp ? 0 : UInt32(bigEndian: src.loadUnaligned(fromByteOffset: l4 &+ 4, as: UInt32.self))
        let flags0 = h.udp ? 0 : src.load(fromByteOffset: l4 &+ 13, as: UInt8.self)
        // Pseudo-header without the L4 length: addresses and protocol.
        let addresses = h.ipv6 ? sum(src + (l3 &+ 8), 32, 0) : sum(src + (l3 &+ 12), 8, 0)
        let pseudo = addresses &+ UInt64(UInt16(h.udp ? 17 : 6).bigEndian)
        var off = start
        repeat {
            if batch.count == PacketBatch.capacity {
                out.finished = false
                out.resume = off
                return out
            }
            guard let p = ctx.cache.alloc() else {
                ctx.allocFail.increment()
                c.dropNoBuffer.increment()
                return out
            }
            let n = payload &- off < mss ? payload &- off : mss
            let last = off &+ n == payload
            let d = pool.data(p)
            d.copyMemory(from: src, byteCount: h.end)
            (d + h.end).copyMemory(from: src + (h.end &+ off), byteCount: n)
            let l4Length = h.end &- l4 &+ n
            if h.ipv6 {
                putBE16(d, l3 &+ 4, UInt16(truncatingIfNeeded: l4 &- l3 &- 40 &+ l4Length))
            } else {
                putBE16(d, l3 &+ 2, UInt16(truncatingIfNeeded: l4 &- l3 &+ l4Length))
                putBE16(d, l3 &+ 4, id0 &+ UInt16(truncatingIfNeeded: off / mss))
                d.storeBytes(of: 0, toByteOffset: l3 &+ 10, as: UInt16.self)
                let ihl = l4 &- l3
                d.storeBytes(of: ~fold(sum(d + l3, ihl, 0)), toByteOffset: l3 &+ 10, as: UInt16.self)
            }
            let checkAt: Int
            if h.udp {
                putBE16(d, l4 &+ 4, UInt16(truncatingIfNeeded: l4Length))
                checkAt = l4 &+ 6
            } else {
                d.storeBytes(of: (seq0 &+ UInt32(truncatingIfNeeded: off)).bigEndian, toByteOffset: l4 &+ 4, as: UInt32.self)
                var flags = flags0
                if off != 0 { flags &= ~0x80 }        // CWR: first segment only
                if !last { flags &= ~0x09 }           // FIN, PSH: last segment only
                d.storeBytes(of: flags, toByteOffset: l4 &+ 13, as: UInt8.self)
                checkAt = l4 &+ 16
            }
            d.storeBytes(of: 0, toByteOffset: checkAt, as: UInt16.self)
            let s = sum(d + l4, l4Length, pseudo &+ UInt64(UInt16(truncatingIfNeeded: l4Length).bigEndian))
            var check = ~fold(s)
            if h.udp && check == 0 { check = 0xffff }
            d.storeBytes(of: check, toByteOffset: checkAt, as: UInt16.self)
            let len = h.end &+ n
            pool.setReceived(p, length: len)
            batch.append(p)
            out.segments &+= 1
            out.bytes &+= len
            off &+= n
        } while off < payload
        return out
    }

    // MARK: - Checksum arithmetic in memory order
    //
    // The Internet checksum does not depend on byte order (RFC 1071): words are
    // summed as they lie in memory (native loads) and the folded result stored
    // the same way. Values that are not in memory (the L4 length, the protocol)
    // are added in their big-endian memory form (`.bigEndian`).

    /// Add `n` bytes at `p` to a one's-complement accumulator (8 bytes at a time,
    /// end-around carry).
    @inlinable
    public static func sum(_ p: UnsafeRawPointer, _ n: Int, _ acc: UInt64) -> UInt64 {
        var s = acc
        var k = 0
        while k &+ 8 <= n {
            let (r, o) = s.addingReportingOverflow(p.loadUnaligned(fromByteOffset: k, as: UInt64.self))
            s = r &+ (o ? 1 : 0)
            k &+= 8
        }
        var tail: UInt64 = 0
        if k &+ 4 <= n {
            tail = UInt64(p.loadUnaligned(fromByteOffset: k, as: UInt32.self))
            k &+= 4
        }
        if k &+ 2 <= n {
            tail &+= UInt64(p.loadUnaligned(fromByteOffset: k, as: UInt16.self))
            k &+= 2
        }
        if k < n {
            // An odd last byte is the high half of a big-endian word: its memory form.
            tail &+= UInt64((UInt16(p.load(fromByteOffset: k, as: UInt8.self)) << 8).bigEndian)
        }
        let (r, o) = s.addingReportingOverflow(tail)
        return r &+ (o ? 1 : 0)
    }

    /// Fold a 64-bit accumulator to 16 bits (end-around carry), in memory order.
    @inlinable
    public static func fold(_ acc: UInt64) -> UInt16 {
        var s = (acc & 0xffff_ffff) &+ (acc >> 32)
        while s >> 16 != 0 { s = (s & 0xffff) &+ (s >> 16) }
        return UInt16(truncatingIfNeeded: s)
    }

    @inlinable
    static func be16(_ p: UnsafeRawPointer, _ at: Int) -> UInt16 {
        UInt16(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }

    @inlinable
    static func putBE16(_ p: UnsafeMutableRawPointer, _ at: Int, _ v: UInt16) {
        p.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt16.self)
    }
}
