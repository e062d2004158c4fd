import XCTest
import Foundation
import Glibc
@testable import Platform

/// A sysfs tree in a temporary directory, laid out as the kernel does it: the device
/// directory under `devices/`, `bus/pci/devices/BDF` a symlink to it, `driver` and
/// `iommu_group` relative symlinks, `kernel/iommu_groups/N/devices/BDF` links back.
final class FakeSysfs {
    let root: String

    init(_ test: XCTestCase) throws {
        root = NSTemporaryDirectory() + "sluice-sysfs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try mkdir("bus/pci/devices")
        try mkdir("bus/pci/drivers")
        let root = self.root
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: root) }
    }

    func mkdir(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: "\(root)/\(path)", withIntermediateDirectories: true)
    }

    func write(_ path: String, _ text: String) throws {
        try text.write(toFile: "\(root)/\(path)", atomically: false, encoding: .utf8)
    }

    func link(_ path: String, to target: String) throws {
        try FileManager.default.createSymbolicLink(atPath: "\(root)/\(path)", withDestinationPath: target)
    }

    /// One function; `groupList: false` leaves `kernel/iommu_groups/N/devices` without it.
    func add(_ bdf: String, vendor: String = "0x1b36", device: String = "0x0010", classCode: String = "0x010802",
             driver: String? = nil, group: Int? = nil, groupList: Bool = true) throws {
        let dir = "devices/pci0000:00/\(bdf)"
        try mkdir(dir)
        try write("\(dir)/vendor", vendor + "\n")
        try write("\(dir)/device", device + "\n")
        try write("\(dir)/class", classCode + "\n")
        try link("bus/pci/devices/\(bdf)", to: "../../../\(dir)")
        if let driver {
            try mkdir("bus/pci/drivers/\(driver)")
            try link("\(dir)/driver", to: "../../../bus/pci/drivers/\(driver)")
        }
        if let group {
            try mkdir("kernel/iommu_groups/\(group)/devices")
            try link("\(dir)/iommu_group", to: "../../../kernel/iommu_groups/\(group)")
            if groupList { try link("kernel/iommu_groups/\(group)/devices/\(bdf)", to: "../../../../\(dir)") }
        }
    }
}

final class PCISysfsTests: XCTestCase {
    private func message(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try body()
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch let e as SystemError {
            return e.description
        } catch {
            XCTFail("not a SystemError: \(error)", file: file, line: line)
            return ""
        }
    }

    func testScanReadsEveryDeviceAndFiltersByClass() throws {
        let sys = try FakeSysfs(self)
        try sys.add("0000:00:04.0", driver: "nvme", group: 1)
        try sys.add("0000:00:03.0", vendor: "0x1af4", device: "0x1000", classCode: "0x020000", driver: "virtio-pci", group: 0)
        try sys.add("0000:00:05.0", vendor: "0x8086", device: "0x5845", group: 2)
        try sys.mkdir("bus/pci/devices/not-a-device")  // ignored: not an address
        try sys.mkdir("devices/pci0000:00/0000:00:06.0")  // no class/vendor files: left out
        try sys.link("bus/pci/devices/0000:00:06.0", to: "../../../devices/pci0000:00/0000:00:06.0")

        let all = PCISysfs.scan(root: sys.root)
        XCTAssertEqual(all.map(\.address), ["0000:00:03.0", "0000:00:04.0", "0000:00:05.0"])
        XCTAssertEqual(all[1], PCIDevice(address: "0000:00:04.0", vendor: 0x1b36, device: 0x0010,
                                         classCode: 0x010802, driver: "nvme", iommuGroup: 1))
        XCTAssertEqual(all[0].driver, "virtio-pci")
        XCTAssertEqual(all[0].classCode, 0x020000)
        XCTAssertNil(all[2].driver)
        XCTAssertEqual(all[2].vendor, 0x8086)
        XCTAssertEqual(all[1].description, "0000:00:04.0 [1b36:0010] class 010802 driver nvme group 1")

        let nvme = PCISysfs.scan(root: sys.root, classCode: PCISysfs.nvmeClass)
        XCTAssertEqual(nvme.map(\.address), ["0000:00:04.0", "0000:00:05.0"])
        XCTAssertTrue(nvme.allSatisfy(\.isNVMe))
        XCTAssertEqual(PCISysfs.scan(root: sys.root + "/nowhere"), [])
    }

