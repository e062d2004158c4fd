#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Block
import Histogram
import Platform

/// Random reads and/or writes of `bs` bytes anywhere in `[0, range)` until
/// the deadline, `depth` of them in flight on every queue; latencies go
/// into an HdrHistogram (nanoseconds, 3 significant digits).
struct BlkLoadSource: BlkWorkSource {
    static let highestLatency: UInt64 = 60_000_000_000

    let bs: Int
    let blocks: UInt64
    /// Percent of requests that are reads.
    let readPercent: UInt64
    let deadline: UInt64
    private var rng: UInt64
    private var ended = false
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: BlkLoadSource.highestLatency,
                                      numberOfSignificantValueDigits: .three)
    var reads: UInt64 = 0
    var writes: UInt64 = 0
    var bytes: UInt64 = 0
    var tally = BlkStatusTally()

    init(bs: Int, range: UInt64, readPercent: Int, seconds: Double, seed: UInt64) {
        self.bs = bs
        blocks = range / UInt64(bs)
        self.readPercent = UInt64(readPercent)
        deadline = Clock.monotonicNanos() &+ UInt64(seconds * 1e9)
        rng = seed | 1
    }

    var exhausted: Bool { ended }

    @inline(__always)
    private mutating func random() -> UInt64 {
        // xorshift64*: uniform enough for offsets and the read/write mix.
        rng ^= rng >> 12
        rng ^= rng << 25
        rng ^= rng >> 27
        return rng &* 0x2545_F491_4F6C_DD1D
    }

    mutating func next(queue: Int) -> BlkWork? {
        if ended { return nil }
        if Clock.monotonicNanos() >= deadline {
            ended = true
            return nil
        }
        let block = random() % blocks
        let read = readPercent == 100 || (readPercent > 0 && random() % 100 < readPercent)
        return BlkWork(type: read ? VirtioBlk.RequestType.input : VirtioBlk.RequestType.output,
                       sector: block &* UInt64(bs / 512), length: bs, deviceWrites: read)
    }

    mutating func prepare(_ work: BlkWork, buffer: UnsafeMutableRawPointer) {
        guard !work.deviceWrites else { return }
        // Cheap and not all zeroes: each sector starts with its own number.
        for s in 0..<(work.length / 512) {
            buffer.storeBytes(of: (work.sector &+ UInt64(s)).littleEndian, toByteOffset: s * 512, as: UInt64.self)
        }
    }

    mutating func finish(_ work: BlkWork, status: UInt8?, buffer: UnsafeRawPointer, written: UInt32, latencyNanos: UInt64) {
        tally.note(status, offset: work.sector &* 512)
        guard status == VirtioBlk.Status.ok else { return }
        if work.deviceWrites { reads &+= 1 } else { writes &+= 1 }
        bytes &+= UInt64(work.length)
        _ = histogram.record(min(max(latencyNanos, 1), Self.highestLatency))
    }
}

