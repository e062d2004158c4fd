#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Block
import Platform

/// Tallies of request statuses, shared by every command's source.
struct BlkStatusTally {
    var ok = 0
    var failed = 0
    /// Failures by name (IOERR, UNSUPP, no status, 0x..).
    var byStatus: [String: Int] = [:]
    /// The byte offset of the first failed request (lowest offset).
    var firstFailedOffset: UInt64?

    mutating func note(_ status: UInt8?, offset: UInt64) {
        if status == VirtioBlk.Status.ok {
            ok += 1
            return
        }
        failed += 1
        byStatus[status.map(BlkNames.status) ?? "no status", default: 0] += 1
        firstFailedOffset = min(firstFailedOffset ?? offset, offset)
    }

    /// `IOERR×3, UNSUPP×1`.
    var failures: String {
        byStatus.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")
    }

    func add(to s: inout Summary) {
        s.add("requests_ok", ok)
        s.add("requests_failed", failed)
        s.add("status", string: failed == 0 ? "OK" : byStatus.keys.sorted().joined(separator: ","))
    }
}

/// Writes, reads or verifies a byte range in requests of `bs` bytes.
struct BlkRangeSource: BlkWorkSource {
    enum Kind { case write, read, verify }

    let kind: Kind
    let seed: UInt64
    let start: UInt64
    let end: UInt64
    let bs: Int
    /// read --out: where the bytes go (at their offset from `start`).
    let outFD: Int32
    private var cursor: UInt64
    var tally = BlkStatusTally()
    var bytesDone: UInt64 = 0
    var mismatchedSectors: UInt64 = 0
    var firstMismatch: UInt64?
    var outError: String?

    init(kind: Kind, seed: UInt64, start: UInt64, length: UInt64, bs: Int, outFD: Int32 = -1) {
        self.kind = kind
        self.seed = seed
        self.start = start
        self.end = start &+ length
        self.bs = bs
        self.outFD = outFD
        cursor = start
    }

    var exhausted: Bool { cursor >= end }

    mutating func next(queue: Int) -> BlkWork? {
        guard cursor < end else { return nil }
        let n = Int(min(UInt64(bs), end - cursor))
        let w = BlkWork(type: kind == .write ? VirtioBlk.RequestType.output : VirtioBlk.RequestType.input,
                        sector: cursor / 512, length: n, deviceWrites: kind != .write)
        cursor += UInt64(n)
        return w
    }

    mutating func prepare(_ work: BlkWork, buffer: UnsafeMutableRawPointer) {
        if kind == .write {
            BlkPattern.fill(buffer, seed: seed, firstSector: work.sector, sectors: work.length / 512)
        }
    }

    mutating func finish(_ work: BlkWork, status: UInt8?, buffer: UnsafeRawPointer, written: UInt32, latencyNanos: UInt64) {
        tally.note(status, offset: work.sector &* 512)
        guard status == VirtioBlk.Status.ok else { return }
        bytesDone &+= UInt64(work.length)
        switch kind {
        case .write:
            break
        case .read:
            guard outFD >= 0 else { return }
            let at = off_t(work.sector &* 512 &- start)
            if pwrite(outFD, buffer, work.length, at) != work.length, outError == nil {
                outError = "\(SystemError("pwrite"))"
            }
        case .verify:
            for s in 0..<(work.length / 512) {
                let sector = work.sector &+ UInt64(s)
                if !BlkPattern.matches(buffer + s * 512, seed: seed, sector: sector) {
                    mismatchedSectors += 1
                    firstMismatch = min(firstMismatch ?? sector, sector)
                }
            }
        }
    }
}

/// What write, read and verify share: open, run, report.
struct BlkRangeRun {
    let device: BlkOptions
    let range: BlkRangeOptions
    let mode: String

