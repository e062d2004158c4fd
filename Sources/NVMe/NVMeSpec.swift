/// NVMe over PCIe as the driver sees it (NVMe base specification 2.0): controller
/// registers, the 64-byte submission and 16-byte completion entries, admin and NVM
/// opcodes, and the Identify structures the driver reads. Plain values, little-endian
/// on the wire (x86 and arm64 hosts are little-endian).
public enum NVMeRegister {
    public static let cap = 0x00      // 64: controller capabilities
    public static let vs = 0x08       // 32: version
    public static let intms = 0x0C
    public static let intmc = 0x10
    public static let cc = 0x14       // 32: controller configuration
    public static let csts = 0x1C     // 32: controller status
    public static let aqa = 0x24      // 32: admin queue attributes
    public static let asq = 0x28      // 64: admin submission queue base
    public static let acq = 0x30      // 64: admin completion queue base
    public static let doorbells = 0x1000
}

/// CAP fields.
public struct NVMeCapabilities: Equatable, Sendable {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
    /// Largest queue the controller takes, in entries (MQES + 1).
    public var maxQueueEntries: Int { Int(raw & 0xFFFF) + 1 }
    /// Worst-case time to become ready after CC.EN changes, in milliseconds (TO × 500 ms).
    public var timeoutMillis: Int { Int((raw >> 24) & 0xFF) * 500 }
    /// Doorbell stride in bytes (4 << DSTRD).
    public var doorbellStride: Int { 4 << Int((raw >> 32) & 0xF) }
    /// NVM command set supported (CSS bit 0).
    public var supportsNVM: Bool { (raw >> 37) & 1 != 0 }
    /// Smallest memory page size, bytes (2 ^ (12 + MPSMIN)).
    public var minPageSize: Int { 1 << (12 + Int((raw >> 48) & 0xF)) }
    public var maxPageSize: Int { 1 << (12 + Int((raw >> 52) & 0xF)) }
}

public enum NVMeCC {
    public static let enable: UInt32 = 1
    /// NVM command set, 4 KiB pages, round robin, 64-byte SQEs, 16-byte CQEs.
    public static func configuration(pageShift: Int = 12) -> UInt32 {
        UInt32(pageShift - 12) << 7 | 6 << 16 | 4 << 20
    }
    /// Normal shutdown notification (SHN = 01b).
    public static let shutdownNormal: UInt32 = 1 << 14
    public static let shutdownMask: UInt32 = 3 << 14
}

public enum NVMeCSTS {
    public static let ready: UInt32 = 1
    public static let fatal: UInt32 = 1 << 1
    public static let shutdownComplete: UInt32 = 2 << 2
    public static let shutdownMask: UInt32 = 3 << 2
}

public enum NVMeAdminOpcode {
    public static let deleteSQ: UInt8 = 0x00
    public static let createSQ: UInt8 = 0x01
    public static let getLogPage: UInt8 = 0x02
    public static let deleteCQ: UInt8 = 0x04
    public static let createCQ: UInt8 = 0x05
    public static let identify: UInt8 = 0x06
    public static let abort: UInt8 = 0x08
    public static let setFeatures: UInt8 = 0x09
    public static let getFeatures: UInt8 = 0x0A
    public static let doorbellBufferConfig: UInt8 = 0x7C
}

public enum NVMeIOOpcode {
    public static let flush: UInt8 = 0x00
    public static let write: UInt8 = 0x01
    public static let read: UInt8 = 0x02
    public static let writeZeroes: UInt8 = 0x08
    public static let datasetManagement: UInt8 = 0x09
}

public enum NVMeIdentifyCNS {
    public static let namespace: UInt32 = 0x00
    public static let controller: UInt32 = 0x01
    public static let activeNamespaces: UInt32 = 0x02
}

public enum NVMeFeature {
    public static let numberOfQueues: UInt32 = 0x07
}

/// A submission queue entry (64 bytes).
@frozen
public struct NVMeCommand: BitwiseCopyable, Equatable, Sendable {
    public var cdw0: UInt32 = 0          // opcode 7:0, fuse 9:8, psdt 15:14, cid 31:16
    public var nsid: UInt32 = 0
    public var cdw2: UInt32 = 0
    public var cdw3: UInt32 = 0
    public var mptr: UInt64 = 0
    public var prp1: UInt64 = 0          // or the first half of an SGL descriptor
    public var prp2: UInt64 = 0
    public var cdw10: UInt32 = 0
    public var cdw11: UInt32 = 0
    public var cdw12: UInt32 = 0
    public var cdw13: UInt32 = 0
    public var cdw14: UInt32 = 0
    public var cdw15: UInt32 = 0

    public init() {}

    public init(opcode: UInt8, nsid: UInt32 = 0) {
        cdw0 = UInt32(opcode)
        self.nsid = nsid
    }

