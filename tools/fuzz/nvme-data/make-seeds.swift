// Writes the seed corpus of the `nvme-data` fuzz target (layout: Fuzz.swift).
// Run by hand: swift tools/fuzz/nvme-data/make-seeds.swift tools/fuzz/corpus/nvme-data
#if canImport(Glibc)
import Glibc
#endif

// Header bits (byte 0).
let lba4k: UInt8 = 1, ctrlSGL: UInt8 = 2, dword: UInt8 = 4, pairSGL: UInt8 = 8
let dbbc: UInt8 = 16, shadow: UInt8 = 32, dsm: UInt8 = 64, wz: UInt8 = 128
// Request types (t bits 0-2) and flags.
let tIn: UInt8 = 0, tOut: UInt8 = 1, tFlush: UInt8 = 2, tDiscard: UInt8 = 3, tWZ: UInt8 = 4, tWZUnmap: UInt8 = 5
let stale: UInt8 = 8, raw: UInt8 = 16
// Segment `where` bits: region (0-2), start alignment (3-4), length class (5-7).
enum Region: UInt8 { case r0 = 0, r1, r2, across01, hole, outside, after, continues }
// `hole`: pos even = from region 1 into the hole, odd = inside it; `outside`: pos % 3 = 0
// before the area, 1 after it, 2 off its end; `after` the previous iovec, with the
// alignment bits choosing: at its end, the next page, one page on, 512 bytes back.
enum Align: UInt8 { case page = 0, s512, dword, anyByte }   // anyByte: 1 + pos past the page
enum Length: UInt8 { case pages = 0, sectors, small, toPageEnd, large, dwords, zero, oddBytes }
/// iovec-count classes (t bits 5-7): 1, 1, 2, 3, 4, 8, 16, 32.
let countClass: [Int: UInt8] = [1: 0, 2: 2, 3: 3, 4: 4, 8: 5, 16: 6, 32: 7]

struct Seg {
    var region: Region, align: Align, length: Length, pos: UInt8, len: UInt8
    var bytes: [UInt8] { [region.rawValue | align.rawValue << 3 | length.rawValue << 5, pos, len] }
}

struct Seed {
    var bytes: [UInt8]

    /// flags, MDTS | shadow mode << 3 | stride << 5 | ACL << 6, depth, export offset, export size, EventIdx offset.
    init(flags: UInt8, mdts: UInt8 = 0, shadowMode: UInt8 = 0, depth: Int = 32, offset: UInt8 = 0, size: UInt8 = 0x0F,
         eventIdxOffset: Int8 = 0, acl: UInt8 = 3) {
        bytes = [flags, mdts | shadowMode << 3 | acl << 6, UInt8(depth - 2), offset, size, UInt8(bitPattern: eventIdxOffset)]
    }

    static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }

    mutating func data(_ type: UInt8, sector: Int, _ segs: [Seg], flags: UInt8 = 0) {
        precondition(countClass[segs.count] != nil, "iovec count \(segs.count) has no class")
        bytes += [0x00, type | flags | countClass[segs.count]! << 5] + Self.le16(sector)
        for s in segs { bytes += s.bytes }
    }

    mutating func range(_ type: UInt8, sector: Int, code: Int, flags: UInt8 = 0) {
        bytes += [0x00, type | flags] + Self.le16(sector) + Self.le16(code)
    }

    mutating func flush() { bytes += [0x00, tFlush, 0, 0] }
    mutating func submit() { bytes.append(0x01) }
    mutating func fetch(_ n: UInt8 = 0) { bytes.append(0x02 | n << 4) }
    mutating func completeOne(index: UInt8, status: UInt8 = 0) { bytes += [0x03, index, status] }
    mutating func completeAll(status: UInt8 = 0, newestFirst: Bool = false) { bytes += [0x04 | (newestFirst ? 0x10 : 0), status] }
    mutating func reap(_ maxCode: UInt8 = 15) { bytes.append(0x05 | maxCode << 4) }
    mutating func ready() { bytes.append(0x06) }
    mutating func scan() { bytes.append(0x07) }
    mutating func abort() { bytes.append(0x08) }
    mutating func fatal() { bytes.append(0x09) }
    mutating func bogus(_ k: UInt8) { bytes += [0x0A, k] }
    mutating func retry() { bytes.append(0x0B) }
    mutating func auto() { bytes.append(0x0C) }
    mutating func recover() { bytes.append(0x0D) }
    mutating func manyReaps() { bytes.append(0x0E) }
    mutating func waitAll() { bytes.append(0x1E) }
    mutating func eventIdx(_ v: Int8) { bytes += [0x0F, UInt8(bitPattern: v)] }
    mutating func cycle() { submit(); fetch(); completeAll(); reap() }
}

