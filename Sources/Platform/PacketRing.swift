#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// An AF_PACKET socket on an existing interface with TPACKET_V3 rings mapped
/// into this process: a block-based RX ring and a frame-based TX ring in one
/// mapping. Owned by the control plane; `deinit` unmaps the rings and closes the
/// socket (which also drops the promiscuous-mode membership).
///
/// Offloads. The socket has PACKET_VNET_HDR: every RX frame comes with the
/// kernel's `struct virtio_net_hdr` (partial checksum, GSO type and size), so a
/// frame the sender left to "the device" (CHECKSUM_PARTIAL, a TSO/GSO super-frame
/// of up to 64 KiB from a veth peer's stack) can be finished in software; on TX
/// each slot starts with an all-zero header (no offload asked).
///
/// Ring sizes. RX: blocks of max(64 KiB, one `rxFrameSize` frame + metadata rounded
/// up to a power of two: 128 KiB for GSO frames) — a TPACKET_V3 block is only
/// handed to us when it is full or when its retire timer fires, so a smaller
/// block bounds the latency at moderate rates (64 KiB fills in ~50 µs at
/// 10 Gb/s) while still batching hundreds of small frames per block; 8 MiB in
/// total (128 blocks) absorbs ~6 ms of a 10 Gb/s burst while the worker is busy
/// elsewhere (16 MiB with 128 KiB blocks: a block may hold a single GSO frame). The retire timer is 1 ms, the shortest the kernel takes (it rounds
/// up to one jiffy, 4 ms at HZ=250): at low rates a frame can wait that long.
/// TX: slots of `frameSize` + the 48-byte slot header + the 10-byte virtio_net_hdr, at least 512 of them, in
/// 64 KiB blocks.
///
/// RX frames longer than `rxFrameSize` are cut by the kernel (a socket filter sets
/// the capture length) and reported `truncated`. The filter is what keeps every
/// frame inside one block: without it a longer frame (a GSO super-frame when
/// the ring is sized for MTU frames) is clamped to the block by the kernel, which
/// logs an error, and its copy would cost a block for nothing.
public struct PacketSocket: ~Copyable {
    public let interface: String
    public let ifindex: Int32
    public let frameSize: Int
    public let rxFrameSize: Int
    public let rxBlockSize: Int
    public let rxBlockCount: Int
    public let txSlotCount: Int
    private let fd: Int32
    private let mapping: UnsafeMutableRawPointer
    private let mappingLength: Int
    private let ring: UnsafeMutablePointer<sl_pring>

    /// The worker's view. Exactly one thread may use it (it moves the ring cursors).
    public var io: PacketRingIO { PacketRingIO(fd: fd, ring: ring) }

    /// The largest frame a GSO super-frame can be: a 64 KiB IP packet (IPv4 total
    /// length or IPv6 payload length ≤ 65535, + 40 for IPv6) behind an Ethernet header
    /// and two VLAN tags, rounded up. What an af-packet port's RX ring holds whole.
    public static let gsoFrameSize = 65_536 + 64

    private init(interface: String, ifindex: Int32, frameSize: Int, rxFrameSize: Int, rxBlockSize: Int, rxBlockCount: Int,
                 txSlotCount: Int, fd: Int32, mapping: UnsafeMutableRawPointer, mappingLength: Int,
                 ring: UnsafeMutablePointer<sl_pring>) {
        self.interface = interface
        self.ifindex = ifindex
        self.frameSize = frameSize
        self.rxFrameSize = rxFrameSize
        self.rxBlockSize = rxBlockSize
        self.rxBlockCount = rxBlockCount
        self.txSlotCount = txSlotCount
        self.fd = fd
        self.mapping = mapping
        self.mappingLength = mappingLength
        self.ring = ring
    }

