#if canImport(Glibc)
import Glibc
#endif

/// One PCI function as sysfs describes it (`/sys/bus/pci/devices/DDDD:BB:DD.F`).
public struct PCIDevice: Sendable, Equatable, CustomStringConvertible {
    /// "0000:00:04.0" (lowercase hex, as the kernel names it).
    public var address: String
    public var vendor: UInt16
    public var device: UInt16
    /// Base class, subclass, programming interface: 0x010802 is an NVMe controller.
    public var classCode: UInt32
    /// The bound driver ("nvme", "vfio-pci"), nil when none is bound.
    public var driver: String?
    /// The IOMMU group, nil when the kernel runs without an IOMMU.
    public var iommuGroup: Int?

    public init(address: String, vendor: UInt16, device: UInt16, classCode: UInt32,
                driver: String?, iommuGroup: Int?) {
        self.address = address
        self.vendor = vendor
        self.device = device
        self.classCode = classCode
        self.driver = driver
        self.iommuGroup = iommuGroup
    }

    public var isNVMe: Bool { classCode == PCISysfs.nvmeClass }

    /// "0000:00:04.0 [1b36:0010] class 010802 driver nvme group 1".
    public var description: String {
        "\(address) [\(PCISysfs.hex(vendor, 4)):\(PCISysfs.hex(device, 4))] class \(PCISysfs.hex(classCode, 6)) driver \(driver ?? "none") group \(iommuGroup.map(String.init) ?? "none")"
    }
}

/// PCI devices from sysfs: the controllers sluice could drive and, for each, what stands
/// between it and VFIO. Control plane only; every function takes the sysfs root so tests
/// can run against a fake tree.
public enum PCISysfs {
    /// Class code of an NVM Express controller (mass storage / NVM / NVMe).
    public static let nvmeClass: UInt32 = 0x010802
    /// The driver a device must be bound to before VFIO can open it.
    public static let vfioDriver = "vfio-pci"
    /// Drivers that leave an IOMMU group viable: they never do DMA for the host on their
    /// own (bridges, stub), so VFIO lets the group be used while they stay bound.
    public static let viableDrivers: Set<String> = ["vfio-pci", "pci-stub", "pcieport"]

    /// Every PCI function under `root`/bus/pci/devices, sorted by address; only those of
    /// `classCode` when given. Entries whose files cannot be read are left out.
    public static func scan(root: String = "/sys", classCode: UInt32? = nil) -> [PCIDevice] {
        var found: [PCIDevice] = []
        for name in listDirectory(root + "/bus/pci/devices") where isValidAddress(name) {
            guard let dev = device(name, root: root) else { continue }
            if let c = classCode, dev.classCode != c { continue }
            found.append(dev)
        }
        return found.sorted { $0.address < $1.address }
    }

    /// One device by address (any case; nil when it is not a PCI address or does not exist).
    public static func device(_ bdf: String, root: String = "/sys") -> PCIDevice? {
        guard let address = normalizedAddress(bdf) else { return nil }
        let dir = "\(root)/bus/pci/devices/\(address)"
        guard let vendor = readHex(dir + "/vendor"), vendor <= 0xFFFF,
              let device = readHex(dir + "/device"), device <= 0xFFFF,
              let cls = readHex(dir + "/class"), cls <= 0xFF_FFFF else { return nil }
        let driver = linkTarget(dir + "/driver").map(lastComponent)
        let group = linkTarget(dir + "/iommu_group").flatMap { Int(lastComponent($0)) }
        return PCIDevice(address: address, vendor: UInt16(vendor), device: UInt16(device),
                         classCode: UInt32(cls), driver: driver, iommuGroup: group)
    }

