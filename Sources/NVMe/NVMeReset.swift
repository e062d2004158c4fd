#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// Recovering from a fatal controller status (CSTS.CFS): the controller is reset and
/// enabled again, and every queue pair is created again in place — same id, same DMA
/// memory, same state pointer — so the workers' backends stay valid. Control thread,
/// with the workers that poll the pairs paused and their requests drained.
extension NVMeController {
    /// CC.EN = 0, the admin queue again, CC.EN = 1; the number of I/O queues asked again
    /// (`queues`), shadow doorbells again when they were on. Every I/O queue is gone after
    /// this; `recreate` brings each pair back.
    public func resetAfterFatalStatus(queues: Int) throws(NVMeError) -> Int {
        let shadow = shadowPages != nil
        try enable()
        queuePairCount = 0
        let granted = try requestQueues(queues)
        if shadow { try configureShadowDoorbells() }
        return granted
    }
}

extension NVMeQueuePair {
    /// After `resetAfterFatalStatus`: forget everything the pair had in flight (its
    /// requests were answered -EIO when the fatal status was seen), clear the queues and
    /// create CQ and SQ `qid` on the controller again.
    public func recreate(vector: Int?) throws(NVMeError) {
        guard !deleted else { throw NVMeError("queue pair \(qid) was deleted") }
        let s = state
        let n = s.pointee.cidCount
        for i in 0..<n {
            s.pointee.cidState[i] = NVMeCIDState.free
            s.pointee.freeCIDs[i] = UInt16(n - 1 - i)
            s.pointee.freeRequests[i] = UInt16(n - 1 - i)
            s.pointee.requests[i] = NVMeRequest()
        }
        s.pointee.freeCIDCount = n
        s.pointee.freeRequestCount = n
        s.pointee.liveCIDs = 0
        s.pointee.owed = 0
        s.pointee.reportHead = 0
        s.pointee.reportCount = 0
        s.pointee.preparedRequests = 0
        s.pointee.preparedCommands = 0
        s.pointee.sqTail = 0; s.pointee.sqTailRung = 0
        s.pointee.cqHead = 0; s.pointee.cqHeadRung = 0
        s.pointee.phase = true
        sq.host.initializeMemory(as: UInt8.self, repeating: 0, count: sq.bytes)
        cq.host.initializeMemory(as: UInt8.self, repeating: 0, count: cq.bytes)
        let stride = controller.capabilities.doorbellStride
        if controller.shadowActive, let pages = controller.shadowPages {
            for k in [2 * qid, 2 * qid + 1] {
                (pages.doorbells.host + k * stride).storeBytes(of: 0, as: UInt32.self)
                (pages.eventIndexes.host + k * stride).storeBytes(of: 0, as: UInt32.self)
            }
            s.pointee.shadowSQ = pages.doorbells.host + 2 * qid * stride
            s.pointee.shadowCQ = pages.doorbells.host + (2 * qid + 1) * stride
            s.pointee.eventIdxSQ = pages.eventIndexes.host + 2 * qid * stride
            s.pointee.eventIdxCQ = pages.eventIndexes.host + (2 * qid + 1) * stride
        } else {
            s.pointee.shadowSQ = nil; s.pointee.shadowCQ = nil
            s.pointee.eventIdxSQ = nil; s.pointee.eventIdxCQ = nil
        }
        do throws(NVMeError) {
            try controller.admin(.createCQ(id: UInt16(qid), entries: depth, base: cq.iova, vector: vector.map { UInt16($0) }))
            try controller.admin(.createSQ(id: UInt16(qid), entries: depth, base: sq.iova, cq: UInt16(qid)))
        } catch {
            throw NVMeError("re-creating I/O queue pair \(qid): \(error.description)")
        }
        controller.queuePairCount += 1
        s.pointee.failed = false
        sl_store_release_u32(UnsafeMutableRawPointer(s) + NVMeQueuePairState.needsResetOffset, 0)
    }
}
