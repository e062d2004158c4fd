#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Block
import Platform
import VhostUser

/// `sluice-gen blk …`: the driver side of virtio-blk over vhost-user, as a VM
/// would attach to a blk socket.
struct BlkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blk",
        abstract: "Drive a vhost-user-blk backend as a VM's virtio-blk driver would.",
        discussion: """
            Every subcommand connects (--socket) or waits for the backend (--listen), negotiates \
            virtio-blk and sends its requests. Exit status: 0 on success, 1 when a request ends \
            with a status other than OK (IOERR, UNSUPP), no status, a verify mismatch or no \
            completion in time, 2 when the device could not be set up.
            """,
        subcommands: [BlkInfoCommand.self, BlkWriteCommand.self, BlkReadCommand.self, BlkVerifyCommand.self,
                      BlkFlushCommand.self, BlkDiscardCommand.self, BlkWriteZeroesCommand.self, BlkIDCommand.self,
                      BlkLoadCommand.self, BlkRawRequestCommand.self])
}

/// Where the backend is and how the device is driven (every blk subcommand).
struct BlkOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Connect to the backend's vhost-user socket.", valueName: "PATH"))
    var socket: String?

    @Option(name: .long, help: ArgumentHelp("Listen here and wait for the backend to connect (a backend in client mode).", valueName: "PATH"))
    var listen: String?

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for the backend (connect retries, or accept with --listen).", valueName: "S"))
    var connectTimeout: Double = 10

    @Option(name: .long, help: ArgumentHelp("Request queues (more than 1 needs VIRTIO_BLK_F_MQ).", valueName: "N"))
    var queues: Int = 1

    @Option(name: .long, help: ArgumentHelp("Entries per vring, a power of two.", valueName: "N"))
    var queueSize: Int = 256

    @Flag(name: .long, help: "Do not negotiate VIRTIO_F_EVENT_IDX.")
    var noEventIdx = false

    @Flag(name: .long, help: "Send each request as one descriptor pointing at an indirect table (VIRTIO_F_INDIRECT_DESC).")
    var indirect = false

    @Flag(name: .long, help: "Sleep on the call eventfds while waiting for completions instead of busy-polling the used rings.")
    var event = false

    @Option(name: .long, help: ArgumentHelp("Give up when no request completes for this many seconds.", valueName: "S"))
    var timeout: Double = 10

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard (socket == nil) != (listen == nil) else { throw ValidationError("give exactly one of --socket PATH or --listen PATH") }
        guard (1...256).contains(queues) else { throw ValidationError("--queues must be 1...256") }
        guard DriverQueueLayout(size: queueSize) != nil, queueSize >= 4 else {
            throw ValidationError("--queue-size must be a power of two, 4...\(DriverQueueLayout.maxSize)")
        }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be positive") }
        guard connectTimeout >= 0, connectTimeout.isFinite else { throw ValidationError("--connect-timeout must be 0 or more") }
    }

    /// Connects (or listens), negotiates and starts the device; a failure is
    /// printed and ends the program with status 2.
    func open(requestBytes: Int, depth: Int) throws -> BlkDevice {
        Signals.ignorePipe()
        var setup = BlkSetup()
        setup.queues = queues
        setup.queueSize = queueSize
        setup.depth = depth
        setup.requestBytes = max(requestBytes, 512)
        setup.eventIndex = !noEventIdx
        setup.indirect = indirect
        let path = socket ?? listen ?? ""
        do {
            if let listen {
                return try BlkDevice.listen(path: listen, setup: setup, timeoutSeconds: connectTimeout)
            }
            return try BlkDevice.connect(path: path, setup: setup, retrySeconds: connectTimeout)
        } catch {
            printError("sluice-gen blk: \(path): \(error)")
            throw ExitCode(2)
        }
    }

    /// Runs `source` to the end and closes the device; an engine problem is
    /// printed (the caller reports request statuses).
    func run<S: BlkWorkSource>(_ device: BlkDevice, _ source: inout S, stop: StopSignal? = nil) -> BlkEngineResult {
        let result = runBlkEngine(device, &source, waitOnCalls: event, idleTimeout: timeout, stop: stop)
        if let problem = result.problem(idleTimeout: timeout) { printError("sluice-gen blk: \(problem)") }
        if result.ok {
            do { try device.disconnect() } catch { printError("sluice-gen blk: stopping the rings: \(error)") }
        }
        return result
    }
}

