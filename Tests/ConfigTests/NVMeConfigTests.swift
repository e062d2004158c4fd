import XCTest

@testable import Config

/// `[nvme]` and `[blk] device = SERIAL:nN`: defaults, every key, every bad value with its line.
final class NVMeConfigTests: XCTestCase {
    private let head = "[dataplane]\nsocket-dir = /run/s\n"

    private func parse(_ text: String) throws -> SluiceConfig {
        try SluiceConfig.parse(text: head + text, file: "t.ini")
    }

    private func errors(_ text: String) -> [String] {
        do throws(ConfigError) {
            _ = try SluiceConfig.parse(text: head + text, file: "t.ini")
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    /// One `[nvme]` with these lines (line 4 on), decoded.
    private func nvme(_ lines: String) throws -> NVMeConfig {
        try XCTUnwrap(parse("[nvme]\n" + lines).nvme)
    }

    // MARK: [nvme]

    func testNoSectionMeansNil() throws {
        XCTAssertNil(try parse("").nvme)
    }

    func testDefaults() throws {
        let c = try nvme("")
        XCTAssertEqual(c, NVMeConfig(line: 3))
        XCTAssertEqual(c.pci, .auto)
        XCTAssertTrue(c.sgl)
        XCTAssertEqual(c.interrupts, .msix)
        XCTAssertEqual(c.ioQueueDepth, 256)
        XCTAssertEqual(c.adminTimeoutMillis, 5000)
        XCTAssertEqual(c.ioTimeoutMillis, 30000)
        XCTAssertEqual([c.pciLine, c.sglLine, c.interruptsLine, c.ioQueueDepthLine, c.adminTimeoutLine, c.ioTimeoutLine],
                       [nil, nil, nil, nil, nil, nil])
    }

    func testEveryKey() throws {
        let c = try nvme("""
            pci = 0000:00:04.0, 0000:00:05.0
            sgl = off
            interrupts = intx
            io-queue-depth = 1000
            admin-timeout-ms = 750
            io-timeout-ms = 120000
            """)
        XCTAssertEqual(c.pci, .list(["0000:00:04.0", "0000:00:05.0"]))
        XCTAssertEqual(c.pci.description, "0000:00:04.0, 0000:00:05.0")
        XCTAssertFalse(c.sgl)
        XCTAssertEqual(c.interrupts, .intx)
        XCTAssertEqual(c.ioQueueDepth, 1000, "a power of two is not required")
        XCTAssertEqual(c.adminTimeoutMillis, 750)
        XCTAssertEqual(c.ioTimeoutMillis, 120000)
        XCTAssertEqual(c.line, 3)
        XCTAssertEqual([c.pciLine, c.sglLine, c.interruptsLine, c.ioQueueDepthLine, c.adminTimeoutLine, c.ioTimeoutLine],
                       [4, 5, 6, 7, 8, 9])
    }

    func testEachChoiceAndBound() throws {
        XCTAssertEqual(try nvme("pci = auto").pci, .auto)
        XCTAssertEqual(try nvme("pci = auto").pciLine, 4)
        XCTAssertTrue(try nvme("sgl = on").sgl)
        XCTAssertEqual(try nvme("interrupts = msix").interrupts, .msix)
        XCTAssertEqual(try nvme("interrupts = msi").interrupts, .msi)
        XCTAssertEqual(try nvme("io-queue-depth = 2").ioQueueDepth, 2)
        XCTAssertEqual(try nvme("io-queue-depth = 65536").ioQueueDepth, 65536)
        XCTAssertEqual(try nvme("admin-timeout-ms = 1").adminTimeoutMillis, 1)
        XCTAssertEqual(try nvme("io-timeout-ms = 600000").ioTimeoutMillis, 600000)
    }

    func testBadValuesNameTheirLines() {
        let e = errors("""
            [nvme]
            pci = 0000:00:04.0, 0000:00:4.0
            sgl = yes
            interrupts = MSI-X
            io-queue-depth = 1
            admin-timeout-ms = 0
            io-timeout-ms = 600001
            queue-depth = 8
            """)
        XCTAssertEqual(e, [
            "t.ini:4: bad PCI address '0000:00:4.0' in 'pci': use auto or addresses such as 0000:00:04.0 (DDDD:BB:DD.F, or BB:DD.F in domain 0000)",
            "t.ini:5: 'sgl' must be on or off, got 'yes'",
            "t.ini:6: 'interrupts' must be msix, msi or intx, got 'MSI-X'",
            "t.ini:7: 'io-queue-depth' must be in 2..65536, got 1",
            "t.ini:8: 'admin-timeout-ms' must be in 1..600000, got 0",
            "t.ini:9: 'io-timeout-ms' must be in 1..600000, got 600001",
            "t.ini:10: unknown key 'queue-depth' in [nvme]",
        ], e.joined(separator: "\n"))
        XCTAssertEqual(errors("[nvme]\nio-queue-depth = 65537\nio-timeout-ms = 5s"), [
            "t.ini:4: 'io-queue-depth' must be in 2..65536, got 65537",
            "t.ini:5: 'io-timeout-ms' must be a decimal number, got '5s'",
        ])
        XCTAssertEqual(errors("[nvme]\nsgl = true"), ["t.ini:4: 'sgl' must be on or off, got 'true'"])
        XCTAssertEqual(errors("[nvme]\nio-timout-ms = 10"), ["t.ini:4: unknown key 'io-timout-ms' in [nvme]; did you mean 'io-timeout-ms'?"])
    }

    func testOneSectionOnly() {
        XCTAssertEqual(errors("[nvme]\npci = auto\n[nvme]\nsgl = off"), ["t.ini:5: duplicate section [nvme] (first at line 3)"])
        XCTAssertEqual(errors("[nvme ctrl0]"), ["t.ini:3: section [nvme] takes no name, got 'ctrl0'"])
    }

    // MARK: pci lists

    func testPCIListSeparatorsAndShortForm() throws {
        let expected = NVMePCI.list(["0000:00:04.0", "0000:00:05.0", "0001:3a:1f.7"])
        for text in ["0000:00:04.0, 0000:00:05.0, 0001:3A:1F.7",
                     "0000:00:04.0,0000:00:05.0,0001:3a:1f.7",
                     "0000:00:04.0 0000:00:05.0\t0001:3a:1f.7",
                     "00:04.0 , 0000:00:05.0   0001:3a:1f.7",
                     "00:04.0, 00:05.0, 0001:3a:1f.7"] {
            XCTAssertEqual(try nvme("pci = \(text)").pci, expected, text)
        }
        XCTAssertEqual(try nvme("pci = 00:04.0").pci, .list(["0000:00:04.0"]))
    }

    func testPCIListErrors() {
        let cases: [(String, [String])] = [
            ("0000:00:04.0, 00:04.0", ["PCI address 0000:00:04.0 is listed twice in 'pci'"]),
            ("0000:00:04.0 0000:00:04.0", ["PCI address 0000:00:04.0 is listed twice in 'pci'"]),
            ("0000:00:04.0,, 0000:00:05.0", ["empty address in the list '0000:00:04.0,, 0000:00:05.0'"]),
            ("0000:00:04.0,", ["empty address in the list '0000:00:04.0,'"]),
            ("auto, 0000:00:04.0", ["'auto' must stand alone in 'pci', got 'auto, 0000:00:04.0'"]),
            ("0000:00:20.0", ["bad PCI address '0000:00:20.0' in 'pci'"]),
            ("0000:00:04.8", ["bad PCI address '0000:00:04.8' in 'pci'"]),
            ("00000:00:04.0", ["bad PCI address '00000:00:04.0' in 'pci'"]),
            ("0000-00-04.0", ["bad PCI address '0000-00-04.0' in 'pci'"]),
            ("0000:0g:04.0", ["bad PCI address '0000:0g:04.0' in 'pci'"]),
            ("04.0", ["bad PCI address '04.0' in 'pci'"]),
            ("nvme0", ["bad PCI address 'nvme0' in 'pci'"]),
            ("0000:00:04.0 x 00:05.0 00:05.0", ["bad PCI address 'x' in 'pci'", "PCI address 0000:00:05.0 is listed twice in 'pci'"]),
        ]
        for (value, messages) in cases {
            let e = errors("[nvme]\npci = \(value)")
            XCTAssertEqual(e.count, messages.count, "\(value): \(e)")
            for (error, message) in zip(e, messages) {
                XCTAssertTrue(error.hasPrefix("t.ini:4: " + message), "\(value): \(error)")
            }
        }
    }

    func testNormalizedPCIAddress() {
        XCTAssertEqual(NVMeConfig.normalizedPCIAddress("0000:00:04.0"), "0000:00:04.0")
        XCTAssertEqual(NVMeConfig.normalizedPCIAddress("00:04.0"), "0000:00:04.0")
        XCTAssertEqual(NVMeConfig.normalizedPCIAddress("ABCD:EF:1F.7"), "abcd:ef:1f.7")
        XCTAssertEqual(NVMeConfig.normalizedPCIAddress("0000:ff:00.0"), "0000:ff:00.0")
        for bad in ["", "0:0:0.0", "0000:00:04", "0000:00:04.", "0000:00:04.0 ", "0000:00:1g.0", "0000:00:04:0",
                    "0000:000:4.0", "0000.00:04.0", "éééé:00:04.0", "+000:00:04.0"] {
            XCTAssertNil(NVMeConfig.normalizedPCIAddress(bad), bad)
        }
    }

    // MARK: device = SERIAL:nN

    func testNamespaceDeviceForms() throws {
        let good: [(String, String, UInt32)] = [
            ("SN1234:n1", "SN1234", 1),
            ("a:n4294967294", "a", 0xFFFF_FFFE),
            ("S/N-12.34_x!~:n7", "S/N-12.34_x!~", 7),
            ("12345678901234567890:n2", "12345678901234567890", 2),
            ("nvme:n1", "nvme", 1),
            ("0FC63DAF:n3", "0FC63DAF", 3),
        ]
        for (text, serial, nsid) in good {
            let c = try parse("[blk b]\ndevice = \(text)\nsocket = b.sock")
            XCTAssertEqual(c.blks.first?.device, .namespace(serial: serial, nsid: nsid), text)
            XCTAssertEqual(c.blks.first?.device.description, text, "description gives the device back as written")
        }
        // A GUID followed by ':nN' is not a serial (36 characters), and not a GUID either.
        XCTAssertEqual(errors("[blk b]\ndevice = 0FC63DAF-8483-4772-8E79-3D69D8477DE4:n3\nsocket = b.sock").count, 1)
    }

    func testBadNamespaceDevices() {
        let forms = "use disk:NAME for a whole [disk], SERIAL:nN for namespace N of the NVMe controller with that serial (e.g. SN1234:n1), or a GPT partition GUID such as 0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        let serialRule = "an NVMe serial is 1 to 20 printable ASCII characters without spaces"
        let nsidRule = "the namespace after ':' is n1..n4294967294"
        let cases: [(String, String)] = [
            ("SN1234:n0", nsidRule),
            ("SN1234:n4294967295", nsidRule),
            ("SN1234:n99999999999999999999999", nsidRule),
            ("SN1234:n01", nsidRule),
            ("SN1234:1", nsidRule),
            ("SN1234:N1", nsidRule),
            ("SN1234:n", nsidRule),
            ("SN1234:", nsidRule),
            ("SN1234:n-1", nsidRule),
            ("SN1234:n1x", nsidRule),
            (":n1", serialRule),
            ("123456789012345678901:n1", serialRule),
            ("SN 1234:n1", serialRule),
            ("SNé:n1", serialRule),
            ("SN:1234:n1", "an NVMe namespace has one ':'"),
        ]
        for (value, reason) in cases {
            let e = errors("[blk b]\ndevice = \(value)\nsocket = b.sock")
            XCTAssertEqual(e, ["t.ini:4: bad 'device' '\(value)': \(reason); \(forms)"], value)
        }
        // Without a ':' the value is meant as a GUID: the message lists the forms only.
        XCTAssertEqual(errors("[blk b]\ndevice = SN1234\nsocket = b.sock"), ["t.ini:4: bad 'device' 'SN1234': \(forms)"])
        XCTAssertEqual(errors("[blk b]\nsocket = b.sock"),
                       ["t.ini:3: missing required key 'device' in [blk b] (disk:NAME, SERIAL:nN or a GPT partition GUID)"])
    }

    func testDiskPrefixWins() throws {
        let c = try parse("[disk n1]\nfile = /d.img\n[blk b]\ndevice = disk:n1\nsocket = b.sock")
        XCTAssertEqual(c.blks.first?.device, .disk("n1"))
        XCTAssertEqual(errors("[blk b]\ndevice = disk:n1\nsocket = b.sock"), ["t.ini:4: blk 'b': no [disk n1] section"])
    }

    func testNamespaceExportBesideDiskExports() throws {
        let c = try parse("""
            [nvme]
            pci = 00:04.0
            interrupts = msi
            [disk d0]
            file = /var/lib/d0.img
            [blk vda]
            device = disk:d0
            socket = vda.sock
            [blk vdb]
            device = SN1234:n1
            socket = vdb.sock
            read-only = true
            [blk vdc]
            device = 5b0e2b6c-8a43-4c57-9a37-0d5f1d4e6a01
            socket = vdc.sock
            [blk vdd]
            device = SN1234:n2
            socket = vdd.sock
            queues = 2
            """)
        XCTAssertEqual(c.nvme?.pci, .list(["0000:00:04.0"]))
        XCTAssertEqual(c.nvme?.interrupts, .msi)
        XCTAssertEqual(c.blks.map(\.device), [
            .disk("d0"), .namespace(serial: "SN1234", nsid: 1),
            .partition("5B0E2B6C-8A43-4C57-9A37-0D5F1D4E6A01"), .namespace(serial: "SN1234", nsid: 2),
        ])
        XCTAssertEqual(c.blks.map(\.deviceLine), [9, 12, 16, 19])
        XCTAssertEqual(c.blks.map(\.socket), ["/run/s/vda.sock", "/run/s/vdb.sock", "/run/s/vdc.sock", "/run/s/vdd.sock"])
        XCTAssertEqual(c.blks.map(\.readOnly), [false, true, false, false])
        XCTAssertEqual(c.blks.map(\.serial), ["vda", "vdb", "vdc", "vdd"], "the virtio serial is the section's, not the controller's")
        XCTAssertEqual(c.warnings, [])
    }

    func testNamespaceWithoutNVMeSection() throws {
        let c = try parse("[blk vdb]\ndevice = SN1234:n1\nsocket = vdb.sock")
        XCTAssertNil(c.nvme, "without [nvme] every controller bound to vfio-pci is used, with the defaults")
        XCTAssertEqual(c.blks.first?.device, .namespace(serial: "SN1234", nsid: 1))
    }

    func testNVMeExampleConfig() throws {
        let c = try SluiceConfig.load(path: Fixtures.examples.appendingPathComponent("nvme.ini").path)
        XCTAssertEqual(c.warnings, [])
        let nvme = try XCTUnwrap(c.nvme)
        XCTAssertEqual(nvme.pci, .list(["0000:00:04.0"]))
        XCTAssertEqual(c.blks.map(\.device.description), ["SN1234:n1", "5B0E2B6C-8A43-4C57-9A37-0D5F1D4E6A02"])
        XCTAssertEqual(c.blks.map(\.readOnly), [true, false])
    }
}
