#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform

// The packet path: frames in and out of the rings. No allocation per packet:
// frames are written straight into guest memory slots, handed to callers as
// views of guest memory (or of the one reassembly buffer), and every ring
// index is published once per burst.

extension VirtioFrontend {
    // MARK: Sending

    /// Puts one frame of `length` bytes on TX queue 2q+1 of `queuePair`:
    /// `fill` writes the frame into its guest buffer. Not visible to the
    /// backend until `flush`. Returns false (and counts it) when the ring is
    /// full even after reclaiming, or the frame is longer than `maxFrameLength`.
    @inline(__always)
    public func enqueue(length: Int, queuePair: Int = 0, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        enqueue(on: txQueues[queuePair], length: length, fill)
    }

    /// `enqueue` on a TX queue the caller has already looked up (once per burst).
    @inline(__always)
    func enqueue(on q: DriverQueue, length: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        guard length >= 0, length <= txDataRoom else {
            counters.txTooLong &+= 1
            return false
        }
        let chain = txLayout == .split ? 2 : 1
        if q.freeCount < chain {
            q.reclaim()
            if q.freeCount < chain {
                counters.txRingFull &+= 1
                return false
            }
        }
        guard let head = q.allocateChain(chain) else { return false }
        let slot = q.slot(head)
        let slotGPA = q.slotGPA(head)
        let frameGPA = slotGPA &+ UInt64(Self.frameOffset)
        let headerGPA = frameGPA &- UInt64(headerLength)
        // virtio_net_hdr: no offloads, num_buffers 0 on TX. The last 8 bytes
        // before the frame, then the first 2 or 4 (10- or 12-byte header).
        slot.storeBytes(of: UInt64(0), toByteOffset: Self.frameOffset - 8, as: UInt64.self)
        slot.storeBytes(of: UInt32(0), toByteOffset: Self.frameOffset - 12, as: UInt32.self)

        switch txLayout {
        case .contiguous:
            fill(UnsafeMutableRawBufferPointer(start: slot + Self.frameOffset, count: length))
            q.setDescriptor(head, address: headerGPA, length: UInt32(headerLength + length), flags: 0)
        case .split:
            // The header in the head's slot, the frame in the second descriptor's slot.
            let second = q.following(head)
            fill(UnsafeMutableRawBufferPointer(start: q.slot(second) + Self.frameOffset, count: length))
            q.setDescriptor(head, address: headerGPA, length: UInt32(headerLength), flags: DriverQueueLayout.descriptorNext)
            q.setDescriptor(second, address: q.slotGPA(second) &+ UInt64(Self.frameOffset), length: UInt32(length), flags: 0)
        case .indirect:
            // A two-entry table at offset 0 of the slot (§2.7.5.3).
            fill(UnsafeMutableRawBufferPointer(start: slot + Self.frameOffset, count: length))
            let table = slot
            table.storeBytes(of: headerGPA, as: UInt64.self)
            table.storeBytes(of: UInt32(headerLength), toByteOffset: 8, as: UInt32.self)
            table.storeBytes(of: DriverQueueLayout.descriptorNext, toByteOffset: 12, as: UInt16.self)
            table.storeBytes(of: UInt16(1), toByteOffset: 14, as: UInt16.self)
            table.storeBytes(of: frameGPA, toByteOffset: 16, as: UInt64.self)
            table.storeBytes(of: UInt32(length), toByteOffset: 24, as: UInt32.self)
            table.storeBytes(of: UInt32(0), toByteOffset: 28, as: UInt32.self)
            q.setDescriptor(head, address: slotGPA, length: 32, flags: DriverQueueLayout.descriptorIndirect)
        }
        q.makeAvailable(head: head)
        counters.txPackets &+= 1
        counters.txBytes &+= UInt64(length)
        return true
    }

    /// Copies `frame` into a TX buffer (see `enqueue(length:queuePair:_:)`).
    @inline(__always)
    public func enqueue(frame: UnsafeRawBufferPointer, queuePair: Int = 0) -> Bool {
        enqueue(length: frame.count, queuePair: queuePair) { dst in
            if let src = frame.baseAddress, let d = dst.baseAddress { memcpy(d, src, frame.count) }
        }
    }

