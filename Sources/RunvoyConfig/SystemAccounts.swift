import Glibc

/// Existence checks against the user and group databases (NSS), for validation.
enum SystemAccounts {
    static func userExists(_ name: String) -> Bool {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        return getpwnam_r(name, &pwd, &buffer, buffer.count, &result) == 0 && result != nil
    }

    static func groupExists(_ name: String) -> Bool {
        var grp = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 1 << 20)
        return getgrnam_r(name, &grp, &buffer, buffer.count, &result) == 0 && result != nil
    }
}
