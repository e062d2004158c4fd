#if canImport(Glibc)
import Glibc
#endif

/// Other processes, as seen from this one.
public enum Processes {
    /// This process's id.
    public static var currentID: Int32 { getpid() }

    /// True when a process with this pid exists and is not a zombie (EPERM
    /// from kill means it exists but is not ours; an exited, unreaped process
    /// is gone).
    public static func exists(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        guard kill(pid, 0) == 0 || Glibc.errno == EPERM else { return false }
        return !isZombie(pid)
    }

    /// The state letter in /proc/<pid>/stat is Z (zombie) or X (dead).
    private static func isZombie(_ pid: Int32) -> Bool {
        guard let text = SharedFile.readPrefix(path: "/proc/\(pid)/stat", capacity: 512), !text.isEmpty else { return false }
        // "pid (comm) S ...": comm may contain ')' itself, so take the last one.
        guard let paren = text.lastIndex(of: UInt8(ascii: ")")), paren + 2 < text.count else { return false }
        let state = text[paren + 2]
        return state == UInt8(ascii: "Z") || state == UInt8(ascii: "X")
    }
}
