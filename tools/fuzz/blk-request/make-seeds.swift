// Writes the seed corpus of the `blk-request` fuzz target (layout: Fuzz.swift).
// Run by hand: swift tools/fuzz/blk-request/make-seeds.swift tools/fuzz/corpus/blk-request
#if canImport(Glibc)
import Glibc
#endif

let descAt = 0x0000, availAt = 0x1000
let next: UInt16 = 1, write: UInt16 = 2, indirect: UInt16 = 4
let indirectFlag: UInt8 = 1, readOnly: UInt8 = 2, poll: UInt8 = 4, block4k: UInt8 = 8

struct Seed {
    var image = [UInt8](repeating: 0, count: 0x3000)
    var flags: UInt8
    var sizeLog: UInt8 = 8
    var heads: [UInt16] = []
    var nextDesc = 0
    var nextHeader = 0x2000
    var nextStatus = 0x2800
    var nextTable = 0x2400

    init(flags: UInt8) { self.flags = flags }

    mutating func put(_ bytes: [UInt8], at: Int) {
        if image.count < at + bytes.count { image += [UInt8](repeating: 0, count: at + bytes.count - image.count) }
        image.replaceSubrange(at..<(at + bytes.count), with: bytes)
    }

    static func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    mutating func desc(at table: Int, _ i: Int, addr: Int, len: Int, flags f: UInt16, next n: Int) {
        put(Self.le(UInt64(addr), 8) + Self.le(UInt64(len), 4) + Self.le(UInt64(f), 2) + Self.le(UInt64(n), 2), at: table + 16 * i)
    }

    /// One request: header, `data` buffers (addr, len, device-writable), status; direct or indirect.
    mutating func request(type: UInt32, sector: UInt64, data: [(Int, Int, Bool)], viaTable: Bool = false, statusLen: Int = 1) {
        let h = nextHeader
        nextHeader += 32
        put(Self.le(UInt64(type), 4) + [0, 0, 0, 0] + Self.le(sector, 8), at: h)
        let st = nextStatus
        nextStatus += 1
        var bufs: [(Int, Int, Bool)] = [(h, 16, false)] + data
        if statusLen > 0 { bufs.append((st, statusLen, true)) }
        let head = nextDesc
        if viaTable {
            let t = nextTable
            nextTable += 16 * bufs.count
            for (k, b) in bufs.enumerated() {
                desc(at: t, k, addr: b.0, len: b.1, flags: (b.2 ? write : 0) | (k + 1 < bufs.count ? next : 0), next: k + 1)
            }
            desc(at: descAt, head, addr: t, len: 16 * bufs.count, flags: indirect, next: 0)
            nextDesc += 1
        } else {
            for (k, b) in bufs.enumerated() {
                desc(at: descAt, head + k, addr: b.0, len: b.1, flags: (b.2 ? write : 0) | (k + 1 < bufs.count ? next : 0),
                     next: head + k + 1)
            }
            nextDesc += bufs.count
        }
        put(Self.le(UInt64(head), 2), at: availAt + 4 + 2 * heads.count)
        heads.append(UInt16(head))
    }

    mutating func range(type: UInt32, sector: UInt64, sectors: UInt32, flags f: UInt32) {
        let seg = nextHeader
        nextHeader += 32
        put(Self.le(sector, 8) + Self.le(UInt64(sectors), 4) + Self.le(UInt64(f), 4), at: seg)
        request(type: type, sector: 0, data: [(seg, 16, false)])
    }

    var bytes: [UInt8] { [sizeLog, flags] + Self.le(UInt64(heads.count), 2) + image }
}

let dir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "tools/fuzz/corpus/blk-request"
var seeds: [(String, Seed)] = []

for (suffix, f) in [("parse", indirectFlag), ("poll", indirectFlag | poll)] {
    var s = Seed(flags: f)
    s.request(type: 4, sector: 0, data: [])
    seeds.append(("flush-\(suffix)", s))

    s = Seed(flags: f)
    s.request(type: 0, sector: 8, data: [(0x3000, 4096, true)])
    s.request(type: 1, sector: 16, data: [(0x4000, 2048, false), (0x5000, 2048, false)])
    s.request(type: 8, sector: 0, data: [(0x6000, 20, true)])
    seeds.append(("read-write-id-\(suffix)", s))

    s = Seed(flags: f)
    s.range(type: 11, sector: 0, sectors: 8, flags: 0)
    s.range(type: 13, sector: 8, sectors: 8, flags: 1)
    s.range(type: 11, sector: 120, sectors: 16, flags: 0)
    s.range(type: 13, sector: 0, sectors: 8, flags: 6)
    seeds.append(("discard-write-zeroes-\(suffix)", s))

    s = Seed(flags: f)
    s.request(type: 0, sector: 0, data: [(0x3000, 512, true), (0x3200, 1536, true)], viaTable: true)
    s.request(type: 1, sector: 4, data: [(0x4000, 1024, false)], viaTable: true)
    seeds.append(("indirect-\(suffix)", s))

    s = Seed(flags: f)
    s.request(type: 0, sector: 128, data: [(0x3000, 512, true)])             // past the end
    s.request(type: 1, sector: 127, data: [(0x4000, 1024, false)])           // straddles the end
    s.request(type: 0, sector: UInt64.max, data: [(0x3000, 512, true)])      // overflows
    s.request(type: 0, sector: 0, data: [(0x3000, 500, true)])               // not whole sectors
    s.request(type: 99, sector: 0, data: [(0x3000, 512, true)])              // unknown
    s.request(type: 1, sector: 0, data: [(0x4000, 512, false)], statusLen: 0) // no status
    s.request(type: 0, sector: 0, data: [(0x4000, 512, false)])              // IN with readable data
    s.request(type: 0, sector: 0, data: [])                                  // zero length
    seeds.append(("hostile-\(suffix)", s))
}

var ro = Seed(flags: poll | readOnly)
ro.request(type: 1, sector: 0, data: [(0x4000, 4096, false)])
ro.range(type: 11, sector: 0, sectors: 8, flags: 0)
ro.request(type: 0, sector: 0, data: [(0x3000, 4096, true)])
seeds.append(("read-only-poll", ro))

var big = Seed(flags: poll | block4k)
big.request(type: 1, sector: 1, data: [(0x4000, 512, false)])
big.request(type: 0, sector: 8, data: [(0x3000, 4096, true)])
seeds.append(("block-4k-poll", big))

var dup = Seed(flags: poll | indirectFlag)
dup.request(type: 0, sector: 0, data: [(0x3000, 32768, true)])
dup.put(Seed.le(0, 2), at: availAt + 6)   // head 0 offered twice
dup.heads.append(0)
seeds.append(("same-head-twice-poll", dup))

mkdir(dir, 0o755)
for (name, seed) in seeds {
    let path = "\(dir)/\(name).bin"
    guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
    let b = seed.bytes
    fwrite(b, 1, b.count, f)
    fclose(f)
}
print("\(seeds.count) seeds in \(dir)")