    /// Open a TPACKET_V3 socket on `interface` (which must exist) that sends frames of up
    /// to `frameSize` bytes (Ethernet header included, e.g. 1518 for a 1500 MTU
    /// with one VLAN tag) and receives frames of up to `rxFrameSize` (default
    /// `frameSize`; `gsoFrameSize` to take GSO super-frames whole). Non-blocking,
    /// close-on-exec, qdisc bypass on TX, promiscuous, PACKET_VNET_HDR, and deaf to
    /// outgoing frames (its own transmissions and the host stack's).
    public static func open(interface: String, frameSize: Int, rxFrameSize: Int? = nil) throws(SystemError) -> PacketSocket {
        let rxMax = rxFrameSize ?? frameSize
        guard NetInterface.validName(interface), let ifindex = NetInterface.index(interface) else {
            throw NetInterface.missing(interface)
        }
        guard frameSize >= 64, frameSize <= 65_536 else {
            throw SystemError("packet socket on '\(interface)': frameSize \(frameSize) is outside 64...65536", errno: EINVAL)
        }
        guard rxMax >= 64, rxMax <= gsoFrameSize else {
            throw SystemError("packet socket on '\(interface)': rxFrameSize \(rxMax) is outside 64...\(gsoFrameSize)", errno: EINVAL)
        }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let hdr = Int(SL_TP3_HDRLEN)
        let vnet = Int(SL_VNET_HDRLEN)
        // One TX slot: header + virtio_net_hdr + frame, 16-byte aligned (TPACKET_ALIGNMENT).
        let slot = roundUp(frameSize + vnet + hdr, 16)
        // An RX frame also needs the sockaddr_ll, the MAC-offset padding and the
        // virtio_net_hdr, ~110 bytes, and its block the 48-byte block header. The
        // kernel allocates a block as a power-of-two run of pages.
        let rxBlockSize = max(64 << 10, roundUp(nextPowerOfTwo(rxMax + 256), page))
        let rxBlockCount = max(8, (rxMax > 16 << 10 ? 16 << 20 : 8 << 20) / rxBlockSize)
        let rxSlot = roundUp(max(rxMax + hdr + vnet, Int(SL_TP3_RX_META_END) + 16), 16)
        let txBlockSize = max(64 << 10, roundUp(slot, page))
        let txPerBlock = txBlockSize / slot
        let txBlockCount = (512 + txPerBlock - 1) / txPerBlock
        let rxLength = rxBlockSize * rxBlockCount
        let mappingLength = rxLength + txBlockSize * txBlockCount

        // Protocol 0: the socket sees no traffic until bind() names the interface
        // and ETH_P_ALL, so nothing from other interfaces is queued meanwhile.
        let fd = socket(sl_af_packet(), Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SystemError("packet socket on '\(interface)': socket(AF_PACKET, SOCK_RAW)") }
        let map: UnsafeMutableRawPointer
        do throws(SystemError) {
            let what = "packet socket on '\(interface)': setsockopt"
            try setOption(fd, sl_packet_version_opt(), sl_tpacket_v3(), "\(what)(PACKET_VERSION, TPACKET_V3)")
            try setOption(fd, sl_packet_qdisc_bypass_opt(), 1, "\(what)(PACKET_QDISC_BYPASS)")
            // A frame the kernel will not send (too long for the MTU, malformed) is
            // dropped and its slot freed, instead of stopping the TX ring.
            try setOption(fd, sl_packet_loss_opt(), 1, "\(what)(PACKET_LOSS)")
            // Before the rings exist (the kernel refuses it after): a virtio_net_hdr with
            // each frame, both ways.
            try setOption(fd, sl_packet_vnet_hdr_opt(), 1, "\(what)(PACKET_VNET_HDR)")
            do throws(SystemError) {
                try setOption(fd, sl_packet_ignore_outgoing_opt(), 1, "\(what)(PACKET_IGNORE_OUTGOING)")
            } catch where error.errno == ENOPROTOOPT {
                // Before Linux 4.20: the ring walk skips PACKET_OUTGOING frames itself.
            }
            var filter = sl_snaplen_filter()
            let flen = sl_fill_snaplen_filter(&filter, UInt32(rxMax))
            let fr = withUnsafePointer(to: &filter.prog) { setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, $0, flen) }
            if fr != 0 { throw SystemError("\(what)(SO_ATTACH_FILTER)") }

            var rx = sl_tpacket_req3_storage()
            let rxLen = sl_fill_tpacket_req3(&rx, UInt32(rxBlockSize), UInt32(rxBlockCount), UInt32(rxSlot),
                                             UInt32((rxBlockSize / rxSlot) * rxBlockCount), 1)
            if setsockopt(fd, sl_sol_packet(), sl_packet_rx_ring_opt(), &rx, rxLen) != 0 {
                throw SystemError("\(what)(PACKET_RX_RING, \(rxBlockCount) x \(rxBlockSize >> 10) KiB)")
            }
            var tx = sl_tpacket_req3_storage()
            let txLen = sl_fill_tpacket_req3(&tx, UInt32(txBlockSize), UInt32(txBlockCount), UInt32(slot),
                                             UInt32(txPerBlock * txBlockCount), 0)
            if setsockopt(fd, sl_sol_packet(), sl_packet_tx_ring_opt(), &tx, txLen) != 0 {
                throw SystemError("\(what)(PACKET_TX_RING, \(txPerBlock * txBlockCount) x \(slot) B)")
            }
            guard let p = mmap(nil, mappingLength, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0),
                  p != MAP_FAILED else {
                throw SystemError("packet socket on '\(interface)': mmap(rings, \(mappingLength >> 10) KiB)")
            }
            map = p
        } catch {
            closeFD(fd)
            throw error
        }

