// The `nvme-data` fuzz target's address space as its controller model sees it: the
// driver's DMA buffers (queues, list pages, Identify buffers, shadow doorbell pages),
// handed out by this allocator at IOVAs that are never host addresses, and the guest's
// memory regions as the IOVA table maps them. A device address that is in neither is
// a finding, never a silent read of process memory.
#if canImport(Glibc)
import Glibc
#endif
import NVMe

/// Every broken invariant ends here (libFuzzer keeps the input as a crash).
public func fuzzFail(_ what: String) -> Never {
    fputs("nvme-data fuzz invariant broken: \(what)\n", stderr)
    abort()
}

public func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// Bytes of host memory the device reads or writes for one command, in order.
public struct HostSpan: Equatable, CustomStringConvertible {
    public var host: UInt
    public var bytes: Int
    public init(host: UInt, bytes: Int) { self.host = host; self.bytes = bytes }
    public var description: String { "\(hex(UInt64(host)))+\(bytes)" }
}

/// Drop empty spans and merge spans that continue each other in host memory, so two
/// descriptions of the same bytes compare equal however they were cut.
public func normalized(_ spans: [HostSpan]) -> [HostSpan] {
    var out: [HostSpan] = []
    for s in spans where s.bytes > 0 {
        if let last = out.last, last.host &+ UInt(last.bytes) == s.host {
            out[out.count - 1].bytes += s.bytes
        } else {
            out.append(s)
        }
    }
    return out
}

/// One IOVA range and the host memory behind it.
public struct DeviceMapping {
    public var iova: UInt64
    public var host: UnsafeMutableRawPointer
    public var bytes: Int
    public init(iova: UInt64, host: UnsafeMutableRawPointer, bytes: Int) { self.iova = iova; self.host = host; self.bytes = bytes }
    func contains(_ a: UInt64, _ n: Int) -> Bool { a >= iova && n >= 0 && a - iova <= UInt64(bytes) && UInt64(n) <= UInt64(bytes) - (a - iova) }
}

/// The DMA allocator the driver is given, and the device's IOVA map. Buffers are
/// page-aligned host memory of exactly the rounded size (ASan sees any overrun), at
/// IOVAs from `dmaBase` with an unmapped page between neighbours.
public final class DeviceMemory: DMAAllocator {
    public static let dmaBase: UInt64 = 0x20_0000_0000
    public private(set) var dma: [DeviceMapping] = []
    public let guest: [DeviceMapping]
    private var nextIOVA = DeviceMemory.dmaBase
    public private(set) var allocations = 0

    public init(guest: [DeviceMapping]) { self.guest = guest }

    deinit { for m in dma { m.host.deallocate() } }

    public func allocate(bytes: Int) throws(NVMeError) -> DMABuffer {
        guard bytes > 0, bytes <= 64 << 20 else { fuzzFail("DMA allocation of \(bytes) bytes") }
        let n = (bytes + 4095) & ~4095
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 4096)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: n)
        let iova = nextIOVA
        nextIOVA += UInt64(n) + 4096
        dma.append(DeviceMapping(iova: iova, host: p, bytes: n))
        allocations += 1
        return DMABuffer(host: p, iova: iova, bytes: n)
    }

    public func free(_ buffer: DMABuffer) {
        guard let i = dma.firstIndex(where: { $0.host == buffer.host }) else {
            fuzzFail("free of DMA memory never allocated (host \(hex(UInt64(UInt(bitPattern: buffer.host)))))")
        }
        guard dma[i].iova == buffer.iova, dma[i].bytes == buffer.bytes else {
            fuzzFail("free of a DMA buffer with another IOVA or size than allocated (\(hex(buffer.iova)), \(buffer.bytes) bytes)")
        }
        dma.remove(at: i)
        buffer.host.deallocate()
    }

    /// `bytes` at `iova` inside one DMA buffer, or nil.
    public func dmaHost(_ iova: UInt64, _ bytes: Int) -> UnsafeMutableRawPointer? {
        for m in dma where m.contains(iova, bytes) { return m.host + Int(iova - m.iova) }
        return nil
    }

    /// The DMA buffer `iova` starts, or nil.
    public func dmaBuffer(at iova: UInt64) -> DeviceMapping? { dma.first { $0.iova == iova } }

    /// The host bytes behind `bytes` of guest memory at `iova`, across guest regions
    /// that are adjacent in IOVA space; nil when any byte is not in a guest region.
    public func guestSpans(_ iova: UInt64, _ bytes: Int) -> [HostSpan]? {
        var out: [HostSpan] = []
        var a = iova, left = bytes
        while left > 0 {
            guard let m = guest.first(where: { $0.contains(a, 1) }) else { return nil }
            let off = Int(a - m.iova)
            let n = min(left, m.bytes - off)
            out.append(HostSpan(host: UInt(bitPattern: m.host + off), bytes: n))
            a &+= UInt64(n)
            left -= n
        }
        return out
    }
}
