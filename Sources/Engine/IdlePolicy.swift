/// What a worker does when a loop turn found no work (`--poll`, see the README).
public enum IdlePolicy: Sendable, Equatable, CustomStringConvertible {
    /// `--poll 0`: spin; guest notifications off.
    case busyPoll
    /// `--poll N`: sleep N µs between polls; guest notifications off (L4Re semantics).
    case interval(micros: UInt32)
    /// No `--poll`: notifications on, sleep on the queues' kick eventfds.
    case event

    public init(poll: UInt32?) {
        switch poll {
        case nil: self = .event
        case 0?: self = .busyPoll
        case let n?: self = .interval(micros: n)
        }
    }

    /// Whether guests should be asked to kick us.
    public var wantsNotifications: Bool { self == .event }

    public var description: String {
        switch self {
        case .busyPoll: "busy polling"
        case .interval(let us): "polling every \(us) µs"
        case .event: "event mode (sleep on kicks)"
        }
    }
}
