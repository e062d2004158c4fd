// libFuzzer target `switch-classify`: the learning switch's datapath
// (`SwitchPortQueue.poll`: VLAN classification, learning, lookup, flood, mirror,
// port security, MTU, tagging, hand-over between workers) over four mock vhost
// guests, with frames the input makes up.
//
// Every port is a guest with its own memfd-backed memory; frames are posted to its
// TX ring (so they enter through the real `VhostRx`) and what the switch sends it is
// read back from its RX ring.
//
// Input layout:
//   bytes 0-3   one per port: bits 0-1 kind (0 access, 1 trunk, 2 trunk with a
//               native VLAN, 3 monitor), bit 2 mac-lock, bit 3 max-macs 2,
//               bit 4 flood-limit 4/s, bit 5 mtu 1000 (else 1500), bit 6 mtu 9000,
//               bit 7 owned by worker 1 (else worker 0)
//   bytes 4-7   one per port: access VLAN 1 + (b & 3); a trunk carries VLAN 1 + k
//               for each set bit k of (b >> 2) & 0xf (and 4094 when b & 0x40);
//               native VLAN: the lowest it carries
//   byte  8     bits 0-2: log2 of the inbound ring size (1…128); bits 3-7: guest RX
//               buffers per port (0…31 × 2)
//   then records, each: op, len_lo, len_hi, then bytes
//     op bits 0-1  ingress port
//     op bit 2     poll every port after posting
//     op bit 3     advance the clock by 0.3 s
//     op bit 4     compact frame: the bytes are [dst station, src station, tag, …]
//                  (station 0xff broadcast, 0xfe multicast, else 02:00:00:00:00:ss;
//                  tag != 0: an 802.1Q tag with VID tag & 7 and PCP tag >> 5)
//                  followed by the rest of the frame
//     op bit 5     sweep the MAC table (aging 1 s) flushing port (op >> 6) first
//     length       (len_hi << 8 | len_lo) % 2049 bytes of frame (or of the rest
//                  in compact mode), fewer if the input ends
//
// Invariants (abort = a finding): no crash or ASan report; after draining every
// ring, every mempool buffer is back (inUse at its baseline, nothing left staged);
// every frame a guest receives is one that was sent, transformed exactly as its
// VLAN says (untagged at an access port or a trunk's native VLAN, tagged with its
// VLAN at a trunk or a monitor), never delivered to its ingress port, only to a port
// that carries its VLAN, never twice to one port; nothing a monitor sends is
// delivered; every live MAC table entry is on a port that carries its VLAN, and the
// table's counts equal its live entries after a sweep.
#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Memory
import Platform
import Ports
import Stats
import Switching
import Virtio
import FuzzGuest