    func testScanOfThisHostReadsEveryFunction() throws {
        let listed = PCISysfs.listDirectory("/sys/bus/pci/devices").filter(PCISysfs.isValidAddress)
        guard !listed.isEmpty else { throw XCTSkip("this host shows no PCI devices in /sys/bus/pci/devices") }
        let found = PCISysfs.scan()
        XCTAssertEqual(found.map(\.address), listed.sorted(), "every function of the real sysfs parses")
        XCTAssertTrue(found.allSatisfy { $0.vendor != 0 && $0.vendor != 0xffff }, "\(found)")
    }

    func testDeviceLookupAcceptsEitherCase() throws {
        let sys = try FakeSysfs(self)
        try sys.add("0000:0a:1f.3", driver: "vfio-pci", group: 12)
        let dev = try XCTUnwrap(PCISysfs.device("0000:0A:1F.3", root: sys.root))
        XCTAssertEqual(dev.address, "0000:0a:1f.3")
        XCTAssertEqual(dev.iommuGroup, 12)
        XCTAssertEqual(dev.driver, "vfio-pci")
        XCTAssertNil(PCISysfs.device("0000:0a:1f.4", root: sys.root))
        XCTAssertNil(PCISysfs.device("../../etc", root: sys.root))
    }

    func testAddressValidation() {
        for good in ["0000:00:04.0", "0000:0a:1f.7", "FFFF:FF:1F.7", "0001:3b:00.1"] {
            XCTAssertTrue(PCISysfs.isValidAddress(good), good)
        }
        for bad in ["", "00:04.0", "0000:00:04", "0000:00:20.0", "0000:00:04.8", "0000:00:04.0 ", " 0000:00:04.0",
                    "0000-00:04.0", "g000:00:04.0", "0000:00:04.0\n", "0000:000:04.0", "0000:00:4.0", "0000:00:04:0"] {
            XCTAssertFalse(PCISysfs.isValidAddress(bad), "'\(bad)'")
        }
        XCTAssertEqual(PCISysfs.normalizedAddress("0000:0A:1F.7"), "0000:0a:1f.7")
        XCTAssertNil(PCISysfs.normalizedAddress("0000:0A:1F.9"))
    }

    func testBindHintIsTheExactShellText() throws {
        let sys = try FakeSysfs(self)
        try sys.add("0000:00:04.0", driver: "nvme", group: 1)
        try sys.add("0000:00:05.0", group: 2)
        let r = sys.root
        let bound = try XCTUnwrap(PCISysfs.device("0000:00:04.0", root: r))
        XCTAssertEqual(PCISysfs.bindHint(bound, root: r),
                       "modprobe vfio-pci; echo 0000:00:04.0 > \(r)/bus/pci/devices/0000:00:04.0/driver/unbind; "
                       + "echo vfio-pci > \(r)/bus/pci/devices/0000:00:04.0/driver_override; echo 0000:00:04.0 > \(r)/bus/pci/drivers_probe")

        try sys.mkdir("bus/pci/drivers/vfio-pci")  // module loaded: no modprobe
        XCTAssertEqual(PCISysfs.bindHint(bound, root: r),
                       "echo 0000:00:04.0 > \(r)/bus/pci/devices/0000:00:04.0/driver/unbind; "
                       + "echo vfio-pci > \(r)/bus/pci/devices/0000:00:04.0/driver_override; echo 0000:00:04.0 > \(r)/bus/pci/drivers_probe")

        let unbound = try XCTUnwrap(PCISysfs.device("0000:00:05.0", root: r))  // nothing to unbind
        XCTAssertEqual(PCISysfs.bindHint(unbound, root: r),
                       "echo vfio-pci > \(r)/bus/pci/devices/0000:00:05.0/driver_override; echo 0000:00:05.0 > \(r)/bus/pci/drivers_probe")
        XCTAssertEqual(PCISysfs.bindHint(unbound), "modprobe vfio-pci; echo vfio-pci > /sys/bus/pci/devices/0000:00:05.0/driver_override; echo 0000:00:05.0 > /sys/bus/pci/drivers_probe",
                       "the default root is /sys (and this host has no vfio-pci driver loaded)")
    }

