// The `nvme-data` fuzz target's bookkeeping of requests, independent of the driver's
// own: what each accepted request must turn into (commands read off the SQ right after
// `prepare`, checked against the request), which guest bytes each Read/Write command
// must move (from the request's iovecs, so the controller can compare with what the
// PRPs/SGL say), which statuses the controller posted for its commands, and so which
// answer `reap` may give and when.
#if canImport(Glibc)
import Glibc
#endif
import Block
import NVMe

public struct OracleRequest {
    public var head: UInt16
    public var type: UInt32
    /// First LBA and LBA count (IN/OUT/DISCARD/WRITE_ZEROES).
    public var lba: UInt64
    public var blocks: UInt64
    /// The answer on success: bytes for IN/OUT, else 0.
    public var expect: Int32
    /// The request's data in order (the slot's non-empty iovecs).
    public var segments: [HostSpan]
    public var unmap: Bool
    /// Prepared with an ancient start time: the timeout scan may answer it -ETIMEDOUT.
    public var stale: Bool
    var commands: [NVMeCommand] = []
    var posted = 0
    var errorStatus = false
    var fatalSeen = false
    var answered = false

    public init(head: UInt16, type: UInt32, lba: UInt64, blocks: UInt64, expect: Int32, segments: [HostSpan], unmap: Bool, stale: Bool) {
        self.head = head; self.type = type; self.lba = lba; self.blocks = blocks; self.expect = expect
        self.segments = segments; self.unmap = unmap; self.stale = stale
    }
}

public final class Oracle {
    public let lbaShift: Int
    public let cidCount: Int
    /// The export's LBAs: [first, end).
    public let targetFirst: UInt64
    public let targetEnd: UInt64
    public var useSGL = false
    public var maxTransfer = 0
    /// The controller reported a fatal status (until the reset).
    public private(set) var fatal = false
    var requests: [Int: OracleRequest] = [:]
    var nextID = 0
    var cidOwner: [Int]
    var owed: [UInt16: Int] = [:]
    public private(set) var answers = 0
    public private(set) var commandsChecked = 0

    public init(lbaShift: Int, cidCount: Int, targetFirst: UInt64, targetEnd: UInt64) {
        self.lbaShift = lbaShift; self.cidCount = cidCount; self.targetFirst = targetFirst; self.targetEnd = targetEnd
        cidOwner = Array(repeating: -1, count: cidCount)
    }

    /// Requests prepared and not answered yet.
    public var unanswered: Int { owed.count }
    public func isOwed(_ head: UInt16) -> Bool { owed[head] != nil }

    /// `prepare` queued `r` and wrote `commands` to the SQ.
    public func accepted(_ request: OracleRequest, commands: [NVMeCommand]) {
        var r = request
        let what = "request head \(r.head) type \(r.type) LBA \(r.lba)+\(r.blocks)"
        guard owed[r.head] == nil else { fuzzFail("harness: head \(r.head) reused while owed") }
        guard !commands.isEmpty else { fuzzFail("\(what): queued without a command") }
        var at = r.lba
        for c in commands {
            guard Int(c.cid) < cidCount else { fuzzFail("\(what): CID \(c.cid) outside 0..<\(cidCount)") }
            guard cidOwner[Int(c.cid)] < 0 else { fuzzFail("\(what): CID \(c.cid) reused while its command is outstanding") }
            guard c.nsid == 1 else { fuzzFail("\(what): namespace \(c.nsid)") }
            let slba = UInt64(c.cdw10) | UInt64(c.cdw11) << 32
            let n = UInt64(c.cdw12 & 0xFFFF) + 1
            switch r.type {
            case VirtioBlk.RequestType.input, VirtioBlk.RequestType.output:
                let op = r.type == VirtioBlk.RequestType.input ? NVMeIOOpcode.read : NVMeIOOpcode.write
                guard c.opcode == op, (c.cdw0 >> 14) & 3 == (useSGL ? 1 : 0) else {
                    fuzzFail("\(what): command \(hex(UInt64(c.opcode))) PSDT \((c.cdw0 >> 14) & 3) (SGL \(useSGL))")
                }
                guard slba == at else { fuzzFail("\(what): command at LBA \(slba), expected \(at)") }
                guard Int(n) << lbaShift <= maxTransfer else { fuzzFail("\(what): \(n) blocks in one command (max \(maxTransfer) bytes)") }
                at += n
            case VirtioBlk.RequestType.writeZeroes:
                guard c.opcode == NVMeIOOpcode.writeZeroes, slba == at else { fuzzFail("\(what): command \(hex(UInt64(c.opcode))) at LBA \(slba), expected \(at)") }
                guard (c.cdw12 & NVMeCommand.writeZeroesDeallocate != 0) == r.unmap else { fuzzFail("\(what): deallocate bit \(hex(UInt64(c.cdw12)))") }
                at += n
            case VirtioBlk.RequestType.discard:
                guard commands.count == 1, c.opcode == NVMeIOOpcode.datasetManagement, c.cdw10 == 0,
                      c.cdw11 == NVMeCommand.dsmDeallocate else { fuzzFail("\(what): DSM command \(c)") }
                at = r.lba + r.blocks
            case VirtioBlk.RequestType.flush:
                guard commands.count == 1, c.opcode == NVMeIOOpcode.flush else { fuzzFail("\(what): flush as \(commands)") }
            default:
                fuzzFail("\(what): a type the driver must refuse was queued")
            }
        }
        if r.type != VirtioBlk.RequestType.flush {
            guard at == r.lba + r.blocks else { fuzzFail("\(what): commands cover LBAs \(r.lba)..<\(at)") }
            guard r.lba >= targetFirst, r.lba + r.blocks <= targetEnd else {
                fuzzFail("\(what): outside the export's LBAs \(targetFirst)..<\(targetEnd)")
            }
        }
        r.commands = commands
        r.fatalSeen = fatal
        let id = nextID
        nextID += 1
        for c in commands { cidOwner[Int(c.cid)] = id }
        requests[id] = r
        owed[r.head] = id
    }

