#if canImport(Glibc)
import Glibc
#endif
import Block
import CSluice
import Stats

/// One request in flight on a queue pair: the virtqueue head it answers, how many of
/// its commands are still with the controller, and what it will report.
@frozen
public struct NVMeRequest: BitwiseCopyable {
    public var head: UInt16 = 0
    /// Commands not completed yet.
    public var partsLeft: UInt16 = 0
    /// Already answered (timeout, fatal status): its completions are dropped when they come.
    public var reported = false
    /// Bytes moved (0 for requests without data) until an error status makes it -EIO.
    public var result: Int32 = 0
    /// What the timeout scan or the fatal path answered.
    public var reportResult: Int32 = 0
    /// TSC after which its commands count as timed out.
    public var deadline: UInt64 = 0
    public init() {}
}

/// The state of a command identifier (`cidState`), shared with the control thread:
/// the worker moves free → live → timedOut and any → free; the control thread only
/// timedOut → abortSent (compare-and-swap), so neither overwrites the other.
public enum NVMeCIDState {
    public static let free: UInt32 = 0
    public static let live: UInt32 = 1
    /// Older than the I/O timeout: the control thread may send Abort.
    public static let timedOut: UInt32 = 2
    public static let abortSent: UInt32 = 3
}

/// Everything one I/O queue pair needs on the hot path, allocated once by
/// `NVMeQueuePair` and reached through `NVMeBlkBackend.state`. The worker that polls the
/// pair's virtqueue owns it; the control thread reads `needsReset` and the CID states,
/// and touches the rest only while that worker is paused.
@frozen
public struct NVMeQueuePairState {
    public var qid: UInt16
    /// Entries of the submission queue and of the completion queue.
    public var depth: Int
    public var sq: UnsafeMutableRawPointer
    public var cq: UnsafeMutableRawPointer
    public var sqTail = 0
    /// The tail the controller was last told (doorbell or shadow): the "old" value of the EventIdx rule.
    public var sqTailRung = 0
    public var cqHead = 0
    public var cqHeadRung = 0
    /// The phase tag a new completion entry carries (starts 1, flips at each wrap).
    public var phase = true
    public var sqDoorbell: UnsafeMutableRawPointer
    public var cqDoorbell: UnsafeMutableRawPointer
    /// CSTS, read only by the timeout scan (MMIO reads are slow).
    public var csts: UnsafeMutableRawPointer
    /// Shadow doorbells and EventIdx entries of this pair; nil: MMIO doorbells only.
    public var shadowSQ: UnsafeMutableRawPointer? = nil
    public var shadowCQ: UnsafeMutableRawPointer? = nil
    public var eventIdxSQ: UnsafeMutableRawPointer? = nil
    public var eventIdxCQ: UnsafeMutableRawPointer? = nil

    /// Command identifiers 0..<cidCount (depth − 1: one queue entry always stays empty).
    public var cidCount: Int
    /// One 4 KiB page per CID for its PRP list, SGL descriptors or DSM range.
    public var lists: UnsafeMutableRawPointer
    public var listsIOVA: UInt64
    public var cidState: UnsafeMutablePointer<UInt32>
    public var cidRequest: UnsafeMutablePointer<UInt16>
    public var freeCIDs: UnsafeMutablePointer<UInt16>
    public var freeCIDCount: Int
    /// Request records (as many as CIDs: every live request holds at least one CID).
    public var requests: UnsafeMutablePointer<NVMeRequest>
    public var freeRequests: UnsafeMutablePointer<UInt16>
    public var freeRequestCount: Int
    /// Requests answered by the timeout scan or the fatal path, not yet returned by `reap`.
    public var reports: UnsafeMutablePointer<UInt16>
    public var reportHead = 0
    public var reportCount = 0

    /// Scratch for one request's data segments (IOVA, bytes), `segCapacity` long.
    public var segIOVA: UnsafeMutablePointer<UInt64>
    public var segBytes: UnsafeMutablePointer<Int>
    public var segCapacity: Int

    /// Largest command in bytes: min(2^MDTS pages, 2 MiB) — 2 MiB keeps every PRP list in one page.
    public var maxTransfer: Int
    public var useSGL: Bool
    public var sglDwordAligned: Bool
    public var canDSM: Bool
    public var canWriteZeroes: Bool
    public var timeoutTicks: UInt64

    /// Requests accepted by `prepare` and not yet returned by `reap`.
    public var owed = 0
    public var liveCIDs = 0
    /// Requests and commands prepared since the last `submit`.
    public var preparedRequests = 0
    public var preparedCommands = 0
    public var polls: UInt32 = 0
    /// CSTS.CFS seen (or the device vanished): every request failed, nothing new goes.
    public var failed = false
    /// Set (atomically) with `failed`, for the control thread.
    public var needsReset: UInt32 = 0
    /// Completions for requests already answered (timed out), dropped.
    public var lateCompletions: UInt64 = 0
    /// Requests refused because no PRP/SGL split can carry their buffers.
    public var unexpressible: UInt64 = 0
    /// The last NVMe error status (SCT << 8 | SC) seen.
    public var lastErrorStatus: UInt16 = 0
    public var counters: NVMeQueueCounters
    /// Called while `waitOne` spins (control thread); nil: a pause instruction.
    public var idle: (@convention(c) (UnsafeMutableRawPointer?) -> Void)? = nil
    public var idleContext: UnsafeMutableRawPointer? = nil

