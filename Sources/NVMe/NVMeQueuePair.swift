#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform

/// One NVMe I/O queue pair (SQ and CQ with the same id) on the control thread's side:
/// owns the queues' DMA memory, the per-CID list pages and the hot-path state the
/// worker reaches through `backend(...)`. Created by `NVMeController.createQueuePair`,
/// deleted with `delete()` once no worker uses its backend any more.
public final class NVMeQueuePair {
    public let qid: Int
    public let depth: Int
    public let state: UnsafeMutablePointer<NVMeQueuePairState>
    public let controller: NVMeController
    public let ioTimeoutMillis: Int
    let dma: DMAAllocator
    let sq: DMABuffer
    let cq: DMABuffer
    let lists: DMABuffer
    public private(set) var deleted = false

    init(qid: Int, depth: Int, controller: NVMeController, dma: DMAAllocator, sq: DMABuffer, cq: DMABuffer, lists: DMABuffer,
         state: UnsafeMutablePointer<NVMeQueuePairState>, ioTimeoutMillis: Int) {
        self.qid = qid; self.depth = depth; self.controller = controller; self.dma = dma
        self.sq = sq; self.cq = cq; self.lists = lists; self.state = state; self.ioTimeoutMillis = ioTimeoutMillis
        // waitOne (control thread) idles through the controller's hook: a pause in the
        // daemon, the model's step in tests.
        state.pointee.idleContext = Unmanaged.passUnretained(controller).toOpaque()
        state.pointee.idle = { ctx in Unmanaged<NVMeController>.fromOpaque(ctx!).takeUnretainedValue().idle() }
    }

    deinit {
        // Best effort; a pair whose deletion failed keeps its memory (the device may still write it).
        try? delete()
    }

    /// The worker's handle for namespace `nsid` (logical blocks of 2^`lbaShift` bytes),
    /// translating guest buffers through `iova`.
    public func backend(nsid: UInt32, lbaShift: Int, iova: NVMeIOVATable) -> NVMeBlkBackend {
        NVMeBlkBackend(state: state, nsid: nsid, lbaShift: lbaShift, iova: iova)
    }

    /// Where the pair counts; set before the worker polls it.
    public var counters: NVMeQueueCounters {
        get { state.pointee.counters }
        set { state.pointee.counters = newValue }
    }

    /// The worker saw a fatal controller status: every request failed, the pair takes
    /// nothing new; reset the controller and create the pair again.
    public var needsReset: Bool { sl_load_acquire_u32(UnsafeRawPointer(state) + NVMeQueuePairState.needsResetOffset) != 0 }

    /// Requests accepted and not yet answered (read with the worker paused).
    public var outstanding: Int { state.pointee.owed }
    /// Completions that came after their request had timed out (read with the worker paused).
    public var lateCompletions: UInt64 { state.pointee.lateCompletions }
    /// Requests refused because their buffers could not be carried by PRPs/SGLs.
    public var unexpressible: UInt64 { state.pointee.unexpressible }
    /// The largest data transfer of one command (MDTS, at most 2 MiB).
    public var maxTransfer: Int { state.pointee.maxTransfer }
    public var usesSGL: Bool { state.pointee.useSGL }
    public var usesShadowDoorbells: Bool { state.pointee.shadowSQ != nil }

    /// CIDs the worker found timed out and not yet aborted; each is returned once
    /// (marked as abort sent). Safe while the worker runs.
    public func takeAbortRequests() -> [UInt16] {
        var out: [UInt16] = []
        for cid in 0..<state.pointee.cidCount {
            var expected = NVMeCIDState.timedOut
            if sl_cas_u32(state.pointee.cidState + cid, &expected, NVMeCIDState.abortSent) { out.append(UInt16(cid)) }
        }
        return out
    }

    /// Send Abort for every timed-out command (at most the controller's abort limit at
    /// once; the rest stay flagged for the next call). Returns how many it aborted. A
    /// race with a completion is harmless: the controller answers "not aborted".
    @discardableResult
    public func abortTimedOut() throws(NVMeError) -> Int {
        let limit = controller.identity?.abortLimit ?? 1
        var aborted = 0
        for (i, cid) in takeAbortRequests().enumerated() {
            if i >= limit {
                var expected = NVMeCIDState.abortSent
                _ = sl_cas_u32(state.pointee.cidState + Int(cid), &expected, NVMeCIDState.timedOut)
                continue
            }
            if try controller.abort(sqid: qid, cid: cid) { aborted += 1 }
        }
        return aborted
    }

    /// Control thread, worker paused: run the timeout / fatal-status scan now.
    public func checkTimeouts() { state.scan(now: sl_rdtsc()) }

