// Writes the seed corpus of the `dhcp4` fuzz target: client conversations in the
// input layout Fuzz.swift reads ([control, length, DHCP payload] per message).
// Built and run by `tools/fuzz/run.sh --seeds dhcp4`, together with the Services sources.
#if canImport(Glibc)
import Glibc
#endif
import Config

@main
struct DHCPv4Seeds {
    static func write(_ name: String, _ bytes: [UInt8], to dir: String) {
        let path = "\(dir)/\(name).bin"
        guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }

    static func payload(_ mac: MACAddress, ciaddr: IPv4Address = IPv4Address(0), broadcast: Bool = false, _ options: [UInt8]) -> [UInt8] {
        var b: [UInt8] = [1, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, broadcast ? 0x80 : 0, 0] + ciaddr.octets
        b += [UInt8](repeating: 0, count: 12) + mac.octets + [UInt8](repeating: 0, count: 10 + 192)
        return b + [99, 130, 83, 99] + options + [255]
    }

    static func message(_ control: UInt8, _ p: [UInt8]) -> [UInt8] { [control, UInt8(p.count >> 8), UInt8(p.count & 0xFF)] + p }

    static func main() {
        guard CommandLine.arguments.count == 2 else { fatalError("usage: seeds DIR") }
        let dir = CommandLine.arguments[1]
        let mac = MACAddress("52:54:00:12:34:56")!
        let a = IPv4Address(10, 0, 0, 9)
        let server: [UInt8] = [54, 4, 169, 254, 0, 1]
        let discover = payload(mac, broadcast: true, [53, 1, 1, 55, 7, 1, 3, 6, 15, 26, 121, 249, 61, 7, 1] + mac.octets)
        let select = payload(mac, [53, 1, 3, 50, 4] + a.octets + server)
        let reboot = payload(mac, [53, 1, 3, 50, 4] + a.octets)
        let renew = payload(mac, ciaddr: a, [53, 1, 3])
        let release = payload(mac, ciaddr: a, [53, 1, 7] + server)
        let decline = payload(mac, [53, 1, 4, 50, 4] + a.octets + server)
        let inform = payload(mac, ciaddr: a, [53, 1, 8, 55, 3, 6, 15, 121])
        var overload = payload(mac, [53, 1, 1, 52, 1, 3])
        overload.replaceSubrange(108..<115, with: [50, 4] + a.octets + [255])
        overload.replaceSubrange(44..<48, with: [12, 1, 65, 255])
        write("discover", message(0x00, discover), to: dir)
        write("discover-bound-port", message(0x10, discover), to: dir)
        write("discover-static-port", message(0x30, discover), to: dir)
        write("conversation", message(0x00, discover) + message(0x00, select) + message(0x81, renew) + message(0x80, renew)
            + message(0x01, release) + message(0x00, discover), to: dir)
        write("init-reboot", message(0x10, reboot), to: dir)
        write("decline", message(0x00, discover) + message(0x00, select) + message(0x00, decline) + message(0x00, discover), to: dir)
        write("inform", message(0x01, inform), to: dir)
        write("overload", message(0x00, overload), to: dir)
        write("expiry", message(0x00, select) + message(0xC0, discover) + message(0x40, select), to: dir)
        write("spoofed", message(0x08, discover) + message(0x20, discover), to: dir)
        write("relay-port", message(0x04, discover), to: dir)
        let frame = Frames.udp4(srcMAC: mac, dstMAC: Frames.broadcastMAC, src: IPv4Address(0), dst: IPv4Address(0xFFFF_FFFF),
                                srcPort: 68, dstPort: 67, payload: discover)
        write("raw-frame", message(0xFF, frame), to: dir)
        let file = """
            # sluice leases
            version 1
            network fuzz
            lease mac=52:54:00:12:34:56 port=vm1 v4=10.0.0.9 state4=bound until4=1700003600
            lease mac=52:54:00:12:34:57 port=vm%202 v4=10.0.0.10 state4=released until4=1700000000 duid=000300015254001234 iaid=1
            quarantine4 10.0.0.11 until=1700000100
            end 3

            """
        write("lease-file", [0xFE] + Array(file.utf8), to: dir)
    }
}
