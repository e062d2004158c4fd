#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform

/// How TX frames are put on the ring.
public enum FrontendTxLayout: String, Sendable {
    /// One descriptor: header and frame back to back.
    case contiguous
    /// A chain of two descriptors: header, then frame.
    case split
    /// One ring descriptor pointing at a two-entry indirect table.
    case indirect
}

/// The driver side of a virtio-net device over vhost-user, in this process:
/// what QEMU plus a guest's virtio-net driver, or DPDK's virtio-user, are to
/// a vhost-user backend. Guest memory is one memfd mapped here and handed to
/// the backend with SET_MEM_TABLE; rings and packet buffers live in it.
///
/// Use: `connect(path:)` or `listen(path:)` (or `init(channel:)` over a
/// socket you already have) negotiates and starts every queue; then
/// `send`/`receive` move frames (FrontendPackets.swift); `disconnect()` stops
/// the rings with GET_VRING_BASE and closes the socket.
///
/// Threads: one thread at a time calls into a frontend (it owns the driver
/// side of every queue). `@unchecked Sendable` so it can be created on one
/// thread and handed to another.
public final class VirtioFrontend: @unchecked Sendable {
    /// Where the frame starts in every buffer slot; the header sits just
    /// before it, an indirect table (TX) at offset 0.
    static let frameOffset = 64
    /// The largest frame `receive` reassembles from merged RX buffers.
    public static let maxReassembledFrame = 65_562

    public let options: FrontendOptions
    public let channel: VhostUserChannel
    public let negotiation: FrontendNegotiation
    /// Guest memory: guest physical address 0 is `memory.base`.
    public let memory: MappedRegion
    /// Set when huge pages were asked for with `auto` and not available.
    public let memoryWarning: String?
    public let txLayout: FrontendTxLayout
    /// RX queue of pair q is vring 2q, TX queue vring 2q+1.
    public let rxQueues: [DriverQueue]
    public let txQueues: [DriverQueue]
    public var counters = FrontendCounters()
    /// Our MAC: the device's (GET_CONFIG) if it told us, else the options'.
    public var mac: [UInt8]? { negotiation.deviceMAC ?? options.mac }

    let headerLength: Int
    /// MRG_RXBUF negotiated: RX frames may span several buffers.
    let mergeable: Bool
    /// Bytes of one RX buffer, header included.
    let rxBufferLength: Int
    /// Payload bytes a TX slot holds.
    let txDataRoom: Int
    /// Reassembly buffer for merged RX frames (allocated once).
    let scratch: UnsafeMutableRawPointer
    /// One pollfd per RX queue (allocated once).
    let rxPollFDs: UnsafeMutablePointer<pollfd>
    /// The socket path we listen on (removed on disconnect), if any.
    var listeningPath: String?
    public private(set) var isConnected = true

    /// Negotiates over a connected socket (the frontend owns `channel` from
    /// now on), builds the rings in a new guest memory and starts every queue.
    public init(channel: VhostUserChannel, options: FrontendOptions = FrontendOptions()) throws(FrontendError) {
        try options.validate()
        channel.ioTimeoutMilliseconds = options.messageTimeoutMilliseconds
        var negotiator = FrontendNegotiator(channel: channel, options: options)
        let negotiation = try negotiator.negotiate()

        let packet: PacketMemory
        do {
            packet = try Hugepages.allocate(bytes: options.memoryBytes, policy: options.hugepages, name: "sluice-frontend")
        } catch {
            throw .guestMemory(error.message)
        }
        let header = negotiation.headerLength
        let rxData = negotiation.mergeableRxBuffers ? options.rxBufferDataRoom : options.maxFrameLength
        let rxStride = DriverQueueLayout.alignUp(Self.frameOffset + rxData, 64)
        let txStride = DriverQueueLayout.alignUp(Self.frameOffset + options.maxFrameLength, 64)
        let queues = try Self.buildQueues(options: options, negotiation: negotiation, memory: packet.region,
                                          rxStride: rxStride, txStride: txStride)

        self.options = options
        self.channel = channel
        self.negotiation = negotiation
        self.memory = packet.region
        self.memoryWarning = packet.warning
        self.rxQueues = queues.rx
        self.txQueues = queues.tx
        self.headerLength = header
        self.mergeable = negotiation.mergeableRxBuffers
        self.rxBufferLength = header + rxData
        self.txDataRoom = options.maxFrameLength
        if negotiation.indirectDescriptors && options.indirectDescriptors {
            txLayout = .indirect
        } else {
            txLayout = options.txDescriptorsPerFrame == 2 ? .split : .contiguous
        }
        scratch = .allocate(byteCount: Self.maxReassembledFrame, alignment: 64)
        rxPollFDs = .allocate(capacity: options.queuePairs)
        for (i, q) in queues.rx.enumerated() { rxPollFDs[i] = pollfd(fd: q.callFD, events: Int16(POLLIN), revents: 0) }

        for q in rxQueues { refill(q) }
        try negotiator.startVrings(memory: memory, queues: rxQueues + txQueues)
        // A poll-mode driver: no calls unless a wait asks for them.
        for q in rxQueues + txQueues { q.disableCalls() }
    }

    deinit {
        for q in rxQueues + txQueues {
            closeFD(q.kickFD)
            closeFD(q.callFD)
        }
        channel.close()
        if let listeningPath { UnixSocket.removeFile(listeningPath) }
        scratch.deallocate()
        rxPollFDs.deallocate()
    }

    public var queuePairs: Int { options.queuePairs }

