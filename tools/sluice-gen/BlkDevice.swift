#if canImport(Glibc)
import Glibc
#endif
import Block
import Platform
import VhostUser

/// How a `BlkDevice` sets itself up (from the command line).
struct BlkSetup {
    /// Request queues (vrings 0..<queues).
    var queues = 1
    var queueSize = 256
    /// Requests in flight per queue (each has its own data buffer).
    var depth = 16
    /// Data bytes one request carries at most (the data buffer size).
    var requestBytes = 4096
    var eventIndex = true
    /// Send every request as one descriptor pointing at an indirect table.
    var indirect = false
    var messageTimeoutMilliseconds: Int32 = 5_000
}

/// Why a blk device could not be set up.
struct BlkSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The driver side of a virtio-blk device over vhost-user, as QEMU plus a
/// guest's virtio-blk driver are to a vhost-user-blk backend. Guest memory is
/// one memfd (handed over with SET_MEM_TABLE) holding every queue's rings,
/// request headers, status bytes and data buffers.
///
/// Set-up order (vhost-user.rst, and what QEMU's vhost-user-blk does):
/// SET_OWNER; GET_FEATURES; GET/SET_PROTOCOL_FEATURES; GET_QUEUE_NUM (MQ);
/// GET_CONFIG (CONFIG); SET_FEATURES; GET_INFLIGHT_FD + SET_INFLIGHT_FD
/// (INFLIGHT_SHMFD); SET_MEM_TABLE; per vring SET_VRING_CALL, NUM, BASE, ADDR,
/// KICK; SET_VRING_ENABLE. Requests without a reply of their own ask for a
/// REPLY_ACK status once REPLY_ACK is negotiated.
final class BlkDevice {
    let channel: VhostUserChannel
    let info: BlkDeviceInfo
    let setup: BlkSetup
    let memory: MappedRegion
    let queues: [BlkQueue]
    /// The inflight area's fd (kept open for the life of the connection).
    private var inflightFD: Int32 = -1
    private var listeningPath: String?
    private var connected = true

    /// The device features the front-end asks for (intersected with the offer).
    static let wantedFeatures: UInt64 = BlkFeatures.version1 | BlkFeatures.protocolFeatures
        | BlkFeatures.indirectDescriptors | BlkFeatures.eventIndex
        | VirtioBlk.Feature.sizeMax | VirtioBlk.Feature.segMax | VirtioBlk.Feature.blkSize
        | VirtioBlk.Feature.flush | VirtioBlk.Feature.ro | VirtioBlk.Feature.mq
        | VirtioBlk.Feature.discard | VirtioBlk.Feature.writeZeroes
    static let wantedProtocolFeatures: VhostUserProtocolFeature = [.mq, .replyAck, .config, .inflightSHMFD]

    /// Negotiates over `channel` (owned from now on), lays out guest memory
    /// and starts every queue.
    init(channel: VhostUserChannel, setup: BlkSetup) throws(BlkSetupError) {
        self.channel = channel
        channel.ioTimeoutMilliseconds = setup.messageTimeoutMilliseconds
        var setup = setup
        var info = BlkDeviceInfo()
        do {
            try Self.negotiate(channel, setup: setup, info: &info)
        } catch {
            channel.close()
            throw error
        }
        // A request's data is split into segments of at most size_max bytes.
        let segmentBytes = info.sizeMax.map { $0 > 0 ? min(Int($0), setup.requestBytes) : setup.requestBytes }
            ?? setup.requestBytes
        let segments = (setup.requestBytes + segmentBytes - 1) / segmentBytes
        if let segMax = info.segMax, segMax > 0, segments > Int(segMax) {
            channel.close()
            throw BlkSetupError("a request of \(setup.requestBytes) bytes needs \(segments) segments of at most \(segmentBytes) bytes (size_max) but the device takes \(segMax) (seg_max); use a smaller --bs")
        }
        let chain = setup.indirect ? 1 : segments + 2
        if setup.indirect && !info.acked(BlkFeatures.indirectDescriptors) {
            channel.close()
            throw BlkSetupError("--indirect: the backend does not offer VIRTIO_F_INDIRECT_DESC")
        }
        setup.depth = min(setup.depth, setup.queueSize / chain)
        guard setup.depth >= 1 else {
            channel.close()
            throw BlkSetupError("a queue of \(setup.queueSize) entries cannot hold one request of \(chain) descriptors")
        }
        self.setup = setup
        self.info = info

        guard let layout = DriverQueueLayout(size: setup.queueSize) else {
            channel.close()
            throw BlkSetupError("--queue-size \(setup.queueSize) is not a power of two")
        }
        let slotStride = DriverQueueLayout.alignUp(BlkQueue.tableOffset + 16 * (segments + 2), 64)
        let ringBytes = DriverQueueLayout.alignUp(DriverQueue.bytesNeeded(layout: layout, slotStride: slotStride), 4096)
        let bufferBytes = DriverQueueLayout.alignUp(setup.requestBytes, 4096)
        let perQueue = ringBytes + setup.depth * bufferBytes
        let packet: PacketMemory
        do {
            packet = try Hugepages.allocate(bytes: perQueue * setup.queues, policy: .off, name: "sluice-gen-blk")
        } catch {
            channel.close()
            throw BlkSetupError("guest memory: \(error.message)")
        }
        memory = packet.region

        var built: [BlkQueue] = []
        var fds: [Int32] = []
        do throws(SystemError) {
            for q in 0..<setup.queues {
                let kick = try EventFD.create()
                fds.append(kick)
                let call = try EventFD.create()
                fds.append(call)
                let offset = q * perQueue
                let ring = DriverQueue(vringIndex: UInt32(q), layout: layout, memory: memory.base + offset,
                                       gpa: UInt64(offset), slotStride: slotStride,
                                       eventIndex: info.acked(BlkFeatures.eventIndex), kickFD: kick, callFD: call)
                built.append(BlkQueue(ring: ring, data: memory.base + offset + ringBytes,
                                      dataGPA: UInt64(offset + ringBytes), bufferStride: bufferBytes,
                                      depth: setup.depth, segmentBytes: segmentBytes, indirect: setup.indirect))
            }
        } catch {
            fds.forEach { closeFD($0) }
            channel.close()
            throw BlkSetupError("\(error)")
        }
        queues = built
        do {
            try start()
        } catch {
            close()
            throw error
        }
        for q in queues { q.ring.disableCalls() }
    }

