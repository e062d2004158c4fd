import Block
import Config

/// Finding what a `[blk]` exports: a whole `[disk]`, an NVMe namespace (`SERIAL:nN`), or
/// the one GPT partition with the asked-for GUID among all disks and namespaces. Errors
/// name the config line. `drives` are the open NVMe controllers; nil for `--check`, which
/// never touches a controller (a running sluice may own it) and checks only what sysfs shows.
enum BlkTargets {
    static func resolve(_ b: BlkConfig, config: SluiceConfig, drives: [NVMeDrive]?) throws(EngineError) -> ResolvedBlkTarget {
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
        case .namespace(let serial, let nsid):
            guard let drives else {
                try NVMeTargets.precheck(config, here: here)
                return ResolvedBlkTarget(file: nil, target: BlockTarget.unresolved, what: "namespace \(serial):n\(nsid)")
            }
            return try NVMeTargets.namespace(serial: serial, nsid: nsid, b, drives: drives, here: here)
        case .partition(let uuid):
            return try resolvePartition(uuid, b, config: config, drives: drives)
        }
    }

    static func open(_ disk: DiskConfig, writable: Bool, config: SluiceConfig, blk: String) throws(EngineError) -> BlockFile {
        do { return try BlockFile(path: disk.file, writable: writable) } catch {
            throw EngineError("\(config.file):\(disk.fileLine): disk \(disk.name) (for blk \(blk)): \(error.description)")
        }
    }
}

extension BlockTarget {
    /// What `--check` reports for a target it cannot open without the controller.
    static var unresolved: BlockTarget {
        BlockTarget(fd: -1, offsetBytes: 0, sizeBytes: 0, readOnly: true, blockSize: 512, isBlockDevice: false)
    }
}
