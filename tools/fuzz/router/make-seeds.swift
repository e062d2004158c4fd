// Writes the seed corpus of the `router` fuzz target (layout: Fuzz.swift, compact
// records: Model.swift).
//   swift tools/fuzz/router/make-seeds.swift tools/fuzz/corpus/router
import Foundation

let dir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "tools/fuzz/corpus/router"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

// Kinds (Model.swift `Kind`).
let arpRequest: UInt8 = 0, arpOther: UInt8 = 1, echo4: UInt8 = 2, udp4: UInt8 = 3, dhcp4: UInt8 = 4, tcp4: UInt8 = 5,
    icmpError4: UInt8 = 6, echo6: UInt8 = 7, ns6: UInt8 = 8, rs6: UInt8 = 9, na6: UInt8 = 10, udp6: UInt8 = 11,
    dhcp6: UInt8 = 12, icmpError6: UInt8 = 13, tagged4: UInt8 = 14, other: UInt8 = 15
let df: UInt8 = 0x10, corrupt: UInt8 = 0x20, fragment: UInt8 = 0x40, options: UInt8 = 0x80
// Address selectors: port k's address, inside the routed prefix, the gateway, unspecified,
// broadcast / all-nodes, the global router address, unassigned, outside every route, link-local.
func portAddr(_ k: UInt8) -> UInt8 { k << 4 }
let inRouted: UInt8 = 0x45, gateway: UInt8 = 0x60, unspecified: UInt8 = 0x70, broadcast: UInt8 = 0x80,
    globalRouter: UInt8 = 0x90, unassigned: UInt8 = 0xA3, outside: UInt8 = 0xB1, linkLocal: UInt8 = 0xC5
// MAC selector: source bits 0-2 (0 the port's station, 1 a second station, 2 another port's,
// 3 broadcast, 4 zero, 5 the router's), destination bits 3-5 (0 the router, 3 broadcast,
// 4 multicast, 5 another station).
let toRouter: UInt8 = 0, toBroadcast: UInt8 = 3 << 3, toMulticast: UInt8 = 4 << 3, toStation: UInt8 = 5 << 3
// TTL: 0-3 pick 0, 1, 2, 64.
let ttl0: UInt8 = 0, ttl1: UInt8 = 1, ttl64: UInt8 = 3
// Size selector: 0 headers + (lo & 31), 1 around port (sel >> 2)'s MTU, 2 around 1294, 3 headers + lo;
// + 0x20 with 3: cut inside the headers; + 0x10: Ethernet padding.
func nearMTU(_ port: UInt8) -> UInt8 { 1 | port << 2 }

let poll: UInt8 = 4, tick: UInt8 = 8, drainPunts: UInt8 = 0x40, goAway: UInt8 = 0x80

func rec(_ port: UInt8, _ flags: UInt8, _ kind: UInt8, macs: UInt8 = 0, src: UInt8, dst: UInt8, ttl: UInt8 = ttl64,
         lo: UInt8 = 8, sel: UInt8 = 0, seed: UInt8 = 1) -> [UInt8] {
    [port | flags | 0x10, kind, macs, src, dst, ttl, lo, sel, seed]
}

func raw(_ port: UInt8, _ flags: UInt8, _ bytes: [UInt8]) -> [UInt8] {
    [port | flags, UInt8(bytes.count & 0xff), UInt8(bytes.count >> 8)] + bytes
}

var seeds: [String: [UInt8]] = [:]

// Four learning ports, MTU 1500, 36 RX buffers each: every port says hello (ARP, echo),
// then routed traffic both ways in v4 and v6, the routed prefixes on port 1.
var basic: [UInt8] = [0x10, 0x00, 0x04 | 0x18]
for p in UInt8(0)..<4 {
    basic += rec(p, poll, arpRequest, macs: toBroadcast, src: portAddr(p), dst: gateway)
    basic += rec(p, poll, echo4, src: portAddr(p), dst: gateway, seed: p)
    basic += rec(p, poll, echo6, src: portAddr(p), dst: gateway, seed: p)
}
basic += rec(0, 0, udp4, src: portAddr(0), dst: portAddr(1))
basic += rec(1, 0, udp4, src: inRouted, dst: portAddr(0))
basic += rec(2, 0, tcp4, src: portAddr(2), dst: inRouted)
basic += rec(3, poll, udp6, src: portAddr(3), dst: portAddr(2))
basic += rec(1, poll, udp6, src: inRouted, dst: portAddr(3))
basic += rec(0, poll, tcp4, src: portAddr(0), dst: portAddr(3), lo: 0, sel: 2)
// Port 3's guest goes away; the next one comes with another MAC.
basic += rec(3, goAway, udp4, src: portAddr(3), dst: portAddr(0))
basic += rec(3, poll, udp4, macs: 1, src: portAddr(3), dst: portAddr(0))
basic += rec(0, poll, udp4, src: portAddr(0), dst: portAddr(3))
seeds["learn-answer-route"] = basic

