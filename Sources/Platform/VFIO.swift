#if canImport(Glibc)
import Glibc
#endif
import CSluice

// VFIO, legacy container/group API (the only one kernel 6.1 has; docs/nvme-plan.md §3.3):
// one container holds the IOMMU mappings, groups join it, devices come out of a group.
// Control plane only: objects are created at start or reload, and the hot path keeps raw
// values (the BAR pointer, IOVAs, the device fd for `VFIODevice.unmaskINTx(deviceFD:)`).
// Every object closes what it opened exactly once, in `close()` or when it goes away.

/// An IOMMU context (`/dev/vfio/vfio`): the groups attached to it share one set of DMA
/// mappings, IOVA → process memory.
public final class VFIOContainer: @unchecked Sendable {
    public let fd: Int32
    public let path: String
    /// Usable IOVA ranges (inclusive), as the IOMMU reported them after the last attach.
    /// Empty before the first group is attached, or when the kernel does not report them.
    public private(set) var iovaRanges: [ClosedRange<UInt64>] = []
    /// Bitmap of the IOMMU page sizes (bit n set: 2^n bytes), 0 before the first attach.
    public private(set) var pageSizes: UInt64 = 0
    /// DMA mappings the container could still make at the last attach (the kernel's
    /// `dma_entry_limit`, 65535 by default), nil when the kernel does not report it.
    public private(set) var dmaAvailable: Int?
    /// The kernel can drop every mapping in one call (VFIO_UNMAP_ALL).
    public let canUnmapAll: Bool
    private var groups: [Int: VFIOGroup] = [:]

    /// Open the container and check that it speaks API version 0 with the type1v2 IOMMU.
    public init(path: String = "/dev/vfio/vfio") throws(SystemError) {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 {
            let e = Glibc.errno
            let what = switch e {
            case ENOENT: "\(path) does not exist: the VFIO modules are not loaded (modprobe vfio-pci vfio_iommu_type1)"
            case EACCES, EPERM: "permission denied opening \(path): run sluice as root"
            default: "cannot open \(path): \(String(cString: strerror(e)))"
            }
            throw SystemError("open(\(path))", errno: e, message: "VFIO container: " + what)
        }
        let version = sl_vfio_api_version(fd)
        guard version == Int32(SL_VFIO_API_VERSION) else {
            closeFD(fd)
            let what = version < 0
                ? "VFIO_GET_API_VERSION failed (\(String(cString: strerror(-version)))): \(path) is not a VFIO container device"
                : "\(path) speaks VFIO API version \(version), sluice knows version \(SL_VFIO_API_VERSION)"
            throw SystemError("VFIO_GET_API_VERSION", errno: version < 0 ? -version : EPROTO, message: "VFIO container: " + what)
        }
        guard sl_vfio_check_extension(fd, UInt32(SL_VFIO_TYPE1v2_IOMMU)) == 1 else {
            closeFD(fd)
            throw SystemError("VFIO_CHECK_EXTENSION", errno: ENODEV,
                              message: "VFIO container \(path) does not offer the type1v2 IOMMU: load it (modprobe vfio_iommu_type1) and check that the kernel has an IOMMU enabled (intel_iommu=on / amd_iommu=on)")
        }
        self.fd = fd
        self.path = path
        self.canUnmapAll = sl_vfio_check_extension(fd, UInt32(SL_VFIO_UNMAP_ALL_EXTENSION)) == 1
    }

    deinit { closeFD(fd) }

    /// The attached group with this number, if any.
    public func group(_ number: Int) -> VFIOGroup? { groups[number] }

    /// Numbers of the attached groups, ascending.
    public var attachedGroups: [Int] { groups.keys.sorted() }

    /// The smallest IOMMU page: every mapping's address and length are multiples of it.
    public var minimumPageSize: UInt64 { pageSizes == 0 ? 4096 : pageSizes & (~pageSizes &+ 1) }