/// The range a data command works on.
struct BlkRangeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Start, in bytes (a multiple of 512; k/m/g suffixes).", valueName: "BYTES"))
    var offset: String = "0"

    @Option(name: .long, help: ArgumentHelp("Bytes (a multiple of 512; default: up to the end of the device).", valueName: "BYTES"))
    var length: String?

    @Option(name: .long, help: ArgumentHelp("Bytes per request (a multiple of 512).", valueName: "BYTES"))
    var bs: String = "4k"

    @Option(name: .long, help: ArgumentHelp("Requests in flight per queue.", valueName: "N"))
    var iodepth: Int = 16

    func validate() throws {
        guard let o = BlkSize.parse(offset), o % 512 == 0 else { throw ValidationError("--offset must be a multiple of 512 bytes") }
        if let length {
            guard let l = BlkSize.parse(length), l > 0, l % 512 == 0 else {
                throw ValidationError("--length must be a positive multiple of 512 bytes")
            }
        }
        guard let b = BlkSize.parse(bs), b > 0, b % 512 == 0, b <= 64 << 20 else {
            throw ValidationError("--bs must be a positive multiple of 512 bytes, at most 64m")
        }
        guard (1...4096).contains(iodepth) else { throw ValidationError("--iodepth must be 1...4096") }
    }

    var offsetBytes: UInt64 { UInt64(BlkSize.parse(offset) ?? 0) }
    var blockBytes: Int { BlkSize.parse(bs) ?? 4096 }

    /// The length asked for, else the rest of the device.
    func lengthBytes(_ device: BlkDevice) throws -> UInt64 {
        if let length { return UInt64(BlkSize.parse(length) ?? 0) }
        guard let capacity = device.info.capacity else {
            printError("sluice-gen blk: the device did not report its capacity (no GET_CONFIG); give --length")
            throw ExitCode(2)
        }
        let end = capacity &* 512
        guard end > offsetBytes else {
            printError("sluice-gen blk: --offset \(offsetBytes) is at or past the end of the device (\(end) bytes)")
            throw ExitCode(2)
        }
        return end - offsetBytes
    }
}

// MARK: - info

struct BlkInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Negotiate and print what the device offers (capacity, limits, features).")

    @OptionGroup var device: BlkOptions

    func run() throws {
        let blk = try device.open(requestBytes: 4096, depth: 1)
        let i = blk.info
        var s = Summary(mode: "blk-info")
        var lines: [String] = []
        if let c = i.capacity {
            s.add("capacity_sectors", c)
            s.add("capacity_bytes", c &* 512)
            lines.append("capacity: \(c) sectors (\(c &* 512) bytes)")
        } else {
            lines.append("capacity: unknown (no GET_CONFIG)")
        }
        let fields: [(String, String, UInt64?)] = [
            ("blk_size", "block size", i.blkSize.map(UInt64.init)),
            ("size_max", "size_max", i.sizeMax.map(UInt64.init)),
            ("seg_max", "seg_max", i.segMax.map(UInt64.init)),
            ("num_queues", "queues", UInt64(i.maxQueues)),
            ("max_discard_sectors", "max discard sectors", i.maxDiscardSectors.map(UInt64.init)),
            ("max_discard_seg", "max discard segments", i.maxDiscardSegments.map(UInt64.init)),
            ("discard_sector_alignment", "discard alignment (sectors)", i.discardAlignment.map(UInt64.init)),
            ("max_write_zeroes_sectors", "max write-zeroes sectors", i.maxWriteZeroesSectors.map(UInt64.init)),
        ]
        for (key, label, value) in fields {
            guard let value else { continue }
            s.add(key, value)
            lines.append("\(label): \(value)")
        }
        s.add("read_only", i.readOnly)
        lines.append("read-only: \(i.readOnly ? "yes" : "no")")
        if let unmap = i.writeZeroesMayUnmap { s.add("write_zeroes_may_unmap", unmap) }
        s.add("features", string: BlkFeatures.describe(i.ackedFeatures))
        s.add("offered_features", string: BlkFeatures.describe(i.offeredFeatures))
        s.add("protocol_features", string: BlkFeatures.describe(i.ackedProtocolFeatures))
        s.add("offered_protocol_features", string: BlkFeatures.describe(i.offeredProtocolFeatures))
        lines.append("features: \(BlkFeatures.describe(i.ackedFeatures)) (offered \(BlkFeatures.describe(i.offeredFeatures)))")
        lines.append("protocol features: \(BlkFeatures.describe(i.ackedProtocolFeatures)) (offered \(BlkFeatures.describe(i.offeredProtocolFeatures)))")
        do { try blk.disconnect() } catch {
            printError("sluice-gen blk: stopping the rings: \(error)")
            throw ExitCode(1)
        }
        print(device.json ? s.json() : lines.joined(separator: "\n"))
    }
}
