import XCTest

@testable import NVMe

/// The admin path against the software controller: enable, Identify, queue count,
/// errors, timeouts, fatal status, shutdown.
final class NVMeControllerTests: XCTestCase {
    private func make(_ soft: SoftController, _ dma: HostDMA) -> NVMeController {
        NVMeController(bar: soft.bar, dma: dma, idle: { soft.step() })
    }

    func testCapabilitiesAreDecoded() {
        let soft = SoftController(timeoutUnits: 15, doorbellStrideShift: 1)
        let c = NVMeCapabilities(soft.reg64(0))
        XCTAssertEqual(c.maxQueueEntries, 2048)
        XCTAssertEqual(c.timeoutMillis, 7500)
        XCTAssertEqual(c.doorbellStride, 8)
        XCTAssertTrue(c.supportsNVM)
        XCTAssertEqual(c.minPageSize, 4096)
        XCTAssertEqual(c.maxPageSize, 65536)
    }

    func testBringUpIdentifyAndQueues() throws {
        let soft = SoftController(doorbellStrideShift: 1)
        let dma = HostDMA()
        let ctrl = make(soft, dma)
        try ctrl.enable()
        let id = try ctrl.identifyController()
        XCTAssertEqual(id.serial, "SN1234")
        XCTAssertEqual(id.model, "Sluice soft NVMe")
        XCTAssertEqual(id.mdts, 5)
        XCTAssertEqual(id.namespaceCount, 2)
        XCTAssertTrue(id.supportsDSM && id.supportsWriteZeroes && id.supportsSGL)
        XCTAssertEqual(try ctrl.activeNamespaces(), [1, 2])
        XCTAssertEqual(try ctrl.identifyNamespace(1), NVMeNamespaceIdentity(blocksForTest: 131072, blockSize: 512))
        XCTAssertEqual(try ctrl.identifyNamespace(2), NVMeNamespaceIdentity(blocksForTest: 8192, blockSize: 4096))
        soft.grantedQueues = 3
        XCTAssertEqual(try ctrl.requestQueues(4), 3, "the controller may grant fewer queues than asked")
        XCTAssertEqual(try ctrl.requestQueues(2), 2)
        try ctrl.shutdown()
        XCTAssertEqual(dma.live, 2, "only the admin queues stay allocated")
    }

    func testTheAdminQueueWrapsItsPhase() throws {
        let soft = SoftController()
        let ctrl = make(soft, HostDMA())
        try ctrl.enable()
        for _ in 0..<(3 * NVMeController.adminEntries + 5) { _ = try ctrl.activeNamespaces() }
        XCTAssertEqual(ctrl.adminCommands, 3 * NVMeController.adminEntries + 5)
    }

    func testErrorsNameTheCommand() throws {
        let soft = SoftController()
        let ctrl = make(soft, HostDMA())
        try ctrl.enable()
        XCTAssertThrowsError(try ctrl.identifyNamespace(9)) { e in
            XCTAssertEqual("\(e)", "admin command 0x6 failed: status type 0, code 0xb")
        }
        soft.failOpcode = NVMeAdminOpcode.setFeatures
        XCTAssertThrowsError(try ctrl.requestQueues(2))
        soft.failOpcode = nil
        XCTAssertEqual(try ctrl.requestQueues(2), 2, "the admin queue still works after errors")
    }

    func testALostCompletionTimesOutAndTheQueueGoesOn() throws {
        let soft = SoftController()
        let ctrl = make(soft, HostDMA())
        ctrl.adminTimeoutMillis = 100
        try ctrl.enable()
        soft.dropNextAdmin = true
        XCTAssertThrowsError(try ctrl.identifyController()) { e in
            XCTAssertTrue("\(e)".contains("no completion within"), "\(e)")
        }
        XCTAssertEqual(ctrl.adminTimeouts, 1)
        XCTAssertEqual(try ctrl.identifyController().serial, "SN1234")
    }