    /// Put `group` into this container (once; attaching it again does nothing). The
    /// first group also selects the type1v2 IOMMU. Refreshes the IOVA ranges, page sizes
    /// and mappings left, since every group can add reserved ranges.
    public func attach(group: VFIOGroup) throws(SystemError) {
        if let present = groups[group.number] {
            if present === group { return }
            throw SystemError("VFIO_GROUP_SET_CONTAINER", errno: EBUSY,
                              message: "IOMMU group \(group.number) is already attached to this container through another handle; reuse container.group(\(group.number))")
        }
        let r = sl_vfio_group_set_container(group.fd, fd)
        if r < 0 {
            throw SystemError("VFIO_GROUP_SET_CONTAINER", errno: -r,
                              message: "IOMMU group \(group.number): cannot join the VFIO container: \(String(cString: strerror(-r))); is the group viable and not in use by another process?")
        }
        if groups.isEmpty {
            let s = sl_vfio_set_iommu(fd, UInt32(SL_VFIO_TYPE1v2_IOMMU))
            if s < 0 {
                _ = sl_vfio_group_unset_container(group.fd)
                throw SystemError("VFIO_SET_IOMMU", errno: -s,
                                  message: "IOMMU group \(group.number): cannot set up the type1v2 IOMMU: \(String(cString: strerror(-s))); check dmesg for DMAR/AMD-Vi errors")
            }
        }
        groups[group.number] = group
        try refreshInfo(naming: "IOMMU group \(group.number)")
    }

    private func refreshInfo(naming who: String) throws(SystemError) {
        var capacity: UInt32 = 16
        while true {
            var flags: UInt32 = 0, pages: UInt64 = 0, count: UInt32 = 0, avail: Int64 = -1
            var starts = [UInt64](repeating: 0, count: Int(capacity))
            var ends = [UInt64](repeating: 0, count: Int(capacity))
            let r = sl_vfio_iommu_info(fd, &flags, &pages, &starts, &ends, capacity, &count, &avail)
            if r < 0 {
                throw SystemError("VFIO_IOMMU_GET_INFO", errno: -r,
                                  message: "\(who): VFIO_IOMMU_GET_INFO failed: \(String(cString: strerror(-r)))")
            }
            if count > capacity { capacity = count; continue }
            pageSizes = pages
            dmaAvailable = avail < 0 ? nil : Int(avail)
            iovaRanges = (0..<Int(count)).compactMap { i in starts[i] <= ends[i] ? starts[i]...ends[i] : nil }
            return
        }
    }

    /// Let the devices of this container read (and, when `writable`, write) `bytes` of
    /// process memory at `host` through `iova`. The pages are pinned until `unmap`.
    /// Address, IOVA and length must be multiples of `minimumPageSize`, and the IOVA
    /// range must lie inside one of `iovaRanges`.
    public func map(host: UnsafeMutableRawPointer, iova: UInt64, bytes: Int, writable: Bool) throws(SystemError) {
        let what = "DMA map of \(bytes) bytes at IOVA 0x\(String(iova, radix: 16)) (groups \(groupList))"
        guard !groups.isEmpty else {
            throw SystemError("VFIO_IOMMU_MAP_DMA", errno: EINVAL, message: "\(what): no IOMMU group is attached yet; open a device first")
        }
        if let problem = Self.mappingProblem(host: UInt64(UInt(bitPattern: host)), iova: iova, bytes: bytes,
                                             pageSize: minimumPageSize, ranges: iovaRanges) {
            throw SystemError("VFIO_IOMMU_MAP_DMA", errno: EINVAL, message: "\(what): \(problem)")
        }
        let r = sl_vfio_map_dma(fd, UInt64(UInt(bitPattern: host)), iova, UInt64(bytes), writable ? 1 : 0)
        if r < 0 {
            let hint = switch -r {
            case ENOMEM: "cannot pin the memory; raise the locked-memory limit (ulimit -l, LimitMEMLOCK=infinity) or run as root"
            case ENOSPC: "the container's mapping limit is used up (vfio_iommu_type1 dma_entry_limit); map fewer, larger regions"
            case EEXIST: "part of the IOVA range is already mapped; unmap it first"
            default: String(cString: strerror(-r))
            }
            throw SystemError("VFIO_IOMMU_MAP_DMA", errno: -r, message: "\(what): \(hint)")
        }
    }

