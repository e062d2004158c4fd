import CSluice
import Foundation
import XCTest
@testable import VhostUser

/// The channel over real sockets: fds that really travel, framing errors,
/// and the socket helpers.
final class MessageChannelTests: XCTestCase {
    private func pair() throws -> (front: VhostUserChannel, back: VhostUserChannel) {
        let (a, b) = try VhostUserChannel.socketPair()
        return (VhostUserChannel(fd: a), VhostUserChannel(fd: b))
    }

    private func writeRaw(_ fd: Int32, _ bytes: [UInt8], fds: [Int32] = []) {
        let n = bytes.withUnsafeBytes { raw in
            fds.withUnsafeBufferPointer { sl_send_with_fds(fd, raw.baseAddress, raw.count, $0.baseAddress, Int32($0.count)) }
        }
        XCTAssertEqual(n, bytes.count)
    }

    func testMemfdAndEventfdTravelThroughTheChannel() throws {
        let (front, back) = try pair()
        // Guest memory: a memfd with a pattern at 4 KiB.
        let memfd = sl_memfd_create("vu-test-guest", sl_memfd_cloexec_flag())
        XCTAssertGreaterThanOrEqual(memfd, 0)
        XCTAssertEqual(ftruncate(memfd, 1 << 20), 0)
        var pattern: UInt64 = 0x5a5a_1234_abcd_0001
        XCTAssertEqual(pwrite(memfd, &pattern, 8, 4096), 8)
        let kick = sl_eventfd(0, 1)
        XCTAssertGreaterThanOrEqual(kick, 0)

        let region = MemoryRegionDescriptor(guestPhysAddr: 0, memorySize: 1 << 20, userspaceAddr: 0x7f00_0000_0000, mmapOffset: 0)
        try front.send(.setMemTable([region], fds: [memfd]), needsReply: true)
        try front.send(.setVringKick(index: 0, fd: kick))
        close(memfd)
        close(kick)

        guard let (header, table) = try back.receiveMessage() else { return XCTFail("EOF") }
        XCTAssertTrue(header.needsReply)
        guard case .setMemTable(let regions, let fds) = table, fds.count == 1 else { return XCTFail("\(table)") }
        XCTAssertEqual(regions, [region])
        let map = mmap(nil, 1 << 20, PROT_READ, MAP_SHARED, fds[0], 0)
        XCTAssertNotEqual(map, MAP_FAILED)
        if let map, map != MAP_FAILED {
            XCTAssertEqual(map.load(fromByteOffset: 4096, as: UInt64.self), pattern)
            munmap(map, 1 << 20)
        }
        table.closeFileDescriptors()

        guard let (_, kickMessage) = try back.receiveMessage(),
              case .setVringKick(0, let receivedKick?) = kickMessage else { return XCTFail("no kick") }
        // The original eventfd is closed on this side; the received one is the same object.
        var one: UInt64 = 1
        XCTAssertEqual(write(receivedKick, &one, 8), 8)
        var seen: UInt64 = 0
        XCTAssertEqual(read(receivedKick, &seen, 8), 8)
        XCTAssertEqual(seen, 1)
        close(receivedKick)
    }

    func testRequestAndReply() throws {
        let (front, back) = try pair()
        let backend = Thread {
            while let (header, message) = try? back.receiveMessage() {
                let code = message.requestCode
                switch message {
                case .getFeatures: try? back.sendReply(.u64(0x1_4000_0000), to: code)
                case .getVringBase(let s): try? back.sendReply(.vringState(VringState(index: s.index, num: 42)), to: code)
                case .getConfig(let c):
                    try? back.sendReply(.config(DeviceConfigSpace(offset: c.offset, payload: Array(repeating: 7, count: c.payload.count))), to: code)
                default:
                    if header.needsReply { try? back.sendReply(.ack(true), to: code) }
                }
                message.closeFileDescriptors()
            }
        }
        backend.start()
        XCTAssertEqual(try front.request(.getFeatures), .u64(0x1_4000_0000))
        XCTAssertEqual(try front.request(.setFeatures(0x1_0000_0000)), nil)
        XCTAssertEqual(try front.request(.setVringNum(VringState(index: 0, num: 256)), needsReply: true), .u64(0))
        XCTAssertEqual(try front.request(.getVringBase(VringState(index: 1, num: 0))), .vringState(VringState(index: 1, num: 42)))
        XCTAssertEqual(try front.request(.getConfig(DeviceConfigSpace(offset: 0, size: 6))),
                       .config(DeviceConfigSpace(offset: 0, payload: [7, 7, 7, 7, 7, 7])))
        front.close()
    }

