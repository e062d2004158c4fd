// Writes the seed corpus of the `ndp` fuzz target (layout: Fuzz.swift): the Router and
// Neighbor Solicitations a guest's kernel sends. Built and run by
// `tools/fuzz/run.sh --seeds ndp`, together with the Services sources.
#if canImport(Glibc)
import Glibc
#endif
import Config

@main
struct NDPSeeds {
    static func write(_ name: String, _ bytes: [UInt8], to dir: String) {
        let path = "\(dir)/\(name).bin"
        guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }

    /// A record: wait `seconds`, then send `message` (its checksum is filled in by the harness).
    static func record(_ seconds: UInt8, _ message: [UInt8]) -> [UInt8] {
        [seconds, UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
    }

    static func main() {
        guard CommandLine.arguments.count == 2 else { fatalError("usage: seeds DIR") }
        let dir = CommandLine.arguments[1]
        let clientMAC = MACAddress(bytes: (0x52, 0x54, 0, 0x12, 0x34, 0x56))
        let sll: [UInt8] = [1, 1] + clientMAC.octets
        let rs: [UInt8] = [133, 0, 0, 0, 0, 0, 0, 0] + sll
        let rsBare: [UInt8] = [133, 0, 0, 0, 0, 0, 0, 0]
        func ns(_ target: IPv6Address, _ options: [UInt8]) -> [UInt8] { [135, 0, 0, 0, 0, 0, 0, 0] + target.bytes + options }
        let global = IPv6Address(high: 0xfd00_0001_0000_0000, low: 1)

        write("rs", [0x01] + record(0, rs), to: dir)
        write("rs-unspecified", [0x03] + record(0, rsBare), to: dir)
        write("rs-rate-limited", [0x01] + record(0, rs) + record(1, rs) + record(1, rs) + record(1, rs), to: dir)
        write("ns-gateway", [0x09] + record(0, ns(.gateway, sll)), to: dir)
        write("ns-dad", [0x0B] + record(0, ns(.gateway, [])), to: dir)
        write("ns-global-unicast", [0x19] + record(0, ns(global, sll)), to: dir)
        write("ns-other-target", [0x09] + record(0, ns(IPv6Address(high: 0xfd00_0001_0000_0000, low: 2), sll)), to: dir)
        write("rs-zero-length-option", [0x01] + record(0, rsBare + [1, 0, 0, 0, 0, 0, 0, 0]), to: dir)
        write("hop-limit-64", [0x81] + record(0, rs) + record(5, rs), to: dir)
        write("no-prefix-network", [0x41] + record(0, rs) + record(0, ns(.gateway, sll)), to: dir)
        let src = IPv6Address(high: 0xfe80_0000_0000_0000, low: 0x5054_00ff_fe12_3456)
        let frame = Frames.icmp6(srcMAC: clientMAC, dstMAC: Frames.multicastMAC(NDPResponder.allRouters), src: src,
                                 dst: NDPResponder.allRouters, message: rs)
        write("raw-frame", [0x21] + frame, to: dir)
    }
}
