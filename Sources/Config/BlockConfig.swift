/// `[disk NAME]`: a backing store (a regular file or a block device) that `[blk]`
/// sections export, whole or by GPT partition.
public struct DiskConfig: Equatable, Sendable {
    public var name: String
    public var line: Int
    public var file: String
    public var fileLine: Int
    /// Logical block size offered to guests: 512 or 4096.
    public var blockSize: Int

    public init(name: String, line: Int, file: String, fileLine: Int, blockSize: Int = 512) {
        self.name = name; self.line = line; self.file = file; self.fileLine = fileLine; self.blockSize = blockSize
    }
}

/// What a `[blk]` exports.
public enum BlkDevice: Equatable, Sendable, CustomStringConvertible {
    /// A whole `[disk]`.
    case disk(String)
    /// A GPT partition, by its unique partition GUID (canonical upper case), on any disk
    /// or NVMe namespace.
    case partition(String)
    /// An NVMe namespace, `SERIAL:nN`: namespace `nsid` of the controller whose Identify
    /// serial number (trailing spaces dropped) is `serial`. The serial, not a PCI address,
    /// names it, so that the export follows the controller to another slot.
    case namespace(serial: String, nsid: UInt32)

    /// Namespace IDs a `SERIAL:nN` may name: 0 is no namespace and 0xFFFFFFFF means all.
    public static let nsidRange: ClosedRange<UInt32> = 1...0xFFFF_FFFE

    /// The form the file uses: `disk:NAME`, the GUID, or `SERIAL:nN`.
    public var description: String {
        switch self {
        case .disk(let d): "disk:\(d)"
        case .partition(let u): u
        case .namespace(let serial, let nsid): "\(serial):n\(nsid)"
        }
    }
}

/// `[blk NAME]`: a vhost-user-blk device.
public struct BlkConfig: Equatable, Sendable {
    public static let defaultQueueSize = 256
    public static let maxQueues = 16

    public var name: String
    public var line: Int
    public var device: BlkDevice
    public var deviceLine: Int
    public var socket: String
    public var mode: PortMode = .server
    public var socketAccess = SocketAccess()
    public var readOnly = false
    public var queues = 1
    public var queueSize = BlkConfig.defaultQueueSize
    public var dsMax = PortConfig.defaultDsMax
    /// GET_ID's answer (at most 20 bytes); the section name by default.
    public var serial: String
    /// Whether the section set `serial` (an NVMe export otherwise answers the controller's).
    public var serialGiven: Bool

    public init(name: String, line: Int, device: BlkDevice, deviceLine: Int, socket: String, serial: String? = nil) {
        self.name = name; self.line = line; self.device = device; self.deviceLine = deviceLine
        self.socket = socket; self.serial = serial ?? String(name.prefix(20)); serialGiven = serial != nil
    }
}

struct DecodedBlk {
    var config: BlkConfig?
    var socketLine: Int?
}

enum DiskDecoder {
    static func decode(_ section: RawSection, log: inout DiagnosticLog) -> DiskConfig? {
        var reader = SectionReader(section)
        let file = reader.required("file", " (a regular file or a block device)", log: &log)
        var blockSize = 512
        if let entry = reader.entry("block-size") {
            if entry.value == "512" || entry.value == "4096" { blockSize = Int(entry.value)! } else {
                log.error(entry.line, "bad 'block-size' '\(excerpt(entry.value))': 512 or 4096")
            }
        }
        reader.reportUnknownKeys(log: &log)
        guard let file else { return nil }
        if !file.value.hasPrefix("/") {
            log.error(file.line, "'file' must be an absolute path, got '\(excerpt(file.value))'")
            return nil
        }
        return DiskConfig(name: section.name, line: section.line, file: normalizedPath(file.value), fileLine: file.line,
                          blockSize: blockSize)
    }
}

