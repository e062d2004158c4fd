import Config
import Platform

/// What one MAC holds in a network: an IPv4 and/or an IPv6 address, each with its
/// own state and expiry. A record outlives its bindings (released, expired) so that
/// the same MAC gets the same address again while nobody else needed it.
public struct Lease: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        /// Offered (DHCPv4 OFFER, DHCPv6 ADVERTISE): held for this MAC for a short while.
        case offered
        /// Acknowledged: the address belongs to the port until the expiry.
        case bound
        /// Given back by the client (RELEASE) or declined; remembered for this MAC.
        case released
        /// Not renewed in time; remembered for this MAC.
        case expired
    }

    public var mac: MACAddress
    public var port: String
    public var ipv4: IPv4Address?
    public var state4: State
    /// Seconds, CLOCK_REALTIME.
    public var expiry4: UInt64
    public var ipv6: IPv6Address?
    /// The DHCPv6 client's DUID and IA_NA IAID (empty / 0 until it asked).
    public var duid: [UInt8]
    public var iaid: UInt32
    public var state6: State
    public var expiry6: UInt64

    public init(mac: MACAddress, port: String, ipv4: IPv4Address? = nil, state4: State = .expired, expiry4: UInt64 = 0,
                ipv6: IPv6Address? = nil, duid: [UInt8] = [], iaid: UInt32 = 0, state6: State = .expired, expiry6: UInt64 = 0) {
        self.mac = mac
        self.port = port
        self.ipv4 = ipv4
        self.state4 = state4
        self.expiry4 = expiry4
        self.ipv6 = ipv6
        self.duid = duid
        self.iaid = iaid
        self.state6 = state6
        self.expiry6 = expiry6
    }

    /// Offered or bound and not yet expired: nobody else may get the address.
    public func holds4(now: UInt64) -> Bool { ipv4 != nil && (state4 == .bound || state4 == .offered) && expiry4 > now }
    public func holds6(now: UInt64) -> Bool { ipv6 != nil && (state6 == .bound || state6 == .offered) && expiry6 > now }
    /// Bound and not yet expired: the router routes the address to the port.
    public func bound4(now: UInt64) -> Bool { ipv4 != nil && state4 == .bound && expiry4 > now }
    public func bound6(now: UInt64) -> Bool { ipv6 != nil && state6 == .bound && expiry6 > now }
}

/// A lease file that cannot be read back: `path:line: message`.
public struct LeaseFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int
    public var message: String

    public init(path: String, line: Int, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)" }
}

/// The addresses of one network, per MAC, shared by the DHCPv4 and DHCPv6 servers.
/// Control thread only. Allocation is stable per MAC: an existing record of the MAC
/// wins; otherwise a hash of the MAC picks a starting point in the pool and the next
/// free address is taken. Persisted to `path` (atomically) on every commit, release
/// and decline, and read back by `init`.
public final class LeaseStore {
    public let network: NetworkServiceConfig
    public let path: String?
    /// How long an offer holds its address for the MAC (seconds).
    public var offerSeconds: UInt64 = 60
    /// How long a declined address is kept out of the pool (seconds).
    public var quarantineSeconds: UInt64 = 3600
    /// The last failure to write the lease file (nil after a write that worked): the
    /// engine logs it; answers go on from memory.
    public private(set) var persistProblem: String?
    /// Incremented on every change a reader of `all` (the shared-memory table) should see.
    public private(set) var generation: UInt64 = 0

    var records: [MACAddress: Lease] = [:]
    var quarantine4: [IPv4Address: UInt64] = [:]
    var quarantine6: [IPv6Address: UInt64] = [:]
    var static4: [IPv4Address: String] = [:]
    var static6: [IPv6Address: String] = [:]

    public init(network: NetworkServiceConfig, path: String?) throws {
        self.network = network
        self.path = path
        if let path {
            let bytes: [UInt8]?
            do throws(SystemError) { bytes = try AtomicFile.read(path: path) } catch {
                throw LeaseFileError(path: path, line: 0, message: error.reason)
            }
            if let bytes {
                let loaded = try LeaseFile.parse(bytes, path: path, network: network)
                for lease in loaded.leases { records[lease.mac] = lease }
                quarantine4 = loaded.quarantine4
                quarantine6 = loaded.quarantine6
            }
        }
    }

