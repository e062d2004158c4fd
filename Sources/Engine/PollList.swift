import Memory
import Platform
import Switching

/// One item on a worker's poll list. An enum over plain values, dispatched once per
/// batch (STYLE.md hot-path habit 2). Later issues add cases (switch ports, NVMe
/// queue pairs).
enum PollEntry {
    /// One direction of a p2p link (the value lives in memory the list owns, so the
    /// entry is one pointer and nothing is copied per loop turn).
    case p2p(UnsafeMutablePointer<P2PDirection>)
}

/// The worker's poll list: inline-allocated entries, no Array on the hot path.
struct PollList {
    static let capacity = 256
    private(set) var entries: UnsafeMutablePointer<PollEntry>?
    private(set) var count = 0

    mutating func destroy() {
        if let e = entries {
            for i in 0..<count {
                switch e[i] {
                case .p2p(let d): d.pointee.release(); d.deinitialize(count: 1); d.deallocate()
                }
            }
            e.deinitialize(count: count); e.deallocate()
        }
        entries = nil
        count = 0
    }

    /// Control thread, worker paused.
    mutating func append(_ entry: PollEntry) -> Bool {
        if entries == nil { entries = .allocate(capacity: Self.capacity) }
        guard count < Self.capacity, let e = entries else { return false }
        (e + count).initialize(to: entry)
        count += 1
        return true
    }

    /// Poll every entry once; returns the packets moved.
    @inline(__always)
    func pollAll(worker: Worker) -> Int {
        guard let e = entries else { return 0 }
        var work = 0
        for i in 0..<count {
            switch e[i] {
            case .p2p(let d): work &+= d.pointee.poll()
            }
        }
        return work
    }

    func setNotifications(_ on: Bool) {
        guard let e = entries else { return }
        for i in 0..<count {
            switch e[i] {
            case .p2p(let d): d.pointee.src.setNotification(on)
            }
        }
    }

    func hasPendingWork() -> Bool {
        guard let e = entries else { return false }
        for i in 0..<count {
            switch e[i] {
            case .p2p(let d): if d.pointee.src.isLive && d.pointee.src.availableCount() > 0 { return true }
            }
        }
        return false
    }

    func drainKicks() {
        guard let e = entries else { return }
        for i in 0..<count {
            switch e[i] {
            case .p2p(let d):
                let fd = d.pointee.src.state.pointee.kickFD
                if fd >= 0 { EventFD.drain(fd) }
            }
        }
    }
}