    /// Remove a mapping made by `map` (the same IOVA and length, or a range covering
    /// whole mappings); an error when not exactly `bytes` were mapped there.
    public func unmap(iova: UInt64, bytes: Int) throws(SystemError) {
        let what = "DMA unmap of \(bytes) bytes at IOVA 0x\(String(iova, radix: 16)) (groups \(groupList))"
        guard bytes > 0 else { throw SystemError("VFIO_IOMMU_UNMAP_DMA", errno: EINVAL, message: "\(what): the length must be positive") }
        var unmapped: UInt64 = 0
        let r = sl_vfio_unmap_dma(fd, iova, UInt64(bytes), &unmapped)
        if r < 0 {
            throw SystemError("VFIO_IOMMU_UNMAP_DMA", errno: -r,
                              message: "\(what): \(String(cString: strerror(-r))); unmap whole mappings, as they were mapped")
        }
        if unmapped != UInt64(bytes) {
            throw SystemError("VFIO_IOMMU_UNMAP_DMA", errno: ENOENT,
                              message: "\(what): only \(unmapped) bytes were mapped there; the range must cover exactly what map() mapped")
        }
    }

    /// Drop every mapping (when the kernel offers VFIO_UNMAP_ALL). Returns the bytes unmapped.
    @discardableResult
    public func unmapAll() throws(SystemError) -> UInt64 {
        guard canUnmapAll else {
            throw SystemError("VFIO_IOMMU_UNMAP_DMA", errno: ENOTSUP,
                              message: "VFIO container (groups \(groupList)): the kernel cannot unmap all at once (no VFIO_UNMAP_ALL); unmap each range")
        }
        var unmapped: UInt64 = 0
        let r = sl_vfio_unmap_all(fd, &unmapped)
        if r < 0 {
            throw SystemError("VFIO_IOMMU_UNMAP_DMA", errno: -r,
                              message: "VFIO container (groups \(groupList)): unmap all failed: \(String(cString: strerror(-r)))")
        }
        return unmapped
    }

    private var groupList: String { attachedGroups.map(String.init).joined(separator: ",") }

    /// Why a mapping cannot work, nil when it can: alignment to the IOMMU page, a
    /// positive length without wrap-around, and an IOVA range inside one usable range
    /// (not checked when the kernel reported none).
    static func mappingProblem(host: UInt64, iova: UInt64, bytes: Int, pageSize: UInt64,
                               ranges: [ClosedRange<UInt64>]) -> String? {
        guard bytes > 0 else { return "the length must be positive" }
        let page = max(pageSize, 1)
        let length = UInt64(bytes)
        if host % page != 0 || iova % page != 0 || length % page != 0 {
            return "host address 0x\(String(host, radix: 16)), IOVA and length must be multiples of the IOMMU page (\(page) bytes)"
        }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        if overflow { return "the IOVA range wraps around 2^64" }
        if !ranges.isEmpty && !ranges.contains(where: { $0.contains(iova) && $0.contains(last) }) {
            let usable = ranges.map { "0x\(String($0.lowerBound, radix: 16))-0x\(String($0.upperBound, radix: 16))" }
                .joined(separator: ", ")
            return "the IOVA range 0x\(String(iova, radix: 16))-0x\(String(last, radix: 16)) is outside the IOMMU's usable ranges (\(usable)); allocate IOVAs inside them"
        }
        return nil
    }
}

/// An IOMMU group (`/dev/vfio/N`): the unit VFIO isolates; all its devices go to one
/// container together.
public final class VFIOGroup: @unchecked Sendable {
    public let number: Int
    public let fd: Int32
    public let path: String