private func fail(_ what: String) -> Never {
    fputs("switch-classify fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private let portCount = 4


private let guests = (0..<portCount).map { FuzzGuest("fuzz-switch-\($0)") }
private let pool: Mempool = {
    do { return try Mempool(name: "fuzz-switch", count: 2048, caches: 2, policy: .off) } catch { fail("mempool: \(error)") }
}()
private let stats: StatsWriter = {
    do {
        let w = try StatsWriter(path: "/tmp/sluice-fuzz-switch-\(getpid()).stats", slots: 2)
        w.remove()
        return w
    } catch { fail("stats: \(error)") }
}()
private func counter(_ name: String, slot: Int) -> StatsCounter {
    do { return stats.counter(try stats.lookup(name) ?? stats.register(name), slot: slot) } catch { fail("register: \(error)") }
}
private let portCounters: [[PortCounters]] = (0..<2).map { w in
    (0..<portCount).map { p in PortCounters(PortCounters.names.map { counter("port.p\(p).\($0)", slot: w) }) }
}
private let switchCounters = (0..<2).map { w in SwitchCounters(SwitchCounters.names.map { counter("switch.\($0)", slot: w) }) }
private let allocFail = (0..<2).map { counter("alloc_fail", slot: $0) }
private let segs = (0..<(2 * portCount)).map { _ in SegmentList.allocate() }
private let tableCapacity = 64
private let tableEntries: UnsafeMutableRawPointer = .allocate(byteCount: tableCapacity * 16, alignment: 64)
private let tableCounts: UnsafeMutableRawPointer = .allocate(byteCount: MacTable.countsBytes(ports: portCount), alignment: 64)
private let rings = (0..<8).map { k in (0..<portCount).map { _ in IndexRing.create(capacity: 1 << k, producers: .multi, consumers: .single) } }

/// A frame as sent, and the VLAN the switch must give it (nil: it must be dropped).
private struct Sent {
    var ingress: Int
    var bytes: [UInt8]
    var vlan: UInt16?
    var tagged: Bool
    var deliveredTo: Set<Int> = []
}

private struct Config {
    var infos: [SwitchPortInfo] = []
    var members: [[Int]] = []
    var owner: [Int] = []

    func carries(_ p: Int, _ v: UInt16) -> Bool { members[p].contains(Int(v)) }

    /// What the ingress side of port `p` must make of `f` (VhostRx, then classification).
    func classify(_ f: [UInt8], at p: Int) -> (vlan: UInt16?, tagged: Bool) {
        let info = infos[p]
        let limit = min(info.maxFrame + 4, BufferLayout.dataRoom)
        if f.count < 14 || f.count > limit || info.monitor { return (nil, false) }
        if f[12] == 0x81 && f[13] == 0x00 {
            guard f.count >= 18 else { return (nil, true) }
            let vid = (UInt16(f[14]) << 8 | UInt16(f[15])) & 0xfff
            if vid == 0 {   // a priority tag: untagged as far as VLANs go
                if info.trunk { return (info.nativeVLAN == 0 ? nil : info.nativeVLAN, true) }
                return (info.accessVLAN, true)
            }
            guard info.trunk, carries(p, vid) else { return (nil, true) }
            return (vid, true)
        }
        if info.trunk { return (info.nativeVLAN == 0 ? nil : info.nativeVLAN, false) }
        return (info.accessVLAN, false)
    }
}

private func tag(_ f: [UInt8], _ vid: UInt16) -> [UInt8] {
    Array(f[0..<12]) + [0x81, 0x00, UInt8(vid >> 8), UInt8(vid & 0xff)] + Array(f[12...])
}

private func buildConfig(_ input: UnsafeRawBufferPointer) -> Config {
    var c = Config()
    for p in 0..<portCount {
        let k = input[p], v = input[4 + p]
        let kind = k & 3
        var vlans: [Int] = []
        for bit in 0..<4 where (v >> (2 + bit)) & 1 != 0 { vlans.append(1 + bit) }
        if v & 0x40 != 0 { vlans.append(4094) }
        let trunk = kind == 1 || kind == 2
        let native: UInt16 = kind == 2 ? UInt16(vlans.first ?? 0) : 0
        let access = UInt16(1 + (v & 3))
        let mtu = k & 0x40 != 0 ? 9000 : (k & 0x20 != 0 ? 1000 : 1500)
        let lockedMAC: UInt64 = k & 4 != 0 && kind != 3 ? 0x0200_0000_0000 | UInt64(p + 1) : 0
        c.infos.append(SwitchPortInfo(accessVLAN: trunk || kind == 3 ? 0 : access, nativeVLAN: native, trunk: trunk,
                                      monitor: kind == 3, lockedMAC: lockedMAC, maxMACs: k & 8 != 0 ? 2 : .max,
                                      maxFrame: mtu + 14, floodLimit: k & 0x10 != 0 ? 4 : 0))
        c.members.append(kind == 3 ? [] : trunk ? vlans : [Int(access)])
        c.owner.append(Int(k >> 7))
    }
    return c
}

private func station(_ s: UInt8) -> [UInt8] {
    switch s {
    case 0xff: return [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
    case 0xfe: return [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]
    default: return [0x02, 0, 0, 0, 0, s & 0x0f]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func switchClassifyFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzTargetName = "switch-classify"
    guard let data, size >= 9 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let config = buildConfig(input)
    let workers = config.owner.contains(1) ? 2 : 1
    let ringSet = rings[Int(input[8] & 7)]
    let rxCount = Int(input[8] >> 3) * 2
    for g in guests { g.reset(rxCount: rxCount) }
    tableEntries.initializeMemory(as: UInt8.self, repeating: 0, count: tableCapacity * 16)
    tableCounts.initializeMemory(as: UInt8.self, repeating: 0, count: MacTable.countsBytes(ports: portCount))
    let table = MacTable(entries: tableEntries, capacity: tableCapacity, counts: tableCounts, limit: 24)
    let shared = UnsafeMutablePointer<SwitchShared>.allocate(capacity: 1)
    shared.initialize(to: SwitchShared(ports: config.infos, members: config.members, table: table))
    var views: [UnsafeMutablePointer<SwitchWorkerView>] = []
    for w in 0..<workers {
        let routes: [SwitchRoute] = (0..<portCount).map { p in
            config.owner[p] == w ? .local(.vhost(VhostTx(queue: guests[p].rx, segs: segs[2 * p + 1])), fallback: nil, wakeFD: -1)
                : .remote(ringSet[p], wakeFD: -1)
        }
        let v = UnsafeMutablePointer<SwitchWorkerView>.allocate(capacity: 1)
        v.initialize(to: SwitchWorkerView(routes: routes, portCounters: portCounters[w], counters: switchCounters[w]))
        views.append(v)
    }
    let queues = (0..<portCount).map { p in
        SwitchPortQueue(shared: shared, view: views[config.owner[p]], port: p,
                        rx: .vhost(VhostRx(queue: guests[p].tx, segs: segs[2 * p], maxFrame: config.infos[p].maxFrame + 4)),
                        tx: .vhost(VhostTx(queue: guests[p].rx, segs: segs[2 * p + 1])),
                        inbound: workers > 1 ? ringSet[p] : nil)
    }
    defer {
        for q in queues { q.release() }
        for v in views { v.deinitialize(count: 1); v.deallocate() }
        shared.pointee.deallocate()
        shared.deinitialize(count: 1)
        shared.deallocate()
    }
    let baseline = pool.inUse
    var now: UInt64 = 100_000_000_000
    var sent: [Sent] = []
    var byStamp: [UInt32: Int] = [:]

    func check(_ f: [UInt8], at q: Int) {
        // Which frame is it? Stamped frames by their last 4 bytes, short ones by content.
        var candidates: [Int] = []
        if f.count >= 18 {   // a stamped frame (22 bytes or more) less its tag
            let s = UInt32(f[f.count - 4]) << 24 | UInt32(f[f.count - 3]) << 16 | UInt32(f[f.count - 2]) << 8 | UInt32(f[f.count - 1])
            if let i = byStamp[s] { candidates.append(i) }
        }
        candidates += sent.indices.filter { sent[$0].bytes.count < 22 }
        // Identical bytes may have been sent more than once (short frames, or frames
        // that differ only in a tag): the frame is explained by any candidate that
        // was allowed to arrive here and has not arrived here yet.
        let info = config.infos[q]
        var problem: String? = nil
        for i in candidates {
            let s = sent[i]
            guard let v = s.vlan else { continue }
            let base = s.tagged ? Array(s.bytes[0..<12] + s.bytes[16...]) : s.bytes
            let expected = info.monitor || (info.trunk && v != info.nativeVLAN) ? tag(base, v) : base
            guard expected == f else { continue }
            if s.ingress == q && !info.monitor {
                problem = problem ?? "frame \(i) went back to its ingress port \(q)"; continue
            }
            if !info.monitor && !config.carries(q, v) {
                problem = problem ?? "frame \(i) of VLAN \(v) left on port \(q), which does not carry it"; continue
            }
            if s.deliveredTo.contains(q) { problem = problem ?? "frame \(i) delivered twice to port \(q)"; continue }
            sent[i].deliveredTo.insert(q)
            return
        }
        if let problem { fail(problem) }
        let hex = { (b: [UInt8]) in b.prefix(40).map { String($0, radix: 16) }.joined(separator: " ") }
        let near = candidates.first.map { "; first candidate (port \(sent[$0].ingress), VLAN \(String(describing: sent[$0].vlan))): \(hex(sent[$0].bytes))" } ?? ""
        fail("port \(q) received \(f.count) bytes that no accepted frame explains: \(hex(f))\(near)")
    }

    func pollAll(drain: Bool) {
        var rounds = 0
        repeat {
            var work = 0
            for p in 0..<portCount {
                let w = config.owner[p]
                let ctx = WorkerContext(worker: w, cache: pool.cache(w), now: now, eventMode: false, allocFail: allocFail[w])
                work += queues[p].poll(ctx)
            }
            for q in 0..<portCount { for f in guests[q].takeReceived() { check(f, at: q) } }
            rounds += 1
            if work == 0 { break }
            if rounds > 1000 { fail("polling does not settle") }
        } while drain || guests.contains(where: { $0.txPending > 0 })
    }

    var at = 9
    var seq: UInt32 = 0
    while at + 3 <= size {
        let op = input[at]
        let length = (Int(input[at + 2]) << 8 | Int(input[at + 1])) % 2049
        at += 3
        let take = min(length, size - at)
        var frame: [UInt8]
        if op & 0x10 != 0 {
            var hdr: [UInt8] = [0xff, 0x01, 0]
            for k in 0..<3 where at + k < size { hdr[k] = input[at + k] }
            let used = min(3, size - at)
            at += used
            let rest = min(length, size - at)
            frame = station(hdr[0]) + station(hdr[1])
            if hdr[2] != 0 { frame += [0x81, 0x00, (hdr[2] >> 5) << 5, hdr[2] & 7] }
            frame += [0x08, 0x00]
            frame += UnsafeRawBufferPointer(rebasing: input[at..<(at + rest)])
            at += rest
        } else {
            frame = [UInt8](UnsafeRawBufferPointer(rebasing: input[at..<(at + take)]))
            at += take
        }
        let p = Int(op & 3)
        if guests[p].txPending >= Int(queueSize) - 1 { pollAll(drain: false) }
        if guests[p].txPending >= Int(queueSize) - 1 { continue }   // the port takes nothing now (no buffers)
        seq &+= 1
        if frame.count >= 22 {
            // A stamp that identifies the frame wherever it arrives (the switch never touches the tail).
            let s = 0x5A00_0000 | seq
            for k in 0..<4 { frame[frame.count - 4 + k] = UInt8(truncatingIfNeeded: s >> (24 - 8 * UInt32(k))) }
            byStamp[s] = sent.count
        }
        let c = config.classify(frame, at: p)
        sent.append(Sent(ingress: p, bytes: frame, vlan: c.vlan, tagged: c.tagged))
        if op & 8 != 0 { now += 300_000_000 }
        guests[p].postTX(frame)
        if op & 4 != 0 { pollAll(drain: false) }
        if op & 0x20 != 0 {
            pollAll(drain: false)
            let flush = Int(op >> 6)
            _ = table.sweep(now: UInt32(now / 1_000_000_000), aging: 1, ports: portCount) { $0 == flush }
        }
    }
    pollAll(drain: true)

    // Every buffer is back, nothing is left staged or queued.
    for r in ringSet where r.count != 0 { fail("inbound ring left with \(r.count) frames") }
    for v in views { for p in 0..<portCount where v.pointee.staged[p].count != 0 { fail("frames left staged for port \(p)") } }
    guard pool.inUse == baseline else { fail("mempool: \(pool.inUse - baseline) buffers not returned") }
    // The table: entries only where their VLAN is carried; counts match after a sweep.
    _ = table.sweep(now: UInt32(now / 1_000_000_000), aging: 0, ports: portCount) { _ in false }
    var live = 0
    var perPort = [Int](repeating: 0, count: portCount)
    for i in 0..<tableCapacity {
        let k = tableEntries.load(fromByteOffset: i * 16, as: UInt64.self)
        let v = tableEntries.load(fromByteOffset: i * 16 + 8, as: UInt64.self)
        guard k != 0, k != ~0, v & 0xffff != 0 else { continue }
        let port = Int(v & 0xffff) - 1
        let vlan = UInt16(k >> 48)
        guard port < portCount, !config.infos[port].monitor, config.carries(port, vlan) else {
            fail("MAC table entry \(String(k, radix: 16)) on port \(port), which does not carry VLAN \(vlan)")
        }
        live += 1
        perPort[port] += 1
    }
    guard table.count == live, (0..<portCount).allSatisfy({ table.count(port: $0) == perPort[$0] }) else {
        fail("MAC table counts \(table.count) \((0..<portCount).map { table.count(port: $0) }) != live \(live) \(perPort)")
    }
    return 0
}