    func testNotReadyAndFatalStatusAreErrors() {
        let slow = SoftController(timeoutUnits: 1)
        slow.neverReady = true
        XCTAssertThrowsError(try make(slow, HostDMA()).enable()) { e in
            XCTAssertEqual("\(e)", "controller not ready within CAP.TO (500 ms) after CC.EN = 1")
        }
        let broken = SoftController()
        broken.fatalOnEnable = true
        XCTAssertThrowsError(try make(broken, HostDMA()).enable()) { e in
            XCTAssertEqual("\(e)", "controller reports a fatal status (CSTS.CFS) while enabling")
        }
    }

    func testIdentifyParsersRefuseBadData() {
        XCTAssertNil(NVMeControllerIdentity([UInt8](repeating: 0, count: 100)))
        var ns = [UInt8](repeating: 0, count: 4096)
        ns[26] = 3                       // format 3 of 1
        XCTAssertNil(NVMeNamespaceIdentity(ns))
        ns[26] = 0
        ns[130] = 7                      // 128-byte blocks: not a block device format
        XCTAssertNil(NVMeNamespaceIdentity(ns))
    }
}

extension NVMeNamespaceIdentity {
    init(blocksForTest blocks: UInt64, blockSize: Int) {
        var d = [UInt8](repeating: 0, count: 4096)
        for i in 0..<8 { d[i] = UInt8(truncatingIfNeeded: blocks >> (8 * UInt64(i))) }
        d[130] = UInt8(blockSize.trailingZeroBitCount)
        self = NVMeNamespaceIdentity(d)!
    }
}

final class NVMeLayoutTests: XCTestCase {
    /// The queue entries are read and written by the device: their Swift layout must be the spec's.
    func testQueueEntryLayout() {
        XCTAssertEqual(MemoryLayout<NVMeCommand>.size, 64)
        XCTAssertEqual(MemoryLayout<NVMeCommand>.offset(of: \.nsid), 4)
        XCTAssertEqual(MemoryLayout<NVMeCommand>.offset(of: \.mptr), 16)
        XCTAssertEqual(MemoryLayout<NVMeCommand>.offset(of: \.prp1), 24)
        XCTAssertEqual(MemoryLayout<NVMeCommand>.offset(of: \.prp2), 32)
        XCTAssertEqual(MemoryLayout<NVMeCommand>.offset(of: \.cdw10), 40)
        XCTAssertEqual(MemoryLayout<NVMeCommand>.offset(of: \.cdw15), 60)
        XCTAssertEqual(MemoryLayout<NVMeCompletion>.size, 16)
        XCTAssertEqual(MemoryLayout<NVMeCompletion>.offset(of: \.sqHead), 8)
        XCTAssertEqual(MemoryLayout<NVMeCompletion>.offset(of: \.cid), 12)
        XCTAssertEqual(MemoryLayout<NVMeCompletion>.offset(of: \.statusPhase), 14)
    }

    func testCommandBuilders() {
        let cq = NVMeCommand.createCQ(id: 3, entries: 256, base: 0x1000, vector: 2)
        XCTAssertEqual(cq.opcode, NVMeAdminOpcode.createCQ)
        XCTAssertEqual(cq.cdw10, 3 | 255 << 16)
        XCTAssertEqual(cq.cdw11, 1 | 2 | 2 << 16)
        XCTAssertEqual(NVMeCommand.createCQ(id: 1, entries: 2, base: 0, vector: nil).cdw11, 1)
        let sq = NVMeCommand.createSQ(id: 3, entries: 256, base: 0x2000, cq: 3)
        XCTAssertEqual(sq.cdw11, 1 | 3 << 16)
        var c = NVMeCommand.setNumberOfQueues(4)
        XCTAssertEqual(c.cdw11, 3 | 3 << 16)
        c.cid = 0xBEEF
        XCTAssertEqual(c.cid, 0xBEEF)
        XCTAssertEqual(c.opcode, NVMeAdminOpcode.setFeatures)
    }
}
