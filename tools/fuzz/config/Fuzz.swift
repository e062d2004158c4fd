// libFuzzer target `config`: the INI parser and every section decoder on arbitrary
// bytes — an operator's file (or an orchestrator's half-written one) is untrusted
// input to a daemon that must answer each bad line with `FILE:LINE: message`.
//
// Invariants (abort = a finding): parsing never traps; an error list is never empty
// and every error names a line inside the file (0 only for whole-file problems); a
// config that parses refers only to ports it defines, every port is on at most one
// element, `[nvme]` and `SERIAL:nN` values are in range, and parsing the same bytes
// twice gives the same result.
#if canImport(Glibc)
import Glibc
#endif
import Config

private func fail(_ what: String) -> Never {
    fputs("config fuzz invariant broken: \(what)\n", stderr)
    abort()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let lines = bytes.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    do {
        let c = try SluiceConfig.parse(bytes: bytes, file: "fuzz.ini")
        let names = Set(c.ports.map(\.name))
        if names.count != c.ports.count { fail("two ports with one name") }
        var used: [String: String] = [:]
        for l in c.p2p {
            for p in [l.a, l.b] {
                if !names.contains(p) { fail("p2p \(l.name) names unknown port \(p)") }
                if let other = used.updateValue("p2p \(l.name)", forKey: p) { fail("port \(p) on \(other) and p2p \(l.name)") }
            }
        }
        for s in c.switches {
            for p in s.ports {
                if !names.contains(p) { fail("switch \(s.name) names unknown port \(p)") }
                if let other = used.updateValue("switch \(s.name)", forKey: p) { fail("port \(p) on \(other) and switch \(s.name)") }
            }
        }
        for p in c.ports where p.queues < 1 || p.queueSize < 1 || p.queueSize & (p.queueSize - 1) != 0 {
            fail("port \(p.name): queues \(p.queues), queue-size \(p.queueSize) passed")
        }
        if let n = c.nvme {
            if !NVMeConfig.ioQueueDepthRange.contains(n.ioQueueDepth) { fail("[nvme] io-queue-depth \(n.ioQueueDepth) passed") }
            if case .list(let addresses) = n.pci, Set(addresses).count != addresses.count
                || addresses.contains(where: { NVMeConfig.normalizedPCIAddress($0) != $0 }) {
                fail("[nvme] pci \(n.pci) passed")
            }
        }
        for b in c.blks {
            if case .namespace(let serial, let nsid) = b.device, serial.isEmpty || serial.utf8.count > 20 || serial.contains(":")
                || !BlkDevice.nsidRange.contains(nsid) {
                fail("blk \(b.name): device \(b.device) passed")
            }
        }
        guard let again = try? SluiceConfig.parse(bytes: bytes, file: "fuzz.ini"), again.ports == c.ports,
              again.p2p == c.p2p, again.switches == c.switches, again.dataplane == c.dataplane,
              again.nvme == c.nvme, again.blks == c.blks else {
            fail("a second parse of the same bytes differs")
        }
    } catch {
        if error.diagnostics.isEmpty { fail("an error without diagnostics") }
        for d in error.diagnostics where d.line < 0 || d.line > lines {
            fail("diagnostic at line \(d.line) of a \(lines)-line file: \(d.description)")
        }
    }
    return 0
}