        let ring = UnsafeMutablePointer<sl_pring>.allocate(capacity: 1)
        ring.initialize(to: sl_pring())
        ring.pointee.rx_ring = map.assumingMemoryBound(to: UInt8.self)
        ring.pointee.rx_block_size = UInt32(rxBlockSize)
        ring.pointee.rx_block_count = UInt32(rxBlockCount)
        ring.pointee.rx_vnet = UInt32(vnet)
        ring.pointee.tx_vnet = UInt32(vnet)
        ring.pointee.tx_ring = (map + rxLength).assumingMemoryBound(to: UInt8.self)
        ring.pointee.tx_slot = ring.pointee.tx_ring
        ring.pointee.tx_block_size = UInt32(txBlockSize)
        ring.pointee.tx_frame_size = UInt32(slot)
        ring.pointee.tx_frames_per_block = UInt32(txPerBlock)
        ring.pointee.tx_block_count = UInt32(txBlockCount)
        ring.pointee.tx_max_len = UInt32(frameSize)

        // From here the owner cleans up on a throw.
        let owner = PacketSocket(interface: interface, ifindex: ifindex, frameSize: frameSize, rxFrameSize: rxMax,
                                 rxBlockSize: rxBlockSize, rxBlockCount: rxBlockCount,
                                 txSlotCount: txPerBlock * txBlockCount, fd: fd, mapping: map,
                                 mappingLength: mappingLength, ring: ring)
        var addr = sl_sockaddr_ll_storage()
        let alen = sl_fill_sockaddr_ll(&addr, ifindex)
        let br = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, alen) }
        }
        if br != 0 {
            let e = Glibc.errno
            if e == ENODEV || e == ENXIO { throw NetInterface.missing(interface) }
            throw SystemError("packet socket on '\(interface)': bind(ifindex \(ifindex))", errno: e)
        }
        var mreq = sl_packet_mreq_storage()
        let mlen = sl_fill_promisc_mreq(&mreq, ifindex)
        if setsockopt(fd, sl_sol_packet(), sl_packet_add_membership_opt(), &mreq, mlen) != 0 {
            throw SystemError("packet socket on '\(interface)': setsockopt(PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC)")
        }
        return owner
    }

    /// Frames the kernel counted since the last call (the counters reset on read):
    /// `seen` includes `dropped`, the frames lost because the RX ring was full.
    public func takeStatistics() -> (seen: UInt32, dropped: UInt32)? {
        var st = sl_tpacket_stats_v3()
        var len = socklen_t(MemoryLayout<sl_tpacket_stats_v3>.size)
        guard getsockopt(fd, sl_sol_packet(), sl_packet_statistics_opt(), &st, &len) == 0 else { return nil }
        return (st.packets, st.drops)
    }

    deinit {
        munmap(mapping, mappingLength)
        closeFD(fd)
        ring.deallocate()
    }

    private static func setOption(_ fd: Int32, _ name: Int32, _ value: Int32, _ what: String) throws(SystemError) {
        var v = value
        if setsockopt(fd, sl_sol_packet(), name, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            throw SystemError(what)
        }
    }

    private static func roundUp(_ n: Int, _ m: Int) -> Int { (n + m - 1) / m * m }
    private static func nextPowerOfTwo(_ n: Int) -> Int { n <= 1 ? 1 : 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount) }
}

/// One received frame: `length` bytes at `bytes`, inside the RX ring. Valid until
/// the next `nextFrame()` or `releaseReceived()` on the same view.
@frozen
public struct ReceivedFrame: BitwiseCopyable {
    public let bytes: UnsafeRawPointer
    public let length: Int
    /// The frame's length on the wire; larger than `length` when the kernel cut it.
    public let wireLength: Int
    /// From the frame's virtio_net_hdr: `vnetFlags` (NEEDS_CSUM: the L4 checksum at
    /// `csumStart + csumOffset` holds only the pseudo-header sum; DATA_VALID),
    /// `gsoType` (`ReceivedFrame.gsoTCPv4`…, ECN bit included) and `gsoSize` (payload
    /// bytes per segment). Offsets count from `bytes`. All 0 for a plain frame.
    public let vnetFlags: UInt8
    public let gsoType: UInt8
    public let gsoSize: UInt16
    public let csumStart: UInt16
    public let csumOffset: UInt16

    public static let needsChecksum = UInt8(SL_VNET_F_NEEDS_CSUM)
    public static let dataValid = UInt8(SL_VNET_F_DATA_VALID)
    public static let gsoNone = UInt8(SL_VNET_GSO_NONE)
    public static let gsoTCPv4 = UInt8(SL_VNET_GSO_TCPV4)
    public static let gsoUDP = UInt8(SL_VNET_GSO_UDP)
    public static let gsoTCPv6 = UInt8(SL_VNET_GSO_TCPV6)
    public static let gsoUDPL4 = UInt8(SL_VNET_GSO_UDP_L4)
    public static let gsoECN = UInt8(SL_VNET_GSO_ECN)