    /// The PCI devices of IOMMU group `group`: from `kernel/iommu_groups/N/devices` when
    /// sysfs has it, otherwise every device whose `iommu_group` link names the group.
    public static func groupMembers(_ group: Int, root: String = "/sys") -> [PCIDevice] {
        let listed = listDirectory("\(root)/kernel/iommu_groups/\(group)/devices")
        if !listed.isEmpty {
            return listed.compactMap { device($0, root: root) }.sorted { $0.address < $1.address }
        }
        return scan(root: root).filter { $0.iommuGroup == group }
    }

    /// True for "DDDD:BB:DD.F": domain 4 hex digits, bus 2, device 2 (at most 0x1f),
    /// function 1 (0–7); either case.
    public static func isValidAddress(_ s: String) -> Bool { normalizedAddress(s) != nil }

    /// The address in the kernel's spelling (lowercase), or nil when it is not one.
    public static func normalizedAddress(_ s: String) -> String? {
        let b = Array(s.utf8)
        guard b.count == 12, b[4] == UInt8(ascii: ":"), b[7] == UInt8(ascii: ":"), b[10] == UInt8(ascii: ".") else { return nil }
        for i in [0, 1, 2, 3, 5, 6, 8, 9, 11] where hexValue(b[i]) == nil { return nil }
        guard let d0 = hexValue(b[8]), let d1 = hexValue(b[9]), let f = hexValue(b[11]),
              d0 * 16 + d1 <= 0x1F, f <= 7 else { return nil }
        return s.lowercased()
    }

    /// The shell commands that hand `dev` to vfio-pci (as root): load the module when
    /// its driver directory is missing, unbind the current driver, set the override and
    /// let the kernel probe again. Joined with "; " so it pastes as one line.
    public static func bindHint(_ dev: PCIDevice, root: String = "/sys") -> String {
        var steps: [String] = []
        if !exists("\(root)/bus/pci/drivers/\(vfioDriver)") { steps.append("modprobe \(vfioDriver)") }
        let dir = "\(root)/bus/pci/devices/\(dev.address)"
        if dev.driver != nil { steps.append("echo \(dev.address) > \(dir)/driver/unbind") }
        steps.append("echo \(vfioDriver) > \(dir)/driver_override")
        steps.append("echo \(dev.address) > \(root)/bus/pci/drivers_probe")
        return steps.joined(separator: "; ")
    }

    // MARK: sysfs reading

    static func readHex(_ path: String) -> UInt64? {
        guard let text = readSmallFile(path, limit: 64) else { return nil }
        var t = Substring(text).trimmingCharacters()
        if t.hasPrefix("0x") || t.hasPrefix("0X") { t = t.dropFirst(2) }
        return t.isEmpty ? nil : UInt64(t, radix: 16)
    }

