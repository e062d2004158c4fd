import Foundation
import XCTest
@testable import VhostUser

/// Every rule of the request validator, each rejected with its own error.
final class MessageValidationTests: XCTestCase {
    /// Decodes `payload` as `request` with `fdCount` fresh placeholder fds and
    /// checks that every one of them is closed afterwards.
    private func decode(_ request: UInt32, flags: UInt32 = VhostUserHeader.currentVersion,
                        _ payload: [UInt8], fdCount: Int = 0) throws(VhostUserProtocolError) -> VhostUserMessage {
        let fds = (0..<fdCount).map { _ in placeholderFD() }
        let header = VhostUserHeader(request: request, flags: flags, size: UInt32(payload.count))
        do throws(VhostUserProtocolError) {
            let message = try VhostUserMessage.decode(header: header, payload: payload, fds: fds)
            for fd in fds where !message.fileDescriptors.contains(fd) { XCTAssertFalse(fdIsOpen(fd)) }
            message.closeFileDescriptors()
            return message
        } catch {
            for fd in fds { XCTAssertFalse(fdIsOpen(fd), "fd \(fd) left open after \(error)") }
            throw error
        }
    }

    private func memTable(_ regions: [MemoryRegionDescriptor]) -> [UInt8] {
        splitMessage(VhostUserMessage.setMemTable(regions, fds: []).encode()).1
    }

    // MARK: Header

    func testBadVersionAndFlags() {
        let payload = [UInt8](repeating: 0, count: 8)
        assertProtocolError(.badHeader, "version 0") { try decode(2, flags: 0, payload) }
        assertProtocolError(.badHeader, "version 2") { try decode(2, flags: 2, payload) }
        assertProtocolError(.badHeader, "version 3") { try decode(2, flags: 3, payload) }
        assertProtocolError(.badHeader, "reserved flag bits") { try decode(2, flags: 0x11, payload) }
        assertProtocolError(.badHeader, "reserved flag bits") { try decode(2, flags: 0x8000_0001, payload) }
        assertProtocolError(.badHeader, "reply flag set on a request") { try decode(2, flags: 0x5, payload) }
        XCTAssertEqual(try decode(2, flags: 0x9, payload), .setFeatures(0)) // need_reply is fine
    }

    func testHeaderSizeMustMatchPayload() {
        let header = VhostUserHeader(request: 2, flags: 1, size: 16)
        let fd = placeholderFD()
        assertProtocolError(.badHeader, "header size 16 but 8 payload bytes") {
            try VhostUserMessage.decode(header: header, payload: [UInt8](repeating: 0, count: 8), fds: [fd])
        }
        XCTAssertFalse(fdIsOpen(fd))
    }

    // MARK: Sizes and fd counts, for every request

    func testWrongPayloadSizeIsRejectedForEveryRequest() {
        for message in sampleRequests({ 100 }) {
            guard let request = message.request, request != .createCryptoSession else { continue }
            let (_, payload) = splitMessage(message.encode())
            let fdCount = message.fileDescriptors.count
            assertProtocolError(.payloadSize, request.name) {
                try decode(request.rawValue, payload + [0], fdCount: fdCount)
            }
            if !payload.isEmpty {
                let shorter = Array(payload.dropLast())
                assertProtocolError(.payloadSize, request.name) {
                    try decode(request.rawValue, shorter, fdCount: fdCount)
                }
            }
        }
    }

    func testWrongFDCountIsRejectedForEveryRequest() {
        for message in sampleRequests({ 100 }) {
            guard let request = message.request else { continue }
            let (_, payload) = splitMessage(message.encode())
            let fdCount = message.fileDescriptors.count
            // REM_MEM_REG tolerates one stray fd (and closes it); two are too many.
            let extra = request == .remMemReg ? 2 : fdCount + 1
            assertProtocolError(.fileDescriptorCount, request.name) {
                try decode(request.rawValue, payload, fdCount: extra)
            }
            if fdCount > 0 {
                assertProtocolError(.fileDescriptorCount, request.name) {
                    try decode(request.rawValue, payload, fdCount: fdCount - 1)
                }
            }
        }
    }

