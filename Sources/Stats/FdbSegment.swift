import CSluice
import Platform

// A switch's MAC table lives in its own shared-memory file, so `sluice-stat --fdb`
// reads it live, as it reads counters, without calling into the daemon.
//
//   0      header (4 KiB)
//            0  magic "SLUICEFD"         u64
//            8  layout version           u32
//           12  capacity (power of two)  u32   entries in the table
//           16  port count               u32
//           20  aging, seconds           u32   0 = never
//           24  now, seconds             u64   the daemon's clock, updated ~10×/s
//           32  writer pid               i32
//          256  port names: 64 × 32 bytes, NUL padded
//   4 KiB  entries: capacity × 16 bytes
//            0  key   u64  0 = empty, all ones = deleted, else VLAN << 48 | MAC (48 bits, as read big-endian)
//            8  value u64  (port + 1) in bits 0..15, last seen (seconds) in bits 32..63
//
// Keys and values are written with atomic 64-bit stores by the daemon; a reader may
// see an entry mid-update (a key with a zero value) and skips it.
public enum FdbLayout {
    public static let magic: UInt64 = 0x4446_4543_4955_4C53   // "SLUICEFD"
    public static let version: UInt32 = 1
    public static let headerSize = 4096
    public static let entrySize = 16
    public static let maxPorts = 64
    public static let portNameBytes = 32
    public static let offCapacity = 12, offPorts = 16, offAging = 20, offNow = 24, offPID = 32, offNames = 256
    public static let empty: UInt64 = 0
    public static let deleted: UInt64 = ~0

    public static func path(instance: String, switchName: String) -> String {
        "\(StatsPath.directory)/sluice-\(instance).fdb.\(switchName)"
    }
}

/// The daemon's side: creates the file and keeps it mapped for the switch's life.
public final class FdbSegment: @unchecked Sendable {
    public let path: String
    public let base: UnsafeMutableRawPointer
    public let capacity: Int
    private let size: Int

    public init(path: String, capacity: Int, ports: [String], aging: Int) throws(StatsError) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0)
        self.path = path
        self.capacity = capacity
        size = FdbLayout.headerSize + capacity * FdbLayout.entrySize
        SharedFile.remove(path)
        let file: OwnedFD
        do { file = try SharedFile.create(path: path, mode: 0o644) } catch {
            throw StatsError("fdb segment \(path): \(errnoText(error.errno))")
        }
        let m: SegmentMapping
        do throws(SystemError) {
            try SharedFile.setSize(file.raw, size)
            m = try SegmentMapping.map(fd: file.raw, size: size, writable: true)
        } catch {
            SharedFile.remove(path)
            throw StatsError("fdb segment \(path): \(errnoText(error.errno))")
        }
        base = m.base
        m.setU64(FdbLayout.magic, at: 0)
        m.setU32(FdbLayout.version, at: 8)
        m.setU32(UInt32(capacity), at: FdbLayout.offCapacity)
        m.setU32(UInt32(min(ports.count, FdbLayout.maxPorts)), at: FdbLayout.offPorts)
        m.setU32(UInt32(aging), at: FdbLayout.offAging)
        m.setI32(Processes.currentID, at: FdbLayout.offPID)
        for (i, name) in ports.prefix(FdbLayout.maxPorts).enumerated() {
            m.setString(name, at: FdbLayout.offNames + i * FdbLayout.portNameBytes, capacity: FdbLayout.portNameBytes)
        }
    }

    /// The table's entries (capacity × 16 bytes).
    public var entries: UnsafeMutableRawPointer { base + FdbLayout.headerSize }

    public func setNow(seconds: UInt64) { sl_store_release_u64(base + FdbLayout.offNow, seconds) }

    private var removed = false

    /// Unlink the file and unmap the table (once; also when the owner goes away without it,
    /// e.g. a start-up that failed after the switch was built).
    public func remove() {
        guard !removed else { return }
        removed = true
        SharedFile.remove(path)
        SharedMapping.unmap(base, length: size)
    }

    deinit { remove() }
}

/// One learned address, as a reader sees it.
public struct FdbEntry: Sendable, Equatable {
    public var mac: [UInt8]
    public var vlan: Int
    public var port: String
    public var ageSeconds: Int

    public var macText: String { mac.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: ":") }
}

/// `sluice-stat --fdb`: read a switch's table from its file.
public enum FdbReader {
    public static func read(path: String) throws(StatsError) -> (aging: Int, entries: [FdbEntry]) {
        let file: OwnedFD
        do { file = try SharedFile.openReadOnly(path: path) } catch {
            throw StatsError("cannot open \(path): \(errnoText(error.errno))")
        }
        guard let fileSize = try? SharedFile.status(file.raw).size, fileSize >= FdbLayout.headerSize,
              let m = try? SegmentMapping.map(fd: file.raw, size: fileSize, writable: false) else {
            throw StatsError("\(path): not a sluice fdb segment")
        }
        defer { m.unmap() }
        guard m.u64(at: 0) == FdbLayout.magic, m.u32(at: 8) == FdbLayout.version else {
            throw StatsError("\(path): not a sluice fdb segment (or another layout version)")
        }
        let capacity = Int(m.u32(at: FdbLayout.offCapacity))
        guard FdbLayout.headerSize + capacity * FdbLayout.entrySize <= fileSize else {
            throw StatsError("\(path): truncated")
        }
        let portCount = min(Int(m.u32(at: FdbLayout.offPorts)), FdbLayout.maxPorts)
        let names = (0..<portCount).map { m.string(at: FdbLayout.offNames + $0 * FdbLayout.portNameBytes, capacity: FdbLayout.portNameBytes) }
        let now = sl_load_acquire_u64(m.base + FdbLayout.offNow)
        var out: [FdbEntry] = []
        let table = m.base + FdbLayout.headerSize
        for i in 0..<capacity {
            let e = table + i * FdbLayout.entrySize
            let key = sl_load_acquire_u64(e)
            let value = sl_load_acquire_u64(e + 8)
            guard key != FdbLayout.empty, key != FdbLayout.deleted, value & 0xffff != 0 else { continue }
            let port = Int(value & 0xffff) - 1
            let seen = value >> 32
            let mac = (0..<6).map { UInt8(truncatingIfNeeded: key >> UInt64(40 - 8 * $0)) }
            out.append(FdbEntry(mac: mac, vlan: Int(key >> 48), port: port < names.count ? names[port] : "#\(port)",
                                ageSeconds: now >= seen ? Int(now - seen) : 0))
        }
        out.sort { ($0.vlan, $0.macText) < ($1.vlan, $1.macText) }
        return (Int(m.u32(at: FdbLayout.offAging)), out)
    }
}
