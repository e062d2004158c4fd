// A mock vhost guest for the datapath fuzz targets (switch-classify, router): one
// memfd-backed memory region at guest-physical 0 with a TX and an RX split virtqueue, so
// frames enter through the real `VhostRx` and leave through the real `VhostTx`.
#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Memory
import Platform
import Virtio

/// Names the target in invariant messages (`<target> fuzz invariant broken: …`).
nonisolated(unsafe) public var fuzzTargetName = "fuzz"

func fail(_ what: String) -> Never {
    fputs("\(fuzzTargetName) fuzz invariant broken: \(what)\n", stderr)
    abort()
}

public let queueSize: UInt16 = 64
public let bufferStride = 0x900   // 12-byte header + 2048 + a tag, rounded
public let memorySize = 0x80000
public let txRing = 0x0000, rxRing = 0x1000, txBuffers = 0x2000, rxBuffers = 0x30000

/// One guest: a memfd region at guest-physical 0, mapped once for the whole run.
public final class FuzzGuest: @unchecked Sendable {
    public let map = GuestMemoryMap(maxRegions: 2)
    public let base: UnsafeMutableRawPointer
    public let tx = Virtqueue.allocate()
    public let rx = Virtqueue.allocate()
    public var txAvail: UInt16 = 0
    public var rxAvail: UInt16 = 0
    public var rxUsedSeen: UInt16 = 0

    public init(_ name: String) {
        let fd = sl_memfd_create(name, sl_memfd_cloexec_flag())
        guard fd >= 0, ftruncate(fd, off_t(memorySize)) == 0 else { fail("memfd") }
        do { try map.add(guestPhys: 0, size: UInt64(memorySize), userAddr: 0x7f00_0000_0000, mmapOffset: 0, fd: fd) } catch {
            fail("map: \(error)")
        }
        guard let p = map.table.translate(0, 1) else { fail("translate") }
        base = p
    }

    public func reset(rxCount: Int) {
        base.initializeMemory(as: UInt8.self, repeating: 0, count: txBuffers)
        for (q, ring) in [(tx, txRing), (rx, rxRing)] {
            var s = VirtqueueState()
            s.desc = base + ring
            s.avail = base + ring + 0x400
            s.used = base + ring + 0x600
            s.memory = map.table
            s.size = queueSize
            s.mask = queueSize &- 1
            s.headerSize = 12
            s.addressed = true
            s.started = true
            s.enabled = true
            q.state.pointee = s
        }
        txAvail = 0; rxAvail = 0; rxUsedSeen = 0
        for i in 0..<queueSize {
            setDesc(rxRing, i, addr: UInt64(rxBuffers + Int(i) * bufferStride), len: UInt32(bufferStride), flags: 2)
        }
        for i in 0..<min(rxCount, Int(queueSize)) { publishRX(UInt16(i)) }
    }

    public func setDesc(_ ring: Int, _ i: UInt16, addr: UInt64, len: UInt32, flags: UInt16) {
        let d = base + ring + Int(i) * 16
        d.storeBytes(of: addr.littleEndian, as: UInt64.self)
        d.storeBytes(of: len.littleEndian, toByteOffset: 8, as: UInt32.self)
        d.storeBytes(of: flags.littleEndian, toByteOffset: 12, as: UInt16.self)
        d.storeBytes(of: 0, toByteOffset: 14, as: UInt16.self)
    }

    public func publishRX(_ head: UInt16) {
        (base + rxRing + 0x400).storeBytes(of: head, toByteOffset: 4 + Int(rxAvail & (queueSize &- 1)) * 2, as: UInt16.self)
        rxAvail &+= 1
        sl_store_release_u16(base + rxRing + 0x400 + 2, rxAvail)
    }

    /// TX frames posted and not yet taken by the device.
    public var txPending: Int { Int(txAvail &- tx.state.pointee.lastAvail) }

    /// Post one TX frame (a zero 12-byte header, then `frame`).
    public func postTX(_ frame: [UInt8]) {
        let slot = txAvail & (queueSize &- 1)
        let at = txBuffers + Int(slot) * bufferStride
        (base + at).initializeMemory(as: UInt8.self, repeating: 0, count: 12)
        frame.withUnsafeBytes { if $0.count > 0 { (base + at + 12).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        setDesc(txRing, slot, addr: UInt64(at), len: UInt32(12 + frame.count), flags: 0)
        (base + txRing + 0x400).storeBytes(of: slot, toByteOffset: 4 + Int(slot) * 2, as: UInt16.self)
        txAvail &+= 1
        sl_store_release_u16(base + txRing + 0x400 + 2, txAvail)
    }

    /// Frames the device gave this guest since the last call; their buffers are posted again.
    public func takeReceived(allowEmpty: Bool = true) -> [[UInt8]] {
        var out: [[UInt8]] = []
        let used = base + rxRing + 0x600
        let end = sl_load_acquire_u16(used + 2)
        while rxUsedSeen != end {
            let e = used + 4 + Int(rxUsedSeen & (queueSize &- 1)) * 8
            let id = e.load(as: UInt32.self), len = Int(e.load(fromByteOffset: 4, as: UInt32.self))
            guard id < UInt32(queueSize), len <= bufferStride else { fail("RX used entry id \(id) len \(len)") }
            if len > 0 || !allowEmpty {
                guard len >= 12 else { fail("RX used len \(len) shorter than the header") }
                let p = base + rxBuffers + Int(id) * bufferStride
                out.append([UInt8](UnsafeRawBufferPointer(start: p + 12, count: len - 12)))
            }
            rxUsedSeen &+= 1
            publishRX(UInt16(id))
        }
        return out
    }
}
