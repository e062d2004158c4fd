import Block
import Config

extension BlkTargets {
    /// The one partition with GUID `uuid` on all `[disk]`s and NVMe namespaces: none or
    /// two is an error. A disk's GPT is read in its logical block size ([disk] block-size,
    /// or the device's own for a block device), then in the other size; a namespace's in
    /// its LBA size.
    static func resolvePartition(_ uuid: String, _ b: BlkConfig, config: SluiceConfig, drives: [NVMeDrive]?) throws(EngineError) -> ResolvedBlkTarget {
        let here = "\(config.file):\(b.deviceLine): blk \(b.name)"
        var found: [(disk: DiskConfig, partition: GPTPartition, lbs: Int)] = []
        var notes: [String] = []
        let onNamespaces = drives.map { NVMeTargets.partitions(uuid, drives: $0, notes: &notes) } ?? []
        for disk in config.disks {
            let file: BlockFile
            do { file = try BlockFile(path: disk.file, writable: false) } catch {
                notes.append("disk \(disk.name): \(error.description)")
                continue
            }
            let first = file.isBlockDevice ? file.deviceBlockSize : disk.blockSize
            var problem: String?
            for lbs in [first, first == 512 ? 4096 : 512] {
                switch GPT.readLabel(blockSize: lbs, diskBytes: file.sizeBytes, read: { file.readBytes(at: $0, count: $1) }) {
                case .success(.gpt(let partitions, let warnings)):
                    problem = nil
                    for w in warnings { notes.append("disk \(disk.name): \(w)") }
                    for p in partitions where p.uuid == uuid { found.append((disk, p, lbs)) }
                case .success(.mbrOnly), .success(.none):
                    continue
                case .failure(let e):
                    // Kept unless the other block size finds a table.
                    if problem == nil { problem = e.description }
                    continue
                }
                break
            }
            if let problem { notes.append("disk \(disk.name): \(problem)") }
        }
        if found.count + onNamespaces.count > 1 {
            let places = found.map { "partition \($0.partition.number) of disk \($0.disk.name)" }
                + onNamespaces.map { "partition \($0.partition.number) of namespace \($0.where)" }
            throw EngineError("\(here): GPT partition \(uuid) is on more than one disk (\(places.joined(separator: " and "))); export it with a unique GUID")
        }
        if let hit = onNamespaces.first {
            return try NVMeTargets.partitionTarget(hit, b, here: here)
        }
        if found.isEmpty && drives == nil && (config.nvme != nil || NVMeTargets.controllersBoundToVFIO) {
            // --check: the namespaces are searched at start.
            return ResolvedBlkTarget(file: nil, target: BlockTarget.unresolved, what: "partition \(uuid) (NVMe namespaces searched at start)")
        }
        guard let hit = found.first else {
            var searched = config.disks.map { "disk \($0.name)" }
            for d in drives ?? [] { searched += d.namespaces.keys.sorted().map { "\(d.identity.serial):n\($0)" } }
            throw EngineError("\(here): no GPT partition \(uuid) on any disk (searched: \(searched.isEmpty ? "no [disk] sections, no NVMe namespaces" : searched.joined(separator: ", ")))"
                              + (notes.isEmpty ? "" : "; " + notes.joined(separator: "; ")))
        }
        if found.count > 1 {
            let places = found.map { "partition \($0.partition.number) of disk \($0.disk.name)" }.joined(separator: " and ")
            throw EngineError("\(here): GPT partition \(uuid) is on more than one disk (\(places)); export it with a unique GUID")
        }
        let file = try open(hit.disk, writable: !b.readOnly, config: config, blk: b.name)
        let start = hit.partition.firstLBA * UInt64(hit.lbs)
        let size = (hit.partition.lastLBA - hit.partition.firstLBA + 1) * UInt64(hit.lbs)
        let bs = hit.disk.blockSize
        guard start % UInt64(bs) == 0, size >= UInt64(bs) else {
            throw EngineError("\(here): partition \(hit.partition.number) of disk \(hit.disk.name) does not start on a \(bs)-byte block")
        }
        let target = BlockTarget(fd: file.fd, bufferedFD: file.bufferedFD, offsetBytes: start, sizeBytes: size / UInt64(bs) * UInt64(bs), readOnly: b.readOnly,
                                 blockSize: bs, isBlockDevice: file.isBlockDevice)
        return ResolvedBlkTarget(file: file, target: target,
                                 what: "partition \(hit.partition.number) '\(hit.partition.name)' of disk \(hit.disk.name) at byte \(start)",
                                 warnings: notes)
    }
}
