#if canImport(Glibc)
import Ports
import Glibc
#endif
import Foundation
import Platform
import Stats
import Switching
import Virtio
import XCTest

/// Two mock guests joined by one direction of a p2p link: guest A's TX queue →
/// guest B's RX queue, each guest with its own memory, counters in a real stats
/// segment at a temporary path.
final class P2PFixture {
    let memA: MockMemory
    let memB: MockMemory
    /// Guest A's TX queue (the link's source).
    let txA: MockQueue
    /// Guest B's RX queue (the link's destination).
    let rxB: MockQueue
    let stats: StatsWriter
    let link: P2PDirection
    let callA: Int32
    let callB: Int32

    init(a: GuestFeatures = GuestFeatures(), b: GuestFeatures = GuestFeatures(), maxFrame: Int = 1518,
         queueSize: UInt16 = 256) throws {
        memA = try MockMemory(size: 8 << 20)
        memB = try MockMemory(size: 8 << 20)
        txA = MockQueue(memory: memA, size: queueSize, features: a)
        rxB = MockQueue(memory: memB, size: queueSize, features: b)
        callA = try EventFD.create()
        callB = try EventFD.create()
        txA.state.pointee.callFD = callA
        rxB.state.pointee.callFD = callB
        let path = FileManager.default.temporaryDirectory.path + "/sluice-p2ptest-\(UUID().uuidString).stats"
        let writer = try StatsWriter(path: path, slots: 1)
        stats = writer
        func counters(_ port: String) throws -> PortCounters {
            var c: [StatsCounter] = []
            for name in PortCounters.names { c.append(writer.counter(try writer.register("port.\(port).\(name)"), slot: 0)) }
            return PortCounters(c)
        }
        link = P2PDirection(src: txA.queue, dst: rxB.queue, srcCounters: try counters("a"), dstCounters: try counters("b"),
                            maxFrame: maxFrame)
    }

    deinit {
        link.release()
        stats.remove()
        closeFD(callA)
        closeFD(callB)
    }

    /// A counter of port "a" or "b" (e.g. "rx_packets", "drop.no_rx_buffer").
    func counter(_ port: String, _ name: String) -> UInt64 {
        guard let id = stats.lookup("port.\(port).\(name)") else { return .max }
        return stats.total(id)
    }

    /// All non-zero counters, "a.rx_packets" → value.
    func counters() -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for port in ["a", "b"] {
            for name in PortCounters.names where counter(port, name) != 0 { out["\(port).\(name)"] = counter(port, name) }
        }
        return out
    }

    /// What B received: for each used entry, header and frame (MRG_RXBUF chains joined).
    struct Received {
        var header: [UInt8]
        var frame: [UInt8]
        var chains: [(id: UInt32, len: UInt32)]
    }

    func received() -> [Received] {
        let used = rxB.takeUsed()
        let h = rxB.state.pointee.headerSize
        var out: [Received] = []
        var i = 0
        while i < used.count {
            let first = used[i]
            var bytes = rxB.readChain(UInt16(first.id), Int(first.len))
            var chains = [first]
            var n = 1
            if rxB.state.pointee.mergeable, bytes.count >= 12 {
                n = max(1, Int(UInt16(bytes[10]) | UInt16(bytes[11]) << 8))
            }
            for k in 1..<max(n, 1) where i + k < used.count {
                bytes += rxB.readChain(UInt16(used[i + k].id), Int(used[i + k].len))
                chains.append(used[i + k])
            }
            i += n
            out.append(Received(header: Array(bytes.prefix(h)), frame: Array(bytes.dropFirst(h)), chains: chains))
        }
        return out
    }

    func signalled(_ fd: Int32) -> Bool { EventFD.drain(fd) > 0 }
}

/// Compare byte arrays without printing kilobytes on failure.
func assertBytes(_ got: [UInt8], _ expected: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    guard got != expected else { return }
    let at = (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
    XCTFail("\(what): \(got.count) bytes, expected \(expected.count); first difference at byte \(at)", file: file, line: line)
}
