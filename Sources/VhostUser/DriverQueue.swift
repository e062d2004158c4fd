#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform

/// The driver side of one split virtqueue (what a guest's virtio driver
/// does): descriptor table, available and used rings in guest memory, a
/// private free-descriptor list, one fixed buffer slot per descriptor.
///
/// Memory block (laid out by `init`, see `bytesNeeded`):
/// `[descriptor table][avail ring][used ring][slot 0][slot 1]…`, each part
/// 64-byte aligned. Descriptor `i` always points into slot `i` (or, for a
/// chain, each of its descriptors into its own slot), so a buffer is found
/// from the used element's id without any lookup table.
///
/// Batching: `makeAvailable` only writes ring entries; `publish` makes them
/// visible with one store of `avail.idx` and kicks at most once.
///
/// Owned by one thread at a time (the thread that sends or receives on it);
/// `@unchecked Sendable` so a frontend can be handed to a worker thread.
public final class DriverQueue: @unchecked Sendable {
    /// The vring index on the vhost-user socket (2q: RX, 2q+1: TX of pair q).
    public let vringIndex: UInt32
    public let layout: DriverQueueLayout
    /// Whether VIRTIO_F_EVENT_IDX was negotiated: avail_event/used_event
    /// replace the NO_NOTIFY/NO_INTERRUPT flags.
    public let eventIndex: Bool
    /// Written by us to kick the device; read by the device. -1: never kick.
    public let kickFD: Int32
    /// Written by the device to call us; polled by `waitForCall`. -1: none.
    public let callFD: Int32

    public let descriptorTable: UnsafeMutableRawPointer
    public let availRing: UnsafeMutableRawPointer
    public let usedRing: UnsafeMutableRawPointer
    /// Guest physical addresses of the same three parts.
    public let descriptorTableGPA: UInt64
    public let availRingGPA: UInt64
    public let usedRingGPA: UInt64

    /// The first buffer slot and the distance between slots.
    let slots: UnsafeMutableRawPointer
    let slotsGPA: UInt64
    public let slotStride: Int

    let mask: UInt16
    /// Next free entry of the available ring (our shadow of avail.idx).
    private(set) var nextAvail: UInt16 = 0
    /// The avail.idx the device has been shown.
    private(set) var publishedAvail: UInt16 = 0
    /// Next used element to consume.
    private(set) var lastUsed: UInt16 = 0
    /// The used.idx read last (so a burst loads it once).
    private var usedShadow: UInt16 = 0
    /// Private free list: `freeNext[i]` is the descriptor after `i`, both in
    /// the free list and, for a descriptor in flight, in its chain.
    private let freeNext: UnsafeMutablePointer<UInt16>
    /// Per chain head: descriptors in the chain while in flight, 0 when not.
    private let chainLength: UnsafeMutablePointer<UInt16>
    private var freeHead: UInt16 = 0
    public private(set) var freeCount: Int
    /// Whether calls are currently asked for.
    public private(set) var callsEnabled = true

    /// Kicks written to the eventfd / kicks the device's flags or avail_event saved.
    public private(set) var kicks: UInt64 = 0
    public private(set) var kicksSuppressed: UInt64 = 0
    /// Used elements with an id we never made available (a device bug), skipped.
    public private(set) var badUsedElements: UInt64 = 0

    /// Bytes a queue of `layout` with slots of `slotStride` bytes needs.
    public static func bytesNeeded(layout: DriverQueueLayout, slotStride: Int) -> Int {
        let (_, _, _, slotsOffset) = offsets(layout)
        return slotsOffset + layout.size * slotStride
    }

    private static func offsets(_ layout: DriverQueueLayout) -> (desc: Int, avail: Int, used: Int, slots: Int) {
        let avail = DriverQueueLayout.alignUp(layout.descriptorTableBytes, 64)
        let used = DriverQueueLayout.alignUp(avail + layout.availRingBytes, 64)
        let slots = DriverQueueLayout.alignUp(used + layout.usedRingBytes, 64)
        return (0, avail, used, slots)
    }