    deinit { close() }

    /// Closes the socket and every fd, once (disconnect, a failed start, deinit).
    private func close() {
        guard connected else { return }
        if inflightFD >= 0 { closeFD(inflightFD) }
        inflightFD = -1
        for q in queues {
            if q.ring.kickFD >= 0 { closeFD(q.ring.kickFD) }
            if q.ring.callFD >= 0 { closeFD(q.ring.callFD) }
        }
        channel.close()
        if let listeningPath { UnixSocket.removeFile(listeningPath) }
        listeningPath = nil
        connected = false
    }

    // MARK: Opening

    /// Connects to a backend listening on `path`, retrying a refused or
    /// missing socket for up to `retrySeconds`.
    static func connect(path: String, setup: BlkSetup, retrySeconds: Double) throws(BlkSetupError) -> BlkDevice {
        let deadline = Clock.monotonicNanos() &+ UInt64(max(0, retrySeconds) * 1e9)
        while true {
            do {
                let socket = try VhostUserChannel.connectSocket(path: path)
                return try BlkDevice(channel: VhostUserChannel(owning: socket), setup: setup)
            } catch let error as VhostUserProtocolError {
                let retryable = error.kind == .system(errno: ECONNREFUSED) || error.kind == .system(errno: ENOENT)
                guard retryable, Clock.monotonicNanos() < deadline else { throw BlkSetupError("\(error)") }
                Clock.sleep(micros: 100_000)
            } catch let error as BlkSetupError {
                throw error
            } catch {
                throw BlkSetupError("\(error)")
            }
        }
    }

    /// Listens on `path` (for a backend in client mode) and waits up to
    /// `timeoutSeconds` for it to connect. The socket file is removed again.
    static func listen(path: String, setup: BlkSetup, timeoutSeconds: Double) throws(BlkSetupError) -> BlkDevice {
        let listener: OwnedFD
        do { listener = try VhostUserChannel.listenSocket(path: path, backlog: 1) } catch {
            throw BlkSetupError("\(error)")
        }
        let timeout = Int32(min(max(0, timeoutSeconds) * 1000, Double(Int32.max)))
        var timedOut = false
        do { timedOut = try Poll.wait(listener.raw, for: Poll.readable, timeoutMilliseconds: timeout) == nil } catch {}
        if timedOut {
            UnixSocket.removeFile(path)
            throw BlkSetupError("no backend connected to \(path) within \(timeoutSeconds) s")
        }
        do {
            let socket = try VhostUserChannel.acceptSocket(listener.raw)
            let device = try BlkDevice(channel: VhostUserChannel(owning: socket), setup: setup)
            device.listeningPath = path
            return device
        } catch {
            UnixSocket.removeFile(path)
            if let e = error as? BlkSetupError { throw e }
            throw BlkSetupError("\(error)")
        }
    }

    // MARK: Negotiation

    private static func negotiate(_ channel: VhostUserChannel, setup: BlkSetup,
                                  info: inout BlkDeviceInfo) throws(BlkSetupError) {
        let talk = BlkTalk(channel: channel, replyAck: false)
        try talk.tell(.setOwner)
        info.offeredFeatures = try talk.askU64(.getFeatures)
        var replyAck = false
        if info.offeredFeatures & BlkFeatures.protocolFeatures != 0 {
            info.offeredProtocolFeatures = VhostUserProtocolFeature(rawValue: try talk.askU64(.getProtocolFeatures))
            let acked = info.offeredProtocolFeatures.intersection(wantedProtocolFeatures)
            try talk.tell(.setProtocolFeatures(acked.rawValue))
            info.ackedProtocolFeatures = acked
            replyAck = acked.contains(.replyAck)
        }
        let t = BlkTalk(channel: channel, replyAck: replyAck)
        if info.ackedProtocolFeatures.contains(.mq) {
            info.backendQueues = Int(clamping: try t.askU64(.getQueueNum))
        }
        var wanted = wantedFeatures
        if !setup.eventIndex { wanted &= ~BlkFeatures.eventIndex }
        info.ackedFeatures = info.offeredFeatures & wanted
        if info.ackedProtocolFeatures.contains(.config) { try t.readConfig(into: &info) }

        let most = info.maxQueues
        if setup.queues > most {
            throw BlkSetupError("\(setup.queues) queues asked for, the device has \(most)")
        }
        try t.tell(.setFeatures(info.ackedFeatures))
    }

