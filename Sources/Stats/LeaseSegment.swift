import CSluice
import Platform

// A network's leases live in their own shared-memory file, rewritten by the control
// thread on every change, so `sluice-stat --leases NETWORK` reads them live without
// calling into the daemon.
//
//   0    header (128 bytes)
//          0  magic "SLUICELS"          u64
//          8  layout version            u32
//         12  capacity                  u32   records the file has room for
//         16  sequence                  u64   odd while the writer changes the records
//         24  records in use            u32
//         28  writer pid                i32
//         32  published at, seconds     u64   CLOCK_REALTIME
//         40  rows the writer had       u32   more than capacity: the rest is not shown
//   128  records: capacity × 80 bytes
//          0  MAC                       6 bytes
//          6  flags                     u8    1 has IPv4, 2 has IPv6, 4 IPv4 bound, 8 IPv6 bound
//          8  IPv4                      4 bytes, wire order
//         16  IPv6                      16 bytes, wire order
//         32  IPv4 expiry, seconds      u64   CLOCK_REALTIME
//         40  IPv6 expiry, seconds      u64
//         48  port name                 32 bytes, NUL padded
//
// A seqlock: the writer makes the sequence odd, rewrites the records, and makes it
// even again; a reader copies the records between two reads of the same even value.
public enum LeaseLayout {
    public static let magic: UInt64 = 0x534C_4543_4955_4C53   // "SLUICELS"
    public static let version: UInt32 = 1
    public static let headerSize = 128
    public static let recordSize = 80
    public static let portNameBytes = 32
    public static let offCapacity = 12, offSequence = 16, offCount = 24, offPID = 28, offPublished = 32, offTotal = 40
}

/// One lease as the table shows it (Stats knows no address types: raw octets).
public struct LeaseRow: Sendable, Equatable {
    public var mac: [UInt8]
    /// 4 octets, or nil.
    public var ipv4: [UInt8]?
    /// 16 octets, or nil.
    public var ipv6: [UInt8]?
    public var port: String
    /// Seconds, CLOCK_REALTIME; meaningful with the address.
    public var expiry4: UInt64
    public var expiry6: UInt64
    /// Bound (acknowledged) rather than offered, released or expired.
    public var bound4: Bool
    public var bound6: Bool

    public init(mac: [UInt8], ipv4: [UInt8]? = nil, ipv6: [UInt8]? = nil, port: String, expiry4: UInt64 = 0, expiry6: UInt64 = 0,
                bound4: Bool = false, bound6: Bool = false) {
        self.mac = mac
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.port = port
        self.expiry4 = expiry4
        self.expiry6 = expiry6
        self.bound4 = bound4
        self.bound6 = bound6
    }

    public var macText: String { mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":") }
    public var ipv4Text: String? { ipv4.map { $0.map(String.init).joined(separator: ".") } }
    public var ipv6Text: String? { ipv6.map(LeaseRow.ipv6Text) }

    /// RFC 5952: lowercase, no leading zeros, the longest run of two or more zero groups as `::`.
    static func ipv6Text(_ b: [UInt8]) -> String {
        guard b.count == 16 else { return "?" }
        let g = (0..<8).map { UInt16(b[2 * $0]) << 8 | UInt16(b[2 * $0 + 1]) }
        var best = (start: -1, length: 0), i = 0
        while i < 8 {
            var j = i
            while j < 8 && g[j] == 0 { j += 1 }
            if j - i >= 2 && j - i > best.length { best = (i, j - i) }
            i = max(j, i + 1)
        }
        func hex(_ r: Range<Int>) -> String { r.map { String(g[$0], radix: 16) }.joined(separator: ":") }
        return best.start < 0 ? hex(0..<8) : hex(0..<best.start) + "::" + hex((best.start + best.length)..<8)
    }
}

/// The daemon's side: creates the file and keeps it mapped for the network's life.
public final class LeaseSegment: @unchecked Sendable {
    public let path: String
    public let capacity: Int
    private let base: UnsafeMutableRawPointer
    private let size: Int

    public static func path(instance: String, network: String) -> String {
        "\(StatsPath.directory)/sluice-\(instance).leases.\(network)"
    }

