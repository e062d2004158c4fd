import CSluice

/// Inflight tracking for split rings, in the layout libvhost-user and QEMU's
/// vhost-user-blk share (the front-end keeps the area and hands it back when the
/// back-end reconnects, so requests a killed back-end took are served again).
///
/// A queue's region: features u64 | version u16 | desc_num u16 | last_batch_head u16 |
/// used_idx u16 | desc_num × {inflight u8, padding[5], next u16, counter u64}.
public enum InflightRegion {
    public static let headerSize = 16
    public static let descSize = 16
    static let version = 8, descNum = 10, lastBatchHead = 12, usedIdx = 14

    /// Bytes of one queue's region (as libvhost-user sizes it: 64-byte aligned).
    public static func queueRegionSize(queueSize: Int) -> Int {
        (descSize * queueSize + 2 + 63) & ~63
    }
}

extension Virtqueue {
    /// Descriptor state entry of `head` (nil when untracked or out of the region).
    @inlinable @inline(__always)
    func inflightDesc(_ head: UInt16) -> UnsafeMutableRawPointer? {
        guard let r = state.pointee.inflight, head < state.pointee.inflightDescs else { return nil }
        return r + 16 + Int(head) &* 16
    }

    /// A request with head `head` was taken from the avail ring.
    @inlinable @inline(__always)
    public func inflightBegin(_ head: UInt16) {
        guard let d = inflightDesc(head) else { return }
        let c = state.pointee.inflightCounter
        state.pointee.inflightCounter = c &+ 1
        d.storeBytes(of: c, toByteOffset: 8, as: UInt64.self)
        sl_fence_release()
        d.storeBytes(of: 1, as: UInt8.self)
    }

    /// Complete one request: used entry, used.idx published, then the request leaves the
    /// inflight area (so a crash anywhere in between is recoverable: `InflightArea.recover`).
    /// Untracked queues only queue the entry (publish with `publishUsed`).
    @inlinable @inline(__always)
    public func completeTracked(id: UInt16, len: UInt32) {
        guard let r = state.pointee.inflight else {
            pushUsed(id: id, len: len)
            return
        }
        r.storeBytes(of: id, toByteOffset: 12, as: UInt16.self)   // last_batch_head
        sl_fence_release()
        pushUsed(id: id, len: len)
        publishUsed()
        if let d = inflightDesc(id) { d.storeBytes(of: 0, as: UInt8.self) }
        sl_fence_release()
        r.storeBytes(of: state.pointee.usedIdx, toByteOffset: 14, as: UInt16.self)
    }

    /// A head to serve again (recovered after a restart), oldest first; nil when none.
    @inlinable @inline(__always)
    public func nextResubmit() -> UInt16? {
        let s = state
        guard s.pointee.resubmitNext < s.pointee.resubmitCount, let list = s.pointee.resubmit else { return nil }
        let h = list[s.pointee.resubmitNext]
        s.pointee.resubmitNext &+= 1
        return h
    }
}
