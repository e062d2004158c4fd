// sluice-gen: a traffic generator and sink that is a vhost-user frontend
// (the guest side of virtio-net), for tests and benchmarks of vhost-user
// backends: sluice itself, DPDK testpmd's net_vhost, OVS-DPDK.
//
//   sluice-gen tx   --socket PATH [--count N] [--size B] [--rate PPS] [--queues N] …
//   sluice-gen rx   --socket PATH [--count N] [--timeout S] [--check-sequence]
//   sluice-gen echo --socket PATH [--timeout S]
//   sluice-gen blk info|write|read|verify|flush|discard|write-zeroes|id|load|raw-request --socket PATH …
//     (the driver side of virtio-blk, for vhost-user-blk backends)
//
// Each prints one summary line (or one JSON object with --json). Exit status:
// 0 success, 1 timeout or sequence errors, 2 the device could not be set up.

import ArgumentParser
import Platform

@main
struct SluiceGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-gen",
        abstract: "Send, receive or echo Ethernet frames as a vhost-user frontend (virtio-net driver side).",
        discussion: """
            Exit status: 0 on success, 1 on a timeout or sequence errors, 2 when the \
            vhost-user device could not be set up.
            """,
        version: SluiceVersion.string,
        subcommands: [TxCommand.self, RxCommand.self, EchoCommand.self, BlkCommand.self])
}