    public init(path: String, capacity: Int) throws(StatsError) {
        guard capacity > 0, capacity <= 1 << 20 else { throw StatsError("lease segment \(path): capacity \(capacity) out of range") }
        self.path = path
        self.capacity = capacity
        size = LeaseLayout.headerSize + capacity * LeaseLayout.recordSize
        SharedFile.remove(path)
        let file: OwnedFD
        do { file = try SharedFile.create(path: path, mode: 0o644) } catch {
            throw StatsError("lease segment \(path): \(errnoText(error.errno))")
        }
        let m: SegmentMapping
        do throws(SystemError) {
            try SharedFile.setSize(file.raw, size)
            m = try SegmentMapping.map(fd: file.raw, size: size, writable: true)
        } catch {
            SharedFile.remove(path)
            throw StatsError("lease segment \(path): \(errnoText(error.errno))")
        }
        base = m.base
        m.setU32(LeaseLayout.version, at: 8)
        m.setU32(UInt32(capacity), at: LeaseLayout.offCapacity)
        m.setI32(Processes.currentID, at: LeaseLayout.offPID)
        // The magic last: a reader that sees it sees a complete header.
        sl_store_release_u64(base, LeaseLayout.magic)
    }

    /// Replaces the table with `rows` (the first `capacity` of them).
    public func publish(_ rows: [LeaseRow], now: UInt64 = Clock.realtimeNanos() / 1_000_000_000) {
        guard !removed else { return }
        let sequence = sl_load_relaxed_u64(base + LeaseLayout.offSequence)
        sl_store_relaxed_u64(base + LeaseLayout.offSequence, sequence | 1)
        sl_fence_release()
        let shown = min(rows.count, capacity)
        for (i, row) in rows.prefix(shown).enumerated() {
            let r = base + LeaseLayout.headerSize + i * LeaseLayout.recordSize
            r.initializeMemory(as: UInt8.self, repeating: 0, count: LeaseLayout.recordSize)
            for (k, b) in row.mac.prefix(6).enumerated() { r.storeBytes(of: b, toByteOffset: k, as: UInt8.self) }
            var flags: UInt8 = 0
            if let a = row.ipv4, a.count == 4 {
                flags |= 1 | (row.bound4 ? 4 : 0)
                for (k, b) in a.enumerated() { r.storeBytes(of: b, toByteOffset: 8 + k, as: UInt8.self) }
                r.storeBytes(of: row.expiry4, toByteOffset: 32, as: UInt64.self)
            }
            if let a = row.ipv6, a.count == 16 {
                flags |= 2 | (row.bound6 ? 8 : 0)
                for (k, b) in a.enumerated() { r.storeBytes(of: b, toByteOffset: 16 + k, as: UInt8.self) }
                r.storeBytes(of: row.expiry6, toByteOffset: 40, as: UInt64.self)
            }
            r.storeBytes(of: flags, toByteOffset: 6, as: UInt8.self)
            var k = 0
            for b in row.port.utf8 where k < LeaseLayout.portNameBytes - 1 {
                r.storeBytes(of: b, toByteOffset: 48 + k, as: UInt8.self)
                k += 1
            }
        }
        base.storeBytes(of: UInt32(shown), toByteOffset: LeaseLayout.offCount, as: UInt32.self)
        base.storeBytes(of: UInt32(clamping: rows.count), toByteOffset: LeaseLayout.offTotal, as: UInt32.self)
        base.storeBytes(of: now, toByteOffset: LeaseLayout.offPublished, as: UInt64.self)
        sl_store_release_u64(base + LeaseLayout.offSequence, (sequence | 1) &+ 1)
    }

    private var removed = false

    /// Unlink the file and unmap the table (once; also on deinit).
    public func remove() {
        guard !removed else { return }
        removed = true
        SharedFile.remove(path)
        SharedMapping.unmap(base, length: size)
    }

    deinit { remove() }
}

/// `sluice-stat --leases`: a consistent copy of a network's table.
public enum LeaseReader {
    public struct Table: Sendable, Equatable {
        public var rows: [LeaseRow]
        /// When the writer last published (seconds, CLOCK_REALTIME).
        public var published: UInt64
        /// Rows the writer had; more than `rows.count` when the table was too small.
        public var total: Int
        public var writerPID: Int32
    }

