// libFuzzer target `desc-chain`: Virtio's descriptor-chain walker and one
// direction of a p2p link, over guest memory and rings the input fills in.
//
// Two guests, each with its own memfd-backed memory of two regions: gpa
// [0, 0x10000) and, adjacent in guest-physical space but mapped apart,
// [0x10000, 0x11000). Both memories get the same image:
//
//   0x0000  source (guest A) descriptor table     0x2000  destination (guest B) descriptor table
//   0x1000  source avail ring                     0x3000  destination avail ring
//   0x1400  source used ring                      0x3400  destination used ring
//   0x4000- buffers (the image covers up to 0x4ff7; the rest of memory is zeroes)
//
// Input layout:
//   byte 0      source queue size, log2 (mod 9: 1…256)
//   byte 1      destination queue size, log2 (mod 9)
//   byte 2      bit 0 INDIRECT_DESC negotiated   bit 1 walk as device-writable (RX)
//               bit 2 also run P2PDirection.poll  bit 3 EVENT_IDX
//               bit 4 destination MRG_RXBUF       bit 5 destination GUEST_CSUM
//               bit 6 source 10-byte header       bit 7 destination 10-byte header
//   bytes 3-4   head to walk (LE)
//   bytes 5-6   source avail.idx; bytes 7-8 destination avail.idx (LE), written over the image
//   bytes 9-    the memory image, from gpa 0 (at most 0x11000 bytes are used)
//
// Invariants checked (abort = a finding): a walked chain's segments each lie
// inside one mapped region and add up to totalLength; a poll accounts for every
// entry it takes (rx + bad_desc + bad_length == taken; tx + no_rx_buffer == rx)
// and never publishes more used entries than it consumed. By default it also
// checks (DESC_CHAIN_LENIENT=1 turns it off) that every RX chain the destination gets
// back was one it made available in a slot the poll consumed, each offer returned at
// most once (the MRG_RXBUF multi-frame bug broke this). Where the guest's own RX
// buffers overlap its rings, the copies rewrite them and the check narrows (see the
// poll loop): ids only in range when the avail ring changed, used entries a buffer
// covers skipped, nothing checked when a buffer covers a descriptor table.
//
// Seeds: tools/fuzz/corpus/desc-chain, written by make-seeds.swift.
#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform
import Stats
import Ports
import Switching
import Virtio