func page(_ r: Region, _ pos: UInt8, pages: UInt8 = 0) -> Seg { Seg(region: r, align: .page, length: .pages, pos: pos, len: pages) }

var seeds: [(String, Seed)] = []

// PRPs, 512-byte blocks: one page, two pages, a 64 KiB read (PRP list), a write.
var s = Seed(flags: 0)
s.data(tIn, sector: 0, [page(.r0, 0)])
s.data(tIn, sector: 8, [page(.r0, 2, pages: 1)])
s.data(tIn, sector: 64, [page(.r2, 3, pages: 15)])
s.data(tOut, sector: 128, [page(.r0, 1), page(.r1, 4, pages: 2)])
s.flush()
s.cycle(); s.ready()
seeds.append(("prp-basic", s))

// PRPs with 512-byte pieces that only continue each other (cuts at page boundaries), odd
// starts (unexpressible), MDTS 8 KiB splits.
s = Seed(flags: 0, mdts: 1)
s.data(tIn, sector: 16, [Seg(region: .r0, align: .s512, length: .sectors, pos: 3, len: 0),
                          Seg(region: .r0, align: .s512, length: .sectors, pos: 4, len: 6),
                          Seg(region: .r2, align: .page, length: .pages, pos: 9, len: 3)])
s.data(tOut, sector: 32, [Seg(region: .r1, align: .anyByte, length: .sectors, pos: 6, len: 1)])
s.data(tIn, sector: 40, [page(.r0, 10, pages: 7)])
s.data(tOut, sector: 100, [Seg(region: .r0, align: .s512, length: .toPageEnd, pos: 5, len: 1), page(.r0, 30, pages: 2)])
s.cycle()
seeds.append(("prp-pieces-mdts", s))

// PRPs over buffers that continue each other mid-page and meet at page boundaries (a
// guest's header/data splits), with MDTS 8 KiB cutting inside the runs.
let continuing = [Seg(region: .r0, align: .page, length: .sectors, pos: 5, len: 0),
                  Seg(region: .continues, align: .page, length: .sectors, pos: 0, len: 6),
                  Seg(region: .after, align: .page, length: .pages, pos: 0, len: 1),
                  Seg(region: .continues, align: .page, length: .small, pos: 0, len: 99)]
let alternating = [Seg(region: .r2, align: .s512, length: .toPageEnd, pos: 1, len: 0),
                   Seg(region: .after, align: .s512, length: .pages, pos: 0, len: 0),
                   Seg(region: .continues, align: .page, length: .sectors, pos: 0, len: 2),
                   Seg(region: .continues, align: .page, length: .toPageEnd, pos: 0, len: 1),
                   Seg(region: .after, align: .dword, length: .pages, pos: 0, len: 2),
                   Seg(region: .after, align: .anyByte, length: .sectors, pos: 0, len: 3),
                   Seg(region: .continues, align: .page, length: .oddBytes, pos: 0, len: 9),
                   Seg(region: .r1, align: .s512, length: .sectors, pos: 12, len: 1)]
s = Seed(flags: 0, mdts: 1)
s.data(tIn, sector: 0, continuing)
s.data(tOut, sector: 64, alternating)
s.cycle()
seeds.append(("prp-continuing", s))

// The same buffers with SGLs (one Data Block per run), and odd pieces.
s = Seed(flags: ctrlSGL | pairSGL, mdts: 1)
s.data(tIn, sector: 0, continuing)
s.data(tOut, sector: 64, alternating)
s.data(tIn, sector: 128, [Seg(region: .r0, align: .anyByte, length: .small, pos: 1, len: 200),
                          Seg(region: .r2, align: .dword, length: .dwords, pos: 2, len: 100),
                          Seg(region: .r0, align: .page, length: .sectors, pos: 3, len: 40),
                          Seg(region: .r1, align: .s512, length: .pages, pos: 9, len: 5)])