    /// Control thread: read `blocks` logical blocks of `blockSize` bytes at `lba` of
    /// namespace `nsid` into `buffer` (DMA memory), polling up to the I/O timeout. For a
    /// pair no worker uses (GPT lookups on namespaces).
    public func read(nsid: UInt32, lba: UInt64, blocks: Int, blockSize: Int, into buffer: DMABuffer) throws(NVMeError) {
        guard blockSize >= 512, blockSize & (blockSize - 1) == 0, blocks > 0, blocks * blockSize <= buffer.bytes else {
            throw NVMeError("read of \(blocks) block(s) of \(blockSize) bytes does not fit a \(buffer.bytes)-byte buffer")
        }
        guard !deleted else { throw NVMeError("queue pair \(qid) is deleted") }
        guard !state.pointee.failed else { throw NVMeError("queue pair \(qid): controller fatal status (CSTS.CFS)") }
        guard state.pointee.owed == 0 else { throw NVMeError("queue pair \(qid) is busy with \(state.pointee.owed) request(s)") }
        let shift = blockSize.trailingZeroBitCount
        state.pointee.segIOVA[0] = buffer.iova
        state.pointee.segBytes[0] = blocks * blockSize
        let what = "namespace \(nsid): read of \(blocks) block(s) at LBA \(lba)"
        guard state.queueTransfer(opcode: NVMeIOOpcode.read, nsid: nsid, lba: lba, lbaShift: shift, segments: 1, head: 0,
                                  now: sl_rdtsc()) == .queued else {
            throw NVMeError("\(what) needs more commands than queue pair \(qid) (depth \(depth)) holds")
        }
        var head: UInt64 = 0
        var result: Int32 = 0
        guard state.waitOne(head: &head, result: &result) else { throw NVMeError("\(what): no completion") }
        switch result {
        case Int32(blocks * blockSize):
            return
        case -ETIMEDOUT:
            throw NVMeError("\(what): no completion within \(ioTimeoutMillis) ms")
        default:
            if state.pointee.failed { throw NVMeError("\(what): controller fatal status (CSTS.CFS)") }
            let st = state.pointee.lastErrorStatus
            throw NVMeError("\(what) failed: status type \(st >> 8), code 0x\(String(st & 0xFF, radix: 16))")
        }
    }

    /// Delete the SQ, then the CQ, and free the memory. With the controller disabled
    /// (after a reset) the queues are gone already and only the memory is freed. If a
    /// delete fails on a live controller the memory is kept (the device may still write
    /// it) and the error thrown; reset the controller and call again.
    public func delete() throws(NVMeError) {
        if deleted { return }
        if controller.read32(NVMeRegister.csts) & NVMeCSTS.ready != 0 && !state.pointee.failed {
            do throws(NVMeError) {
                try controller.admin(.deleteQueue(sq: true, id: UInt16(qid)))
                try controller.admin(.deleteQueue(sq: false, id: UInt16(qid)))
            } catch {
                throw NVMeError("queue pair \(qid): \(error.description)")
            }
        }
        deleted = true
        controller.queuePairCount -= 1
        dma.free(sq)
        dma.free(cq)
        dma.free(lists)
        NVMeQueuePairState.deallocate(state)
    }
}