    public var opcode: UInt8 { UInt8(truncatingIfNeeded: cdw0) }
    public var cid: UInt16 {
        get { UInt16(truncatingIfNeeded: cdw0 >> 16) }
        set { cdw0 = cdw0 & 0xFFFF | UInt32(newValue) << 16 }
    }

    public static func identify(cns: UInt32, nsid: UInt32 = 0, buffer iova: UInt64) -> NVMeCommand {
        var c = NVMeCommand(opcode: NVMeAdminOpcode.identify, nsid: nsid)
        c.prp1 = iova
        c.cdw10 = cns
        return c
    }

    /// Ask for `count` I/O submission and completion queues (the answer may differ).
    public static func setNumberOfQueues(_ count: Int) -> NVMeCommand {
        var c = NVMeCommand(opcode: NVMeAdminOpcode.setFeatures)
        c.cdw10 = NVMeFeature.numberOfQueues
        let n = UInt32(count - 1) & 0xFFFF
        c.cdw11 = n | n << 16
        return c
    }

    /// A physically contiguous completion queue; `vector` nil = no interrupts.
    public static func createCQ(id: UInt16, entries: Int, base iova: UInt64, vector: UInt16?) -> NVMeCommand {
        var c = NVMeCommand(opcode: NVMeAdminOpcode.createCQ)
        c.prp1 = iova
        c.cdw10 = UInt32(id) | UInt32(entries - 1) << 16
        c.cdw11 = 1 | (vector == nil ? 0 : 2 | UInt32(vector!) << 16)
        return c
    }

    public static func createSQ(id: UInt16, entries: Int, base iova: UInt64, cq: UInt16) -> NVMeCommand {
        var c = NVMeCommand(opcode: NVMeAdminOpcode.createSQ)
        c.prp1 = iova
        c.cdw10 = UInt32(id) | UInt32(entries - 1) << 16
        c.cdw11 = 1 | UInt32(cq) << 16
        return c
    }

    public static func deleteQueue(sq: Bool, id: UInt16) -> NVMeCommand {
        var c = NVMeCommand(opcode: sq ? NVMeAdminOpcode.deleteSQ : NVMeAdminOpcode.deleteCQ)
        c.cdw10 = UInt32(id)
        return c
    }

    /// Abort command `cid` of submission queue `sqid` (best effort: DW0 bit 0 = 1 means
    /// the controller did not abort it).
    public static func abort(sqid: UInt16, cid: UInt16) -> NVMeCommand {
        var c = NVMeCommand(opcode: NVMeAdminOpcode.abort)
        c.cdw10 = UInt32(sqid) | UInt32(cid) << 16
        return c
    }

    /// Doorbell Buffer Config: the shadow doorbell page and the EventIdx page (both 4 KiB aligned).
    public static func doorbellBufferConfig(shadow: UInt64, eventIndex: UInt64) -> NVMeCommand {
        var c = NVMeCommand(opcode: NVMeAdminOpcode.doorbellBufferConfig)
        c.prp1 = shadow
        c.prp2 = eventIndex
        return c
    }

    /// Read, Write or Write Zeroes of `blocks` logical blocks at `lba` (data pointers
    /// are filled in separately).
    @inlinable
    public static func blocks(_ opcode: UInt8, nsid: UInt32, lba: UInt64, blocks: Int) -> NVMeCommand {
        var c = NVMeCommand(opcode: opcode, nsid: nsid)
        c.cdw10 = UInt32(truncatingIfNeeded: lba)
        c.cdw11 = UInt32(truncatingIfNeeded: lba >> 32)
        c.cdw12 = UInt32(truncatingIfNeeded: blocks &- 1) & 0xFFFF
        return c
    }

    /// PSDT = 01: the data pointer is an SGL descriptor (SGL1), lists contiguous.
    public static let psdtSGL: UInt32 = 1 << 14
    /// Write Zeroes CDW12 bit 25: deallocate the blocks.
    public static let writeZeroesDeallocate: UInt32 = 1 << 25
    /// Dataset Management CDW11 bit 2: deallocate the ranges.
    public static let dsmDeallocate: UInt32 = 1 << 2
}

/// SGL descriptor types (byte 15, bits 7:4; subtype 0).
public enum NVMeSGL {
    public static let dataBlock: UInt64 = 0x0
    public static let segment: UInt64 = 0x2
    public static let lastSegment: UInt64 = 0x3
    public static let descriptorBytes = 16
    /// The second quadword of a descriptor: length (bytes 8–11) and type (byte 15).
    @inlinable
    public static func lengthAndType(_ length: Int, _ type: UInt64) -> UInt64 {
        UInt64(truncatingIfNeeded: UInt32(truncatingIfNeeded: length)) | type << 60
    }
}

