// The hot-path handle: one word in one slot's counter block.

import CSluice

/// A pointer to one counter word in one slot. Plain value, no reference count:
/// copy it into a worker's state once and bump it in the loop.
///
/// Only the thread that owns the slot may call `add`, `increment` or `set`
/// (single writer, so a relaxed load and store suffice — no locked instruction).
/// Any thread may read `value`. The `StatsWriter` that produced the handle must
/// outlive it; after `StatsWriter.remove()` writes still land in private memory.
@frozen
public struct StatsCounter: BitwiseCopyable, @unchecked Sendable {
    @usableFromInline
    let word: UnsafeMutableRawPointer

    @inlinable
    init(word: UnsafeMutableRawPointer) {
        self.word = word
    }

    @inlinable
    public func add(_ n: UInt64) {
        sl_counter_add(word, n)
    }

    @inlinable
    public func increment() {
        sl_counter_add(word, 1)
    }

    /// For gauges, or for publishing a thread-local total in one store.
    @inlinable
    public func set(_ v: UInt64) {
        sl_store_relaxed_u64(word, v)
    }

    @inlinable
    public var value: UInt64 {
        sl_load_relaxed_u64(word)
    }

    /// The address of the word, for layout checks in tests.
    public var address: UnsafeRawPointer { UnsafeRawPointer(word) }

    /// A handle to a private scratch word nobody reads: for tests and for paths
    /// not wired to a real counter. Many threads may write it; values are lost.
    public static var discard: StatsCounter { StatsCounter(word: discardWord) }
}

/// One cache line that `StatsCounter.discard` points into, never freed.
private nonisolated(unsafe) let discardWord: UnsafeMutableRawPointer = {
    let line = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
    line.initializeMemory(as: UInt64.self, repeating: 0, count: 8)
    return line
}()
