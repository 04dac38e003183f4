import CSystemd
import Glibc
import RunvoyConfig
import RunvoyKit

/// Where the daemon's listening socket comes from: a path it binds, or a socket systemd passed (LISTEN_FDS).
///
/// A socket file the daemon binds is never handled by path once its folder is checked: the folder, and every
/// folder above it, must be one only root (or the daemon's own account) can write, it is opened once (`Folder`), and the stale socket is
/// removed, the new one bound, and its group and mode set through that descriptor, never following a symlink.
/// The socket is bound with its mode already set (narrower while its group is not yet set), so no account can
/// swap the file between bind and chmod, and the socket is never wider than configured.
enum ListeningSocket {
    case path(String)
    case inherited(Int32)

    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    /// The socket systemd passed, if any (sd_listen_fds; the environment variables are then unset).
    static func fromSystemd() throws(SetupError) -> Int32? {
        let count = sd_listen_fds(1)
        if count < 0 { throw SetupError(description: "LISTEN_FDS: \(SystemError.text(-count))") }
        if count == 0 { return nil }
        if count > 1 { throw SetupError(description: "systemd passed \(count) sockets; runvoyd expects exactly one") }
        let fd = SD_LISTEN_FDS_START
        guard sd_is_socket_unix(fd, SOCK_STREAM.rawValue.asInt32, 1, nil, 0) > 0 else {
            throw SetupError(description: "the socket systemd passed is not a listening Unix stream socket")
        }
        return fd
    }

    /// Prepares `path` for binding: creates the folders on the way, checks that no other account can write them,
    /// refuses when a live daemon answers there, and removes a stale socket file left by one that died.
    static func prepare(path: String) throws(SetupError) {
        let folder = try Folder(of: path, create: true)
        defer { folder.close() }
        var info = stat()
        guard fstatat(folder.fd, folder.name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw SetupError(description: "\(path) exists and is not a socket; refusing to replace it")
        }
        if isLive(path) {
            throw SetupError(description: "another runvoyd is already serving at \(path)")
        }
        guard unlinkat(folder.fd, folder.name, 0) == 0 else {
            throw SetupError(description: "cannot remove the stale socket \(path): \(SystemError.text())")
        }
    }

    /// A listening Unix socket bound at `path` with the mode and group of `settings` (see the type's comment):
    /// its descriptor, for `ServerBootstrap.bind(_:)`.
    static func bind(path: String, settings: SocketSettings, backlog: Int32) throws(SetupError) -> Int32 {
        let folder = try Folder(of: path)
        defer { folder.close() }
        let gid = try settings.group.map { name throws(SetupError) in try groupID(name) }
        let mode = mode_t(settings.mode)
        let fd = socket(AF_UNIX, SOCK_STREAM.rawValue.asInt32 | SOCK_CLOEXEC.rawValue.asInt32, 0)
        guard fd >= 0 else { throw SetupError(description: "socket: \(SystemError.text())") }
        var bound = false
        do throws(SetupError) {
            // The socket file takes this mode (less the umask) at bind: until its group is set, owner only.
            guard fchmod(fd, gid == nil ? mode : mode & 0o700) == 0 else {
                throw SetupError(description: "fchmod of the socket for \(path): \(SystemError.text())")
            }
            try folder.bind(fd, path: path)
            bound = true
            guard listen(fd, backlog) == 0 else {
                throw SetupError(description: "listen \(path): \(SystemError.text())")
            }
            try folder.apply(mode: mode, gid: gid, path: path)
            return fd
        } catch {
            if bound { unlinkat(folder.fd, folder.name, 0) }
            Glibc.close(fd)
            throw error
        }
    }

    /// Applies the configured mode and group to the socket file at `path`, through its folder and without
    /// following a symlink there (a symlink planted at `path` is refused, its target left alone).
    static func applyPermissions(path: String, settings: SocketSettings) throws(SetupError) {
        let folder = try Folder(of: path)
        defer { folder.close() }
        let gid = try settings.group.map { name throws(SetupError) in try groupID(name) }
        try folder.apply(mode: mode_t(settings.mode), gid: gid, path: path)
    }

    static func groupID(_ name: String) throws(SetupError) -> gid_t {
        guard let gid = UserDatabase.groupID(named: name) else {
            throw SetupError(description: "socket group '\(name)' does not exist")
        }
        return gid
    }

    private static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, SOCK_STREAM.rawValue.asInt32 | SOCK_CLOEXEC.rawValue.asInt32, 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        guard var address = Folder.address(path) else { return false }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return rc == 0
    }

}

extension UInt32 {
    var asInt32: Int32 { Int32(bitPattern: self) }
}

extension ListeningSocket {
    /// What to warn about when systemd passed the socket (socket activation): the socket unit's `SocketMode=` and
    /// `SocketGroup=` decide who may connect, and the configuration's `socket.mode` and `socket.group` are not
    /// applied. Nil when they agree with the socket file, or when its file cannot be examined.
    static func activationMismatch(_ fd: Int32, settings: SocketSettings) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        let path = withUnsafeBytes(of: address.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        var info = stat()
        guard !path.isEmpty, stat(path, &info) == 0 else { return nil }
        return activationMismatch(path: path, mode: UInt32(info.st_mode & 0o7777), gid: info.st_gid, settings: settings)
    }

    static func activationMismatch(path: String, mode: UInt32, gid: gid_t, settings: SocketSettings) -> String? {
        var ignored: [String] = []
        if mode != settings.mode {
            ignored.append(
                "socket.mode \(String(settings.mode, radix: 8)) (the socket is \(String(mode, radix: 8)))")
        }
        if let group = settings.group, UserDatabase.groupID(named: group) != gid {
            ignored.append(
                "socket.group \(group) (the socket's group is \(UserDatabase.groupName(gid: gid) ?? "#\(gid)"))")
        }
        guard !ignored.isEmpty else { return nil }
        return "systemd passed the socket \(path) (socket activation), so the configuration's "
            + ignored.joined(separator: " and ")
            + " is not applied: the socket unit's SocketMode= and SocketGroup= decide who may connect. Set them there, or make the configuration match"
    }
}