    /// Lays the queue out in `memory` (guest physical address `gpa`), which
    /// must hold `bytesNeeded` bytes and be 64-byte aligned. Rings are zeroed.
    public init(vringIndex: UInt32, layout: DriverQueueLayout, memory: UnsafeMutableRawPointer, gpa: UInt64,
                slotStride: Int, eventIndex: Bool, kickFD: Int32, callFD: Int32) {
        precondition(slotStride > 0 && slotStride % 64 == 0, "slot stride must be a positive multiple of 64")
        self.vringIndex = vringIndex
        self.layout = layout
        self.eventIndex = eventIndex
        self.kickFD = kickFD
        self.callFD = callFD
        self.slotStride = slotStride
        let o = Self.offsets(layout)
        descriptorTable = memory + o.desc
        availRing = memory + o.avail
        usedRing = memory + o.used
        slots = memory + o.slots
        descriptorTableGPA = gpa + UInt64(o.desc)
        availRingGPA = gpa + UInt64(o.avail)
        usedRingGPA = gpa + UInt64(o.used)
        slotsGPA = gpa + UInt64(o.slots)
        memset(memory, 0, o.slots)
        mask = UInt16(truncatingIfNeeded: layout.size - 1)
        freeNext = .allocate(capacity: layout.size)
        chainLength = .allocate(capacity: layout.size)
        for i in 0..<layout.size {
            freeNext[i] = UInt16(truncatingIfNeeded: i + 1)
            chainLength[i] = 0
        }
        freeCount = layout.size
    }

    deinit {
        freeNext.deallocate()
        chainLength.deallocate()
    }

    public var size: Int { layout.size }
    /// Chains made available and not yet returned by the device.
    public var inFlight: Int { layout.size - freeCount }
    /// Entries written with `makeAvailable` but not yet `publish`ed.
    public var unpublished: Int { Int(nextAvail &- publishedAvail) }

    // MARK: Buffer slots

    /// The buffer slot of descriptor `index`.
    @inline(__always)
    public func slot(_ index: UInt16) -> UnsafeMutableRawPointer { slots + Int(index) * slotStride }

    /// The guest physical address of the slot of descriptor `index`.
    @inline(__always)
    public func slotGPA(_ index: UInt16) -> UInt64 { slotsGPA &+ UInt64(Int(index) * slotStride) }

    // MARK: Building chains

    /// Takes `count` free descriptors for one chain and returns its head, or
    /// nil when fewer than `count` are free. The chain's descriptors are
    /// `head`, `following(head)`, … (write each with `setDescriptor`).
    @inline(__always)
    public func allocateChain(_ count: Int) -> UInt16? {
        guard count >= 1, count <= freeCount else { return nil }
        let head = freeHead
        var last = head
        for _ in 1..<count { last = freeNext[Int(last)] }
        freeHead = freeNext[Int(last)]
        freeCount -= count
        chainLength[Int(head)] = UInt16(truncatingIfNeeded: count)
        return head
    }

    /// The descriptor after `index` in its chain.
    @inline(__always)
    public func following(_ index: UInt16) -> UInt16 { freeNext[Int(index)] }

