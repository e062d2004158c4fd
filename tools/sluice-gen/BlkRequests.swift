#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Block
import Platform

/// A fixed list of requests, each with the bytes its buffer starts with;
/// keeps every completion (status, used length, the first bytes of the buffer).
struct BlkListSource: BlkWorkSource {
    struct Outcome {
        var status: UInt8?
        var written: UInt32
        var bytes: [UInt8]
    }

    let works: [BlkWork]
    let payloads: [[UInt8]]
    /// How many bytes of each buffer to keep after completion.
    let keep: Int
    private var nextIndex = 0
    var outcomes: [Outcome?]
    var tally = BlkStatusTally()

    init(works: [BlkWork], payloads: [[UInt8]] = [], keep: Int = 0) {
        self.works = works
        self.payloads = payloads
        self.keep = keep
        outcomes = Array(repeating: nil, count: works.count)
    }

    var exhausted: Bool { nextIndex >= works.count }

    mutating func next(queue: Int) -> BlkWork? {
        guard nextIndex < works.count else { return nil }
        var w = works[nextIndex]
        w.id = nextIndex
        nextIndex += 1
        return w
    }

    mutating func prepare(_ work: BlkWork, buffer: UnsafeMutableRawPointer) {
        guard work.id < payloads.count else { return }
        payloads[work.id].withUnsafeBytes { if let b = $0.baseAddress { memcpy(buffer, b, $0.count) } }
    }

    mutating func finish(_ work: BlkWork, status: UInt8?, buffer: UnsafeRawPointer, written: UInt32, latencyNanos: UInt64) {
        let n = min(keep, work.length)
        outcomes[work.id] = Outcome(status: status, written: written,
                                    bytes: Array(UnsafeRawBufferPointer(start: buffer, count: n)))
        tally.note(status, offset: work.sector &* 512)
    }
}

/// Runs a list of requests and reports their statuses; exit 1 unless all are OK.
func runBlkList(_ device: BlkOptions, _ blk: BlkDevice, mode: String, works: [BlkWork], payloads: [[UInt8]] = [],
                keep: Int = 0, extra: (inout Summary, inout String, BlkListSource) -> Void = { _, _, _ in }) throws {
    var source = BlkListSource(works: works, payloads: payloads, keep: keep)
    let result = device.run(blk, &source)
    var s = Summary(mode: "blk-" + mode)
    source.tally.add(to: &s)
    s.add("seconds", result.seconds)
    var line = "\(mode): \(source.tally.ok + source.tally.failed) of \(works.count) requests completed, "
        + (source.tally.failed == 0 ? "status OK" : "\(source.tally.failed) failed: \(source.tally.failures)")
    extra(&s, &line, source)
    print(device.json ? s.json() : line)
    if !result.ok || source.tally.failed > 0 || source.tally.ok < works.count { throw ExitCode(1) }
}

/// A 16-byte `struct virtio_blk_discard_write_zeroes` segment.
func blkRangeSegment(sector: UInt64, sectors: UInt32, flags: UInt32) -> [UInt8] {
    var bytes: [UInt8] = []
    for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: sector >> (8 * UInt64(i)))) }
    for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: sectors >> (8 * UInt32(i)))) }
    for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: flags >> (8 * UInt32(i)))) }
    return bytes
}

struct BlkFlushCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "flush", abstract: "Send one FLUSH request.")

    @OptionGroup var device: BlkOptions

    func run() throws {
        let blk = try device.open(requestBytes: 512, depth: 1)
        if !blk.info.acked(VirtioBlk.Feature.flush) {
            printError("sluice-gen blk: note: the device does not offer VIRTIO_BLK_F_FLUSH; sending it anyway")
        }
        try runBlkList(device, blk, mode: "flush",
                       works: [BlkWork(type: VirtioBlk.RequestType.flush, sector: 0, length: 0, deviceWrites: false)])
    }
}

