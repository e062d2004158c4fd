import XCTest
@testable import Block
import VhostUser

/// `struct virtio_blk_config` as the guest reads it: sizes in the units the virtio spec and the
/// Linux driver use (capacity and discard alignment in 512-byte sectors, min_io_size in
/// logical blocks).
final class BlkConfigSpaceTests: XCTestCase {
    private func config(blockSize: Int, readOnly: Bool = false) throws -> [UInt8] {
        let image = try BlkTempImage(bytes: 8 << 20)
        defer { image.remove() }
        let file = try BlockFile(path: image.path, writable: !readOnly)
        let target = BlockTarget(fd: file.fd, offsetBytes: 0, sizeBytes: 8 << 20, readOnly: readOnly,
                                 blockSize: blockSize, isBlockDevice: false)
        let d = try VhostUserDevice.blk(BlkDeviceSpec(name: "c", queues: 2, queueSize: 256, maxRegions: 8,
                                                      serial: "s", target: target))
        return try XCTUnwrap(d.blkModel).configSpace()
    }

    private func le(_ c: [UInt8], _ at: Int, _ n: Int) -> UInt64 {
        (0..<n).reduce(UInt64(0)) { $0 | UInt64(c[at + $1]) << (8 * UInt64($1)) }
    }

    func testUnitsFor512And4096ByteBlocks() throws {
        for bs in [512, 4096] {
            let c = try config(blockSize: bs)
            XCTAssertEqual(c.count, VirtioBlk.Config.size)
            XCTAssertEqual(le(c, VirtioBlk.Config.capacity, 8), UInt64(8 << 20) / 512, "capacity in 512-byte sectors (bs \(bs))")
            XCTAssertEqual(le(c, VirtioBlk.Config.blkSize, 4), UInt64(bs))
            XCTAssertEqual(le(c, VirtioBlk.Config.physicalBlockExp, 1), 0)
            XCTAssertEqual(le(c, VirtioBlk.Config.minIOSize, 2), 1, "min_io_size counts logical blocks, so one (bs \(bs))")
            XCTAssertEqual(le(c, VirtioBlk.Config.numQueues, 2), 2)
            XCTAssertEqual(le(c, VirtioBlk.Config.discardSectorAlignment, 4), UInt64(bs / 512), "discard alignment in sectors")
            XCTAssertEqual(le(c, VirtioBlk.Config.writeZeroesMayUnmap, 1), 1)
        }
    }

    func testReadOnlyOffersNoDiscardOrWriteZeroes() throws {
        let image = try BlkTempImage(bytes: 1 << 20)
        defer { image.remove() }
        let file = try BlockFile(path: image.path, writable: false)
        let target = BlockTarget(fd: file.fd, offsetBytes: 0, sizeBytes: 1 << 20, readOnly: true, blockSize: 512, isBlockDevice: false)
        let d = try VhostUserDevice.blk(BlkDeviceSpec(name: "r", queues: 1, queueSize: 256, maxRegions: 8, serial: "s", target: target))
        let f = try XCTUnwrap(d.blkModel).features
        XCTAssertNotEqual(f & VirtioBlk.Feature.ro, 0)
        XCTAssertEqual(f & (VirtioBlk.Feature.discard | VirtioBlk.Feature.writeZeroes), 0)
        XCTAssertEqual(f & VirtioBlk.Feature.mq, 0, "one queue: no MQ")
    }
}