    func testKickCallErrFDRules() {
        for request: UInt32 in [12, 13, 14] {
            let withFD: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0]
            let invalidFD: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 0]
            assertProtocolError(.fileDescriptorCount, "0 fds, expected 1") { try decode(request, withFD, fdCount: 0) }
            assertProtocolError(.fileDescriptorCount, "invalid-fd flag set") { try decode(request, invalidFD, fdCount: 1) }
            assertProtocolError(.invalidPayload, "bits above the index") {
                try decode(request, [1, 2, 0, 0, 0, 0, 0, 0], fdCount: 1)
            }
            assertProtocolError(.invalidPayload, "bits above the index") {
                try decode(request, [0, 0, 0, 0, 0, 0, 0, 0x80], fdCount: 1)
            }
            XCTAssertNoThrow(try decode(request, invalidFD, fdCount: 0))
        }
    }

    // MARK: SET_MEM_TABLE

    func testMemTableRegionCount() {
        assertProtocolError(.invalidPayload, "0 memory regions, expected 1...8") {
            try decode(5, [0, 0, 0, 0, 0, 0, 0, 0])
        }
        let nine = (0..<9).map {
            MemoryRegionDescriptor(guestPhysAddr: UInt64($0) << 30, memorySize: 1 << 30, userspaceAddr: UInt64($0) << 30, mmapOffset: 0)
        }
        assertProtocolError(.invalidPayload, "9 memory regions") { try decode(5, memTable(nine), fdCount: 9) }
        XCTAssertNoThrow(try decode(5, memTable(Array(nine.prefix(8))), fdCount: 8))
        // A count that does not match the bytes that follow.
        var lying = memTable(Array(nine.prefix(2)))
        lying[0] = 3
        assertProtocolError(.payloadSize, "expected 8 + 32 × 3 regions = 104") { try decode(5, lying, fdCount: 3) }
        assertProtocolError(.payloadSize, "shorter than the 8-byte region count") { try decode(5, [1, 0, 0, 0]) }
        assertProtocolError(.fileDescriptorCount, "one per memory region") { try decode(5, memTable(Array(nine.prefix(2))), fdCount: 1) }
    }

    func testMemTableRegionRanges() {
        let max = UInt64.max
        let cases: [(MemoryRegionDescriptor, String)] = [
            (MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: 0, userspaceAddr: 0, mmapOffset: 0), "memory_size is 0"),
            // The exclusive end must be representable: a region may end at 2^64 - 1, not at 2^64.
            (MemoryRegionDescriptor(guestPhysAddr: max - 0x1000, memorySize: 0x1000, userspaceAddr: 0, mmapOffset: 0), ""),
            (MemoryRegionDescriptor(guestPhysAddr: max - 0xfff, memorySize: 0x1000, userspaceAddr: 0, mmapOffset: 0), "guest_phys_addr"),
            (MemoryRegionDescriptor(guestPhysAddr: max - 0xfff, memorySize: 0x1001, userspaceAddr: 0, mmapOffset: 0), "guest_phys_addr"),
            (MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: 0x2000, userspaceAddr: max, mmapOffset: 0), "userspace_addr"),
            (MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: 0x2000, userspaceAddr: 0, mmapOffset: max - 1), "mmap_offset"),
            (MemoryRegionDescriptor(guestPhysAddr: 1, memorySize: max, userspaceAddr: 0, mmapOffset: 0), "guest_phys_addr"),
        ]
        for (region, problem) in cases {
            let first = MemoryRegionDescriptor(guestPhysAddr: 0x10_0000, memorySize: 0x1000, userspaceAddr: 0, mmapOffset: 0)
            let payload = memTable([first, region])
            if problem.isEmpty {
                XCTAssertNoThrow(try decode(5, payload, fdCount: 2))
            } else {
                assertProtocolError(.invalidPayload, "region 1: \(problem)") { try decode(5, payload, fdCount: 2) }
            }
            // The same rules hold for ADD_MEM_REG.
            let add = splitMessage(VhostUserMessage.addMemReg(region, fd: 0).encode()).1
            if problem.isEmpty {
                XCTAssertNoThrow(try decode(37, add, fdCount: 1))
            } else {
                assertProtocolError(.invalidPayload, problem) { try decode(37, add, fdCount: 1) }
            }
        }
    }

    func testMemTableRegionsMustNotOverlap() {
        let a = MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: 0x2000, userspaceAddr: 0x10000, mmapOffset: 0)
        let b = MemoryRegionDescriptor(guestPhysAddr: 0x1fff, memorySize: 0x1000, userspaceAddr: 0x20000, mmapOffset: 0)
        let c = MemoryRegionDescriptor(guestPhysAddr: 0x2000, memorySize: 0x1000, userspaceAddr: 0x20000, mmapOffset: 0)
        assertProtocolError(.invalidPayload, "regions 0 and 1 overlap") { try decode(5, memTable([a, b]), fdCount: 2) }
        XCTAssertNoThrow(try decode(5, memTable([a, c]), fdCount: 2))
    }

    func testRemMemRegIgnoresMmapOffset() throws {
        let region = MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: 0x1000, userspaceAddr: 0, mmapOffset: .max)
        let payload = splitMessage(VhostUserMessage.remMemReg(region).encode()).1
        XCTAssertEqual(try decode(38, payload), .remMemReg(region))
        let empty = MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: 0, userspaceAddr: 0, mmapOffset: 0)
        assertProtocolError(.invalidPayload, "memory_size is 0") {
            try decode(38, splitMessage(VhostUserMessage.remMemReg(empty).encode()).1, fdCount: 1)
        }
    }

    // MARK: Other field rules

    func testVringFieldRules() {
        let addr = VringAddress(index: 0, flags: 0x2, desc: 0, used: 0, avail: 0)
        assertProtocolError(.invalidPayload, "undefined bits") { try decode(9, splitMessage(VhostUserMessage.setVringAddr(addr).encode()).1) }
        assertProtocolError(.invalidPayload, "enable value 2") { try decode(18, [0, 0, 0, 0, 2, 0, 0, 0]) }
        assertProtocolError(.invalidPayload, "endianness 7") { try decode(23, [0, 0, 0, 0, 7, 0, 0, 0]) }
    }

    func testConfigRules() {
        func config(offset: UInt32, size: UInt32, flags: UInt32, bytes: Int) -> [UInt8] {
            var w = PayloadWriter()
            w.u32(offset)
            w.u32(size)
            w.u32(flags)
            w.zeros(bytes)
            return w.bytes
        }
        for request: UInt32 in [24, 25] {
            assertProtocolError(.invalidPayload, "config size 0") { try decode(request, config(offset: 0, size: 0, flags: 0, bytes: 0)) }
            assertProtocolError(.invalidPayload, "config size 257") { try decode(request, config(offset: 0, size: 257, flags: 0, bytes: 257)) }
            assertProtocolError(.invalidPayload, "past 256") { try decode(request, config(offset: 250, size: 8, flags: 0, bytes: 8)) }
            assertProtocolError(.invalidPayload, "past 256") { try decode(request, config(offset: .max, size: 8, flags: 0, bytes: 8)) }
            assertProtocolError(.invalidPayload, "config flags 2") { try decode(request, config(offset: 0, size: 4, flags: 2, bytes: 4)) }
            assertProtocolError(.payloadSize, "expected 12 + config size 4 = 16") { try decode(request, config(offset: 0, size: 4, flags: 0, bytes: 3)) }
            assertProtocolError(.payloadSize, "shorter than the 12-byte config header") { try decode(request, [0, 0, 0, 0]) }
            XCTAssertNoThrow(try decode(request, config(offset: 0, size: 256, flags: 1, bytes: 256)))
        }
    }

    func testMiscFieldRules() {
        let log = splitMessage(VhostUserMessage.setLogBase(LogDescription(mmapSize: 0x1000, mmapOffset: .max), fd: 0).encode()).1
        assertProtocolError(.invalidPayload, "log mmap_size") { try decode(6, log, fdCount: 1) }
        let empty = splitMessage(VhostUserMessage.setLogBase(LogDescription(mmapSize: 0, mmapOffset: 0), fd: 0).encode()).1
        assertProtocolError(.invalidPayload, "log mmap_size") { try decode(6, empty, fdCount: 1) }
        var iotlb = splitMessage(VhostUserMessage.iotlbMessage(IOTLBMessage(iova: 0, size: 1, userAddr: 0, permissions: 4, type: 2)).encode()).1
        assertProtocolError(.invalidPayload, "IOTLB permissions 4") { try decode(22, iotlb) }
        iotlb[24] = 1
        iotlb[25] = 5
        assertProtocolError(.invalidPayload, "IOTLB type 5") { try decode(22, iotlb) }
        assertProtocolError(.invalidPayload, "does not fit in 8 bits") { try decode(39, [0, 1, 0, 0, 0, 0, 0, 0]) }
        let inflight = splitMessage(VhostUserMessage.setInflightFD(InflightDescription(mmapSize: 2, mmapOffset: .max, numQueues: 1, queueSize: 1), fd: 0).encode()).1
        assertProtocolError(.invalidPayload, "overflows") { try decode(32, inflight, fdCount: 1) }
        assertProtocolError(.invalidPayload, "transfer direction 2") { try decode(42, [2, 0, 0, 0, 0, 0, 0, 0], fdCount: 1) }
        assertProtocolError(.invalidPayload, "migration phase 1") { try decode(42, [0, 0, 0, 0, 1, 0, 0, 0], fdCount: 1) }
    }

    // MARK: fd hygiene

    func testRejectedMessagesLeakNoFD() {
        let before = openFDCount()
        for _ in 0..<20 {
            // A memory table whose second region overflows, with its two fds.
            let bad = MemoryRegionDescriptor(guestPhysAddr: .max, memorySize: 2, userspaceAddr: 0, mmapOffset: 0)
            assertProtocolError(.invalidPayload) { try decode(5, memTable([sampleMemoryRegion, bad]), fdCount: 2) }
            // Three fds on a message that takes none.
            assertProtocolError(.fileDescriptorCount) { try decode(1, [], fdCount: 3) }
            // Wrong size, with the fd it would have carried.
            assertProtocolError(.payloadSize) { try decode(12, [0], fdCount: 1) }
            // Unknown request with fds: accepted as a value, fds closed.
            XCTAssertEqual(try? decode(77, [1, 2], fdCount: 4), .unknown(77))
        }
        XCTAssertLessThanOrEqual(openFDCount(), before, "an fd leaked")
    }
}
