// Writes the seed corpus of the `vhost-message` fuzz target: one valid
// request of every kind (several for the ones with interesting shapes) and a
// few replies, each prefixed with the control byte Fuzz.swift reads.
// Built and run by `tools/fuzz/run.sh --seeds`, together with the codec sources.
#if canImport(Glibc)
import Glibc
#endif

@main
struct VhostMessageSeeds {
    static func write(_ name: String, _ bytes: [UInt8], to dir: String) {
        let path = "\(dir)/\(name).bin"
        guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }

    static func main() {
        guard CommandLine.arguments.count == 2 else { fatalError("usage: seeds DIR") }
        let dir = CommandLine.arguments[1]
        let region = { (i: UInt64) in
            MemoryRegionDescriptor(guestPhysAddr: i << 30, memorySize: 1 << 30, userspaceAddr: 0x7f00_0000_0000 + (i << 30), mmapOffset: 0)
        }
        let requests: [(String, VhostUserMessage)] = [
            ("get-features", .getFeatures),
            ("set-features", .setFeatures(0x1_7020_8000 | (1 << 30))),
            ("set-owner", .setOwner),
            ("reset-owner", .resetOwner),
            ("set-mem-table-1", .setMemTable([region(0)], fds: [0])),
            ("set-mem-table-2", .setMemTable([region(0), region(4)], fds: [0, 0])),
            ("set-mem-table-8", .setMemTable((0..<8).map { region($0) }, fds: Array(repeating: 0, count: 8))),
            ("set-log-base", .setLogBase(LogDescription(mmapSize: 0x8000, mmapOffset: 0), fd: 0)),
            ("set-log-fd", .setLogFD(fd: 0)),
            ("set-vring-num", .setVringNum(VringState(index: 0, num: 256))),
            ("set-vring-addr", .setVringAddr(VringAddress(index: 1, desc: 0x7f00_0000_0000, used: 0x7f00_0000_2000, avail: 0x7f00_0000_1000))),
            ("set-vring-addr-log", .setVringAddr(VringAddress(index: 0, flags: 1, desc: 0x1000, used: 0x3000, avail: 0x2000, log: 0x3000))),
            ("set-vring-base", .setVringBase(VringState(index: 0, num: 0))),
            ("get-vring-base", .getVringBase(VringState(index: 1, num: 0))),
            ("set-vring-kick", .setVringKick(index: 0, fd: 0)),
            ("set-vring-kick-nofd", .setVringKick(index: 1, fd: nil)),
            ("set-vring-call", .setVringCall(index: 1, fd: 0)),
            ("set-vring-err", .setVringErr(index: 0, fd: 0)),
            ("get-protocol-features", .getProtocolFeatures),
            ("set-protocol-features", .setProtocolFeatures(0x1_8209)),
            ("get-queue-num", .getQueueNum),
            ("set-vring-enable", .setVringEnable(VringState(index: 1, num: 1))),
            ("send-rarp", .sendRARP(mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56])),
            ("net-set-mtu", .netSetMTU(1500)),
            ("set-backend-req-fd", .setBackendReqFD(fd: 0)),
            ("iotlb-msg", .iotlbMessage(IOTLBMessage(iova: 0x1000, size: 0x1000, userAddr: 0x7f00_0000_1000, permissions: 3, type: 2))),
            ("set-vring-endian", .setVringEndian(VringState(index: 0, num: 0))),
            ("get-config", .getConfig(DeviceConfigSpace(offset: 0, size: 12))),
            ("set-config", .setConfig(DeviceConfigSpace(offset: 0, flags: 1, payload: [0x52, 0x54, 0, 1, 2, 3]))),
            ("create-crypto-session", .createCryptoSession([UInt8](repeating: 0, count: 64))),
            ("close-crypto-session", .closeCryptoSession(1)),
            ("postcopy-advise", .postcopyAdvise),
            ("postcopy-listen", .postcopyListen),
            ("postcopy-end", .postcopyEnd),
            ("get-inflight-fd", .getInflightFD(InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 1, queueSize: 128))),
            ("set-inflight-fd", .setInflightFD(InflightDescription(mmapSize: 0x2000, mmapOffset: 0, numQueues: 1, queueSize: 128), fd: 0)),
            ("gpu-set-socket", .gpuSetSocket(fd: 0)),
            ("reset-device", .resetDevice),
            ("vring-kick", .vringKick(VringState(index: 0, num: 0))),
            ("get-max-mem-slots", .getMaxMemSlots),
            ("add-mem-reg", .addMemReg(region(1), fd: 0)),
            ("rem-mem-reg", .remMemReg(region(1))),
            ("set-status", .setStatus(0x0f)),
            ("get-status", .getStatus),
            ("get-shared-object", .getSharedObject(uuid: Array(0..<16))),
            ("set-device-state-fd", .setDeviceStateFD(DeviceStateTransfer(direction: 0, phase: 0), fd: 0)),
            ("check-device-state", .checkDeviceState),
        ]
        for (name, message) in requests {
            let control = UInt8(message.fileDescriptors.count)
            write("req-" + name, [control] + message.encode(), to: dir)
        }
        write("req-need-reply", [0] + VhostUserMessage.setVringNum(VringState(index: 0, num: 256)).encode(needsReply: true), to: dir)

        let replies: [(String, VhostUserRequest, Bool, VhostUserReply)] = [
            ("get-features", .getFeatures, false, .u64(0x1_4000_0000)),
            ("get-vring-base", .getVringBase, false, .vringState(VringState(index: 0, num: 5))),
            ("get-config", .getConfig, false, .config(DeviceConfigSpace(offset: 0, payload: [1, 2, 3, 4, 5, 6]))),
            ("get-config-failed", .getConfig, false, .configFailed),
            ("get-inflight-fd", .getInflightFD, false, .inflight(InflightDescription(mmapSize: 0x2000, mmapOffset: 0, numQueues: 1, queueSize: 128), fd: 0)),
            ("set-log-base", .setLogBase, false, .empty),
            ("ack", .setMemTable, true, .ack(true)),
        ]
        for (name, request, needsReply, reply) in replies {
            let control = 0x80 | (needsReply ? 0x20 : 0) | UInt8(reply.fileDescriptors.count)
            write("reply-" + name, [control] + reply.encode(replyingTo: request), to: dir)
        }
    }
}
