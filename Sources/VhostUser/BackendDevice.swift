#if canImport(Glibc)
import Glibc
#endif
import Platform
import Virtio

/// The hooks a device needs from whoever runs its queues.
public struct DeviceHooks {
    /// Run `body` while no worker touches this device's queues (pause, change, resume).
    public var quiesce: (() -> Void) -> Void
    /// A queue's kick fd changed (event mode re-registers it); old may be -1.
    public var kickChanged: (_ queue: Int, _ old: Int32, _ new: Int32) -> Void

    public init(quiesce: @escaping (() -> Void) -> Void, kickChanged: @escaping (Int, Int32, Int32) -> Void) {
        self.quiesce = quiesce
        self.kickChanged = kickChanged
    }

    public static var direct: DeviceHooks { DeviceHooks(quiesce: { $0() }, kickChanged: { _, _, _ in }) }
}

/// The device side of one vhost-user device (control plane): the messages every
/// vhost-user device shares — features, memory table, vrings, enable/disable under
/// the pause handshake, inflight tracking — with what is particular to the kind of
/// device (features, queue count, config space, its own messages) asked of `model`
/// (`VirtioNetModel`, the blk model). Its owner keeps one device for its whole life;
/// the queue states are allocated once, so workers' poll entries stay valid across
/// guest reboots and reconnects.
public final class VhostUserDevice: @unchecked Sendable {
    public let model: any VhostUserDeviceModel
    /// The virtqueues, numbered as the device kind numbers them (net: 2q RX, 2q+1 TX).
    public let queues: [Virtqueue]
    public var hooks = DeviceHooks.direct
    public let memory: GuestMemoryMap

    public private(set) var ackedFeatures: UInt64 = 0
    public private(set) var protocolFeatures = VhostUserProtocolFeature()
    public private(set) var deviceStatus: UInt8 = 0
    /// This connection's protocol feature offer (CONFIG only for some front-ends; see there).
    public private(set) var protocolOffer: ProtocolFeatureOffer
    /// The inflight area (GET/SET_INFLIGHT_FD), when the model tracks in-flight requests.
    public let inflight: InflightArea
    /// The front-end's ring addresses (user VAs), kept to re-translate on memory changes.
    private var ringAddresses: [VringAddress?]
    /// ADD_MEM_REG references per mapped region, by guest address and size as REM_MEM_REG
    /// names it (see `.addMemReg`); SET_MEM_TABLE regions count once.
    private var regionRefs: [RegionKey: (userAddr: UInt64, count: Int)] = [:]

    private struct RegionKey: Hashable {
        let guestPhys: UInt64, size: UInt64
        init(_ r: MemoryRegionDescriptor) { guestPhys = r.guestPhysAddr; size = r.memorySize }
    }

    /// Protocol features every device supports; the model adds its own (`.mtu`, `.inflightSHMFD`…).
    public static let commonProtocolFeatures: VhostUserProtocolFeature =
        [.mq, .replyAck, .config, .configureMemSlots, .status, .resetDevice]

    public init(model: any VhostUserDeviceModel) {
        self.model = model
        queues = (0..<model.queueCount).map { _ in Virtqueue.allocate() }
        memory = GuestMemoryMap(maxRegions: model.maxRegions)
        ringAddresses = Array(repeating: nil, count: model.queueCount)
        protocolOffer = ProtocolFeatureOffer(supported: Self.commonProtocolFeatures.union(model.protocolFeatures),
                                             alwaysOfferConfig: model.configAlwaysOffered)
        inflight = InflightArea(queues: queues, maxQueueSize: model.maxQueueSize)
    }

    deinit {
        reset()
        inflight.release()
        for q in queues { q.deallocate() }
    }

    /// GET_FEATURES: the model's bits plus PROTOCOL_FEATURES.
    public var offeredFeatures: UInt64 { model.features | VirtioFeature.protocolFeatures }

    /// The guest's current kick eventfd of virtqueue `q` (-1: none yet, or no such queue).
    public func kickFD(_ q: Int) -> Int32 { q >= 0 && q < queues.count ? queues[q].state.pointee.kickFD : -1 }

    /// Whether the front-end asked for REPLY_ACK.
    public var replyAck: Bool { protocolFeatures.contains(.replyAck) }

    // MARK: - Messages

