// Writes the seed corpus of the `desc-chain` fuzz target (layout: Fuzz.swift).
// Run by hand: swift tools/fuzz/desc-chain/make-seeds.swift tools/fuzz/corpus/desc-chain
#if canImport(Glibc)
import Glibc
#endif

let srcDesc = 0x0000, srcAvail = 0x1000, dstDesc = 0x2000, dstAvail = 0x3000, data = 0x4000
let next: UInt16 = 1, write: UInt16 = 2, indirect: UInt16 = 4

struct Seed {
    var image = [UInt8](repeating: 0, count: 0x4000)
    var control: [UInt8]

    init(srcLog: UInt8 = 8, dstLog: UInt8 = 8, flags: UInt8, head: UInt16 = 0, srcIdx: UInt16, dstIdx: UInt16) {
        control = [srcLog, dstLog, flags, UInt8(head & 0xff), UInt8(head >> 8),
                   UInt8(srcIdx & 0xff), UInt8(srcIdx >> 8), UInt8(dstIdx & 0xff), UInt8(dstIdx >> 8)]
    }

    mutating func put(_ bytes: [UInt8], at: Int) {
        if image.count < at + bytes.count { image += [UInt8](repeating: 0, count: at + bytes.count - image.count) }
        image.replaceSubrange(at..<(at + bytes.count), with: bytes)
    }

    mutating func put16(_ v: UInt16, at: Int) { put([UInt8(v & 0xff), UInt8(v >> 8)], at: at) }

    mutating func desc(table: Int, _ i: Int, addr: Int, len: Int, flags: UInt16 = 0, next n: UInt16 = 0) {
        var b: [UInt8] = []
        for k in 0..<8 { b.append(UInt8((addr >> (8 * k)) & 0xff)) }
        for k in 0..<4 { b.append(UInt8((len >> (8 * k)) & 0xff)) }
        b += [UInt8(flags & 0xff), UInt8(flags >> 8), UInt8(n & 0xff), UInt8(n >> 8)]
        put(b, at: table + 16 * i)
    }

    /// RX buffers 0..<count of `size` bytes, outside the image (zeroed memory), all made available.
    mutating func rxBuffers(_ count: Int, size: Int) {
        for i in 0..<count {
            desc(table: dstDesc, i, addr: 0x8000 + i * size, len: size, flags: write)
            put16(UInt16(i), at: dstAvail + 4 + 2 * i)
        }
    }

    var bytes: [UInt8] { control + image }
}

func frame(_ n: Int) -> [UInt8] {
    [0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x00] + (14..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) }
}

/// Ethernet + IPv4 + UDP with the pseudo-header sum in the checksum field.
func udpFrame(payload: Int) -> [UInt8] {
    var f: [UInt8] = [0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x00]
    let l4 = 8 + payload
    f += [0x45, 0, UInt8((20 + l4) >> 8), UInt8((20 + l4) & 0xff), 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
    f += [0x04, 0xd2, 0x16, 0x2e, UInt8(l4 >> 8), UInt8(l4 & 0xff), 0x14, 0x2c]
    f += (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
    return f
}

var seeds: [(String, Seed)] = []

// One 64-byte frame, one buffer each side.
var s = Seed(flags: 0x04, srcIdx: 1, dstIdx: 4)
s.put([UInt8](repeating: 0, count: 12) + frame(64), at: data)
s.desc(table: srcDesc, 0, addr: data, len: 76)
s.rxBuffers(4, size: 2048)
seeds.append(("one-frame", s))

// Header apart and the frame in an indirect table; RX through an indirect table too.
s = Seed(flags: 0x05, srcIdx: 1, dstIdx: 1)
s.put([UInt8](repeating: 0, count: 12) + frame(100), at: data)
s.desc(table: data + 0x800, 0, addr: data, len: 12, flags: next, next: 1)
s.desc(table: data + 0x800, 1, addr: data + 12, len: 30, flags: next, next: 2)
s.desc(table: data + 0x800, 2, addr: data + 42, len: 70)
s.desc(table: srcDesc, 0, addr: data + 0x800, len: 48, flags: indirect)
s.desc(table: data + 0x900, 0, addr: 0x8000, len: 1024, flags: write | next, next: 1)
s.desc(table: data + 0x900, 1, addr: 0x9000, len: 1024, flags: write)
s.desc(table: dstDesc, 0, addr: data + 0x900, len: 32, flags: indirect)
seeds.append(("indirect-both", s))

// Three full-size frames to a mergeable receiver with 512-byte buffers.
s = Seed(flags: 0x14, srcIdx: 3, dstIdx: 16)
s.put([UInt8](repeating: 0, count: 12) + frame(1518), at: data)
for i in 0..<3 {
    s.desc(table: srcDesc, i, addr: data, len: 1530)
    s.put16(UInt16(i), at: srcAvail + 4 + 2 * i)
}
s.rxBuffers(16, size: 512)
seeds.append(("mergeable-burst", s))

// A UDP frame with NEEDS_CSUM to a receiver without GUEST_CSUM, 10-byte sender header.
s = Seed(flags: 0x44, srcIdx: 1, dstIdx: 2)
s.put([1, 0, 0, 0, 0, 0, 34, 0, 6, 0] + udpFrame(payload: 200), at: data)
s.desc(table: srcDesc, 0, addr: data, len: 10, flags: next, next: 1)
s.desc(table: srcDesc, 1, addr: data + 10, len: 242)
s.rxBuffers(2, size: 2048)
seeds.append(("needs-csum", s))

// The walker alone on an RX chain of three buffers.
s = Seed(flags: 0x02, head: 1, srcIdx: 0, dstIdx: 0)
s.desc(table: dstDesc, 1, addr: 0x8000, len: 100, flags: write | next, next: 5)
s.desc(table: dstDesc, 5, addr: 0x10000, len: 4096, flags: write | next, next: 2)
s.desc(table: dstDesc, 2, addr: 0x9000, len: 10, flags: write)
seeds.append(("rx-walk", s))

// Hostile: a loop, a head out of range and an address outside memory in one burst; small rings, EVENT_IDX.
s = Seed(srcLog: 4, dstLog: 2, flags: 0x0c, srcIdx: 4, dstIdx: 0xffff)
s.desc(table: srcDesc, 0, addr: data, len: 64, flags: next, next: 0)
s.desc(table: srcDesc, 1, addr: 0x20000, len: 64)
s.desc(table: srcDesc, 2, addr: 0xfff8, len: 64)
for (i, h) in [0, 1, 2, 40].enumerated() { s.put16(UInt16(h), at: srcAvail + 4 + 2 * i) }
seeds.append(("hostile-burst", s))

guard CommandLine.arguments.count == 2 else { fatalError("usage: make-seeds.swift DIR") }
let dir = CommandLine.arguments[1]
for (name, seed) in seeds {
    let path = "\(dir)/\(name).bin"
    guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
    let b = seed.bytes
    _ = b.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
}
print("\(seeds.count) seeds in \(dir)")
