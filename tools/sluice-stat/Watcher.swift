// --watch: sample every interval, print each refresh under a timestamp, stop on
// SIGINT or after --count refreshes. Follows the segment when the daemon restarts.

import ArgumentParser
import Platform
import Stats
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Set by SIGINT/SIGTERM; the watch and serve loops check it between short waits.
let stopRequested = Atomic<Bool>(false)

/// SIGINT and SIGTERM set `stopRequested` instead of killing the process.
func installStopHandlers() {
    signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
}

struct Watcher {
    let command: SluiceStat
    var reader: StatsReader
    let interval: Double
    let limit: Int?

    init(command: SluiceStat, reader: StatsReader, interval: Double, limit: Int?) {
        self.command = command
        self.reader = reader
        self.interval = interval
        self.limit = limit
    }

    mutating func run() throws {
        installStopHandlers()

        var previous: StatsSnapshot?
        var previousTime = 0.0
        var wasLive = true
        var lastProblem: String?
        var refreshes = 0
        while !stopRequested.load(ordering: .relaxed) {
            if reader.fileWasReplaced, let fresh = try? StatsReader(path: reader.path) {
                reader = fresh  // the daemon restarted: its counters start again from zero
                previous = nil
            }
            let now = monotonicSeconds()
            let snapshot = try command.sample(reader)
            if snapshot.isLive != wasLive {
                if snapshot.isLive {
                    Output.standardError("sluice-stat: instance '\(command.instanceName(snapshot))' is live again\n")
                } else {
                    command.warnStale(snapshot)
                }
                wasLive = snapshot.isLive
            }
            // An empty view is said once on stderr (and again only after it changed); the watch goes on.
            let problem = command.nothingToShow(snapshot)
            if let problem, problem != lastProblem { Output.standardError("sluice-stat: \(problem)\n") }
            lastProblem = problem

            Output.standardOutput(command.render(
                snapshot, previous: previous, elapsed: now - previousTime, time: localTimestamp()))
            previous = snapshot
            previousTime = now
            refreshes += 1
            if let limit, refreshes >= limit { break }
            sleep(seconds: interval)
        }
        if !wasLive { throw ExitCode(2) }
    }

    /// Sleep in slices of at most 50 ms so a signal stops the loop promptly.
    private func sleep(seconds: Double) {
        let deadline = monotonicSeconds() + seconds
        while !stopRequested.load(ordering: .relaxed) {
            let left = deadline - monotonicSeconds()
            if left <= 0 { return }
            let slice = min(left, 0.05)
            var request = timespec(tv_sec: Int(slice), tv_nsec: Int((slice - Double(Int(slice))) * 1e9))
            nanosleep(&request, nil)
        }
    }
}

func monotonicSeconds() -> Double {
    Double(Clock.monotonicNanos()) / 1e9
}

/// Now as ISO-8601 local time with milliseconds and the UTC offset:
/// `2025-03-14T09:26:53.589+01:00`.
func localTimestamp(realtimeNanoseconds: UInt64 = Clock.realtimeNanos()) -> String {
    var seconds = time_t(realtimeNanoseconds / 1_000_000_000)
    let millis = Int(realtimeNanoseconds / 1_000_000 % 1000)
    var parts = tm()
    localtime_r(&seconds, &parts)
    func digits(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
    let offset = parts.tm_gmtoff
    let offsetMinutes = Int(abs(offset)) / 60
    return digits(Int(parts.tm_year) + 1900, 4) + "-" + digits(Int(parts.tm_mon) + 1, 2) + "-"
        + digits(Int(parts.tm_mday), 2) + "T" + digits(Int(parts.tm_hour), 2) + ":" + digits(Int(parts.tm_min), 2)
        + ":" + digits(Int(parts.tm_sec), 2) + "." + digits(millis, 3)
        + (offset < 0 ? "-" : "+") + digits(offsetMinutes / 60, 2) + ":" + digits(offsetMinutes % 60, 2)
}

/// Unbuffered writes to fd 1 and 2 (the C `stdout`/`stderr` globals are not
/// concurrency-safe in Swift 6, and a pipe reader of --watch wants every line now).
enum Output {
    static func standardOutput(_ text: String) { emit(text, to: 1) }
    static func standardError(_ text: String) { emit(text, to: 2) }

    private static func emit(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { bytes in
            guard let start = bytes.baseAddress else { return }
            var offset = 0
            while offset < bytes.count {
                let written = write(fd, start + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}
