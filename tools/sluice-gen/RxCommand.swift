#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CSluice
import Platform
import VhostUser

struct RxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rx",
        abstract: "Receive frames, optionally checking sluice-gen sequence numbers.",
        discussion: """
            Stops after --count frames, or when no frame arrived for --timeout seconds. \
            Exit 1 when fewer than --count frames arrived, when nothing arrived at all \
            (without --count), or with --check-sequence when frames were lost, \
            duplicated or reordered.
            """)

    @OptionGroup var device: DeviceOptions

    @Option(name: .long, help: ArgumentHelp("Frames to receive; 0: until --timeout passes without a frame.", valueName: "N"))
    var count: Int = 0

    @Option(name: .long, help: ArgumentHelp("Give up after this many seconds without a frame.", valueName: "SECONDS"))
    var timeout: Double = 10

    @Flag(name: .long, help: "Check the sequence numbers of sluice-gen frames (per queue pair).")
    var checkSequence = false

    @Flag(name: .long, help: "Spin on the rings instead of sleeping on the call eventfds when idle.")
    var busyPoll = false

    @Option(name: .long, help: ArgumentHelp("Frames taken per harvest.", valueName: "N"))
    var burst: Int = 64

    @Option(name: .long, help: ArgumentHelp(
        "First send one broadcast frame from this source MAC on every queue pair, so a learning "
            + "switch knows where the receiver is (as a guest's gratuitous ARP).", valueName: "MAC"))
    var announce: String?

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must be 0 or more") }
        if let announce, parseMAC(announce).map({ $0[0] & 1 == 0 }) != true {
            throw ValidationError("--announce: expected a unicast xx:xx:xx:xx:xx:xx")
        }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be positive") }
        guard (1...4096).contains(burst) else { throw ValidationError("--burst must be 1...4096") }
    }

    func run() throws {
        let stop = StopSignal()
        let frontend = try device.open()
        if let mac = announce.flatMap(parseMAC) {
            let frame = GenFrame.template(size: GenFrame.minSize, stream: 0, source: mac, destination: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
            for pair in 0..<frontend.queuePairs {
                _ = frontend.send(count: 1, size: frame.count, queuePair: pair) { out, _ in
                    frame.withUnsafeBytes { out.copyMemory(from: $0) }
                }
            }
        }
        var checker = SequenceChecker()
        let check = checkSequence
        let limit = count
        let burstSize = burst
        let busy = busyPoll
        let idleNanos = UInt64(timeout * 1e9)
        var received = 0
        var firstAt: UInt64 = 0
        var lastAt = Clock.monotonicNanos()
        var timedOut = false
        var interrupted = false
        var nextCheck = lastAt &+ 100_000_000
        var cpuAtFirst = 0.0

        while limit == 0 || received < limit {
            let want = limit == 0 ? burstSize : min(burstSize, limit - received)
            var n = 0
            for pair in 0..<frontend.queuePairs where n < want {
                n += frontend.harvest(max: want - n, queuePair: pair) { frame in
                    if check { checker.check(frame) }
                }
            }
            let now = Clock.monotonicNanos()
            if n > 0 {
                if received == 0 {
                    firstAt = now
                    cpuAtFirst = cpuSeconds()
                }
                received += n
                lastAt = now
            } else {
                if now &- lastAt >= idleNanos {
                    timedOut = true
                    break
                }
                if busy {
                    sl_pause()
                } else {
                    let left = (idleNanos - (now &- lastAt)) / 1_000_000
                    frontend.waitForReceive(timeoutMilliseconds: Int32(min(100, left + 1)))
                }
            }
            if now >= nextCheck {
                if stop.requested() { interrupted = true; break }
                nextCheck = now &+ 100_000_000
            }
        }
        // CPU from the first frame on (the idle wait at the end is mostly asleep).
        let cpu = received > 0 ? cpuSeconds() - cpuAtFirst : 0
        frontend.refreshQueueCounters()
        _ = try? frontend.disconnect()

        let c = frontend.counters
        let cycles = cyclesPerPacket(cpu: cpu, packets: c.rxPackets)
        let elapsed = received > 1 ? seconds(firstAt, lastAt) : 0
        let pps = elapsed > 0 ? Double(c.rxPackets) / elapsed : 0
        let bps = elapsed > 0 ? Double(c.rxBytes) * 8 / elapsed : 0
        let missing = limit > 0 ? max(0, limit - received) : 0
        if device.json {
            var s = Summary(mode: "rx")
            s.add("packets", c.rxPackets)
            s.add("bytes", c.rxBytes)
            s.add("seconds", elapsed)
            s.add("pps", pps)
            s.add("bits_per_second", bps)
            s.add("cpu_seconds", cpu)
            s.add("cycles_per_packet", cycles)
            s.add("errors", c.rxErrors)
            s.add("timed_out", timedOut)
            s.add("interrupted", interrupted)
            s.add("missing", missing)
            if check {
                s.add("lost", checker.lost)
                s.add("duplicated", checker.duplicated)
                s.add("reordered", checker.reordered)
                s.add("corrupted", checker.corrupted)
                s.add("foreign", checker.foreign)
                s.add("streams", checker.streamCount)
            }
            print(s.json())
        } else {
            var line = "rx: received \(c.rxPackets) packets (\(c.rxBytes) bytes) in \(format3(elapsed)) s, "
                + "\(human(pps)) pps, \(human(bps))bit/s, \(format3(cycles.rounded())) cycles/packet, errors \(c.rxErrors)"
            if check {
                line += ", lost \(checker.lost), duplicated \(checker.duplicated), reordered \(checker.reordered)"
                    + ", corrupted \(checker.corrupted), foreign \(checker.foreign)"
            }
            if timedOut { line += limit > 0 ? ", timed out (\(missing) missing)" : ", idle for \(format3(timeout)) s" }
            print(line)
        }
        let failed = (limit > 0 && received < limit) || (limit == 0 && received == 0)
            || (check && checker.hasErrors)
        if failed { throw ExitCode(1) }
    }
}

