// swift-tools-version:6.1
import PackageDescription

// Hot modules: no exclusivity checks at run time (measured to matter in the
// per-packet loops) and cross-module inlining of the @inlinable fast paths.
let hot: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .executable(name: "sluice-stat", targets: ["sluice-stat"]),
        .executable(name: "sluice-gen", targets: ["sluice-gen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),  // LogHandler.log(event:)
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),  // sluice-gen blk latencies
    ],
    targets: [
        // C shim: pause, rdtsc, atomics on raw memory, CPU_SET, SCM_RIGHTS, libnuma, libhugetlbfs.
        .target(
            name: "CSluice",
            linkerSettings: [.linkedLibrary("numa"), .linkedLibrary("hugetlbfs"), .linkedLibrary("uring")]
        ),
        // Pure modules: depend on nothing.
        .target(name: "Config"),
        // Platform: typed syscalls, mapped memory, hugepages, eventfd, sockets, threads.
        .target(name: "Platform", dependencies: ["CSluice"], swiftSettings: hot),
        .target(name: "Memory", dependencies: ["Platform", "CSluice"], swiftSettings: hot),
        .target(name: "Stats", dependencies: ["Platform", "CSluice"], swiftSettings: hot),
        .target(name: "Virtio", dependencies: ["Platform", "Memory", "CSluice"], swiftSettings: hot),
        .target(name: "VhostUser", dependencies: ["Virtio", "Platform", "CSluice"], swiftSettings: hot),
        // Ports: what a worker polls (PollSource) and the receive/transmit bursts of every port kind.
        .target(name: "Ports", dependencies: ["Virtio", "Memory", "Stats", "Platform", "CSluice"], swiftSettings: hot),
        // Services: the control-plane answers of a [network] (DHCPv4/v6, NDP, RA) and its leases.
        .target(name: "Services", dependencies: ["Config", "Platform"]),
        // Block: virtio-blk requests, the io_uring file backend, GPT, the blk queue a worker polls.
        .target(name: "Block", dependencies: ["VhostUser", "Ports", "Virtio", "Stats", "Platform", "CSluice"], swiftSettings: hot),
        // NVMe: the controller driver (admin path; I/O queue pairs as a blk backend; DMA/IOVA allocation over an IOMMU).
        .target(name: "NVMe", dependencies: ["Block", "Virtio", "Stats", "Platform", "CSluice"], swiftSettings: hot),
        .target(name: "Switching", dependencies: ["Ports", "Virtio", "VhostUser", "Memory", "Stats", "Platform", "CSluice"], swiftSettings: hot),
        .target(
            name: "Engine",
            dependencies: [
                "Config", "Platform", "Memory", "Stats", "Virtio", "VhostUser", "Ports", "Switching", "Services", "Block", "NVMe", "CSluice",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hot
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "Engine", "Config", "Platform",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "sluice-stat",
            dependencies: ["Stats", "Platform", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "tools/sluice-stat"
        ),
        .executableTarget(
            name: "sluice-gen",
            dependencies: [
                "VhostUser", "Virtio", "Platform", "Block", "CSluice",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "tools/sluice-gen",
            exclude: ["check-with-testpmd.sh"],
            swiftSettings: hot
        ),
        .executableTarget(
            name: "sluice-bench",
            dependencies: ["Memory", "Platform", "Switching", "CSluice"],
            path: "tools/bench/sluice-bench",
            swiftSettings: hot
        ),
        .testTarget(name: "ServicesTests", dependencies: ["Services", "Config", "Platform"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config"], exclude: ["Fixtures"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform"]),
        .testTarget(name: "MemoryTests", dependencies: ["Memory", "Platform"]),
        .testTarget(name: "StatsTests", dependencies: ["Stats", "Ports", "Engine", "Platform"]),
        .testTarget(name: "VirtioTests", dependencies: ["Virtio", "Memory", "Platform"]),
        .testTarget(name: "SwitchingTests", dependencies: ["Switching", "Ports", "Memory", "Virtio", "Stats", "Platform"]),
        .testTarget(name: "VhostUserTests", dependencies: ["VhostUser", "Virtio", "Platform"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Config", "Stats", "Memory", "VhostUser", "Virtio", "Platform", "Ports", "Switching"]),
        .testTarget(name: "SystemTests", dependencies: ["Stats", "Config"]),
        .testTarget(name: "NVMeTests", dependencies: ["NVMe", "Block", "Virtio", "Stats", "Platform", "CSluice"]),
        .testTarget(name: "BlockTests", dependencies: ["Block", "VhostUser", "Virtio", "Ports", "Memory", "Stats", "Platform"]),
    ]
)
