// Writes the seed corpus of the `dhcp6` fuzz target (layout: Fuzz.swift): whole client
// exchanges as a guest's DHCPv6 client sends them. Built and run by
// `tools/fuzz/run.sh --seeds dhcp6`, together with the Services sources.
#if canImport(Glibc)
import Glibc
#endif
import Config

@main
struct DHCPv6Seeds {
    static func write(_ name: String, _ bytes: [UInt8], to dir: String) {
        let path = "\(dir)/\(name).bin"
        guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }

    static func option(_ code: UInt16, _ data: [UInt8]) -> [UInt8] {
        var o: [UInt8] = []
        DHCPv6.put(code, data, into: &o)
        return o
    }

    static func u32(_ v: UInt32) -> [UInt8] {
        var o: [UInt8] = []
        Frames.put32(v, into: &o)
        return o
    }

    static func record(_ payload: [UInt8]) -> [UInt8] { [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] + payload }

    static func main() {
        guard CommandLine.arguments.count == 2 else { fatalError("usage: seeds DIR") }
        let dir = CommandLine.arguments[1]
        let routerMAC = MACAddress(bytes: (2, 0, 0, 0, 0, 0xfe))
        let clientMAC = MACAddress(bytes: (0x52, 0x54, 0, 0x12, 0x34, 0x56))
        let client = option(1, [0, 1, 0, 1, 0x2b, 0x3c, 0x4d, 0x5e] + clientMAC.octets)
        let server = option(2, DHCPv6.duidLL(routerMAC))
        let address = IPv6Address(high: 0xfd00_0001_0000_0000, low: 2)
        func ia(_ addresses: [IPv6Address] = []) -> [UInt8] {
            option(3, u32(1) + u32(0) + u32(0) + addresses.flatMap { option(5, $0.bytes + u32(3600) + u32(3600)) })
        }
        let elapsed = option(8, [0, 0]), oro = option(6, [0, 23, 0, 24])
        func msg(_ type: UInt8, _ opts: [UInt8]) -> [UInt8] { [type, 0xab, 0xcd, 0xef] + opts }

        let solicit = msg(1, client + elapsed + ia() + oro)
        let rapid = msg(1, client + elapsed + option(14, []) + ia() + oro)
        let request = msg(3, client + server + elapsed + ia([address]) + oro)
        let renew = msg(5, client + server + elapsed + ia([address]) + oro)
        let rebind = msg(6, client + elapsed + ia([address]) + oro)
        let release = msg(8, client + server + elapsed + ia([address]))
        let decline = msg(9, client + server + elapsed + ia([address]))
        let confirm = msg(4, client + elapsed + ia([address]))
        let info = msg(11, client + elapsed + oro)
        let pd = msg(1, client + elapsed + ia() + option(25, u32(7) + u32(0) + u32(0)))

        write("solicit", [0x01] + record(solicit), to: dir)
        write("solicit-rapid-commit", [0x01] + record(rapid), to: dir)
        write("full-exchange", [0x01] + [solicit, request, renew, rebind, release].flatMap(record), to: dir)
        write("open-port-exchange", [0x00] + [solicit, request, decline, solicit].flatMap(record), to: dir)
        write("static-address", [0x03] + [rapid, renew].flatMap(record), to: dir)
        write("confirm", [0x01] + record(confirm), to: dir)
        write("information-request", [0x81] + record(info), to: dir)
        write("prefix-delegation", [0x01] + record(pd), to: dir)
        write("full-pool", [0x09] + [solicit, request].flatMap(record), to: dir)
        write("bogus-store", [0x11] + record(rapid), to: dir)
        write("unicast-request", [0x21] + [request, solicit].flatMap(record), to: dir)
        let frame = Frames.udp6(srcMAC: clientMAC, dstMAC: Frames.multicastMAC(DHCPv6.allServers),
                                src: IPv6Address(high: 0xfe80_0000_0000_0000, low: 0x5054_00ff_fe12_3456),
                                dst: DHCPv6.allServers, srcPort: 546, dstPort: 547, payload: solicit)
        write("raw-frame", [0x05] + frame, to: dir)
    }
}
