// libFuzzer target `blk-request`: the virtio-blk request path of a hostile driver.
// Every head in the avail ring goes through BlkRequestParser.parse; with bit 2 the
// queue is also run for real: BlkQueue polls the ring, with an io_uring on a
// temporary file whose middle part is the export (guard bytes either side).
//
// Guest memory is FuzzGuest's (one memfd region at gpa 0, 0x80000 bytes), laid out as
//   0x0000 descriptor table   0x1000 avail ring   0x1800 used ring   0x2000- buffers
//
// Input layout:
//   byte 0      queue size, log2 (mod 9: 1…256)
//   byte 1      bit 0 INDIRECT_DESC negotiated   bit 1 read-only export
//               bit 2 also run BlkQueue.poll     bit 3 logical block size 4096
//   bytes 2-3   avail.idx (LE), written over the image; the device starts at
//               avail.idx - (avail.idx % 1024), so up to 1023 entries are pending (more than
//               the ring holds: a lying driver), across the 16-bit wrap as well
//   bytes 4-    the memory image, from gpa 0 (at most 0x8000 bytes are used)
//
// Invariants (abort = a finding):
//   parse: every data iovec and the status byte lie inside guest memory; .ok requests
//   stay inside the export (sector range, and for IN/OUT the iovecs add up to the
//   byte count, whole sectors, at most segMax of them); a read-only export never
//   accepts OUT/DISCARD/WRITE_ZEROES; .ioerr/.unsupp always have a status byte.
//   poll: everything taken completes (nothing left with the kernel after 8 s), each
//   taken request is counted exactly once, used.idx moves by at most the number taken,
//   the file outside the export is never written.
//
// Seeds: tools/fuzz/corpus/blk-request, written by make-seeds.swift.
#if canImport(Glibc)
import Glibc
#endif
import Block
import CSluice
import FuzzGuest
import Memory
import Platform
import Ports
import Stats
import Virtio

