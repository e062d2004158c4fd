#if canImport(Glibc)
import Glibc
#endif
import Config
import Memory
import Platform
import Ports
import Services
import Stats
import Switching

/// `[network NAME]`: a routed network. The workers route between its ports and answer
/// ARP and echo for the gateway; the control thread runs its DHCPv4, DHCPv6 and
/// neighbour-discovery services on the frames the workers hand it (`RunningRouter`).
struct RouterBuilder: ElementBuilder {
    func specs(_ config: SluiceConfig) -> [ElementSpec] {
        config.networks.map { n in
            let ports = n.ports.compactMap { config.port(named: $0) }
            // Addresses and routed prefixes of the members are part of the network.
            let addressing = ports.map { "\($0.name)=\($0.addressing)" }.joined(separator: ";")
            return ElementSpec(kind: "network", name: n.name, line: n.line, ports: n.ports,
                               fingerprint: "\(n.ipv4Subnet.map(\.description) ?? "-") \(n.ipv6Prefix.map(\.description) ?? "-") dns=\(n.dns4)\(n.dns6) domain=\(n.domain ?? "-") lease=\(n.leaseTime) state=\(config.dataplane.stateDirectory) \(addressing)")
        }
    }

    func build(_ spec: ElementSpec, _ plane: Dataplane) throws(EngineError) -> any RunningElement {
        guard let nc = plane.config.networks.first(where: { $0.name == spec.name }) else {
            throw EngineError("network \(spec.name): not in \(plane.config.file)")
        }
        return try RunningRouter(nc, plane: plane)
    }
}

/// The router MAC of a network: locally administered, derived from the instance and
/// network names so it stays the same across restarts (guests keep their neighbour entry).
func routerMAC(instance: String, network: String) -> MACAddress {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in "sluice/\(instance)/\(network)".utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return MACAddress(bytes: (0x02, UInt8(truncatingIfNeeded: h >> 32), UInt8(truncatingIfNeeded: h >> 24),
                              UInt8(truncatingIfNeeded: h >> 16), UInt8(truncatingIfNeeded: h >> 8), UInt8(truncatingIfNeeded: h)))
}
