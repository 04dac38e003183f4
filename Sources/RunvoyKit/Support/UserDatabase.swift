import Glibc

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
        lookUp(passwd(), start: 1024, limit: 1 << 20, body) { pwd in
            User(
                name: String(cString: pwd.pw_name), uid: pwd.pw_uid, gid: pwd.pw_gid,
                home: String(cString: pwd.pw_dir), shell: String(cString: pwd.pw_shell))
        }
    }

    private static func withGroup(
        _ body: (inout group, UnsafeMutableBufferPointer<CChar>, inout UnsafeMutablePointer<group>?) -> Int32
    ) -> (name: String, gid: gid_t)? {
        lookUp(group(), start: 4096, limit: 1 << 22, body) { grp in (String(cString: grp.gr_name), grp.gr_gid) }
    }

    /// Calls a reentrant NSS lookup (`get*_r`) with a buffer that grows fourfold, up to `limit`, while it is too
    /// small (ERANGE); `nil` when there is no such entry or the lookup fails.
    private static func lookUp<Entry, Value>(
        _ empty: Entry, start: Int, limit: Int,
        _ body: (inout Entry, UnsafeMutableBufferPointer<CChar>, inout UnsafeMutablePointer<Entry>?) -> Int32,
        _ convert: (Entry) -> Value
    ) -> Value? {
        var size = start
        while size <= limit {
            var entry = empty
            var result: UnsafeMutablePointer<Entry>?
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let rc = body(&entry, buffer, &result)
            if rc == ERANGE {
                size *= 4
                continue
            }
            guard rc == 0, result != nil else { return nil }
            return convert(entry)
        }
        return nil
    }
}
