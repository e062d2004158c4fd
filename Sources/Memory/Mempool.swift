#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform

/// Per-buffer metadata at the start of every mempool buffer (64 bytes, one line).
/// Layout is fixed and checked by a test: offsets below are the contract.
public enum BufferLayout {
    /// Bytes of metadata before the headroom.
    public static let metaSize = 64
    /// Room before the frame for headers to be prepended (virtio-net header, VLAN tag).
    public static let headroom = 128
    /// Frame bytes a buffer can hold.
    public static let dataRoom = 2048
    /// Distance between buffers; a multiple of 64.
    public static let stride = metaSize + headroom + dataRoom
    // Metadata field offsets.
    public static let lengthOffset = 0      // UInt32: frame length
    public static let dataOffset = 4        // UInt16: start of the frame from the data area start (headroom-relative)
    public static let portOffset = 6        // UInt16: input port id
    public static let vnetOffset = 8        // 12 bytes: virtio-net header carried with the frame
}

/// Hot-path view of a mempool: base pointer, stride and the shared free ring.
/// A plain value (no ARC); valid while the owning `Mempool` lives.
@frozen
public struct MempoolRef: @unchecked Sendable, BitwiseCopyable {
    public let base: UnsafeMutableRawPointer
    public let count: UInt32
    public let ring: IndexRing

    @inlinable
    public func buffer(_ p: Packet) -> UnsafeMutableRawPointer {
        base + Int(p.index) &* BufferLayout.stride
    }

    /// Start of the frame bytes of `p` (after metadata and headroom).
    @inlinable
    public func data(_ p: Packet) -> UnsafeMutableRawPointer {
        buffer(p) + BufferLayout.metaSize + BufferLayout.headroom
    }

    @inlinable
    public func length(_ p: Packet) -> Int {
        Int(buffer(p).load(fromByteOffset: BufferLayout.lengthOffset, as: UInt32.self))
    }

    @inlinable
    public func setLength(_ p: Packet, _ n: Int) {
        buffer(p).storeBytes(of: UInt32(truncatingIfNeeded: n), toByteOffset: BufferLayout.lengthOffset, as: UInt32.self)
    }

    /// True when `index` names a buffer of this pool.
    @inlinable public func owns(_ index: UInt32) -> Bool { index < count }
}

/// A worker's private cache in front of the shared free ring, so most allocations
/// and frees touch no shared cache line. Owned by exactly one thread.
@frozen
public struct MempoolCache: @unchecked Sendable, BitwiseCopyable {
    public static let size = 256
    /// slot 0: count; then `size * 2` entries (room to absorb a burst before flushing).
    @usableFromInline let storage: UnsafeMutablePointer<UInt32>
    public let pool: MempoolRef

    init(pool: MempoolRef) {
        self.pool = pool
        storage = .allocate(capacity: 1 + Self.size * 2)
        storage.initialize(repeating: 0, count: 1 + Self.size * 2)
    }

    func destroy() { storage.deallocate() }

    @inlinable public var cachedCount: Int { Int(sl_load_relaxed_u32(storage)) }

    /// Allocate up to `n` buffers into `dst`; returns how many (fewer only when the
    /// pool is exhausted). The caller counts the shortfall as `alloc_fail`.
    @inlinable
    public func alloc(_ dst: UnsafeMutablePointer<UInt32>, _ n: Int) -> Int {
        var have = Int(storage[0])
        let entries = storage + 1
        if _slowPath(have < n) {
            // Refill to `size` (plus what this request needs) in one ring operation.
            have += pool.ring.dequeueBurst(entries + have, Self.size + n - have)
        }
        let take = n <= have ? n : have
        // Hand out from the top of the stack (most recently freed: warm in cache).
        let top = have &- 1
        for i in 0..<take { dst[i] = entries[top &- i] }
        sl_store_relaxed_u32(storage, UInt32(truncatingIfNeeded: have &- take))
        return take
    }

    @inlinable
    public func alloc() -> Packet? {
        var v: UInt32 = 0
        return alloc(&v, 1) == 1 ? Packet(index: v) : nil
    }

    /// Return `n` buffers.
    @inlinable
    public func free(_ src: UnsafePointer<UInt32>, _ n: Int) {
        let have = Int(storage[0])
        if _fastPath(have &+ n < Self.size &* 2) {
            let entries = storage + 1
            for j in 0..<n { entries[have &+ j] = src[j] }
            sl_store_relaxed_u32(storage, UInt32(truncatingIfNeeded: have &+ n))
            return
        }
        freeSlow(src, n)
    }

    @inline(never) @usableFromInline
    func freeSlow(_ src: UnsafePointer<UInt32>, _ n: Int) {
        var have = Int(storage[0])
        let entries = storage + 1
        var i = 0
        while i < n {
            let room = Self.size * 2 - have
            let chunk = n - i <= room ? n - i : room
            for j in 0..<chunk { entries[have &+ j] = src[i &+ j] }
            have &+= chunk
            i &+= chunk
            if have >= Self.size * 2 || (i < n) {
                // Flush the older half back to the shared ring.
                let flushed = pool.ring.enqueueBurst(entries, Self.size)
                memmove(entries, entries + flushed, (have - flushed) * 4)
                have -= flushed
            }
        }
        sl_store_relaxed_u32(storage, UInt32(have))
    }

    @inlinable
    public func free(_ p: Packet) {
        withUnsafePointer(to: p.index) { free($0, 1) }
    }

    /// Give every cached buffer back (worker shutdown).
    public func flush() {
        let have = Int(storage[0])
        var done = 0
        while done < have { done += pool.ring.enqueueBurst(storage + 1 + done, have - done) }
        sl_store_relaxed_u32(storage, 0)
    }
}

/// A pool of fixed-size packet buffers in (huge page) packet memory, handed out by
/// `UInt32` index. Control-plane owner: creates the memory, the free ring and one
/// cache per worker, and reports `in_use`.
public final class Mempool: @unchecked Sendable {
    public let name: String
    public let count: Int
    public let memory: PacketMemory
    public let ref: MempoolRef
    private var caches: [MempoolCache] = []

    /// `count` buffers; `caches` per-thread caches (one per worker).
    public init(name: String, count: Int, caches: Int, policy: HugepagePolicy, numaNode: Int = -1) throws(HugepageError) {
        precondition(count > 0 && count <= 1 << 24)
        self.name = name
        self.count = count
        memory = try Hugepages.allocate(bytes: count * BufferLayout.stride, policy: policy,
                                        numaNode: numaNode, name: "sluice-pool-\(name)")
        var cap = 1
        while cap < count { cap <<= 1 }
        let ring = IndexRing.create(capacity: cap, producers: .multi, consumers: .multi)
        var i: UInt32 = 0
        while i < UInt32(count) { _ = ring.enqueue(i); i += 1 }
        ref = MempoolRef(base: memory.region.base, count: UInt32(count), ring: ring)
        for _ in 0..<caches { self.caches.append(MempoolCache(pool: ref)) }
    }

    deinit {
        for c in caches { c.destroy() }
        ref.ring.destroy()
    }

    /// The cache of worker `n`: use it from that worker's thread only.
    public func cache(_ n: Int) -> MempoolCache { caches[n] }

    /// Buffers not in the free ring and not in any cache (a gauge; exact when quiescent).
    public var inUse: Int {
        var free = ref.ring.count
        for c in caches { free += c.cachedCount }
        return count - free
    }
}
