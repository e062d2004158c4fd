// The small value types of the stats segment: what a counter is, how it is
// named in code, and the one error type of the module.

/// How a reader should treat a value. A counter only grows (rates make sense);
/// a gauge goes up and down (a level, such as buffers in use).
public enum CounterKind: UInt8, Sendable {
    case counter = 0
    case gauge = 1
}

/// The position of a name in the segment's directory. The same index selects
/// the word in every slot's counter block.
public struct CounterID: Hashable, Sendable {
    public let index: Int

    @inlinable
    public init(index: Int) {
        self.index = index
    }
}

/// Everything that can go wrong creating, registering in or reading a segment.
/// The message names the file (and the instance where known) so it can be
/// printed as is.
public struct StatsError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
