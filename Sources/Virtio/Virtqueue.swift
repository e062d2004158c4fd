import CSluice
import Platform

/// The state of one split virtqueue as the device sees it. Lives in memory that the
/// owning port allocates once and keeps for its whole life, so a worker's poll entry
/// can point at it across guest reconnects.
///
/// Ownership: the worker that polls the queue reads and writes it; the control thread
/// changes it only while that worker is paused (see `WorkerControl`).
@frozen
public struct VirtqueueState {
    public var desc: UnsafeMutableRawPointer? = nil
    public var avail: UnsafeMutableRawPointer? = nil
    public var used: UnsafeMutableRawPointer? = nil
    public var memory: GuestMemoryTable? = nil
    public var size: UInt16 = 0
    public var mask: UInt16 = 0
    /// Next avail ring slot to consume.
    public var lastAvail: UInt16 = 0
    /// Next used ring slot to fill (published to the guest by `publishUsed`).
    public var usedIdx: UInt16 = 0
    /// used.idx when we last signalled the guest (EVENT_IDX "old").
    public var signalledUsed: UInt16 = 0
    public var kickFD: Int32 = -1
    public var callFD: Int32 = -1
    public var errFD: Int32 = -1
    /// Negotiated: EVENT_IDX, INDIRECT_DESC, header size.
    public var eventIdx = false
    public var indirect = false
    public var headerSize = 12
    /// Addresses set (SET_VRING_ADDR) and translated.
    public var addressed = false
    /// SET_VRING_KICK received (the ring has started).
    public var started = false
    /// SET_VRING_ENABLE (or implicitly enabled without protocol features).
    public var enabled = false
    /// Guest negotiated GUEST_CSUM: partial checksums may be passed through to it.
    public var guestCsum = false
    /// Guest negotiated MRG_RXBUF: a frame may span several RX chains.
    public var mergeable = false
    /// Set when anything about the guest is broken beyond a single bad descriptor.
    public var broken = false
    /// Inflight tracking (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD): this queue's region of the
    /// area shared with the front-end (`InflightRegion` layout), nil when not tracked.
    public var inflight: UnsafeMutableRawPointer? = nil
    /// Descriptor entries the region has room for: the back-end's own bound, never the
    /// `desc_num` in the shared area (the front-end can write that).
    public var inflightDescs: UInt16 = 0
    /// Requests taken so far on this queue (orders a resubmission after a restart).
    public var inflightCounter: UInt64 = 0
    /// Heads a previous back-end took and never finished, oldest first: served before
    /// anything new in the avail ring (`resubmitNext` of `resubmitCount` done).
    public var resubmit: UnsafeMutablePointer<UInt16>? = nil
    public var resubmitCount: Int = 0
    public var resubmitNext: Int = 0

    public init() {}

    /// True when the worker may move packets on this queue.
    @inlinable public var isLive: Bool { addressed && started && enabled && !broken && memory != nil }
}

/// The hot-path handle of a queue: one pointer, no ARC.
@frozen
public struct Virtqueue: BitwiseCopyable, @unchecked Sendable {
    public let state: UnsafeMutablePointer<VirtqueueState>

    @inlinable public init(_ state: UnsafeMutablePointer<VirtqueueState>) { self.state = state }

    public static func allocate() -> Virtqueue {
        let p = UnsafeMutablePointer<VirtqueueState>.allocate(capacity: 1)
        p.initialize(to: VirtqueueState())
        return Virtqueue(p)
    }

    public func deallocate() { state.deinitialize(count: 1); state.deallocate() }

    @inlinable public var isLive: Bool { state.pointee.isLive }

    // Ring layout (§2.7): avail = flags u16, idx u16, ring[size] u16, used_event u16;
    // used = flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16.

    /// Entries the guest has made available and we have not consumed (≤ size).
    @inlinable @inline(__always)
    public func availableCount() -> Int {
        let s = state
        // Acquire pairs with the driver's release (write barrier) before it bumps avail.idx:
        // the ring entries and descriptors it published are visible after this load.
        let idx = sl_load_acquire_u16(s.pointee.avail.unsafelyUnwrapped + 2)
        let n = idx &- s.pointee.lastAvail
        // A guest that claims more than the ring holds is lying; take what the ring can hold.
        return n <= s.pointee.size ? Int(n) : Int(s.pointee.size)
    }

    /// The head descriptor index in avail slot `lastAvail + i`.
    @inlinable @inline(__always)
    public func availHead(_ i: Int) -> UInt16 {
        let s = state
        let slot = Int((s.pointee.lastAvail &+ UInt16(truncatingIfNeeded: i)) & s.pointee.mask)
        return s.pointee.avail.unsafelyUnwrapped.load(fromByteOffset: 4 + slot * 2, as: UInt16.self)
    }

    @inlinable @inline(__always)
    public func consume(_ n: Int) { state.pointee.lastAvail &+= UInt16(truncatingIfNeeded: n) }

    /// Queue a used entry (not visible to the guest until `publishUsed`).
    @inlinable @inline(__always)
    public func pushUsed(id: UInt16, len: UInt32) {
        let s = state
        let slot = Int(s.pointee.usedIdx & s.pointee.mask)
        let e = s.pointee.used.unsafelyUnwrapped + 4 + slot * 8
        let entry = UInt64(id) | UInt64(len) << 32
        // In-order rings get the same entry in a slot lap after lap: skip the store then,
        // so the line stays valid in the driver's cache instead of moving to this CPU.
        if e.loadUnaligned(as: UInt64.self) != entry.littleEndian {   // entries are 4-byte aligned
            e.storeBytes(of: entry.littleEndian, as: UInt64.self)
        }
        s.pointee.usedIdx &+= 1
    }

