/// A packet is an index into a mempool: a plain value, never a class.
@frozen
public struct Packet: BitwiseCopyable, Sendable, Equatable {
    public var index: UInt32
    @inlinable public init(index: UInt32) { self.index = index }
}

/// Up to `PacketBatch.capacity` packet indices in inline storage plus a count.
/// Lives on the worker's stack; never allocates.
@frozen
public struct PacketBatch: ~Copyable {
    public static let capacity = 32
    public var count: Int = 0
    public var items: InlineArray<32, UInt32> = .init(repeating: 0)

    @inlinable public init() {}

    @inlinable public var isFull: Bool { count == Self.capacity }

    @inlinable
    public mutating func append(_ p: Packet) {
        items[count] = p.index
        count &+= 1
    }

    @inlinable
    public subscript(i: Int) -> Packet { Packet(index: items[i]) }

    @inlinable public mutating func removeAll() { count = 0 }

    /// Lend the indices as a pointer (for ring and mempool bulk calls).
    @inlinable
    public mutating func withIndices<R>(_ body: (UnsafeMutablePointer<UInt32>) -> R) -> R {
        var span = items.mutableSpan
        return span.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}
