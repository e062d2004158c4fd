// The `nvme-data` fuzz target's controller reading an I/O command: namespace, LBA range,
// transfer size, and the data pointers walked the way a controller walks them — PRP1,
// PRP2 or a PRP list; an SGL Data Block or a Last Segment of Data Blocks; a Dataset
// Management range. Every data byte must lie in the guest's mapped memory, every list
// (PRP list, SGL segment, DSM ranges) in the command's own list page of its queue pair
// (the driver keeps one page per CID), and the bytes described must be exactly
// (NLB + 1) × the LBA size. Anything else is a finding.
import NVMe

/// One Dataset Management range (context attributes, blocks, first LBA).
public struct DSMRange: Equatable {
    public var attributes: UInt32
    public var blocks: UInt32
    public var lba: UInt64
}

extension FuzzController {
    /// The IOVA range of CID `cid`'s list page.
    func listPage(_ cid: UInt16) -> ClosedRange<UInt64> {
        let start = lists.iova + UInt64(cid) * 4096
        return start...(start + 4095)
    }

    /// `bytes` at `iova` inside CID `cid`'s list page, as host memory.
    func listBytes(_ cid: UInt16, _ iova: UInt64, _ bytes: Int, _ what: String) -> UnsafeMutableRawPointer {
        let page = listPage(cid)
        guard bytes > 0, page.contains(iova), iova + UInt64(bytes) - 1 <= page.upperBound,
              let p = memory.dmaHost(iova, bytes) else {
            fuzzFail("\(what) at \(hex(iova)) (\(bytes) bytes) is not inside CID \(cid)'s list page \(hex(page.lowerBound))")
        }
        return p
    }

    /// Device addresses of data to host spans; every byte must be guest memory.
    func guestData(_ pieces: [(UInt64, Int)], _ what: String) -> [HostSpan] {
        var out: [HostSpan] = []
        for (a, n) in pieces {
            guard let s = memory.guestSpans(a, n) else {
                fuzzFail("\(what): data at device address \(hex(a)) (\(n) bytes) is outside the guest memory mapped for the device")
            }
            out += s
        }
        return normalized(out)
    }

    func decode(_ c: NVMeCommand) -> FetchedCommand {
        let what = "I/O command \(hex(UInt64(c.opcode))) CID \(c.cid)"
        guard c.nsid == 1 else { fuzzFail("\(what): namespace \(c.nsid)") }
        guard (c.cdw0 >> 8) & 3 == 0 else { fuzzFail("\(what): fused") }
        guard Int(c.cid) < lists.count else { fuzzFail("\(what): CID outside the pair's \(lists.count)") }
        let psdt = (c.cdw0 >> 14) & 3
        let slba = UInt64(c.cdw10) | UInt64(c.cdw11) << 32
        let blocks = UInt64(c.cdw12 & 0xFFFF) + 1
        func checkRange() {
            guard slba < config.namespaceBlocks, blocks <= config.namespaceBlocks - slba else {
                fuzzFail("\(what): LBAs \(slba)+\(blocks) outside the namespace (\(config.namespaceBlocks) blocks)")
            }
        }
        switch c.opcode {
        case NVMeIOOpcode.flush:
            return FetchedCommand(command: c, spans: [], range: nil)
        case NVMeIOOpcode.read, NVMeIOOpcode.write:
            checkRange()
            let length = Int(blocks) << config.lbaShift
            if config.mdts > 0 && length > 4096 << Int(config.mdts) {
                fuzzFail("\(what): \(length) bytes, more than MDTS allows (\(4096 << Int(config.mdts)))")
            }
            if length > NVMeQueuePairState.maxCommandBytes { fuzzFail("\(what): \(length) bytes in one command") }
            guard c.cdw12 >> 16 == 0, c.cdw13 == 0 else { fuzzFail("\(what): CDW12/13 \(hex(UInt64(c.cdw12))) \(hex(UInt64(c.cdw13)))") }
            let pieces: [(UInt64, Int)]
            switch psdt {
            case 0: pieces = walkPRP(c, length: length, what)
            case 1: pieces = walkSGL(c, length: length, what)
            default: fuzzFail("\(what): PSDT \(psdt)")
            }
            return FetchedCommand(command: c, spans: guestData(pieces, what), range: nil)
        case NVMeIOOpcode.writeZeroes:
            checkRange()
            guard c.cdw12 & ~(0xFFFF | NVMeCommand.writeZeroesDeallocate) == 0 else { fuzzFail("\(what): CDW12 \(hex(UInt64(c.cdw12)))") }
            return FetchedCommand(command: c, spans: [], range: nil)
        case NVMeIOOpcode.datasetManagement:
            guard config.dsm else { fuzzFail("\(what): Dataset Management to a controller without it (ONCS)") }
            guard psdt == 0, c.prp1 & 3 == 0 else { fuzzFail("\(what): PSDT \(psdt), PRP1 \(hex(c.prp1))") }
            let ranges = Int(c.cdw10 & 0xFF) + 1
            let p = listBytes(c.cid, c.prp1, 16 * ranges, "\(what): DSM ranges")
            var first: DSMRange?
            for i in 0..<ranges {
                let r = DSMRange(attributes: p.load(fromByteOffset: 16 * i, as: UInt32.self),
                                 blocks: p.load(fromByteOffset: 16 * i + 4, as: UInt32.self),
                                 lba: p.load(fromByteOffset: 16 * i + 8, as: UInt64.self))
                guard r.lba < config.namespaceBlocks, UInt64(r.blocks) <= config.namespaceBlocks - r.lba else {
                    fuzzFail("\(what): range \(i) LBAs \(r.lba)+\(r.blocks) outside the namespace (\(config.namespaceBlocks) blocks)")
                }
                if first == nil { first = r }
            }
            return FetchedCommand(command: c, spans: [], range: first)
        default:
            fuzzFail("\(what): an opcode the driver never sends")
        }
    }

