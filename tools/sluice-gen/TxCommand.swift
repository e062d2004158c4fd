#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CSluice
import Platform
import VhostUser

struct TxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tx",
        abstract: "Send numbered Ethernet/IPv4/UDP frames.",
        discussion: """
            Frames go round-robin over the TX queues of every queue pair; each pair is its \
            own stream with its own sequence numbers starting at 0. After the last frame \
            sluice-gen waits until the backend has taken every buffer (exit 1 if it does not).
            """)

    @OptionGroup var device: DeviceOptions

    @Option(name: .long, help: ArgumentHelp("Frames to send; 0: until --duration or Ctrl-C.", valueName: "N"))
    var count: Int = 0

    @Option(name: .long, help: ArgumentHelp("Stop after this many seconds.", valueName: "S"))
    var duration: Double?

    @Option(name: .long, help: ArgumentHelp("Frame size in bytes without FCS, 60...9000.", valueName: "BYTES"))
    var size: Int = 64

    @Option(name: .long, help: ArgumentHelp("Frames per second; 0: as fast as the backend takes them.", valueName: "PPS"))
    var rate: Double = 0

    @Option(name: .long, help: ArgumentHelp("Frames per publish of avail.idx.", valueName: "N"))
    var burst: Int = 32

    @Option(name: .long, help: ArgumentHelp("Source MAC (default: the device's, else 02:00:00:00:00:01).", valueName: "MAC"))
    var srcMAC: String?

    @Option(name: .long, help: ArgumentHelp("Destination MAC.", valueName: "MAC"))
    var dstMAC: String = "02:00:00:00:00:02"

    @Option(name: .long, help: ArgumentHelp(
        "Cycle the source MAC over N addresses: the base (--src-mac or its default) plus 0...N-1 "
            + "in bytes 2-4 (so 02:00:00:00:00:01 gives 02:00:00:00:00:01, 02:00:00:00:01:01, ...); "
            + "1: the base only.", valueName: "N"))
    var macs: Int = 1

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for the backend to take the last frames.", valueName: "S"))
    var drainTimeout: Double = 5

    func validate() throws {
        guard (GenFrame.minSize...GenFrame.maxSize).contains(size) else {
            throw ValidationError("--size must be \(GenFrame.minSize)...\(GenFrame.maxSize)")
        }
        guard count >= 0 else { throw ValidationError("--count must be 0 or more") }
        guard rate >= 0, rate.isFinite else { throw ValidationError("--rate must be 0 or more") }
        guard (1...1024).contains(burst) else { throw ValidationError("--burst must be 1...1024") }
        if let srcMAC, parseMAC(srcMAC) == nil { throw ValidationError("--src-mac: expected xx:xx:xx:xx:xx:xx") }
        guard parseMAC(dstMAC) != nil else { throw ValidationError("--dst-mac: expected xx:xx:xx:xx:xx:xx") }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be positive") }
        guard (1...SourceMACs.maxCount).contains(macs) else {
            throw ValidationError("--macs must be 1...\(SourceMACs.maxCount)")
        }
        if macs > 1, let srcMAC, let base = parseMAC(srcMAC), base[0] & 1 != 0 {
            throw ValidationError("--macs: --src-mac \(srcMAC) is a multicast address")
        }
    }

    func run() throws {
        let stop = StopSignal()
        let frontend = try device.open()
        let pairs = frontend.queuePairs
        let source = srcMAC.flatMap(parseMAC) ?? frontend.mac ?? [0x02, 0, 0, 0, 0, 0x01]
        let destination = parseMAC(dstMAC) ?? [0x02, 0, 0, 0, 0, 0x02]

        // One template per stream, in one block: nothing to retain in the loop.
        let templates = UnsafeMutableRawPointer.allocate(byteCount: pairs * size, alignment: 64)
        defer { templates.deallocate() }
        for p in 0..<pairs {
            let t = GenFrame.template(size: size, stream: UInt16(p), source: source, destination: destination)
            t.withUnsafeBytes { (templates + p * size).copyMemory(from: $0.baseAddress!, byteCount: size) }
        }
        var sequences = [UInt64](repeating: 0, count: pairs)

        // --macs: every source address precomputed; a frame patches its 6 bytes in place.
        let sources = SourceMACs(base: source, count: macs)
        defer { sources.deallocate() }
        if macs > 1 {
            if source[0] & 1 != 0 {
                printError("sluice-gen tx: --macs: source base \(formatMAC(source)) is a multicast address")
                throw ExitCode(2)
            }
            if let i = sources.index(of: destination) {
                printError("sluice-gen tx: --dst-mac \(formatMAC(destination)) is source address #\(i) of --macs \(macs)")
                throw ExitCode(2)
            }
        }
        let cycleMACs = macs > 1
        let macCount = macs
        var macIndex = 0

        // Plain locals: an @Option getter in the loop costs a generic metadata lookup per call.
        let frameSize = size
        let limit = count
        let burstSize = burst
        let limited = rate > 0
        let nanosPerFrame = limited ? 1e9 / rate : 0
        let deadline = duration.map { Clock.monotonicNanos() &+ UInt64($0 * 1e9) }
        let cpuAtStart = cpuSeconds()
        let start = Clock.monotonicNanos()
        var sent = 0
        var pair = 0
        var turns: UInt32 = 0
        var nextCheck = start &+ 100_000_000
        var stoppedEarly = false
        var backendGone = false

        while limit == 0 || sent < limit {
            var n = burstSize
            if limit > 0 { n = min(n, limit - sent) }
            if limited {
                let now = Clock.monotonicNanos()
                let due = Int(Double(now &- start) / nanosPerFrame) + 1
                // Pace whole bursts: wait (sleeping, so a receiver sharing this CPU runs)
                // until a full burst is due, then send it in one go.
                let want = limit > 0 ? min(burstSize, limit - sent) : burstSize
                if due - sent < want {
                    let wait = Double(sent + want) * nanosPerFrame - Double(now &- start)
                    if wait > 20_000 { Clock.sleep(micros: UInt32(min(wait / 1000, 100_000))) } else { sl_pause() }
                    if now >= nextCheck { if checkStop(stop, deadline, now) { stoppedEarly = true; break }; nextCheck = now &+ 100_000_000 }
                    continue
                }
                n = min(n, due - sent)
            }
            let base = templates + pair * frameSize
            let first = sequences[pair]
            let k = frontend.send(count: n, size: frameSize, queuePair: pair) { frame, i in
                frame.baseAddress!.copyMemory(from: base, byteCount: frameSize)
                GenFrame.setSequence(frame, first &+ UInt64(i))
                if cycleMACs {
                    sources.write(macIndex, into: frame.baseAddress! + 6)
                    macIndex = macIndex &+ 1 == macCount ? 0 : macIndex &+ 1
                }
            }
            sequences[pair] = first &+ UInt64(k)
            sent += k
            if k < n {
                // Ring full: let the backend catch up, spinning a little first.
                var spins = 0
                while frontend.reclaimTransmitted(queuePair: pair) == 0 && spins < 256 {
                    sl_spin_wait(&turns)
                    spins += 1
                }
                if spins == 256 {
                    frontend.waitForTransmitted(queuePair: pair, timeoutMilliseconds: 1)
                    // No progress: the usual per-1024-frames check would never come.
                    let now = Clock.monotonicNanos()
                    if now >= nextCheck {
                        if checkStop(stop, deadline, now) { stoppedEarly = true; break }
                        if frontend.backendClosed { backendGone = true; break }
                        nextCheck = now &+ 100_000_000
                    }
                }
            }
            pair = pair + 1 == pairs ? 0 : pair + 1
            if sent & 0x3ff < n {
                let now = Clock.monotonicNanos()
                if now >= nextCheck {
                    if checkStop(stop, deadline, now) { stoppedEarly = true; break }
                    nextCheck = now &+ 100_000_000
                }
            }
        }
        let end = Clock.monotonicNanos()
        if backendGone {
            printError("sluice-gen tx: the backend closed the connection after \(sent) frames")
            throw ExitCode(1)
        }
        let cpu = cpuSeconds() - cpuAtStart
        let inFlight = drain(frontend)
        frontend.refreshQueueCounters()
        _ = try? frontend.disconnect()

        let elapsed = seconds(start, end)
        let c = frontend.counters
        let pps = elapsed > 0 ? Double(c.txPackets) / elapsed : 0
        let bps = elapsed > 0 ? Double(c.txBytes) * 8 / elapsed : 0
        let cycles = cyclesPerPacket(cpu: cpu, packets: c.txPackets)
        if device.json {
            var s = Summary(mode: "tx")
            s.add("packets", c.txPackets)
            s.add("bytes", c.txBytes)
            s.add("seconds", elapsed)
            s.add("pps", pps)
            s.add("bits_per_second", bps)
            s.add("size", frameSize)
            s.add("queues", pairs)
            s.add("source_macs", macCount)
            s.add("cpu_seconds", cpu)
            s.add("cycles_per_packet", cycles)
            s.add("ring_full", c.txRingFull)
            s.add("kicks", c.kicks)
            s.add("kicks_suppressed", c.kicksSuppressed)
            s.add("in_flight_after_drain", inFlight)
            s.add("interrupted", stoppedEarly)
            s.add("tx_layout", string: frontend.txLayout.rawValue)
            s.add("features", string: frontend.negotiation.ackedFeatures.description)
            print(s.json())
        } else {
            print("tx: sent \(c.txPackets) packets (\(c.txBytes) bytes) in \(format3(elapsed)) s, "
                + "\(human(pps)) pps, \(human(bps))bit/s, \(format3(cycles.rounded())) cycles/packet, ring full \(c.txRingFull), "
                + "kicks \(c.kicks) (suppressed \(c.kicksSuppressed))"
                + (inFlight > 0 ? ", \(inFlight) still in flight" : ""))
        }
        if inFlight > 0 {
            printError("sluice-gen tx: the backend did not take \(inFlight) frames within \(drainTimeout) s")
            throw ExitCode(1)
        }
    }

    private func checkStop(_ stop: StopSignal, _ deadline: UInt64?, _ now: UInt64) -> Bool {
        if let deadline, now >= deadline { return true }
        return stop.requested()
    }

    /// Waits until the backend has returned every TX buffer; returns how
    /// many are still out when `drainTimeout` passes.
    private func drain(_ frontend: VirtioFrontend) -> Int {
        let deadline = Clock.monotonicNanos() &+ UInt64(max(0, drainTimeout) * 1e9)
        while true {
            var out = 0
            for p in 0..<frontend.queuePairs {
                frontend.reclaimTransmitted(queuePair: p)
                out += frontend.txQueues[p].inFlight
            }
            if out == 0 || Clock.monotonicNanos() >= deadline { return out }
            for p in 0..<frontend.queuePairs where frontend.txQueues[p].inFlight > 0 {
                frontend.waitForTransmitted(queuePair: p, timeoutMilliseconds: 10)
            }
        }
    }
}