s.cycle()
seeds.append(("sgl-pieces", s))

// SGLs, 4 KiB blocks, MDTS 16 KiB: a 40 KiB write in three commands.
s = Seed(flags: lba4k | ctrlSGL | pairSGL, mdts: 2)
s.data(tOut, sector: 64, [page(.r2, 1, pages: 9)])
s.data(tIn, sector: 8, [page(.r0, 3, pages: 1), page(.r1, 0, pages: 0), Seg(region: .after, align: .page, length: .pages, pos: 0, len: 0)])
s.cycle()
seeds.append(("sgl-4k", s))

// Dword-granularity SGLs: aligned pieces go, odd ones are refused.
s = Seed(flags: ctrlSGL | dword | pairSGL)
s.data(tIn, sector: 0, [Seg(region: .r0, align: .dword, length: .dwords, pos: 9, len: 63),
                         Seg(region: .r1, align: .dword, length: .dwords, pos: 10, len: 63)])
s.data(tIn, sector: 8, [Seg(region: .r0, align: .anyByte, length: .sectors, pos: 2, len: 0)])
s.cycle()
seeds.append(("sgl-dword", s))

// Buffers across region boundaries, in the hole, outside guest memory, off its end.
s = Seed(flags: ctrlSGL | pairSGL)
s.data(tIn, sector: 0, [Seg(region: .across01, align: .page, length: .pages, pos: 0, len: 3)])
s.data(tIn, sector: 8, [Seg(region: .hole, align: .page, length: .pages, pos: 2, len: 4)])
s.data(tOut, sector: 16, [Seg(region: .hole, align: .page, length: .pages, pos: 3, len: 0)])
s.data(tOut, sector: 24, [Seg(region: .outside, align: .page, length: .pages, pos: 0, len: 0)])
s.data(tOut, sector: 28, [Seg(region: .outside, align: .page, length: .pages, pos: 1, len: 0)])
s.data(tIn, sector: 32, [Seg(region: .outside, align: .page, length: .pages, pos: 2, len: 3)])
s.data(tIn, sector: 40, [page(.r0, 63), page(.r2, 0)])   // IOVA-adjacent regions 0 and 2
s.cycle()
seeds.append(("outside-regions", s))

// DISCARD and WRITE_ZEROES (with unmap) on a controller that has them; a 64 MiB export
// where a raw WRITE_ZEROES needs two commands.
s = Seed(flags: dsm | wz, size: 0x7F)
s.range(tDiscard, sector: 0, code: 7)
s.range(tWZ, sector: 64, code: 100)
s.range(tWZUnmap, sector: 2048, code: 15)
s.range(tWZ, sector: 0, code: 0x7FFF, flags: raw)
s.cycle(); s.cycle()
seeds.append(("discard-write-zeroes", s))

// The same without DSM/Write Zeroes support: refused.
s = Seed(flags: 0)
s.range(tDiscard, sector: 0, code: 7)
s.range(tWZ, sector: 8, code: 7)
s.flush()
s.cycle()
seeds.append(("no-dsm-wz", s))

// Held back and reordered completions with error statuses: split requests answered once.
s = Seed(flags: pairSGL | ctrlSGL, mdts: 1, depth: 16)
s.data(tIn, sector: 0, [page(.r0, 0, pages: 7)])
s.data(tOut, sector: 64, [page(.r2, 0, pages: 5)])
s.flush()
s.submit(); s.fetch(3)
s.completeOne(index: 2, status: 0xC5)
s.reap(); s.fetch()
s.completeOne(index: 0)
s.completeAll(status: 0xB1, newestFirst: true)
s.ready(); s.reap()
seeds.append(("reorder-errors", s))

// Depth 2 (one CID): the second request is .full until the first is answered.
s = Seed(flags: 0, depth: 2)
s.data(tIn, sector: 0, [page(.r0, 0)])
s.data(tIn, sector: 8, [page(.r0, 1)])
s.flush()
s.submit(); s.retry(); s.fetch(); s.completeAll(); s.reap(); s.retry(); s.cycle(); s.retry(); s.cycle()
seeds.append(("full-depth2", s))