    func run(kind: BlkRangeSource.Kind, seed: UInt64, out: String? = nil) throws {
        let blk = try device.open(requestBytes: range.blockBytes, depth: range.iodepth)
        let length = try range.lengthBytes(blk)
        if kind == .write && blk.info.readOnly {
            printError("sluice-gen blk: note: the device is read-only (VIRTIO_BLK_F_RO); sending the writes anyway")
        }
        var outFD: Int32 = -1
        if let out {
            outFD = Glibc.open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard outFD >= 0 else {
                printError("sluice-gen blk: \(out): \(SystemError("open"))")
                throw ExitCode(2)
            }
        }
        defer { if outFD >= 0 { closeFD(outFD) } }
        var source = BlkRangeSource(kind: kind, seed: seed, start: range.offsetBytes, length: length,
                                    bs: range.blockBytes, outFD: outFD)
        let result = device.run(blk, &source, stop: StopSignal())
        if let e = source.outError { printError("sluice-gen blk: \(out ?? ""): \(e)") }

        let mbps = result.seconds > 0 ? Double(source.bytesDone) / result.seconds / 1e6 : 0
        var s = Summary(mode: "blk-" + mode)
        s.add("offset", range.offsetBytes)
        s.add("length", length)
        s.add("bytes", source.bytesDone)
        s.add("seconds", result.seconds)
        s.add("mb_per_s", mbps)
        source.tally.add(to: &s)
        if kind == .verify {
            s.add("mismatched_sectors", source.mismatchedSectors)
            if let m = source.firstMismatch { s.add("first_mismatch_offset", m &* 512) }
        }
        var line = "\(mode): \(source.bytesDone) of \(length) bytes at offset \(range.offsetBytes) in "
            + "\(source.tally.ok + source.tally.failed) requests, \(format3(result.seconds)) s, \(format3(mbps)) MB/s"
        if source.tally.failed > 0 {
            line += "; \(source.tally.failed) failed: \(source.tally.failures)"
            if let f = source.tally.firstFailedOffset { line += " (first at offset \(f))" }
        }
        if kind == .verify {
            if let m = source.firstMismatch {
                line += "; MISMATCH in \(source.mismatchedSectors) sectors (first at offset \(m &* 512))"
            } else if source.tally.failed == 0 && result.ok {
                line += "; pattern matches"
            }
        }
        print(device.json ? s.json() : line)
        if !result.ok || source.tally.failed > 0 || source.mismatchedSectors > 0 || source.outError != nil {
            throw ExitCode(1)
        }
    }
}

struct BlkWriteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write", abstract: "Write the pattern of SEED over a range (see verify).")

    @OptionGroup var device: BlkOptions
    @OptionGroup var range: BlkRangeOptions

    @Option(name: .long, help: ArgumentHelp("Pattern seed (decimal or 0x hex).", valueName: "SEED"))
    var pattern: String

    func validate() throws {
        guard BlkSize.parseSeed(pattern) != nil else { throw ValidationError("--pattern must be a 64-bit number") }
    }

    func run() throws {
        try BlkRangeRun(device: device, range: range, mode: "write").run(kind: .write, seed: BlkSize.parseSeed(pattern) ?? 0)
    }
}

struct BlkReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read", abstract: "Read a range (into --out FILE, at the offset from --offset).")

    @OptionGroup var device: BlkOptions
    @OptionGroup var range: BlkRangeOptions

    @Option(name: .long, help: ArgumentHelp("Write the bytes read to this file.", valueName: "FILE"))
    var out: String?

    func run() throws {
        try BlkRangeRun(device: device, range: range, mode: "read").run(kind: .read, seed: 0, out: out)
    }
}

struct BlkVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Read a range and check every sector holds the pattern of SEED.",
        discussion: """
            The pattern depends only on the seed and the sector number: sector s is 64 \
            little-endian u64 words, word i = splitmix64(SEED + (s*64 + i) * 0x9E3779B97F4A7C15). \
            Any range written with the same seed verifies, whatever --bs wrote it.
            """)

    @OptionGroup var device: BlkOptions
    @OptionGroup var range: BlkRangeOptions

    @Option(name: .long, help: ArgumentHelp("Pattern seed (decimal or 0x hex).", valueName: "SEED"))
    var pattern: String

    func validate() throws {
        guard BlkSize.parseSeed(pattern) != nil else { throw ValidationError("--pattern must be a 64-bit number") }
    }

    func run() throws {
        try BlkRangeRun(device: device, range: range, mode: "verify").run(kind: .verify, seed: BlkSize.parseSeed(pattern) ?? 0)
    }
}
