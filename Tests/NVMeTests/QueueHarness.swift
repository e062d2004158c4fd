import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import Block
import Stats
@testable import NVMe

/// A controller model with one I/O queue pair and its blk backend, "guest memory" in
/// plain host memory (identity IOVA-table entry unless a test IOMMU is given), real
/// counters, and hand-built `BlkSlot`s.
final class QueueHarness {
    let soft: SoftController
    let dma: DMAAllocator
    let ctrl: NVMeController
    let pair: NVMeQueuePair
    let table = NVMeIOVATable.allocate()
    let guest: UnsafeMutableRawPointer
    static let guestBytes = 8 << 20
    let stats: StatsWriter
    private(set) var counters: [String: StatsCounter] = [:]
    let nsid: UInt32
    var backend: NVMeBlkBackend
    private var slotMemory: [(UnsafeMutablePointer<BlkSlot>, UnsafeMutablePointer<iovec>)] = []

    init(depth: Int = 32, nsid: UInt32 = 1, sgl: Bool = true, shadow: Bool = false, ioTimeoutMillis: Int = 30_000,
         dma: DMAAllocator? = nil, iommu: TestIOMMU? = nil, guestIOVA: UInt64? = nil,
         setup: (SoftController) -> Void = { _ in }) throws {
        soft = SoftController()
        soft.namespaces = [1: (16384, 9), 2: (2048, 12)]
        soft.iommu = iommu
        setup(soft)
        let soft = self.soft
        self.dma = dma ?? HostDMA()
        ctrl = NVMeController(bar: soft.bar, dma: self.dma, idle: { soft.step() })
        try ctrl.enable()
        _ = try ctrl.identifyController()
        if shadow { XCTAssertTrue(try ctrl.configureShadowDoorbells()) }
        stats = try StatsWriter(path: NSTemporaryDirectory() + "sluice-nvmetest-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).stats",
                                slots: 1)
        stats.remove()
        var list: [StatsCounter] = []
        for name in NVMeQueueCounters.allNames {
            let c = stats.counter(try stats.register("nvme.t.qp1.\(name)", kind: NVMeQueueCounters.kind(name)), slot: 0)
            counters[name] = c
            list.append(c)
        }
        pair = try ctrl.createQueuePair(qid: 1, depth: depth, vector: nil, dma: self.dma, sgl: sgl, ioTimeoutMillis: ioTimeoutMillis,
                                        counters: NVMeQueueCounters(list))
        guest = UnsafeMutableRawPointer.allocate(byteCount: Self.guestBytes, alignment: 2 << 20)
        guest.initializeMemory(as: UInt8.self, repeating: 0, count: Self.guestBytes)
        let iova = guestIOVA ?? UInt64(UInt(bitPattern: guest))
        if let iommu { try iommu.map(host: guest, iova: iova, bytes: Self.guestBytes) }
        try table.update(regions: [NVMeIOVARegion(host: guest, bytes: Self.guestBytes, iova: iova)])
        self.nsid = nsid
        let shift = Int(soft.namespaces[nsid]!.lbads)
        backend = pair.backend(nsid: nsid, lbaShift: shift, iova: table)
    }

    deinit {
        try? pair.delete()
        table.deallocate()
        guest.deallocate()
        for (s, v) in slotMemory { s.deallocate(); v.deallocate() }
    }

    func counter(_ name: String) -> UInt64 { counters[name]!.value }

    var blockSize: Int { 1 << Int(soft.namespaces[nsid]!.lbads) }

    /// The export: the whole namespace unless told otherwise.
    func target(offsetBytes: UInt64 = 0, sizeBytes: UInt64? = nil) -> BlockTarget {
        BlockTarget(fd: -1, offsetBytes: offsetBytes, sizeBytes: sizeBytes ?? UInt64(soft.namespaceBytes(nsid)) - offsetBytes,
                    readOnly: false, blockSize: blockSize, isBlockDevice: true)
    }

