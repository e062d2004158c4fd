// --watch: sample every interval, print values with rates, stop on SIGINT or
// after --count refreshes. Follows the segment when the daemon restarts.

import ArgumentParser
import Stats
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Set by SIGINT/SIGTERM; the watch loop checks it between short sleeps.
private let stopRequested = Atomic<Bool>(false)

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
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }

        var previous: StatsSnapshot?
        var previousTime = 0.0
        var wasLive = true
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
            var text = command.render(snapshot, previous: previous, elapsed: now - previousTime)
            if refreshes > 0, !command.json { text = "\n" + text }
            Output.standardOutput(text)
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
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
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
