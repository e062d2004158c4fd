/// Which NVMe controllers sluice drives (`[nvme] pci`).
public enum NVMePCI: Equatable, Sendable, CustomStringConvertible {
    /// Every controller of PCI class 0x010802 (NVM Express) that is bound to vfio-pci.
    case auto
    /// These controllers, in file order: unique, each normalised to lower-case `dddd:bb:dd.f`.
    case list([String])

    public var description: String {
        switch self {
        case .auto: "auto"
        case .list(let addresses): addresses.joined(separator: ", ")
        }
    }
}

/// How a controller signals completions in event mode (`[nvme] interrupts`).
public enum NVMeInterrupts: String, Equatable, Sendable, CaseIterable {
    case msix
    case msi
    case intx
}

/// The `[nvme]` section: how sluice drives NVMe controllers bound to vfio-pci. Every
/// value is range-checked here; what depends on the controller (the queue depth against
/// CAP.MQES, whether it has MSI) is checked at start, at the key's line.
public struct NVMeConfig: Equatable, Sendable {
    public static let defaultIOQueueDepth = 256
    /// An I/O queue holds at most 65536 entries (QSIZE is 16 bits, 0's based); a queue of
    /// one entry could never hold a command, as one slot always stays empty.
    public static let ioQueueDepthRange = 2...65536
    public static let defaultAdminTimeoutMillis = 5000
    public static let defaultIOTimeoutMillis = 30000
    /// Both timeouts: at least a millisecond, at most ten minutes.
    public static let timeoutRange = 1...600_000

    /// Line of the `[nvme]` header.
    public var line: Int
    public var pci: NVMePCI = .auto
    /// SGLs for data when the controller supports them; false = PRP lists only.
    public var sgl = true
    public var interrupts: NVMeInterrupts = .msix
    /// Entries per I/O submission (and completion) queue.
    public var ioQueueDepth = NVMeConfig.defaultIOQueueDepth
    /// How long an admin command may take before the controller is given up.
    public var adminTimeoutMillis = NVMeConfig.defaultAdminTimeoutMillis
    /// How long an I/O command may take before its request fails.
    public var ioTimeoutMillis = NVMeConfig.defaultIOTimeoutMillis

    // Lines of the keys, nil when the key is absent: errors found at start point at
    // the key (or, for a default, at `line`).
    public var pciLine: Int?
    public var sglLine: Int?
    public var interruptsLine: Int?
    public var ioQueueDepthLine: Int?
    public var adminTimeoutLine: Int?
    public var ioTimeoutLine: Int?

    public init(line: Int) {
        self.line = line
    }

    /// `address` as lower-case `dddd:bb:dd.f` (a `bb:dd.f` gets domain 0000), or nil
    /// when it is not a PCI address: 4 hex digits of domain, 2 of bus, a device 00..1f
    /// and a function 0..7, as sysfs names them.
    public static func normalizedPCIAddress(_ address: String) -> String? {
        let text = address.lowercased()
        let full = text.utf8.count == 7 ? "0000:" + text : text
        let bytes = Array(full.utf8)
        guard bytes.count == 12, bytes[4] == UInt8(ascii: ":"), bytes[7] == UInt8(ascii: ":"),
              bytes[10] == UInt8(ascii: ".") else { return nil }
        for i in [0, 1, 2, 3, 5, 6, 8, 9, 11] where !isLowerHexDigit(bytes[i]) { return nil }
        guard let device = Int(String(full.dropFirst(8).prefix(2)), radix: 16), device <= 0x1f,
              bytes[11] >= UInt8(ascii: "0"), bytes[11] <= UInt8(ascii: "7") else { return nil }
        return full
    }

    private static func isLowerHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }
}

enum NVMeDecoder {
    /// The one `[nvme]` section (a second is reported by the parser as a duplicate section).
    static func decode(_ section: RawSection, log: inout DiagnosticLog) -> NVMeConfig {
        var reader = SectionReader(section)
        var config = NVMeConfig(line: section.line)
        if let entry = reader.entry("pci") {
            config.pciLine = entry.line
            config.pci = pciList(entry, log: &log) ?? .auto
        }
        if let entry = reader.entry("sgl") {
            config.sglLine = entry.line
            switch entry.value {
            case "on": config.sgl = true
            case "off": config.sgl = false
            default: log.error(entry.line, "'sgl' must be on or off, got '\(excerpt(entry.value))'")
            }
        }
        config.interruptsLine = reader.entry("interrupts")?.line
        config.interrupts = reader.choice("interrupts", NVMeInterrupts.self, log: &log) ?? .msix
        config.ioQueueDepthLine = reader.entry("io-queue-depth")?.line
        config.ioQueueDepth = reader.integer("io-queue-depth", in: NVMeConfig.ioQueueDepthRange, log: &log)
            ?? NVMeConfig.defaultIOQueueDepth
        config.adminTimeoutLine = reader.entry("admin-timeout-ms")?.line
        config.adminTimeoutMillis = reader.integer("admin-timeout-ms", in: NVMeConfig.timeoutRange, log: &log)
            ?? NVMeConfig.defaultAdminTimeoutMillis
        config.ioTimeoutLine = reader.entry("io-timeout-ms")?.line
        config.ioTimeoutMillis = reader.integer("io-timeout-ms", in: NVMeConfig.timeoutRange, log: &log)
            ?? NVMeConfig.defaultIOTimeoutMillis
        reader.reportUnknownKeys(log: &log)
        return config
    }

    /// `auto`, or PCI addresses separated by commas and/or blanks. Nil if any element is
    /// bad (each reported), so that a half-understood list never selects controllers.
    private static func pciList(_ entry: RawEntry, log: inout DiagnosticLog) -> NVMePCI? {
        if entry.value == "auto" { return .auto }
        var addresses: [String] = []
        var isValid = true
        for element in entry.value.split(separator: ",", omittingEmptySubsequences: false) {
            let words = element.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.isEmpty {
                log.error(entry.line, "empty address in the list '\(excerpt(entry.value))'")
                isValid = false
            }
            for word in words {
                if word == "auto" {
                    log.error(entry.line, "'auto' must stand alone in 'pci', got '\(excerpt(entry.value))'")
                    isValid = false
                } else if let address = NVMeConfig.normalizedPCIAddress(String(word)) {
                    if addresses.contains(address) {
                        log.error(entry.line, "PCI address \(address) is listed twice in 'pci'")
                        isValid = false
                    } else {
                        addresses.append(address)
                    }
                } else {
                    log.error(entry.line, "bad PCI address '\(excerpt(word))' in 'pci': use auto or addresses such as 0000:00:04.0 (DDDD:BB:DD.F, or BB:DD.F in domain 0000)")
                    isValid = false
                }
            }
        }
        return isValid ? .list(addresses) : nil
    }
}