    /// The controller fetched `c`: it must be the command the driver wrote for its
    /// request, and a Read/Write must move exactly that part of the request's bytes.
    public func fetched(_ c: NVMeCommand, spans: [HostSpan], range: DSMRange?) {
        let id = Int(c.cid) < cidCount ? cidOwner[Int(c.cid)] : -1
        guard id >= 0, let r = requests[id] else { fuzzFail("the controller fetched CID \(c.cid), which no accepted request owns") }
        guard let mine = r.commands.first(where: { $0.cid == c.cid }), mine == c else {
            fuzzFail("CID \(c.cid): the SQ entry changed after prepare (\(c))")
        }
        commandsChecked += 1
        switch c.opcode {
        case NVMeIOOpcode.read, NVMeIOOpcode.write:
            let slba = UInt64(c.cdw10) | UInt64(c.cdw11) << 32
            let expected = expectedSpans(r, from: Int(slba - r.lba) << lbaShift, bytes: Int((c.cdw12 & 0xFFFF) + 1) << lbaShift)
            guard expected == spans else {
                fuzzFail("CID \(c.cid) (head \(r.head), LBA \(slba)): the device would move \(spans), the request's bytes there are \(expected)")
            }
        case NVMeIOOpcode.datasetManagement:
            guard range == DSMRange(attributes: 0, blocks: UInt32(truncatingIfNeeded: r.blocks), lba: r.lba), r.blocks <= UInt64(UInt32.max) else {
                fuzzFail("CID \(c.cid) (head \(r.head)): DSM range \(String(describing: range)), request LBA \(r.lba)+\(r.blocks)")
            }
        default:
            break
        }
    }

    func expectedSpans(_ r: OracleRequest, from start: Int, bytes: Int) -> [HostSpan] {
        var out: [HostSpan] = []
        var skip = start, left = bytes
        for s in r.segments where left > 0 {
            if skip >= s.bytes { skip -= s.bytes; continue }
            let n = min(s.bytes - skip, left)
            out.append(HostSpan(host: s.host + UInt(skip), bytes: n))
            left -= n
            skip = 0
        }
        guard left == 0 else { fuzzFail("head \(r.head): a command past the request's \(r.segments.reduce(0) { $0 + $1.bytes }) bytes") }
        return normalized(out)
    }

    /// The controller posted a completion for `cid` with `status` (15-bit field).
    public func posted(cid: UInt16, status: UInt16) {
        let id = cidOwner[Int(cid)]
        guard id >= 0, var r = requests[id] else { fuzzFail("completion posted for CID \(cid) that no request owns") }
        cidOwner[Int(cid)] = -1
        r.posted += 1
        if status & 0x7FF != 0 { r.errorStatus = true }
        if r.answered && r.posted == r.commands.count { requests[id] = nil } else { requests[id] = r }
    }

    /// `reap` answered `head` with `result`.
    public func answered(head: UInt64, result: Int32) {
        guard head <= 0xFFFF, let id = owed.removeValue(forKey: UInt16(head)), var r = requests[id] else {
            fuzzFail("reap answered head \(head), which is not owed (answered twice, or never queued)")
        }
        answers += 1
        let all = r.posted == r.commands.count
        let what = "head \(head) (type \(r.type), \(r.commands.count) command(s), \(r.posted) completed, error \(r.errorStatus), fatal \(r.fatalSeen), stale \(r.stale))"
        switch result {
        case -EIO:
            guard (all && r.errorStatus) || r.fatalSeen else { fuzzFail("\(what) answered -EIO") }
        case -ETIMEDOUT:
            guard r.stale else { fuzzFail("\(what) answered -ETIMEDOUT") }
        default:
            guard result == r.expect, all, !r.errorStatus else { fuzzFail("\(what) answered \(result), expected \(r.expect)") }
        }
        r.answered = true
        if all { requests[id] = nil } else { requests[id] = r }
    }

    public func setFatal() {
        fatal = true
        for id in owed.values { requests[id]?.fatalSeen = true }
    }

    /// The controller was reset: nothing may be owed any more; every CID is free again.
    public func reset() {
        guard owed.isEmpty else { fuzzFail("controller reset with \(owed.count) request(s) still owed: \(owed.keys.sorted())") }
        requests = [:]
        for i in 0..<cidCount { cidOwner[i] = -1 }
        fatal = false
    }
}