    /// INFLIGHT_SHMFD, memory table and vrings.
    private func start() throws(BlkSetupError) {
        let t = BlkTalk(channel: channel, replyAck: info.ackedProtocolFeatures.contains(.replyAck))
        if info.ackedProtocolFeatures.contains(.inflightSHMFD) {
            let ask = InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: UInt16(setup.queues),
                                          queueSize: UInt16(clamping: setup.queueSize))
            let reply = try t.ask(.getInflightFD(ask))
            guard case .inflight(let area, let fd) = reply else {
                throw BlkSetupError("GET_INFLIGHT_FD: unexpected reply \(String(describing: reply))")
            }
            inflightFD = fd
            try t.tell(.setInflightFD(area, fd: fd))
        }
        let base = UInt64(UInt(bitPattern: memory.base))
        let region = MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: UInt64(memory.length),
                                            userspaceAddr: base, mmapOffset: 0)
        try t.tell(.setMemTable([region], fds: [memory.fd]))
        for q in queues {
            let r = q.ring
            let i = r.vringIndex
            try t.tell(.setVringCall(index: i, fd: r.callFD))
            try t.tell(.setVringNum(VringState(index: i, num: UInt32(r.size))))
            try t.tell(.setVringBase(VringState(index: i, num: 0)))
            try t.tell(.setVringAddr(VringAddress(index: i, desc: base &+ r.descriptorTableGPA,
                                                  used: base &+ r.usedRingGPA, avail: base &+ r.availRingGPA)))
            try t.tell(.setVringKick(index: i, fd: r.kickFD))
        }
        if info.acked(BlkFeatures.protocolFeatures) {
            for q in queues { try t.tell(.setVringEnable(VringState(index: q.ring.vringIndex, num: 1))) }
        }
    }

    /// Stops every vring with GET_VRING_BASE and closes the socket.
    func disconnect() throws(BlkSetupError) {
        guard connected else { return }
        defer { close() }
        let t = BlkTalk(channel: channel, replyAck: false)
        for q in queues {
            let reply = try t.ask(.getVringBase(VringState(index: q.ring.vringIndex, num: 0)))
            guard case .vringState? = reply else {
                throw BlkSetupError("GET_VRING_BASE: unexpected reply \(String(describing: reply))")
            }
        }
    }

    /// True when the backend has closed the connection.
    var backendClosed: Bool { !connected || Poll.peerClosed(channel.fd) }
}

/// One request/reply exchange on the socket, REPLY_ACK aware.
private struct BlkTalk {
    let channel: VhostUserChannel
    let replyAck: Bool

    func ask(_ message: VhostUserMessage) throws(BlkSetupError) -> VhostUserReply? {
        do { return try channel.request(message) } catch { throw BlkSetupError("\(error)") }
    }

    func askU64(_ message: VhostUserMessage) throws(BlkSetupError) -> UInt64 {
        let reply = try ask(message)
        guard case .u64(let v)? = reply else {
            throw BlkSetupError("unexpected reply to \(VhostUserRequest.describe(message.requestCode)): \(String(describing: reply))")
        }
        return v
    }

    /// A request without a reply of its own; with REPLY_ACK, waits for a 0 status.
    func tell(_ message: VhostUserMessage) throws(BlkSetupError) {
        let reply: VhostUserReply?
        do { reply = try channel.request(message, needsReply: replyAck) } catch { throw BlkSetupError("\(error)") }
        guard replyAck else { return }
        guard case .u64(let status)? = reply else {
            throw BlkSetupError("unexpected reply to \(VhostUserRequest.describe(message.requestCode)): \(String(describing: reply))")
        }
        if status != 0 {
            throw BlkSetupError("the backend rejected \(VhostUserRequest.describe(message.requestCode)) (REPLY_ACK status \(status))")
        }
    }

    /// GET_CONFIG of `struct virtio_blk_config`; fields count only when their
    /// feature was negotiated. The spec's empty "failed" reply leaves them unknown.
    func readConfig(into info: inout BlkDeviceInfo) throws(BlkSetupError) {
        let reply = try ask(.getConfig(DeviceConfigSpace(offset: 0, size: VirtioBlk.Config.size)))
        switch reply {
        case .config(let space)?:
            info.config = space.payload
        case .configFailed?:
            info.config = nil
        default:
            throw BlkSetupError("GET_CONFIG: unexpected reply \(String(describing: reply))")
        }
    }
}
