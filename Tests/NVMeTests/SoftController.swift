import NVMe

/// A software NVMe controller for the tests: its registers are plain memory the driver
/// reads and writes with the same MMIO accessors as a real BAR; `step()` (the driver's
/// idle hook) plays the device: CC.EN → CSTS.RDY, admin doorbell → commands executed and
/// completions posted with the phase tag, CC.SHN → shutdown complete. IOVA = host address.
final class SoftController {
    let bar = UnsafeMutableRawPointer.allocate(byteCount: 0x2000, alignment: 4096)
    var serial = "SN1234"
    var model = "Sluice soft NVMe"
    var mdts: UInt8 = 5
    /// Namespaces: id → (blocks, block size shift).
    var namespaces: [UInt32: (blocks: UInt64, lbads: UInt8)] = [1: (131072, 9), 2: (8192, 12)]
    var grantedQueues = 64
    /// Knobs.
    var neverReady = false
    var fatalOnEnable = false
    var dropNextAdmin = false
    var failOpcode: UInt8? = nil
    var maxQueueEntries = 2048

    private var enabled = false
    private var sqHead = 0, cqTail = 0
    private var phase = true
    private(set) var executed: [UInt8] = []

    init(timeoutUnits: UInt64 = 2, doorbellStrideShift: UInt64 = 0) {
        bar.initializeMemory(as: UInt8.self, repeating: 0, count: 0x2000)
        // CAP: MQES, CQR, TO, DSTRD, CSS = NVM, MPSMIN = 0, MPSMAX = 4.
        let cap = UInt64(maxQueueEntries - 1) | 1 << 16 | timeoutUnits << 24 | doorbellStrideShift << 32 | 1 << 37 | 4 << 52
        bar.storeBytes(of: cap, as: UInt64.self)
        bar.storeBytes(of: UInt32(0x0002_0000), toByteOffset: NVMeRegister.vs, as: UInt32.self)
    }

    deinit { bar.deallocate() }

    func reg32(_ o: Int) -> UInt32 { bar.load(fromByteOffset: o, as: UInt32.self) }
    func setReg32(_ o: Int, _ v: UInt32) { bar.storeBytes(of: v, toByteOffset: o, as: UInt32.self) }
    func reg64(_ o: Int) -> UInt64 { bar.load(fromByteOffset: o, as: UInt64.self) }
    var stride: Int { 4 << Int((reg64(0) >> 32) & 0xF) }

    func step() {
        let cc = reg32(NVMeRegister.cc)
        if cc & 1 != 0 && !enabled {
            if fatalOnEnable { setReg32(NVMeRegister.csts, NVMeCSTS.fatal); return }
            if neverReady { return }
            enabled = true
            sqHead = 0; cqTail = 0; phase = true
            setReg32(NVMeRegister.csts, NVMeCSTS.ready)
        } else if cc & 1 == 0 && enabled {
            enabled = false
            setReg32(NVMeRegister.csts, 0)
        }
        if cc & NVMeCC.shutdownMask != 0 {
            setReg32(NVMeRegister.csts, reg32(NVMeRegister.csts) & ~NVMeCSTS.shutdownMask | NVMeCSTS.shutdownComplete)
        }
        guard enabled else { return }
        let aqa = reg32(NVMeRegister.aqa)
        let sqEntries = Int(aqa & 0xFFF) + 1, cqEntries = Int((aqa >> 16) & 0xFFF) + 1
        let asq = UnsafeMutableRawPointer(bitPattern: UInt(reg64(NVMeRegister.asq)))!
        let acq = UnsafeMutableRawPointer(bitPattern: UInt(reg64(NVMeRegister.acq)))!
        let tail = Int(reg32(NVMeRegister.doorbells))
        while sqHead != tail % sqEntries {
            let c = (asq + sqHead * 64).load(as: NVMeCommand.self)
            sqHead = (sqHead + 1) % sqEntries
            executed.append(c.opcode)
            if dropNextAdmin { dropNextAdmin = false; continue }
            var e = NVMeCompletion()
            e.cid = c.cid
            e.sqHead = UInt16(sqHead)
            let status = c.opcode == failOpcode ? UInt16(0x0002) : execute(c, &e)   // 0x02: invalid field
            e.statusPhase = status << 1 | (phase ? 1 : 0)
            (acq + cqTail * 16).storeBytes(of: e, as: NVMeCompletion.self)
            cqTail += 1
            if cqTail == cqEntries { cqTail = 0; phase.toggle() }
        }
    }

    private func execute(_ c: NVMeCommand, _ e: inout NVMeCompletion) -> UInt16 {
        switch c.opcode {
        case NVMeAdminOpcode.identify:
            let buf = UnsafeMutableRawPointer(bitPattern: UInt(c.prp1))!
            buf.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            switch c.cdw10 & 0xFF {
            case NVMeIdentifyCNS.controller:
                buf.storeBytes(of: UInt16(0x1b36), as: UInt16.self)
                for (i, b) in (serial.utf8 + Array(repeating: 0x20, count: 20)).prefix(20).enumerated() { buf.storeBytes(of: b, toByteOffset: 4 + i, as: UInt8.self) }
                for (i, b) in (model.utf8 + Array(repeating: 0x20, count: 40)).prefix(40).enumerated() { buf.storeBytes(of: b, toByteOffset: 24 + i, as: UInt8.self) }
                buf.storeBytes(of: mdts, toByteOffset: 77, as: UInt8.self)
                buf.storeBytes(of: UInt32(namespaces.keys.max() ?? 0), toByteOffset: 516, as: UInt32.self)
                buf.storeBytes(of: UInt16(0x000C), toByteOffset: 520, as: UInt16.self)
                buf.storeBytes(of: UInt32(1), toByteOffset: 536, as: UInt32.self)
            case NVMeIdentifyCNS.activeNamespaces:
                for (i, id) in namespaces.keys.sorted().filter({ $0 > c.nsid }).enumerated() {
                    buf.storeBytes(of: id, toByteOffset: 4 * i, as: UInt32.self)
                }
            case NVMeIdentifyCNS.namespace:
                guard let ns = namespaces[c.nsid] else { return 0x000B }   // invalid namespace
                buf.storeBytes(of: ns.blocks, as: UInt64.self)
                buf.storeBytes(of: ns.blocks, toByteOffset: 8, as: UInt64.self)
                buf.storeBytes(of: UInt8(0), toByteOffset: 25, as: UInt8.self)
                buf.storeBytes(of: UInt8(0), toByteOffset: 26, as: UInt8.self)
                buf.storeBytes(of: ns.lbads, toByteOffset: 128 + 2, as: UInt8.self)
            default:
                return 0x0002
            }
        case NVMeAdminOpcode.setFeatures:
            guard c.cdw10 & 0xFF == NVMeFeature.numberOfQueues else { return 0x0002 }
            let asked = Int(c.cdw11 & 0xFFFF) + 1
            let n = UInt32(min(asked, grantedQueues) - 1)
            e.dw0 = n | n << 16
        default:
            return 0x0001   // invalid opcode
        }
        return 0
    }
}

/// DMA for the software controller: page-aligned host memory, IOVA = its address.
final class HostDMA: DMAAllocator {
    private(set) var live = 0
    func allocate(bytes: Int) throws(NVMeError) -> DMABuffer {
        let n = (bytes + 4095) & ~4095
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 4096)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: n)
        live += 1
        return DMABuffer(host: p, iova: UInt64(UInt(bitPattern: p)), bytes: n)
    }
    func free(_ buffer: DMABuffer) {
        live -= 1
        buffer.host.deallocate()
    }
}