private func fail(_ what: String) -> Never {
    fputs("desc-chain fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private let mainSize = 0x10000
private let extraGPA: UInt64 = 0x10000
private let extraSize = 0x1000

/// One guest's memory: two regions from two memfds, mapped once for the whole run.
private final class FuzzGuest: @unchecked Sendable {
    let map = GuestMemoryMap(maxRegions: 8)
    let main: UnsafeMutableRawPointer
    let extra: UnsafeMutableRawPointer

    init(_ name: String) {
        for (gpa, size) in [(UInt64(0), mainSize), (extraGPA, extraSize)] {
            let fd = sl_memfd_create(name, sl_memfd_cloexec_flag())
            guard fd >= 0, ftruncate(fd, off_t(size)) == 0 else { fail("memfd") }
            do { try map.add(guestPhys: gpa, size: UInt64(size), userAddr: 0x7f00_0000_0000 + gpa, mmapOffset: 0, fd: fd) } catch {
                fail("map: \(error)")
            }
        }
        guard let m = map.table.translate(0, 1), let e = map.table.translate(extraGPA, 1) else { fail("translate") }
        main = m
        extra = e
    }

    func load(_ image: UnsafeRawBufferPointer) {
        main.initializeMemory(as: UInt8.self, repeating: 0, count: mainSize)
        extra.initializeMemory(as: UInt8.self, repeating: 0, count: extraSize)
        let n1 = min(image.count, mainSize)
        if n1 > 0 { main.copyMemory(from: image.baseAddress!, byteCount: n1) }
        if image.count > mainSize { extra.copyMemory(from: image.baseAddress! + mainSize, byteCount: min(image.count - mainSize, extraSize)) }
    }

    /// Whether [p, p+len) lies inside one mapped region.
    func contains(_ p: UnsafeMutableRawPointer, _ len: Int) -> Bool {
        for (base, size) in [(main, mainSize), (extra, extraSize)] {
            let off = UInt(bitPattern: p) &- UInt(bitPattern: base)
            if UInt(bitPattern: p) >= UInt(bitPattern: base) && off <= UInt(size) && UInt(len) <= UInt(size) &- off { return true }
        }
        return false
    }
}

private let guestA = FuzzGuest("fuzz-a")
private let guestB = FuzzGuest("fuzz-b")
private let srcQueue = Virtqueue.allocate()
private let dstQueue = Virtqueue.allocate()
private let segs = SegmentList.allocate()
private let strict = getenv("DESC_CHAIN_LENIENT").map { String(cString: $0) != "1" } ?? true
/// DESC_CHAIN_VERBOSE=1: print what each input did (to check that seeds reach the copy paths).
private let verbose = getenv("DESC_CHAIN_VERBOSE").map { String(cString: $0) == "1" } ?? false

/// Counters in a real stats segment whose file is unlinked at once (the memory stays).
private let stats: StatsWriter = {
    do {
        let w = try StatsWriter(path: "/tmp/sluice-fuzz-desc-chain-\(getpid()).stats", slots: 1)
        w.remove()
        return w
    } catch { fail("stats: \(error)") }
}()

private func counters(_ port: String) -> [StatsCounter] {
    PortCounters.names.map { name in
        do { return stats.counter(try stats.register("port.\(port).\(name)"), slot: 0) } catch { fail("register: \(error)") }
    }
}
private let countersA = counters("a")
private let countersB = counters("b")
private let link = P2PDirection(src: srcQueue, dst: dstQueue, srcCounters: PortCounters(countersA),
                                dstCounters: PortCounters(countersB), maxFrame: 1518)

private func setUp(_ q: Virtqueue, guest: FuzzGuest, ringBase: Int, sizeLog: UInt8, control: UInt8, headerBit: UInt8) {
    let size = UInt16(1) << UInt16(sizeLog % 9)
    var s = VirtqueueState()
    s.desc = guest.main + ringBase
    s.avail = guest.main + ringBase + 0x1000
    s.used = guest.main + ringBase + 0x1400
    s.memory = guest.map.table
    s.size = size
    s.mask = size &- 1
    s.indirect = control & 1 != 0
    s.eventIdx = control & 8 != 0
    s.headerSize = control & headerBit != 0 ? 10 : 12
    s.addressed = true
    s.started = true
    s.enabled = true
    q.state.pointee = s
}

private func checkSegments(_ guest: FuzzGuest, _ what: String) {
    guard segs.count <= SegmentList.capacity else { fail("\(what): \(segs.count) segments") }
    var total = 0
    for i in 0..<segs.count {
        guard guest.contains(segs.pointer(i), segs.length(i)) else {
            fail("\(what): segment \(i) (\(segs.length(i)) bytes) is not inside one guest region")
        }
        total += segs.length(i)
    }
    guard total == segs.totalLength else { fail("\(what): totalLength \(segs.totalLength) != \(total)") }
}

private func le16(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt16 { UInt16(p[at]) | UInt16(p[at + 1]) << 8 }

/// Every guest-physical byte a poll could write into a queue's buffers, as the
/// descriptors say before the poll: each device-writable descriptor of the table and of
/// every indirect table it names (the walker and `singleBuffer` write into no other;
/// a superset of the chains they accept).
/// `chainsMayChange`: one of those buffers overlaps the descriptor table or an indirect
/// table, so a copy can rewrite chains mid-poll and the superset no longer holds.
private struct Reach {
    private var prefix: [Int32]   // prefix[x]: bytes in [0, x) some buffer covers
    var chainsMayChange = false

    init(_ q: VirtqueueState, descGPA: UInt64) {
        let limit = Int(extraGPA) + extraSize   // nothing above is mapped
        var diff = [Int32](repeating: 0, count: limit + 1)
        var tables = [(descGPA, UInt64(q.size) * 16)]
        func mark(_ addr: UInt64, _ len: UInt32) {
            guard len > 0, addr < UInt64(limit) else { return }
            diff[Int(addr)] += 1
            diff[Int(min(addr + UInt64(len), UInt64(limit)))] -= 1
        }
        func descriptor(_ d: UnsafeMutableRawPointer) -> (addr: UInt64, len: UInt32, flags: UInt16) {
            (d.loadUnaligned(as: UInt64.self), d.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
             d.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        }
        for i in 0..<Int(q.size) {
            let d = descriptor(q.desc! + i * 16)
            guard d.flags & VringDescFlag.indirect != 0 else {
                if d.flags & VringDescFlag.write != 0 { mark(d.addr, d.len) }
                continue
            }
            tables.append((d.addr, UInt64(d.len)))
            guard let t = q.memory!.translate(d.addr, d.len) else { continue }   // the walker refuses it too
            for j in 0..<min(Int(d.len / 16), Int(q.size)) {
                let e = descriptor(t + j * 16)
                if e.flags & VringDescFlag.write != 0 { mark(e.addr, e.len) }
            }
        }
        prefix = [Int32](repeating: 0, count: limit + 1)
        var depth: Int32 = 0
        for x in 0..<limit {
            depth += diff[x]
            prefix[x + 1] = prefix[x] + (depth > 0 ? 1 : 0)
        }
        chainsMayChange = tables.contains { touches($0.0, $0.1) }
    }

    /// Whether some buffer covers a byte of [gpa, gpa + len).
    func touches(_ gpa: UInt64, _ len: UInt64) -> Bool {
        let limit = UInt64(prefix.count - 1)
        guard len > 0, gpa < limit else { return false }
        return prefix[Int(min(gpa + len, limit))] != prefix[Int(gpa)]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func descChainFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 9 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let control = input[2]
    let image = UnsafeRawBufferPointer(rebasing: input[9...])
    guestA.load(image)
    guestB.load(image)
    setUp(srcQueue, guest: guestA, ringBase: 0, sizeLog: input[0], control: control, headerBit: 0x40)
    setUp(dstQueue, guest: guestB, ringBase: 0x2000, sizeLog: input[1], control: control, headerBit: 0x80)
    dstQueue.state.pointee.mergeable = control & 0x10 != 0
    dstQueue.state.pointee.guestCsum = control & 0x20 != 0
    sl_store_release_u16(guestA.main + 0x1002, le16(input, 5))
    sl_store_release_u16(guestB.main + 0x3002, le16(input, 7))

    // The walker on its own.
    let writes = control & 2 != 0
    let walkQueue = writes ? dstQueue : srcQueue
    let walked = walkQueue.walkChain(head: le16(input, 3), deviceWrites: writes, into: segs)
    if verbose { print("walk head \(le16(input, 3)) \(writes ? "RX" : "TX"): \(walked) \(segs.count) segments \(segs.totalLength) bytes") }
    if walked == .none {
        checkSegments(writes ? guestB : guestA, "walkChain(head: \(le16(input, 3)))")
    } else if segs.count > SegmentList.capacity {
        fail("refused chain left \(segs.count) segments")
    }

    guard control & 4 != 0 else { return 0 }
    // Two polls: the second sees what the first left.
    for round in 0..<2 {
        let before = (countersA.map(\.value), countersB.map(\.value))
        let srcLast = srcQueue.state.pointee.lastAvail, srcUsed = srcQueue.state.pointee.usedIdx
        let dstLast = dstQueue.state.pointee.lastAvail, dstUsed = dstQueue.state.pointee.usedIdx
        // The heads the destination offers, read before the poll. A guest may aim an RX
        // buffer at its own avail ring; the copy then rewrites what it offered (the guest
        // only hurts itself), and ids can only be checked for range (see below).
        let dstBefore = dstQueue.state.pointee
        let availBytes = 4 + Int(dstBefore.size) * 2
        let availBefore = [UInt8](UnsafeRawBufferPointer(start: dstBefore.avail!, count: availBytes))
        // Likewise a guest may aim an RX buffer at its own used ring: a later copy of the
        // burst then overwrites used entries already pushed (the guest only hurts itself),
        // so an entry whose id any buffer covers cannot be checked. Over its descriptor
        // table or an indirect table, the copies rewrite the chains, and no entry can be.
        let reach = strict ? Reach(dstBefore, descGPA: 0x2000) : nil
        let taken = link.poll()
        let d = { (c: [StatsCounter], b: [UInt64], i: Int) in c[i].value &- b[i] }
        let rx = d(countersA, before.0, 0), badDesc = d(countersA, before.0, 4), badLen = d(countersA, before.0, 7)
        let tx = d(countersB, before.1, 2), noBuf = d(countersB, before.1, 5)
        if verbose {
            print("poll \(round): took \(taken) rx \(rx) tx \(tx) bad_desc \(badDesc) bad_length \(badLen) no_rx_buffer \(noBuf)")
        }
        guard taken >= 0, taken <= P2PDirection.burst else { fail("round \(round): poll took \(taken)") }
        guard srcQueue.state.pointee.lastAvail == srcLast &+ UInt16(taken) else { fail("round \(round): source last_avail") }
        guard rx + badDesc + badLen == UInt64(taken) else {
            fail("round \(round): took \(taken) but rx \(rx) + bad_desc \(badDesc) + bad_length \(badLen)")
        }
        guard tx + noBuf == rx else { fail("round \(round): rx \(rx) != tx \(tx) + no_rx_buffer \(noBuf)") }
        let srcPushed = Int(srcQueue.state.pointee.usedIdx &- srcUsed)
        guard srcPushed <= taken else { fail("round \(round): \(srcPushed) source used entries for \(taken) taken") }
        let dstTaken = Int(dstQueue.state.pointee.lastAvail &- dstLast)
        let dstPushed = Int(dstQueue.state.pointee.usedIdx &- dstUsed)
        guard dstPushed <= dstTaken, dstTaken <= Int(dstQueue.state.pointee.size) else {
            fail("round \(round): destination pushed \(dstPushed) used entries, consumed \(dstTaken)")
        }
        if strict && dstPushed > 0 && !reach!.chainsMayChange {
            // Every id given back must be a head the guest made available in the consumed slots.
            let dst = dstQueue.state.pointee
            let ringRewritten = availBefore != [UInt8](UnsafeRawBufferPointer(start: dst.avail!, count: availBytes))
            var offered: [UInt32] = (0..<dstTaken).map { i in
                let slot = Int((dstLast &+ UInt16(i)) & dst.mask)
                return UInt32(availBefore[4 + slot * 2]) | UInt32(availBefore[5 + slot * 2]) << 8
            }
            for k in 0..<dstPushed {
                let idOffset = 4 + Int((dstUsed &+ UInt16(k)) & dst.mask) * 8
                if reach!.touches(0x3400 + UInt64(idOffset), 4) { continue }   // a copy may have overwritten it
                let id = dst.used!.load(fromByteOffset: idOffset, as: UInt32.self)
                if ringRewritten {
                    guard id < UInt32(dst.size) else { fail("round \(round): RX id \(id) is not a descriptor") }
                    continue
                }
                guard let at = offered.firstIndex(of: id) else { fail("round \(round): RX chain \(id) returned but not offered (or twice)") }
                offered.remove(at: at)
            }
        }
        if taken == 0 { break }
    }
    return 0
}