struct BlkLoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Random I/O at a fixed queue depth: IOPS, MB/s and latency percentiles.",
        discussion: """
            Keeps --iodepth requests in flight on every queue for --seconds, busy-polling the used \
            rings (--event: sleeping on the call eventfds), then waits for the last ones. Latency is \
            from the publish of a request to the poll that found it completed.
            """)

    @OptionGroup var device: BlkOptions

    @Option(name: .long, help: ArgumentHelp("randread, randwrite or rw (random, --rwmixread percent reads).", valueName: "MODE"))
    var rw: String = "randread"

    @Option(name: .long, help: ArgumentHelp("Bytes per request (a multiple of 512).", valueName: "BYTES"))
    var bs: String = "4k"

    @Option(name: .long, help: ArgumentHelp("Requests in flight per queue.", valueName: "N"))
    var iodepth: Int = 16

    @Option(name: .long, help: ArgumentHelp("How long to load the device.", valueName: "S"))
    var seconds: Double = 10

    @Option(name: .long, help: ArgumentHelp("Bytes from offset 0 that requests go to (default: the whole device).", valueName: "BYTES"))
    var range: String?

    @Option(name: .long, help: ArgumentHelp("Percent reads for --rw rw.", valueName: "PCT"))
    var rwmixread: Int = 50

    @Option(name: .long, help: ArgumentHelp("Seed of the random offsets.", valueName: "N"))
    var seed: UInt64 = 1

    func validate() throws {
        guard ["randread", "randwrite", "rw"].contains(rw) else { throw ValidationError("--rw must be randread, randwrite or rw") }
        guard let b = BlkSize.parse(bs), b > 0, b % 512 == 0, b <= 64 << 20 else {
            throw ValidationError("--bs must be a positive multiple of 512 bytes, at most 64m")
        }
        guard (1...4096).contains(iodepth) else { throw ValidationError("--iodepth must be 1...4096") }
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds must be positive") }
        if let range { guard BlkSize.parse(range) != nil else { throw ValidationError("--range: expected a byte count") } }
        guard (0...100).contains(rwmixread) else { throw ValidationError("--rwmixread must be 0...100") }
    }

    func run() throws {
        let block = BlkSize.parse(bs) ?? 4096
        let blk = try device.open(requestBytes: block, depth: iodepth)
        let span: UInt64
        if let range {
            span = UInt64(BlkSize.parse(range) ?? 0)
        } else if let capacity = blk.info.capacity {
            span = capacity &* 512
        } else {
            printError("sluice-gen blk: the device did not report its capacity (no GET_CONFIG); give --range")
            throw ExitCode(2)
        }
        guard span >= UInt64(block) else {
            printError("sluice-gen blk: the range (\(span) bytes) is smaller than one request of \(block) bytes")
            throw ExitCode(2)
        }
        if rw != "randread" && blk.info.readOnly {
            printError("sluice-gen blk: note: the device is read-only (VIRTIO_BLK_F_RO); sending the writes anyway")
        }
        let readPercent = rw == "randread" ? 100 : rw == "randwrite" ? 0 : rwmixread
        var source = BlkLoadSource(bs: block, range: span, readPercent: readPercent, seconds: seconds, seed: seed)
        let result = device.run(blk, &source, stop: StopSignal())

        let h = source.histogram
        let done = source.reads &+ source.writes
        let iops = result.seconds > 0 ? Double(done) / result.seconds : 0
        let mbps = result.seconds > 0 ? Double(source.bytes) / result.seconds / 1e6 : 0
        func us(_ ns: UInt64) -> Double { Double(ns) / 1000 }
        let p50 = done > 0 ? us(h.valueAtPercentile(50)) : 0
        let p90 = done > 0 ? us(h.valueAtPercentile(90)) : 0
        let p99 = done > 0 ? us(h.valueAtPercentile(99)) : 0
        let p999 = done > 0 ? us(h.valueAtPercentile(99.9)) : 0
        let maxUs = done > 0 ? us(h.max) : 0
        let meanUs = done > 0 ? h.mean / 1000 : 0

        var s = Summary(mode: "blk-load")
        s.add("rw", string: rw)
        s.add("bs", block)
        s.add("iodepth", blk.setup.depth)
        s.add("queues", blk.setup.queues)
        s.add("seconds", result.seconds)
        s.add("requests", done)
        s.add("reads", source.reads)
        s.add("writes", source.writes)
        s.add("errors", source.tally.failed)
        s.add("iops", iops)
        s.add("mb_per_s", mbps)
        s.add("mean_us", meanUs)
        s.add("p50_us", p50)
        s.add("p90_us", p90)
        s.add("p99_us", p99)
        s.add("p999_us", p999)
        s.add("max_us", maxUs)
        if device.json {
            print(s.json())
        } else {
            var line = "load \(rw): \(human(iops)) IOPS, \(format3((mbps * 10).rounded() / 10)) MB/s, "
                + "\(done) requests in \(format3(result.seconds)) s (bs \(block), iodepth \(blk.setup.depth), "
                + "queues \(blk.setup.queues)); latency µs p50 \(format3(p50)) p90 \(format3(p90)) "
                + "p99 \(format3(p99)) p99.9 \(format3(p999)) max \(format3(maxUs))"
            if source.tally.failed > 0 { line += "; \(source.tally.failed) failed: \(source.tally.failures)" }
            print(line)
        }
        if !result.ok || source.tally.failed > 0 || done == 0 { throw ExitCode(1) }
    }
}

