// Writes the seed corpus of the `switch-classify` fuzz target (layout: Fuzz.swift).
//   swift tools/fuzz/switch-classify/make-seeds.swift tools/fuzz/corpus/switch-classify
import Foundation

let dir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "tools/fuzz/corpus/switch-classify"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

/// A compact-frame record: ingress `port`, flags, `dst`/`src` stations, tag byte, `rest` bytes of payload.
func compact(_ port: UInt8, _ flags: UInt8, dst: UInt8, src: UInt8, tag: UInt8 = 0, rest: Int = 46) -> [UInt8] {
    [port | flags | 0x10, UInt8(rest & 0xff), UInt8(rest >> 8), dst, src, tag]
        + (0..<rest).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(src)) }
}

/// A raw-frame record: `bytes` exactly as the guest sends them.
func raw(_ port: UInt8, _ flags: UInt8, _ bytes: [UInt8]) -> [UInt8] {
    [port | flags, UInt8(bytes.count & 0xff), UInt8(bytes.count >> 8)] + bytes
}

func frame(dst: [UInt8], src: [UInt8], tci: UInt16? = nil, length: Int) -> [UInt8] {
    var f = dst + src
    if let t = tci { f += [0x81, 0, UInt8(t >> 8), UInt8(t & 0xff)] }
    f += [0x08, 0x00]
    while f.count < length { f.append(UInt8(truncatingIfNeeded: f.count &* 13)) }
    return Array(f.prefix(length))
}

let poll: UInt8 = 4, tick: UInt8 = 8
let bcast: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
func st(_ n: UInt8) -> [UInt8] { [2, 0, 0, 0, 0, n] }

var seeds: [String: [UInt8]] = [:]

// Four access ports in VLAN 1: learn, then unicast both ways; 32 RX buffers per guest.
seeds["access-learning"] = [0, 0, 0, 0, 0, 0, 0, 0, 0x83]
    + compact(0, poll, dst: 0xff, src: 1) + compact(1, poll, dst: 0xff, src: 2)
    + compact(0, 0, dst: 2, src: 1) + compact(1, poll, dst: 1, src: 2) + compact(2, poll, dst: 9, src: 3)

// Access VLAN 1, access VLAN 2, trunk 1+2 with native 1, monitor: tagged and untagged traffic.
seeds["trunk-native-monitor"] = [0, 0, 2, 3, 0, 1, 0x0c, 0, 0x83]
    + compact(0, poll, dst: 0xff, src: 1) + compact(2, poll, dst: 0xff, src: 5, tag: 2)
    + compact(2, poll, dst: 1, src: 6) + compact(1, poll, dst: 5, src: 2) + compact(3, poll, dst: 0xff, src: 7)
    + compact(2, poll, dst: 0xff, src: 8, tag: 3) + compact(2, poll, dst: 0xfe, src: 8, tag: 0xa1)

// Two workers, a 2-slot hand-over ring; mac-lock on port 0, max-macs on port 1, flood-limit on port 2.
var busy: [UInt8] = [0x04, 0x88, 0x90, 0x80, 0, 0, 0, 0, 0x81]
for i in 0..<12 { busy += compact(UInt8(i % 3), i % 4 == 3 ? poll : 0, dst: 0xff, src: UInt8(1 + i % 5)) }
busy += compact(2, tick | poll, dst: 0xff, src: 3)
seeds["workers-security-limits"] = busy

// Raw frames of awkward lengths on a trunk (VLANs 1-4) and access ports; small MTU on port 3.
var rawSeed: [UInt8] = [1, 0, 0, 0x20, 0x3c, 0, 1, 0, 0x83]
for len in [0, 1, 13, 14, 17, 18, 21, 22, 60] {
    rawSeed += raw(0, 0, frame(dst: bcast, src: st(1), tci: 3, length: len))
}
rawSeed += raw(0, poll, frame(dst: bcast, src: st(1), length: 64))
rawSeed += raw(1, poll, frame(dst: st(1), src: st(2), length: 1514))
rawSeed += raw(1, poll, frame(dst: bcast, src: st(2), length: 1100))
rawSeed += raw(0, poll, frame(dst: bcast, src: st(1), tci: 1, length: 2048))
seeds["raw-lengths"] = rawSeed

// Jumbo MTU ports: frames around and above a buffer's data room.
var jumbo: [UInt8] = [0x40, 0x40, 0x41, 0x00, 0, 0, 0x04, 0, 0x83]
for len in [1500, 2030, 2044, 2048] { jumbo += raw(0, 0, frame(dst: bcast, src: st(1), length: len)) }
jumbo += raw(2, poll, frame(dst: bcast, src: st(3), tci: 1, length: 2048))
seeds["jumbo"] = jumbo

// MAC table churn: many stations, sweeps with flushes, clock ticks.
var churn: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0x83]
for i in 0..<40 {
    let flags: UInt8 = (i % 7 == 6 ? 0x20 | UInt8(i % 4) << 6 : 0) | (i % 5 == 4 ? tick : 0) | (i % 3 == 2 ? poll : 0)
    churn += compact(UInt8(i % 4), flags, dst: UInt8((i * 3) % 16), src: UInt8(i % 16), rest: 20)
}
seeds["table-churn"] = churn

for (name, bytes) in seeds { try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/\(name).bin")) }
print("\(seeds.count) seeds in \(dir)")
