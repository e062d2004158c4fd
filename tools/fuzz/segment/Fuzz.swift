// libFuzzer target `segment`: what an af-packet port does with a frame the host
// kernel hands it with a virtio-net header (PACKET_VNET_HDR) — cutting a TSO/GSO
// super-frame into segments (`Segmentation.cut`, resumed whenever the batch fills)
// and completing a partial checksum (`completeChecksum`). Both read offsets and
// sizes that a peer's stack chose, so they must never read or write outside the
// frame or a packet buffer.
//
// Input layout:
//   byte 0      GSO type (low 3 bits: none, TCPv4, UDP, TCPv6, …; bit 7 ECN) — mostly a known one
//   byte 1      vnet flags (bit 0 NEEDS_CSUM)
//   bytes 2-3   gso_size (LE)    bytes 4-5 csum_start (LE)    bytes 6-7 csum_offset (LE)
//   bytes 8-    the frame (at most 65,600 bytes)
//
// Invariants (abort = a finding): every segment is 14…2048 bytes and starts with the
// frame's own MAC header; a cut makes progress or finishes (no endless resume); the
// segments' payload adds up to what the super-frame carried after its headers; every
// buffer goes back to the pool. ASan checks every access.
#if canImport(Glibc)
import Glibc
#endif
import Memory
import Platform
import Ports
import Stats

private func fail(_ what: String) -> Never {
    fputs("segment fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private let pool: Mempool = {
    do { return try Mempool(name: "fuzz-seg", count: 256, caches: 1, policy: .off) } catch { fail("mempool: \(error)") }
}()
private let ctx = WorkerContext(worker: 0, cache: pool.cache(0), now: 1, eventMode: false, allocFail: .discard)
private let counters = PortCounters.discard

@_cdecl("LLVMFuzzerTestOneInput")
public func segmentFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 8, size - 8 <= 65_600 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    func le16(_ at: Int) -> UInt16 { UInt16(input[at]) | UInt16(input[at + 1]) << 8 }
    let known: [UInt8] = [ReceivedFrame.gsoTCPv4, ReceivedFrame.gsoTCPv6, ReceivedFrame.gsoUDPL4]
    let type = input[0] & 0x80 != 0 ? input[0] & 0x7f : known[Int(input[0]) % 3] | (input[0] & 0x40 != 0 ? ReceivedFrame.gsoECN : 0)
    // The frame in its own allocation, so ASan sees any access past its end.
    let length = size - 8
    let frame = UnsafeMutableRawPointer.allocate(byteCount: max(1, length), alignment: 16)
    defer { frame.deallocate() }
    if length > 0 { frame.copyMemory(from: data + 8, byteCount: length) }
    let f = ReceivedFrame(bytes: frame, length: length, wireLength: length, vnetFlags: input[1], gsoType: type,
                          gsoSize: le16(2), csumStart: le16(4), csumOffset: le16(6))
    let inUse = pool.inUse

    // The checksum completion on a frame that is not cut.
    completeChecksum(frame: frame, length: length, start: Int(f.csumStart), offset: Int(f.csumOffset))

    var start = 0, rounds = 0, payload = 0
    let headers = Segmentation.headers(f)
    while true {
        rounds += 1
        if rounds > 70_000 { fail("cut does not finish (resume at \(start))") }
        var batch = PacketBatch()
        let cut = Segmentation.cut(f, from: start, into: &batch, ctx, counters)
        if cut.segments != batch.count { fail("cut says \(cut.segments) segments, batch holds \(batch.count)") }
        for i in 0..<batch.count {
            let p = batch[i]
            let n = pool.ref.length(p)
            guard n >= 14, n <= BufferLayout.dataRoom else { fail("segment of \(n) bytes") }
            if memcmp(pool.ref.frame(p), frame, 12) != 0 { fail("segment \(i) has other MAC addresses") }
            if let h = headers { payload += n - h.end }
        }
        let count = batch.count
        batch.withIndices { ctx.cache.free($0, count) }
        if cut.finished { break }
        if cut.resume <= start { fail("resume \(cut.resume) does not move past \(start)") }
        start = cut.resume
    }
    if let h = headers, rounds > 1 || payload > 0, payload != length - h.end {
        fail("segments carry \(payload) payload bytes, the frame \(length - h.end)")
    }
    if pool.inUse != inUse { fail("\(pool.inUse - inUse) buffers not returned") }
    return 0
}
