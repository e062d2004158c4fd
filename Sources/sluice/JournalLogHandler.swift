import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Log lines for journald: `<N>message`, N the syslog priority as
/// sd-daemon.h prefixes it (journald reads the prefix and adds its own
/// timestamp, so none is written here). Each line of a multi-line message
/// carries the prefix, so no part is logged at the wrong priority.
struct JournalLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The syslog priority of a level (sd-daemon.h: SD_ERR is <3>, SD_WARNING <4>, …).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// The text written for one record, ending in a newline.
    static func format(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var text = message
        if !metadata.isEmpty {
            text += " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        let prefix = "<\(priority(level))>"
        return text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { prefix + $0 + "\n" }.joined()
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        let text = Self.format(level: event.level, message: "\(event.message)", metadata: all)
        // One write per record, so records of different threads do not interleave.
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }

    /// True when standard error is the stream journald gave this process:
    /// `$JOURNAL_STREAM` is `DEVICE:INODE` of it (systemd.exec(5)). A process
    /// that merely inherited the variable, with stderr redirected elsewhere, logs as usual.
    static var stderrIsJournal: Bool {
        guard let raw = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: raw).split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }
}