    /// Outcome of one message: a reply to send (if the message has one), or a failure
    /// that becomes a REPLY_ACK of 1 or, for messages with no ack, a logged error.
    public enum Outcome {
        case done
        case reply(VhostUserReply)
        case failed(String)
    }

    /// Apply one decoded, validated message. Takes ownership of its fds.
    public func handle(_ message: VhostUserMessage) -> Outcome {
        switch message {
        case .getFeatures:
            return .reply(.u64(offeredFeatures))
        case .setFeatures(let f):
            guard f & ~offeredFeatures == 0 else {
                return .failed("features 0x\(String(f, radix: 16)) include bits not offered (0x\(String(f & ~offeredFeatures, radix: 16)))")
            }
            hooks.quiesce { self.applyFeatures(f) }
            return .done
        case .setOwner:
            protocolOffer.noteSetOwner()
            return .done
        case .resetOwner, .resetDevice:
            reset()
            return .done
        case .getProtocolFeatures:
            return .reply(.u64(protocolOffer.offer().rawValue))
        case .setProtocolFeatures(let f):
            let asked = VhostUserProtocolFeature(rawValue: f)
            guard asked.isSubset(of: protocolOffer.acceptable) else {
                return .failed("protocol features 0x\(String(f, radix: 16)) include bits not offered")
            }
            protocolFeatures = asked
            return .done
        case .getQueueNum:
            return .reply(.u64(UInt64(model.queueNum)))
        case .getMaxMemSlots:
            return .reply(.u64(UInt64(memory.maxRegions)))
        case .setMemTable(let regions, let fds):
            return setMemTable(regions, fds)
        case .addMemReg(let r, let fd):
            let key = RegionKey(r)
            if let (user, n) = regionRefs[key], user == r.userspaceAddr {
                // QEMU 7.2 (seen with queues=2) sends ADD_MEM_REG / REM_MEM_REG once per queue pair (each
                // vhost_dev keeps its own view of the memory): the same region again is one
                // more reference, not an overlap.
                regionRefs[key] = (user, n + 1)
                closeFD(fd)
                return .done
            }
            var err: String?
            hooks.quiesce {
                do { try self.memory.add(guestPhys: r.guestPhysAddr, size: r.memorySize, userAddr: r.userspaceAddr,
                                         mmapOffset: r.mmapOffset, fd: fd) } catch { err = "\(error)" }
                self.retranslateRings()
                self.model.memoryChanged(self.memory.currentRegions)
            }
            if err == nil { regionRefs[key] = (r.userspaceAddr, 1) }
            return err.map { .failed($0) } ?? .done
        case .remMemReg(let r):
            let key = RegionKey(r)
            if let (user, n) = regionRefs[key], n > 1 {
                regionRefs[key] = (user, n - 1)
                return .done
            }
            regionRefs[key] = nil
            var found = false
            hooks.quiesce {
                self.model.drainInFlight(queue: nil)
                found = self.memory.remove(guestPhys: r.guestPhysAddr, size: r.memorySize)
                self.retranslateRings()
                self.model.memoryChanged(self.memory.currentRegions)
            }
            return found ? .done : .failed("REM_MEM_REG: no region at 0x\(String(r.guestPhysAddr, radix: 16))")
        case .setVringNum(let s):
            guard let q = queue(s.index) else { return badIndex(s.index) }
            guard s.num >= 1, s.num <= UInt32(model.maxQueueSize), s.num & (s.num - 1) == 0 else {
                return .failed("queue \(s.index): size \(s.num) is not a power of two in 1...\(model.maxQueueSize)")
            }
            hooks.quiesce {
                q.state.pointee.size = UInt16(truncatingIfNeeded: s.num)
                q.state.pointee.mask = UInt16(truncatingIfNeeded: s.num - 1)
                q.state.pointee.addressed = false
            }
            return .done
        case .setVringAddr(let a):
            guard queue(a.index) != nil else { return badIndex(a.index) }
            ringAddresses[Int(a.index)] = a
            var ok = false
            hooks.quiesce { ok = self.translateRing(Int(a.index)) }
            return ok ? .done : .failed("queue \(a.index): ring addresses are not inside guest memory (or misaligned)")
        case .setVringBase(let s):
            guard let q = queue(s.index) else { return badIndex(s.index) }
            hooks.quiesce {
                let base = UInt16(truncatingIfNeeded: s.num)
                q.state.pointee.lastAvail = base
                q.state.pointee.usedIdx = base
                q.state.pointee.signalledUsed = base
            }
            return .done
        case .getVringBase(let s):
            guard let q = queue(s.index) else { return badIndex(s.index) }
            var base: UInt16 = 0
            var kick: Int32 = -1
            hooks.quiesce {
                // Stop the ring (§ GET_VRING_BASE). Requests still with a backend finish first,
                // so every consumed entry is in the used ring.
                self.model.drainInFlight(queue: Int(s.index))
                base = q.state.pointee.lastAvail
                q.state.pointee.started = false
                kick = q.state.pointee.kickFD
                q.state.pointee.kickFD = -1
                closeFD(q.state.pointee.callFD); q.state.pointee.callFD = -1
            }
            if kick >= 0 { hooks.kickChanged(Int(s.index), kick, -1); closeFD(kick) }
            return .reply(.vringState(VringState(index: s.index, num: UInt32(base))))
        case .setVringKick(let index, let fd):
            guard let q = queue(index) else { closeFD(fd ?? -1); return badIndex(index) }
            if let fd { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
            var old: Int32 = -1
            hooks.quiesce {
                old = q.state.pointee.kickFD
                q.state.pointee.kickFD = fd ?? -1
                q.state.pointee.started = true
                // Without protocol features a ring is enabled as soon as it starts.
                if self.ackedFeatures & VirtioFeature.protocolFeatures == 0 { q.state.pointee.enabled = true }
                // Requests the previous back-end had taken and not finished go first.
                self.inflight.recover(queue: Int(index))
            }
            hooks.kickChanged(Int(index), old, fd ?? -1)
            closeFD(old)
            return .done
        case .setVringCall(let index, let fd):
            guard let q = queue(index) else { closeFD(fd ?? -1); return badIndex(index) }
            var old: Int32 = -1
            hooks.quiesce { old = q.state.pointee.callFD; q.state.pointee.callFD = fd ?? -1 }
            closeFD(old)
            return .done
        case .setVringErr(let index, let fd):
            guard let q = queue(index) else { closeFD(fd ?? -1); return badIndex(index) }
            let old = q.state.pointee.errFD
            q.state.pointee.errFD = fd ?? -1
            closeFD(old)
            return .done
        case .setVringEnable(let s):
            guard let q = queue(s.index) else { return badIndex(s.index) }
            hooks.quiesce { q.state.pointee.enabled = s.num != 0 }
            return .done
        case .getConfig(let c):
            return .reply(configReply(c))
        case .setConfig:
            return model.handle(message) ?? .failed("the virtio-\(model.kind) config space is read-only here")
        case .getInflightFD(let d):
            guard protocolFeatures.contains(.inflightSHMFD) else { return .failed("INFLIGHT_SHMFD was not negotiated") }
            var result: Outcome = .failed("")
            hooks.quiesce { result = self.inflight.create(d) }
            return result
        case .setInflightFD(let d, let fd):
            guard protocolFeatures.contains(.inflightSHMFD) else { closeFD(fd); return .failed("INFLIGHT_SHMFD was not negotiated") }
            var result: Outcome = .failed("")
            hooks.quiesce { result = self.inflight.adopt(d, fd: fd) }
            return result
        case .setStatus(let s):
            deviceStatus = s
            return .done
        case .getStatus:
            return .reply(.u64(UInt64(deviceStatus)))
        case .setLogBase(_, let fd):
            closeFD(fd)
            return .failed("dirty-page logging is not supported (LOG_SHMFD not offered)")
        case .setLogFD(let fd):
            closeFD(fd)
            return .failed("dirty-page logging is not supported (LOG_SHMFD not offered)")
        default:
            if let outcome = model.handle(message) { return outcome }
            message.closeFileDescriptors()
            return .failed("\(VhostUserRequest.describe(message.requestCode)) is not supported by a \(model.kind) device")
        }
    }

    /// A front-end connected: a clean device, and the protocol feature offer decided afresh.
    public func beginConnection() {
        reset()
        protocolOffer.newConnection()
    }

    /// The connection is gone (or RESET_OWNER): stop every queue, close its fds, unmap memory.
    /// The protocol feature offer stays: it belongs to the connection.
    public func reset() {
        var kicks: [(Int, Int32)] = []
        hooks.quiesce {
            self.model.drainInFlight(queue: nil)
            for (i, q) in self.queues.enumerated() {
                let s = q.state
                if s.pointee.kickFD >= 0 { kicks.append((i, s.pointee.kickFD)) }
                closeFD(s.pointee.callFD)
                closeFD(s.pointee.errFD)
                s.pointee = VirtqueueState()
            }
            // The front-end hands the inflight area back (SET_INFLIGHT_FD) when it reconnects.
            self.inflight.release()
            self.memory.removeAll()
            self.model.memoryChanged([])
            for i in self.ringAddresses.indices { self.ringAddresses[i] = nil }
        }
        regionRefs.removeAll()
        for (i, fd) in kicks { hooks.kickChanged(i, fd, -1); closeFD(fd) }
        ackedFeatures = 0
        protocolFeatures = []
        deviceStatus = 0
    }

    // MARK: - Helpers (control thread, inside quiesce where they touch queues)

    private func queue(_ index: UInt32) -> Virtqueue? {
        index < UInt32(queues.count) ? queues[Int(index)] : nil
    }

    private func badIndex(_ index: UInt32) -> Outcome {
        .failed("queue index \(index) out of range (this port has \(queues.count) queues)")
    }

    private func applyFeatures(_ f: UInt64) {
        ackedFeatures = f
        for q in queues {
            let s = q.state
            s.pointee.eventIdx = f & VirtioFeature.eventIdx != 0
            s.pointee.indirect = f & VirtioFeature.indirectDesc != 0
            model.apply(features: f, to: s)
        }
    }

    private func setMemTable(_ regions: [MemoryRegionDescriptor], _ fds: [Int32]) -> Outcome {
        guard regions.count <= memory.maxRegions else {
            fds.forEach(closeFD)
            return .failed("SET_MEM_TABLE with \(regions.count) regions exceeds ds-max \(memory.maxRegions)")
        }
        var err: String?
        hooks.quiesce {
            self.model.drainInFlight(queue: nil)
            self.memory.removeAll()
            for (i, r) in regions.enumerated() {
                if err != nil { closeFD(fds[i]); continue }
                do { try self.memory.add(guestPhys: r.guestPhysAddr, size: r.memorySize, userAddr: r.userspaceAddr,
                                         mmapOffset: r.mmapOffset, fd: fds[i]) } catch { err = "\(error)" }
            }
            if err != nil { self.memory.removeAll() }
            self.retranslateRings()
            self.model.memoryChanged(self.memory.currentRegions)
        }
        regionRefs.removeAll()
        if err == nil { for r in regions { regionRefs[RegionKey(r)] = (r.userspaceAddr, 1) } }
        return err.map { .failed("SET_MEM_TABLE: \($0)") } ?? .done
    }

    private func retranslateRings() {
        for i in queues.indices { _ = translateRing(i) }
    }

    /// Translate queue `i`'s ring addresses through the current memory table.
    private func translateRing(_ i: Int) -> Bool {
        let s = queues[i].state
        s.pointee.memory = memory.regionCount > 0 ? memory.table : nil
        guard let a = ringAddresses[i], s.pointee.size > 0 else { s.pointee.addressed = false; return ringAddresses[i] == nil }
        let n = UInt64(s.pointee.size)
        let table = memory.table
        guard a.desc & 15 == 0, a.avail & 1 == 0, a.used & 3 == 0,
              let d = table.translateUser(a.desc, 16 * n),
              let av = table.translateUser(a.avail, 6 + 2 * n),
              let u = table.translateUser(a.used, 6 + 8 * n) else {
            s.pointee.addressed = false
            return false
        }
        s.pointee.desc = d
        s.pointee.avail = av
        s.pointee.used = u
        s.pointee.addressed = true
        return true
    }

    /// GET_CONFIG: a window of the model's config space (zeros past its end).
    private func configReply(_ c: DeviceConfigSpace) -> VhostUserReply {
        var space = model.configSpace()
        if space.count < VhostUserLimits.maxConfigSize {
            space += [UInt8](repeating: 0, count: VhostUserLimits.maxConfigSize - space.count)
        }
        let start = Int(c.offset), size = Int(c.size)
        guard start + size <= space.count else { return .configFailed }
        return .config(DeviceConfigSpace(offset: c.offset, flags: c.flags, payload: Array(space[start..<(start + size)])))
    }
}