    /// The timeout scan runs every `scanEvery` polls (power of two).
    public static let scanEvery: UInt32 = 1024
    public static let listPageBytes = 4096
    public static let maxCommandBytes = 2 << 20
    public static let needsResetOffset = MemoryLayout<NVMeQueuePairState>.offset(of: \.needsReset)!
}

extension NVMeQueuePairState {
    /// Allocate the host-side tables of a pair over queues and list pages already in DMA memory.
    static func allocate(qid: UInt16, depth: Int, sq: DMABuffer, cq: DMABuffer, lists: DMABuffer, bar: UnsafeMutableRawPointer,
                         doorbellStride: Int, maxTransfer: Int, useSGL: Bool, sglDwordAligned: Bool, canDSM: Bool,
                         canWriteZeroes: Bool, timeoutTicks: UInt64, counters: NVMeQueueCounters) -> UnsafeMutablePointer<NVMeQueuePairState> {
        let n = depth - 1
        let cidState = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
        cidState.initialize(repeating: NVMeCIDState.free, count: n)
        let cidRequest = UnsafeMutablePointer<UInt16>.allocate(capacity: n)
        cidRequest.initialize(repeating: 0, count: n)
        let freeCIDs = UnsafeMutablePointer<UInt16>.allocate(capacity: n)
        let freeRequests = UnsafeMutablePointer<UInt16>.allocate(capacity: n)
        // Stacks popped from the top: CID 0 goes first.
        for i in 0..<n { (freeCIDs + i).initialize(to: UInt16(n - 1 - i)); (freeRequests + i).initialize(to: UInt16(n - 1 - i)) }
        let requests = UnsafeMutablePointer<NVMeRequest>.allocate(capacity: n)
        requests.initialize(repeating: NVMeRequest(), count: n)
        let reports = UnsafeMutablePointer<UInt16>.allocate(capacity: n)
        reports.initialize(repeating: 0, count: n)
        let segs = BlkRequestParser.iovCapacity
        let segIOVA = UnsafeMutablePointer<UInt64>.allocate(capacity: segs)
        segIOVA.initialize(repeating: 0, count: segs)
        let segBytes = UnsafeMutablePointer<Int>.allocate(capacity: segs)
        segBytes.initialize(repeating: 0, count: segs)
        let p = UnsafeMutablePointer<NVMeQueuePairState>.allocate(capacity: 1)
        p.initialize(to: NVMeQueuePairState(
            qid: qid, depth: depth, sq: sq.host, cq: cq.host,
            sqDoorbell: bar + NVMeRegister.doorbells + 2 * Int(qid) * doorbellStride,
            cqDoorbell: bar + NVMeRegister.doorbells + (2 * Int(qid) + 1) * doorbellStride,
            csts: bar + NVMeRegister.csts,
            cidCount: n, lists: lists.host, listsIOVA: lists.iova, cidState: cidState, cidRequest: cidRequest,
            freeCIDs: freeCIDs, freeCIDCount: n, requests: requests, freeRequests: freeRequests, freeRequestCount: n,
            reports: reports, segIOVA: segIOVA, segBytes: segBytes, segCapacity: segs,
            maxTransfer: maxTransfer, useSGL: useSGL, sglDwordAligned: sglDwordAligned, canDSM: canDSM,
            canWriteZeroes: canWriteZeroes, timeoutTicks: timeoutTicks, counters: counters))
        return p
    }

    static func deallocate(_ p: UnsafeMutablePointer<NVMeQueuePairState>) {
        let s = p.pointee
        s.cidState.deallocate(); s.cidRequest.deallocate(); s.freeCIDs.deallocate(); s.freeRequests.deallocate()
        s.requests.deallocate(); s.reports.deallocate(); s.segIOVA.deallocate(); s.segBytes.deallocate()
        p.deinitialize(count: 1)
        p.deallocate()
    }
}

// MARK: Hot-path helpers (the worker's thread)

extension UnsafeMutablePointer where Pointee == NVMeQueuePairState {
    /// Take a CID for request `request` (the caller checked one is free).
    @inlinable
    func takeCID(request: UInt16) -> UInt16 {
        pointee.freeCIDCount &-= 1
        let cid = pointee.freeCIDs[pointee.freeCIDCount]
        pointee.cidRequest[Int(cid)] = request
        sl_store_release_u32(pointee.cidState + Int(cid), NVMeCIDState.live)
        pointee.liveCIDs &+= 1
        return cid
    }