    public init(number: Int, devRoot: String = "/dev/vfio") throws(SystemError) {
        let path = "\(devRoot)/\(number)"
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 {
            let e = Glibc.errno
            let what = switch e {
            case ENOENT: "\(path) does not exist: no device of the group is bound to vfio-pci yet (or vfio-pci is not loaded); bind the device first"
            case EACCES, EPERM: "permission denied opening \(path): run sluice as root or give its user the device (chown)"
            case EBUSY: "the group is already open in another process (another sluice, or a VM with the device passed through); stop that first"
            default: "cannot open \(path): \(String(cString: strerror(e)))"
            }
            throw SystemError("open(\(path))", errno: e, message: "IOMMU group \(number): " + what)
        }
        self.number = number
        self.fd = fd
        self.path = path
    }

    deinit { closeFD(fd) }

    /// VFIO_GROUP_GET_STATUS flags (`SL_VFIO_GROUP_VIABLE`, `SL_VFIO_GROUP_CONTAINER_SET`).
    public var status: UInt32 {
        get throws(SystemError) {
            var flags: UInt32 = 0
            let r = sl_vfio_group_status(fd, &flags)
            if r < 0 {
                throw SystemError("VFIO_GROUP_GET_STATUS", errno: -r,
                                  message: "IOMMU group \(number): VFIO_GROUP_GET_STATUS on \(path) failed: \(String(cString: strerror(-r))); is it a VFIO group device?")
            }
            return flags
        }
    }

    /// True when every device of the group is bound to vfio-pci or to no driver (the
    /// kernel's view; `VFIOOpen` explains which device is in the way when it is not).
    public var viable: Bool {
        get throws(SystemError) { try status & UInt32(SL_VFIO_GROUP_VIABLE) != 0 }
    }
}

/// The interrupt kinds of a PCI device, by their VFIO index.
public enum VFIOIRQIndex: UInt32, Sendable, CustomStringConvertible {
    case intx = 0, msi = 1, msix = 2

    public var description: String {
        switch self {
        case .intx: "INTx"
        case .msi: "MSI"
        case .msix: "MSI-X"
        }
    }
}

/// One region of a device (BARs 0–5, config space 7, …).
public struct VFIORegionInfo: Sendable, Equatable {
    public var index: Int
    public var flags: UInt32
    public var size: UInt64
    /// Where the region starts in the device fd (for mmap, pread, pwrite).
    public var offset: UInt64
    public var readable: Bool { flags & UInt32(SL_VFIO_REGION_READ) != 0 }
    public var writable: Bool { flags & UInt32(SL_VFIO_REGION_WRITE) != 0 }
    public var mappable: Bool { flags & UInt32(SL_VFIO_REGION_MMAP) != 0 }
}

public struct VFIOIRQInfo: Sendable, Equatable {
    public var index: VFIOIRQIndex
    public var flags: UInt32
    /// Vectors of this kind (0: the device does not have it).
    public var count: Int
    /// Masked by the kernel each time it fires (INTx): unmask after handling.
    public var automasked: Bool { flags & UInt32(SL_VFIO_IRQ_AUTOMASKED) != 0 }
}

/// One PCI function opened through its group: regions, BAR mappings, config space,
/// interrupts, reset. The group must already be attached to `container`, whose IOMMU
/// translates the device's DMA. Closing (or dropping the last reference) unmaps the BARs
/// and closes the device fd; the kernel then turns the device's interrupts off.
public final class VFIODevice: @unchecked Sendable {
    /// "0000:00:04.0".
    public let address: String
    public let fd: Int32
    public let group: VFIOGroup
    public let container: VFIOContainer
    /// VFIO_DEVICE_GET_INFO flags, number of regions, number of interrupt indexes.
    public let flags: UInt32
    public let regionCount: Int
    public let irqIndexCount: Int
    /// Where PCI config space starts in the device fd.
    public let configOffset: UInt64
    public let configSize: UInt64
    private var bars: [Int: (base: UnsafeMutableRawPointer, length: Int)] = [:]
    public private(set) var isClosed = false