    @inlinable
    public init(bytes: UnsafeRawPointer, length: Int, wireLength: Int, vnetFlags: UInt8 = 0, gsoType: UInt8 = 0,
                gsoSize: UInt16 = 0, csumStart: UInt16 = 0, csumOffset: UInt16 = 0) {
        self.bytes = bytes
        self.length = length
        self.wireLength = wireLength
        self.vnetFlags = vnetFlags
        self.gsoType = gsoType
        self.gsoSize = gsoSize
        self.csumStart = csumStart
        self.csumOffset = csumOffset
    }

    @inlinable
    init(_ f: sl_pframe, _ data: UnsafePointer<UInt8>) {
        self.init(bytes: UnsafeRawPointer(data), length: Int(f.length), wireLength: Int(f.wire_length),
                  vnetFlags: f.vnet_flags, gsoType: f.gso_type, gsoSize: f.gso_size,
                  csumStart: f.csum_start, csumOffset: f.csum_offset)
    }

    /// A GSO super-frame: to be cut into `gsoSize` segments before it goes anywhere.
    @inlinable
    public var isGSO: Bool { gsoType != 0 }

    /// The L4 checksum is only the pseudo-header sum: complete it before sending on.
    @inlinable
    public var needsChecksum: Bool { vnetFlags & Self.needsChecksum != 0 }

    /// The kernel captured only part of the frame (it was longer than the
    /// socket's frameSize): drop and count it.
    @inlinable
    public var truncated: Bool { length < wireLength }
}

/// The worker's view of a `PacketSocket`: RX and TX ring cursors. The cursor
/// state lives in memory the owner allocated; one thread uses a view at a time,
/// and the owner must outlive it.
///
/// VLAN tags: the kernel strips an 802.1Q/802.1ad tag on receive into the frame
/// metadata; `nextFrame()` writes it back into the frame (ring headroom before
/// the MAC header), so RX frames are as they were on the wire, like tap frames.
/// On TX a tagged frame is sent as written.
@frozen
public struct PacketRingIO: BitwiseCopyable, @unchecked Sendable {
    public let fd: Int32
    public let ring: UnsafeMutablePointer<sl_pring>

    @inlinable
    public init(fd: Int32, ring: UnsafeMutablePointer<sl_pring>) {
        self.fd = fd
        self.ring = ring
    }

    /// The next received frame, or nil when none is ready. Advancing past the
    /// last frame of a block hands that block back to the kernel, so copy each
    /// frame out before asking for the next.
    @inlinable
    public func nextFrame() -> ReceivedFrame? {
        var f = sl_pframe()
        guard sl_pring_next(ring, &f) != 0, let data = f.data else { return nil }
        return ReceivedFrame(f, data)
    }

    /// The next received frame without stepping past it (asking again gives the
    /// same frame), or nil when none is ready. Valid until `takeFrame()` and the
    /// next peek, or `releaseReceived()`.
    @inlinable
    public func peekFrame() -> ReceivedFrame? {
        var f = sl_pframe()
        guard sl_pring_peek(ring, &f) != 0, let data = f.data else { return nil }
        return ReceivedFrame(f, data)
    }

    /// Step past the frame `peekFrame()` returned (it is done with; clears `resumeOffset`).
    @inlinable
    public func takeFrame() { sl_pring_take(ring) }

    /// Payload bytes of the peeked frame already cut into segments by an earlier
    /// burst that ran out of room (0 for a frame not started).
    @inlinable
    public var resumeOffset: Int {
        get { Int(ring.pointee.rx_resume) }
        nonmutating set { ring.pointee.rx_resume = UInt32(truncatingIfNeeded: newValue) }
    }

    /// Hand back the current block if all its frames were taken (call after a
    /// burst, so an idle port does not hold a finished block).
    @inlinable
    public func releaseReceived() { sl_pring_release(ring) }

    /// Copy one frame (14 bytes or more) into the next free TX slot; false when
    /// the ring is full or the frame is longer than the socket's `frameSize`. The kernel also drops
    /// (silently) frames longer than the interface MTU + 18.
    @inlinable
    public func transmit(_ frame: UnsafeRawPointer, length: Int) -> Bool {
        guard let n = UInt32(exactly: length) else { return false }
        return sl_pring_transmit(ring, frame, n) != 0
    }

    /// Ask the kernel to send the queued TX slots; once per burst. No system call
    /// when nothing was queued since the last flush.
    @inlinable
    public func flush() {
        if ring.pointee.tx_queued == 0 { return }
        ring.pointee.tx_queued = 0
        _ = sendto(fd, nil, 0, Int32(MSG_DONTWAIT), nil, 0)
    }
}