/// Completion status values (SCT << 8 | SC) the driver and the tests name.
public enum NVMeStatus {
    public static let success: UInt16 = 0
    public static let invalidOpcode: UInt16 = 0x001
    public static let invalidField: UInt16 = 0x002
    public static let dataTransferError: UInt16 = 0x004
    public static let abortRequested: UInt16 = 0x007
    public static let invalidNamespace: UInt16 = 0x00B
    public static let sglLengthInvalid: UInt16 = 0x00F
    public static let sglTypeInvalid: UInt16 = 0x011
    public static let prpOffsetInvalid: UInt16 = 0x013
    public static let lbaOutOfRange: UInt16 = 0x080
    public static let invalidQueueSize: UInt16 = 0x102
    public static let invalidQueueID: UInt16 = 0x101
    public static let invalidCQ: UInt16 = 0x100
    /// SCT 2 (media errors), unrecovered read error.
    public static let unrecoveredRead: UInt16 = 0x281
}

/// A completion queue entry (16 bytes).
@frozen
public struct NVMeCompletion: BitwiseCopyable, Equatable, Sendable {
    public var dw0: UInt32 = 0
    public var dw1: UInt32 = 0
    public var sqHead: UInt16 = 0
    public var sqID: UInt16 = 0
    public var cid: UInt16 = 0
    /// Phase tag (bit 0) and status field (bits 15:1).
    public var statusPhase: UInt16 = 0

    public init() {}

    public var phase: Bool { statusPhase & 1 != 0 }
    /// Status code type and code (SCT << 8 | SC); 0 = success.
    public var status: UInt16 { (statusPhase >> 1) & 0x7FF }
    public var doNotRetry: Bool { statusPhase & 0x8000 != 0 }
}

/// What Identify Controller says that the driver uses.
public struct NVMeControllerIdentity: Equatable, Sendable {
    public var vendor: UInt16
    public var serial: String
    public var model: String
    public var firmware: String
    /// Largest transfer in pages of CAP.MPSMIN (0 = no limit).
    public var mdts: UInt8
    public var namespaceCount: UInt32
    /// SGLs supported for NVM commands (SGLS bits 1:0 non-zero).
    public var supportsSGL: Bool
    /// ONCS: Dataset Management (bit 2), Write Zeroes (bit 3).
    public var supportsDSM: Bool
    public var supportsWriteZeroes: Bool
    /// SGLS bits 1:0 = 10: SGL addresses and lengths must be dword aligned.
    public var sglDwordAligned: Bool
    /// OACS bit 8: Doorbell Buffer Config (shadow doorbells).
    public var supportsDoorbellBuffer: Bool
    /// Aborts the controller takes at once (ACL + 1).
    public var abortLimit: Int
    /// VWC bit 0: a volatile write cache exists (Flush does something).
    public var volatileWriteCache: Bool

    /// Parse a 4096-byte Identify Controller structure.
    public init?(_ data: [UInt8]) {
        guard data.count >= 4096 else { return nil }
        func u16(_ o: Int) -> UInt16 { UInt16(data[o]) | UInt16(data[o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
        func text(_ r: Range<Int>) -> String {
            String(decoding: data[r].map { $0 >= 0x20 && $0 < 0x7F ? $0 : 0x20 }, as: UTF8.self)
                .trimmingTrailingSpaces()
        }
        vendor = u16(0)
        serial = text(4..<24)
        model = text(24..<64)
        firmware = text(64..<72)
        mdts = data[77]
        namespaceCount = u32(516)
        let oncs = u16(520)
        supportsDSM = oncs & 4 != 0
        supportsWriteZeroes = oncs & 8 != 0
        supportsSGL = u32(536) & 3 != 0
        sglDwordAligned = u32(536) & 3 == 2
        supportsDoorbellBuffer = u16(256) & 0x100 != 0
        abortLimit = Int(data[258]) + 1
        volatileWriteCache = data[525] & 1 != 0
    }
}

/// What Identify Namespace says that the driver uses.
public struct NVMeNamespaceIdentity: Equatable, Sendable {
    /// Size in logical blocks (NSZE).
    public var blocks: UInt64
    /// Logical block size of the format in use, bytes.
    public var blockSize: Int
    /// Metadata bytes per block of that format (0 for what Sluice exports).
    public var metadataSize: Int

    public init?(_ data: [UInt8]) {
        guard data.count >= 4096 else { return nil }
        var nsze: UInt64 = 0
        for i in 0..<8 { nsze |= UInt64(data[i]) << (8 * UInt64(i)) }
        let formats = Int(data[25]) + 1
        let index = Int(data[26] & 0xF)
        guard index < formats, index < 64 else { return nil }
        let o = 128 + 4 * index
        let lbads = Int(data[o + 2])
        guard lbads >= 9, lbads <= 16 else { return nil }
        blocks = nsze
        blockSize = 1 << lbads
        metadataSize = Int(data[o]) | Int(data[o + 1]) << 8
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