    /// Start loading the used-ring lines the next `count` entries go to. For reading:
    /// `pushUsed` compares before it stores, and usually finds the entry already there.
    @inlinable
    public func prefetchUsed(_ count: Int) {
        let s = state
        let used = s.pointee.used.unsafelyUnwrapped
        let first = s.pointee.usedIdx
        let mask = s.pointee.mask   // split ring sizes are powers of two
        var k = 0
        while k < count {   // one line per 8 entries, wrapping with the ring
            sl_prefetch(used + 4 + Int((first &+ UInt16(truncatingIfNeeded: k)) & mask) &* 8)
            k &+= 8
        }
        sl_prefetch(used + 4 + Int((first &+ UInt16(truncatingIfNeeded: count &- 1)) & mask) &* 8)
    }

    /// Publish queued used entries with one store; then tell the guest where we want
    /// the next kick (EVENT_IDX) and signal it if it asked to be.
    @inlinable
    public func publishUsed() {
        let s = state
        let used = s.pointee.used.unsafelyUnwrapped
        // Release pairs with the driver's read barrier after it reads used.idx: the
        // used entries (and the data we wrote into its buffers) are visible first.
        sl_store_release_u16(used + 2, s.pointee.usedIdx)
    }

    /// Signal the guest's call eventfd if its notification rules ask for it — exactly:
    /// after this returns, a guest that asked for an interrupt for anything published
    /// so far has been (or will be) signalled. Costs a full barrier; the p2p link calls
    /// it when a poll moves nothing. The per-burst path uses `notifyLazily`.
    @inlinable
    public func notifyIfNeeded() {
        if !hasUnsignalledUsed { return }
        // Full barrier: our used.idx store must be visible before we read the guest's
        // suppression state (pairs with the driver's barrier between its used_event
        // write and re-reading used.idx), or an interrupt can be lost.
        sl_fence_seq_cst()
        let s = state
        let newUsed = s.pointee.usedIdx
        if guestWantsSignal(new: newUsed) && s.pointee.callFD >= 0 { EventFD.signal(s.pointee.callFD) }
        s.pointee.signalledUsed = newUsed
    }

    /// Used entries were published since the guest was last signalled (or found not to
    /// want a signal after a barrier).
    @inlinable
    public var hasUnsignalledUsed: Bool { state.pointee.usedIdx != state.pointee.signalledUsed }

    /// The hot-path notification check, without the barrier: reads the guest's
    /// suppression state (a line the worker reads anyway) right after publishing.
    /// Without the barrier that read may be older than our used.idx store, so a guest
    /// that just turned interrupts on could be missed; hence "not wanted" leaves the
    /// entries counted as unsignalled: the check repeats after the next burst, and the
    /// caller settles it with `notifyIfNeeded` (one barrier) on its next empty poll,
    /// before it sleeps, or here when the backlog reaches a ring's worth (so the 16-bit
    /// EVENT_IDX arithmetic never wraps). A signal is at most one loop turn late; a
    /// spurious one is harmless.
    @inlinable
    public func notifyLazily() {
        let s = state
        let newUsed = s.pointee.usedIdx
        if newUsed == s.pointee.signalledUsed { return }
        if guestWantsSignal(new: newUsed) {
            if s.pointee.callFD >= 0 { EventFD.signal(s.pointee.callFD) }
            s.pointee.signalledUsed = newUsed
        } else if newUsed &- s.pointee.signalledUsed >= s.pointee.size {
            notifyIfNeeded()
        }
    }

    /// The guest's notification rule (§2.7.7, §2.7.10) for entries published since the
    /// last signal, read with a plain load.
    @inlinable
    func guestWantsSignal(new newUsed: UInt16) -> Bool {
        let s = state
        let avail = s.pointee.avail.unsafelyUnwrapped
        if s.pointee.eventIdx {
            let event = sl_load_relaxed_u16(avail + 4 + Int(s.pointee.size) * 2)
            return vringNeedEvent(event: event, new: newUsed, old: s.pointee.signalledUsed)
        }
        return sl_load_relaxed_u16(avail) & VringFlag.noInterrupt == 0
    }

    /// Ask the guest to kick us (event mode) or not (polling).
    public func setNotification(_ on: Bool) {
        let s = state
        guard s.pointee.isLive, let used = s.pointee.used else { return }
        if s.pointee.eventIdx {
            // avail_event: kick when you publish past what we have consumed.
            sl_store_relaxed_u16(used + 4 + Int(s.pointee.size) * 8, on ? s.pointee.lastAvail : s.pointee.lastAvail &- 1)
        } else {
            sl_store_relaxed_u16(used, on ? 0 : VringFlag.noNotify)
        }
        // Pairs with the driver's barrier before it reads our flags / avail_event.
        sl_fence_seq_cst()
    }

    /// While polling, tell the guest not to kick: NO_NOTIFY in used.flags, or with
    /// EVENT_IDX an avail_event just behind what we consumed. Called once per burst;
    /// a kick is an eventfd write (a syscall) in the guest's TX path.
    @inlinable
    public func suppressKicks() {
        let s = state
        let used = s.pointee.used.unsafelyUnwrapped
        if s.pointee.eventIdx {
            sl_store_relaxed_u16(used + 4 + Int(s.pointee.size) * 8, s.pointee.lastAvail &- 1)
        } else if sl_load_relaxed_u16(used) & VringFlag.noNotify == 0 {
            sl_store_relaxed_u16(used, VringFlag.noNotify)
        }
    }
}
