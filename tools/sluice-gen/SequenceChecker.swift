// Per-stream sequence accounting for `rx --check-sequence`.
//
// Each stream remembers the next sequence it expects and a window of the
// last 65536 sequences it has seen. A sequence ahead of the expected one
// counts the gap as lost; one behind it is a duplicate if seen before, else a
// reordered frame (and one fewer lost). Anything older than the window is
// counted as reordered. Every frame's length and filler bytes are checked too.
//
// All state is in flat arrays allocated up front: nothing per frame.

struct SequenceChecker {
    static let maxStreams = 256
    static let windowBits = 65_536
    private static let wordsPerStream = windowBits / 64

    private var expected = [UInt64](repeating: 0, count: maxStreams)
    private var active = [Bool](repeating: false, count: maxStreams)
    /// Stream n's window is words n*wordsPerStream ..< (n+1)*wordsPerStream.
    private var seen = [UInt64](repeating: 0, count: maxStreams * wordsPerStream)

    private(set) var lost: Int64 = 0
    private(set) var duplicated: UInt64 = 0
    private(set) var reordered: UInt64 = 0
    /// Frames that are not sluice-gen frames, or name a stream ≥ maxStreams.
    private(set) var foreign: UInt64 = 0
    /// sluice-gen frames whose length or filler bytes are wrong.
    private(set) var corrupted: UInt64 = 0
    private(set) var streamCount = 0

    var hasErrors: Bool { lost != 0 || duplicated != 0 || reordered != 0 || corrupted != 0 }

    mutating func check(_ frame: UnsafeRawBufferPointer) {
        guard let (streamID, s) = GenFrame.parse(frame), Int(streamID) < Self.maxStreams else {
            foreign &+= 1
            return
        }
        if !GenFrame.isIntact(frame) { corrupted &+= 1 }
        let stream = Int(streamID)
        if !active[stream] {
            active[stream] = true
            streamCount += 1
        }
        record(stream, s)
    }

    @inline(__always)
    private func bit(_ stream: Int, _ s: UInt64) -> (word: Int, mask: UInt64) {
        let b = Int(s % UInt64(Self.windowBits))
        return (stream * Self.wordsPerStream + (b >> 6), 1 << UInt64(b & 63))
    }

    private mutating func record(_ stream: Int, _ s: UInt64) {
        let e = expected[stream]
        if s >= e {
            // Forget what the window held for the positions we move over.
            let gap = s - e
            if gap >= UInt64(Self.windowBits) {
                let base = stream * Self.wordsPerStream
                for i in base..<base + Self.wordsPerStream { seen[i] = 0 }
            } else {
                var p = e
                while p < s {
                    let (w, m) = bit(stream, p)
                    seen[w] &= ~m
                    p += 1
                }
            }
            lost += Int64(clamping: gap)
            let (w, m) = bit(stream, s)
            seen[w] |= m
            expected[stream] = s + 1
        } else if e - s > UInt64(Self.windowBits) {
            reordered &+= 1
        } else {
            let (w, m) = bit(stream, s)
            if seen[w] & m != 0 {
                duplicated &+= 1
            } else {
                seen[w] |= m
                reordered &+= 1
                lost -= 1
            }
        }
    }
}
