import Glibc
import Synchronization

/// Lookups in the user and group databases through NSS (`getpwnam_r`, `getgrnam_r`, `getgrouplist`): the one place
/// runvoy asks who a user or group is.
public enum UserDatabase {
    public struct User: Sendable, Equatable {
        public var name: String
        public var uid: uid_t
        public var gid: gid_t
        public var home: String
        public var shell: String
    }

    public static func user(named name: String) -> User? {
        withPasswd { pwd, buffer, result in getpwnam_r(name, &pwd, buffer.baseAddress!, buffer.count, &result) }
    }

    public static func user(uid: uid_t) -> User? {
        withPasswd { pwd, buffer, result in getpwuid_r(uid, &pwd, buffer.baseAddress!, buffer.count, &result) }
    }

    public static func groupID(named name: String) -> gid_t? {
        withGroup { grp, buffer, result in getgrnam_r(name, &grp, buffer.baseAddress!, buffer.count, &result) }?.gid
    }

    public static func groupName(gid: gid_t) -> String? {
        withGroup { grp, buffer, result in getgrgid_r(gid, &grp, buffer.baseAddress!, buffer.count, &result) }?.name
    }

    private static let enumeration = Mutex(())

    /// Every user name in the user database (`getpwent`, which is not thread-safe, so calls are serialized).
    public static func allUserNames() -> [String] {
        enumeration.withLock { _ in
            var names: [String] = []
            setpwent()
            while let entry = getpwent() {
                names.append(String(cString: entry.pointee.pw_name))
            }
            endpwent()
            return names
        }
    }

    /// Every group `user` is in: its primary group and its supplementary groups.
    public static func groupIDs(user: String, primary: gid_t) -> [gid_t] {
        var count: Int32 = 32
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var n = count
            if getgrouplist(user, primary, &groups, &n) >= 0 {
                return Array(groups.prefix(Int(n)))
            }
            if n <= count { n = count * 2 }
            count = n
        }
    }

    private static func withPasswd(
        _ body: (inout passwd, UnsafeMutableBufferPointer<CChar>, inout UnsafeMutablePointer<passwd>?) -> Int32
    ) -> User? {
        var size = 1024
        while size <= 1 << 20 {
            var pwd = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let rc = body(&pwd, buffer, &result)
            if rc == ERANGE {
                size *= 4
                continue
            }
            guard rc == 0, result != nil else { return nil }
            return User(
                name: String(cString: pwd.pw_name), uid: pwd.pw_uid, gid: pwd.pw_gid,
                home: String(cString: pwd.pw_dir), shell: String(cString: pwd.pw_shell))
        }
        return nil
    }

    private static func withGroup(
        _ body: (inout group, UnsafeMutableBufferPointer<CChar>, inout UnsafeMutablePointer<group>?) -> Int32
    ) -> (name: String, gid: gid_t)? {
        var size = 4096
        while size <= 1 << 22 {
            var grp = group()
            var result: UnsafeMutablePointer<group>?
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let rc = body(&grp, buffer, &result)
            if rc == ERANGE {
                size *= 4
                continue
            }
            guard rc == 0, result != nil else { return nil }
            return (String(cString: grp.gr_name), grp.gr_gid)
        }
        return nil
    }
}
