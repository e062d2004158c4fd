// libFuzzer target `dhcp4`: the DHCPv4 server and its lease store on a sequence of
// client messages — what a guest sends to UDP port 67 is untrusted input.
//
// Input: up to 16 messages, each [control, length (2 bytes, big-endian), bytes…].
// The control byte says how the bytes reach the server:
//   bits 0-1  IPv4 destination: 255.255.255.255, 169.254.0.1, 10.0.0.7, 0.0.0.0
//   bit  2    UDP source port 67 instead of 68
//   bit  3    Ethernet source is another MAC than the one in chaddr
//   bits 4-5  the port: unbound, bound to chaddr's MAC, bound to another MAC, static 10.0.0.5
//   bits 6-7  the clock moves 0, 60, 3600 or 100000 seconds before the message
// except 0xFF: the bytes are a whole Ethernet frame (parsed with ParsedFrame), and
// 0xFE as the first control byte: the rest of the input is a lease file to load.
// The bytes are otherwise a DHCP payload, wrapped in Ethernet/IPv4/UDP with valid checksums.
//
// Invariants (abort = a finding): never trap; a reply parses with ParsedFrame, comes
// from the router MAC and 169.254.0.1:67 to port 68, goes to the requester's MAC (or
// broadcast) and to an address of the subnet (or broadcast), is a BOOTREPLY for the
// requester's chaddr and xid, offers only addresses of the pool (the port's static one
// for a static port), with options 1, 3 and 54 as configured; events name the port and
// pool addresses; no address is bound to two MACs at once; every reply is counted.
// A lease file loads or is refused with a line inside it; loaded leases hold only
// addresses of the network, and allocation from them stays in the pool.
#if canImport(Glibc)
import Glibc
#endif
import Config
import Services

private func fail(_ what: String) -> Never {
    fputs("dhcp4 fuzz invariant broken: \(what)\n", stderr)
    abort()
}

private let router = MACAddress("02:00:00:00:00:fe")!
private let other = MACAddress("52:54:00:00:00:99")!
private let fixed = IPv4Address(10, 0, 0, 5)
private let network: NetworkServiceConfig = {
    var host = false
    return NetworkServiceConfig(name: "fuzz", ipv4Subnet: IPv4Prefix("10.0.0.0/28", hostBitsSet: &host),
                                dns4: [IPv4Address(10, 0, 0, 2)], domain: "fuzz.internal", leaseTime: 600, routerMAC: router)
}()

private func options(_ p: [UInt8]) -> [UInt8: [UInt8]]? {
    var out: [UInt8: [UInt8]] = [:]
    var i = 240
    while i < p.count {
        if p[i] == 0 { i += 1; continue }
        if p[i] == 255 { return out }
        guard i + 1 < p.count, i + 2 + Int(p[i + 1]) <= p.count else { return nil }
        out[p[i], default: []] += p[(i + 2)..<(i + 2 + Int(p[i + 1]))]
        i += 2 + Int(p[i + 1])
    }
    return nil
}

private func check(_ reply: ServiceReply, request: ParsedFrame, port: ServicePort, leases: LeaseStore, now: UInt64) {
    let pool = network.ipv4Subnet!
    for e in reply.events {
        switch e {
        case .bound4(let p, let m, let a), .released4(let p, let m, let a):
            if p != port.name { fail("event for port \(p), asked on \(port.name)") }
            if m != request.srcMAC { fail("event for \(m), asked by \(request.srcMAC)") }
            if !leases.inPool4(a) && a != port.staticIPv4 { fail("event with \(a) outside the pool") }
        default: fail("a DHCPv4 server sent an IPv6 event")
        }
    }
    if reply.frame != nil && reply.counters.isEmpty { fail("a reply nobody counts") }
    var seen: [IPv4Address: MACAddress] = [:]
    for l in leases.all where l.bound4(now: now) {
        if let prior = seen.updateValue(l.mac, forKey: l.ipv4!) { fail("\(l.ipv4!) bound to \(prior) and \(l.mac)") }
    }
    guard let bytes = reply.frame else { return }
    guard let f = ParsedFrame(bytes), case .ipv4(let src, let dst, _) = f.network,
          case .udp(let sp, let dp, _) = f.transport, let p = f.udpPayload.map(Array.init) else { fail("reply does not parse") }
    if f.srcMAC != router || src != .gateway || sp != 67 || dp != 68 { fail("reply from \(f.srcMAC) \(src):\(sp) to port \(dp)") }
    if f.dstMAC != request.srcMAC && f.dstMAC != Frames.broadcastMAC { fail("reply to \(f.dstMAC), asked by \(request.srcMAC)") }
    if dst.value != 0xFFFF_FFFF && !pool.contains(dst) { fail("reply to \(dst)") }
    guard p.count >= 240, p[0] == 2, let req = request.udpPayload.map(Array.init), req.count >= 44 else { fail("not a BOOTREPLY") }
    if p[4..<8] != req[4..<8] || p[28..<34] != req[28..<34] { fail("xid or chaddr not the request's") }
    let yiaddr = IPv4Address(Frames.u32(p, 16))
    if yiaddr.value != 0 && !leases.inPool4(yiaddr) && yiaddr != port.staticIPv4 { fail("yiaddr \(yiaddr) outside the pool") }
    if let s = port.staticIPv4, yiaddr.value != 0, yiaddr != s { fail("static port got \(yiaddr)") }
    guard let o = options(p), let type = o[53] else { fail("reply options do not parse") }
    if o[54] != IPv4Address.gateway.octets { fail("server identifier \(o[54] ?? [])") }
    if type != [6] && (o[1] != [255, 255, 255, 255] || o[3] != IPv4Address.gateway.octets) { fail("mask or router wrong") }
}