    /// The target of a symbolic link, nil when `path` is not one.
    static func linkTarget(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buf, buf.count - 1)
        if n <= 0 { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func lastComponent(_ path: String) -> String {
        String(path.split(separator: "/").last ?? Substring(path))
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Names in a directory (not "." and ".."); empty when it cannot be read.
    static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Zero-padded lowercase hex of `width` digits.
    static func hex<T: BinaryInteger>(_ v: T, _ width: Int) -> String {
        let s = String(v, radix: 16)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    private static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(c - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}


/// Checks and steps from a PCI address to an open `VFIODevice`, each failure saying what
/// to do about it.
public enum VFIOOpen {
    /// Everything sysfs can tell before any ioctl, in order: a valid address, a device
    /// with that address, bound to vfio-pci (else the commands to bind it), in an IOMMU
    /// group (else the boot option), and no other member of the group bound to a driver
    /// that makes it unusable (else which to unbind). Returns the group number.
    public static func check(_ bdf: String, root: String = "/sys") throws(SystemError) -> Int {
        guard let address = PCISysfs.normalizedAddress(bdf) else {
            throw SystemError("PCI address", errno: EINVAL,
                              message: "'\(bdf)' is not a PCI address: write it as DDDD:BB:DD.F, e.g. 0000:00:04.0 (see lspci -D)")
        }
        guard let dev = PCISysfs.device(address, root: root) else {
            throw SystemError("PCI device \(address)", errno: ENODEV,
                              message: "PCI device \(address) does not exist (no \(root)/bus/pci/devices/\(address)); list the NVMe controllers with lspci -D -d ::0108")
        }
        guard dev.driver == PCISysfs.vfioDriver else {
            let bound = dev.driver.map { "bound to \($0)" } ?? "bound to no driver"
            throw SystemError("PCI device \(address)", errno: ENXIO,
                              message: "PCI device \(address) is \(bound), not \(PCISysfs.vfioDriver); hand it over (as root, after stopping whatever uses it): \(PCISysfs.bindHint(dev, root: root))")
        }
        guard let group = dev.iommuGroup else {
            throw SystemError("PCI device \(address)", errno: ENODEV,
                              message: "PCI device \(address) has no IOMMU group: the kernel runs without an IOMMU; enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD)")
        }
        if let problem = groupProblem(group, of: address, root: root) { throw problem }
        return group
    }

    /// The error for a group some member of which keeps it from being viable, nil when
    /// sysfs shows none (the kernel's VFIO_GROUP_GET_STATUS has the last word).
    static func groupProblem(_ group: Int, of address: String, root: String) -> SystemError? {
        let blockers = PCISysfs.groupMembers(group, root: root).filter { member in
            member.address != address && member.driver.map { !PCISysfs.viableDrivers.contains($0) } == true
        }
        if blockers.isEmpty { return nil }
        return notViable(group, of: address, blockers: blockers, root: root)
    }

    static func notViable(_ group: Int, of address: String, blockers: [PCIDevice], root: String) -> SystemError {
        let names = blockers.map { "\($0.address) (driver \($0.driver ?? "none"))" }.joined(separator: ", ")
        let unbind = blockers.map { "echo \($0.address) > \(root)/bus/pci/devices/\($0.address)/driver/unbind" }
            .joined(separator: "; ")
        let what = blockers.isEmpty
            ? "a device of the group is still bound to a host driver (ls \(root)/kernel/iommu_groups/\(group)/devices)"
            : "the group also holds \(names); unbind \(blockers.count == 1 ? "it" : "them") or bind \(blockers.count == 1 ? "it" : "them") to vfio-pci too: \(unbind)"
        return SystemError("IOMMU group \(group)", errno: EBUSY,
                           message: "IOMMU group \(group) of PCI device \(address) is not viable: every device in the group must be bound to vfio-pci (bridges may keep pcieport) or to no driver; \(what)")
    }

    /// `check`, then the group (opened and attached to `container` once; a group already
    /// in the container is reused), the kernel's viability answer, and the device fd.
    public static func open(_ bdf: String, container: VFIOContainer, root: String = "/sys",
                            devRoot: String = "/dev/vfio") throws(SystemError) -> VFIODevice {
        let groupNumber = try check(bdf, root: root)
        let address = PCISysfs.normalizedAddress(bdf)!
        let group: VFIOGroup
        if let attached = container.group(groupNumber) {
            group = attached
        } else {
            group = try VFIOGroup(number: groupNumber, devRoot: devRoot)
            guard try group.viable else {
                // sysfs looked fine, the kernel disagrees: name every member on a driver
                // other than vfio-pci (an older kernel may not accept pcieport yet).
                let others = PCISysfs.groupMembers(groupNumber, root: root).filter { $0.address != address && $0.driver != nil }
                let strict = others.filter { !PCISysfs.viableDrivers.contains($0.driver!) }
                let blockers = strict.isEmpty ? others.filter { $0.driver != PCISysfs.vfioDriver } : strict
                throw notViable(groupNumber, of: address, blockers: blockers, root: root)
            }
            try container.attach(group: group)
        }
        return try VFIODevice(address: address, group: group, container: container)
    }
}
