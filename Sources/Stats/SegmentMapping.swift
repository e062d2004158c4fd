// The stats segment's view of the system: a shared mapping, file identities,
// clocks and "does this process exist" (the calls themselves are Platform's).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Platform

/// The text of the current `errno`.
func errnoText(_ code: Int32 = errno) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

/// CLOCK_REALTIME in nanoseconds: the heartbeat clock. Wall time, so a reader in
/// another process can compare it with its own clock.
func realtimeNanoseconds() -> UInt64 {
    Clock.realtimeNanos()
}

/// true when a process with this pid exists and is not a zombie.
func processExists(_ pid: Int32) -> Bool {
    Processes.exists(pid)
}

/// Identity of a file, to tell whether a path still names the file we mapped.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    init(_ status: FileStatus) {
        device = status.device
        inode = status.inode
    }

    /// The identity of whatever `path` names now, or nil when nothing does.
    static func of(path: String) -> FileIdentity? {
        SharedFile.status(path: path).map(FileIdentity.init)
    }
}

/// A shared mapping of a whole file. Owned by one writer or reader object,
/// which unmaps it in its deinit.
struct SegmentMapping {
    let base: UnsafeMutableRawPointer
    let size: Int

    /// Map `size` bytes of `fd` shared.
    static func map(fd: Int32, size: Int, writable: Bool) throws(SystemError) -> SegmentMapping {
        SegmentMapping(base: try SharedMapping.map(fd: fd, length: size, writable: writable), size: size)
    }

    /// Swap the file pages for private zero pages at the same address, so any
    /// pointer into the segment stays valid but writes no longer reach the file.
    func detachFromFile() {
        SharedMapping.detachFromFile(base, length: size)
    }

    func unmap() {
        SharedMapping.unmap(base, length: size)
    }

    // Plain accessors for the header's write-once fields (written before the
    // file is renamed into place, so no reader ever races with them).
    func u32(at offset: Int) -> UInt32 { base.load(fromByteOffset: offset, as: UInt32.self) }
    func u64(at offset: Int) -> UInt64 { base.load(fromByteOffset: offset, as: UInt64.self) }
    func i32(at offset: Int) -> Int32 { base.load(fromByteOffset: offset, as: Int32.self) }
    func setU32(_ value: UInt32, at offset: Int) { base.storeBytes(of: value, toByteOffset: offset, as: UInt32.self) }
    func setU64(_ value: UInt64, at offset: Int) { base.storeBytes(of: value, toByteOffset: offset, as: UInt64.self) }
    func setI32(_ value: Int32, at offset: Int) { base.storeBytes(of: value, toByteOffset: offset, as: Int32.self) }

    /// A NUL-padded string field of at most `capacity` bytes.
    func string(at offset: Int, capacity: Int) -> String {
        let bytes = UnsafeRawBufferPointer(start: base + offset, count: capacity)
        let used = bytes.firstIndex(of: 0) ?? capacity
        return String(decoding: bytes[0..<used], as: UTF8.self)
    }

    func setString(_ text: String, at offset: Int, capacity: Int) {
        let field = UnsafeMutableRawBufferPointer(start: base + offset, count: capacity)
        field.initializeMemory(as: UInt8.self, repeating: 0)
        var index = 0
        for byte in text.utf8 where index < capacity - 1 {
            field[index] = byte
            index += 1
        }
    }
}

/// Counter names: 1...55 bytes of printable ASCII with no space, so every
/// output format (text columns, JSON keys, Prometheus labels) can carry them.
func counterNameProblem(_ name: String) -> String? {
    let bytes = name.utf8
    if bytes.isEmpty { return "counter name is empty" }
    if bytes.count > StatsLayout.maxNameBytes {
        return "counter name '\(name)' is \(bytes.count) bytes, at most \(StatsLayout.maxNameBytes) allowed"
    }
    if let bad = bytes.first(where: { $0 <= 0x20 || $0 >= 0x7F }) {
        return "counter name '\(name)' contains byte 0x\(String(bad, radix: 16)); only printable ASCII without spaces is allowed"
    }
    return nil
}

/// Instance names become part of a file name: letters, digits, '-', '_', '.',
/// not starting with '.', at most 63 bytes.
func instanceNameProblem(_ instance: String) -> String? {
    let bytes = Array(instance.utf8)
    if bytes.isEmpty { return "instance name is empty" }
    if bytes.count > StatsLayout.maxInstanceBytes {
        return "instance name '\(instance)' is longer than \(StatsLayout.maxInstanceBytes) bytes"
    }
    if bytes[0] == UInt8(ascii: ".") { return "instance name '\(instance)' starts with '.'" }
    let allowed: (UInt8) -> Bool = { byte in
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
    }
    if !bytes.allSatisfy(allowed) {
        return "instance name '\(instance)' may contain only letters, digits, '-', '_' and '.'"
    }
    return nil
}

/// The segment path of an instance, and the instance a segment path implies.
public enum StatsPath {
    public static let directory = "/dev/shm"

    public static func path(forInstance instance: String) -> String {
        "\(directory)/sluice-\(instance).stats"
    }

    /// "x" for ".../sluice-x.stats", otherwise nil.
    public static func instance(forPath path: String) -> String? {
        let fileName = path.split(separator: "/").last.map(String.init) ?? path
        if fileName.hasPrefix("sluice-"), fileName.hasSuffix(".stats"), fileName.count > 13 {
            return String(fileName.dropFirst(7).dropLast(6))
        }
        return nil
    }
}