struct EchoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "Send every received frame back on the same queue pair, MACs swapped.",
        discussion: "Stops after --count frames or --timeout seconds without a frame; exit 1 if nothing was echoed.")

    @OptionGroup var device: DeviceOptions

    @Option(name: .long, help: ArgumentHelp("Give up after this many seconds without a frame.", valueName: "S"))
    var timeout: Double = 10

    @Option(name: .long, help: ArgumentHelp("Stop after echoing this many frames; 0: no limit.", valueName: "N"))
    var count: Int = 0

    @Flag(name: .long, help: "Spin on the rings instead of sleeping on the call eventfds when idle.")
    var busyPoll = false

    func validate() throws {
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be positive") }
        guard count >= 0 else { throw ValidationError("--count must be 0 or more") }
    }

    func run() throws {
        let stop = StopSignal()
        let frontend = try device.open()
        let idleNanos = UInt64(timeout * 1e9)
        let limit = count
        let busy = busyPoll
        var echoed = 0
        var dropped = 0
        var received = 0
        var lastAt = Clock.monotonicNanos()
        var nextCheck = lastAt &+ 100_000_000
        var firstAt: UInt64 = 0

        while limit == 0 || echoed < limit {
            var n = 0
            for pair in 0..<frontend.queuePairs {
                let room = limit == 0 ? 64 : min(64, limit - echoed)
                if room <= 0 { break }
                n += frontend.harvest(max: room, queuePair: pair) { frame in
                    let ok = frontend.enqueue(length: frame.count, queuePair: pair) { out in
                        out.copyMemory(from: frame)
                        GenFrame.swapMACs(out)
                    }
                    if ok { echoed += 1 } else { dropped += 1 }
                }
                frontend.flush(queuePair: pair)
            }
            let now = Clock.monotonicNanos()
            if n > 0 {
                if received == 0 { firstAt = now }
                received += n
                lastAt = now
            } else {
                if now &- lastAt >= idleNanos { break }
                if busy {
                    sl_pause()
                } else {
                    let left = (idleNanos - (now &- lastAt)) / 1_000_000
                    frontend.waitForReceive(timeoutMilliseconds: Int32(min(100, left + 1)))
                }
            }
            if now >= nextCheck {
                if stop.requested() { break }
                nextCheck = now &+ 100_000_000
            }
        }
        // Let the backend take the last echoes before stopping the rings.
        let drainUntil = Clock.monotonicNanos() &+ 1_000_000_000
        for p in 0..<frontend.queuePairs {
            while frontend.txQueues[p].inFlight > 0 && Clock.monotonicNanos() < drainUntil {
                frontend.waitForTransmitted(queuePair: p, timeoutMilliseconds: 10)
            }
        }
        frontend.refreshQueueCounters()
        _ = try? frontend.disconnect()

        let elapsed = received > 1 ? seconds(firstAt, lastAt) : 0
        let pps = elapsed > 0 ? Double(echoed) / elapsed : 0
        if device.json {
            var s = Summary(mode: "echo")
            s.add("received", received)
            s.add("echoed", echoed)
            s.add("dropped", dropped)
            s.add("seconds", elapsed)
            s.add("pps", pps)
            print(s.json())
        } else {
            print("echo: echoed \(echoed) of \(received) packets in \(format3(elapsed)) s, \(human(pps)) pps, "
                + "dropped \(dropped) (TX ring full)")
        }
        if echoed == 0 { throw ExitCode(1) }
    }
}
