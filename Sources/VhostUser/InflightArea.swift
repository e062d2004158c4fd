#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Virtio

/// The inflight area of one device (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD): a memfd the
/// back-end creates on GET_INFLIGHT_FD and the front-end keeps, handing it back with
/// SET_INFLIGHT_FD on every (re)connection. Queue i's region (`InflightRegion`) records
/// which requests were taken and not yet completed; `recover` turns that into the
/// list of requests to serve again when the queue starts. Control thread, inside the
/// device's quiesce.
public final class InflightArea: @unchecked Sendable {
    private let queues: [Virtqueue]
    private let maxQueueSize: Int
    private var mapping: MappedRegion?
    private var numQueues = 0
    private var queueSize = 0
    /// Per queue, room for one ring's worth of heads to resubmit (allocated on first use).
    private var resubmitLists: [UnsafeMutablePointer<UInt16>?]

    init(queues: [Virtqueue], maxQueueSize: Int) {
        self.queues = queues
        self.maxQueueSize = maxQueueSize
        resubmitLists = Array(repeating: nil, count: queues.count)
    }

    deinit {
        for l in resubmitLists { l?.deallocate() }
    }

    public var isMapped: Bool { mapping != nil }

    /// GET_INFLIGHT_FD: a zeroed area for `d.numQueues` queues of `d.queueSize`.
    func create(_ d: InflightDescription) -> VhostUserDevice.Outcome {
        guard let size = layout(d) else { return .failed(describe(d)) }
        let fd = sl_memfd_create("sluice-inflight", sl_memfd_cloexec_flag() | sl_mfd_allow_sealing())
        guard fd >= 0 else { return .failed("memfd_create: \(SystemError("memfd_create"))") }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let e = SystemError("ftruncate")
            closeFD(fd)
            return .failed("inflight area of \(size) bytes: \(e)")
        }
        // The front-end keeps this fd; sealed, it cannot shrink the area under us (SIGBUS).
        _ = sl_seal_shrink(fd)
        let region: MappedRegion
        do { region = try MappedRegion.map(fd: fd, length: size, keepFD: true) } catch {
            closeFD(fd)
            return .failed("inflight area: \(error)")
        }
        install(region, d)
        return .reply(.inflight(InflightDescription(mmapSize: UInt64(size), mmapOffset: 0,
                                                    numQueues: d.numQueues, queueSize: d.queueSize), fd: fd))
    }

    /// SET_INFLIGHT_FD: map the area the front-end kept (takes ownership of `fd`).
    func adopt(_ d: InflightDescription, fd: Int32) -> VhostUserDevice.Outcome {
        guard let size = layout(d) else { closeFD(fd); return .failed(describe(d)) }
        guard d.mmapSize >= UInt64(size), d.mmapSize <= 1 << 30, d.mmapOffset & 4095 == 0 else {
            closeFD(fd)
            return .failed("inflight area of \(d.mmapSize) bytes at offset \(d.mmapOffset): needs \(size) bytes at a page-aligned offset")
        }
        // Ours (from GET_INFLIGHT_FD) is sealed already; a front-end's own memfd gets the seal
        // if it allows sealing. Otherwise it could shrink the file and fault the worker, as it
        // could with guest memory itself.
        _ = sl_seal_shrink(fd)
        var st = stat()
        guard fstat(fd, &st) == 0, UInt64(st.st_size) >= d.mmapOffset + d.mmapSize else {
            closeFD(fd)
            return .failed("inflight fd is smaller than mmap_offset + mmap_size")
        }
        let region: MappedRegion
        do { region = try MappedRegion.map(fd: fd, length: Int(d.mmapSize), offset: Int(d.mmapOffset), keepFD: true) } catch {
            closeFD(fd)
            return .failed("inflight area: \(error)")
        }
        install(region, d)
        return .done
    }

    /// Unmap the area; queues stop tracking.
    public func release() {
        for q in queues {
            q.state.pointee.inflight = nil
            q.state.pointee.inflightDescs = 0
            q.state.pointee.resubmitCount = 0
            q.state.pointee.resubmitNext = 0
        }
        mapping = nil
        numQueues = 0
    }

    private func layout(_ d: InflightDescription) -> Int? {
        let n = Int(d.numQueues), qs = Int(d.queueSize)
        guard n >= 1, n <= queues.count, qs >= 1, qs <= 32768 else { return nil }
        return n * InflightRegion.queueRegionSize(queueSize: qs)
    }

    private func describe(_ d: InflightDescription) -> String {
        "inflight area for \(d.numQueues) queue(s) of \(d.queueSize): this device has \(queues.count) queue(s), sizes 1...32768"
    }

    private func install(_ region: MappedRegion, _ d: InflightDescription) {
        release()
        mapping = region
        numQueues = Int(d.numQueues)
        queueSize = Int(d.queueSize)
        for i in 0..<numQueues {
            queueRegion(i).storeBytes(of: d.queueSize, toByteOffset: 10, as: UInt16.self)   // desc_num
        }
    }

    private func queueRegion(_ i: Int) -> UnsafeMutableRawPointer {
        mapping!.base + i * InflightRegion.queueRegionSize(queueSize: queueSize)
    }

    /// Queue `i` starts (SET_VRING_KICK): link it to its region and, if a previous
    /// back-end left requests in flight, set them up to be served again, oldest first.
    /// The avail ring then continues after them (used.idx + requests in flight).
    func recover(queue i: Int) {
        let s = queues[i].state
        s.pointee.inflight = nil
        s.pointee.resubmitCount = 0
        s.pointee.resubmitNext = 0
        guard mapping != nil, i < numQueues, s.pointee.addressed, let used = s.pointee.used else { return }
        let r = queueRegion(i)
        if r.load(fromByteOffset: 8, as: UInt16.self) == 0 {
            // A new area: nothing was in flight.
            r.storeBytes(of: 1, toByteOffset: 8, as: UInt16.self)
            r.storeBytes(of: s.pointee.usedIdx, toByteOffset: 14, as: UInt16.self)
            s.pointee.inflightCounter = 0
            s.pointee.inflightDescs = UInt16(truncatingIfNeeded: min(Int(s.pointee.size), queueSize))
            s.pointee.inflight = r
            return
        }
        let ringUsed = sl_load_acquire_u16(used + 2)
        // Our own bound: the region was sized for `queueSize` entries, whatever desc_num says now.
        let descNum = min(Int(s.pointee.size), queueSize)
        r.storeBytes(of: UInt16(truncatingIfNeeded: queueSize), toByteOffset: 10, as: UInt16.self)
        if r.load(fromByteOffset: 14, as: UInt16.self) != ringUsed {
            // The last completion reached the used ring but not the area.
            let last = Int(r.load(fromByteOffset: 12, as: UInt16.self))
            if last < descNum { r.storeBytes(of: 0, toByteOffset: 16 + last * 16, as: UInt8.self) }
            r.storeBytes(of: ringUsed, toByteOffset: 14, as: UInt16.self)
        }
        var pending: [(counter: UInt64, head: UInt16)] = []
        for d in 0..<descNum where r.load(fromByteOffset: 16 + d * 16, as: UInt8.self) == 1 {
            pending.append((r.load(fromByteOffset: 16 + d * 16 + 8, as: UInt64.self), UInt16(d)))
        }
        pending.sort { $0.counter < $1.counter }
        if resubmitLists[i] == nil { resubmitLists[i] = .allocate(capacity: maxQueueSize) }
        let list = resubmitLists[i]!
        for (k, p) in pending.prefix(maxQueueSize).enumerated() { list[k] = p.head }
        s.pointee.resubmit = list
        s.pointee.resubmitCount = min(pending.count, maxQueueSize)
        s.pointee.inflightCounter = (pending.last?.counter ?? 0) &+ 1
        s.pointee.usedIdx = ringUsed
        s.pointee.signalledUsed = ringUsed
        s.pointee.lastAvail = ringUsed &+ UInt16(truncatingIfNeeded: s.pointee.resubmitCount)
        s.pointee.inflightDescs = UInt16(truncatingIfNeeded: descNum)
        s.pointee.inflight = r
    }
}