enum BlkDecoder {
    static func decode(_ section: RawSection, dataplane: DataplaneConfig, log: inout DiagnosticLog) -> DecodedBlk {
        var reader = SectionReader(section)
        var decoded = DecodedBlk()
        var device: BlkDevice?
        var deviceLine = section.line
        if let entry = reader.required("device", " (disk:NAME, SERIAL:nN or a GPT partition GUID)", log: &log) {
            deviceLine = entry.line
            device = parseDevice(entry, log: &log)
        }
        var socket: String?
        if let entry = reader.required("socket", " for a blk device", log: &log) {
            decoded.socketLine = entry.line
            socket = PortDecoder.socketPath(entry, socketDir: dataplane.socketDir, log: &log)
        }
        let mode = reader.choice("mode", PortMode.self, log: &log) ?? .server
        var access = SocketAccess()
        if mode == .server {
            access = reader.socketAccess(log: &log).over(dataplane.socketAccess)
        } else {
            for key in SocketAccess.keys {
                reader.forbid(key, "only applies to server mode (in client mode the front-end creates the socket)", log: &log)
            }
        }
        let readOnly = reader.boolean("read-only", log: &log) ?? false
        let queues = reader.integer("queues", in: 1...BlkConfig.maxQueues, log: &log) ?? 1
        let queueSize = reader.powerOfTwo("queue-size", in: 1...PortConfig.maxQueueSize, log: &log) ?? BlkConfig.defaultQueueSize
        let dsMax = reader.integer("ds-max", in: 1...PortConfig.maxDsMax, log: &log) ?? PortConfig.defaultDsMax
        var serial: String?
        if let entry = reader.entry("serial") {
            if entry.value.utf8.count > 20 || !entry.value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7f }) {
                log.error(entry.line, "bad 'serial' '\(excerpt(entry.value))': at most 20 printable ASCII characters")
            } else {
                serial = entry.value
            }
        }
        reader.reportUnknownKeys(log: &log)
        guard let device, let socket else { return decoded }
        var c = BlkConfig(name: section.name, line: section.line, device: device, deviceLine: deviceLine,
                          socket: socket, serial: serial)
        c.mode = mode
        c.socketAccess = access
        c.readOnly = readOnly
        c.queues = queues
        c.queueSize = queueSize
        c.dsMax = dsMax
        decoded.config = c
        return decoded
    }

    /// The three forms that cannot be mistaken for each other: `disk:NAME` (the prefix
    /// wins), `SERIAL:nN` (any other value with a ':'), or a GUID (8-4-4-4-12 hex digits,
    /// either case; kept upper case, and never with a ':').
    static func parseDevice(_ entry: RawEntry, log: inout DiagnosticLog) -> BlkDevice? {
        let v = entry.value
        if v.hasPrefix("disk:") {
            let name = String(v.dropFirst(5))
            if name.isEmpty {
                log.error(entry.line, "'device = disk:' needs a [disk] name after 'disk:'")
                return nil
            }
            return .disk(name)
        }
        var reason = ""
        if v.contains(":") {
            switch parseNamespace(v) {
            case .success(let device): return device
            case .failure(let problem): reason = problem.message + "; "
            }
        } else if let uuid = canonicalGUID(v) {
            return .partition(uuid)
        }
        log.error(entry.line, "bad 'device' '\(excerpt(v))': \(reason)use disk:NAME for a whole [disk], SERIAL:nN for namespace N of the NVMe controller with that serial (e.g. SN1234:n1), or a GPT partition GUID such as 0FC63DAF-8483-4772-8E79-3D69D8477DE4")
        return nil
    }

    struct DeviceProblem: Error {
        var message: String
    }

    /// `SERIAL:nN`: a serial of 1 to 20 printable ASCII characters without spaces or ':'
    /// (Identify's 20-byte serial field), and a decimal namespace ID without leading zeros,
    /// so that `description` gives back what the file says.
    static func parseNamespace(_ text: String) -> Result<BlkDevice, DeviceProblem> {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .failure(DeviceProblem(message: "an NVMe namespace has one ':'")) }
        let serial = parts[0], number = parts[1]
        guard !serial.isEmpty, serial.utf8.count <= 20,
              serial.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            return .failure(DeviceProblem(message: "an NVMe serial is 1 to 20 printable ASCII characters without spaces"))
        }
        let range = BlkDevice.nsidRange
        guard number.hasPrefix("n"), let nsid = parseDecimal(number.dropFirst()), !number.hasPrefix("n0"),
              nsid >= Int(range.lowerBound), nsid <= Int(range.upperBound) else {
            return .failure(DeviceProblem(message: "the namespace after ':' is n1..n\(range.upperBound)"))
        }
        return .success(.namespace(serial: String(serial), nsid: UInt32(nsid)))
    }

    /// Canonical upper-case form of a GUID written 8-4-4-4-12, or nil.
    static func canonicalGUID(_ text: String) -> String? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.map(\.count) == [8, 4, 4, 4, 12],
              parts.allSatisfy({ $0.allSatisfy(\.isHexDigit) }) else { return nil }
        return text.uppercased()
    }

    /// Every `disk:NAME` names a `[disk]`; blk and vhost-user port sockets are all different.
    static func checkReferences(_ blks: [DecodedBlk], disks: [DiskConfig], diskNames: Set<String>, ports: [DecodedPort],
                                log: inout DiagnosticLog) {
        var sockets: [String: (what: String, line: Int)] = [:]
        for p in ports {
            if let c = p.config, let path = c.socket, let line = p.socketLine { sockets[path] = sockets[path] ?? ("port '\(c.name)'", line) }
        }
        for b in blks {
            guard let c = b.config else { continue }
            if case .disk(let name) = c.device, !diskNames.contains(name) {
                let hint = nearestKey(to: name, among: diskNames).map { " (did you mean '\($0)'?)" } ?? ""
                log.error(c.deviceLine, "blk '\(c.name)': no [disk \(name)] section\(hint)")
            }
            if let line = b.socketLine {
                if let first = sockets[c.socket] {
                    log.error(line, "socket path '\(c.socket)' is already used by \(first.what) (line \(first.line))")
                } else {
                    sockets[c.socket] = ("blk '\(c.name)'", line)
                }
            }
        }
    }
}
