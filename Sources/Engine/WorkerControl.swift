import CSluice
import Platform

/// The control thread ↔ worker handshake.
///
/// The control thread never changes state a worker is using. It asks the worker
/// to pause, waits until the worker says it has stopped touching its poll list,
/// changes what it needs, and lets it go. The worker checks one word per loop
/// turn; nothing is locked on the packet path.
///
/// Words (each on its own cache line): request (written by control), ack
/// (written by the worker), stop (written by control).
struct WorkerControl: @unchecked Sendable, BitwiseCopyable {
    private let words: UnsafeMutableRawPointer
    private static let request = 0, ack = 64, stop = 128

    static func create() -> WorkerControl {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 192, alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: 192)
        return WorkerControl(words: p)
    }

    private init(words: UnsafeMutableRawPointer) { self.words = words }

    func destroy() { words.deallocate() }

    // MARK: worker side

    /// True when the control thread wants this worker to pause (checked each turn).
    @inline(__always)
    var pauseRequested: Bool { sl_load_acquire_u32(words + Self.request) != 0 }

    @inline(__always)
    var stopRequested: Bool { sl_load_acquire_u32(words + Self.stop) != 0 }

    /// Acknowledge the pause and wait until released. Release on `ack` pairs with the
    /// control thread's acquire in `pause()`: everything the worker wrote before is visible.
    func parkUntilReleased() {
        sl_store_release_u32(words + Self.ack, 1)
        var turns: UInt32 = 0
        while sl_load_acquire_u32(words + Self.request) != 0 && !stopRequested {
            if turns < 1000 { sl_pause(); turns += 1 } else { Clock.sleep(micros: 20) }
        }
        sl_store_release_u32(words + Self.ack, 0)
    }

    // MARK: control side

    /// Ask for a pause and wait for the worker's acknowledgement. `wake` is called
    /// once so a worker asleep in event mode notices.
    func pause(wake: () -> Void) {
        sl_store_release_u32(words + Self.request, 1)
        wake()
        while sl_load_acquire_u32(words + Self.ack) == 0 { Clock.sleep(micros: 10) }
    }

    /// Release a paused worker. Release pairs with the worker's acquire of `request`:
    /// the control thread's changes are visible before it runs again.
    func resume() {
        sl_store_release_u32(words + Self.request, 0)
        while sl_load_acquire_u32(words + Self.ack) != 0 { Clock.sleep(micros: 10) }
    }

    func requestStop() { sl_store_release_u32(words + Self.stop, 1) }
}