// Configured MACs on ports 0 and 2, the global IPv6 address, two workers: DHCP and ND punted
// (a small punt ring), echo to the global address, spoofed senders and sources.
var punts: [UInt8] = [0x05 | 0x40 | 0x80, 0x00, 0x04 | 0x08]
punts += rec(0, 0, dhcp4, macs: toBroadcast, src: unspecified, dst: broadcast)
punts += rec(1, 0, dhcp4, macs: toBroadcast, src: unspecified, dst: broadcast)
punts += rec(2, 0, rs6, macs: toMulticast, src: linkLocal, dst: broadcast)
punts += rec(3, 0, ns6, macs: toMulticast, src: linkLocal, dst: broadcast)
punts += rec(0, poll, na6, macs: toMulticast, src: linkLocal, dst: broadcast)
punts += rec(1, poll | drainPunts, dhcp6, macs: toMulticast, src: linkLocal, dst: broadcast)
punts += rec(2, poll, echo6, src: portAddr(2), dst: globalRouter)
punts += rec(0, poll, udp4, macs: 2, src: portAddr(0), dst: portAddr(1))         // another port's MAC
punts += rec(0, poll, udp4, macs: 1, src: portAddr(0), dst: portAddr(1))         // not the configured MAC
punts += rec(3, poll, udp4, src: portAddr(1), dst: portAddr(0))                  // spoofed source address
punts += rec(3, poll, udp4, macs: 3, src: portAddr(3), dst: portAddr(0))         // broadcast source MAC
punts += rec(1, poll | drainPunts, udp6, macs: toStation, src: portAddr(1), dst: portAddr(0))
seeds["punts-spoofing"] = punts

// ICMP errors: TTL 1 and 0, no route, unbound destination, too big with and without DF, on
// ports of MTU 1500, 1280, 9000 and 576; errors about errors; fragments; the rate limit.
var errors: [UInt8] = [0x30, 0b11_10_01_00, 0x07]
for p in UInt8(0)..<4 { errors += rec(p, poll, udp4, src: portAddr(p), dst: gateway) }   // binds every port
errors += rec(0, poll, udp4, src: portAddr(0), dst: portAddr(1), ttl: ttl1)
errors += rec(0, poll, udp6, src: portAddr(0), dst: portAddr(1), ttl: ttl0)
errors += rec(1, poll, udp4, src: portAddr(1), dst: unassigned)
errors += rec(1, poll, udp6, src: portAddr(1), dst: outside)
errors += rec(2, poll, udp4 | df, src: portAddr(2), dst: portAddr(3), lo: 7, sel: nearMTU(3))
errors += rec(2, poll, udp4, src: portAddr(2), dst: portAddr(3), lo: 9, sel: nearMTU(3))
errors += rec(2, poll, udp6, src: portAddr(2), dst: portAddr(1), lo: 11, sel: nearMTU(1))
errors += rec(2, poll, udp6, src: portAddr(2), dst: portAddr(3), lo: 3, sel: 2)
errors += rec(0, poll, icmpError4, src: portAddr(0), dst: unassigned)
errors += rec(0, poll, icmpError6, src: portAddr(0), dst: outside)
errors += rec(0, poll, udp4 | fragment, src: portAddr(0), dst: unassigned)
errors += rec(0, poll, udp4 | options, src: portAddr(0), dst: portAddr(2), ttl: ttl1)
for i in 0..<110 { errors += rec(UInt8(i % 4), i % 8 == 7 ? poll : 0, udp4, src: portAddr(UInt8(i % 4)), dst: unassigned) }
errors += rec(3, poll | tick, udp4, src: portAddr(3), dst: unassigned)
seeds["icmp-errors"] = errors

// Malformed headers, cut frames, VLAN tags, unknown EtherTypes, corrupt checksums, echo
// checksums near 0xFFFF, padding, and raw frames of awkward lengths.
var broken: [UInt8] = [0x02, 0x00, 0x24]
broken += rec(0, 0, udp4 | corrupt, src: portAddr(0), dst: portAddr(1))
broken += rec(0, 0, echo4 | corrupt, src: portAddr(0), dst: gateway)
broken += rec(1, 0, echo6 | corrupt, src: portAddr(1), dst: gateway)
broken += rec(1, 0, udp6 | corrupt, src: portAddr(1), dst: portAddr(0))
for cut in UInt8(0)..<6 { broken += rec(cut % 3, 0, [udp4, udp6, arpRequest][Int(cut % 3)], src: portAddr(cut % 3), dst: gateway, lo: cut * 7, sel: 0x23) }
broken += rec(2, 0, tagged4, src: portAddr(2), dst: portAddr(0))
broken += rec(2, 0, other | fragment, src: portAddr(2), dst: portAddr(0))
broken += rec(2, 0, arpOther, src: portAddr(2), dst: gateway, seed: 0x0d)
for s in [0x00, 0x7f, 0x80, 0xff] as [UInt8] { broken += rec(0, 0, echo4, src: portAddr(0), dst: gateway, seed: s) }
broken += rec(1, poll, echo4, src: portAddr(1), dst: gateway, lo: 0xf0, sel: 0x10)
for len in [0, 13, 14, 33, 41, 53, 60, 1514, 1518, 1519] {
    var f = [UInt8](repeating: 0x45, count: len)
    if len >= 14 { f.replaceSubrange(0..<6, with: [0x02, 0x52, 0x54, 0x00, 0xAA, 0x01]); f.replaceSubrange(6..<12, with: [2, 0, 0, 0, 0, 1]); f[12] = 8; f[13] = 0 }
    broken += raw(0, 0, f)
}
broken += raw(1, poll, [])
seeds["malformed"] = broken

for (name, bytes) in seeds { try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/\(name).bin")) }
print("\(seeds.count) seeds in \(dir)")