    /// Writes descriptor `index`. With `descriptorNext` in `flags`, its next
    /// field points at `following(index)`.
    @inline(__always)
    public func setDescriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16) {
        let d = descriptorTable + Int(index) * DriverQueueLayout.descriptorSize
        d.storeBytes(of: address, as: UInt64.self)
        d.storeBytes(of: length, toByteOffset: 8, as: UInt32.self)
        d.storeBytes(of: flags, toByteOffset: 12, as: UInt16.self)
        let next = flags & DriverQueueLayout.descriptorNext != 0 ? freeNext[Int(index)] : 0
        d.storeBytes(of: next, toByteOffset: 14, as: UInt16.self)
    }

    /// Puts a chain on the available ring (not yet visible: see `publish`).
    @inline(__always)
    public func makeAvailable(head: UInt16) {
        let slot = Int(nextAvail & mask)
        // Plain store: ordered before the device can look by publish's release store.
        availRing.storeBytes(of: head, toByteOffset: DriverQueueLayout.availEntryOffset(slot), as: UInt16.self)
        nextAvail &+= 1
    }

    /// Shows every chain made available since the last call to the device
    /// with one store of avail.idx, then kicks unless the device said it
    /// does not need one. Returns whether it kicked.
    @discardableResult
    public func publish() -> Bool {
        let old = publishedAvail
        let new = nextAvail
        guard old != new else { return false }
        // Release: the descriptors and ring entries written above become
        // visible before the new index. Pairs with the device's acquire load
        // of avail.idx before it reads the ring.
        sl_store_release_u16(availRing + DriverQueueLayout.availIndexOffset, new)
        publishedAvail = new
        // Full fence: the store of avail.idx must be visible before we read
        // the device's suppression state (a store→load order, which release
        // and acquire do not give). Pairs with the device's full fence between
        // writing avail_event / clearing NO_NOTIFY and re-reading avail.idx.
        sl_fence_seq_cst()
        let needed: Bool
        if eventIndex {
            let event = sl_load_relaxed_u16(usedRing + layout.availEventOffset)
            needed = virtqueueNeedsEvent(event: event, new: new, old: old)
        } else {
            needed = sl_load_relaxed_u16(usedRing + DriverQueueLayout.usedFlagsOffset) & DriverQueueLayout.usedNoNotify == 0
        }
        guard needed, kickFD >= 0 else {
            kicksSuppressed &+= 1
            return false
        }
        EventFD.signal(kickFD)
        kicks &+= 1
        return true
    }

    // MARK: Harvesting used chains

    /// Whether the device has returned a chain we have not consumed. Reads
    /// used.idx with acquire (pairs with the device's release store of it).
    @inline(__always)
    public func hasUsed() -> Bool {
        if lastUsed != usedShadow { return true }
        usedShadow = sl_load_acquire_u16(usedRing + DriverQueueLayout.usedIndexOffset)
        return lastUsed != usedShadow
    }

    /// The next used element: the chain head and the bytes the device wrote
    /// into it. The chain stays allocated until `release(head:)`, so its
    /// slots can be read first. Elements naming a descriptor that is not a
    /// chain head in flight are counted in `badUsedElements` and skipped.
    @inline(__always)
    public func takeUsed() -> (head: UInt16, length: UInt32)? {
        while true {
            if lastUsed == usedShadow {
                // Acquire: the used elements and the buffers the device wrote
                // are visible once we see its used.idx. Pairs with the device's
                // release store of used.idx after writing them.
                usedShadow = sl_load_acquire_u16(usedRing + DriverQueueLayout.usedIndexOffset)
                if lastUsed == usedShadow { return nil }
                if usedShadow &- lastUsed > publishedAvail &- lastUsed {
                    // The device claims more chains than were ever made
                    // available: believe only as many as there are.
                    badUsedElements &+= 1
                    usedShadow = publishedAvail
                    if lastUsed == usedShadow { return nil }
                }
            }
            let e = usedRing + DriverQueueLayout.usedElementOffset(Int(lastUsed & mask))
            let id = e.load(as: UInt32.self)
            let length = e.load(fromByteOffset: 4, as: UInt32.self)
            lastUsed &+= 1
            if id < UInt32(layout.size), chainLength[Int(id)] != 0 {
                return (UInt16(truncatingIfNeeded: id), length)
            }
            badUsedElements &+= 1
        }
    }

    /// Returns a consumed chain's descriptors to the free list.
    @inline(__always)
    public func release(head: UInt16) {
        let count = Int(chainLength[Int(head)])
        guard count > 0 else { return }
        var last = head
        for _ in 1..<count { last = freeNext[Int(last)] }
        freeNext[Int(last)] = freeHead
        freeHead = head
        freeCount += count
        chainLength[Int(head)] = 0
    }

    /// Takes and releases every used chain; returns how many.
    @discardableResult
    public func reclaim() -> Int {
        var n = 0
        while let (head, _) = takeUsed() {
            release(head: head)
            n += 1
        }
        return n
    }

    // MARK: Calls (device → driver notifications)

    /// Asks the device not to call. Under EVENT_IDX used_event is put just
    /// behind the consumer, so it is only crossed again after 2^16 entries.
    public func disableCalls() {
        callsEnabled = false
        if eventIndex {
            sl_store_relaxed_u16(availRing + layout.usedEventOffset, lastUsed &- 1)
        } else {
            sl_store_relaxed_u16(availRing + DriverQueueLayout.availFlagsOffset, DriverQueueLayout.availNoInterrupt)
        }
    }

    /// Asks the device to call on the next used chain. Returns true when one
    /// is already there (then no call may come for it: consume it first).
    public func enableCalls() -> Bool {
        callsEnabled = true
        if eventIndex {
            sl_store_relaxed_u16(availRing + layout.usedEventOffset, lastUsed)
        } else {
            sl_store_relaxed_u16(availRing + DriverQueueLayout.availFlagsOffset, 0)
        }
        // Full fence: our used_event/flags store must be visible before we
        // re-read used.idx (store→load). Pairs with the device's full fence
        // between its store of used.idx and its read of used_event/flags.
        sl_fence_seq_cst()
        return hasUsed()
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for a call, with calls
    /// enabled for the wait and disabled again after it. Returns true when a
    /// used chain is ready to be taken.
    public func waitForCall(timeoutMilliseconds: Int32) -> Bool {
        if enableCalls() {
            disableCalls()
            return true
        }
        guard callFD >= 0 else {
            disableCalls()
            return hasUsed()
        }
        if Poll.once(callFD, for: Poll.readable, timeoutMilliseconds: timeoutMilliseconds) != 0 { EventFD.drain(callFD) }
        disableCalls()
        return hasUsed()
    }
}