    /// The static addresses of the network's ports: never handed to anyone else.
    /// Call once after `init` (and again after a reload) with every port of the network.
    public func reserveStatics(_ ports: [ServicePort]) {
        static4 = [:]
        static6 = [:]
        for p in ports {
            if let a = p.staticIPv4 { static4[a] = p.name }
            if let a = p.staticIPv6 { static6[a] = p.name }
        }
    }

    public func lease(for mac: MACAddress) -> Lease? { records[mac] }

    /// Every record, sorted by MAC (for the lease table in shared memory).
    public var all: [Lease] { records.values.sorted { $0.mac.octets.lexicographicallyPrecedes($1.mac.octets) } }

    /// How many MACs hold a bound, unexpired address (either family).
    public func boundCount(now: UInt64) -> Int { records.values.filter { $0.bound4(now: now) || $0.bound6(now: now) }.count }

    /// `.bound4`/`.bound6` for every binding still valid: what the router must know after
    /// a restart, before any client renews.
    public func activeBindings(now: UInt64) -> [AddressEvent] {
        var out: [AddressEvent] = []
        for l in all {
            if l.bound4(now: now), let a = l.ipv4 { out.append(.bound4(port: l.port, mac: l.mac, address: a)) }
            if l.bound6(now: now), let a = l.ipv6 { out.append(.bound6(port: l.port, mac: l.mac, address: a)) }
        }
        return out
    }

    // MARK: IPv4

    /// Whether `a` may be handed out at all: inside the subnet, not its network or
    /// broadcast address, not the gateway.
    public func inPool4(_ a: IPv4Address) -> Bool {
        guard let subnet = network.ipv4Subnet, subnet.contains(a), subnet.size >= 4 else { return false }
        let offset = UInt64(a.value &- subnet.address.value)
        return offset != 0 && offset != subnet.size - 1 && a != .gateway
    }

    /// The address for `mac` on `port`: its static address, else its own record, else
    /// `requested` when free, else the next free address from the MAC's hash. The MAC
    /// holds it as `offered` (a bound lease stays bound). nil when the pool is exhausted.
    public func allocate4(mac: MACAddress, port: String, requested: IPv4Address?, staticAddress: IPv4Address?,
                          now: UInt64) -> IPv4Address? {
        guard let subnet = network.ipv4Subnet else { return nil }
        var chosen: IPv4Address?
        if let s = staticAddress {
            chosen = s
            for (m, var other) in records where m != mac && other.ipv4 == s {
                other.ipv4 = nil
                other.state4 = .expired
                records[m] = other
            }
        } else if let own = records[mac]?.ipv4, usable4(own, for: mac, port: port, now: now) {
            chosen = own
        } else if let r = requested, usable4(r, for: mac, port: port, now: now), free4(r, for: mac) {
            chosen = r
        } else {
            let size = subnet.size
            let start = Self.hash(mac) % size
            // Each taken address blocks one candidate: this many steps reach a free one if any is left.
            let taken = UInt64(records.count + quarantine4.count + static4.count) + 3
            var step: UInt64 = 0
            while step < min(size, taken) {
                let a = IPv4Address(subnet.address.value &+ UInt32(truncatingIfNeeded: (start &+ step) % size))
                if usable4(a, for: mac, port: port, now: now), free4(a, for: mac) { chosen = a; break }
                step += 1
            }
            if chosen == nil { chosen = reclaim4(for: mac, port: port, now: now) }
        }
        guard let address = chosen else { return nil }
        var l = records[mac] ?? Lease(mac: mac, port: port)
        l.port = port
        if l.ipv4 != address || !l.bound4(now: now) {
            l.ipv4 = address
            l.state4 = .offered
            l.expiry4 = now &+ offerSeconds
        }
        records[mac] = l
        generation &+= 1
        return address
    }

    /// In the pool, not another port's static address, not quarantined, not held (offered
    /// or bound, unexpired) by another MAC.
    func usable4(_ a: IPv4Address, for mac: MACAddress, port: String, now: UInt64) -> Bool {
        guard inPool4(a) else { return false }
        if let owner = static4[a], owner != port { return false }
        if let until = quarantine4[a], until > now { return false }
        for (m, l) in records where m != mac && l.ipv4 == a && l.holds4(now: now) { return false }
        return true
    }

