#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// OS threads for workers: pinned, named, joined. Not async tasks: those allocate and hop
/// threads, and a worker must stay on its core.
public final class OSThread: @unchecked Sendable {
    private var handle: pthread_t = 0
    private final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }

    /// Start a thread running `body`. The closure is the only allocation; it runs once.
    public init(name: String, body: @escaping @Sendable () -> Void) throws(SystemError) {
        let box = Unmanaged.passRetained(Box({ sl_set_thread_name(name); body() }))
        let r = pthread_create(&handle, nil, { arg in
            let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
            b.body()
            return nil
        }, box.toOpaque())
        if r != 0 {
            box.release()
            throw SystemError("pthread_create", errno: r)
        }
    }

    public func join() { pthread_join(handle, nil) }

    /// The CPU the calling thread runs on now.
    public static var currentCPU: Int { Int(sl_current_cpu()) }

    /// Pin the calling thread to `cpu`.
    public static func pinCurrent(to cpu: Int) throws(SystemError) {
        let r = sl_pin_self_to_cpu(Int32(cpu))
        if r != 0 { throw SystemError("pthread_setaffinity_np(cpu \(cpu))", errno: r) }
    }
}

/// What the machine offers.
public enum CPUInfo {
    /// Online CPUs from /sys/devices/system/cpu/online (list syntax "0-3,5").
    public static func onlineCPUs() -> Set<Int> {
        guard let text = readSmallFile("/sys/devices/system/cpu/online") else {
            let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            return Set(0..<max(1, n))
        }
        var result = Set<Int>()
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { Int($0.trimmingCharacters()) }
            if bounds.count == 1 { result.insert(bounds[0]) }
            else if bounds.count == 2, bounds[0] <= bounds[1] { result.formUnion(bounds[0]...bounds[1]) }
        }
        return result
    }

    public static func numaNode(ofCPU cpu: Int) -> Int { Int(sl_numa_node_of_cpu(Int32(cpu))) }
}

/// Read a small text file (sysfs, procfs) whole; nil if it cannot be read.
public func readSmallFile(_ path: String, limit: Int = 65536) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: limit)
    var total = 0
    while total < limit {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, limit - total) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        total += n
    }
    return String(decoding: bytes[0..<total], as: UTF8.self)
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}
