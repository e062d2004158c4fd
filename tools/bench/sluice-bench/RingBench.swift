import CSluice
import Memory
import Platform

/// `IndexRing` timed the way DPDK 22.11's `ring_perf_autotest` times `rte_ring`, and
/// printed in the same shape so one parser reads both outputs:
///
/// * single / burst / bulk on one core: TSC cycles per loop turn, where a turn is one
///   enqueue of `size` entries followed by one dequeue of them (not per entry);
/// * empty bulk dequeue of 8: cycles per call;
/// * two cores (producer on one CPU, consumer on the other, 2^15 bulk operations each):
///   producer cycles per entry + consumer cycles per entry;
/// * all cores: MP/MC bulk enqueue+dequeue turns per core in 100 ms on one shared ring.
///
/// Differences that cannot be removed: DPDK's legacy ring holds 8-byte pointers, ours
/// 4-byte indices; DPDK picks SP/SC or MP/MC per call on one ring, ours per ring at
/// creation (so each mode gets its own ring); DPDK's 4096-slot ring holds 4095.
struct RingBench {
    static let ringSize = 4096
    static let maxBurst = 32

    var sizes: [Int]
    var producerCPU: Int
    var consumerCPU: Int
    var label = "sluice"

    func run() throws(BenchError) {
        for s in sizes where s < 1 || s > Self.maxBurst {
            throw BenchError("bulk size \(s) out of 1...\(Self.maxBurst)")
        }
        pin(producerCPU)
        let sp = IndexRing.create(capacity: Self.ringSize, producers: .single, consumers: .single)
        let mp = IndexRing.create(capacity: Self.ringSize, producers: .multi, consumers: .multi)
        defer { sp.destroy(); mp.destroy() }
        let buf = alignedIndices(Self.maxBurst)
        defer { buf.deallocate() }

        print("\n### Testing single element enq/deq ###")
        report("SP/SC: single", single(sp, iterations: 1 << 24))
        report("MP/MC: single", single(mp, iterations: 1 << 24))

        print("\n### Testing burst enq/deq ###")
        for s in sizes { report("SP/SC: burst (size: \(s))", burst(sp, buf, s, iterations: 1 << 23)) }
        for s in sizes { report("MP/MC: burst (size: \(s))", burst(mp, buf, s, iterations: 1 << 23)) }

        print("\n### Testing bulk enq/deq ###")
        for s in sizes { report("SP/SC: bulk (size: \(s))", bulk(sp, buf, s, iterations: 1 << 23)) }
        for s in sizes { report("MP/MC: bulk (size: \(s))", bulk(mp, buf, s, iterations: 1 << 23)) }

        print("\n### Testing empty bulk deq ###")
        let emptySize = sizes.first ?? 8
        report("SP/SC: bulk (size: \(emptySize))", emptyDequeue(sp, buf, emptySize, iterations: 1 << 26))
        report("MP/MC: bulk (size: \(emptySize))", emptyDequeue(mp, buf, emptySize, iterations: 1 << 26))

        print("\n### Testing using two physical cores ###")
        for s in sizes {
            let (spsc, mpmc) = try twoCores(size: s)
            report("SP/SC: bulk (size: \(s))", spsc)
            report("MP/MC: bulk (size: \(s))", mpmc)
        }

        print("\n### Testing using all worker nodes ###")
        for s in sizes {
            print("\nBulk enq/dequeue count on size \(s)")
            let counts = try allCores(size: s)
            print("Core [\(producerCPU)] count = \(counts.0)")
            print("Core [\(consumerCPU)] count = \(counts.1)")
            print("Total count (size: \(s)): \(counts.0 + counts.1)")
        }
    }

    private func report(_ what: String, _ cycles: Double) {
        print("\(label): \(what): \(fixed2(cycles))")
    }

    // MARK: - One core

    @inline(never)
    private func single(_ r: IndexRing, iterations: Int) -> Double {
        var v: UInt32 = 0
        let start = Clock.cycles()
        for _ in 0..<iterations {
            _ = r.enqueue(v)
            v = r.dequeue() ?? v
        }
        let end = Clock.cycles()
        return Double(end &- start) / Double(iterations)
    }

    @inline(never)
    private func burst(_ r: IndexRing, _ buf: UnsafeMutablePointer<UInt32>, _ n: Int, iterations: Int) -> Double {
        let start = Clock.cycles()
        for _ in 0..<iterations {
            _ = r.enqueueBurst(buf, n)
            _ = r.dequeueBurst(buf, n)
        }
        let end = Clock.cycles()
        return Double(end &- start) / Double(iterations)
    }