    func testGroupMembersFromTheGroupListAndFromLinks() throws {
        let sys = try FakeSysfs(self)
        try sys.add("0000:01:00.1", classCode: "0x020000", driver: "e1000e", group: 3)
        try sys.add("0000:01:00.0", driver: "vfio-pci", group: 3)
        try sys.add("0000:00:04.0", driver: "nvme", group: 1)
        XCTAssertEqual(PCISysfs.groupMembers(3, root: sys.root).map(\.address), ["0000:01:00.0", "0000:01:00.1"])
        XCTAssertEqual(PCISysfs.groupMembers(1, root: sys.root).map(\.address), ["0000:00:04.0"])
        XCTAssertEqual(PCISysfs.groupMembers(9, root: sys.root), [])

        let links = try FakeSysfs(self)  // no kernel/iommu_groups/N/devices entries: found by scan
        try links.add("0000:01:00.1", driver: "e1000e", group: 3, groupList: false)
        try links.add("0000:01:00.0", driver: "vfio-pci", group: 3, groupList: false)
        try links.add("0000:02:00.0", driver: "vfio-pci", group: 4, groupList: false)
        XCTAssertEqual(PCISysfs.groupMembers(3, root: links.root).map(\.address), ["0000:01:00.0", "0000:01:00.1"])
    }

    func testCheckRefusesADeviceNotBoundToVFIO() throws {
        let sys = try FakeSysfs(self)
        try sys.add("0000:00:04.0", driver: "nvme", group: 1)
        try sys.add("0000:00:05.0", group: 2)
        let r = sys.root
        let nvme = message { _ = try VFIOOpen.check("0000:00:04.0", root: r) }
        XCTAssertTrue(nvme.hasPrefix("PCI device 0000:00:04.0 is bound to nvme, not vfio-pci; "), nvme)
        XCTAssertTrue(nvme.hasSuffix(PCISysfs.bindHint(PCISysfs.device("0000:00:04.0", root: r)!, root: r)), nvme)
        XCTAssertTrue(nvme.contains("echo 0000:00:04.0 > \(r)/bus/pci/devices/0000:00:04.0/driver/unbind"), nvme)

        let none = message { _ = try VFIOOpen.check("0000:00:05.0", root: r) }
        XCTAssertTrue(none.hasPrefix("PCI device 0000:00:05.0 is bound to no driver, not vfio-pci; "), none)
        XCTAssertFalse(none.contains("unbind"), none)
    }

    func testCheckRefusesADeviceWithoutIOMMUGroup() throws {
        let sys = try FakeSysfs(self)
        try sys.add("0000:00:04.0", driver: "vfio-pci", group: nil)
        let text = message { _ = try VFIOOpen.check("0000:00:04.0", root: sys.root) }
        XCTAssertTrue(text.hasPrefix("PCI device 0000:00:04.0 has no IOMMU group"), text)
        XCTAssertTrue(text.contains("intel_iommu=on") && text.contains("amd_iommu=on"), text)
    }

    func testCheckNamesTheGroupMembersThatKeepItFromBeingViable() throws {
        let sys = try FakeSysfs(self)
        try sys.add("0000:01:00.0", driver: "vfio-pci", group: 3)
        try sys.add("0000:01:00.1", classCode: "0x020000", driver: "e1000e", group: 3)
        try sys.add("0000:00:1c.0", classCode: "0x060400", driver: "pcieport", group: 3)  // allowed
        try sys.add("0000:01:00.2", classCode: "0x0c0330", group: 3)  // no driver: allowed
        try sys.add("0000:01:00.3", classCode: "0x0c0330", driver: "xhci_hcd", group: 3)
        var caught: SystemError?
        do { _ = try VFIOOpen.check("0000:01:00.0", root: sys.root) } catch { caught = error }
        let e = try XCTUnwrap(caught)
        XCTAssertEqual(e.errno, EBUSY)
        let text = e.description
        XCTAssertTrue(text.hasPrefix("IOMMU group 3 of PCI device 0000:01:00.0 is not viable"), text)
        XCTAssertTrue(text.contains("0000:01:00.1 (driver e1000e), 0000:01:00.3 (driver xhci_hcd)"), text)
        XCTAssertTrue(text.contains("echo 0000:01:00.1 > \(sys.root)/bus/pci/devices/0000:01:00.1/driver/unbind; "
                                    + "echo 0000:01:00.3 > \(sys.root)/bus/pci/devices/0000:01:00.3/driver/unbind"), text)
        XCTAssertFalse(text.contains("0000:00:1c.0") || text.contains("0000:01:00.2"), text)
    }

