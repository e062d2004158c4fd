/// virtio-blk on the wire (virtio 1.2 §5.2): request types, status codes, feature
/// bits and the config space layout. Shared by the device (`BlkQueue`), the
/// front-end in `sluice-gen blk` and the tests.
public enum VirtioBlk {
    /// Request types (`struct virtio_blk_req.type`).
    public enum RequestType {
        public static let input: UInt32 = 0          // IN: read
        public static let output: UInt32 = 1         // OUT: write
        public static let flush: UInt32 = 4
        public static let getID: UInt32 = 8
        public static let discard: UInt32 = 11
        public static let writeZeroes: UInt32 = 13
    }

    /// The status byte the device writes last.
    public enum Status {
        public static let ok: UInt8 = 0
        public static let ioErr: UInt8 = 1
        public static let unsupp: UInt8 = 2
    }

    /// Feature bits (device-specific part).
    public enum Feature {
        public static let sizeMax: UInt64 = 1 << 1
        public static let segMax: UInt64 = 1 << 2
        public static let ro: UInt64 = 1 << 5
        public static let blkSize: UInt64 = 1 << 6
        public static let flush: UInt64 = 1 << 9
        public static let topology: UInt64 = 1 << 10
        public static let configWCE: UInt64 = 1 << 11
        public static let mq: UInt64 = 1 << 12
        public static let discard: UInt64 = 1 << 13
        public static let writeZeroes: UInt64 = 1 << 14
    }

    /// Sectors are always 512 bytes in requests, whatever the logical block size.
    public static let sectorSize = 512
    /// `struct virtio_blk_outhdr`: type u32, ioprio u32, sector u64.
    public static let headerSize = 16
    /// GET_ID answers at most this many bytes.
    public static let idBytes = 20
    /// One `struct virtio_blk_discard_write_zeroes` segment: sector u64, num_sectors u32, flags u32.
    public static let rangeSize = 16
    public static let writeZeroesUnmap: UInt32 = 1

    /// Offsets in `struct virtio_blk_config`.
    public enum Config {
        public static let capacity = 0          // u64, in 512-byte sectors
        public static let sizeMax = 8           // u32
        public static let segMax = 12           // u32
        public static let geometry = 16         // cylinders u16, heads u8, sectors u8
        public static let blkSize = 20          // u32
        public static let physicalBlockExp = 24 // u8 (topology)
        public static let alignmentOffset = 25  // u8
        public static let minIOSize = 26        // u16
        public static let optIOSize = 28        // u32
        public static let writeback = 32        // u8 (CONFIG_WCE)
        public static let numQueues = 34        // u16
        public static let maxDiscardSectors = 36     // u32
        public static let maxDiscardSeg = 40         // u32
        public static let discardSectorAlignment = 44 // u32
        public static let maxWriteZeroesSectors = 48 // u32
        public static let maxWriteZeroesSeg = 52     // u32
        public static let writeZeroesMayUnmap = 56   // u8
        /// Bytes up to and including write_zeroes_may_unmap (+3 padding).
        public static let size = 60
    }
}
