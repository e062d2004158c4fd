import Block
import Config

/// Finding what a `[blk]` exports: a whole `[disk]`, or the one GPT partition with the
/// asked-for GUID among all disks. Errors name the config line.
enum BlkTargets {
    static func resolve(_ b: BlkConfig, config: SluiceConfig) throws(EngineError) -> ResolvedBlkTarget {
        let here = "\(config.file):\(b.deviceLine): blk \(b.name)"
        switch b.device {
        case .disk(let name):
            guard let disk = config.disk(named: name) else { throw EngineError("\(here): no [disk \(name)]") }
            let file = try open(disk, writable: !b.readOnly, config: config, blk: b.name)
            let size = file.sizeBytes / UInt64(disk.blockSize) * UInt64(disk.blockSize)
            guard size > 0 else {
                throw EngineError("\(config.file):\(disk.fileLine): disk \(disk.name): \(disk.file) is smaller than one \(disk.blockSize)-byte block")
            }
            let target = BlockTarget(fd: file.fd, bufferedFD: file.bufferedFD, offsetBytes: 0, sizeBytes: size, readOnly: b.readOnly,
                                     blockSize: disk.blockSize, isBlockDevice: file.isBlockDevice)
            return ResolvedBlkTarget(file: file, target: target, what: "disk \(disk.name) (\(disk.file))")
        case .partition(let uuid):
            return try resolvePartition(uuid, b, config: config)
        case .namespace:
            throw EngineError("\(here): NVMe namespaces are not available yet")
        }
    }

    static func open(_ disk: DiskConfig, writable: Bool, config: SluiceConfig, blk: String) throws(EngineError) -> BlockFile {
        do { return try BlockFile(path: disk.file, writable: writable) } catch {
            throw EngineError("\(config.file):\(disk.fileLine): disk \(disk.name) (for blk \(blk)): \(error.description)")
        }
    }
}
