#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Platform
import VhostUser

/// The options every subcommand shares: where the backend is and how the
/// virtio device looks.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("vhost-user socket of the backend.", valueName: "PATH"))
    var socket: String

    @Flag(name: .long, help: "Listen on --socket and wait for the backend to connect (as QEMU's server=on).")
    var listen = false

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for the backend (connect retries, or accept with --listen).", valueName: "S"))
    var connectTimeout: Double = 10

    @Option(name: .long, help: ArgumentHelp("Queue pairs (more than 1 needs multiqueue in the backend).", valueName: "N"))
    var queues: Int = 1

    @Option(name: .long, help: ArgumentHelp("Entries per vring, a power of two.", valueName: "N"))
    var queueSize: Int = 256

    @Option(name: .long, help: ArgumentHelp("Guest memory in MiB.", valueName: "MIB"))
    var memory: Int = 64

    @Flag(name: .long, help: "Back guest memory with huge pages.")
    var hugepages = false

    @Flag(name: .long, help: "Do not negotiate VIRTIO_F_EVENT_IDX.")
    var noEventIdx = false

    @Flag(name: .long, help: "Do not negotiate VIRTIO_NET_F_MRG_RXBUF.")
    var noMrgRxbuf = false

    @Option(name: .long, help: ArgumentHelp("TX frame layout: contiguous, split (2 descriptors) or indirect.", valueName: "LAYOUT"))
    var txLayout: String = "contiguous"

    @Flag(name: .long, help: "Print one JSON object instead of the summary line.")
    var json = false

    func validate() throws {
        guard (1...128).contains(queues) else { throw ValidationError("--queues must be 1...128") }
        guard FrontendTxLayout(rawValue: txLayout) != nil else {
            throw ValidationError("--tx-layout must be contiguous, split or indirect")
        }
        guard memory > 0 else { throw ValidationError("--memory must be positive") }
    }

    var frontendOptions: FrontendOptions {
        var o = FrontendOptions()
        o.memoryBytes = memory << 20
        o.hugepages = hugepages ? .on : .off
        o.queuePairs = queues
        o.queueSize = queueSize
        o.eventIndex = !noEventIdx
        o.mergeableRxBuffers = !noMrgRxbuf
        let layout = FrontendTxLayout(rawValue: txLayout) ?? .contiguous
        o.indirectDescriptors = layout == .indirect
        o.txDescriptorsPerFrame = layout == .split ? 2 : 1
        return o
    }

    /// Connects (or listens), negotiates and starts the device; a failure
    /// is printed and ends the program with status 2.
    func open() throws -> VirtioFrontend {
        Signals.ignorePipe()
        do {
            let frontend = listen
                ? try VirtioFrontend.listen(path: socket, options: frontendOptions, timeoutSeconds: connectTimeout)
                : try VirtioFrontend.connect(path: socket, options: frontendOptions, retrySeconds: connectTimeout)
            if let warning = frontend.memoryWarning { printError("sluice-gen: \(warning)") }
            return frontend
        } catch {
            printError("sluice-gen: \(socket): \(error)")
            throw ExitCode(2)
        }
    }
}

func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// SIGINT/SIGTERM as a pollable flag: checked between bursts, a few times
/// a second at most.
struct StopSignal {
    let fd: Int32

    init() {
        fd = (try? Signals.signalFD([SIGINT, SIGTERM])) ?? -1
    }

    func requested() -> Bool { fd >= 0 && Signals.read(fd) != nil }
}

/// CPU seconds (user + system) this process has used so far.
func cpuSeconds() -> Double {
    var usage = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
    let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    return user + system
}

/// CPU cycles per packet over a run: CPU time × TSC rate / packets (busy
/// polling counts: a poll-mode generator is busy by design).
func cyclesPerPacket(cpu: Double, packets: UInt64) -> Double {
    packets > 0 ? cpu * Clock.cyclesPerSecond / Double(packets) : 0
}

/// Elapsed seconds between two monotonic nanosecond readings.
func seconds(_ from: UInt64, _ to: UInt64) -> Double { to > from ? Double(to - from) / 1e9 : 0 }

/// One summary: a line for people, or a JSON object.
struct Summary {
    var mode: String
    var fields: [(String, String)] = []

    mutating func add(_ key: String, _ value: Int) { fields.append((key, String(value))) }
    mutating func add(_ key: String, _ value: UInt64) { fields.append((key, String(value))) }
    mutating func add(_ key: String, _ value: Int64) { fields.append((key, String(value))) }
    mutating func add(_ key: String, _ value: Double) {
        fields.append((key, value.isFinite ? String(format3(value)) : "0"))
    }
    mutating func add(_ key: String, _ value: Bool) { fields.append((key, value ? "true" : "false")) }
    mutating func add(_ key: String, string value: String) {
        let escaped = value.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"")
        fields.append((key, "\"" + escaped + "\""))
    }

    func json() -> String {
        "{\"mode\":\"\(mode)\"," + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

/// A number with at most three decimals, without Foundation.
func format3(_ v: Double) -> String {
    let scaled = (v * 1000).rounded()
    guard abs(scaled) < 9e15 else { return String(v) }
    let n = Int64(scaled)
    let sign = n < 0 ? "-" : ""
    let a = abs(n)
    let frac = a % 1000
    let fracText = frac == 0 ? "" : "." + String(String(frac + 1000).dropFirst()).trimmingZeros()
    return sign + String(a / 1000) + fracText
}

/// "12.3M" style rate.
func human(_ v: Double) -> String {
    if v >= 1e9 { return format3((v / 1e9 * 100).rounded() / 100) + "G" }
    if v >= 1e6 { return format3((v / 1e6 * 100).rounded() / 100) + "M" }
    if v >= 1e3 { return format3((v / 1e3 * 100).rounded() / 100) + "k" }
    return format3(v.rounded())
}

extension String {
    func trimmingZeros() -> String {
        var s = self
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }

    func replacingAll(_ a: Character, _ b: String) -> String {
        var out = ""
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}