    func testCheckPassesAViableGroupAndRejectsBadAddresses() throws {
        let sys = try FakeSysfs(self)
        try sys.add("0000:00:04.0", driver: "vfio-pci", group: 1)
        try sys.add("0000:00:1c.0", classCode: "0x060400", driver: "pcieport", group: 1)
        XCTAssertEqual(try VFIOOpen.check("0000:00:04.0", root: sys.root), 1)
        XCTAssertEqual(try VFIOOpen.check("0000:00:04.0".uppercased(), root: sys.root), 1)

        let bad = message { _ = try VFIOOpen.check("00:04.0", root: sys.root) }
        XCTAssertTrue(bad.hasPrefix("'00:04.0' is not a PCI address: write it as DDDD:BB:DD.F"), bad)
        let missing = message { _ = try VFIOOpen.check("0000:00:09.0", root: sys.root) }
        XCTAssertTrue(missing.hasPrefix("PCI device 0000:00:09.0 does not exist"), missing)
    }

    func testMappingProblems() {
        // The ranges QEMU's default intel-iommu reported (docs/nvme-plan.md §1).
        let ranges: [ClosedRange<UInt64>] = [0...0xfedf_ffff, 0xfef0_0000...0x7f_ffff_ffff]
        func problem(_ host: UInt64, _ iova: UInt64, _ bytes: Int, _ r: [ClosedRange<UInt64>] = ranges) -> String? {
            VFIOContainer.mappingProblem(host: host, iova: iova, bytes: bytes, pageSize: 4096, ranges: r)
        }
        XCTAssertNil(problem(0x7f75_1515_1000, 0x4000_0000, 262_144))
        XCTAssertNil(problem(0x7f75_1515_1000, 0xfef0_0000, 4096))
        XCTAssertNil(problem(0x1000, 0x7f_ffff_f000, 4096))
        XCTAssertEqual(problem(0x1000, 0x4000_0000, 0), "the length must be positive")
        XCTAssertTrue(problem(0x1800, 0x4000_0000, 4096)?.contains("multiples of the IOMMU page (4096 bytes)") == true)
        XCTAssertNotNil(problem(0x1000, 0x4000_0800, 4096))
        XCTAssertNotNil(problem(0x1000, 0x4000_0000, 4097))
        let msi = problem(0x1000, 0xfed0_0000, 0x20_0000)  // runs into the MSI window
        XCTAssertTrue(msi?.contains("outside the IOMMU's usable ranges (0x0-0xfedfffff, 0xfef00000-0x7fffffffff)") == true, msi ?? "nil")
        XCTAssertNotNil(problem(0x7f75_1515_1000, 0x7f75_1515_1000, 4096), "a process address above 2^39 is no IOVA here")
        XCTAssertNil(problem(0x7f75_1515_1000, 0x7f75_1515_1000, 4096, []), "no ranges reported: not checked")
        XCTAssertEqual(problem(0x1000, 0xffff_ffff_ffff_f000, 8192, []), "the IOVA range wraps around 2^64")
    }

    // Real VFIO ioctls need a device bound to vfio-pci; these cover the failures that
    // happen before any such device is involved.

    func testContainerOpensOrSaysWhatIsMissing() throws {
        if access("/dev/vfio/vfio", F_OK) != 0 {
            let text = message { _ = try VFIOContainer() }
            XCTAssertEqual(text, "VFIO container: /dev/vfio/vfio does not exist: the VFIO modules are not loaded (modprobe vfio-pci vfio_iommu_type1)")
            return
        }
        do {
            let c = try VFIOContainer()
            XCTAssertEqual(c.attachedGroups, [])
            XCTAssertEqual(c.iovaRanges, [], "ranges come with the first group")
        } catch {
            XCTAssertTrue("\(error)".contains("VFIO container"), "\(error)")
        }
    }

    func testContainerRefusesAFileThatIsNotOne() throws {
        let text = message { _ = try VFIOContainer(path: "/dev/null") }
        XCTAssertTrue(text.hasPrefix("VFIO container: VFIO_GET_API_VERSION failed ("), text)
        XCTAssertTrue(text.hasSuffix("/dev/null is not a VFIO container device"), text)
    }

    func testGroupOpenErrorsNameTheGroup() throws {
        let sys = try FakeSysfs(self)
        let missing = message { _ = try VFIOGroup(number: 7, devRoot: sys.root) }
        XCTAssertEqual(missing, "IOMMU group 7: \(sys.root)/7 does not exist: no device of the group is bound to vfio-pci yet (or vfio-pci is not loaded); bind the device first")
        try sys.write("8", "")
        let group = try VFIOGroup(number: 8, devRoot: sys.root)
        let status = message { _ = try group.viable }
        XCTAssertTrue(status.hasPrefix("IOMMU group 8: VFIO_GROUP_GET_STATUS on \(sys.root)/8 failed"), status)
    }
}