private func fail(_ what: String) -> Never {
    fputs("blk-request fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private let descAt = 0x0000, availAt = 0x1000, usedAt = 0x1800
private let imageMax = 0x8000
private let guard_ = 4096
private let exportBytes = 64 << 10
private let guardByte: UInt8 = 0x5a

private let guest = FuzzGuest("blk-request")
private let vq = guest.tx

/// The file: guard | export | guard, unlinked once open.
private let backingFile: BlockFile = {
    let path = "/tmp/sluice-fuzz-blk-\(getpid()).img"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { fail("create \(path)") }
    var bytes = [UInt8](repeating: guardByte, count: guard_ * 2 + exportBytes)
    for i in guard_..<(guard_ + exportBytes) { bytes[i] = UInt8(truncatingIfNeeded: i &* 7) }
    guard bytes.withUnsafeBytes({ pwrite(fd, $0.baseAddress!, $0.count, 0) }) == bytes.count else { fail("write \(path)") }
    close(fd)
    do {
        let f = try BlockFile(path: path, writable: true)
        unlink(path)
        return f
    } catch { fail("open \(path): \(error)") }
}()

private func target(readOnly: Bool, blockSize: Int) -> BlockTarget {
    BlockTarget(fd: backingFile.fd, offsetBytes: UInt64(guard_), sizeBytes: UInt64(exportBytes), readOnly: readOnly,
                blockSize: blockSize, isBlockDevice: false)
}

private let model: VirtioBlkModel = {
    do {
        return try VirtioBlkModel(spec: BlkDeviceSpec(name: "f", queues: 1, queueSize: 256, maxRegions: 1, serial: "fuzz-serial",
                                                      target: target(readOnly: false, blockSize: 512)))
    } catch { fail("model: \(error)") }
}()

/// Counters in a real stats segment whose file is unlinked at once.
private let stats: StatsWriter = {
    do {
        let w = try StatsWriter(path: "/tmp/sluice-fuzz-blk-request-\(getpid()).stats", slots: 1)
        w.remove()
        return w
    } catch { fail("stats: \(error)") }
}()
private let counters: [StatsCounter] = BlkCounters.allNames.map { name in
    do { return stats.counter(try stats.register("blk.f.\(name)", kind: BlkCounters.kind(name)), slot: 0) } catch { fail("register: \(error)") }
}
/// Every counter that counts one finished request, once.
private let outcomeNames = ["reads", "writes", "flushes", "discards", "write_zeroes", "get_id", "errors.ioerr", "errors.unsupp", "drop.bad_chain"]
private let outcomeCounters = outcomeNames.map { counters[BlkCounters.allNames.firstIndex(of: $0)!] }
private let io: UnsafeMutablePointer<BlkIO> = {
    let p = model.io[0]
    p.pointee.counters.latency.free()   // the model's placeholder counters, as the engine does
    p.pointee.counters = BlkCounters(counters)
    return p
}()
private let queue = BlkQueue(vq: vq, io: io, backend: (model.backends[0] as! UringBackendControl).backend)

private let pool: Mempool = {
    do { return try Mempool(name: "fuzz-blk", count: 64, caches: 1, policy: .off) } catch { fail("mempool: \(error)") }
}()

private let scratchIOV: UnsafeMutablePointer<iovec> = {
    let p = UnsafeMutablePointer<iovec>.allocate(capacity: BlkRequestParser.iovCapacity)
    p.initialize(repeating: iovec(), count: BlkRequestParser.iovCapacity)
    return p
}()
private let scratch: UnsafeMutablePointer<BlkSlot> = {
    let p = UnsafeMutablePointer<BlkSlot>.allocate(capacity: 1)
    p.initialize(to: BlkSlot(iov: scratchIOV))
    return p
}()

private func inGuest(_ p: UnsafeRawPointer, _ len: Int) -> Bool {
    let off = UInt(bitPattern: p) &- UInt(bitPattern: guest.base)
    return UInt(bitPattern: p) >= UInt(bitPattern: guest.base) && off <= UInt(memorySize) && UInt(len) <= UInt(memorySize) &- off
}

private func checkParse(head: UInt16, _ t: BlockTarget) {
    let r = BlkRequestParser.parse(vq, head: head, into: scratch, target: t)
    let s = scratch.pointee
    let what = "head \(head) type \(s.type) sector \(s.sector)"
    if r != .badChain {
        guard let st = s.status else { fail("\(what): \(r) without a status byte") }
        guard inGuest(st, 1) else { fail("\(what): status byte outside guest memory") }
    }
    guard r == .ok else { return }
    let type = s.type
    switch type {
    case VirtioBlk.RequestType.input, VirtioBlk.RequestType.output, VirtioBlk.RequestType.getID:
        guard s.iovCount >= 0, Int(s.iovCount) <= BlkRequestParser.iovCapacity else { fail("\(what): iovCount \(s.iovCount)") }
        var total = 0
        for k in 0..<Int(s.iovCount) {
            let v = s.iov[k]
            guard let base = v.iov_base, inGuest(base, v.iov_len) else { fail("\(what): iovec \(k) (\(v.iov_len) bytes) outside guest memory") }
            total += v.iov_len
        }
        if type == VirtioBlk.RequestType.getID {
            guard s.bytes <= UInt32(VirtioBlk.idBytes), Int(s.bytes) <= total, s.bytes > 0 else { fail("\(what): GET_ID of \(s.bytes) into \(total)") }
            return
        }
        guard total == Int(s.bytes), s.bytes > 0, s.bytes % 512 == 0, Int(s.bytes) <= BlkRequestParser.maxBytes else {
            fail("\(what): iovecs add up to \(total), request says \(s.bytes)")
        }
        guard Int(s.iovCount) <= BlkRequestParser.segMax else { fail("\(what): \(s.iovCount) segments") }
        guard s.sector < t.sectors, UInt64(s.bytes / 512) <= t.sectors - s.sector else { fail("\(what): \(s.bytes) bytes past the export") }
        if type == VirtioBlk.RequestType.output && t.readOnly { fail("\(what): write accepted on a read-only export") }
    case VirtioBlk.RequestType.flush:
        break
    case VirtioBlk.RequestType.discard, VirtioBlk.RequestType.writeZeroes:
        if t.readOnly { fail("\(what): discard/write-zeroes accepted on a read-only export") }
        guard s.bytes > 0, s.sector < t.sectors, UInt64(s.bytes) <= t.sectors - s.sector else {
            fail("\(what): range of \(s.bytes) sectors past the export")
        }
    default:
        fail("\(what): unknown type accepted")
    }
}

/// A buffered descriptor of the same file (the export's may be O_DIRECT).
private let plainFD: Int32 = {
    let fd = open("/proc/self/fd/\(backingFile.fd)", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { fail("reopen the file") }
    return fd
}()

private func guardsIntact() -> Bool {
    var b = [UInt8](repeating: 0, count: guard_)
    let plain = plainFD
    for at in [0, guard_ + exportBytes] {
        guard b.withUnsafeMutableBytes({ pread(plain, $0.baseAddress!, guard_, off_t(at)) }) == guard_ else { fail("read guard") }
        if b.contains(where: { $0 != guardByte }) { return false }
    }
    return true
}

@_cdecl("LLVMFuzzerTestOneInput")
public func blkRequestFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 4 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let flags = input[1]
    let qsize = UInt16(1) << UInt16(input[0] % 9)
    let t = target(readOnly: flags & 2 != 0, blockSize: flags & 8 != 0 ? 4096 : 512)

    guest.base.initializeMemory(as: UInt8.self, repeating: 0, count: imageMax)
    let image = UnsafeRawBufferPointer(rebasing: input[4...])
    if image.count > 0 { guest.base.copyMemory(from: image.baseAddress!, byteCount: min(image.count, imageMax)) }
    let availIdx = UInt16(input[2]) | UInt16(input[3]) << 8
    sl_store_release_u16(guest.base + availAt + 2, availIdx)

    var s = VirtqueueState()
    s.desc = guest.base + descAt
    s.avail = guest.base + availAt
    s.used = guest.base + usedAt
    s.memory = guest.map.table
    s.size = qsize
    s.mask = qsize &- 1
    s.indirect = flags & 1 != 0
    s.addressed = true
    s.started = true
    s.enabled = true
    let pendingCount = availIdx % 1024
    s.lastAvail = availIdx &- pendingCount
    s.usedIdx = s.lastAvail
    s.signalledUsed = s.lastAvail
    sl_store_release_u16(guest.base + usedAt + 2, s.lastAvail)
    vq.state.pointee = s

    // The parser on every head the ring offers.
    let offered = min(Int(pendingCount), Int(qsize))
    for i in 0..<offered { checkParse(head: vq.availHead(i), t) }

    guard flags & 4 != 0 else { return 0 }
    io.pointee.target = t
    let before = outcomeCounters.map(\.value)
    let ctx = WorkerContext(worker: 0, cache: pool.cache(0), now: Clock.monotonicNanos(), eventMode: false, allocFail: .discard)
    // Bounded in time, not in polls (an fsync on a busy disk may take a while), and in
    // entries: reads into the guest's own avail ring can keep moving avail.idx.
    let start = Clock.monotonicNanos()
    var taken = 0, used = 0
    while (vq.availableCount() > 0 && taken < 4096) || io.pointee.pending > 0 || io.pointee.prepared > 0 {
        let (a, u) = (vq.state.pointee.lastAvail, vq.state.pointee.usedIdx)
        if queue.poll(ctx) == 0 { usleep(50) }
        taken += Int(vq.state.pointee.lastAvail &- a)
        used += Int(vq.state.pointee.usedIdx &- u)
        if Clock.monotonicNanos() &- start > 8_000_000_000 {
            fail("requests still in flight after 8 s (pending \(io.pointee.pending), prepared \(io.pointee.prepared))")
        }
    }
    let finished = zip(outcomeCounters.map(\.value), before).map { Int($0 &- $1) }.reduce(0, +)
    guard finished == taken else { fail("\(taken) requests taken, \(finished) counted (\(Array(zip(outcomeNames, zip(outcomeCounters.map(\.value), before).map { $0 &- $1 }))))") }
    guard used <= taken else { fail("\(used) used entries for \(taken) requests") }
    for h in 0..<io.pointee.slotCount where io.pointee.slots[h].busy { fail("slot \(h) still busy with nothing in flight") }
    guard guardsIntact() else { fail("the file outside the export was written") }
    return 0
}