    public static func read(path: String) throws(StatsError) -> Table {
        let file: OwnedFD
        do { file = try SharedFile.openReadOnly(path: path) } catch {
            throw StatsError("cannot open \(path): \(errnoText(error.errno))")
        }
        guard let fileSize = try? SharedFile.status(file.raw).size, fileSize >= LeaseLayout.headerSize,
              let m = try? SegmentMapping.map(fd: file.raw, size: fileSize, writable: false) else {
            throw StatsError("\(path): not a sluice lease segment")
        }
        defer { m.unmap() }
        guard sl_load_acquire_u64(m.base) == LeaseLayout.magic, m.u32(at: 8) == LeaseLayout.version else {
            throw StatsError("\(path): not a sluice lease segment (or another layout version)")
        }
        let capacity = Int(m.u32(at: LeaseLayout.offCapacity))
        guard LeaseLayout.headerSize + capacity * LeaseLayout.recordSize <= fileSize else { throw StatsError("\(path): truncated") }
        for attempt in 0..<10_000 {
            let before = sl_load_acquire_u64(m.base + LeaseLayout.offSequence)
            if before & 1 != 0 {
                if attempt > 100 { Clock.sleep(micros: 100) }
                continue
            }
            let count = min(Int(m.u32(at: LeaseLayout.offCount)), capacity)
            let total = Int(m.u32(at: LeaseLayout.offTotal))
            let published = m.u64(at: LeaseLayout.offPublished)
            var rows: [LeaseRow] = []
            rows.reserveCapacity(count)
            for i in 0..<count { rows.append(row(m.base + LeaseLayout.headerSize + i * LeaseLayout.recordSize)) }
            sl_fence_acquire()
            if sl_load_relaxed_u64(m.base + LeaseLayout.offSequence) == before {
                return Table(rows: rows, published: published, total: max(total, count), writerPID: m.i32(at: LeaseLayout.offPID))
            }
        }
        throw StatsError("\(path): the table kept changing while it was read")
    }

    static func row(_ r: UnsafeMutableRawPointer) -> LeaseRow {
        let bytes = UnsafeRawBufferPointer(start: r, count: LeaseLayout.recordSize)
        let flags = bytes[6]
        let nameField = bytes[48..<(48 + LeaseLayout.portNameBytes)]
        let name = String(decoding: nameField.prefix { $0 != 0 }, as: UTF8.self)
        return LeaseRow(mac: Array(bytes[0..<6]),
                        ipv4: flags & 1 != 0 ? Array(bytes[8..<12]) : nil,
                        ipv6: flags & 2 != 0 ? Array(bytes[16..<32]) : nil,
                        port: name,
                        expiry4: flags & 1 != 0 ? r.loadUnaligned(fromByteOffset: 32, as: UInt64.self) : 0,
                        expiry6: flags & 2 != 0 ? r.loadUnaligned(fromByteOffset: 40, as: UInt64.self) : 0,
                        bound4: flags & 4 != 0, bound6: flags & 8 != 0)
    }
}

/// `sluice-stat --leases` output: a table, or one JSON object. "left" is the seconds
/// until the address expires (0 once past; "-" / null without the address).
public enum LeaseTableText {
    public static func render(_ table: LeaseReader.Table, network: String, json: Bool, now: Int64) -> String {
        func left(_ expiry: UInt64, _ present: Bool) -> Int64? { present ? max(0, Int64(clamping: expiry) - now) : nil }
        if json {
            let rows = table.rows.map { r -> String in
                let l4 = left(r.expiry4, r.ipv4 != nil), l6 = left(r.expiry6, r.ipv6 != nil)
                return "{\"mac\":\(StatsFormat.jsonString(r.macText)),\"port\":\(StatsFormat.jsonString(r.port)),"
                    + "\"ipv4\":\(r.ipv4Text.map(StatsFormat.jsonString) ?? "null"),\"ipv4_bound\":\(r.bound4),"
                    + "\"ipv4_expires_in\":\(l4.map(String.init) ?? "null"),"
                    + "\"ipv6\":\(r.ipv6Text.map(StatsFormat.jsonString) ?? "null"),\"ipv6_bound\":\(r.bound6),"
                    + "\"ipv6_expires_in\":\(l6.map(String.init) ?? "null")}"
            }
            return "{\"network\":\(StatsFormat.jsonString(network)),\"total\":\(table.total),\"leases\":[\(rows.joined(separator: ","))]}\n"
        }
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        var out = pad("mac", 19) + pad("ipv4", 16) + pad("left4", 8) + pad("ipv6", 40) + pad("left6", 8) + "port\n"
        for r in table.rows {
            let l4 = left(r.expiry4, r.ipv4 != nil).map { String($0) + (r.bound4 ? "" : "*") } ?? "-"
            let l6 = left(r.expiry6, r.ipv6 != nil).map { String($0) + (r.bound6 ? "" : "*") } ?? "-"
            out += pad(r.macText, 19) + pad(r.ipv4Text ?? "-", 16) + pad(l4, 8) + pad(r.ipv6Text ?? "-", 40) + pad(l6, 8) + r.port + "\n"
        }
        out += "\(table.rows.count) lease(s) in network '\(network)'"
        if table.total > table.rows.count { out += ", \(table.total - table.rows.count) more not shown (table full)" }
        if table.rows.contains(where: { ($0.ipv4 != nil && !$0.bound4) || ($0.ipv6 != nil && !$0.bound6) }) {
            out += "; * offered, released or expired"
        }
        return out + "\n"
    }
}
