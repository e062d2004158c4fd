/// The DHCPv6 server allocates from the same store as DHCPv4 (one lease per MAC).
extension LeaseStore: Lease6Allocator {}
