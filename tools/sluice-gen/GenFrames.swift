#if canImport(Glibc)
import Glibc
#endif

// The frames sluice-gen sends: Ethernet + IPv4 + UDP, and in the UDP payload
// a magic, a stream number (the queue pair) and a 64-bit sequence number, so
// a receiver can tell lost, duplicated and reordered frames apart.
//
//   0  dst MAC, src MAC, EtherType 0x0800
//  14  IPv4: 0x45, tos 0, total length, id 0, DF, TTL 64, UDP, checksum,
//      10.0.0.1 → 10.0.0.2
//  34  UDP: source port 1024 + stream, destination port 9 (discard), length, checksum 0
//  42  magic "SLGN", stream u16, reserved u16, sequence u64 (all big endian)
//  58  filler bytes 0x00, 0x01, … up to the frame size

enum GenFrame {
    static let minSize = 60
    static let maxSize = 9000
    static let magic: UInt32 = 0x534c_474e // "SLGN"
    static let magicOffset = 42
    static let streamOffset = 46
    static let sequenceOffset = 50
    static let headerEnd = 58

    /// A frame of `size` bytes for `stream` with sequence 0: copy it, then
    /// write the sequence with `setSequence`.
    static func template(size: Int, stream: UInt16, source: [UInt8], destination: [UInt8]) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: size)
        for i in 0..<6 {
            f[i] = destination[i]
            f[6 + i] = source[i]
        }
        f[12] = 0x08; f[13] = 0x00
        let ipLength = size - 14
        let ip: [UInt8] = [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xff), 0, 0, 0x40, 0, 64, 17, 0, 0,
                           10, 0, 0, 1, 10, 0, 0, 2]
        for (i, b) in ip.enumerated() { f[14 + i] = b }
        let checksum = ipv4Checksum(Array(f[14..<34]))
        f[24] = UInt8(checksum >> 8); f[25] = UInt8(checksum & 0xff)
        let sourcePort = 1024 + Int(stream)
        let udpLength = size - 34
        let udp: [UInt8] = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), 0, 9,
                            UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 0, 0]
        for (i, b) in udp.enumerated() { f[34 + i] = b }
        store32(&f, magicOffset, magic)
        f[streamOffset] = UInt8(stream >> 8); f[streamOffset + 1] = UInt8(stream & 0xff)
        for i in headerEnd..<size { f[i] = UInt8(truncatingIfNeeded: i - headerEnd) }
        return f
    }

    static func ipv4Checksum(_ header: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < header.count {
            sum += UInt32(header[i]) << 8 | UInt32(header[i + 1])
            i += 2
        }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    private static func store32(_ f: inout [UInt8], _ at: Int, _ v: UInt32) {
        for i in 0..<4 { f[at + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) }
    }

    @inline(__always)
    static func setSequence(_ frame: UnsafeMutableRawBufferPointer, _ sequence: UInt64) {
        frame.storeBytes(of: sequence.bigEndian, toByteOffset: sequenceOffset, as: UInt64.self)
    }

    /// (stream, sequence) of a sluice-gen frame, or nil for anything else.
    @inline(__always)
    static func parse(_ frame: UnsafeRawBufferPointer) -> (stream: UInt16, sequence: UInt64)? {
        guard frame.count >= headerEnd, frame[12] == 0x08, frame[13] == 0x00, frame[23] == 17,
              UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: magicOffset, as: UInt32.self)) == magic
        else { return nil }
        let stream = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: streamOffset, as: UInt16.self))
        let sequence = UInt64(bigEndian: frame.loadUnaligned(fromByteOffset: sequenceOffset, as: UInt64.self))
        return (stream, sequence)
    }

    /// Whether the frame is as `template` made it: the IPv4 length matches
    /// the frame's and every filler byte is intact (catches truncation and
    /// bad reassembly of merged buffers).
    static func isIntact(_ frame: UnsafeRawBufferPointer) -> Bool {
        let ipLength = Int(frame[16]) << 8 | Int(frame[17])
        guard ipLength + 14 == frame.count else { return false }
        var i = headerEnd
        while i < frame.count {
            if frame[i] != UInt8(truncatingIfNeeded: i - headerEnd) { return false }
            i += 1
        }
        return true
    }

    /// Swaps destination and source MAC in place (echo).
    @inline(__always)
    static func swapMACs(_ frame: UnsafeMutableRawBufferPointer) {
        guard frame.count >= 12 else { return }
        for i in 0..<6 { frame.swapAt(i, 6 + i) }
    }
}

/// The source addresses of `tx --macs N`: address i is the base with i added (modulo
/// 2^24) to its bytes 2-4 (big endian), first and last bytes kept. Stored 8 bytes
/// apart in one block, so the send loop copies 6 bytes and allocates nothing.
struct SourceMACs {
    static let maxCount = 1 << 24
    let count: Int
    let table: UnsafeMutableRawPointer

    init(base: [UInt8], count: Int) {
        precondition(base.count == 6 && (1...Self.maxCount).contains(count))
        self.count = count
        table = .allocate(byteCount: count * 8, alignment: 64)
        let middle = Int(base[2]) << 16 | Int(base[3]) << 8 | Int(base[4])
        for i in 0..<count {
            let m = (middle + i) & 0xff_ffff
            let mac: [UInt8] = [base[0], base[1], UInt8(m >> 16), UInt8((m >> 8) & 0xff), UInt8(m & 0xff), base[5], 0, 0]
            for (k, b) in mac.enumerated() { table.storeBytes(of: b, toByteOffset: i * 8 + k, as: UInt8.self) }
        }
    }

    func deallocate() { table.deallocate() }

    /// Address `i` as six bytes.
    func mac(_ i: Int) -> [UInt8] { (0..<6).map { table.load(fromByteOffset: i * 8 + $0, as: UInt8.self) } }

    /// The index of `mac` among the addresses, or nil.
    func index(of mac: [UInt8]) -> Int? {
        let first = self.mac(0)
        guard mac.count == 6, mac[0] == first[0], mac[1] == first[1], mac[5] == first[5] else { return nil }
        let middle = { (m: [UInt8]) in Int(m[2]) << 16 | Int(m[3]) << 8 | Int(m[4]) }
        let i = (middle(mac) - middle(first)) & 0xff_ffff
        return i < count ? i : nil
    }

    /// Writes address `i` at `to` (6 bytes, no alignment needed).
    @inline(__always)
    func write(_ i: Int, into to: UnsafeMutableRawPointer) {
        let from = table + i &* 8
        to.storeBytes(of: from.load(as: UInt32.self), as: UInt32.self)
        to.storeBytes(of: from.load(fromByteOffset: 4, as: UInt16.self), toByteOffset: 4, as: UInt16.self)
    }
}

/// "02:00:00:00:00:01" → six bytes.
func parseMAC(_ text: String) -> [UInt8]? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 6 else { return nil }
    var bytes: [UInt8] = []
    for p in parts {
        guard p.count == 2, let b = UInt8(p, radix: 16) else { return nil }
        bytes.append(b)
    }
    return bytes
}

func formatMAC(_ mac: [UInt8]) -> String {
    mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
}
