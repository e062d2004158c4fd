#if canImport(Glibc)
import Glibc
#endif
import Block
import Config
import Logging
import NVMe
import Platform
import Stats
import Virtio

/// A `[blk]` served by an NVMe namespace: which controller and namespace, the IOVA
/// window its guest's memory is mapped at (window base + guest-physical address), and the
/// table the queue pairs translate guest buffers through. Control thread only; the
/// table is rewritten while the workers are paused (memory table changes come inside
/// the device's quiesce).
final class NVMeBinding {
    let drive: NVMeDrive
    let nsid: UInt32
    let lbaShift: Int
    let window: Int
    let table: NVMeIOVATable
    private var mapped: [(iova: UInt64, bytes: Int)] = []
    let logger: Logger
    let label: String

    init(drive: NVMeDrive, nsid: UInt32, label: String, logger: Logger) throws(EngineError) {
        guard let ns = drive.namespaces[nsid] else {
            throw EngineError("\(label): controller \(drive.address) has no active namespace \(nsid)")
        }
        guard let window = drive.takeWindow() else {
            throw EngineError("\(label): no IOVA window left on controller \(drive.address) (too many exports on one controller)")
        }
        self.drive = drive
        self.nsid = nsid
        self.window = window
        self.label = label
        self.logger = logger
        lbaShift = ns.blockSize.trailingZeroBitCount
        table = NVMeIOVATable.allocate()
    }

    /// Unmap what the guest had, map what it has now (page-granular, at window + GPA).
    /// A region the window cannot hold is left out: requests into it fail with IOERR.
    func memoryChanged(_ regions: [GuestRegion]) {
        for m in mapped {
            do { try drive.iommu.unmap(iova: m.iova, bytes: m.bytes) } catch {
                logger.warning("\(label): unmapping guest memory at IOVA 0x\(String(m.iova, radix: 16)): \(error.description)")
            }
        }
        mapped.removeAll()
        var entries: [NVMeIOVARegion] = []
        let base = UInt64(window) * drive.windowBytes
        for r in regions {
            let page: UInt64 = 4096
            let skew = UInt64(r.host) & (page - 1)
            guard r.guestPhys & (page - 1) == skew else {
                logger.warning("\(label): guest region at 0x\(String(r.guestPhys, radix: 16)) is not page-aligned like its mapping; not given to the controller")
                continue
            }
            let (end, o) = r.guestPhys.addingReportingOverflow(r.size)
            guard !o, end <= drive.windowBytes else {
                logger.warning("\(label): guest region 0x\(String(r.guestPhys, radix: 16))+\(r.size) lies beyond the \(drive.windowBytes >> 30) GiB IOVA window; requests into it fail")
                continue
            }
            let iova = base + r.guestPhys - skew
            let bytes = Int((r.size + skew + page - 1) & ~(page - 1))
            do {
                try drive.iommu.map(host: UnsafeMutableRawPointer(bitPattern: r.host - UInt(skew))!, iova: iova, bytes: bytes)
            } catch {
                logger.warning("\(label): mapping guest memory for the controller: \(error.description)")
                continue
            }
            mapped.append((iova, bytes))
            entries.append(NVMeIOVARegion(host: UnsafeMutableRawPointer(bitPattern: r.host)!, bytes: Int(r.size), iova: base + r.guestPhys))
        }
        do { try table.update(regions: entries) } catch {
            logger.warning("\(label): \(error.description)")
        }
    }

    func close() {
        memoryChanged([])
        drive.releaseWindow(window)
        table.deallocate()
    }
}

/// The control side of one blk queue on an NVMe I/O queue pair.
final class NVMeQueueControl: BlkBackendControl {
    let drive: NVMeDrive
    let qid: Int
    let pair: NVMeQueuePair
    let backend: NVMeBlkBackend
    private var closed = false

    init(binding: NVMeBinding, io: UnsafeMutablePointer<BlkIO>, depth: Int, label: String) throws(BlkSetupError) {
        drive = binding.drive
        guard let qid = drive.takeQueueID(eventFD: io.pointee.eventFD) else {
            throw BlkSetupError(description: "\(label): controller \(drive.address) has no I/O queue left (\(drive.queueLimit) granted)")
        }
        self.qid = qid
        do {
            pair = try drive.controller.createQueuePair(qid: qid, depth: depth, vector: drive.vector(for: qid), dma: drive.dma,
                                                        sgl: drive.settings.sgl, ioTimeoutMillis: drive.settings.ioTimeoutMillis)
        } catch {
            drive.releaseQueueID(qid)
            throw BlkSetupError(description: "\(label): creating I/O queue \(qid) on \(drive.address): \(error.description)")
        }
        backend = pair.backend(nsid: binding.nsid, lbaShift: binding.lbaShift, iova: binding.table)
        drive.controls.append(self)
    }

    /// Completions always raise the queue's interrupt; its eventfd sits on the owning
    /// worker's epoll, which a polling worker simply never waits on.
    func configure(eventMode: Bool, kernelCPUs: [Int]) {}

    func drain(vq: Virtqueue, io: UnsafeMutablePointer<BlkIO>, now: UInt64) {
        BlkQueue(vq: vq, io: io, backend: backend).drain(now: now)
    }

    func close() {
        guard !closed else { return }
        closed = true
        drive.controls.removeAll { $0 === self }
        if !drive.closed { try? pair.delete() }
        drive.releaseQueueID(qid)
    }
}