struct BlkIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "id", abstract: "Send GET_ID and print the serial.")

    @OptionGroup var device: BlkOptions

    func run() throws {
        let blk = try device.open(requestBytes: 512, depth: 1)
        let work = BlkWork(type: VirtioBlk.RequestType.getID, sector: 0, length: VirtioBlk.idBytes, deviceWrites: true)
        try runBlkList(device, blk, mode: "id", works: [work], keep: VirtioBlk.idBytes) { s, line, source in
            guard let o = source.outcomes[0], o.status == VirtioBlk.Status.ok else { return }
            // Up to 20 bytes, NUL-terminated when shorter.
            let serial = String(decoding: o.bytes.prefix { $0 != 0 }, as: UTF8.self)
            s.add("serial", string: serial)
            line = serial
        }
    }
}

/// discard and write-zeroes: one segment per request, split at the device's limit.
struct BlkRangeRequest {
    let device: BlkOptions
    let offset: String
    let length: String

    static func validate(offset: String, length: String) throws {
        guard let o = BlkSize.parse(offset), o % 512 == 0 else { throw ValidationError("--offset must be a multiple of 512 bytes") }
        guard let l = BlkSize.parse(length), l > 0, l % 512 == 0 else {
            throw ValidationError("--length must be a positive multiple of 512 bytes")
        }
    }

    func run(mode: String, type: UInt32, feature: UInt64, featureName: String, flags: UInt32,
             limit: (BlkDeviceInfo) -> UInt32?) throws {
        let blk = try device.open(requestBytes: 512, depth: 16)
        if !blk.info.acked(feature) {
            printError("sluice-gen blk: note: the device does not offer \(featureName); sending it anyway")
        }
        let most = UInt64(limit(blk.info).flatMap { $0 > 0 ? $0 : nil } ?? UInt32.max)
        var sector = UInt64(BlkSize.parse(offset) ?? 0) / 512
        var left = UInt64(BlkSize.parse(length) ?? 0) / 512
        var works: [BlkWork] = []
        var payloads: [[UInt8]] = []
        while left > 0 {
            let n = min(left, most)
            works.append(BlkWork(type: type, sector: sector, length: VirtioBlk.rangeSize, deviceWrites: false))
            payloads.append(blkRangeSegment(sector: sector, sectors: UInt32(n), flags: flags))
            sector += n
            left -= n
        }
        try runBlkList(device, blk, mode: mode, works: works, payloads: payloads)
    }
}

struct BlkDiscardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "discard", abstract: "Discard a range.")

    @OptionGroup var device: BlkOptions
    @Option(name: .long, help: ArgumentHelp("Start in bytes (a multiple of 512).", valueName: "BYTES"))
    var offset: String = "0"
    @Option(name: .long, help: ArgumentHelp("Bytes (a multiple of 512).", valueName: "BYTES"))
    var length: String

    func validate() throws { try BlkRangeRequest.validate(offset: offset, length: length) }

    func run() throws {
        try BlkRangeRequest(device: device, offset: offset, length: length)
            .run(mode: "discard", type: VirtioBlk.RequestType.discard, feature: VirtioBlk.Feature.discard,
                 featureName: "VIRTIO_BLK_F_DISCARD", flags: 0) { $0.maxDiscardSectors }
    }
}

struct BlkWriteZeroesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "write-zeroes", abstract: "Write zeroes over a range.")

    @OptionGroup var device: BlkOptions
    @Option(name: .long, help: ArgumentHelp("Start in bytes (a multiple of 512).", valueName: "BYTES"))
    var offset: String = "0"
    @Option(name: .long, help: ArgumentHelp("Bytes (a multiple of 512).", valueName: "BYTES"))
    var length: String
    @Flag(name: .long, help: "Set VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP (the device may deallocate).")
    var unmap = false

    func validate() throws { try BlkRangeRequest.validate(offset: offset, length: length) }

    func run() throws {
        try BlkRangeRequest(device: device, offset: offset, length: length)
            .run(mode: "write-zeroes", type: VirtioBlk.RequestType.writeZeroes, feature: VirtioBlk.Feature.writeZeroes,
                 featureName: "VIRTIO_BLK_F_WRITE_ZEROES", flags: unmap ? VirtioBlk.writeZeroesUnmap : 0) {
                $0.maxWriteZeroesSectors
            }
    }
}
