import Block
import Config
import NVMe
import Platform

/// `[blk]` targets on NVMe namespaces: `SERIAL:nN`, and GPT partitions found on them.
enum NVMeTargets {
    /// A partition found on a namespace.
    struct Hit {
        var drive: NVMeDrive
        var nsid: UInt32
        var partition: GPTPartition
        var blockSize: Int
        var `where`: String
    }

    /// Whether any NVMe controller is bound to vfio-pci (a partition GUID not on a disk
    /// may be on one of its namespaces).
    static var controllersBoundToVFIO: Bool {
        PCISysfs.scan(classCode: PCISysfs.nvmeClass).contains { $0.driver == PCISysfs.vfioDriver }
    }

    /// `--check`: what sysfs tells about the controllers a namespace export needs (no
    /// controller is touched: a running sluice may own it).
    static func precheck(_ config: SluiceConfig, here: String) throws(EngineError) {
        let addresses: [String]
        switch (config.nvme ?? NVMeConfig(line: 0)).pci {
        case .list(let list):
            addresses = list
        case .auto:
            let all = PCISysfs.scan(classCode: PCISysfs.nvmeClass)
            addresses = all.filter { $0.driver == PCISysfs.vfioDriver }.map(\.address)
            if addresses.isEmpty {
                let others = all.map { "\($0.address) (driver \($0.driver ?? "none"))" }.joined(separator: ", ")
                throw EngineError("\(here): no NVMe controller is bound to vfio-pci"
                                  + (all.isEmpty ? " (none found)" : "; found \(others): bind one with " + PCISysfs.bindHint(all[0])))
            }
        }
        for a in addresses {
            do { _ = try VFIOOpen.check(a) } catch { throw EngineError("\(here): \(error.description)") }
        }
    }

    /// Namespace `nsid` of the controller whose serial is `serial`.
    static func namespace(serial: String, nsid: UInt32, _ b: BlkConfig, drives: [NVMeDrive], here: String) throws(EngineError) -> ResolvedBlkTarget {
        let matching = drives.filter { $0.identity.serial == serial }
        guard let drive = matching.first else {
            let known = drives.map { "\($0.identity.serial) at \($0.address)" }.joined(separator: ", ")
            throw EngineError("\(here): no NVMe controller has serial '\(serial)' (" + (known.isEmpty ? "no controller bound to vfio-pci" : "controllers: \(known)") + ")")
        }
        guard matching.count == 1 else {
            throw EngineError("\(here): serial '\(serial)' names \(matching.count) controllers (\(matching.map(\.address).joined(separator: ", "))); list one in [nvme] pci")
        }
        guard let ns = drive.namespaces[nsid] else {
            let have = drive.namespaces.keys.sorted().map { "n\($0)" }.joined(separator: ", ")
            throw EngineError("\(here): controller \(serial) (\(drive.address)) has no active namespace \(nsid) (it has \(have.isEmpty ? "none" : have))")
        }
        let bytes = ns.blocks * UInt64(ns.blockSize)
        let target = BlockTarget(fd: -1, offsetBytes: 0, sizeBytes: bytes, readOnly: b.readOnly, blockSize: ns.blockSize, isBlockDevice: false)
        return ResolvedBlkTarget(file: nil, target: target, what: "NVMe namespace \(serial):n\(nsid) at \(drive.address)",
                                 nvme: (drive, nsid))
    }

    /// Every partition with GUID `uuid` on the namespaces of `drives` (GPT read in each
    /// namespace's LBA size); read problems go to `notes`.
    static func partitions(_ uuid: String, drives: [NVMeDrive], notes: inout [String]) -> [Hit] {
        var hits: [Hit] = []
        for d in drives {
            for (nsid, ns) in d.namespaces.sorted(by: { $0.key < $1.key }) {
                let label = "\(d.identity.serial):n\(nsid)"
                guard ns.blockSize == 512 || ns.blockSize == 4096 else { continue }
                let result = d.withControlReader(nsid: nsid) { read in
                    GPT.readLabel(blockSize: ns.blockSize, diskBytes: ns.blocks * UInt64(ns.blockSize), read: read)
                }
                switch result {
                case .success(.gpt(let parts, let warnings)):
                    for w in warnings { notes.append("namespace \(label): \(w)") }
                    for p in parts where p.uuid == uuid {
                        hits.append(Hit(drive: d, nsid: nsid, partition: p, blockSize: ns.blockSize, where: label))
                    }
                case .success:
                    break
                case .failure(let e):
                    notes.append("namespace \(label): \(e.description)")
                }
            }
        }
        return hits
    }

    static func partitionTarget(_ hit: Hit, _ b: BlkConfig, here: String) throws(EngineError) -> ResolvedBlkTarget {
        let start = hit.partition.firstLBA * UInt64(hit.blockSize)
        let size = (hit.partition.lastLBA - hit.partition.firstLBA + 1) * UInt64(hit.blockSize)
        let target = BlockTarget(fd: -1, offsetBytes: start, sizeBytes: size, readOnly: b.readOnly, blockSize: hit.blockSize, isBlockDevice: false)
        return ResolvedBlkTarget(file: nil, target: target,
                                 what: "partition \(hit.partition.number) '\(hit.partition.name)' of NVMe namespace \(hit.where) at byte \(start)",
                                 nvme: (hit.drive, hit.nsid))
    }
}