    /// Not remembered for any other MAC (even released or expired): stays theirs while possible.
    func free4(_ a: IPv4Address, for mac: MACAddress) -> Bool {
        !records.contains { $0.key != mac && $0.value.ipv4 == a }
    }

    /// The pool is full of remembered addresses: take the one whose owner let it go longest ago.
    func reclaim4(for mac: MACAddress, port: String, now: UInt64) -> IPv4Address? {
        let candidates = records.values.filter { $0.mac != mac && $0.ipv4 != nil && !$0.holds4(now: now) }
            .filter { usable4($0.ipv4!, for: mac, port: port, now: now) }
            .sorted { $0.expiry4 != $1.expiry4 ? $0.expiry4 < $1.expiry4 : $0.mac.octets.lexicographicallyPrecedes($1.mac.octets) }
        guard let victim = candidates.first, let a = victim.ipv4 else { return nil }
        var v = victim
        v.ipv4 = nil
        v.state4 = .expired
        records[v.mac] = v
        return a
    }

    /// The MAC's address is now bound until `until` (seconds); written to the file.
    public func commit4(mac: MACAddress, address: IPv4Address, until: UInt64) {
        var l = records[mac] ?? Lease(mac: mac, port: "")
        l.ipv4 = address
        l.state4 = .bound
        l.expiry4 = until
        records[mac] = l
        changed()
    }

    /// The client gave its address back: nil when it held none. Remembered for the MAC.
    public func release4(mac: MACAddress) -> IPv4Address? {
        guard var l = records[mac], let a = l.ipv4, l.state4 == .bound || l.state4 == .offered else { return nil }
        l.state4 = .released
        records[mac] = l
        changed()
        return a
    }

    /// The client found `address` in use by someone else: nobody gets it for
    /// `quarantineSeconds`, and the MAC that held it forgets it.
    public func decline4(address: IPv4Address, now: UInt64) {
        quarantine4[address] = now &+ quarantineSeconds
        for (m, var l) in records where l.ipv4 == address {
            l.ipv4 = nil
            l.state4 = .released
            records[m] = l
        }
        changed()
    }

    // MARK: IPv6

    /// Inside the prefix, not its first address (subnet-router anycast) nor the router's global address.
    public func inPool6(_ a: IPv6Address) -> Bool {
        guard let prefix = network.ipv6Prefix, prefix.contains(a), prefix.length <= 126 else { return false }
        return a != prefix.address && a != network.routerIPv6Global
    }

    /// Like `allocate4`, for IA_NA addresses; the DUID and IAID are recorded with the lease.
    public func allocate6(mac: MACAddress, port: String, duid: [UInt8], iaid: UInt32, staticAddress: IPv6Address?,
                          now: UInt64) -> IPv6Address? {
        guard let prefix = network.ipv6Prefix else { return nil }
        var chosen: IPv6Address?
        if let s = staticAddress {
            chosen = s
            for (m, var other) in records where m != mac && other.ipv6 == s {
                other.ipv6 = nil
                other.state6 = .expired
                records[m] = other
            }
        } else if let own = records[mac]?.ipv6, usable6(own, for: mac, port: port, now: now) {
            chosen = own
        } else {
            // Candidates among the low 32 host bits (or fewer, for a small prefix).
            let hostBits = min(32, 128 - prefix.length)
            let size = UInt64(1) << UInt64(hostBits)
            let start = Self.hash(mac) % size
            let taken = UInt64(records.count + quarantine6.count + static6.count) + 3
            var step: UInt64 = 0
            while step < min(size, taken) {
                let a = IPv6Address(high: prefix.address.high, low: prefix.address.low | ((start &+ step) % size))
                if usable6(a, for: mac, port: port, now: now), free6(a, for: mac) { chosen = a; break }
                step += 1
            }
            if chosen == nil { chosen = reclaim6(for: mac, port: port, now: now) }
        }
        guard let address = chosen else { return nil }
        var l = records[mac] ?? Lease(mac: mac, port: port)
        l.port = port
        l.duid = duid
        l.iaid = iaid
        if l.ipv6 != address || !l.bound6(now: now) {
            l.ipv6 = address
            l.state6 = .offered
            l.expiry6 = now &+ offerSeconds
        }
        records[mac] = l
        generation &+= 1
        return address
    }

