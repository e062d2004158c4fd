#if canImport(Glibc)
import Glibc
#endif

/// User and group names of this host (`getpwnam_r`, `getgrnam_r`: NSS, so
/// /etc/passwd, /etc/group and whatever else nsswitch.conf lists).
public enum Accounts {
    /// The uid of user `name`, or nil if the host has no such user.
    public static func userID(named name: String) -> uid_t? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        return lookup { buffer in
            let r = getpwnam_r(name, &entry, buffer.baseAddress!, buffer.count, &result)
            return (r, result == nil ? nil : entry.pw_uid)
        }
    }

    /// The gid of group `name`, or nil if the host has no such group.
    public static func groupID(named name: String) -> gid_t? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        return lookup { buffer in
            let r = getgrnam_r(name, &entry, buffer.baseAddress!, buffer.count, &result)
            return (r, result == nil ? nil : entry.gr_gid)
        }
    }

    /// Runs a `get*_r` call with a growing buffer (ERANGE: a group with many members).
    private static func lookup<ID>(_ call: (UnsafeMutableBufferPointer<CChar>) -> (Int32, ID?)) -> ID? {
        var size = 4096
        while size <= 1 << 22 {
            var buffer = [CChar](repeating: 0, count: size)
            let (status, id) = buffer.withUnsafeMutableBufferPointer { call($0) }
            if status == ERANGE {
                size *= 2
                continue
            }
            return status == 0 ? id : nil
        }
        return nil
    }
}
