import CSystemd
import Glibc
import RunvoyConfig
import RunvoyKit

/// Where the daemon's listening socket comes from: a path it binds, or a socket systemd passed (LISTEN_FDS).
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

    /// Prepares `path` for binding: creates the parent directory, refuses when a live daemon answers there,
    /// and removes a stale socket file left by one that died.
    static func prepare(path: String) throws(SetupError) {
        let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !parent.isEmpty { try makeDirectories(parent) }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw SetupError(description: "\(path) exists and is not a socket; refusing to replace it")
        }
        if isLive(path) {
            throw SetupError(description: "another runvoyd is already serving at \(path)")
        }
        guard unlink(path) == 0 else {
            throw SetupError(description: "cannot remove the stale socket \(path): \(SystemError.text())")
        }
    }

    /// Applies the configured mode and group to a socket file the daemon bound.
    static func applyPermissions(path: String, settings: SocketSettings) throws(SetupError) {
        if let group = settings.group {
            guard let gid = UserDatabase.groupID(named: group) else {
                throw SetupError(description: "socket group '\(group)' does not exist")
            }
            guard chown(path, uid_t.max, gid) == 0 else {
                throw SetupError(description: "chown \(path): \(SystemError.text())")
            }
        }
        guard chmod(path, mode_t(settings.mode)) == 0 else {
            throw SetupError(description: "chmod \(path): \(SystemError.text())")
        }
    }

    private static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, SOCK_STREAM.rawValue.asInt32 | SOCK_CLOEXEC.rawValue.asInt32, 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8.prefix(raw.count - 1))
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return rc == 0
    }

    private static func makeDirectories(_ path: String) throws(SetupError) {
        do throws(SystemError) {
            try FileSystem.makeDirectories(path, mode: 0o755)
        } catch {
            throw SetupError(description: "cannot create the socket's directory: \(error)")
        }
    }
}

extension UInt32 {
    var asInt32: Int32 { Int32(bitPattern: self) }
}
