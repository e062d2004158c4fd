import Config
import Ports
import Switching

/// Turns the sections of one kind (`[p2p]`, `[switch]`; later `[network]`, `[blk]`)
/// into running elements: poll sources on workers plus whatever the control thread
/// keeps for them. Runs on the control thread before the workers start.
protocol ElementBuilder: Sendable {
    func build(_ plane: Dataplane) throws(EngineError) -> [any RunningElement]
}

/// What the control thread keeps of a built element.
protocol RunningElement: AnyObject {
    /// ~10×/s on the control thread (aging, gauges, link-state reactions).
    func housekeeping(now: UInt64)
    /// After the workers stopped: release what the element allocated.
    func teardown()
}

/// `[p2p NAME]`: two ports joined with nothing in between. Vhost-user to vhost-user
/// uses the one-copy guest→guest direction; any other pair goes through mempool
/// buffers (`PortForwarder`).
struct P2PBuilder: ElementBuilder {
    func build(_ plane: Dataplane) throws(EngineError) -> [any RunningElement] {
        for link in plane.config.p2p {
            guard let a = plane.port(named: link.a), let b = plane.port(named: link.b) else {
                throw EngineError("\(plane.config.file):\(link.line): p2p \(link.name): unknown port")
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
                        try plane.addPollEntry(.make(direction, PollEntry.p2p), worker: w)
                    } else {
                        let f = PortForwarder(rx: src.rx(q), tx: dst.tx(rx), rxCounters: srcCounters, txCounters: dstCounters)
                        try plane.addPollEntry(.make(f, PollEntry.forward), worker: w)
                    }
                }
            }
        }
        return []
    }
}
