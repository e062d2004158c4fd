import Config
import Ports
import Switching

/// One section that a builder turns into a running element: what identifies it across
/// reloads (kind and name), the ports it uses, and a fingerprint that changes when the
/// section itself changes (line numbers left out).
struct ElementSpec: Equatable {
    var kind: String
    var name: String
    var line: Int
    var ports: [String]
    var fingerprint: String

    var key: String { "\(kind) \(name)" }
}

/// Turns the sections of one kind (`[p2p]`, `[switch]`; later `[network]`, `[blk]`)
/// into running elements: poll sources on workers plus whatever the control thread
/// keeps for them. Runs on the control thread, workers paused or not started; a
/// reload builds only the elements that are new or changed.
protocol ElementBuilder: Sendable {
    /// The sections of this builder's kind in `config`.
    func specs(_ config: SluiceConfig) -> [ElementSpec]
    /// Build one of them: claim queues, add poll entries (with `plane.addPollEntry`).
    func build(_ spec: ElementSpec, _ plane: Dataplane) throws(EngineError) -> any RunningElement
}

/// What the control thread keeps of a built element.
protocol RunningElement: AnyObject {
    /// ~10×/s on the control thread (aging, gauges, link-state reactions).
    func housekeeping(now: UInt64)
    /// The element's entries are off every poll list (workers paused or stopped):
    /// release what it allocated; frames it still holds are freed and counted as drops.
    func teardown(_ plane: Dataplane)
    /// Counter names that belong to the element alone, retired when it is removed.
    var counterNames: [String] { get }
    /// The element's own fd on the control loop fired (token `1 << 48 | element id`).
    func handleWakeup()
}

extension RunningElement {
    func handleWakeup() {}
}

/// Control-loop tokens of elements: above every port token.
enum ElementToken {
    static let base: UInt64 = 1 << 48
    static func make(_ element: Int) -> UInt64 { base | UInt64(element) }
    static func element(_ token: UInt64) -> Int? { token >= base ? Int(token & 0xFFFF_FFFF) : nil }
}

/// `[p2p NAME]`: two ports joined with nothing in between. Vhost-user to vhost-user
/// uses the one-copy guest→guest direction; any other pair goes through mempool
/// buffers (`PortForwarder`).
struct P2PBuilder: ElementBuilder {
    func specs(_ config: SluiceConfig) -> [ElementSpec] {
        config.p2p.map { l in
            ElementSpec(kind: "p2p", name: l.name, line: l.line, ports: [l.a, l.b], fingerprint: "\(l.a) \(l.b)")
        }
    }

    func build(_ spec: ElementSpec, _ plane: Dataplane) throws(EngineError) -> any RunningElement {
        guard let a = plane.port(named: spec.ports[0]), let b = plane.port(named: spec.ports[1]) else {
            throw EngineError("\(plane.config.file):\(spec.line): p2p \(spec.name): a port did not start")
        }
        for (src, dst) in [(a, b), (b, a)] {
            for q in 0..<src.queuePairs {
                let rx = q % dst.queuePairs
                // One worker per destination queue, so every queue has exactly one writer.
                let w = plane.transmitOwner(dst, queue: rx) ?? plane.nextWorkerIndex()
                plane.own(transmitOf: dst, queue: rx, worker: w)
                try plane.own(receiveOf: src, queue: q, worker: w)
                let srcCounters = try plane.portCounters(src.name, slot: w)
                let dstCounters = try plane.portCounters(dst.name, slot: w)
                if let s = src as? VhostUserPort, let d = dst as? VhostUserPort {
                    let direction = P2PDirection(
                        src: s.device.queues[VhostUserPort.rxVring(q)], dst: d.device.queues[VhostUserPort.txVring(rx)],
                        srcCounters: srcCounters, dstCounters: dstCounters, maxFrame: s.maxFrame)
                    try plane.addPollEntry(.make(direction, PollEntry.p2p), worker: w, polling: src, queue: q)
                } else {
                    let f = PortForwarder(rx: src.rx(q), tx: dst.tx(rx), rxCounters: srcCounters, txCounters: dstCounters)
                    try plane.addPollEntry(.make(f, PollEntry.forward), worker: w, polling: src, queue: q)
                }
            }
        }
        return RunningP2P()
    }
}

/// A p2p link keeps nothing on the control thread: its directions are its poll entries.
final class RunningP2P: RunningElement {
    func housekeeping(now: UInt64) {}
    func teardown(_ plane: Dataplane) {}
    var counterNames: [String] { [] }
}