    @inlinable
    func releaseCID(_ cid: UInt16) {
        sl_store_release_u32(pointee.cidState + Int(cid), NVMeCIDState.free)
        pointee.freeCIDs[pointee.freeCIDCount] = cid
        pointee.freeCIDCount &+= 1
        pointee.liveCIDs &-= 1
    }

    @inlinable
    func takeRequest() -> UInt16 {
        pointee.freeRequestCount &-= 1
        return pointee.freeRequests[pointee.freeRequestCount]
    }

    @inlinable
    func releaseRequest(_ r: UInt16) {
        pointee.freeRequests[pointee.freeRequestCount] = r
        pointee.freeRequestCount &+= 1
    }

    /// Answer request `r` now with `result` (it is returned by the next `reap`).
    @inlinable
    func report(_ r: UInt16, _ result: Int32) {
        let req = pointee.requests + Int(r)
        req.pointee.reported = true
        req.pointee.reportResult = result
        var at = pointee.reportHead &+ pointee.reportCount
        if at >= pointee.cidCount { at &-= pointee.cidCount }
        pointee.reports[at] = r
        pointee.reportCount &+= 1
    }

    /// Write one command at the SQ tail (the doorbell comes with `submit`).
    @inlinable
    func push(_ c: NVMeCommand) {
        (pointee.sq + pointee.sqTail &* 64).storeBytes(of: c, as: NVMeCommand.self)
        pointee.sqTail &+= 1
        if pointee.sqTail == pointee.depth { pointee.sqTail = 0 }
        pointee.preparedCommands &+= 1
    }

    /// Tell the controller a new SQ tail or CQ head: through the shadow doorbell when
    /// Doorbell Buffer Config is on (MMIO only when the controller's EventIdx asks for
    /// it, the virtio event-index rule), else by MMIO.
    @inlinable
    func ring(_ doorbell: UnsafeMutableRawPointer, shadow: UnsafeMutableRawPointer?, eventIdx: UnsafeMutableRawPointer?,
              new: Int, old: Int) {
        if let shadow, let eventIdx {
            // The queue entries (or our reads of the CQ) before the shadow value …
            sl_fence_release()
            sl_store_relaxed_u32(shadow, UInt32(truncatingIfNeeded: new))
            // … and the shadow value before reading EventIdx (store → load: full barrier).
            sl_fence_seq_cst()
            let e = UInt16(truncatingIfNeeded: sl_load_relaxed_u32(eventIdx))
            let n16 = UInt16(truncatingIfNeeded: new), o16 = UInt16(truncatingIfNeeded: old)
            if n16 &- e &- 1 >= n16 &- o16 { return }
        }
        sl_mmio_write32(doorbell, UInt32(truncatingIfNeeded: new))
        pointee.counters.doorbells.increment()
    }

    /// Every `scanEvery` polls: the timeout scan (when commands are out).
    @inlinable
    func tick() {
        pointee.polls &+= 1
        if pointee.polls & (NVMeQueuePairState.scanEvery &- 1) == 0 && pointee.liveCIDs > 0 && !pointee.failed {
            scan(now: sl_rdtsc())
        }
    }

    /// Fatal controller status ends everything; commands past their deadline are
    /// counted, flagged for Abort, and their requests answered -ETIMEDOUT once.
    @inlinable
    func scan(now: UInt64) {
        let csts = sl_mmio_read32(pointee.csts)
        if csts == UInt32.max || csts & NVMeCSTS.fatal != 0 {
            fail()
            return
        }
        let n = pointee.cidCount
        var cid = 0
        while cid < n {
            if pointee.cidState[cid] == NVMeCIDState.live {
                let r = pointee.cidRequest[cid]
                let req = pointee.requests + Int(r)
                if Int64(bitPattern: now &- req.pointee.deadline) > 0 {
                    sl_store_release_u32(pointee.cidState + cid, NVMeCIDState.timedOut)
                    pointee.counters.timeouts.increment()
                    if !req.pointee.reported { report(r, -ETIMEDOUT) }
                }
            }
            cid &+= 1
        }
    }

    /// CSTS.CFS (or all-ones: the device is gone): fail every request still owed, refuse
    /// new ones, and ask the control thread for a reset. CIDs stay taken until the
    /// pair is recreated.
    @inlinable
    func fail() {
        if pointee.failed { return }
        pointee.failed = true
        sl_store_release_u32(UnsafeMutableRawPointer(self) + NVMeQueuePairState.needsResetOffset, 1)
        let n = pointee.cidCount
        var cid = 0
        while cid < n {
            if pointee.cidState[cid] != NVMeCIDState.free {
                let r = pointee.cidRequest[cid]
                if !pointee.requests[Int(r)].reported {
                    pointee.counters.errors.increment()
                    report(r, -EIO)
                }
            }
            cid &+= 1
        }
    }
}