    public init(address: String, group: VFIOGroup, container: VFIOContainer) throws(SystemError) {
        guard container.group(group.number) === group else {
            throw SystemError("VFIO_GROUP_GET_DEVICE_FD", errno: EINVAL,
                              message: "PCI device \(address): IOMMU group \(group.number) is not attached to the container; attach it first (VFIOOpen.open does)")
        }
        let fd = address.withCString { sl_vfio_group_device_fd(group.fd, $0) }
        if fd < 0 {
            throw SystemError("VFIO_GROUP_GET_DEVICE_FD", errno: -fd,
                              message: "PCI device \(address): cannot get it from IOMMU group \(group.number): \(String(cString: strerror(-fd))); is it in that group and bound to vfio-pci, and not open elsewhere?")
        }
        var flags: UInt32 = 0, regions: UInt32 = 0, irqs: UInt32 = 0
        let r = sl_vfio_device_info(fd, &flags, &regions, &irqs)
        if r < 0 || flags & UInt32(SL_VFIO_DEVICE_PCI) == 0 || regions <= UInt32(SL_VFIO_PCI_CONFIG_REGION) {
            closeFD(fd)
            let why = r < 0 ? "VFIO_DEVICE_GET_INFO failed: \(String(cString: strerror(-r)))"
                : "VFIO does not present it as a PCI device with a config region (flags 0x\(String(flags, radix: 16)), \(regions) regions)"
            throw SystemError("VFIO_DEVICE_GET_INFO", errno: r < 0 ? -r : ENODEV, message: "PCI device \(address): \(why)")
        }
        var cflags: UInt32 = 0, csize: UInt64 = 0, coffset: UInt64 = 0
        let c = sl_vfio_region_info(fd, UInt32(SL_VFIO_PCI_CONFIG_REGION), &cflags, &csize, &coffset)
        if c < 0 || csize < 64 {
            closeFD(fd)
            throw SystemError("VFIO_DEVICE_GET_REGION_INFO", errno: c < 0 ? -c : ENODEV,
                              message: "PCI device \(address): no usable config space region (\(c < 0 ? String(cString: strerror(-c)) : "\(csize) bytes"))")
        }
        self.address = address
        self.fd = fd
        self.group = group
        self.container = container
        self.flags = flags
        self.regionCount = Int(regions)
        self.irqIndexCount = Int(irqs)
        self.configOffset = coffset
        self.configSize = csize
    }

    deinit { close() }

    /// The device supports function-level reset (`reset()`).
    public var supportsReset: Bool { flags & UInt32(SL_VFIO_DEVICE_RESET) != 0 }

    /// Unmap the BARs and close the device fd (once; later calls do nothing).
    public func close() {
        if isClosed { return }
        isClosed = true
        for (_, bar) in bars { munmap(bar.base, bar.length) }
        bars = [:]
        closeFD(fd)
    }

    private func live(_ call: String) throws(SystemError) {
        if isClosed { throw SystemError(call, errno: EBADF, message: "PCI device \(address) is closed; open it again") }
    }

    private func failure(_ call: String, _ r: Int32, _ what: String) -> SystemError {
        SystemError(call, errno: -r, message: "PCI device \(address): \(what): \(String(cString: strerror(-r)))")
    }

    // MARK: regions

    public func region(_ index: Int) throws(SystemError) -> VFIORegionInfo {
        try live("VFIO_DEVICE_GET_REGION_INFO")
        guard index >= 0, index < regionCount else {
            throw SystemError("VFIO_DEVICE_GET_REGION_INFO", errno: EINVAL,
                              message: "PCI device \(address): region \(index) does not exist (the device has \(regionCount))")
        }
        var flags: UInt32 = 0, size: UInt64 = 0, offset: UInt64 = 0
        let r = sl_vfio_region_info(fd, UInt32(index), &flags, &size, &offset)
        if r < 0 { throw failure("VFIO_DEVICE_GET_REGION_INFO", r, "region \(index) info") }
        return VFIORegionInfo(index: index, flags: flags, size: size, offset: offset)
    }

