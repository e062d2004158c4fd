#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Platform

/// The backing store of a `[disk]`: a regular file or a block device, opened once for
/// every export of it. O_DIRECT where the file system takes it (the guest's page cache
/// is the only cache); otherwise buffered, and `directIO` says so.
public final class BlockFile: @unchecked Sendable {
    public let path: String
    public let fd: Int32
    /// The same file without O_DIRECT (== `fd` when that is buffered already): requests
    /// O_DIRECT refuses (buffers or lengths not aligned to the device's sectors) go here.
    public let bufferedFD: Int32
    public let sizeBytes: UInt64
    public let isBlockDevice: Bool
    public let directIO: Bool
    public let writable: Bool
    /// The device's logical block size (block devices), else 512.
    public let deviceBlockSize: Int

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Open `path` for reading (and writing when `writable`); O_DIRECT first.
    public init(path: String, writable: Bool) throws(OpenError) {
        self.path = path
        self.writable = writable
        let access = writable ? O_RDWR : O_RDONLY
        var fd = open(path, access | sl_o_direct_flag() | O_CLOEXEC)
        var direct = true
        if fd < 0 && errno == EINVAL {
            // tmpfs and a few others refuse O_DIRECT at open.
            fd = open(path, access | O_CLOEXEC)
            direct = false
        }
        guard fd >= 0 else {
            throw OpenError(description: "\(path): cannot open\(writable ? " for writing" : ""): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw OpenError(description: "\(path): \(e)")
        }
        let mode = st.st_mode & S_IFMT
        if mode == S_IFBLK {
            let size = sl_blkdev_size(fd)
            let lbs = sl_blkdev_logical_block_size(fd)
            guard size >= 0, lbs > 0 else {
                close(fd)
                throw OpenError(description: "\(path): cannot read the block device's size")
            }
            sizeBytes = UInt64(size)
            deviceBlockSize = Int(lbs)
            isBlockDevice = true
        } else if mode == S_IFREG {
            sizeBytes = UInt64(st.st_size)
            deviceBlockSize = 512
            isBlockDevice = false
        } else {
            close(fd)
            throw OpenError(description: "\(path): neither a regular file nor a block device")
        }
        self.fd = fd
        self.directIO = direct
        if direct {
            let plain = open(path, access | O_CLOEXEC)
            guard plain >= 0 else {
                let e = String(cString: strerror(errno))
                close(fd)
                throw OpenError(description: "\(path): cannot open: \(e)")
            }
            bufferedFD = plain
        } else {
            bufferedFD = fd
        }
    }

    deinit {
        if bufferedFD != fd { close(bufferedFD) }
        close(fd)
    }

    /// Read `count` bytes at `offset` for control-plane use (GPT), through the buffered
    /// descriptor, so no alignment rules apply. nil on error or short read.
    public func readBytes(at offset: UInt64, count: Int) -> [UInt8]? {
        guard count >= 0, offset.addingReportingOverflow(UInt64(count)).partialValue <= sizeBytes else { return nil }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(bufferedFD, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n <= 0 { return nil }
            done += n
        }
        return out
    }
}

/// What one `[blk]` exports of a `BlockFile`: a byte range (the whole disk or one GPT
/// partition), read-only or not, with the logical block size offered to the guest.
/// A plain value the workers copy.
public struct BlockTarget: BitwiseCopyable, Sendable {
    public var fd: Int32
    /// `BlockFile.bufferedFD`.
    public var bufferedFD: Int32
    /// Where block 0 of the export sits in the file.
    public var offsetBytes: UInt64
    public var sizeBytes: UInt64
    public var readOnly: Bool
    public var blockSize: Int
    public var isBlockDevice: Bool
    /// Capacity in 512-byte sectors (whole logical blocks only).
    public let sectors: UInt64

    public init(fd: Int32, bufferedFD: Int32? = nil, offsetBytes: UInt64, sizeBytes: UInt64, readOnly: Bool, blockSize: Int,
                isBlockDevice: Bool) {
        self.fd = fd; self.bufferedFD = bufferedFD ?? fd; self.offsetBytes = offsetBytes; self.sizeBytes = sizeBytes
        self.readOnly = readOnly; self.blockSize = blockSize; self.isBlockDevice = isBlockDevice
        sectors = (sizeBytes / UInt64(blockSize)) * UInt64(blockSize) / 512
    }

    /// Whether `count` sectors at `sector` lie inside the export (overflow-checked).
    @inlinable
    public func contains(sector: UInt64, count: UInt64) -> Bool {
        let (end, o) = sector.addingReportingOverflow(count)
        return !o && end <= sectors
    }
}