    /// Publishes what was enqueued on `queuePair` with one avail.idx store,
    /// kicking the backend if it asked for kicks.
    @inline(__always)
    public func flush(queuePair: Int = 0) {
        txQueues[queuePair].publish()
    }

    /// Returns finished TX buffers to the free list (also done by `enqueue`
    /// when the ring is full). Returns how many.
    @discardableResult
    public func reclaimTransmitted(queuePair: Int = 0) -> Int {
        txQueues[queuePair].reclaim()
    }

    /// Sends up to `count` generated frames of `size` bytes on `queuePair`:
    /// `fill` writes frame number `i` (0..<count). One publish for the burst.
    /// Returns how many were queued (fewer when the ring fills).
    @inline(__always)
    public func send(count: Int, size: Int, queuePair: Int = 0,
                     _ fill: (UnsafeMutableRawBufferPointer, Int) -> Void) -> Int {
        let q = txQueues[queuePair]
        var sent = 0
        while sent < count {
            let i = sent
            guard enqueue(on: q, length: size, { fill($0, i) }) else { break }
            sent += 1
        }
        q.publish()
        return sent
    }

    /// Sends `count` frames of `size` bytes: broadcast destination, our MAC
    /// (or 02:00:00:00:00:01) as source, EtherType 0x88b5 (local
    /// experimental), then `pattern` bytes. For tests and smoke checks.
    public func send(count: Int, size: Int, pattern: UInt8, queuePair: Int = 0) -> Int {
        let source = mac ?? [0x02, 0, 0, 0, 0, 0x01]
        return send(count: count, size: size, queuePair: queuePair) { frame, _ in
            if let base = frame.baseAddress { memset(base, Int32(pattern), frame.count) }
            let n = min(frame.count, 14)
            for i in 0..<n {
                frame[i] = i < 6 ? 0xff : i < 12 ? source[i - 6] : (i == 12 ? 0x88 : 0xb5)
            }
        }
    }

    /// Sends whole frames on `queuePair` (one publish). Returns how many were queued.
    public func send(frames: [[UInt8]], queuePair: Int = 0) -> Int {
        var sent = 0
        for frame in frames {
            let ok = frame.withUnsafeBytes { enqueue(frame: $0, queuePair: queuePair) }
            if !ok { break }
            sent += 1
        }
        flush(queuePair: queuePair)
        return sent
    }

    // MARK: Receiving

    /// Takes up to `max` frames from RX queue 2q of `queuePair`, calls `body`
    /// with each (a view valid only during the call: guest memory, or the
    /// reassembly buffer for a frame merged from several buffers), then
    /// reposts the buffers with one publish. Does not wait. Returns the
    /// number of frames handed to `body`.
    @inline(__always)
    public func harvest(max: Int, queuePair: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        let q = rxQueues[queuePair]
        guard q.hasUsed() else {
            // Idle: only buffers dropped on an earlier error need posting.
            if q.freeCount > 0 { refill(q) }
            return 0
        }
        var frames = 0
        while frames < max, let (head, written) = q.takeUsed() {
            let data = q.slot(head) + (Self.frameOffset - headerLength)
            let total = Int(written)
            guard total >= headerLength, total <= rxBufferLength else {
                q.release(head: head)
                counters.rxErrors &+= 1
                continue
            }
            let buffers = mergeable
                ? Int(data.load(fromByteOffset: FrontendNetHeader.numBuffersOffset, as: UInt16.self)) : 1
            if buffers <= 1 {
                let length = total - headerLength
                body(UnsafeRawBufferPointer(start: data + headerLength, count: length))
                q.release(head: head)
                counters.rxPackets &+= 1
                counters.rxBytes &+= UInt64(length)
                frames += 1
                continue
            }
            // A merged frame: the first buffer after its header, then each
            // following buffer whole (§5.1.6.4.2).
            var length = total - headerLength
            memcpy(scratch, data + headerLength, length)
            q.release(head: head)
            var complete = true
            for _ in 1..<buffers {
                guard let (next, nextWritten) = q.takeUsed() else {
                    complete = false
                    break
                }
                let n = Int(nextWritten)
                if n <= rxBufferLength, length + n <= Self.maxReassembledFrame {
                    memcpy(scratch + length, q.slot(next) + (Self.frameOffset - headerLength), n)
                    length += n
                } else {
                    complete = false
                }
                q.release(head: next)
            }
            guard complete else {
                counters.rxErrors &+= 1
                continue
            }
            body(UnsafeRawBufferPointer(start: scratch, count: length))
            counters.rxPackets &+= 1
            counters.rxBytes &+= UInt64(length)
            frames += 1
        }
        refill(q)
        return frames
    }