    /// PRP1, then PRP2 as the second page or a PRP list (in the CID's page: the driver
    /// never chains list pages).
    func walkPRP(_ c: NVMeCommand, length: Int, _ what: String) -> [(UInt64, Int)] {
        guard c.prp1 & 3 == 0 else { fuzzFail("\(what): PRP1 \(hex(c.prp1)) not dword aligned") }
        let first = min(length, 4096 - Int(c.prp1 & 4095))
        var out = [(c.prp1, first)]
        var left = length - first
        if left == 0 { return out }
        if left <= 4096 {
            guard c.prp2 & 4095 == 0 else { fuzzFail("\(what): PRP2 \(hex(c.prp2)) not page aligned") }
            out.append((c.prp2, left))
            return out
        }
        guard c.prp2 & 7 == 0 else { fuzzFail("\(what): PRP list pointer \(hex(c.prp2)) not qword aligned") }
        let entries = (left + 4095) / 4096
        let list = listBytes(c.cid, c.prp2, entries * 8, "\(what): PRP list of \(entries) entries")
        for i in 0..<entries {
            let e = list.load(fromByteOffset: 8 * i, as: UInt64.self)
            guard e & 4095 == 0 else { fuzzFail("\(what): PRP list entry \(i) = \(hex(e)) not page aligned") }
            let n = min(left, 4096)
            out.append((e, n))
            left -= n
        }
        return out
    }

    /// SGL1: one Data Block, or a Last Segment (in the CID's page) of Data Blocks.
    func walkSGL(_ c: NVMeCommand, length: Int, _ what: String) -> [(UInt64, Int)] {
        guard config.sgls != 0 else { fuzzFail("\(what): an SGL to a controller without SGL support") }
        func parts(_ q1: UInt64) -> (type: UInt64, length: Int) {
            guard (q1 >> 32) & 0xFF_FFFF == 0, (q1 >> 56) & 0xF == 0 else {
                fuzzFail("\(what): SGL descriptor with reserved bytes or subtype set (\(hex(q1)))")
            }
            return (q1 >> 60, Int(UInt32(truncatingIfNeeded: q1)))
        }
        var out: [(UInt64, Int)] = []
        let d = parts(c.prp2)
        switch d.type {
        case NVMeSGL.dataBlock:
            out.append((c.prp1, d.length))
        case NVMeSGL.lastSegment:
            guard d.length > 0, d.length % 16 == 0, c.prp1 & 15 == 0 else {
                fuzzFail("\(what): Last Segment of \(d.length) bytes at \(hex(c.prp1))")
            }
            let list = listBytes(c.cid, c.prp1, d.length, "\(what): SGL segment")
            for i in 0..<(d.length / 16) {
                let e = parts(list.load(fromByteOffset: 16 * i + 8, as: UInt64.self))
                guard e.type == NVMeSGL.dataBlock else { fuzzFail("\(what): SGL segment descriptor \(i) of type \(e.type)") }
                out.append((list.load(fromByteOffset: 16 * i, as: UInt64.self), e.length))
            }
        default:
            fuzzFail("\(what): SGL1 of type \(d.type)")
        }
        if config.sgls == 2, let bad = out.first(where: { $0.0 & 3 != 0 || $0.1 & 3 != 0 }) {
            fuzzFail("\(what): SGL Data Block \(hex(bad.0))+\(bad.1) not dword aligned for a dword-granularity controller")
        }
        let total = out.reduce(0) { $0 + $1.1 }
        guard total == length else { fuzzFail("\(what): SGL describes \(total) bytes, the command moves \(length)") }
        return out
    }
}
