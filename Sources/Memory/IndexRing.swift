import CSluice

/// A bounded lock-free ring of `UInt32` indices (packet handles, buffer indices).
///
/// The shape of DPDK's `rte_ring`: producer head/tail and consumer head/tail are
/// free-running 32-bit counters on separate cache lines; a producer claims slots by
/// moving `prod.head` (CAS when several producers share the ring), writes them, then
/// publishes by moving `prod.tail` with release order once earlier producers have
/// published. Consumers mirror this. `_burst` moves up to n, `_bulk` all or nothing.
///
/// The value is a plain pointer (BitwiseCopyable, no ARC): whoever calls `create`
/// owns the memory and calls `destroy` once no thread uses the ring any more.
@frozen
public struct IndexRing: @unchecked Sendable, BitwiseCopyable {
    public enum Sync: Sendable { case single, multi }

    // Layout of the header (each on its own 64-byte line):
    //   line 0: capacity, mask, flags      line 1: prod.head   line 2: prod.tail
    //   line 3: cons.head                   line 4: cons.tail   then: slots
    @usableFromInline static let line = 64
    @usableFromInline static let prodHead = 64, prodTail = 128, consHead = 192, consTail = 256, slots = 320

    @usableFromInline let base: UnsafeMutableRawPointer
    public let capacity: UInt32
    @usableFromInline let mask: UInt32
    @usableFromInline let multiProducer: Bool
    @usableFromInline let multiConsumer: Bool

    /// Allocate a ring of `capacity` slots (a power of two, 1...2^30).
    public static func create(capacity: Int, producers: Sync, consumers: Sync) -> IndexRing {
        precondition(capacity > 0 && capacity <= 1 << 30 && capacity & (capacity - 1) == 0,
                     "ring capacity must be a power of two")
        let bytes = slots + capacity * 4
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return IndexRing(base: p, capacity: UInt32(capacity), mask: UInt32(capacity - 1),
                         multiProducer: producers == .multi, multiConsumer: consumers == .multi)
    }

    @usableFromInline
    init(base: UnsafeMutableRawPointer, capacity: UInt32, mask: UInt32, multiProducer: Bool, multiConsumer: Bool) {
        self.base = base; self.capacity = capacity; self.mask = mask
        self.multiProducer = multiProducer; self.multiConsumer = multiConsumer
    }

    public func destroy() { base.deallocate() }

    /// Entries currently in the ring (a snapshot; exact only when quiescent).
    @inlinable public var count: Int {
        Int(sl_load_acquire_u32(base + Self.prodTail) &- sl_load_acquire_u32(base + Self.consTail))
    }

    @inlinable public var freeCount: Int { Int(capacity) - count }

    @inlinable
    var slotBase: UnsafeMutablePointer<UInt32> {
        (base + Self.slots).assumingMemoryBound(to: UInt32.self)
    }

    // MARK: - Producer

    /// Enqueue up to `n` entries from `src`; returns how many were enqueued.
    @inlinable
    public func enqueueBurst(_ src: UnsafePointer<UInt32>, _ n: Int) -> Int {
        enqueue(src, UInt32(truncatingIfNeeded: n), all: false)
    }

    /// Enqueue all `n` entries or none; returns true when enqueued.
    @inlinable
    public func enqueueBulk(_ src: UnsafePointer<UInt32>, _ n: Int) -> Bool {
        enqueue(src, UInt32(truncatingIfNeeded: n), all: true) == n
    }

    @inlinable
    public func enqueue(_ value: UInt32) -> Bool {
        withUnsafePointer(to: value) { enqueue($0, 1, all: true) == 1 }
    }

    @inlinable
    func enqueue(_ src: UnsafePointer<UInt32>, _ want: UInt32, all: Bool) -> Int {
        let headPtr = base + Self.prodHead, tailPtr = base + Self.prodTail
        var head: UInt32
        var n: UInt32
        repeat {
            head = sl_load_relaxed_u32(headPtr)
            // Acquire pairs with the consumer's release of cons.tail: slots it freed are ours.
            let consTail = sl_load_acquire_u32(base + Self.consTail)
            let free = capacity &+ consTail &- head
            n = want <= free ? want : (all ? 0 : free)
            if n == 0 { return 0 }
            if !multiProducer {
                sl_store_relaxed_u32(headPtr, head &+ n)
                break
            }
            var expected = head
            if sl_cas_u32(headPtr, &expected, head &+ n) { break }
        } while true
        let slots = slotBase
        let at = Int(head & mask), count = Int(n)
        let first = min(count, Int(capacity) &- at)
        for i in 0..<first { slots[at &+ i] = src[i] }
        for i in first..<count { slots[i &- first] = src[i] }
        if multiProducer {
            // Earlier producers must publish first, so prod.tail only ever covers written slots.
            var turns: UInt32 = 0
            while sl_load_relaxed_u32(tailPtr) != head { sl_spin_wait(&turns) }
        }
        // Release pairs with the consumer's acquire of prod.tail.
        sl_store_release_u32(tailPtr, head &+ n)
        return Int(n)
    }

    // MARK: - Consumer

    /// Dequeue up to `max` entries into `dst`; returns how many.
    @inlinable
    public func dequeueBurst(_ dst: UnsafeMutablePointer<UInt32>, _ max: Int) -> Int {
        dequeue(dst, UInt32(truncatingIfNeeded: max), all: false)
    }

    /// Dequeue exactly `n` entries or none.
    @inlinable
    public func dequeueBulk(_ dst: UnsafeMutablePointer<UInt32>, _ n: Int) -> Bool {
        dequeue(dst, UInt32(truncatingIfNeeded: n), all: true) == n
    }

    @inlinable
    public func dequeue() -> UInt32? {
        var v: UInt32 = 0
        return dequeue(&v, 1, all: true) == 1 ? v : nil
    }

    @inlinable
    func dequeue(_ dst: UnsafeMutablePointer<UInt32>, _ want: UInt32, all: Bool) -> Int {
        let headPtr = base + Self.consHead, tailPtr = base + Self.consTail
        var head: UInt32
        var n: UInt32
        repeat {
            head = sl_load_relaxed_u32(headPtr)
            // Acquire pairs with the producer's release of prod.tail: the slots are written.
            let prodTail = sl_load_acquire_u32(base + Self.prodTail)
            let avail = prodTail &- head
            n = want <= avail ? want : (all ? 0 : avail)
            if n == 0 { return 0 }
            if !multiConsumer {
                sl_store_relaxed_u32(headPtr, head &+ n)
                break
            }
            var expected = head
            if sl_cas_u32(headPtr, &expected, head &+ n) { break }
        } while true
        let slots = slotBase
        let at = Int(head & mask), count = Int(n)
        let first = min(count, Int(capacity) &- at)
        for i in 0..<first { dst[i] = slots[at &+ i] }
        for i in first..<count { dst[i] = slots[i &- first] }
        if multiConsumer {
            var turns: UInt32 = 0
            while sl_load_relaxed_u32(tailPtr) != head { sl_spin_wait(&turns) }
        }
        // Release pairs with the producer's acquire of cons.tail: the slots may be reused.
        sl_store_release_u32(tailPtr, head &+ n)
        return Int(n)
    }
}