    func testGetConfigReplyOfTheWrongSizeIsRejected() throws {
        let (front, back) = try pair()
        // The back-end's answer is queued before the request is sent.
        try back.sendReply(.config(DeviceConfigSpace(offset: 0, payload: [1, 2])), to: VhostUserRequest.getConfig.rawValue)
        assertProtocolError(.unexpectedReply, "2 config bytes for 4 asked") {
            try front.request(.getConfig(DeviceConfigSpace(offset: 0, size: 4)))
        }
    }

    func testOrderlyEOFIsNil() throws {
        let (front, back) = try pair()
        front.close()
        XCTAssertNil(try back.receive())
    }

    func testTruncatedHeader() throws {
        let (front, back) = try pair()
        writeRaw(front.fd, [1, 0, 0, 0, 1])
        front.close()
        assertProtocolError(.truncated, "after 5 of 12 header bytes") { try back.receive() }
    }

    func testPayloadOverTheLimit() throws {
        let (front, back) = try pair()
        writeRaw(front.fd, VhostUserHeader(request: 26, size: VhostUserLimits.maxPayloadSize + 1).encoded())
        assertProtocolError(.payloadTooLarge, "4097") { try back.receive() }
        // The limit itself is fine.
        let big = VhostUserMessage.createCryptoSession([UInt8](repeating: 3, count: VhostUserLimits.maxPayloadSize))
        let (front2, back2) = try pair()
        try front2.send(big)
        XCTAssertEqual(try back2.receiveMessage()?.message, big)
    }

    func testEOFMidPayloadClosesTheFDs() throws {
        let before = openFDCount()
        do {
            let (front, back) = try pair()
            let fds = [placeholderFD(), placeholderFD()]
            // A memory table header announcing 72 bytes, of which 10 arrive, with two fds.
            writeRaw(front.fd, VhostUserHeader(request: 5, size: 72).encoded() + [UInt8](repeating: 0, count: 10), fds: fds)
            fds.forEach { close($0) }
            front.close()
            assertProtocolError(.truncated, "after 10 of 72 payload bytes") { try back.receive() }
        }
        XCTAssertLessThanOrEqual(openFDCount(), before, "an fd leaked")
    }

    func testMoreThan32FDsIsRejectedAndClosed() throws {
        let before = openFDCount()
        do {
            let (front, back) = try pair()
            let fds = (0..<33).map { _ in placeholderFD() }
            // 32 fds with the header, one more with the payload.
            writeRaw(front.fd, VhostUserHeader(request: 1, size: 4).encoded(), fds: Array(fds.prefix(32)))
            writeRaw(front.fd, [0, 0, 0, 0], fds: [fds[32]])
            fds.forEach { close($0) }
            assertProtocolError(.tooManyFileDescriptors) { try back.receive() }
        }
        XCTAssertLessThanOrEqual(openFDCount(), before, "an fd leaked")
    }

    func testRejectedMessageOverTheChannelLeaksNoFD() throws {
        let before = openFDCount()
        do {
            let (front, back) = try pair()
            let kick = sl_eventfd(0, 1)
            // GET_FEATURES with an fd attached: framed fine, rejected by the decoder.
            try front.send(header: VhostUserHeader(request: 1, size: 0), payload: [], fds: [kick])
            close(kick)
            assertProtocolError(.fileDescriptorCount, "GET_FEATURES") { try back.receiveMessage() }
        }
        XCTAssertLessThanOrEqual(openFDCount(), before, "an fd leaked")
    }