    /// A request slot over guest memory pieces (offset into `guest`, length).
    func slot(_ type: UInt32, sector: UInt64, pieces: [(Int, Int)] = []) -> UnsafeMutablePointer<BlkSlot> {
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: BlkRequestParser.iovCapacity)
        iov.initialize(repeating: iovec(), count: BlkRequestParser.iovCapacity)
        for (i, p) in pieces.enumerated() { iov[i] = iovec(iov_base: guest + p.0, iov_len: p.1) }
        let s = UnsafeMutablePointer<BlkSlot>.allocate(capacity: 1)
        s.initialize(to: BlkSlot(iov: iov))
        s.pointee.type = type
        s.pointee.sector = sector
        s.pointee.iovCount = Int32(pieces.count)
        s.pointee.bytes = UInt32(pieces.reduce(0) { $0 + $1.1 })
        slotMemory.append((s, iov))
        return s
    }

    /// A DISCARD / WRITE_ZEROES slot as the parser leaves it (bytes = sectors; iovCount −1 = unmap).
    func rangeSlot(_ type: UInt32, sector: UInt64, sectors: UInt32, unmap: Bool = false) -> UnsafeMutablePointer<BlkSlot> {
        let s = slot(type, sector: sector)
        s.pointee.bytes = sectors
        s.pointee.iovCount = unmap ? -1 : 0
        return s
    }

    func prepare(_ s: UnsafeMutablePointer<BlkSlot>, head: UInt16, target: BlockTarget? = nil) -> BlkPrepare {
        backend.prepare(s, head: head, target: target ?? self.target())
    }

    /// Submit, let the device run, reap; until `count` answers or `steps` rounds.
    func run(answers count: Int, steps: Int = 10_000) -> [(head: UInt64, result: Int32)] {
        var out: [(UInt64, Int32)] = []
        var heads = [UInt64](repeating: 0, count: 64), results = [Int32](repeating: 0, count: 64)
        for _ in 0..<steps where out.count < count {
            _ = backend.submit()
            soft.step()
            let n = backend.reap(heads: &heads, results: &results, max: 64)
            for i in 0..<n { out.append((heads[i], results[i])) }
        }
        return out.map { (head: $0.0, result: $0.1) }
    }

    /// Prepare, run and return the one answer.
    func one(_ s: UnsafeMutablePointer<BlkSlot>, head: UInt16 = 7, target: BlockTarget? = nil,
             file: StaticString = #filePath, line: UInt = #line) -> Int32? {
        let p = prepare(s, head: head, target: target)
        guard p == .queued else { XCTFail("prepare: \(p)", file: file, line: line); return nil }
        let a = run(answers: 1)
        guard a.count == 1 else { XCTFail("no answer", file: file, line: line); return nil }
        XCTAssertEqual(a[0].head, UInt64(head), file: file, line: line)
        return a[0].result
    }

    /// Fill guest pieces with a pattern; the bytes in request order.
    @discardableResult
    func fill(_ pieces: [(Int, Int)], seed: UInt8) -> [UInt8] {
        var out: [UInt8] = []
        var v = seed
        for (o, n) in pieces {
            for i in 0..<n { v = v &* 31 &+ 7; (guest + o + i).storeBytes(of: v, as: UInt8.self); out.append(v) }
        }
        return out
    }

    func gathered(_ pieces: [(Int, Int)]) -> [UInt8] {
        var out: [UInt8] = []
        for (o, n) in pieces { out += Array(UnsafeRawBufferPointer(start: guest + o, count: n)) }
        return out
    }

    func namespace(at byte: Int, count: Int, nsid: UInt32? = nil) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: soft.data(nsid ?? self.nsid) + byte, count: count))
    }

    func setNamespace(at byte: Int, _ bytes: [UInt8]) {
        let p = soft.data(nsid) + byte
        for (i, b) in bytes.enumerated() { (p + i).storeBytes(of: b, as: UInt8.self) }
    }

    /// The I/O commands the model executed since `from`.
    func commands(from: Int = 0) -> [NVMeCommand] { soft.ioCommands[from...].map { $0.command } }
}

func pattern(_ n: Int, seed: UInt8) -> [UInt8] {
    var v = seed
    return (0..<n).map { _ in v = v &* 13 &+ 101; return v }
}
