import Memory
import Ports
import Stats

/// ICMP and ICMPv6 errors from the router (RFC 792/1812, RFC 4443): time exceeded, no
/// route, fragmentation needed / packet too big. Built in a fresh buffer and sent back to
/// the sender's port, at most `RouterWorkerView.errorsPerSecond` per worker; never about
/// an ICMP error itself, nor about a packet from an unspecified or group source.
extension RouterQueue {
    public enum ErrorKind {
        case timeExceeded, noRoute, tooBig(mtu: Int)
    }

    @inlinable @inline(__always)
    static func fold(_ s: UInt32) -> UInt16 {
        var sum = s
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        sum = (sum & 0xFFFF) &+ (sum >> 16)
        return UInt16(truncatingIfNeeded: sum)
    }

    /// IPv4 `f` (its header `ihl` bytes, `total` bytes in all) could not be forwarded.
    @inlinable
    func icmp4Error(_ f: UnsafeMutableRawPointer, ihl: Int, total: Int, _ kind: ErrorKind, _ ctx: WorkerContext,
                    _ dirty: inout SwitchPortQueue.Dirty) {
        let proto = f.load(fromByteOffset: 23, as: UInt8.self)
        if proto == 1 && total >= ihl &+ 1 {
            let t = f.load(fromByteOffset: 14 &+ ihl, as: UInt8.self)
            if t != 0 && t != 8 { return }   // not about errors (only echo is safe to answer)
        }
        // Not about fragments other than the first.
        if UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 20, as: UInt16.self)) & 0x1FFF != 0 { return }
        let src = f.loadUnaligned(fromByteOffset: 26, as: UInt32.self)
        if src == 0 || src == 0xFFFF_FFFF { return }
        guard view.pointee.takeErrorToken(now: ctx.now), let q = ctx.cache.alloc() else { return }
        let pool = ctx.pool
        let e = pool.data(q)
        // The header and 8 bytes of the packet, cut short only if the port's MTU is smaller.
        let quoted = min(ihl &+ 8, total, shared.pointee.ports[port].maxFrame &- 42)
        let length = 14 &+ 20 &+ 8 &+ quoted
        MACKey.store(MACKey.load(f + 6), e)
        MACKey.store(shared.pointee.routerMAC, e + 6)
        e.storeBytes(of: UInt16(0x0800).bigEndian, toByteOffset: 12, as: UInt16.self)
        // IPv4: from the gateway to the sender.
        e.storeBytes(of: UInt16(0x45C0).bigEndian, toByteOffset: 14, as: UInt16.self)
        e.storeBytes(of: UInt16(20 &+ 8 &+ quoted).bigEndian, toByteOffset: 16, as: UInt16.self)
        e.storeBytes(of: 0 as UInt32, toByteOffset: 18, as: UInt32.self)
        e.storeBytes(of: UInt16(64 << 8 | 1).bigEndian, toByteOffset: 22, as: UInt16.self)
        e.storeBytes(of: 0 as UInt16, toByteOffset: 24, as: UInt16.self)
        e.storeBytes(of: Self.gateway4.bigEndian, toByteOffset: 26, as: UInt32.self)
        e.storeBytes(of: src, toByteOffset: 30, as: UInt32.self)
        e.storeBytes(of: (~onesComplementSum(e + 14, 20)).bigEndian, toByteOffset: 24, as: UInt16.self)
        // ICMP
        var typeCode: UInt16 = 0, rest: UInt32 = 0
        switch kind {
        case .timeExceeded: typeCode = 11 << 8
        case .noRoute: typeCode = 3 << 8 | 1                  // host unreachable
        case .tooBig(let mtu): typeCode = 3 << 8 | 4; rest = UInt32(min(mtu, 0xFFFF))   // fragmentation needed
        }
        e.storeBytes(of: typeCode.bigEndian, toByteOffset: 34, as: UInt16.self)
        e.storeBytes(of: 0 as UInt16, toByteOffset: 36, as: UInt16.self)
        e.storeBytes(of: rest.bigEndian, toByteOffset: 38, as: UInt32.self)
        (e + 42).copyMemory(from: f + 14, byteCount: quoted)
        e.storeBytes(of: (~onesComplementSum(e + 34, 8 &+ quoted)).bigEndian, toByteOffset: 36, as: UInt16.self)
        pool.setReceived(q, length: length)
        view.pointee.counters.icmpErrors.increment()
        stage(q, to: port, ctx, &dirty)
    }

    /// IPv6 `f` (`payload` bytes after its header) could not be forwarded.
    @inlinable
    func icmp6Error(_ f: UnsafeMutableRawPointer, payload: Int, _ kind: ErrorKind, _ ctx: WorkerContext,
                    _ dirty: inout SwitchPortQueue.Dirty) {
        let next = f.load(fromByteOffset: 20, as: UInt8.self)
        if next == 58 && payload >= 1 && f.load(fromByteOffset: 54, as: UInt8.self) < 128 { return }   // an error itself
        let srcHigh = UInt64(bigEndian: f.loadUnaligned(fromByteOffset: 22, as: UInt64.self))
        let srcLow = UInt64(bigEndian: f.loadUnaligned(fromByteOffset: 30, as: UInt64.self))
        if srcHigh == 0 && srcLow == 0 || srcHigh >> 56 == 0xFF { return }
        guard view.pointee.takeErrorToken(now: ctx.now), let q = ctx.cache.alloc() else { return }
        let pool = ctx.pool
        let e = pool.data(q)
        // The whole error fits the IPv6 minimum MTU (1280), and the sender's port: its MTU
        // may be smaller (a guest would drop a longer frame).
        let quoted = min(40 &+ payload, min(1280, shared.pointee.ports[port].maxFrame &- 14) &- 48)
        let icmpLength = 8 &+ quoted
        MACKey.store(MACKey.load(f + 6), e)
        MACKey.store(shared.pointee.routerMAC, e + 6)
        e.storeBytes(of: UInt16(0x86DD).bigEndian, toByteOffset: 12, as: UInt16.self)
        e.storeBytes(of: UInt32(0x6000_0000).bigEndian, toByteOffset: 14, as: UInt32.self)
        e.storeBytes(of: UInt16(icmpLength).bigEndian, toByteOffset: 18, as: UInt16.self)
        e.storeBytes(of: UInt16(58 << 8 | 64).bigEndian, toByteOffset: 20, as: UInt16.self)
        let g = shared.pointee
        let fromHigh = g.global6High != 0 ? g.global6High : Self.gateway6High
        let fromLow = g.global6High != 0 ? g.global6Low : 1
        e.storeBytes(of: fromHigh.bigEndian, toByteOffset: 22, as: UInt64.self)
        e.storeBytes(of: fromLow.bigEndian, toByteOffset: 30, as: UInt64.self)
        e.storeBytes(of: srcHigh.bigEndian, toByteOffset: 38, as: UInt64.self)
        e.storeBytes(of: srcLow.bigEndian, toByteOffset: 46, as: UInt64.self)
        var typeCode: UInt16 = 0, rest: UInt32 = 0
        switch kind {
        case .timeExceeded: typeCode = 3 << 8
        case .noRoute: typeCode = 1 << 8 | 0
        case .tooBig(let mtu): typeCode = 2 << 8; rest = UInt32(mtu)
        }
        e.storeBytes(of: typeCode.bigEndian, toByteOffset: 54, as: UInt16.self)
        e.storeBytes(of: 0 as UInt16, toByteOffset: 56, as: UInt16.self)
        e.storeBytes(of: rest.bigEndian, toByteOffset: 58, as: UInt32.self)
        (e + 62).copyMemory(from: f + 14, byteCount: quoted)
        // Pseudo-header: both addresses, the upper-layer length, next header 58.
        let s = UInt32(onesComplementSum(e + 22, 32)) &+ UInt32(onesComplementSum(e + 54, icmpLength))
            &+ UInt32(icmpLength) &+ 58
        e.storeBytes(of: (~Self.fold(s)).bigEndian, toByteOffset: 56, as: UInt16.self)
        pool.setReceived(q, length: 54 &+ icmpLength)
        view.pointee.counters.icmpErrors.increment()
        stage(q, to: port, ctx, &dirty)
    }
}