    /// Map BAR `bar` (0–5) read/write into this process; the same mapping on every call.
    /// Stays mapped until `close()`. Access it only through the `sl_mmio_*` accessors.
    public func mapBAR(_ bar: Int) throws(SystemError) -> (UnsafeMutableRawPointer, Int) {
        if let m = bars[bar] { return (m.base, m.length) }
        guard bar >= 0, bar <= Int(SL_VFIO_PCI_BAR5_REGION) else {
            throw SystemError("mmap(BAR)", errno: EINVAL, message: "PCI device \(address): BAR \(bar) does not exist (0–5)")
        }
        let info = try region(bar)
        guard info.size > 0 else {
            throw SystemError("mmap(BAR)", errno: ENODEV, message: "PCI device \(address): BAR \(bar) is not implemented (size 0); is this the right device?")
        }
        guard info.mappable, info.size <= UInt64(Int.max), info.offset <= UInt64(Int.max) else {
            throw SystemError("mmap(BAR)", errno: ENOTSUP,
                              message: "PCI device \(address): VFIO does not allow mapping BAR \(bar) (flags 0x\(String(info.flags, radix: 16))); the kernel needs CONFIG_VFIO_PCI_MMAP")
        }
        let length = Int(info.size)
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(info.offset)), p != MAP_FAILED else {
            let e = Glibc.errno
            throw SystemError("mmap(BAR)", errno: e,
                              message: "PCI device \(address): cannot map BAR \(bar) (\(length) bytes): \(String(cString: strerror(e)))")
        }
        bars[bar] = (p, length)
        return (p, length)
    }

    // MARK: config space (little-endian, through the config region of the device fd)

    public func readConfig16(_ offset: Int) throws(SystemError) -> UInt16 {
        var v: UInt16 = 0
        try configIO(offset, &v, write: false)
        return UInt16(littleEndian: v)
    }

    public func readConfig32(_ offset: Int) throws(SystemError) -> UInt32 {
        var v: UInt32 = 0
        try configIO(offset, &v, write: false)
        return UInt32(littleEndian: v)
    }

    public func writeConfig16(_ offset: Int, _ value: UInt16) throws(SystemError) {
        var v = value.littleEndian
        try configIO(offset, &v, write: true)
    }

    public func writeConfig32(_ offset: Int, _ value: UInt32) throws(SystemError) {
        var v = value.littleEndian
        try configIO(offset, &v, write: true)
    }

    private func configIO<T: FixedWidthInteger>(_ offset: Int, _ value: inout T, write: Bool) throws(SystemError) {
        let call = write ? "pwrite(config)" : "pread(config)"
        try live(call)
        let width = MemoryLayout<T>.size
        guard offset >= 0, offset % width == 0, UInt64(offset + width) <= configSize else {
            throw SystemError(call, errno: EINVAL,
                              message: "PCI device \(address): config offset \(offset) is not an aligned \(width)-byte field inside \(configSize) bytes")
        }
        let at = off_t(configOffset + UInt64(offset))
        let n = withUnsafeMutableBytes(of: &value) { raw in
            while true {
                let n = write ? pwrite(fd, raw.baseAddress, width, at) : pread(fd, raw.baseAddress, width, at)
                if n < 0 && Glibc.errno == EINTR { continue }
                return n
            }
        }
        if n != width {
            let e = n < 0 ? Glibc.errno : EIO
            throw SystemError(call, errno: e,
                              message: "PCI device \(address): config space \(write ? "write" : "read") at 0x\(String(offset, radix: 16)) failed: \(n < 0 ? String(cString: strerror(e)) : "\(n) of \(width) bytes")")
        }
    }

    /// Set memory space (bit 1) and bus master (bit 2) in the command register: vfio-pci
    /// leaves bus mastering off, and without it the controller cannot reach its queues.
    /// Returns the command register as read back.
    @discardableResult
    public func enableBusMaster() throws(SystemError) -> UInt16 {
        let command = try readConfig16(4)
        let wanted = command | 0x6
        if wanted != command { try writeConfig16(4, wanted) }
        let after = try readConfig16(4)
        guard after & 0x6 == 0x6 else {
            throw SystemError("pwrite(config)", errno: EIO,
                              message: "PCI device \(address): memory space and bus master did not stay on (command 0x\(String(after, radix: 16))); the device may be in a low-power state or gone")
        }
        return after
    }

    // MARK: interrupts

    public func irqInfo(_ index: VFIOIRQIndex) throws(SystemError) -> VFIOIRQInfo {
        try live("VFIO_DEVICE_GET_IRQ_INFO")
        guard Int(index.rawValue) < irqIndexCount else { return VFIOIRQInfo(index: index, flags: 0, count: 0) }
        var flags: UInt32 = 0, count: UInt32 = 0
        let r = sl_vfio_irq_info(fd, index.rawValue, &flags, &count)
        if r < 0 { throw failure("VFIO_DEVICE_GET_IRQ_INFO", r, "\(index) info") }
        return VFIOIRQInfo(index: index, flags: flags, count: Int(count))
    }

    /// Vectors of `index` the device has (INTx 0 or 1; QEMU's NVMe: MSI 0, MSI-X 65).
    public func irqCount(_ index: VFIOIRQIndex) throws(SystemError) -> Int { try irqInfo(index).count }

    /// Route vectors start..start+n-1 of `index` to `eventFDs` (one each; -1 leaves that
    /// vector unrouted).
    public func setIRQs(index: VFIOIRQIndex, eventFDs: [Int32], start: Int = 0) throws(SystemError) {
        let info = try irqInfo(index)
        guard !eventFDs.isEmpty, start >= 0 else {
            throw SystemError("VFIO_DEVICE_SET_IRQS", errno: EINVAL,
                              message: "PCI device \(address): no eventfds given for \(index); use disableIRQs to turn it off")
        }
        guard start + eventFDs.count <= info.count else {
            let alternatives = info.count == 0 ? "; it has no \(index) capability: use \(index == .msix ? "msi or intx" : "msix or intx")" : ""
            throw SystemError("VFIO_DEVICE_SET_IRQS", errno: EINVAL,
                              message: "PCI device \(address) has \(info.count) \(index) vector(s); asked for \(start)..\(start + eventFDs.count - 1)\(alternatives)")
        }
        let r = eventFDs.withUnsafeBufferPointer {
            sl_vfio_set_irqs_eventfd(fd, index.rawValue, UInt32(start), $0.baseAddress, UInt32($0.count))
        }
        if r < 0 { throw failure("VFIO_DEVICE_SET_IRQS", r, "routing \(eventFDs.count) \(index) vector(s) to eventfds") }
    }

    /// Turn every vector of `index` off.
    public func disableIRQs(index: VFIOIRQIndex) throws(SystemError) {
        try live("VFIO_DEVICE_SET_IRQS")
        let r = sl_vfio_disable_irqs(fd, index.rawValue)
        if r < 0 { throw failure("VFIO_DEVICE_SET_IRQS", r, "disabling \(index)") }
    }

    /// INTx masks itself when it fires; unmask it once the completions are reaped.
    public func unmaskINTx() throws(SystemError) {
        try live("VFIO_DEVICE_SET_IRQS")
        let r = Self.unmaskINTx(deviceFD: fd)
        if r < 0 { throw failure("VFIO_DEVICE_SET_IRQS", r, "unmasking INTx") }
    }

    /// The same for the event-mode wake-up path, which holds only the raw fd: 0 or -errno.
    @inlinable
    public static func unmaskINTx(deviceFD: Int32) -> Int32 { sl_vfio_unmask_intx(deviceFD) }

    /// Function-level reset (VFIO_DEVICE_RESET).
    public func reset() throws(SystemError) {
        try live("VFIO_DEVICE_RESET")
        guard supportsReset else {
            throw SystemError("VFIO_DEVICE_RESET", errno: ENOTSUP,
                              message: "PCI device \(address) offers no reset through VFIO; reset the controller itself (NVMe: CC.EN = 0)")
        }
        let r = sl_vfio_device_reset(fd)
        if r < 0 { throw failure("VFIO_DEVICE_RESET", r, "reset") }
    }
}