    func usable6(_ a: IPv6Address, for mac: MACAddress, port: String, now: UInt64) -> Bool {
        guard inPool6(a) else { return false }
        if let owner = static6[a], owner != port { return false }
        if let until = quarantine6[a], until > now { return false }
        for (m, l) in records where m != mac && l.ipv6 == a && l.holds6(now: now) { return false }
        return true
    }

    func free6(_ a: IPv6Address, for mac: MACAddress) -> Bool {
        !records.contains { $0.key != mac && $0.value.ipv6 == a }
    }

    func reclaim6(for mac: MACAddress, port: String, now: UInt64) -> IPv6Address? {
        let candidates = records.values.filter { $0.mac != mac && $0.ipv6 != nil && !$0.holds6(now: now) }
            .filter { usable6($0.ipv6!, for: mac, port: port, now: now) }
            .sorted { $0.expiry6 != $1.expiry6 ? $0.expiry6 < $1.expiry6 : $0.mac.octets.lexicographicallyPrecedes($1.mac.octets) }
        guard let victim = candidates.first, let a = victim.ipv6 else { return nil }
        var v = victim
        v.ipv6 = nil
        v.state6 = .expired
        records[v.mac] = v
        return a
    }

    public func commit6(mac: MACAddress, address: IPv6Address, until: UInt64) {
        var l = records[mac] ?? Lease(mac: mac, port: "")
        l.ipv6 = address
        l.state6 = .bound
        l.expiry6 = until
        records[mac] = l
        changed()
    }

    public func release6(mac: MACAddress) -> IPv6Address? {
        guard var l = records[mac], let a = l.ipv6, l.state6 == .bound || l.state6 == .offered else { return nil }
        l.state6 = .released
        records[mac] = l
        changed()
        return a
    }

    /// The DHCPv6 counterpart of `decline4`.
    public func decline6(address: IPv6Address, now: UInt64) {
        quarantine6[address] = now &+ quarantineSeconds
        for (m, var l) in records where l.ipv6 == address {
            l.ipv6 = nil
            l.state6 = .released
            records[m] = l
        }
        changed()
    }

    // MARK: Expiry and persistence

    /// Bound leases past their expiry become `expired` (`.released4`/`.released6` for
    /// the router); stale offers and quarantines go. Written to the file when a binding ended.
    public func expire(now: UInt64) -> [AddressEvent] {
        var events: [AddressEvent] = []
        var touched = false
        for (m, var l) in records {
            var changedHere = false
            if let a = l.ipv4, l.state4 == .bound || l.state4 == .offered, l.expiry4 <= now {
                if l.state4 == .bound { events.append(.released4(port: l.port, mac: m, address: a)) }
                l.state4 = .expired
                changedHere = true
            }
            if let a = l.ipv6, l.state6 == .bound || l.state6 == .offered, l.expiry6 <= now {
                if l.state6 == .bound { events.append(.released6(port: l.port, mac: m, address: a)) }
                l.state6 = .expired
                changedHere = true
            }
            if changedHere { records[m] = l; touched = true }
        }
        let q4 = quarantine4.count, q6 = quarantine6.count
        quarantine4 = quarantine4.filter { $0.value > now }
        quarantine6 = quarantine6.filter { $0.value > now }
        if !events.isEmpty || q4 != quarantine4.count || q6 != quarantine6.count {
            changed()
        } else if touched {
            generation &+= 1
        }
        return events
    }

    /// Writes the file now (also done by every commit, release and decline).
    public func persist() {
        generation &+= 1
        guard let path else { return }
        let text = LeaseFile.render(all, quarantine4: quarantine4, quarantine6: quarantine6, network: network.name)
        do throws(SystemError) {
            try AtomicFile.write(path: path, bytes: Array(text.utf8), mode: 0o640)
            persistProblem = nil
        } catch {
            persistProblem = "cannot write \(path): \(error.reason)"
        }
    }

    func changed() { persist() }

    /// A stable 64-bit hash of a MAC (FNV-1a, then a final mix): the same on every run.
    static func hash(_ mac: MACAddress) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in mac.octets {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        return h
    }
}