// A stale request times out (-ETIMEDOUT), its command is aborted; a late completion.
s = Seed(flags: 0, depth: 8, acl: 0)
s.data(tIn, sector: 0, [page(.r0, 0)], flags: stale)
s.data(tIn, sector: 8, [page(.r0, 1)], flags: stale)
s.data(tOut, sector: 16, [page(.r0, 2)])
s.submit(); s.fetch(); s.scan(); s.reap(); s.abort(); s.reap(); s.abort(); s.completeAll(); s.reap()
s.manyReaps()
seeds.append(("timeout-abort", s))

// Fatal status with requests in flight: every one -EIO, reset, the pair works again.
s = Seed(flags: ctrlSGL | pairSGL | dbbc | shadow)
s.data(tIn, sector: 0, [page(.r0, 0)])
s.data(tOut, sector: 8, [page(.r0, 1, pages: 3)])
s.submit(); s.fetch(1); s.completeAll()
s.fatal()
s.data(tIn, sector: 16, [page(.r0, 2)])
s.submit(); s.scan(); s.reap(); s.recover()
s.data(tIn, sector: 24, [page(.r0, 3)])
s.cycle()
seeds.append(("fatal-reset", s))

// Shadow doorbells: the strict model (MMIO only when EventIdx says) and an EventIdx offset.
s = Seed(flags: dbbc | shadow, shadowMode: 2, depth: 4)
for i in 0..<6 { s.data(tIn, sector: 8 * i, [page(.r0, UInt8(i))]); s.submit(); s.fetch(); s.completeAll(); s.reap() }
s.retry(); s.cycle()
seeds.append(("shadow-strict", s))
s = Seed(flags: dbbc | shadow, shadowMode: 1, depth: 8, eventIdxOffset: -3)
for i in 0..<5 { s.data(tOut, sector: 8 * i, [page(.r1, UInt8(i))]); s.submit(); s.fetch(); s.completeAll(); s.reap(); s.eventIdx(Int8(i * 5 - 7)) }
seeds.append(("shadow-eventidx", s))

// A confused controller: completions for CIDs never used, between real ones.
s = Seed(flags: 0, depth: 8)
s.data(tIn, sector: 0, [page(.r0, 0)])
s.submit(); s.bogus(0); s.fetch(); s.bogus(200); s.completeAll(); s.ready(); s.reap()
seeds.append(("bogus-completions", s))

// Raw slots: byte count ≠ iovecs, more iovecs than the parser allows, a nil base.
s = Seed(flags: ctrlSGL | pairSGL)
s.bytes += [0x00, tIn | raw, 0, 0, 3] + page(.r0, 0).bytes + page(.r0, 1).bytes + page(.r0, 2).bytes + [1]
s.bytes += [0x00, tIn | raw, 8, 0, 140] + [UInt8](repeating: 0, count: 3 * 140) + [0]
s.bytes += [0x00, tOut | raw, 16, 0, 2, Region.outside.rawValue, 0, 0] + page(.r0, 3).bytes + [0]
s.bytes += [0x00, 7 | raw, 0, 0, 8] + Seed.le16(512)
s.cycle()
seeds.append(("raw-slots", s))

// The control thread's drain: waitOne with the controller working from the idle hook;
// then with a fatal status (answered by the timeout scan inside waitOne).
s = Seed(flags: ctrlSGL | pairSGL, mdts: 1, depth: 8)
s.data(tIn, sector: 0, [page(.r0, 0, pages: 3)])
s.data(tOut, sector: 64, [page(.r1, 0)], flags: stale)
s.flush()
s.waitAll()
s.data(tIn, sector: 8, [page(.r0, 1)])
s.submit(); s.fatal(); s.waitAll(); s.recover()
s.data(tIn, sector: 16, [page(.r0, 2)])
s.cycle()
seeds.append(("wait-one", s))

let dir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "tools/fuzz/corpus/nvme-data"
mkdir(dir, 0o755)
for (name, seed) in seeds {
    let path = "\(dir)/\(name).bin"
    guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
    _ = seed.bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
}
print("wrote \(seeds.count) seeds to \(dir)")