private let leaseFilePath = "/tmp/sluice-fuzz-dhcp4-leases-\(getpid())"

private func fuzzLeaseFile(_ bytes: [UInt8]) {
    guard let f = fopen(leaseFilePath, "wb") else { fail("cannot write \(leaseFilePath)") }
    defer { unlink(leaseFilePath) }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
    let lines = bytes.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    do {
        let store = try LeaseStore(network: network, path: leaseFilePath)
        var seen = Set<MACAddress>()
        for l in store.all {
            if !seen.insert(l.mac).inserted { fail("\(l.mac) loaded twice") }
            if let a = l.ipv4, !network.ipv4Subnet!.contains(a) { fail("loaded \(a) outside the subnet") }
            if l.ipv6 != nil { fail("an IPv6 address loaded into a network without a prefix") }
        }
        let now: UInt64 = 1_700_000_000
        _ = store.expire(now: now)
        for (n, l) in store.all.prefix(4).enumerated() {
            if let a = store.allocate4(mac: l.mac, port: "p\(n)", requested: nil, staticAddress: nil, now: now), !store.inPool4(a) {
                fail("allocated \(a) outside the pool from a loaded file")
            }
        }
    } catch let e as LeaseFileError {
        if e.line < 0 || e.line > lines { fail("error at line \(e.line) of a \(lines)-line file: \(e)") }
    } catch {
        fail("an error that is not a LeaseFileError: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    if input.first == 0xFE {
        fuzzLeaseFile(Array(input.dropFirst()))
        return 0
    }
    guard let leases = try? LeaseStore(network: network, path: nil) else { fail("in-memory store failed") }
    leases.reserveStatics([ServicePort(name: "vm-static", staticIPv4: fixed)])
    let server = DHCPv4Server(network: network, leases: leases)
    var now: UInt64 = 1_700_000_000
    var i = 0, messages = 0
    while i + 3 <= input.count && messages < 16 {
        let control = input[i]
        let length = min(Int(input[i + 1]) << 8 | Int(input[i + 2]), input.count - i - 3)
        let bytes = Array(input[(i + 3)..<(i + 3 + length)])
        i += 3 + length
        messages += 1
        now += [0, 60, 3600, 100_000][Int(control >> 6)]
        for e in leases.expire(now: now) {
            guard case .released4 = e else { fail("expiry produced \(e)") }
        }
        let chaddr = bytes.count >= 34 ? MACAddress(bytes: (bytes[28], bytes[29], bytes[30], bytes[31], bytes[32], bytes[33])) : other
        let port: ServicePort
        switch control >> 4 & 3 {
        case 0: port = ServicePort(name: "vm-free")
        case 1: port = ServicePort(name: "vm-bound", mac: chaddr)
        case 2: port = ServicePort(name: "vm-other", mac: other)
        default: port = ServicePort(name: "vm-static", mac: chaddr, staticIPv4: fixed)
        }
        let frame: ParsedFrame?
        if control == 0xFF {
            frame = ParsedFrame(bytes)
        } else {
            let dst = [IPv4Address(0xFFFF_FFFF), .gateway, IPv4Address(10, 0, 0, 7), IPv4Address(0)][Int(control & 3)]
            let srcMAC = control & 8 != 0 ? other : chaddr
            frame = ParsedFrame(Frames.udp4(srcMAC: srcMAC, dstMAC: Frames.broadcastMAC, src: IPv4Address(0), dst: dst,
                                            srcPort: control & 4 != 0 ? 67 : 68, dstPort: 67, payload: bytes))
            if frame == nil && bytes.count < 1400 { fail("a frame built by Frames.udp4 does not parse") }
        }
        guard let frame else { continue }
        let reply = server.handle(frame, port: port, now: now)
        check(reply, request: frame, port: port, leases: leases, now: now)
    }
    return 0
}