    /// Lays out every queue pair's rings and slots in guest memory, with
    /// fresh kick and call eventfds.
    private static func buildQueues(options: FrontendOptions, negotiation: FrontendNegotiation, memory: MappedRegion,
                                    rxStride: Int, txStride: Int) throws(FrontendError) -> (rx: [DriverQueue], tx: [DriverQueue]) {
        guard let layout = DriverQueueLayout(size: options.queueSize) else {
            throw .invalidOptions("queue size \(options.queueSize)")
        }
        let rxBytes = DriverQueue.bytesNeeded(layout: layout, slotStride: rxStride)
        let txBytes = DriverQueue.bytesNeeded(layout: layout, slotStride: txStride)
        let needed = (rxBytes + txBytes) * options.queuePairs
        guard needed <= memory.length else { throw .guestMemoryTooSmall(needed: needed, available: memory.length) }

        var rx: [DriverQueue] = []
        var tx: [DriverQueue] = []
        var fds: [Int32] = []
        var offset = 0
        do throws(SystemError) {
            for pair in 0..<options.queuePairs {
                for (isTX, stride, bytes) in [(false, rxStride, rxBytes), (true, txStride, txBytes)] {
                    let kick = try EventFD.create()
                    fds.append(kick)
                    let call = try EventFD.create()
                    fds.append(call)
                    let q = DriverQueue(vringIndex: UInt32(2 * pair + (isTX ? 1 : 0)), layout: layout,
                                        memory: memory.base + offset, gpa: UInt64(offset), slotStride: stride,
                                        eventIndex: negotiation.eventIndex, kickFD: kick, callFD: call)
                    if isTX { tx.append(q) } else { rx.append(q) }
                    offset += bytes
                }
            }
        } catch {
            fds.forEach { closeFD($0) }
            throw .system(error)
        }
        return (rx, tx)
    }

    // MARK: Opening

    /// Connects to a backend listening on `path` and starts the device.
    /// Retries a refused or missing socket for up to `retrySeconds`.
    public static func connect(path: String, options: FrontendOptions = FrontendOptions(),
                               retrySeconds: Double = 0) throws(FrontendError) -> VirtioFrontend {
        let deadline = Clock.monotonicNanos() &+ UInt64(max(0, retrySeconds) * 1e9)
        while true {
            let socket: OwnedFD
            do {
                socket = try VhostUserChannel.connectSocket(path: path)
            } catch {
                let retryable = error.kind == .system(errno: ECONNREFUSED) || error.kind == .system(errno: ENOENT)
                guard retryable, Clock.monotonicNanos() < deadline else { throw .channel(error) }
                Clock.sleep(micros: 100_000)
                continue
            }
            return try VirtioFrontend(channel: VhostUserChannel(owning: socket), options: options)
        }
    }

    /// Listens on `path` (as QEMU's `server=on`), waits up to `timeoutSeconds`
    /// (nil: forever) for one backend to connect and starts the device. The
    /// socket file is removed when the frontend disconnects.
    public static func listen(path: String, options: FrontendOptions = FrontendOptions(),
                              timeoutSeconds: Double? = nil) throws(FrontendError) -> VirtioFrontend {
        let listener: OwnedFD
        do { listener = try VhostUserChannel.listenSocket(path: path, backlog: 1) } catch { throw .channel(error) }
        let timeout = timeoutSeconds.map { Int32(min(max(0, $0) * 1000, Double(Int32.max))) } ?? -1
        // A poll error other than a time-out falls through to accept, which reports it.
        var timedOut = false
        do { timedOut = try Poll.wait(listener.raw, for: Poll.readable, timeoutMilliseconds: timeout) == nil } catch {}
        if timedOut {
            UnixSocket.removeFile(path)
            throw .timedOut("no backend connected to \(path) within \(timeoutSeconds ?? 0) s")
        }
        let socket: OwnedFD
        do { socket = try VhostUserChannel.acceptSocket(listener.raw) } catch {
            UnixSocket.removeFile(path)
            throw .channel(error)
        }
        do {
            let frontend = try VirtioFrontend(channel: VhostUserChannel(owning: socket), options: options)
            frontend.listeningPath = path
            return frontend
        } catch {
            UnixSocket.removeFile(path)
            throw error
        }
    }

    /// True when the backend has closed (or broken) the vhost-user connection — a
    /// frontend that only moves packets would otherwise wait on rings nobody serves.
    /// Non-blocking: one poll(2) with a zero timeout.
    public var backendClosed: Bool {
        guard isConnected else { return true }
        return Poll.peerClosed(channel.fd)
    }

    // MARK: Stopping

    /// Stops every vring with GET_VRING_BASE (the backend's last avail
    /// index for each, returned in vring order) and closes the socket. The
    /// guest memory stays mapped until the frontend is released.
    @discardableResult
    public func disconnect() throws(FrontendError) -> [UInt32] {
        guard isConnected else { return [] }
        isConnected = false
        defer {
            channel.close()
            if let listeningPath { UnixSocket.removeFile(listeningPath) }
            listeningPath = nil
        }
        var bases: [UInt32] = []
        for q in (rxQueues + txQueues).sorted(by: { $0.vringIndex < $1.vringIndex }) {
            let reply: VhostUserReply?
            do { reply = try channel.request(.getVringBase(VringState(index: q.vringIndex, num: 0))) } catch {
                throw .channel(error)
            }
            guard case .vringState(let state)? = reply, state.index == q.vringIndex else {
                throw .unexpectedReply(request: VhostUserRequest.getVringBase.rawValue, "\(String(describing: reply))")
            }
            bases.append(state.num)
        }
        return bases
    }

    /// Sums the queues' kick counters into `counters`.
    public func refreshQueueCounters() {
        var kicks: UInt64 = 0, suppressed: UInt64 = 0
        for q in rxQueues + txQueues {
            kicks &+= q.kicks
            suppressed &+= q.kicksSuppressed
        }
        counters.kicks = kicks
        counters.kicksSuppressed = suppressed
    }
}