extension NVMeController {
    /// Create I/O CQ `qid` (interrupts on `vector` when given) and SQ `qid` on it, both
    /// `depth` entries (2…CAP.MQES+1), and the pair's state. `sgl`: use SGLs when the
    /// controller has them (else PRPs). Shadow doorbells are used when
    /// `configureShadowDoorbells` ran before.
    public func createQueuePair(qid: Int, depth: Int, vector: Int?, dma: DMAAllocator, sgl: Bool = true,
                                ioTimeoutMillis: Int = 30_000, counters: NVMeQueueCounters = .discard) throws(NVMeError) -> NVMeQueuePair {
        guard qid >= 1, qid <= 0xFFFF else { throw NVMeError("I/O queue id \(qid) out of range 1…65535") }
        guard depth >= 2, depth <= min(capabilities.maxQueueEntries, 0x10000) else {
            throw NVMeError("io-queue-depth \(depth): the controller takes 2…\(min(capabilities.maxQueueEntries, 0x10000)) entries (CAP.MQES)")
        }
        if let vector, vector < 0 || vector > 0xFFFF { throw NVMeError("interrupt vector \(vector) out of range") }
        guard ioTimeoutMillis > 0 else { throw NVMeError("io-timeout must be positive") }
        let id: NVMeControllerIdentity
        if let known = identity { id = known } else { id = try identifyController() }
        var taken: [DMABuffer] = []
        func release() { for b in taken { dma.free(b) } }
        let sq: DMABuffer, cq: DMABuffer, lists: DMABuffer
        do throws(NVMeError) {
            sq = try dma.allocate(bytes: depth * 64); taken.append(sq)
            cq = try dma.allocate(bytes: depth * 16); taken.append(cq)
            lists = try dma.allocate(bytes: (depth - 1) * NVMeQueuePairState.listPageBytes); taken.append(lists)
        } catch {
            release()
            throw error
        }
        let stride = capabilities.doorbellStride
        if shadowActive, let pages = shadowPages {
            // A new queue starts at tail/head 0 in the shadow and EventIdx entries too.
            for k in [2 * qid, 2 * qid + 1] {
                (pages.doorbells.host + k * stride).storeBytes(of: 0, as: UInt32.self)
                (pages.eventIndexes.host + k * stride).storeBytes(of: 0, as: UInt32.self)
            }
        }
        do throws(NVMeError) {
            try admin(.createCQ(id: UInt16(qid), entries: depth, base: cq.iova, vector: vector.map { UInt16($0) }))
        } catch {
            release()
            throw NVMeError("Create I/O CQ \(qid): \(error.description)")
        }
        do throws(NVMeError) {
            try admin(.createSQ(id: UInt16(qid), entries: depth, base: sq.iova, cq: UInt16(qid)))
        } catch {
            _ = try? admin(.deleteQueue(sq: false, id: UInt16(qid)))
            release()
            throw NVMeError("Create I/O SQ \(qid): \(error.description)")
        }
        // MDTS counts pages of CAP.MPSMIN; 0 = no limit. 2 MiB keeps a PRP list in one page.
        let mdtsBytes = id.mdts == 0 || id.mdts >= 32 ? Int.max : capabilities.minPageSize << Int(id.mdts)
        let ticks = UInt64(Double(ioTimeoutMillis) * Clock.cyclesPerSecond / 1000)
        let state = NVMeQueuePairState.allocate(
            qid: UInt16(qid), depth: depth, sq: sq, cq: cq, lists: lists, bar: bar, doorbellStride: stride,
            maxTransfer: min(mdtsBytes, NVMeQueuePairState.maxCommandBytes), useSGL: sgl && id.supportsSGL,
            sglDwordAligned: id.sglDwordAligned, canDSM: id.supportsDSM, canWriteZeroes: id.supportsWriteZeroes,
            timeoutTicks: max(ticks, 1), counters: counters)
        if shadowActive, let pages = shadowPages {
            state.pointee.shadowSQ = pages.doorbells.host + 2 * qid * stride
            state.pointee.shadowCQ = pages.doorbells.host + (2 * qid + 1) * stride
            state.pointee.eventIdxSQ = pages.eventIndexes.host + 2 * qid * stride
            state.pointee.eventIdxCQ = pages.eventIndexes.host + (2 * qid + 1) * stride
        }
        queuePairCount += 1
        return NVMeQueuePair(qid: qid, depth: depth, controller: self, dma: dma, sq: sq, cq: cq, lists: lists, state: state,
                             ioTimeoutMillis: ioTimeoutMillis)
    }

    /// Doorbell Buffer Config (when Identify OACS bit 8 says the controller has it):
    /// queue pairs created afterwards write their doorbells to a shadow page and do the
    /// MMIO write only when the controller's EventIdx asks for it. The admin queue keeps
    /// plain MMIO doorbells (as Linux does). Must run before any pair is created — the
    /// controller then reads every I/O queue's doorbell from the shadow page — and again
    /// after every reset. Returns false when the controller lacks it.
    @discardableResult
    public func configureShadowDoorbells(dma: DMAAllocator? = nil) throws(NVMeError) -> Bool {
        let id: NVMeControllerIdentity
        if let known = identity { id = known } else { id = try identifyController() }
        guard id.supportsDoorbellBuffer else { return false }
        guard queuePairCount == 0 else {
            throw NVMeError("shadow doorbells must be configured before I/O queues are created (\(queuePairCount) exist)")
        }
        if shadowPages == nil {
            let a = dma ?? self.dma
            let doorbells = try a.allocate(bytes: 4096)
            do throws(NVMeError) {
                shadowPages = (doorbells, try a.allocate(bytes: 4096), a)
            } catch {
                a.free(doorbells)
                throw error
            }
        }
        let pages = shadowPages!
        pages.doorbells.host.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        pages.eventIndexes.host.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        try admin(.doorbellBufferConfig(shadow: pages.doorbells.iova, eventIndex: pages.eventIndexes.iova))
        shadowActive = true
        return true
    }

    /// Abort command `cid` of SQ `sqid`; true when the controller says it aborted it.
    @discardableResult
    public func abort(sqid: Int, cid: UInt16) throws(NVMeError) -> Bool {
        let c = try admin(.abort(sqid: UInt16(truncatingIfNeeded: sqid), cid: cid))
        return c.dw0 & 1 == 0
    }
}