    /// Takes up to `max` frames from every queue pair, waiting up to
    /// `timeout` seconds (0: do not wait; nil: forever) on the RX call
    /// eventfds when none is there. Returns the frames handed to `body`.
    public func receive(max: Int, timeout: Double?, _ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        let deadline = timeout.map { Clock.monotonicNanos() &+ UInt64(Swift.max(0, $0) * 1e9) }
        while true {
            var got = 0
            for pair in 0..<queuePairs where got < max {
                got += harvest(max: max - got, queuePair: pair, body)
            }
            if got > 0 { return got }
            var waitMilliseconds: Int32 = -1
            if let deadline {
                let now = Clock.monotonicNanos()
                if now >= deadline { return 0 }
                waitMilliseconds = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            }
            waitForReceive(timeoutMilliseconds: waitMilliseconds)
        }
    }

    /// Copies of up to `max` received frames: waits up to `timeout` for the
    /// first, then takes whatever else is already there (for tests: allocates).
    public func receive(max: Int, timeout: Double?) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var wait = timeout
        while frames.count < max {
            let n = receive(max: max - frames.count, timeout: wait) { frames.append(Array($0)) }
            if n == 0 { break }
            wait = 0
        }
        return frames
    }

    /// Enables calls on every RX queue and sleeps in poll(2) until one is
    /// called or the timeout passes (-1: forever); calls are off again on
    /// return. Returns at once when a frame is already waiting.
    public func waitForReceive(timeoutMilliseconds: Int32) {
        var ready = false
        for q in rxQueues where q.enableCalls() { ready = true }
        if !ready {
            counters.callWaits &+= 1
            for i in 0..<queuePairs { rxPollFDs[i].revents = 0 }
            let r = Poll.once(rxPollFDs, count: queuePairs, timeoutMilliseconds: timeoutMilliseconds)
            if r > 0 {
                for i in 0..<queuePairs where rxPollFDs[i].revents != 0 { EventFD.drain(rxPollFDs[i].fd) }
            }
        }
        for q in rxQueues { q.disableCalls() }
    }

    /// Waits up to `timeoutMilliseconds` for the backend to return TX
    /// buffers of `queuePair` (a call), then reclaims them. Returns how many.
    @discardableResult
    public func waitForTransmitted(queuePair: Int = 0, timeoutMilliseconds: Int32) -> Int {
        let q = txQueues[queuePair]
        let reclaimed = q.reclaim()
        if reclaimed > 0 { return reclaimed }
        counters.callWaits &+= 1
        _ = q.waitForCall(timeoutMilliseconds: timeoutMilliseconds)
        return q.reclaim()
    }

    /// Posts every free RX descriptor as one writable buffer and publishes.
    func refill(_ q: DriverQueue) {
        let length = UInt32(rxBufferLength)
        let offset = UInt64(Self.frameOffset - headerLength)
        while let head = q.allocateChain(1) {
            q.setDescriptor(head, address: q.slotGPA(head) &+ offset, length: length, flags: DriverQueueLayout.descriptorWrite)
            q.makeAvailable(head: head)
        }
        q.publish()
    }
}