    @inline(never)
    private func bulk(_ r: IndexRing, _ buf: UnsafeMutablePointer<UInt32>, _ n: Int, iterations: Int) -> Double {
        let start = Clock.cycles()
        for _ in 0..<iterations {
            _ = r.enqueueBulk(buf, n)
            _ = r.dequeueBulk(buf, n)
        }
        let end = Clock.cycles()
        return Double(end &- start) / Double(iterations)
    }

    @inline(never)
    private func emptyDequeue(_ r: IndexRing, _ buf: UnsafeMutablePointer<UInt32>, _ n: Int, iterations: Int) -> Double {
        let start = Clock.cycles()
        for _ in 0..<iterations { _ = r.dequeueBulk(buf, n) }
        let end = Clock.cycles()
        return Double(end &- start) / Double(iterations)
    }

    // MARK: - Two cores

    /// Producer on `producerCPU` (this thread), consumer on `consumerCPU`; SP/SC on
    /// one ring, then MP/MC on another. Both threads start each phase together
    /// (DPDK needs no second barrier because both phases use the same ring).
    private func twoCores(size: Int) throws(BenchError) -> (Double, Double) {
        let iterations = 1 << 15
        let sp = IndexRing.create(capacity: Self.ringSize, producers: .single, consumers: .single)
        let mp = IndexRing.create(capacity: Self.ringSize, producers: .multi, consumers: .multi)
        defer { sp.destroy(); mp.destroy() }
        let shared = SharedLines(lines: 5)   // 0: barrier; 1,2: consumer sp/mp; 3,4: producer
        let consumer = try startThread("bench-deq", cpu: consumerCPU) {
            let buf = alignedIndices(Self.maxBurst)
            shared.arriveAndWait(0, target: 2)
            shared.store(1, Self.dequeueLoop(sp, buf, size, iterations))
            shared.arriveAndWait(0, target: 4)
            shared.store(2, Self.dequeueLoop(mp, buf, size, iterations))
            buf.deallocate()
        }
        let buf = alignedIndices(Self.maxBurst)
        shared.arriveAndWait(0, target: 2)
        shared.store(3, Self.enqueueLoop(sp, buf, size, iterations))
        shared.arriveAndWait(0, target: 4)
        shared.store(4, Self.enqueueLoop(mp, buf, size, iterations))
        buf.deallocate()
        consumer.join()
        return (shared.double(1) + shared.double(3), shared.double(2) + shared.double(4))
    }

    /// Cycles per entry to enqueue `iterations` bulks of `n`, pausing while full.
    @inline(never)
    static func enqueueLoop(_ r: IndexRing, _ buf: UnsafeMutablePointer<UInt32>, _ n: Int, _ iterations: Int) -> Double {
        let start = Clock.cycles()
        for _ in 0..<iterations {
            while !r.enqueueBulk(buf, n) { sl_pause() }
        }
        let end = Clock.cycles()
        return Double(end &- start) / Double(iterations * n)
    }

    /// Cycles per entry to dequeue `iterations` bulks of `n`, pausing while empty.
    @inline(never)
    static func dequeueLoop(_ r: IndexRing, _ buf: UnsafeMutablePointer<UInt32>, _ n: Int, _ iterations: Int) -> Double {
        let start = Clock.cycles()
        for _ in 0..<iterations {
            while !r.dequeueBulk(buf, n) { sl_pause() }
        }
        let end = Clock.cycles()
        return Double(end &- start) / Double(iterations * n)
    }

    // MARK: - All cores on one MP/MC ring

    private func allCores(size: Int) throws(BenchError) -> (UInt64, UInt64) {
        let r = IndexRing.create(capacity: Self.ringSize, producers: .multi, consumers: .multi)
        defer { r.destroy() }
        let window = UInt64(Clock.cyclesPerSecond / 10)   // 100 ms, as DPDK's TIME_MS
        let shared = SharedLines(lines: 3)   // 0: start flag; 1, 2: counts
        let worker = try startThread("bench-mpmc", cpu: consumerCPU) {
            let buf = alignedIndices(Self.maxBurst)
            while sl_load_acquire_u32(shared.line(0)) == 0 { sl_pause() }
            shared.store(2, Self.loadLoop(r, buf, size, window))
            buf.deallocate()
        }
        let buf = alignedIndices(Self.maxBurst)
        sl_store_release_u32(shared.line(0), 1)
        shared.store(1, Self.loadLoop(r, buf, size, window))
        buf.deallocate()
        worker.join()
        return (shared.word(1), shared.word(2))
    }

    @inline(never)
    static func loadLoop(_ r: IndexRing, _ buf: UnsafeMutablePointer<UInt32>, _ n: Int, _ window: UInt64) -> UInt64 {
        var count: UInt64 = 0
        let begin = Clock.cycles()
        while Clock.cycles() &- begin < window {
            _ = r.enqueueBulk(buf, n)
            _ = r.dequeueBulk(buf, n)
            count &+= 1
        }
        return count
    }
}