    func testStalledPeerTimesOut() throws {
        let (front, back) = try pair()
        XCTAssertEqual(fcntl(back.fd, F_SETFL, fcntl(back.fd, F_GETFL) | O_NONBLOCK), 0)
        back.ioTimeoutMilliseconds = 50
        writeRaw(front.fd, [2, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 2])
        assertProtocolError(.timedOut) { try back.receive() }
    }

    func testSendWaitsOnAFullSocket() throws {
        let (front, back) = try pair()
        XCTAssertEqual(fcntl(front.fd, F_SETFL, fcntl(front.fd, F_GETFL) | O_NONBLOCK), 0)
        // Fill the socket until the kernel refuses more.
        var junk = 0
        let chunk = [UInt8](repeating: 0xee, count: 1024)
        while true {
            let n = chunk.withUnsafeBytes { Glibc.send(front.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
            junk += n
        }
        let junkBytes = junk
        let message = VhostUserMessage.createCryptoSession([UInt8](repeating: 0x42, count: 4000))
        let received = MessageTestBox<VhostUserMessage?>(nil)
        let reader = Thread {
            usleep(50_000)
            // Drain slowly, so the sender gets the room a little at a time.
            var sink = [UInt8](repeating: 0, count: 512)
            var left = junkBytes
            while left > 0 {
                let n = sink.withUnsafeMutableBytes { read(back.fd, $0.baseAddress, min(left, $0.count)) }
                if n <= 0 { break }
                left -= n
                usleep(200)
            }
            received.set(try? back.receiveMessage()?.message)
        }
        reader.start()
        try front.send(message) // hits EAGAIN, polls for room, then completes
        for _ in 0..<200 where received.get() == nil { usleep(10_000) }
        XCTAssertEqual(received.get(), message)
    }

    func testListenConnectAccept() throws {
        let path = "/tmp/vu-test-\(getpid()).sock"
        defer { unlink(path) }
        let listener = try VhostUserChannel.listen(path: path)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o660)
        XCTAssertTrue(fcntl(listener, F_GETFD) & FD_CLOEXEC != 0)
        let front = VhostUserChannel(fd: try VhostUserChannel.connect(path: path))
        let back = VhostUserChannel(fd: try VhostUserChannel.accept(listener))
        XCTAssertTrue(fcntl(back.fd, F_GETFD) & FD_CLOEXEC != 0)
        try front.send(.setOwner)
        XCTAssertEqual(try back.receiveMessage()?.message, .setOwner)

        // A second listener on a live socket is refused. (Its probe leaves a
        // connection that closes at once in the live listener's backlog.)
        assertProtocolError(.system(errno: EADDRINUSE)) { try VhostUserChannel.listen(path: path) }
        let probe = VhostUserChannel(fd: try VhostUserChannel.accept(listener))
        XCTAssertNil(try probe.receive())
        close(listener)

        // The socket file is now stale: listening again replaces it.
        let again = try VhostUserChannel.listen(path: path)
        close(again)
    }

    func testListenRefusesToReplaceARegularFile() throws {
        let path = "/tmp/vu-test-file-\(getpid())"
        defer { unlink(path) }
        let fd = open(path, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        assertProtocolError(.system(errno: EEXIST), "not a socket") { try VhostUserChannel.listen(path: path) }
        assertProtocolError(.system(errno: ENAMETOOLONG)) {
            try VhostUserChannel.listen(path: "/tmp/" + String(repeating: "x", count: 200))
        }
        assertProtocolError(.system(errno: ENOENT)) { try VhostUserChannel.connect(path: path + ".absent") }
    }
}

/// A value shared between a test and a helper thread.
final class MessageTestBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func get() -> T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
}
