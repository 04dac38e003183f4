import Glibc
import RunvoyKit

extension ListeningSocket.Folder {
    /// The most symbolic links followed on the way to a socket's folder (as the kernel's own limit).
    static let maxLinks = 40

    /// Opens the folder `path` by walking to it from `/`, each folder opened (`O_DIRECTORY | O_NOFOLLOW`) relative
    /// to the one before and checked: owned by root or the daemon's account, and writable by no group and no
    /// other account. A root-owned sticky folder (such as /tmp) may be passed through, never be the socket's own.
    /// A symbolic link on the way is followed only when root or the daemon's account owns it (the folder holding
    /// it is checked already). With `create`, missing folders are made (0755) as the walk reaches them, so none is
    /// made below a folder that fails the check. The descriptor of the last folder is returned.
    static func walk(to path: String, create: Bool) throws(ListeningSocket.SetupError) -> Int32 {
        var pending = Self.components(path.hasPrefix("/") ? path : Self.currentDirectory() + "/" + path)
        var fd = try Self.root(final: pending.isEmpty)
        var walked = ""
        var links = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." { continue }
            var next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create && component != ".." {
                if mkdirat(fd, component, 0o755) != 0 && errno != EEXIST {
                    let reason = SystemError.text()
                    Glibc.close(fd)
                    throw ListeningSocket.SetupError(
                        description: "cannot create the socket's folder \(walked)/\(component): \(reason)")
                }
                next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if next < 0, errno == ELOOP || errno == ENOTDIR, let target = Self.link(fd, component) {
                links += 1
                guard links <= maxLinks else {
                    Glibc.close(fd)
                    throw ListeningSocket.SetupError(description: "too many symbolic links on the way to \(path)")
                }
                pending = Self.components(target) + pending
                if target.hasPrefix("/") {
                    Glibc.close(fd)
                    fd = try Self.root(final: pending.isEmpty)
                    walked = ""
                }
                continue
            }
            let here = walked + "/" + component
            guard next >= 0 else {
                let reason = SystemError.text()
                Glibc.close(fd)
                throw ListeningSocket.SetupError(description: "cannot open the socket's folder \(here): \(reason)")
            }
            Glibc.close(fd)
            fd = next
            walked = here
            try Self.check(fd, path: walked, final: pending.isEmpty)
        }
        return fd
    }

    /// `/`, opened and checked.
    private static func root(final: Bool) throws(ListeningSocket.SetupError) -> Int32 {
        let fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ListeningSocket.SetupError(description: "cannot open /: \(SystemError.text())")
        }
        try check(fd, path: "/", final: final)
        return fd
    }

    /// Refuses (and closes `fd`) a folder another account could change: see `walk`.
    static func check(_ fd: Int32, path: String, final: Bool) throws(ListeningSocket.SetupError) {
        var info = stat()
        let owner = fstat(fd, &info) == 0 ? info.st_uid : uid_t.max
        let othersWrite = info.st_mode & 0o022 != 0
        let passable = owner == 0 && info.st_mode & mode_t(S_ISVTX) != 0 && !final
        guard owner == 0 || owner == geteuid(), !othersWrite || passable else {
            Glibc.close(fd)
            let mode = String(info.st_mode & 0o7777, radix: 8)
            let which = final ? "the socket's folder \(path)" : "the folder \(path), above the socket's folder,"
            throw ListeningSocket.SetupError(
                description:
                    "\(which) may be written by another account (owner uid \(owner), mode \(mode)): it could replace the socket file or the folders below. Put the socket in a folder only root can write, such as /run/runvoy, on a path of folders only root can write (a sticky folder such as /tmp may be on the way, but is refused as the socket's own folder)"
            )
        }
    }

    /// The target of the symbolic link `name` in `fd`, when it is one owned by root or the daemon's account.
    private static func link(_ fd: Int32, _ name: String) -> String? {
        var info = stat()
        guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT == S_IFLNK,
            info.st_uid == 0 || info.st_uid == geteuid()
        else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlinkat(fd, name, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init)
    }

    private static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(cString: buffer)
    }
}