struct BlkRawRequestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raw-request",
        abstract: "Send one hand-made request (for testing a backend's checks) and print its status.",
        discussion: """
            The chain is header, data (--length bytes, in segments of at most size_max), status. \
            Data of in/get-id is device-writable, of other types device-readable (an out request \
            carries the pattern of --pattern). Exit status 0 only when the status is OK.
            """)

    @OptionGroup var device: BlkOptions

    @Option(name: .long, help: ArgumentHelp("in, out, flush, get-id, discard, write-zeroes, or a number.", valueName: "TYPE"))
    var type: String

    @Option(name: .long, help: ArgumentHelp("The header's sector field.", valueName: "N"))
    var sector: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp("Data bytes (any number; k/m suffixes).", valueName: "BYTES"))
    var length: String = "0"

    @Option(name: .long, help: ArgumentHelp("Pattern seed of an out request's data.", valueName: "SEED"))
    var pattern: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp("discard/write-zeroes with 16 data bytes: num_sectors of the segment.", valueName: "N"))
    var segmentSectors: UInt32 = 1

    @Option(name: .long, help: ArgumentHelp("discard/write-zeroes with 16 data bytes: flags of the segment.", valueName: "N"))
    var segmentFlags: UInt32 = 0

    @Flag(name: .long, help: "Make the status descriptor 0 bytes long (no room for the status).")
    var badStatusLen = false

    @Flag(name: .long, help: "Leave the status descriptor out of the chain.")
    var noStatus = false

    @Flag(name: .long, help: "Make the data of an in request device-readable.")
    var dataReadableForRead = false

    func validate() throws {
        guard BlkNames.type(type) != nil else { throw ValidationError("--type: expected in, out, flush, get-id, discard, write-zeroes or a number") }
        guard let n = BlkSize.parse(length), n <= 64 << 20 else { throw ValidationError("--length: expected 0...64m bytes") }
    }

    func run() throws {
        let kind = BlkNames.type(type) ?? 0
        let bytes = BlkSize.parse(length) ?? 0
        let blk = try device.open(requestBytes: max(bytes, 512), depth: 1)
        let deviceWrites = kind == VirtioBlk.RequestType.input || kind == VirtioBlk.RequestType.getID
        var shape = BlkChainShape()
        shape.status = !noStatus
        shape.statusLength = badStatusLen ? 0 : 1
        shape.dataReadableForRead = dataReadableForRead
        var payload: [UInt8] = Array(repeating: 0, count: bytes)
        let isRange = kind == VirtioBlk.RequestType.discard || kind == VirtioBlk.RequestType.writeZeroes
        if isRange && bytes == VirtioBlk.rangeSize {
            payload = blkRangeSegment(sector: sector, sectors: segmentSectors, flags: segmentFlags)
        } else if kind == VirtioBlk.RequestType.output && bytes >= 512 {
            payload.withUnsafeMutableBytes {
                BlkPattern.fill($0.baseAddress!, seed: pattern, firstSector: sector, sectors: bytes / 512)
            }
        }
        var source = BlkListSource(works: [BlkWork(type: kind, sector: sector, length: bytes, deviceWrites: deviceWrites,
                                                   shape: shape)],
                                   payloads: [payload], keep: 0)
        let result = runBlkEngine(blk, &source, waitOnCalls: device.event, idleTimeout: device.timeout)
        var s = Summary(mode: "blk-raw-request")
        s.add("type", Int(kind))
        s.add("sector", sector)
        s.add("length", bytes)
        let line: String
        var ok = false
        if let outcome = source.outcomes[0] {
            s.add("completed", true)
            s.add("used_len", Int(outcome.written))
            if let status = outcome.status {
                s.add("status", string: BlkNames.status(status))
                s.add("status_byte", Int(status))
                line = "raw-request: status \(BlkNames.status(status)) (0x\(String(status, radix: 16))), used len \(outcome.written)"
                ok = status == VirtioBlk.Status.ok
            } else {
                s.add("status", string: "none")
                line = "raw-request: completed without a status byte written, used len \(outcome.written)"
            }
            do { try blk.disconnect() } catch { printError("sluice-gen blk: stopping the rings: \(error)") }
        } else {
            s.add("completed", false)
            s.add("status", string: "none")
            line = result.backendClosed ? "raw-request: the backend closed the connection"
                : "raw-request: no completion within \(format3(device.timeout)) s"
        }
        print(device.json ? s.json() : line)
        if !ok { throw ExitCode(1) }
    }
}
