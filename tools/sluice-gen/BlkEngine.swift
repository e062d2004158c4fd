#if canImport(Glibc)
import Glibc
#endif
import Platform
import VhostUser

/// One request to send.
struct BlkWork {
    var type: UInt32
    var sector: UInt64
    /// Bytes of data (0 for flush).
    var length: Int
    /// The device writes the data (read, get-id) rather than reading it.
    var deviceWrites: Bool
    var shape: BlkChainShape = .valid
    /// The source's own number for the request.
    var id = 0
}

/// Where requests come from and where their completions go. `next` is
/// asked while the queue has a free tag; nil means nothing more for now.
protocol BlkWorkSource {
    mutating func next(queue: Int) -> BlkWork?
    /// Writes the request's data (writes, discard ranges) into its buffer.
    mutating func prepare(_ work: BlkWork, buffer: UnsafeMutableRawPointer)
    /// A completion: the status byte (nil: none written), the buffer (valid
    /// during the call), the used length and the latency.
    mutating func finish(_ work: BlkWork, status: UInt8?, buffer: UnsafeRawPointer, written: UInt32, latencyNanos: UInt64)
    /// No more requests will come.
    var exhausted: Bool { get }
}

/// How a run of the engine ended.
struct BlkEngineResult {
    var completed = 0
    var seconds = 0.0
    /// Requests in flight when the device stopped answering for the idle timeout.
    var stuck = 0
    var backendClosed = false
    var interrupted = false
    var failure: String?

    var ok: Bool { stuck == 0 && !backendClosed && failure == nil }

    /// What went wrong, in words, or nil.
    func problem(idleTimeout: Double) -> String? {
        if let failure { return failure }
        if backendClosed { return "the backend closed the connection" }
        if stuck > 0 { return "no completion within \(format3(idleTimeout)) s (\(stuck) request(s) in flight)" }
        return nil
    }
}

/// Keeps every queue as full as the source allows and hands completions
/// back, in whatever order the device returns them. Busy-polls the used
/// rings, or with `waitOnCalls` sleeps on the queues' call eventfds when
/// nothing is there. Ends when the source is exhausted and nothing is in
/// flight, when nothing completes for `idleTimeout` seconds, when the
/// backend hangs up, or on SIGINT/SIGTERM (`stop`).
func runBlkEngine<S: BlkWorkSource>(_ device: BlkDevice, _ source: inout S, waitOnCalls: Bool,
                                    idleTimeout: Double, stop: StopSignal? = nil) -> BlkEngineResult {
    let queues = device.queues
    var works: [[BlkWork?]] = queues.map { Array(repeating: nil, count: $0.depth) }
    var started: [[UInt64]] = queues.map { Array(repeating: 0, count: $0.depth) }
    var result = BlkEngineResult()
    let idleNanos = UInt64(max(0.001, idleTimeout) * 1e9)
    let begin = Clock.monotonicNanos()
    var lastProgress = begin
    var lastCheck = begin
    var stopping = false
    var pollFDs = queues.map { pollfd(fd: $0.ring.callFD, events: Int16(POLLIN), revents: 0) }

    while true {
        var progressed = false
        for (qi, q) in queues.enumerated() {
            while let c = q.complete() {
                let now = Clock.monotonicNanos()
                if let w = works[qi][c.tag] {
                    source.finish(w, status: c.status, buffer: UnsafeRawPointer(q.buffer(c.tag)), written: c.written,
                                  latencyNanos: now &- started[qi][c.tag])
                }
                works[qi][c.tag] = nil
                q.releaseTag(c.tag)
                result.completed += 1
                progressed = true
            }
            guard !stopping else { continue }
            var submitted = false
            var now: UInt64 = 0
            while q.hasFreeTag, let w = source.next(queue: qi) {
                guard let tag = q.acquireTag() else { break }
                source.prepare(w, buffer: q.buffer(tag))
                if !submitted { now = Clock.monotonicNanos() }
                guard q.submit(tag: tag, type: w.type, sector: w.sector, dataLength: w.length,
                               deviceWrites: w.deviceWrites, shape: w.shape) else {
                    q.releaseTag(tag)
                    result.failure = "queue \(qi): no room on the ring for a request of \(w.length) bytes"
                    stopping = true
                    break
                }
                works[qi][tag] = w
                started[qi][tag] = now
                submitted = true
            }
            if submitted {
                q.publish()
                progressed = true
            }
        }

        let inFlight = queues.reduce(0) { $0 + $1.inFlight }
        if inFlight == 0 && (stopping || source.exhausted) { break }
        let now = Clock.monotonicNanos()
        // A few times a second: the signals, and (when idle) the socket.
        if now &- lastCheck > 50_000_000 {
            lastCheck = now
            if let stop, !stopping, stop.requested() {
                result.interrupted = true
                stopping = true
            }
            if !progressed && device.backendClosed {
                result.backendClosed = true
                result.stuck = inFlight
                break
            }
        }
        if progressed {
            lastProgress = now
            continue
        }
        if now &- lastProgress > idleNanos {
            result.stuck = inFlight
            break
        }
        if waitOnCalls && inFlight > 0 {
            var ready = false
            for q in queues where q.ring.enableCalls() { ready = true }
            if !ready {
                for i in pollFDs.indices { pollFDs[i].revents = 0 }
                let n = pollFDs.withUnsafeMutableBufferPointer {
                    Poll.once($0.baseAddress!, count: $0.count, timeoutMilliseconds: 50)
                }
                if n > 0 {
                    for p in pollFDs where p.revents != 0 { EventFD.drain(p.fd) }
                }
            }
            for q in queues { q.ring.disableCalls() }
        }
    }
    result.seconds = seconds(begin, Clock.monotonicNanos())
    return result
}
